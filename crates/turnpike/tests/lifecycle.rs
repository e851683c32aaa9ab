//! The process around the data plane: hot reload, invalid edits, SIGTERM drain, access logs.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn versioned(version: u32) -> Value {
    openapi(
        "Reload",
        json!({
            "/v": {"get": mock_op(200, &format!("{{\"version\": {version}}}"))},
        }),
    )
}

/// Replaces `path` atomically (write a sibling, rename over), as editors do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn version(tp: &Turnpike, c: &reqwest::Client) -> Resp {
    send(c.get(tp.url("/dev/v"))).await
}

async fn wait_for_version(tp: &Turnpike, want: u64) {
    let c = client();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = version(tp, &c).await;
        if r.status == 200 && r.json()["version"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {want} never served; stderr:\n{}",
            tp.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_never_fails_a_request() {
    let dir = temp_dir();
    let def = dir.path().join("api.json");
    std::fs::write(&def, serde_json::to_string(&versioned(1)).unwrap()).unwrap();
    let file = project(dir.path(), "api.json", "reloadapi1", "dev", "");
    // One worker thread: reloads and requests share the single-threaded runtime.
    let tp = Arc::new(Turnpike::serve_with(&file, &["--workers", "1"]));
    wait_for_version(&tp, 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let tp = tp.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let r = version(&tp, &c).await;
                assert_eq!(
                    r.status,
                    200,
                    "a request failed during reload: {}",
                    r.text()
                );
                let v = r.json()["version"].as_u64().expect("version");
                seen.push(v);
            }
            seen
        }));
    }
    for v in 2..=5u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = serde_json::to_string_pretty(&versioned(v as u32)).unwrap();
        if v % 2 == 0 {
            replace(&def, &text);
        } else {
            std::fs::write(&def, text).unwrap();
        }
        wait_for_version(&tp, v).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for w in workers {
        let seen = w.await.expect("worker");
        total += seen.len();
        assert!(
            seen.windows(2).all(|p| p[0] <= p[1]),
            "a client saw an older version after a newer one: {seen:?}"
        );
        assert!(seen.iter().all(|v| (1..=5).contains(v)));
    }
    assert!(total >= 8, "only {total} requests made");
    let r = version(&tp, &client()).await;
    assert_eq!(r.json()["version"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_old_deployment() {
    let dir = temp_dir();
    let def = dir.path().join("api.json");
    std::fs::write(&def, serde_json::to_string(&versioned(1)).unwrap()).unwrap();
    let file = project(dir.path(), "api.json", "reloadapi2", "dev", "");
    let tp = Turnpike::serve_with(&file, &[]);
    wait_for_version(&tp, 1).await;

    // Broken JSON, then a structurally invalid definition.
    replace(&def, "{\"openapi\": \"3.0.1\", \"paths\": {");
    assert!(
        tp.wait_stderr("reload failed", WAIT),
        "no reload error reported; stderr:\n{}",
        tp.stderr()
    );
    let before = tp.stderr().matches("reload failed").count();
    let r = version(&tp, &client()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], 1);

    let mut bad = versioned(2);
    bad["paths"]["/v"]["get"]["x-amazon-apigateway-integration"]["type"] = json!("SOAP");
    replace(&def, &serde_json::to_string_pretty(&bad).unwrap());
    let deadline = Instant::now() + WAIT;
    while tp.stderr().matches("reload failed").count() == before {
        assert!(
            Instant::now() < deadline,
            "second reload error not reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tp.stderr().contains("api.json:"), "errors carry the file");
    let r = version(&tp, &client()).await;
    assert_eq!(r.json()["version"], 1, "still the old deployment");

    // A valid edit is picked up again.
    replace(&def, &serde_json::to_string(&versioned(3)).unwrap());
    wait_for_version(&tp, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let def = openapi(
        "Drain",
        json!({
            "/slow": {"get": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP_PROXY",
                    "httpMethod": "GET",
                    "uri": format!("{}/sleep/1500", up.base()),
                },
            }},
        }),
    );
    let file = write_json(dir.path(), "api.json", &def);
    let mut tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    let url = tp.url("/dev/slow");
    let in_flight = tokio::spawn(async move { get(&url).await });
    // Wait until the request is in the upstream, then ask turnpike to stop.
    let deadline = Instant::now() + WAIT;
    while up.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tp.sigterm();
    let r = in_flight.await.expect("request task");
    assert_eq!(
        r.status,
        200,
        "the in-flight request completes: {}",
        r.text()
    );
    assert_eq!(r.json()["path"], "/sleep/1500");
    let status = tokio::task::block_in_place(|| tp.wait_exit(WAIT)).expect("turnpike exits");
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        tp.stderr()
    );
    // The listener is gone.
    assert!(std::net::TcpStream::connect(tp.addr()).is_err());
}

/// Shutdown closes idle keep-alive connections at once, on the fast path and on connections
/// handed to hyper, instead of waiting out the drain timeout (30 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_keep_alive_connections_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = temp_dir();
    let def = openapi("Idle", json!({"/ok": {"get": mock_op(200, "{}")}}));
    let file = write_json(dir.path(), "api.json", &def);
    let mut tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    // One idle connection on the fast path, one that `Expect` handed to hyper.
    let mut idle = Vec::new();
    for extra in ["", "Expect: 100-continue\r\n"] {
        let mut s = tokio::net::TcpStream::connect(tp.addr())
            .await
            .expect("connect");
        s.write_all(format!("GET /dev/ok HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes())
            .await
            .expect("write");
        let r = tokio::time::timeout(WAIT, read_response(&mut s, false))
            .await
            .expect("in time")
            .expect("a response");
        assert_eq!(r.status, 200);
        idle.push(s);
    }
    let started = Instant::now();
    tp.sigterm();
    for mut s in idle {
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(WAIT, s.read(&mut b))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "an idle connection is closed, not answered");
    }
    let status = tokio::task::block_in_place(|| tp.wait_exit(WAIT)).expect("turnpike exits");
    assert!(status.success(), "exit status {status:?}");
    // Well under the 10 s header-read deadline, which would also close them.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle connections held the shutdown for {:?}",
        started.elapsed()
    );
}

