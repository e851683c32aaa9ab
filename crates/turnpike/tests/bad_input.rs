//! Bad input: malformed definitions (validate/serve report every error with its position) and
//! malformed or abusive HTTP (the server answers and keeps serving).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One definition with four independent errors, at known positions.
const MULTI: &str = r#"openapi: 3.0.1
info:
  title: Broken
  version: "1"
paths:
  /a/{x}:
    get:
      parameters:
        - {name: x, in: path, required: true, schema: {type: string}}
      responses:
        "200": {description: ok}
      x-amazon-apigateway-integration:
        type: SOAP
        uri: http://example.com/
  /a/{y}:
    get:
      parameters:
        - {name: y, in: path, required: true, schema: {type: string}}
      responses:
        "200": {description: ok}
      x-amazon-apigateway-integration:
        type: MOCK
        requestTemplates:
          application/json: '{"statusCode": 200}'
  /b:
    get:
      responses:
        "200": {description: ok}
      x-amazon-apigateway-integration:
        type: HTTP
        httpMethod: GET
        uri: http://example.com/
        requestParameters:
          integration.request.header.X: method.request.bogus.y
        responses:
          default:
            statusCode: "200"
  /c:
    get:
      responses:
        "200": {description: ok}
      x-amazon-apigateway-integration:
        type: MOCK
        requestTemplates:
          application/json: '{"statusCode": 200}'
        responses:
          "2\\d{2":
            statusCode: "200"
"#;

/// Each expected diagnostic: `file:line:column`, JSON pointer, a word of the message.
const MULTI_ERRORS: [(&str, &str, &str); 4] = [
    (
        "13:9",
        "/paths/~1a~1{x}/get/x-amazon-apigateway-integration/type",
        "SOAP",
    ),
    ("15:3", "/paths/~1a~1{y}", "only one is allowed"),
    (
        "34:11",
        "/paths/~1b/get/x-amazon-apigateway-integration/requestParameters/integration.request.header.X",
        "Invalid mapping expression",
    ),
    (
        "47:11",
        "/paths/~1c/get/x-amazon-apigateway-integration/responses/2\\d{2",
        "selection pattern",
    ),
];

fn assert_reports(stderr: &str, file: &str, line_col: &str, pointer: &str, word: &str) {
    let found = stderr.lines().any(|l| {
        l.starts_with(&format!("{file}:{line_col}: error"))
            && l.contains(&format!(" at {pointer}: "))
            && l.contains(word)
    });
    assert!(
        found,
        "no error {file}:{line_col} at {pointer} ({word}) in:\n{stderr}"
    );
}

#[test]
fn validate_and_serve_report_every_error_with_its_position() {
    let dir = temp_dir();
    let file = write(dir.path(), "multi.yaml", MULTI);
    let name = file.display().to_string();
    for args in [
        vec!["validate", name.as_str()],
        vec![
            "serve",
            name.as_str(),
            "--listen",
            "127.0.0.1:0",
            "--no-watch",
        ],
    ] {
        let (status, stdout, stderr) = run_cli(&args);
        assert!(!status.success(), "{args:?} succeeded");
        assert!(
            !stdout.contains("turnpike listening"),
            "{args:?} started serving"
        );
        for (lc, pointer, word) in MULTI_ERRORS {
            assert_reports(&stderr, &name, lc, pointer, word);
        }
        let errors = stderr.lines().filter(|l| l.contains(": error")).count();
        assert_eq!(errors, 4, "{args:?}:\n{stderr}");
    }
}

