//! Shared helpers for the end-to-end tests: the real `turnpike` binary as a child process, a real
//! in-process upstream HTTP server, and real HTTP clients (reqwest and a raw TCP HTTP/1.1 client).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("turnpike-e2e-")
        .tempdir()
        .expect("create temp dir")
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

pub fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    write(
        dir,
        name,
        &serde_json::to_string_pretty(v).expect("serialise"),
    )
}

/// A minimal OpenAPI 3 document with `paths` (and optional extra top-level keys).
pub fn openapi(title: &str, paths: Value) -> Value {
    json!({
        "openapi": "3.0.1",
        "info": {"title": title, "version": "1"},
        "paths": paths,
    })
}

/// A MOCK integration answering `status` with a fixed JSON body.
pub fn mock_op(status: u16, body: &str) -> Value {
    json!({
        "responses": {status.to_string(): {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "MOCK",
            "requestTemplates": {"application/json": format!("{{\"statusCode\": {status}}}")},
            "responses": {"default": {
                "statusCode": status.to_string(),
                "responseTemplates": {"application/json": body},
            }},
        },
    })
}

/// Path parameters declaration for OpenAPI 3 operations.
pub fn path_params(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect(),
    )
}

/// An HTTP_PROXY operation forwarding `{proxy+}` to `base` + `/{proxy}`.
pub fn http_proxy_op(uri: &str, mappings: Value, params: Value) -> Value {
    json!({
        "parameters": params,
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "HTTP_PROXY",
            "httpMethod": "ANY",
            "uri": uri,
            "requestParameters": mappings,
        },
    })
}

/// A project file serving `definition` (relative to `dir`) under one API id and stage.
pub fn project(dir: &Path, definition: &str, id: &str, stage: &str, extra_stage: &str) -> PathBuf {
    let text = format!(
        "apis:\n  - definition: {definition}\n    id: {id}\n    stages:\n      - name: {stage}\n{extra_stage}"
    );
    write(dir, "turnpike.yaml", &text)
}

// ---------------------------------------------------------------------------------------------
// The turnpike binary
// ---------------------------------------------------------------------------------------------

pub struct Turnpike {
    child: Child,
    pub port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    exited: Option<ExitStatus>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_turnpike")
}

impl Turnpike {
    /// `turnpike serve FILE --listen 127.0.0.1:0 --no-watch`.
    pub fn serve(file: &Path) -> Self {
        Self::serve_with(file, &["--no-watch"])
    }

    /// `turnpike serve FILE --listen 127.0.0.1:0 EXTRA...`.
    pub fn serve_with(file: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "serve".into(),
            file.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(&args)
    }

    pub fn spawn(args: &[String]) -> Self {
        Self::spawn_env(args, &[])
    }

