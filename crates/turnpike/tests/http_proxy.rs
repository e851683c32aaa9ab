//! HTTP_PROXY integrations (§6.4, §3.5): forwarding, header rules, remapping, stage variables,
//! pooled keep-alive, streaming both ways, timeouts, HTTP/2 clients.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use serde_json::json;

const API_ID: &str = "proxyapi01";

/// Serves a proxy API whose backend is named by the stage variable `backend`.
fn serve_proxy(up: &Upstream, timeout_ms: u64) -> (tempfile::TempDir, Turnpike) {
    let dir = temp_dir();
    let mut slow = http_proxy_op(
        "http://${stageVariables.backend}/{proxy}",
        json!({"integration.request.path.proxy": "method.request.path.proxy"}),
        path_params(&["proxy"]),
    );
    slow["x-amazon-apigateway-integration"]["timeoutInMillis"] = json!(timeout_ms);
    let def = openapi(
        "Proxy",
        json!({
            "/api/{proxy+}": {"x-amazon-apigateway-any-method": http_proxy_op(
                "http://${stageVariables.backend}/up/{proxy}",
                json!({
                    "integration.request.path.proxy": "method.request.path.proxy",
                    "integration.request.querystring.added": "'mapped'",
                    "integration.request.header.x-mapped": "'m'",
                    "integration.request.header.x-override": "'from-mapping'",
                    "integration.request.header.x-from-query": "method.request.querystring.x",
                }),
                json!([
                    {"name": "proxy", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "x", "in": "query", "schema": {"type": "string"}},
                ]),
            )},
            "/raw/{proxy+}": {"x-amazon-apigateway-any-method": http_proxy_op(
                "http://${stageVariables.backend}/{proxy}",
                json!({"integration.request.path.proxy": "method.request.path.proxy"}),
                path_params(&["proxy"]),
            )},
            "/staged": {"get": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP_PROXY",
                    "httpMethod": "POST",
                    "uri": "http://${stageVariables.backend}/${stageVariables.seg}/x?q=${stageVariables.qv}&missing=${stageVariables.nope}",
                },
            }},
            "/slow/{proxy+}": {"get": slow},
            "/dead": {"get": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP_PROXY",
                    "httpMethod": "GET",
                    "uri": format!("http://127.0.0.1:{}/", closed_port()),
                },
            }},
        }),
    );
    write_json(dir.path(), "api.json", &def);
    let vars = format!(
        "        variables:\n          backend: \"{}\"\n          seg: seg-value\n          qv: qv-value\n",
        up.addr
    );
    let file = project(dir.path(), "api.json", API_ID, "dev", &vars);
    // The single-threaded runtime (`--workers 1`), as benchmarked against one nginx worker.
    let tp = Turnpike::serve_with(&file, &["--workers", "1"]);
    (dir, tp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_path_query_headers_and_body() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);

    // Raw request so that exactly these headers are sent.
    let req = "GET /dev/api/a/b%20c/d?x=1&y=two%20words&x=2 HTTP/1.1\r\n\
        Host: 127.0.0.1\r\n\
        X-Client: c\r\n\
        X-Override: from-client\r\n\
        Accept: text/plain\r\n\
        Accept-Encoding: br\r\n\
        Via: p.example.net\r\n\
        Content-MD5: abc\r\n\
        Max-Forwards: 2\r\n\
        Proxy-Authenticate: Basic\r\n\
        Server: client-server\r\n\
        TE: deflate\r\n\
        Trailer: Expires\r\n\
        WWW-Authenticate: Basic xyz\r\n\
        Authorization: Bearer token\r\n\
        Connection: close\r\n\r\n";
    let r = raw(tp.addr(), req.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_aws_ids();
    assert_eq!(
        r.header("x-amzn-trace-id"),
        None,
        "no X-Amzn-Trace-Id on HTTP_PROXY responses"
    );
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/up/a/b%20c/d", "proxy path kept encoded");
    assert_eq!(
        seen.query.as_deref(),
        Some("x=1&y=two%20words&x=2&added=mapped"),
        "client query forwarded as sent, mapped parameter appended"
    );
    assert_eq!(seen.header("x-client"), Some("c"));
    assert_eq!(seen.header("accept"), Some("text/plain"));
    assert_eq!(seen.header("accept-encoding"), Some("br"));
    assert_eq!(seen.header("authorization"), Some("Bearer token"));
    let overrides: Vec<_> = seen
        .headers
        .iter()
        .filter(|(k, _)| k == "x-override")
        .collect();
    assert_eq!(
        overrides.len(),
        1,
        "a mapped header overwrites the client's"
    );
    assert_eq!(seen.header("x-override"), Some("from-mapping"));
    assert_eq!(seen.header("x-mapped"), Some("m"));
    assert_eq!(
        seen.header("x-from-query"),
        Some("2"),
        "single-value query mapping takes the last value"
    );
    for dropped in [
        "via",
        "content-md5",
        "max-forwards",
        "proxy-authenticate",
        "server",
        "te",
        "trailer",
        "www-authenticate",
        "connection",
    ] {
        assert_eq!(
            seen.header(dropped),
            None,
            "{dropped} must not be forwarded"
        );
    }
    assert_eq!(
        seen.header("host"),
        Some(up.addr.to_string().as_str()),
        "Host is the backend's"
    );
    assert_eq!(seen.header("x-amzn-apigateway-api-id"), Some(API_ID));
    let trace = seen
        .header("x-amzn-trace-id")
        .expect("X-Amzn-Trace-Id added");
    assert!(trace.starts_with("Root=1-"), "{trace}");
    // No client User-Agent: AWS's own.
    assert_eq!(
        seen.header("user-agent"),
        Some(format!("AmazonAPIGateway_{API_ID}").as_str())
    );

    // The client's method (ANY) and body, byte for byte; the client's User-Agent is kept.
    let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let r = send(
        client()
            .post(tp.url("/dev/api/upload-here"))
            .header("content-type", "application/octet-stream")
            .header("user-agent", "e2e/1.0")
            .body(body.clone()),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/up/upload-here");
    assert_eq!(seen.body.as_ref(), body.as_slice());
    assert_eq!(seen.header("user-agent"), Some("e2e/1.0"));
    assert_eq!(
        seen.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(seen.query.as_deref(), Some("added=mapped"));

    // `X-HTTP-Method-Override` picks the method (and is not passed on), a client's X-Ray trace
    // header is carried on, a SigV4 `Authorization` is not.
    let trace = "Root=1-3152b799-8954dae64eda91bc9a23a7e8;Parent=7fa8c0f79203be72;Sampled=1";
    let req = format!(
        "POST /dev/api/override HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         X-HTTP-Method-Override: put\r\nX-Amzn-Trace-Id: {trace}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=abc\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let r = raw(tp.addr(), req.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.header("x-http-method-override"), None);
    assert_eq!(seen.header("x-amzn-trace-id"), Some(trace));
    assert_eq!(seen.header("authorization"), None);
    // A trace header with only a root keeps it and gains a parent.
    let r = send(client().get(tp.url("/dev/api/rooted")).header(
        "x-amzn-trace-id",
        "Root=1-3152b799-8954dae64eda91bc9a23a7e8",
    ))
    .await;
    assert_eq!(r.status, 200);
    let seen = up
        .last()
        .header("x-amzn-trace-id")
        .unwrap_or_default()
        .to_string();
    assert!(
        seen.starts_with("Root=1-3152b799-8954dae64eda91bc9a23a7e8;Parent="),
        "{seen}"
    );

    // A backend answer without a content type gets AWS's default.
    let r = get(&tp.url("/dev/raw/untyped")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), "no type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_variables_build_the_uri() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);
    let r = get(&tp.url("/dev/staged?c=1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.method, "POST", "the integration's httpMethod is used");
    assert_eq!(seen.path, "/seg-value/x");
    assert_eq!(
        seen.query.as_deref(),
        Some("q=qv-value&missing=&c=1"),
        "undefined stage variables are empty; the client query is appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_status_and_headers_pass_through_with_remapping() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);

    for code in [200u16, 201, 302, 400, 404, 418, 500, 503] {
        let r = get(&tp.url(&format!("/dev/raw/status/{code}"))).await;
        assert_eq!(r.status, code);
        assert_eq!(
            r.json(),
            json!({"status_code": code, "message": ""}),
            "body passed through"
        );
        assert_eq!(r.header("x-amzn-ErrorType"), None, "not a gateway error");
        r.assert_aws_ids();
    }

    let q = "h=Server%3Aupstream%2F1.0&h=x-amzn-RequestId%3Aupstream-rid&h=Connection%3Akeep-alive&h=X-Custom%3Acv&h=Set-Cookie%3Aa%3D1&h=Set-Cookie%3Ab%3D2&h=Content-Encoding%3Aidentity";
    let r = get(&tp.url(&format!("/dev/raw/respond-headers?{q}"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ok": true}));
    assert_eq!(r.header("x-amzn-Remapped-Server"), Some("upstream/1.0"));
    assert!(r
        .header("x-amzn-Remapped-Date")
        .is_some_and(|d| d.ends_with("GMT")));
    assert_eq!(
        r.header("x-amzn-Remapped-Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(r.header("x-amzn-Remapped-Connection"), Some("keep-alive"));
    assert_eq!(
        r.header("x-amzn-Remapped-x-amzn-RequestId"),
        Some("upstream-rid")
    );
    r.assert_aws_ids();
    assert_ne!(r.header("x-amzn-RequestId"), Some("upstream-rid"));
    assert_eq!(r.header("server"), None, "the backend's Server is remapped");
    assert_eq!(r.header("X-Custom"), Some("cv"));
    assert_eq!(
        r.all("set-cookie"),
        vec!["a=1", "b=2"],
        "repeated headers kept"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_keep_alive_connections() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);
    let c = client();
    // Sequential requests reuse one upstream connection.
    for i in 0..30 {
        let r = send(c.get(tp.url(&format!("/dev/raw/seq/{i}")))).await;
        assert_eq!(r.status, 200);
    }
    let sequential = up.connections();
    assert!(
        sequential <= 2,
        "30 sequential requests opened {sequential} upstream connections"
    );
    // Concurrent requests (4 at a time) need at most a handful more.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = c.clone();
        let url = tp.url(&format!("/dev/raw/par/{w}"));
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let r = send(c.get(&url)).await;
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let total = up.connections();
    assert_eq!(up.requests().len(), 130);
    assert!(
        total <= sequential + 8,
        "130 requests opened {total} upstream connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_responses_without_buffering() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);
    let mut r = client()
        .get(tp.url("/dev/raw/chunks/3"))
        .send()
        .await
        .expect("response head");
    assert_eq!(r.status(), 200);
    // The first chunk arrives while the upstream is still holding back the rest.
    let first = tokio::time::timeout(WAIT, r.chunk())
        .await
        .expect("first chunk before the upstream finished")
        .expect("read")
        .expect("a chunk");
    assert_eq!(first.as_ref(), b"chunk-0\n");
    assert!(!up.state.chunks_done.load(Ordering::SeqCst));
    up.state.chunk_gate.add_permits(1);
    let mut rest = Vec::new();
    while let Some(c) = tokio::time::timeout(WAIT, r.chunk())
        .await
        .expect("rest in time")
        .expect("read")
    {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"chunk-1\nchunk-2\n");
    assert!(up.state.chunks_done.load(Ordering::SeqCst));

    // A big streamed response arrives complete and intact.
    let n = 9_000_000usize;
    let r = get(&tp.url(&format!("/dev/raw/big/{n}"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_uploads_to_the_upstream() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);
    let chunk = 256 * 1024;
    let chunks = 32; // 8 MiB, under the 10 MB limit
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let c = client();
    let url = tp.url("/dev/raw/upload");
    let request = tokio::spawn(async move {
        send(
            c.post(url)
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await
    });
    let data = |i: usize| Bytes::from(vec![(i % 256) as u8; chunk]);
    tx.send(Ok(data(0))).await.expect("send first chunk");
    // The upstream sees bytes while the client has not finished sending.
    let deadline = Instant::now() + WAIT;
    while up.state.upload_bytes.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upload was not streamed to the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 1..chunks {
        tx.send(Ok(data(i))).await.expect("send chunk");
    }
    drop(tx);
    let r = request.await.expect("request task");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut sum: u64 = 0;
    for i in 0..chunks {
        for _ in 0..chunk {
            sum = sum.wrapping_mul(31).wrapping_add((i % 256) as u64);
        }
    }
    assert_eq!(r.json(), json!({"bytes": chunk * chunks, "sum": sum}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_unreachable_upstream() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 250);
    let r = get(&tp.url("/dev/slow/sleep/20000")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), r#"{"message": "Endpoint request timed out"}"#);
    r.assert_aws_ids();

    let r = get(&tp.url("/dev/dead")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), r#"{"message": "Internal server error"}"#);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
    r.assert_aws_ids();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let up = Upstream::start().await;
    let (_dir, tp) = serve_proxy(&up, 29_000);
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .expect("client");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        let url = tp.url(&format!("/dev/api/h2/{i}?x=v"));
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .body(format!("body-{i}"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            Resp::from_reqwest(r).await
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200);
        r.assert_aws_ids();
    }
    let mut bodies: Vec<String> = up
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies.len(), 8);
    assert_eq!(bodies[0], "body-0");
    // Gateway errors over HTTP/2 too.
    let r = Resp::from_reqwest(c.get(tp.url("/dev/none")).send().await.expect("send")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), r#"{"message":"Missing Authentication Token"}"#);
    // AWS's default content type also on this path (hyper writes the response).
    let r = Resp::from_reqwest(
        c.get(tp.url("/dev/raw/untyped"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), "no type");
}

/// A backend that answers one request per connection and then closes it without saying so
/// (no `Connection: close`): every pooled connection Turnpike keeps goes stale, either before
/// it is picked again or while the next request is being sent. No client request may fail:
/// a request that did not go out is retried on a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_pooled_connections_are_replaced() {
    use tokio::io::AsyncWriteExt;

    let (addr, accepted, backend) = raw_backend(|mut s, n| async move {
        let mut got = Vec::new();
        if read_head(&mut s, &mut got).await.is_none() {
            return;
        }
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
            )
            .await;
        // Half the connections linger a moment (stale while idle in the pool), the others
        // close at once (stale by the time the next request is written).
        if n.is_multiple_of(2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(s);
    })
    .await;
    let (_dir, tp) = serve_raw_proxy(addr, &["--no-watch"]);
    let c = client();
    for i in 0..40 {
        let r = send(c.get(tp.url(&format!("/dev/seq/{i}")))).await;
        assert_eq!((r.status, r.text()), (200, "ok".to_string()), "request {i}");
        if i % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = c.clone();
        let url = tp.url(&format!("/dev/par/{w}"));
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let r = send(c.get(&url)).await;
                assert_eq!(
                    (r.status, r.text()),
                    (200, "ok".to_string()),
                    "worker {w} request {i}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    // One connection per request: the backend never served two on one connection.
    assert!(accepted.load(Ordering::SeqCst) >= 120);
    backend.abort();
}

/// Backend responses framed every way HTTP/1.1 allows, from a scripted raw-TCP backend:
/// chunked (with extensions and trailers), delimited by the connection's end, after 1xx interim
/// responses, HEAD and 204 without a body, and a response with conflicting lengths (a network
/// error to AWS: 504 INTEGRATION_FAILURE, spec §6.4).
/// Keep-alive connections are reused only where the framing allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_response_framing() {
    use tokio::io::AsyncWriteExt;

    let (addr, accepted, backend) = raw_backend(|mut s, _| async move {
        let mut got = Vec::new();
        // These requests have no body: one head after the other.
        while let Some(head) = read_head(&mut s, &mut got).await {
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let (reply, close): (&[u8], bool) = match path.as_str() {
                "/chunked" => (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                    false,
                ),
                "/until-close" => (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
                    true,
                ),
                "/interim" => (
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                    false,
                ),
                "/head" => (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n",
                    false,
                ),
                "/empty" => (b"HTTP/1.1 204 No Content\r\n\r\n", false),
                "/conflict" => (
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
                    true,
                ),
                "/closing" => (
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nclosed",
                    true,
                ),
                _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept", false),
            };
            if s.write_all(reply).await.is_err() || close {
                return;
            }
        }
    })
    .await;
    let (_dir, tp) = serve_raw_proxy(addr, &["--no-watch", "--workers", "1"]);
    let c = client();
    let r = send(c.get(tp.url("/dev/chunked"))).await;
    assert_eq!((r.status, r.text()), (200, "hello world".to_string()));
    assert!(
        r.header("x-trailer").is_none(),
        "trailers are not passed on"
    );
    let r = send(c.get(tp.url("/dev/until-close"))).await;
    assert_eq!((r.status, r.text()), (200, "until the end".to_string()));
    let r = send(c.get(tp.url("/dev/interim"))).await;
    assert_eq!((r.status, r.text()), (201, "ok".to_string()));
    assert!(r.header("link").is_none(), "interim headers are not merged");
    let r = send(c.head(tp.url("/dev/head"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1234"));
    let r = send(c.get(tp.url("/dev/empty"))).await;
    assert_eq!((r.status, r.text()), (204, String::new()));
    let r = send(c.get(tp.url("/dev/conflict"))).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json(), json!({"message": "Internal server error"}));
    let r = send(c.get(tp.url("/dev/closing"))).await;
    assert_eq!((r.status, r.text()), (200, "closed".to_string()));

    // Reuse: the kept-alive connection serves requests in turn; what ended by closing (until
    // the end, conflict, `Connection: close`) was not put back in the pool.
    let before = accepted.load(Ordering::SeqCst);
    for i in 0..5 {
        let r = send(c.get(tp.url(&format!("/dev/kept/{i}")))).await;
        assert_eq!((r.status, r.text()), (200, "kept".to_string()));
        let r = send(c.head(tp.url("/dev/head"))).await;
        assert_eq!(r.status, 200);
        let r = send(c.get(tp.url("/dev/chunked"))).await;
        assert_eq!(r.text(), "hello world");
    }
    let after = accepted.load(Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "15 requests after the closing ones took {} new connections",
        after - before
    );
    backend.abort();
}

/// Serves `/{proxy+}` as an HTTP_PROXY to `backend`, stage `dev`.
fn serve_raw_proxy(backend: std::net::SocketAddr, args: &[&str]) -> (tempfile::TempDir, Turnpike) {
    let dir = temp_dir();
    let def = openapi(
        "Raw",
        json!({"/{proxy+}": {"x-amazon-apigateway-any-method": http_proxy_op(
            &format!("http://{backend}/{{proxy}}"),
            json!({"integration.request.path.proxy": "method.request.path.proxy"}),
            path_params(&["proxy"]),
        )}}),
    );
    write_json(dir.path(), "api.json", &def);
    let file = project(dir.path(), "api.json", API_ID, "dev", "");
    let tp = Turnpike::serve_with(&file, args);
    (dir, tp)
}
