//! The client side of the listener: HTTP/1.1 keep-alive, pipelining, requests that arrive in
//! pieces, and the hand-over from the fast path (`server/http1.rs`) to hyper for everything it
//! does not take (`Expect`, chunked uploads, HTTP/1.0, malformed heads). Which of the two
//! served a request must not show on the wire.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API_ID: &str = "connsapi01";

/// A backend that reads each request with its `Content-Length` body and answers by path.
async fn backend() -> std::net::SocketAddr {
    let (addr, _, _task) = raw_backend(|mut s, _| async move {
        let mut got = Vec::new();
        while let Some(head) = read_head(&mut s, &mut got).await {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut buf = [0u8; 4096];
            while got.len() < len {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let body: Vec<u8> = got.drain(..len).collect();
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let reply: Vec<u8> = match path.as_str() {
                "/echo" => [
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                    &body,
                ]
                .concat(),
                "/chunked" => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(),
                "/empty" => b"HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\n".to_vec(),
                "/status" => b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\ntea".to_vec(),
                // Every header HTTP_PROXY renames or drops, in mixed case.
                "/remapped" => b"HTTP/1.1 200 OK\r\nServer: up/1\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nX-Amzn-RequestId: up-id\r\nVia: 1.1 hop\r\nX-Custom-Header: Kept As Sent\r\nX-Amz-Apigw-Id: theirs\r\nConnection: keep-alive\r\nCONTENT-LENGTH: 2\r\n\r\nok".to_vec(),
                _ => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept".to_vec(),
            };
            if s.write_all(&reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    addr
}

/// `/{proxy+}` proxies to `backend`; `/mock` is a MOCK method; stage `dev`.
fn serve(backend: std::net::SocketAddr) -> (tempfile::TempDir, Turnpike) {
    let dir = temp_dir();
    let def = openapi(
        "Conns",
        json!({
            "/{proxy+}": {"x-amazon-apigateway-any-method": http_proxy_op(
                &format!("http://{backend}/{{proxy}}"),
                json!({"integration.request.path.proxy": "method.request.path.proxy"}),
                path_params(&["proxy"]),
            )},
            "/mock": {"get": mock_op(200, "{\"ok\":true}")},
            // A 1xx cannot be a final response: hyper answers 500, and so must the fast path.
            "/early": {"get": mock_op(103, "early")},
        }),
    );
    write_json(dir.path(), "api.json", &def);
    let file = project(dir.path(), "api.json", API_ID, "dev", "");
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--workers", "1"]);
    (dir, tp)
}

/// One response as it came on the wire: the head's lines (interim responses skipped) and the
/// body, de-chunked. `None` when the connection closed first.
async fn read_raw(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Vec<String>, Vec<u8>)> {
    async fn more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }
    let lines = loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            more(s, buf).await?;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        if !head.starts_with("HTTP/1.1 1") {
            break head.split("\r\n").map(str::to_string).collect::<Vec<_>>();
        }
    };
    let header = |name: &str| {
        lines.iter().find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        while buf.len() < len {
            more(s, buf).await?;
        }
        body = buf.drain(..len).collect();
    } else if header("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                more(s, buf).await?;
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buf[..line_end])
                    .split(';')
                    .next()?,
                16,
            )
            .ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                more(s, buf).await?;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    } else if !lines[0].contains(" 204 ") && !lines[0].contains(" 304 ") {
        while more(s, buf).await.is_some() {}
        body = std::mem::take(buf);
    }
    Some((lines, body))
}

/// The head with the values that differ per request masked.
fn masked(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.split_once(": ") {
            Some((k, _))
                if [
                    "date",
                    "x-amzn-requestid",
                    "x-amz-apigw-id",
                    "x-amzn-trace-id",
                ]
                .contains(&k.to_ascii_lowercase().as_str()) =>
            {
                format!("{k}: *")
            }
            _ => l.clone(),
        })
        .collect()
}

async fn next_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (Vec<String>, Vec<u8>) {
    tokio::time::timeout(WAIT, read_raw(s, buf))
        .await
        .expect("in time")
        .expect("a response")
}