#[test]
fn syntax_errors_are_positioned() {
    let dir = temp_dir();
    let yaml = write(
        dir.path(),
        "syntax.yaml",
        "openapi: 3.0.1\ninfo:\n  title: [unclosed\n  version: \"1\"\npaths: {}\n",
    );
    let json = write(
        dir.path(),
        "syntax.json",
        "{\n  \"openapi\": \"3.0.1\",\n  \"info\": {\"title\": \"x\", \"version\": \"1\"},\n  \"paths\": {,}\n}\n",
    );
    for file in [&yaml, &json] {
        let name = file.display().to_string();
        for cmd in ["validate", "serve"] {
            let (status, stdout, stderr) = run_cli(
                &[cmd, &name, "--listen", "127.0.0.1:0"][..if cmd == "validate" { 2 } else { 4 }],
            );
            assert!(!status.success());
            assert!(!stdout.contains("turnpike listening"));
            let line = stderr
                .lines()
                .find(|l| l.starts_with(&format!("{name}:")) && l.contains("error"))
                .unwrap_or_else(|| panic!("no positioned error:\n{stderr}"));
            // file:LINE:COLUMN
            let pos: Vec<&str> = line[name.len() + 1..].splitn(3, ':').collect();
            let l: usize = pos[0].parse().expect("line number");
            let c: usize = pos[1].parse().expect("column number");
            if file == &yaml {
                assert!((3..=4).contains(&l), "{line}");
            } else {
                assert_eq!(l, 4, "{line}");
            }
            assert!(c >= 1, "{line}");
        }
    }
}

#[test]
fn a_valid_definition_validates() {
    let dir = temp_dir();
    let file = write_json(
        dir.path(),
        "ok.json",
        &openapi("Fine", json!({"/a": {"get": mock_op(200, "{}")}})),
    );
    let (status, stdout, stderr) = run_cli(&["validate", &file.display().to_string()]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}

/// A server with a MOCK and an HTTP method, for abuse tests.
async fn serve_target(extra: &[&str]) -> (tempfile::TempDir, Upstream, Turnpike) {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let def = openapi(
        "Target",
        json!({
            "/ok": {"get": mock_op(200, "{\"ok\":true}"), "post": mock_op(200, "{\"ok\":true}")},
            "/http": {"post": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP",
                    "httpMethod": "POST",
                    "uri": format!("{}/upload", up.base()),
                    "responses": {"default": {"statusCode": "200"}},
                },
            }},
            "/proxy": {"post": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP_PROXY",
                    "httpMethod": "POST",
                    "uri": format!("{}/upload", up.base()),
                },
            }},
        }),
    );
    let file = write_json(dir.path(), "api.json", &def);
    let mut args = vec!["--no-watch", "--stage", "dev"];
    args.extend_from_slice(extra);
    let tp = Turnpike::serve_with(&file, &args);
    (dir, up, tp)
}

async fn still_serving(tp: &Turnpike) {
    let r = get(&tp.url("/dev/ok")).await;
    assert_eq!(r.status, 200, "server no longer serving: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_the_server_keeps_serving() {
    let (_dir, _up, tp) = serve_target(&[]).await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /dev/ok HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /dev/ok HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"POST /dev/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ] {
        let mut s = TcpStream::connect(tp.addr()).await.expect("connect");
        s.write_all(garbage).await.expect("write");
        let r = tokio::time::timeout(WAIT, read_response(&mut s, false))
            .await
            .expect("answer or close in time");
        if let Some(r) = r {
            assert!(
                r.status == 400 || r.status == 505,
                "{:?} → {}",
                String::from_utf8_lossy(garbage),
                r.status
            );
        }
        still_serving(&tp).await;
    }
    // The plain garbage request line is answered with 400 specifically.
    let r = raw(tp.addr(), b"GARBAGE\r\n\r\n").await;
    assert_eq!(r.status, 400);
    still_serving(&tp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_rejected_and_the_server_keeps_serving() {
    let (_dir, _up, tp) = serve_target(&[]).await;
    // Over AWS's 10,240-byte header total but within what the HTTP layer buffers.
    let mid = format!(
        "GET /dev/ok HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(12_000)
    );
    let r = raw(tp.addr(), mid.as_bytes()).await;
    assert!(r.status == 431 || r.status == 400, "{}", r.status);
    r.assert_aws_ids();
    still_serving(&tp).await;
    // Far beyond any buffer: the HTTP layer itself refuses.
    let huge = format!(
        "GET /dev/ok HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "b".repeat(200_000)
    );
    let mut s = TcpStream::connect(tp.addr()).await.expect("connect");
    let _ = s.write_all(huge.as_bytes()).await;
    let r = tokio::time::timeout(WAIT, read_response(&mut s, false))
        .await
        .expect("answer or close in time");
    if let Some(r) = r {
        assert!(r.status == 431 || r.status == 400, "{}", r.status);
    }
    still_serving(&tp).await;
    // Many small headers adding up.
    let mut many = String::from("GET /dev/ok HTTP/1.1\r\nHost: x\r\n");
    for i in 0..400 {
        many.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(30)));
    }
    many.push_str("\r\n");
    let r = raw(tp.addr(), many.as_bytes()).await;
    assert!(r.status == 431 || r.status == 400, "{}", r.status);
    still_serving(&tp).await;
}