/// A server whose standard output is closed (`turnpike serve … | head -1` once `head` is
/// done) keeps serving and still stops on SIGTERM: its prints must not panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_neither_stops_nor_wedges_the_server() {
    use std::process::{Command, Stdio};

    let dir = temp_dir();
    let def = openapi("Closed", json!({"/ok": {"get": mock_op(200, "{}")}}));
    let file = write_json(dir.path(), "api.json", &def);
    let port = closed_port();
    let mut child = Command::new(binary())
        .args([
            "serve",
            &file.display().to_string(),
            "--no-watch",
            "--stage",
            "dev",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start turnpike");
    // Closed before the server prints its invoke URLs.
    drop(child.stdout.take());
    let url = format!("http://127.0.0.1:{port}/dev/ok");
    let deadline = Instant::now() + WAIT;
    let served = loop {
        if let Ok(r) = client().get(&url).send().await {
            break r.status().as_u16();
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("turnpike exited with a closed stdout: {status:?}");
        }
        assert!(Instant::now() < deadline, "turnpike never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(served, 200);
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("turnpike did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, want {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_in_clf_and_json() {
    let dir = temp_dir();
    let mut hello = mock_op(200, "{\"hello\":\"world\"}");
    hello["parameters"] = path_params(&["name"]);
    write_json(
        dir.path(),
        "api.json",
        &openapi("Logs", json!({"/hello/{name}": {"get": hello}})),
    );
    let clf = r#"$context.identity.sourceIp - - [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId"#;
    let json_fmt = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod","path":"$context.path","resourcePath":"$context.resourcePath","status":"$context.status","stage":"$context.stage","apiId":"$context.apiId","ua":"$context.identity.userAgent","errorType":"$context.error.responseType","error":"$context.error.message","extended":"$context.extendedRequestId","epoch":"$context.requestTimeEpoch"}"#;
    let stages = format!(
        "        accessLogSettings:\n          format: '{}'\n          destinationArn: clf.log\n      - name: json\n        accessLogSettings:\n          format: '{}'\n          destinationArn: json.log\n",
        clf.replace('\'', "''"),
        json_fmt.replace('\'', "''"),
    );
    let file = project(dir.path(), "api.json", "logsapi001", "clf", &stages);
    let tp = Turnpike::serve(&file);
    let c = client();

    let a = send(
        c.get(tp.url("/clf/hello/bob"))
            .header("user-agent", "e2e-agent"),
    )
    .await;
    assert_eq!(a.status, 200);
    let b = send(
        c.get(tp.url("/clf/missing"))
            .header("user-agent", "e2e-agent"),
    )
    .await;
    assert_eq!(b.status, 403);
    let lines = wait_lines(&dir.path().join("clf.log"), 2);
    let rid = a.header("x-amzn-RequestId").unwrap();
    let day = {
        // dd/Mon/yyyy:HH:MM:SS +0000
        let l = &lines[0];
        let open = l.find('[').expect("[");
        let close = l.find(']').expect("]");
        l[open + 1..close].to_string()
    };
    assert_eq!(day.len(), 26, "{day}");
    assert!(day.ends_with(" +0000"), "{day}");
    assert_eq!(
        lines[0],
        format!(
            "127.0.0.1 - - [{day}] \"GET /hello/{{name}} HTTP/1.1\" 200 {} {rid}",
            a.body.len()
        )
    );
    let rid_b = b.header("x-amzn-RequestId").unwrap();
    assert!(
        lines[1].starts_with("127.0.0.1 - - [")
            && lines[1].ends_with(&format!("\"GET - HTTP/1.1\" 403 42 {rid_b}")),
        "{}",
        lines[1]
    );

    let a = send(
        c.get(tp.url("/json/hello/alice"))
            .header("user-agent", "e2e-agent"),
    )
    .await;
    let b = send(c.post(tp.url("/json/hello/alice")).body("x")).await;
    assert_eq!((a.status, b.status), (200, 403));
    let lines = wait_lines(&dir.path().join("json.log"), 2);
    let first: Value = serde_json::from_str(&lines[0]).expect("JSON line");
    let epoch = first["epoch"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .expect("epoch ms");
    assert!(epoch > 1_600_000_000_000);
    assert_eq!(
        first,
        json!({
            "requestId": a.header("x-amzn-RequestId").unwrap(),
            "ip": "127.0.0.1",
            "method": "GET",
            "path": "/json/hello/alice",
            "resourcePath": "/hello/{name}",
            "status": "200",
            "stage": "json",
            "apiId": "logsapi001",
            "ua": "e2e-agent",
            "errorType": "-",
            "error": "-",
            "extended": a.header("x-amz-apigw-id").unwrap(),
            "epoch": first["epoch"],
        })
    );
    let second: Value = serde_json::from_str(&lines[1]).expect("JSON line");
    assert_eq!(second["requestId"], b.header("x-amzn-RequestId").unwrap());
    assert_eq!(second["method"], "POST");
    assert_eq!(second["status"], "403");
    assert_eq!(second["resourcePath"], "-");
    assert_eq!(second["errorType"], "MISSING_AUTHENTICATION_TOKEN");
    assert_eq!(second["error"], "Missing Authentication Token");
    assert_eq!(second["ua"], "-");
}