    /// [`Turnpike::spawn`] with extra environment variables.
    pub fn spawn_env(args: &[String], env: &[(&str, String)]) -> Self {
        let mut child = Command::new(binary())
            .args(args)
            .env("TURNPIKE_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start turnpike");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        {
            let out = child.stdout.take().expect("stdout");
            let buf = stdout.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("turnpike listening on http://") {
                        if let Some(port) =
                            rest.rsplit(':').next().and_then(|p| p.trim().parse().ok())
                        {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send(port);
                            }
                        }
                    }
                    let mut b = buf.lock().unwrap();
                    b.push_str(&line);
                    b.push('\n');
                }
            });
        }
        {
            let err = child.stderr.take().expect("stderr");
            let buf = stderr.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(err);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => buf.lock().unwrap().push_str(&line),
                    }
                }
            });
        }
        let port = match rx.recv_timeout(WAIT) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "turnpike did not report its port (exit {status:?}).\nstdout:\n{}\nstderr:\n{}",
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                );
            }
        };
        Turnpike {
            child,
            port,
            stdout,
            stderr,
            exited: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit (polling), up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Turnpike {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `turnpike ARGS` to completion; returns (exit status, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start turnpike");
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = se.read_to_string(&mut e);
        e
    });
    let _ = so.read_to_string(&mut out);
    err.push_str(&t.join().unwrap_or_default());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return (s, out, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("turnpike {args:?} did not exit; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP clients
// ---------------------------------------------------------------------------------------------

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("reqwest client")
}

/// A response read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Resp {
    pub async fn from_reqwest(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = r.bytes().await.expect("read body");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The last value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts the headers every API Gateway response carries.
    pub fn assert_aws_ids(&self) {
        let rid = self
            .header("x-amzn-RequestId")
            .unwrap_or_else(|| panic!("no x-amzn-RequestId in {:?}", self.headers));
        assert!(is_uuid(rid), "x-amzn-RequestId {rid:?} is not a UUID");
        let ext = self
            .header("x-amz-apigw-id")
            .unwrap_or_else(|| panic!("no x-amz-apigw-id in {:?}", self.headers));
        assert!(!ext.is_empty());
    }
}

pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

pub async fn get(url: &str) -> Resp {
    Resp::from_reqwest(client().get(url).send().await.expect("send")).await
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    Resp::from_reqwest(rb.send().await.expect("send")).await
}

/// Sends raw bytes over a fresh TCP connection and reads one HTTP/1.1 response.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write request");
    tokio::time::timeout(WAIT, read_response(&mut s, false))
        .await
        .expect("response in time")
        .expect("a response")
}

/// Reads one response from `s`; `head_only` for responses to HEAD.
pub async fn read_response(s: &mut TcpStream, head_only: bool) -> Option<Resp> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, mut rest) = loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let rest = buf[head_end + 4..].to_vec();
        // Skip interim responses (100 Continue).
        if head.starts_with("HTTP/1.1 100 ") {
            buf = rest;
            continue;
        }
        break (head, rest);
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let h = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if let Some(len) = h("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else if h("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&rest, b"\r\n") {
                    break i;
                }
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                rest.extend_from_slice(&chunk[..n]);
            };
            let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest.drain(..line_end + 2);
            while rest.len() < size + 2 {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                rest.extend_from_slice(&chunk[..n]);
            }
            out.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
        out
    } else {
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest
    };
    Some(Resp {
        status,
        headers,
        body: Bytes::from(body),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// The upstream server
// ---------------------------------------------------------------------------------------------

/// How the echo backend dresses its answers (conformance cases recorded different backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Plain echo.
    Plain,
    /// A Lambda function URL: its infrastructure adds `x-forwarded-*` and `x-amzn-tls-*` to what
    /// the function sees.
    LambdaUrl,
    /// A Lambda function URL echo whose handler removes `x-amzn-*` and `x-forwarded-*` headers.
    LambdaUrlTrimmed,
    /// httpbin behind gunicorn: `Server: gunicorn/19.9.0`, CORS headers, explicit keep-alive.
    Httpbin,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct UpState {
    pub flavour: Flavour,
    pub connections: AtomicUsize,
    pub requests: Mutex<Vec<Recorded>>,
    /// Permits that let `/chunks` streams send their remaining chunks.
    pub chunk_gate: tokio::sync::Semaphore,
    /// Set when a `/chunks` stream has sent its last chunk.
    pub chunks_done: AtomicBool,
    /// Bytes received so far by `/upload`.
    pub upload_bytes: AtomicUsize,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub state: Arc<UpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_flavour(Flavour::Plain).await
    }

    pub async fn start_flavour(flavour: Flavour) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(UpState {
            flavour,
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            chunk_gate: tokio::sync::Semaphore::new(0),
            chunks_done: AtomicBool::new(false),
            upload_bytes: AtomicUsize::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req, peer).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received a request")
    }
}

/// A body fed by a channel (for streamed responses).
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> UpBody {
    http_body_util::Full::new(b.into()).boxed()
}

fn streamed() -> (tokio::sync::mpsc::Sender<Bytes>, UpBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody { rx }.boxed())
}