fn assert_413(r: &Resp) {
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text; charset=utf-8"));
    assert_eq!(r.text(), "HTTP content length exceeded 10485760 bytes.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_10mb_get_413() {
    let (_dir, up, tp) = serve_target(&[]).await;
    // Declared length over the limit: refused before the body is read.
    for path in ["/dev/ok", "/dev/http", "/dev/proxy"] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485761\r\n\r\n"
        );
        assert_413(&raw(tp.addr(), req.as_bytes()).await);
    }
    // Exactly at the limit is accepted (HTTP integration: the backend gets every byte).
    let at_limit = Bytes::from(vec![b'a'; 10 * 1024 * 1024]);
    let r = send(
        client()
            .post(tp.url("/dev/http"))
            .header("content-type", "application/octet-stream")
            .body(at_limit),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["bytes"], 10 * 1024 * 1024);

    // Chunked bodies (no declared length) that grow past the limit.
    for path in ["/dev/ok", "/dev/http", "/dev/proxy"] {
        let r = chunked_upload(&tp, path, 11 * 1024 * 1024).await;
        assert_413(&r);
        still_serving(&tp).await;
    }
    // The proxy forwarded at most the allowed bytes before giving up.
    assert!(
        up.state
            .upload_bytes
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 2 * 10 * 1024 * 1024 + 1024 * 1024
    );
}

/// Sends `total` bytes as a chunked body while reading the answer concurrently (the server may
/// answer before the upload ends).
async fn chunked_upload(tp: &Turnpike, path: &str, total: usize) -> Resp {
    let s = TcpStream::connect(tp.addr()).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let chunk = vec![b'z'; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let frame = format!("{:x}\r\n", chunk.len());
            if wr.write_all(frame.as_bytes()).await.is_err()
                || wr.write_all(&chunk).await.is_err()
                || wr.write_all(b"\r\n").await.is_err()
            {
                return;
            }
            sent += chunk.len();
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
        // Keep the write half open until the reader is done.
        tokio::time::sleep(WAIT).await;
        drop(wr);
    });
    // Read the response off the read half.
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let deadline = Instant::now() + WAIT;
    let resp = loop {
        let n = tokio::time::timeout(WAIT, rd.read(&mut tmp))
            .await
            .expect("response in time")
            .unwrap_or(0);
        buf.extend_from_slice(&tmp[..n]);
        if let Some(r) = parse_complete(&buf) {
            break r;
        }
        assert!(n > 0, "connection closed without a full response: {buf:?}");
        assert!(Instant::now() < deadline);
    };
    writer.abort();
    resp
}