async fn exchange(addr: std::net::SocketAddr, request: &str) -> (Vec<String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    next_response(&mut s, &mut Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_and_hyper_answer_alike() {
    let (_dir, tp) = serve(backend().await);
    let cases = [
        ("GET", "/dev/mock", ""),
        ("POST", "/dev/echo", "some body"),
        ("GET", "/dev/chunked", ""),
        ("GET", "/dev/empty", ""),
        ("GET", "/dev/status", ""),
        ("GET", "/dev/remapped", ""),
        ("DELETE", "/dev/kept", ""),
        ("GET", "/nostage/x", ""),
        ("PATCH", "/dev/mock", ""),
        ("GET", "/dev/early", ""),
    ];
    for (method, path, body) in cases {
        let plain = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // `Expect` sends the request to hyper (which answers 100 Continue first, skipped).
        let handed = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (fast_head, fast_body) = exchange(tp.addr(), &plain).await;
        let (hyper_head, hyper_body) = exchange(tp.addr(), &handed).await;
        assert_eq!(
            masked(&fast_head),
            masked(&hyper_head),
            "{method} {path}: heads differ"
        );
        assert_eq!(fast_body, hyper_body, "{method} {path}: bodies differ");
        assert!(
            fast_head.iter().any(|l| l.starts_with("date: ")),
            "{method} {path}: no date"
        );
    }
    // The cases answer what they should (so the comparison above compares something).
    let (head, body) = exchange(
        tp.addr(),
        "POST /dev/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert_eq!(
        (head[0].as_str(), body.as_slice()),
        ("HTTP/1.1 200 OK", &b"abc"[..])
    );
    let (head, body) = exchange(tp.addr(), "GET /dev/chunked HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        head.contains(&"transfer-encoding: chunked".to_string()),
        "{head:?}"
    );
    assert_eq!(body, b"hello world");
    let (head, _) = exchange(tp.addr(), "GET /dev/status HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 418 I'm a teapot");
    assert_eq!(
        head.iter().filter(|l| l.starts_with("set-cookie")).count(),
        2
    );
    let (head, body) = exchange(tp.addr(), "GET /dev/remapped HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(body, b"ok");
    let lines: Vec<&str> = head.iter().map(String::as_str).collect();
    assert_eq!(
        lines[..8],
        [
            "HTTP/1.1 200 OK",
            "x-amzn-remapped-server: up/1",
            "x-amzn-remapped-date: Thu, 01 Jan 2026 00:00:00 GMT",
            "x-amzn-remapped-x-amzn-requestid: up-id",
            "x-custom-header: Kept As Sent",
            "x-amzn-remapped-connection: keep-alive",
            "content-length: 2",
            "x-amzn-remapped-content-length: 2",
        ],
        "{head:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("via")), "{head:?}");
    // The gateway's own id replaces a backend's, as it replaces any other of that name.
    let ids: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("x-amz-apigw-id"))
        .collect();
    assert_eq!(ids.len(), 1, "{head:?}");
    assert_ne!(*ids[0], "x-amz-apigw-id: theirs");
    let (head, _) = exchange(tp.addr(), "GET /dev/early HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 500 Internal Server Error");
    let (head, body) = exchange(tp.addr(), "GET /dev/empty HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 204 No Content");
    assert!(body.is_empty());
    assert!(
        !head.iter().any(|l| l.starts_with("content-length")),
        "{head:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_split_and_handed_over_requests_on_one_connection() {
    let (_dir, tp) = serve(backend().await);
    let mut s = TcpStream::connect(tp.addr()).await.expect("connect");
    let mut buf = Vec::new();

    // Two requests in one write: two responses, in order.
    s.write_all(
        b"GET /dev/kept HTTP/1.1\r\nHost: x\r\n\r\nPOST /dev/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\npipelined",
    )
    .await
    .expect("write");
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"kept");
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"pipelined");

    // A head that arrives in pieces, then a body that arrives after its head.
    for piece in [
        &b"GET /dev/mo"[..],
        b"ck HTTP/1.1\r\nHo",
        b"st: x\r\n",
        b"\r\n",
    ] {
        s.write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"{\"ok\":true}");
    s.write_all(b"PUT /dev/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"later").await.expect("write");
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"later");

    // `Expect: 100-continue`: hyper takes the connection over, and serves what follows on it.
    s.write_all(
        b"POST /dev/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .await
    .expect("write");
    let mut interim = vec![0u8; 25];
    s.read_exact(&mut interim).await.expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"sent").await.expect("write");
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"sent");
    s.write_all(b"GET /dev/kept HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = next_response(&mut s, &mut buf).await;
    assert_eq!(
        (head[0].as_str(), body.as_slice()),
        ("HTTP/1.1 200 OK", &b"kept"[..])
    );

    // A chunked upload (hyper's) on a fresh connection, then a plain request after it.
    let mut s = TcpStream::connect(tp.addr()).await.expect("connect");
    let mut buf = Vec::new();
    s.write_all(
        b"POST /dev/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /dev/mock HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .expect("write");
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"abcde");
    assert_eq!(next_response(&mut s, &mut buf).await.1, b"{\"ok\":true}");

    // `Connection: close`: the answer, then the server closes.
    let mut s = TcpStream::connect(tp.addr()).await.expect("connect");
    let mut buf = Vec::new();
    s.write_all(b"GET /dev/kept HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = next_response(&mut s, &mut buf).await;
    assert_eq!(body, b"kept");
    assert!(
        !head.iter().any(|l| l == "connection: keep-alive"),
        "{head:?}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0, "nothing after the response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_and_malformed_requests_get_hypers_answers() {
    let (_dir, tp) = serve(backend().await);
    // HTTP/1.0: served, and the connection closes after it.
    let (head, body) = exchange(tp.addr(), "GET /dev/kept HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        (head[0].as_str(), body.as_slice()),
        ("HTTP/1.0 200 OK", &b"kept"[..])
    );
    // A target httparse reads but `http` refuses, and a broken request line: 400.
    for bad in [
        "GET /dev/a<b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /dev/kept HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let (head, _) = exchange(tp.addr(), bad).await;
        assert_eq!(head[0], "HTTP/1.1 400 Bad Request", "{bad}");
    }
    // A head over 64 KB: 431.
    let big = format!(
        "GET /dev/kept HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(70 * 1024)
    );
    let mut s = TcpStream::connect(tp.addr()).await.expect("connect");
    let _ = s.write_all(big.as_bytes()).await;
    let (head, _) = next_response(&mut s, &mut Vec::new()).await;
    assert_eq!(head[0], "HTTP/1.1 431 Request Header Fields Too Large");
}