/// Parses a query string into `{key: "v1,v2"}` (repeated keys comma-joined, like the recorded
/// echo backends).
pub fn query_args(q: Option<&str>) -> Map<String, Value> {
    let mut m: Map<String, Value> = Map::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| percent_decode(&s.replace('+', " "));
        let (k, v) = (dec(k), dec(v));
        match m.get_mut(&k) {
            Some(Value::String(old)) => {
                old.push(',');
                old.push_str(&v);
            }
            _ => {
                m.insert(k, Value::String(v));
            }
        }
    }
    m
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    st: Arc<UpState>,
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response<UpBody> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();

    if path == "/upload" {
        // Count the streamed body without keeping it.
        let mut body = req.into_body();
        let mut n = 0usize;
        let mut sum: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(d) = frame.into_data() {
                for b in d.iter() {
                    sum = sum.wrapping_mul(31).wrapping_add(u64::from(*b));
                }
                n += d.len();
                st.upload_bytes.fetch_add(d.len(), Ordering::SeqCst);
            }
        }
        st.requests.lock().unwrap().push(Recorded {
            method,
            path,
            query,
            headers,
            body: Bytes::new(),
        });
        return json_response(200, &json!({"bytes": n, "sum": sum}));
    }

    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    st.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });

    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            let mut r = json_response(code, &json!({"status_code": code, "message": ""}));
            dress(&st, &mut r);
            return r;
        }
        ["sleep", ms] => {
            let ms: u64 = ms.parse().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        ["chunks", n] => {
            // The first chunk goes out at once; the rest wait for the test to open the gate.
            let n: usize = n.parse().unwrap_or(3);
            let (tx, body) = streamed();
            let st2 = st.clone();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from("chunk-0\n")).await;
                if let Ok(p) = st2.chunk_gate.acquire().await {
                    p.forget();
                }
                for i in 1..n {
                    let _ = tx.send(Bytes::from(format!("chunk-{i}\n"))).await;
                }
                st2.chunks_done.store(true, Ordering::SeqCst);
            });
            let mut r = Response::new(body);
            r.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            return r;
        }
        ["big", n] => {
            let n: usize = n.parse().unwrap_or(0);
            let (tx, body) = streamed();
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < n {
                    let len = (n - sent).min(64 * 1024);
                    let chunk: Vec<u8> = (sent..sent + len).map(|i| (i % 251) as u8).collect();
                    if tx.send(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                    sent += len;
                }
            });
            let mut r = Response::new(body);
            r.headers_mut()
                .insert("content-type", "application/octet-stream".parse().unwrap());
            return r;
        }
        // A response without a content type.
        ["untyped"] => return Response::new(full(b"no type".to_vec())),
        ["respond-headers"] => {
            // Each `h=Name:Value` query parameter becomes a response header.
            let mut r = json_response(200, &json!({"ok": true}));
            for pair in query.as_deref().unwrap_or_default().split('&') {
                if let Some(v) = pair.strip_prefix("h=") {
                    let v = percent_decode(v);
                    if let Some((k, val)) = v.split_once(':') {
                        r.headers_mut().append(
                            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            val.trim().parse().unwrap(),
                        );
                    }
                }
            }
            return r;
        }
        _ => {}
    }

    // Echo.
    let mut hmap: Map<String, Value> = Map::new();
    for (k, v) in &headers {
        let k = k.to_ascii_lowercase();
        match hmap.get_mut(&k) {
            Some(Value::String(old)) => {
                old.push(',');
                old.push_str(v);
            }
            _ => {
                hmap.insert(k, Value::String(v.clone()));
            }
        }
    }
    match st.flavour {
        Flavour::LambdaUrl => {
            hmap.insert("x-forwarded-for".into(), peer.ip().to_string().into());
            hmap.insert("x-forwarded-port".into(), peer.port().to_string().into());
            hmap.insert("x-forwarded-proto".into(), "http".into());
            hmap.insert("x-amzn-tls-version".into(), "TLSv1.2".into());
            hmap.insert(
                "x-amzn-tls-cipher-suite".into(),
                "ECDHE-RSA-AES128-GCM-SHA256".into(),
            );
        }
        Flavour::LambdaUrlTrimmed => {
            hmap.retain(|k, _| !k.starts_with("x-amzn-") && !k.starts_with("x-forwarded-"));
        }
        _ => {}
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let data = if body.is_empty() {
        Value::String(String::new())
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String(text.clone()))
    };
    let host = headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut echo = json!({
        "method": method,
        "path": path,
        "args": query_args(query.as_deref()),
        "headers": hmap,
        "data": data,
        "domain": host,
        "origin": peer.ip().to_string(),
    });
    // The recorded Lambda function URL echoes returned exactly the keys above.
    if matches!(st.flavour, Flavour::Plain | Flavour::Httpbin) {
        echo["query"] = json!(query);
        echo["body"] = json!(text);
    }
    let mut r = json_response(200, &echo);
    dress(&st, &mut r);
    r
}