/// Parses `buf` as a full response with a Content-Length body, if complete.
fn parse_complete(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = buf.get(end + 4..end + 4 + len)?;
    Some(Resp {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_while_others_are_served() {
    let (_dir, _up, tp) = serve_target(&["--header-timeout", "1"]).await;
    let tp = Arc::new(tp);
    let addr = tp.addr();
    let slow = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /dev/ok HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        let started = Instant::now();
        // Drip one byte at a time, never finishing the head; stop when the server hangs up.
        while started.elapsed() < WAIT {
            if s.write_all(b"a").await.is_err() {
                return true;
            }
            let mut b = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // An error response (408) before closing also counts as being cut off.
                Ok(Ok(_)) => return true,
                Err(_) => {}
            }
        }
        false
    });
    // Meanwhile other clients are served.
    for _ in 0..10 {
        still_serving(&tp).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slow.await.expect("slow client"),
        "the slowloris connection was never cut off"
    );
    still_serving(&tp).await;
}

/// Lambda authorizers that AWS would refuse are reported by `validate` (and `serve` does not
/// start), each at its own `x-amazon-apigateway-authorizer`.
#[test]
fn invalid_lambda_authorizers_are_reported() {
    let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:auth/invocations";
    let scheme = |kind: &str, extra: &str| {
        format!(
            "      type: apiKey\n      name: Authorization\n      in: header\n      x-amazon-apigateway-authtype: custom\n      x-amazon-apigateway-authorizer:\n        type: {kind}\n        authorizerUri: {uri}\n{extra}"
        )
    };
    let op = "      responses: {\"200\": {description: ok}}\n      x-amazon-apigateway-integration: {type: MOCK, requestTemplates: {application/json: '{\"statusCode\": 200}'}}\n";
    let definition = |schemes: &[(&str, String)]| {
        let mut t =
            String::from("openapi: 3.0.1\ninfo: {title: BadAuthorizers, version: \"1\"}\npaths:\n");
        for (i, (name, _)) in schemes.iter().enumerate() {
            t.push_str(&format!(
                "  /p{i}:\n    get:\n      security: [{{{name}: []}}]\n{op}"
            ));
        }
        t.push_str("components:\n  securitySchemes:\n");
        for (name, body) in schemes {
            t.push_str(&format!("    {name}:\n{body}"));
        }
        t
    };
    let dir = temp_dir();
    let cases = [
        (
            "deploy.yaml",
            vec![
                (
                    "cachedNoSource",
                    scheme("request", "        authorizerResultTtlInSeconds: 300\n"),
                ),
                (
                    "twoHeaders",
                    scheme(
                        "token",
                        "        identitySource: method.request.header.A, method.request.header.B\n",
                    ),
                ),
            ],
            vec![
                ("cachedNoSource", "identitySource is required"),
                ("twoHeaders", "must be one header"),
            ],
        ),
        (
            "regex.yaml",
            vec![(
                "badRegex",
                scheme(
                    "token",
                    "        identitySource: method.request.header.Authorization\n        identityValidationExpression: \"[a-z\"\n",
                ),
            )],
            vec![("badRegex", "identityValidationExpression")],
        ),
    ];
    for (file_name, schemes, expected) in cases {
        let file = write(dir.path(), file_name, &definition(&schemes));
        let name = file.display().to_string();
        let (status, stdout, stderr) = run_cli(&["validate", &name]);
        assert!(!status.success(), "validate accepted:\n{stdout}\n{stderr}");
        for (scheme, word) in expected {
            let pointer =
                format!("/components/securitySchemes/{scheme}/x-amazon-apigateway-authorizer");
            assert!(
                stderr.lines().any(|l| l.starts_with(&format!("{name}:"))
                    && !l.starts_with(&format!("{name}:1:1:"))
                    && l.contains(": error at ")
                    && l.contains(&pointer)
                    && l.contains(word)),
                "no positioned error for {scheme} ({word}) in:\n{stderr}"
            );
        }
        let (status, stdout, _) =
            run_cli(&["serve", &name, "--listen", "127.0.0.1:0", "--no-watch"]);
        assert!(!status.success() && !stdout.contains("turnpike listening"));
    }
}
