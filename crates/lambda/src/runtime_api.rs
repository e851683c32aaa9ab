//! The Lambda Runtime API (`2018-06-01`) one function instance talks to: next invocation,
//! response, invocation error, init error. One listener per instance on an ephemeral
//! `127.0.0.1` port (`AWS_LAMBDA_RUNTIME_API` is just `host:port`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::MAX_RESPONSE_PAYLOAD;

/// One invocation handed to the runtime.
pub(crate) struct Job {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: u128,
    pub function_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub reply: oneshot::Sender<Outcome>,
}

/// What the runtime reported for a job.
#[derive(Debug)]
pub(crate) enum Outcome {
    Response(Bytes),
    /// `/error`: the error document as posted (and its error type header).
    Error(Bytes),
    /// The response exceeded Lambda's payload limit.
    TooLarge,
}

pub(crate) struct Shared {
    jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// The job the runtime is working on.
    current: Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    /// The process's output pipes, marked where each invocation's output starts (log tags).
    pub output: Mutex<Vec<Arc<crate::output::Pipe>>>,
    /// Set once the runtime asks for its first invocation (init done).
    pub ready: watch::Sender<bool>,
    /// The body of `/runtime/init/error`.
    pub init_error: watch::Sender<Option<Bytes>>,
}

impl Shared {
    /// A new process's output pipe; those of processes gone are dropped.
    pub(crate) fn add_output(&self, pipe: Arc<crate::output::Pipe>) {
        let mut pipes = self.output.lock().unwrap_or_else(|e| e.into_inner());
        pipes.retain(|p| !p.is_closed());
        pipes.push(pipe);
    }
}

pub(crate) struct RuntimeApi {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub jobs: mpsc::Sender<Job>,
}

impl RuntimeApi {
    pub async fn start(stop: CancellationToken) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            jobs: tokio::sync::Mutex::new(rx),
            current: Mutex::new(None),
            output: Mutex::new(Vec::new()),
            ready: watch::channel(false).0,
            init_error: watch::channel(None).0,
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                // Small request/response exchanges on a keep-alive connection: no Nagle delay.
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(handle(&s, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(io, svc);
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        Ok(RuntimeApi {
            addr,
            shared,
            jobs: tx,
        })
    }
}

fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

async fn handle(s: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return json(
            StatusCode::NOT_FOUND,
            r#"{"errorMessage":"not found","errorType":"InvalidRequest"}"#,
        );
    };
    match (req.method(), rest) {
        (&Method::GET, "invocation/next") => next(s).await,
        (&Method::POST, "init/error") => {
            let body = read(req, MAX_RESPONSE_PAYLOAD).await.unwrap_or_default();
            s.init_error.send_replace(Some(body));
            accepted()
        }
        (&Method::POST, r) => {
            let Some(r) = r.strip_prefix("invocation/") else {
                return json(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#);
            };
            let (id, kind) = match r.rsplit_once('/') {
                Some(x) => x,
                None => return json(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#),
            };
            let taken = {
                let mut cur = s.current.lock().unwrap_or_else(|e| e.into_inner());
                match cur.as_ref() {
                    Some((cid, _)) if cid == id => cur.take(),
                    _ => None,
                }
            };
            let Some((_, reply)) = taken else {
                return json(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                );
            };
            match kind {
                "response" => match read(req, MAX_RESPONSE_PAYLOAD).await {
                    Ok(b) => {
                        let _ = reply.send(Outcome::Response(b));
                        accepted()
                    }
                    Err(()) => {
                        let _ = reply.send(Outcome::TooLarge);
                        json(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!(
                                r#"{{"errorMessage":"Exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes).","errorType":"RequestEntityTooLarge"}}"#
                            ),
                        )
                    }
                },
                "error" => {
                    let body = read(req, MAX_RESPONSE_PAYLOAD).await.unwrap_or_default();
                    let _ = reply.send(Outcome::Error(body));
                    accepted()
                }
                _ => json(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#),
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"errorMessage":"not found","errorType":"InvalidRequest"}"#,
        ),
    }
}

async fn read(req: Request<Incoming>, limit: usize) -> Result<Bytes, ()> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(()),
    }
}

async fn next(s: &Shared) -> Response<Full<Bytes>> {
    s.ready.send_replace(true);
    let job = {
        let mut rx = s.jobs.lock().await;
        rx.recv().await
    };
    let Some(job) = job else {
        return json(
            StatusCode::GONE,
            r#"{"errorMessage":"shutting down","errorType":"ShutDown"}"#,
        );
    };
    let mut r = Response::new(Full::new(job.payload));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut put = |name: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &job.request_id);
    put("lambda-runtime-deadline-ms", &job.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &job.function_arn);
    put("lambda-runtime-trace-id", &job.trace_id);
    if let Some(c) = &job.client_context {
        put("lambda-runtime-client-context", c);
    }
    if let Some(c) = &job.cognito_identity {
        put("lambda-runtime-cognito-identity", c);
    }
    let tag: Arc<str> = Arc::from(job.request_id.as_str());
    for pipe in s.output.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        pipe.mark(&tag);
    }
    *s.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((job.request_id, job.reply));
    r
}