fn dress(st: &UpState, r: &mut Response<UpBody>) {
    if matches!(st.flavour, Flavour::LambdaUrl | Flavour::LambdaUrlTrimmed) {
        // What a Lambda function URL adds to every response.
        let (n, trace) = {
            let reqs = st.requests.lock().unwrap();
            let trace = reqs
                .last()
                .and_then(|r| r.header("x-amzn-trace-id"))
                .unwrap_or("Root=1-00000000-000000000000000000000000")
                .to_string();
            (reqs.len(), trace)
        };
        let h = r.headers_mut();
        h.insert(
            "x-amzn-trace-id",
            format!("{trace};Sampled=0").parse().unwrap(),
        );
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert(
            "x-amzn-requestid",
            format!("8d6c1a2e-0000-4000-8000-{n:012}").parse().unwrap(),
        );
    }
    if st.flavour == Flavour::Httpbin {
        let h = r.headers_mut();
        h.insert("server", "gunicorn/19.9.0".parse().unwrap());
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("access-control-allow-origin", "*".parse().unwrap());
        h.insert("access-control-allow-credentials", "true".parse().unwrap());
    }
}

fn json_response(status: u16, v: &Value) -> Response<UpBody> {
    let body = serde_json::to_vec(v).expect("json");
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// A JSON object as an ordered map (for stable comparisons in messages).
pub fn sorted(v: &Value) -> BTreeMap<String, Value> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// An unused local port nobody listens on (bound then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The test virtualenv's Python (`scripts/test-deps.sh` creates it), or `$TURNPIKE_TEST_PYTHON`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("TURNPIKE_TEST_PYTHON") {
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test-deps.sh (or set TURNPIKE_TEST_PYTHON)",
        p.display()
    );
    p.display().to_string()
}

/// moto's server (`moto[server]` from the test virtualenv) on an ephemeral port, stopped on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = closed_port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys of a JSON object, sorted (for "exactly these fields" assertions).
pub fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

// ---------------------------------------------------------------------------------------------
// Raw TCP backends
// ---------------------------------------------------------------------------------------------

/// A raw-TCP backend on an ephemeral port: `serve` handles each accepted connection, given its
/// sequence number. Returns the address, the count of connections accepted, and the task.
pub async fn raw_backend<F, Fut>(
    serve: F,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
)
where
    F: Fn(tokio::net::TcpStream, usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(serve(s, n));
        }
    });
    (addr, accepted, task)
}

/// Reads one request head from `s` (bytes past it stay in `got`); `None` once the connection
/// ends.
pub async fn read_head(s: &mut tokio::net::TcpStream, got: &mut Vec<u8>) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    got.drain(..end);
    Some(head)
}
