//! WebSocket APIs end to end: the real `turnpike` binary, real WebSocket clients
//! (tokio-tungstenite here, Python's `websockets` in the cross-check), a real HTTP backend.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn ws_project(dir: &Path, apis: Value) -> PathBuf {
    write_json(dir, "turnpike.json", &json!({ "websocketApis": apis }))
}

/// A MOCK integration answering `status`; two-way routes send `response` back.
pub fn mock(status: u16, response: &str) -> Value {
    json!({
        "integrationType": "MOCK",
        "requestTemplates": {"$default": format!("{{\"statusCode\": {status}}}")},
        "templateSelectionExpression": "\\$default",
        "integrationResponses": {"$default": {"responseTemplates": {"$default": response}}},
    })
}

/// A two-way route whose MOCK integration answers with the selected route key.
pub fn echo_route() -> Value {
    json!({
        "integration": mock(200, r#"{"route":"$context.routeKey","eventType":"$context.eventType"}"#),
        "routeResponseSelectionExpression": "$default",
        "routeResponses": {"$default": {}},
    })
}

pub fn ws_url(tp: &Turnpike, api: &str, stage: &str) -> String {
    format!("ws://127.0.0.1:{}/_aws/execute-api/{api}/{stage}", tp.port)
}

pub async fn connect(url: &str) -> Result<Client, WsError> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("user-agent", "turnpike-e2e/1".parse().expect("header"));
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect timed out")?;
    Ok(ws)
}

/// The HTTP status a rejected handshake answered with.
pub async fn rejected_status(url: &str) -> u16 {
    match connect(url).await {
        Err(WsError::Http(r)) => r.status().as_u16(),
        Ok(_) => panic!("the handshake was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// The next text frame (skipping pings/pongs).
pub async fn next_text(ws: &mut Client) -> String {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time")
            .expect("stream ended")
            .expect("read error");
        match m {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub async fn next_json(ws: &mut Client) -> Value {
    let t = next_text(ws).await;
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
}

/// Reads until the server closes; returns the close code and reason it sent.
pub async fn close_code(ws: &mut Client) -> (u16, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("connection failed before a close frame: {e}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

/// `$disconnect` as an HTTP integration recording the close to the backend's `/disconnect`.
pub fn disconnect_route(backend: &str) -> Value {
    json!({"integration": {
        "integrationType": "HTTP",
        "integrationUri": format!("{backend}/disconnect"),
        "integrationMethod": "POST",
        "templateSelectionExpression": "\\$default",
        "requestTemplates": {"$default": r#"{"connectionId":"$context.connectionId","eventType":"$context.eventType","code":"$context.disconnectStatusCode","reason":"$context.disconnectReason"}"#},
    }})
}

/// Waits for the backend to record `$disconnect` for `connection_id`.
pub async fn wait_disconnect(up: &Upstream, connection_id: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        for r in up.requests() {
            if r.path == "/disconnect" {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if v["connectionId"] == connection_id {
                    return v;
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no $disconnect for {connection_id}; recorded: {:?}",
            up.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The connection id, learnt through a two-way `whoami` route.
pub async fn whoami(ws: &mut Client) -> String {
    ws.send(Message::text(r#"{"action":"whoami"}"#))
        .await
        .expect("send");
    let v = next_json(ws).await;
    v["connectionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no connectionId in {v}"))
        .to_string()
}

pub fn whoami_route() -> Value {
    json!({
        "integration": mock(200, r#"{"connectionId":"$context.connectionId","domainName":"$context.domainName","stage":"$context.stage"}"#),
        "routeResponseSelectionExpression": "$default",
        "routeResponses": {"$default": {}},
    })
}

/// One API with the routes most tests need.
fn lifecycle_api(backend: &str) -> Value {
    json!({
        "name": "lifecycle",
        "id": "wslifecyc1",
        "routeSelectionExpression": "$request.body.action",
        "routes": {
            "$connect": {"integration": mock(200, "")},
            "$disconnect": disconnect_route(backend),
            "$default": echo_route(),
            "whoami": whoami_route(),
            "join": echo_route(),
            "oneway": {"integration": mock(200, "never sent")},
        },
        "stages": [{"name": "prod"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_selection_non_json_and_route_responses() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    let tp = Turnpike::serve(&file);
    let mut ws = connect(&ws_url(&tp, "wslifecyc1", "prod"))
        .await
        .expect("connect");
    for (msg, route) in [
        (r#"{"action":"join"}"#, "join"),
        (r#"{"action":"leave"}"#, "$default"),
        (r#"{"service":"chat"}"#, "$default"),
        ("hello world", "$default"),
        (r#"["not", "an", "object"]"#, "$default"),
        (r#"{"action":"$connect"}"#, "$default"),
    ] {
        ws.send(Message::text(msg)).await.expect("send");
        let v = next_json(&mut ws).await;
        assert_eq!(v["route"], route, "message {msg}");
        assert_eq!(v["eventType"], "MESSAGE");
    }
    // A one-way route sends nothing back: the next frame is the reply of the following message.
    ws.send(Message::text(r#"{"action":"oneway"}"#))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"action":"join","n":2}"#))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["route"], "join");
    // Pings are answered.
    ws.send(Message::Ping(b"p1".to_vec().into()))
        .await
        .expect("ping");
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("pong")
            .expect("open")
            .expect("ok");
        if let Message::Pong(p) = m {
            assert_eq!(&p[..], b"p1");
            break;
        }
    }
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_default_route_sends_forbidden_frame() {
    let dir = temp_dir();
    let file = ws_project(
        dir.path(),
        json!([{
            "name": "nodefault", "id": "wsnodefau1",
            "routeSelectionExpression": "$request.body.action",
            "routes": {"$connect": {"integration": mock(200, "")}, "sendmessage": echo_route()},
            "stages": [{"name": "prod"}],
        }]),
    );
    let tp = Turnpike::serve(&file);
    let mut ws = connect(&ws_url(&tp, "wsnodefau1", "prod"))
        .await
        .expect("connect");
    ws.send(Message::text(
        r#"{"message": "sendmessage", "data": "hello"}"#,
    ))
    .await
    .expect("send");
    let v = next_json(&mut ws).await;
    assert_eq!(v["message"], "Forbidden");
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["message", "connectionId", "requestId"]);
    assert!(v["connectionId"]
        .as_str()
        .is_some_and(|s| s.ends_with('=') && s.len() == 16));
    // The connection stays open.
    ws.send(Message::text(r#"{"action":"sendmessage"}"#))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["route"], "sendmessage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rejections_and_subprotocol() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let api = |name: &str, id: &str, connect: Value| {
        json!({
            "name": name, "id": id, "routeSelectionExpression": "$request.body.action",
            "routes": {"$connect": {"integration": connect}, "$default": echo_route()},
            "stages": [{"name": "prod"}],
        })
    };
    let file = ws_project(
        dir.path(),
        json!([
            api("mock403", "wsmockrej1", mock(403, "")),
            api(
                "http401",
                "wshttprej1",
                json!({"integrationType": "HTTP_PROXY", "integrationMethod": "GET", "integrationUri": format!("{}/status/401", up.base())})
            ),
            api(
                "proto",
                "wsprotoco1",
                json!({"integrationType": "HTTP_PROXY", "integrationMethod": "GET", "integrationUri": format!("{}/respond-headers?h=Sec-WebSocket-Protocol:myprotocol", up.base())})
            ),
            api(
                "down",
                "wsbackdow1",
                json!({"integrationType": "HTTP_PROXY", "integrationMethod": "GET", "integrationUri": format!("http://127.0.0.1:{}/", closed_port())})
            ),
        ]),
    );
    let tp = Turnpike::serve(&file);
    assert_eq!(
        rejected_status(&ws_url(&tp, "wsmockrej1", "prod")).await,
        403
    );
    assert_eq!(
        rejected_status(&ws_url(&tp, "wshttprej1", "prod")).await,
        401
    );
    assert_eq!(
        rejected_status(&ws_url(&tp, "wsbackdow1", "prod")).await,
        500
    );
    // Unknown stage.
    assert_eq!(
        rejected_status(&ws_url(&tp, "wsmockrej1", "nostage")).await,
        403
    );
    // $connect saw the upgrade request's headers and query string.
    let mut req = format!("{}?token=abc", ws_url(&tp, "wsprotoco1", "prod"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "chat1, myprotocol".parse().expect("h"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    assert_eq!(resp.status().as_u16(), 101);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("myprotocol")
    );
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.header("sec-websocket-key"),
        None,
        "handshake headers are not forwarded"
    );
    ws.send(Message::text("hi")).await.expect("send");
    assert_eq!(next_json(&mut ws).await["route"], "$default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_integrations_map_requests_and_responses() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(
        dir.path(),
        json!([{
            "name": "httpints", "id": "wshttpint1",
            "routeSelectionExpression": "$request.body.action",
            "routes": {
                "mapped": {
                    "integration": {
                        "integrationType": "HTTP",
                        "integrationUri": "http://${stageVariables.backend}/mapped",
                        "requestParameters": {
                            "integration.request.header.X-Conn": "context.connectionId",
                            "integration.request.header.X-Item": "route.request.body.item",
                            "integration.request.header.X-Fixed": "'fixed'",
                        },
                        "templateSelectionExpression": "${request.body.kind}",
                        "requestTemplates": {
                            "a": "{\"template\":\"a\",\"item\":\"$input.path('$.item')\",\"stage\":\"$context.stage\"}",
                            "$default": "{\"template\":\"default\"}",
                        },
                        "integrationResponses": {
                            "/2\\d\\d/": {"responseTemplates": {"$default": "{\"ok\":true,\"backendPath\":$input.json('$.path'),\"sent\":$input.json('$.body')}"}},
                            "$default": {"responseTemplates": {"$default": "{\"ok\":false}"}},
                        },
                    },
                    "routeResponseSelectionExpression": "$default",
                    "routeResponses": {"$default": {}},
                },
                "failing": {
                    "integration": {
                        "integrationType": "HTTP",
                        "integrationUri": format!("{}/status/503", up.base()),
                        "integrationResponses": {
                            "/2\\d\\d/": {"responseTemplates": {"$default": "{\"ok\":true}"}},
                            "$default": {"responseTemplates": {"$default": "{\"ok\":false,\"status\":\"$context.routeKey\"}"}},
                        },
                    },
                    "routeResponseSelectionExpression": "$default",
                    "routeResponses": {"$default": {}},
                },
                "proxied": {
                    "integration": {"integrationType": "HTTP_PROXY", "integrationUri": format!("{}/proxied", up.base()), "integrationMethod": "PUT"},
                    "routeResponseSelectionExpression": "$default",
                    "routeResponses": {"$default": {}},
                },
                "broken": {
                    "integration": {"integrationType": "HTTP_PROXY", "integrationUri": format!("http://127.0.0.1:{}/", closed_port())},
                },
            },
            "stages": [{"name": "prod", "variables": {"backend": up.addr.to_string()}}],
        }]),
    );
    let tp = Turnpike::serve(&file);
    let mut ws = connect(&ws_url(&tp, "wshttpint1", "prod"))
        .await
        .expect("connect");

    ws.send(Message::text(
        r#"{"action":"mapped","kind":"a","item":"book"}"#,
    ))
    .await
    .expect("send");
    let v = next_json(&mut ws).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["backendPath"], "/mapped");
    let sent: Value = match &v["sent"] {
        Value::String(s) => serde_json::from_str(s).expect("json"),
        other => other.clone(),
    };
    assert_eq!(
        sent,
        json!({"template": "a", "item": "book", "stage": "prod"})
    );
    let r = up.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("x-item"), Some("book"));
    assert_eq!(r.header("x-fixed"), Some("fixed"));
    assert!(r.header("x-conn").is_some_and(|c| c.ends_with('=')));

    ws.send(Message::text(r#"{"action":"mapped","kind":"zzz"}"#))
        .await
        .expect("send");
    next_json(&mut ws).await;
    let body: Value = serde_json::from_slice(&up.last().body).expect("json");
    assert_eq!(body, json!({"template": "default"}));

    ws.send(Message::text(r#"{"action":"failing"}"#))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"ok": false, "status": "failing"})
    );

    ws.send(Message::text(r#"{"action":"proxied","raw":1}"#))
        .await
        .expect("send");
    let v = next_json(&mut ws).await;
    let r = up.last();
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/proxied");
    assert_eq!(&r.body[..], br#"{"action":"proxied","raw":1}"#);
    assert!(v.is_object());

    ws.send(Message::text(r#"{"action":"broken"}"#))
        .await
        .expect("send");
    let v = next_json(&mut ws).await;
    assert_eq!(v["message"], "Internal server error");
    assert!(v["connectionId"].is_string() && v["requestId"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_runs_after_every_kind_of_close() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--ws-idle-timeout", "2"]);
    let url = ws_url(&tp, "wslifecyc1", "prod");
    let http = client();

    // Client close with a status code.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("close");
    let d = wait_disconnect(&up, &id).await;
    assert_eq!(
        (
            d["eventType"].as_str(),
            d["code"].as_str(),
            d["reason"].as_str()
        ),
        (Some("DISCONNECT"), Some("1000"), Some("bye"))
    );

    // Client close without a status.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    ws.close(None).await.expect("close");
    let d = wait_disconnect(&up, &id).await;
    assert_eq!(d["code"], "1005");
    assert_eq!(d["reason"], "Client-side close frame status not set");

    // TCP dropped without a close frame.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    drop(ws);
    let d = wait_disconnect(&up, &id).await;
    assert_eq!(d["code"], "1006");

    // Server side: DELETE @connections.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    let r = send(http.delete(format!(
        "http://127.0.0.1:{}/prod/@connections/{id}",
        tp.port
    )))
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(close_code(&mut ws).await.0, 1000);
    wait_disconnect(&up, &id).await;
    let r = send(http.get(format!(
        "http://127.0.0.1:{}/prod/@connections/{id}",
        tp.port
    )))
    .await;
    assert_eq!(r.status, 410);

    // Idle timeout (2 s here): the server closes with 1001.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    assert_eq!(close_code(&mut ws).await.0, 1001);
    let d = wait_disconnect(&up, &id).await;
    assert_eq!(d["code"], "1001");

    // Error: a binary frame (unsupported) closes with 1003.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await.0, 1003);
    assert_eq!(wait_disconnect(&up, &id).await["code"], "1003");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_and_message_size_limits() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    let tp = Turnpike::serve(&file);
    let url = ws_url(&tp, "wslifecyc1", "prod");

    // A 32 KB frame is fine; one byte more closes with 1009.
    let mut ws = connect(&url).await.expect("connect");
    let ok = format!(
        "{{\"action\":\"join\",\"pad\":\"{}\"}}",
        "x".repeat(32 * 1024 - 26)
    );
    assert_eq!(ok.len(), 32 * 1024);
    ws.send(Message::text(ok)).await.expect("send");
    assert_eq!(next_json(&mut ws).await["route"], "join");
    let id = whoami(&mut ws).await;
    ws.send(Message::text("y".repeat(32 * 1024 + 1)))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await.0, 1009);
    assert_eq!(wait_disconnect(&up, &id).await["code"], "1009");

    // A message of 128 KB in 32 KB fragments is fine; more closes with 1009.
    for (total, accepted) in [(128 * 1024, true), (128 * 1024 + 1, false)] {
        let mut ws = connect(&url).await.expect("connect");
        let mut sent = 0;
        let mut first = true;
        while sent < total {
            let n = (total - sent).min(32 * 1024);
            let op = if first {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            first = false;
            sent += n;
            let frame = Frame::message(vec![b'z'; n], op, sent == total);
            ws.send(Message::Frame(frame)).await.expect("send fragment");
        }
        if accepted {
            assert_eq!(next_json(&mut ws).await["route"], "$default");
        } else {
            assert_eq!(close_code(&mut ws).await.0, 1009);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_api() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    let tp = Turnpike::serve(&file);
    let mut ws = connect(&ws_url(&tp, "wslifecyc1", "prod"))
        .await
        .expect("connect");
    let id = whoami(&mut ws).await;
    let http = client();
    let base = format!("http://127.0.0.1:{}", tp.port);

    // POST sends one text frame with the raw body.
    let r = send(
        http.post(format!("{base}/prod/@connections/{id}"))
            .body("hello there"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(next_text(&mut ws).await, "hello there");

    // Percent-encoded forms, host-based and path-based URLs.
    let enc = id.replace('=', "%3D");
    for (url, host) in [
        (format!("{base}/prod/%40connections/{enc}"), None),
        (
            format!("{base}/_aws/execute-api/wslifecyc1/prod/@connections/{id}"),
            None,
        ),
        (
            format!("{base}/prod/@connections/{enc}"),
            Some(format!("wslifecyc1.execute-api.localhost:{}", tp.port)),
        ),
    ] {
        let mut rb = http.post(&url).body(url.clone());
        if let Some(h) = host {
            rb = rb.header("host", h);
        }
        let r = send(rb).await;
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(next_text(&mut ws).await, url);
    }

    // GET describes the connection.
    let r = send(http.get(format!("{base}/prod/@connections/{id}"))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let iso = regex_lite(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$");
    assert!(iso(v["connectedAt"].as_str().unwrap_or_default()), "{v}");
    assert!(iso(v["lastActiveAt"].as_str().unwrap_or_default()), "{v}");
    assert_eq!(v["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(v["identity"]["userAgent"], "turnpike-e2e/1");

    // Too large, unknown, wrong stage / API.
    let r = send(
        http.post(format!("{base}/prod/@connections/{id}"))
            .body("a".repeat(131_073)),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("PayloadTooLargeException")
    );
    assert!(r.json()["message"].is_string());
    let r = send(
        http.post(format!("{base}/prod/@connections/AAAAAAAAAAAAAAA="))
            .body("x"),
    )
    .await;
    assert_eq!(r.status, 410);
    assert_eq!(r.header("x-amzn-errortype"), Some("GoneException"));
    let r = send(
        http.post(format!("{base}/other/@connections/{id}"))
            .body("x"),
    )
    .await;
    assert_eq!(r.status, 403);
    // A 128 KB post is delivered whole.
    let big = "b".repeat(128 * 1024);
    let r = send(
        http.post(format!("{base}/prod/@connections/{id}"))
            .body(big.clone()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(next_text(&mut ws).await.len(), big.len());
}

/// A tiny anchored matcher for the ISO-8601 shape (digits and literals only).
fn regex_lite(pattern: &'static str) -> impl Fn(&str) -> bool {
    move |s: &str| {
        let p = pattern.trim_start_matches('^').trim_end_matches('$');
        let mut toks: Vec<(char, usize)> = Vec::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            let tok = if c == '\\' {
                match it.next() {
                    Some('d') => 'D',
                    Some(o) => o,
                    None => break,
                }
            } else {
                c
            };
            let mut n = 1;
            if it.peek() == Some(&'{') {
                it.next();
                let num: String = it.by_ref().take_while(|c| *c != '}').collect();
                n = num.parse().unwrap_or(1);
            }
            toks.push((tok, n));
        }
        let mut chars = s.chars();
        for (t, n) in toks {
            for _ in 0..n {
                match chars.next() {
                    Some(c) if (t == 'D' && c.is_ascii_digit()) || (t != 'D' && c == t) => {}
                    _ => return false,
                }
            }
        }
        chars.next().is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_closed_and_the_server_keeps_serving() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    // Short timers so the half-open connections below are reaped within the test.
    let tp = Turnpike::serve_with(
        &file,
        &[
            "--no-watch",
            "--header-timeout",
            "1",
            "--ws-idle-timeout",
            "3",
        ],
    );
    let url = ws_url(&tp, "wslifecyc1", "prod");

    // Invalid UTF-8 in a text frame: 1007.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    ws.send(Message::Frame(Frame::message(
        vec![0xff, 0xfe, 0xfd],
        OpCode::Data(Data::Text),
        true,
    )))
    .await
    .expect("send");
    assert_eq!(close_code(&mut ws).await.0, 1007);
    assert_eq!(wait_disconnect(&up, &id).await["code"], "1007");

    // A flood of messages: every one is answered, in some order, and nothing is lost.
    let mut ws = connect(&url).await.expect("connect");
    let n = 500;
    for i in 0..n {
        ws.send(Message::text(format!(r#"{{"action":"join","i":{i}}}"#)))
            .await
            .expect("send");
    }
    for _ in 0..n {
        assert_eq!(next_json(&mut ws).await["route"], "join");
    }

    // A frame header announcing a huge payload: closed with 1009 before anything is buffered.
    let mut raw = TcpStream::connect(tp.addr()).await.expect("tcp");
    let handshake = "GET /_aws/execute-api/wslifecyc1/prod HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(handshake.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = raw.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    // FIN+text, masked, 64-bit length 2^40.
    let mut frame = vec![0x81u8, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    raw.write_all(&frame).await.expect("write");
    let (got, _) = read_until_closed(&mut raw).await;
    assert!(
        got.len() >= 4 && got[0] == 0x88,
        "expected a close frame, got {got:?}"
    );
    assert_eq!(u16::from_be_bytes([got[2], got[3]]), 1009);

    // Half-open: a handshake never finished, and a connection that sends half a frame and
    // stalls. Neither blocks anyone else.
    let mut stalled = TcpStream::connect(tp.addr()).await.expect("tcp");
    stalled
        .write_all(
            b"GET /_aws/execute-api/wslifecyc1/prod HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
        )
        .await
        .expect("write");
    let mut half = TcpStream::connect(tp.addr()).await.expect("tcp");
    half.write_all(handshake.as_bytes()).await.expect("write");
    let _ = half.read(&mut buf).await;
    half.write_all(&[0x81, 0x85, 1, 2]).await.expect("write");

    // Not an upgrade at a WebSocket API.
    let r = get(&format!(
        "http://127.0.0.1:{}/_aws/execute-api/wslifecyc1/prod",
        tp.port
    ))
    .await;
    assert_eq!(r.status, 426);

    let mut ws = connect(&url).await.expect("still serving");
    ws.send(Message::text(r#"{"action":"join"}"#))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["route"], "join");
    // The half-open connections are closed by the server: the unfinished handshake by the
    // header timeout, the stalled frame by the idle timeout (after a 1001 close frame).
    for (name, mut conn) in [("handshake", stalled), ("frame", half)] {
        let (seen, closed) = read_until_closed(&mut conn).await;
        assert!(closed, "{name}: the server kept a half-open connection");
        if name == "frame" {
            let close = seen.windows(2).position(|w| w[0] == 0x88);
            assert!(close.is_some(), "frame: no close frame in {seen:?}");
        }
    }
}

/// Reads until the server closes the connection or `WAIT` passes: what arrived, and whether
/// the connection was closed in time.
async fn read_until_closed(conn: &mut TcpStream) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (seen, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_cross_check() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    let tp = Turnpike::serve(&file);
    let script = write(
        dir.path(),
        "client.py",
        r#"
import asyncio, json, sys
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, ConnectionClosed

async def main(url):
    out = {}
    async with connect(url, user_agent_header="py-websockets") as ws:
        await ws.send(json.dumps({"action": "join"}))
        out["join"] = json.loads(await ws.recv())
        await ws.send("not json")
        out["plain"] = json.loads(await ws.recv())
        await ws.send(json.dumps({"action": "whoami"}))
        out["whoami"] = json.loads(await ws.recv())
        pong = await ws.ping(b"x")
        await asyncio.wait_for(pong, 30)
        out["pong"] = True
        await ws.send("z" * (32 * 1024 + 1))
        try:
            await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed as e:
            out["closed"] = e.rcvd.code if e.rcvd else None
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"#,
    );
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(ws_url(&tp, "wslifecyc1", "prod"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["join"]["route"], "join");
    assert_eq!(v["plain"]["route"], "$default");
    assert!(v["whoami"]["connectionId"].is_string());
    assert_eq!(v["pong"], true);
    assert_eq!(v["closed"], 1009);
}

// ---------------------------------------------------------------------------------------------
// Lambda (AWS_PROXY) integrations with real function processes (awslambdaric)
// ---------------------------------------------------------------------------------------------

fn lambda_fn(handler: &str, dir: &Path, env: Value) -> Value {
    json!({
        "command": [python(), "-m", "awslambdaric", handler],
        "workingDir": dir.display().to_string(),
        "handler": handler,
        "timeout": 30,
        "environment": env,
    })
}

/// Does `actual` match `expected` (lambda_events.json conventions): same keys at every level,
/// `{{varies:*}}` matches any present value, `{{host}}`/`{{api_id}}` bind to the given values.
fn matches_event(expected: &Value, actual: &Value, host: &str, api_id: &str, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut ek: Vec<&String> = e.keys().collect();
            let mut ak: Vec<&String> = a.keys().collect();
            ek.sort();
            ak.sort();
            assert_eq!(ek, ak, "keys at {path}");
            for (k, v) in e {
                matches_event(v, &a[k], host, api_id, &format!("{path}.{k}"));
            }
        }
        (Value::String(s), a) if s.starts_with("{{varies:") => {
            assert!(!a.is_null(), "{path} missing")
        }
        (Value::String(s), a) if s == "{{host}}" => assert_eq!(a, host, "{path}"),
        (Value::String(s), a) if s == "{{api_id}}" => assert_eq!(a, api_id, "{path}"),
        (e, a) => assert_eq!(e, a, "{path}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_proxy_events_and_responses() {
    let dir = temp_dir();
    let events = dir.path().join("events");
    std::fs::create_dir_all(&events).expect("mkdir");
    write(
        dir.path(),
        "capture.py",
        r#"
import json, os
EV = os.environ["EVENTS_DIR"]

def handler(event, context):
    rc = event["requestContext"]
    with open(os.path.join(EV, rc["eventType"] + "-" + rc["connectionId"]), "w") as f:
        json.dump(event, f)
    if rc["eventType"] == "CONNECT" and (event.get("queryStringParameters") or {}).get("reject"):
        return {"statusCode": 401}
    if event.get("body") == "fail":
        raise Exception("boom")
    return {"statusCode": 200, "body": json.dumps(event)}
"#,
    );
    let f = lambda_fn(
        "capture.handler",
        dir.path(),
        json!({"EVENTS_DIR": events.display().to_string()}),
    );
    let proxy = json!({"integrationType": "AWS_PROXY", "integrationUri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:capture/invocations"});
    let project = json!({
        "functions": {"capture": f},
        "websocketApis": [{
            "name": "lambdaws", "id": "wslambda01",
            "routeSelectionExpression": "$request.body.action",
            "routes": {
                "$connect": {"integration": proxy},
                "$disconnect": {"integration": proxy},
                "$default": {"integration": proxy, "routeResponseSelectionExpression": "$default", "routeResponses": {"$default": {}}},
                "quiet": {"integration": proxy},
            },
            "stages": [{"name": "prod"}],
        }],
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let tp = Turnpike::serve(&file);
    let url = ws_url(&tp, "wslambda01", "prod");

    assert_eq!(rejected_status(&format!("{url}?reject=1")).await, 401);

    let mut ws = connect(&format!("{url}?token=abc")).await.expect("connect");
    // The MESSAGE event, compared with the recorded shape (lambda_events.json).
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/conformance/lambda_events.json"
        ))
        .expect("read lambda_events.json"),
    )
    .expect("json");
    let ws_cases: Vec<&Value> = cases["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["api_kind"] == "WEBSOCKET")
        .collect();
    assert!(!ws_cases.is_empty());
    for case in ws_cases {
        let msg = case["request"]["websocket_message"]
            .as_str()
            .expect("message");
        ws.send(Message::text(msg)).await.expect("send");
        let event = next_json(&mut ws).await;
        matches_event(
            &case["expected_event"],
            &event,
            "127.0.0.1",
            "wslambda01",
            "$",
        );
        assert_eq!(event["requestContext"]["stage"], "prod");
        assert_eq!(
            event["requestContext"]["identity"]["userAgent"],
            "turnpike-e2e/1"
        );
    }
    // A one-way route runs the function but sends nothing; a failing function answers with
    // AWS's error frame.
    ws.send(Message::text(r#"{"action":"quiet"}"#))
        .await
        .expect("send");
    ws.send(Message::text("fail")).await.expect("send");
    let v = next_json(&mut ws).await;
    assert_eq!(v["message"], "Internal server error");
    let id = v["connectionId"].as_str().expect("id").to_string();
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("close");

    let read = |kind: &str| -> Option<Value> {
        let p = events.join(format!("{kind}-{id}"));
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    };
    let deadline = std::time::Instant::now() + WAIT;
    let disconnect = loop {
        if let Some(v) = read("DISCONNECT") {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no DISCONNECT event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let connect_ev = read("CONNECT").expect("CONNECT event");
    let rc = &connect_ev["requestContext"];
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["routeKey"], "$connect");
    assert!(rc.get("messageId").is_none());
    assert!(connect_ev.get("body").is_none());
    assert_eq!(connect_ev["queryStringParameters"], json!({"token": "abc"}));
    assert_eq!(
        connect_ev["multiValueQueryStringParameters"],
        json!({"token": ["abc"]})
    );
    assert!(
        connect_ev["headers"]["Sec-Websocket-Key"].is_string()
            || connect_ev["headers"]["Sec-WebSocket-Key"].is_string()
    );
    assert_eq!(connect_ev["headers"]["User-Agent"], "turnpike-e2e/1");
    assert_eq!(connect_ev["isBase64Encoded"], false);
    let rc = &disconnect["requestContext"];
    assert_eq!(rc["eventType"], "DISCONNECT");
    assert_eq!(rc["disconnectStatusCode"], 1000);
    assert_eq!(rc["disconnectReason"], "bye");
    assert_eq!(
        rc["connectedAt"],
        connect_ev["requestContext"]["connectedAt"]
    );
    assert_eq!(disconnect["headers"]["Host"], "127.0.0.1");
    assert!(disconnect.get("queryStringParameters").is_none());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// examples/chat with its real functions: `sendmessage` broadcasts with boto3's
/// `apigatewaymanagementapi` client through `@connections`, SigV4-signed (IAM keys configured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_example_broadcasts_through_connections_with_boto3() {
    let dir = temp_dir();
    let conns = dir.path().join("connections");
    let port = free_port();
    let functions_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/chat/functions");
    let env = json!({
        "CONNECTIONS_DIR": conns.display().to_string(),
        "CALLBACK_URL": format!("http://127.0.0.1:{port}/dev"),
        "AWS_ACCESS_KEY_ID": "AKIDCHATEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "chat-secret-key",
    });
    let proxy =
        |f: &str| json!({"integration": {"integrationType": "AWS_PROXY", "integrationUri": f}});
    let project = json!({
        "iamAccessKeys": [{"accessKeyId": "AKIDCHATEXAMPLE", "secretAccessKey": "chat-secret-key"}],
        "functions": {
            "onconnect": lambda_fn("chat.on_connect", &functions_dir, env.clone()),
            "ondisconnect": lambda_fn("chat.on_disconnect", &functions_dir, env.clone()),
            "sendmessage": lambda_fn("chat.send_message", &functions_dir, env.clone()),
        },
        "websocketApis": [{
            "name": "simplechat", "id": "simplechat",
            "routeSelectionExpression": "$request.body.action",
            "routes": {"$connect": proxy("onconnect"), "$disconnect": proxy("ondisconnect"), "sendmessage": proxy("sendmessage")},
            "stages": [{"name": "dev"}],
        }],
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let tp = Turnpike::spawn(&[
        "serve".into(),
        file.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--no-watch".into(),
    ]);
    let url = format!("ws://127.0.0.1:{}/dev", tp.port);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&url).await.expect("connect"));
    }
    let count = || std::fs::read_dir(&conns).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count(), 3, "onconnect recorded every connection");

    clients[0]
        .send(Message::text(
            r#"{"action":"sendmessage","data":"hello, everyone"}"#,
        ))
        .await
        .expect("send");
    for c in clients.iter_mut() {
        assert_eq!(next_text(c).await, "hello, everyone");
    }

    // Unsigned management calls are refused when IAM keys are configured.
    let id = std::fs::read_dir(&conns)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a connection");
    let r = send(
        client()
            .post(format!(
                "http://127.0.0.1:{}/dev/@connections/{id}",
                tp.port
            ))
            .body("x"),
    )
    .await;
    assert_eq!(r.status, 403);

    // A client leaves: ondisconnect forgets it and the next broadcast reaches the others.
    let mut gone = clients.pop().expect("client");
    gone.close(None).await.expect("close");
    let deadline = std::time::Instant::now() + WAIT;
    while count() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "ondisconnect did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    clients[1]
        .send(Message::text(r#"{"action":"sendmessage","data":"second"}"#))
        .await
        .expect("send");
    for c in clients.iter_mut() {
        assert_eq!(next_text(c).await, "second");
    }
}

// ---------------------------------------------------------------------------------------------
// shared/conformance/websocket.json, table-driven
// ---------------------------------------------------------------------------------------------

fn conf_api(id: &str, rse: &str, routes: Value) -> Value {
    json!({"name": id, "id": id, "routeSelectionExpression": rse, "routes": routes, "stages": [{"name": "prod"}]})
}

/// Routes as a case names them: `$connect` accepts, every other key echoes its route key.
fn conf_routes(names: &Value) -> Value {
    let mut routes = serde_json::Map::new();
    for k in names
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let r = if k == "$connect" {
            json!({"integration": mock(200, "")})
        } else {
            echo_route()
        };
        routes.insert(k, r);
    }
    routes.insert("whoami".into(), whoami_route());
    Value::Object(routes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_conformance_cases() {
    let corpus: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/conformance/websocket.json"
        ))
        .expect("read websocket.json"),
    )
    .expect("json");
    let cases = corpus["cases"].as_array().expect("cases").clone();
    let up = Upstream::start().await;
    let ctx_vars: Vec<String> = cases
        .iter()
        .find(|c| c["kind"] == "context-variables")
        .and_then(|c| c["expected"]["variables"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();

    // One API per case, all served by one gateway.
    let mut apis = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let id = format!("wsconf{i:04}");
        let rse = case["api"]["routeSelectionExpression"]
            .as_str()
            .unwrap_or("$request.body.action");
        let api = match case["kind"].as_str().unwrap_or_default() {
            "route-selection-evaluation" => {
                let key = case["expected"]["evaluated_route_key"]
                    .as_str()
                    .expect("key");
                let mut routes = json!({"$default": echo_route(), "whoami": whoami_route()});
                if !key.starts_with('$') {
                    routes[key] = echo_route();
                }
                conf_api(&id, rse, routes)
            }
            "route-dispatch" => conf_api(&id, rse, conf_routes(&case["api"]["routes"])),
            "connect" => conf_api(
                &id,
                rse,
                json!({
                    "$connect": {"integration": {"integrationType": "HTTP_PROXY", "integrationMethod": "GET",
                        "integrationUri": format!("{}/respond-headers?h=Sec-WebSocket-Protocol:myprotocol", up.base())}},
                    "$default": echo_route(),
                }),
            ),
            "route-response" => {
                let proxied = json!({"integrationType": "HTTP_PROXY", "integrationUri": format!("{}/route-response-{i}", up.base())});
                let two_way = json!({"integration": proxied, "routeResponseSelectionExpression": "$default", "routeResponses": {"$default": {}}});
                apis.push(conf_api(
                    &format!("wsconf{:04}", 100 + i),
                    rse,
                    json!({"$default": {"integration": proxied}, "probe": echo_route()}),
                ));
                conf_api(&id, rse, json!({"$default": two_way}))
            }
            "context-variables" => {
                let fields: Vec<String> = ctx_vars
                    .iter()
                    .map(|v| format!("\"{v}\":\"$!context.{v}\""))
                    .collect();
                let template = format!("{{{}}}", fields.join(","));
                conf_api(
                    &id,
                    rse,
                    json!({"$default": {
                        "integration": mock(200, &template),
                        "routeResponseSelectionExpression": "$default", "routeResponses": {"$default": {}},
                    }}),
                )
            }
            "connections-api" => conf_api(
                &id,
                rse,
                json!({"$default": echo_route(), "whoami": whoami_route()}),
            ),
            other => panic!("case {}: kind {other:?} is not covered", case["id"]),
        };
        apis.push(api);
    }
    let dir = temp_dir();
    let file = ws_project(dir.path(), Value::Array(apis));
    let tp = Turnpike::serve(&file);
    let http = client();
    let mut ran = 0;

    for (i, case) in cases.iter().enumerate() {
        let cid = case["id"].as_str().unwrap_or_default();
        let id = format!("wsconf{i:04}");
        // The connections API cases use the `prod` stage the examples name.
        let url = ws_url(&tp, &id, "prod");
        let exp = &case["expected"];
        match case["kind"].as_str().unwrap_or_default() {
            "route-selection-evaluation" | "route-dispatch" => {
                let mut ws = connect(&url).await.expect("connect");
                ws.send(Message::text(case["message"].as_str().expect("message")))
                    .await
                    .expect("send");
                let v = next_json(&mut ws).await;
                if let Some(key) = exp["evaluated_route_key"].as_str() {
                    assert_eq!(v["route"], key, "{cid}");
                } else if let Some(route) = exp["route"].as_str() {
                    assert_eq!(v["route"], route, "{cid}");
                } else {
                    for (k, want) in exp["frame_json_subset"].as_object().expect("subset") {
                        assert_eq!(&v[k], want, "{cid}");
                    }
                    let keys: Vec<&str> = v
                        .as_object()
                        .expect("object")
                        .keys()
                        .map(String::as_str)
                        .collect();
                    let want: Vec<&str> = exp["frame_keys"]
                        .as_array()
                        .expect("keys")
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    assert_eq!(keys, want, "{cid}");
                }
            }
            "connect" => {
                let mut req = url.as_str().into_client_request().expect("request");
                for (k, v) in case["request"]["headers"].as_object().expect("headers") {
                    req.headers_mut().insert(
                        tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                            .expect("name"),
                        v.as_str().expect("value").parse().expect("value"),
                    );
                }
                let (mut ws, resp) = tokio_tungstenite::connect_async(req)
                    .await
                    .expect("connect");
                assert_eq!(
                    u64::from(resp.status().as_u16()),
                    exp["http_status"].as_u64().expect("status"),
                    "{cid}"
                );
                for (k, v) in exp["response_headers"].as_object().expect("headers") {
                    assert_eq!(
                        resp.headers().get(k.as_str()).and_then(|h| h.to_str().ok()),
                        v.as_str(),
                        "{cid}"
                    );
                }
                ws.send(Message::text("x")).await.expect("connected");
                assert_eq!(next_json(&mut ws).await["route"], "$default", "{cid}");
            }
            "route-response" => {
                // With the $default route response the backend's body comes back...
                let mut ws = connect(&url).await.expect("connect");
                ws.send(Message::text("to the backend"))
                    .await
                    .expect("send");
                let v = next_json(&mut ws).await;
                assert_eq!(v["body"], "to the backend", "{cid}: {v}");
                // ...without it the route is one-way: the integration runs, nothing is sent.
                let mut ws = connect(&ws_url(&tp, &format!("wsconf{:04}", 100 + i), "prod"))
                    .await
                    .expect("connect");
                let before = up.requests().len();
                ws.send(Message::text("one way")).await.expect("send");
                let deadline = std::time::Instant::now() + WAIT;
                while up.requests().len() == before {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{cid}: integration not called"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ws.send(Message::text(r#"{"action":"probe"}"#))
                    .await
                    .expect("send");
                assert_eq!(next_json(&mut ws).await["route"], "probe", "{cid}");
            }
            "context-variables" => {
                let mut ws = connect(&url).await.expect("connect");
                ws.send(Message::text("hi")).await.expect("send");
                let v = next_json(&mut ws).await;
                for var in &ctx_vars {
                    let s = v[var.as_str()]
                        .as_str()
                        .unwrap_or_else(|| panic!("{cid}: {var} missing in {v}"));
                    assert!(!s.contains("$context"), "{cid}: {var} unresolved");
                }
                for must in [
                    "connectionId",
                    "connectedAt",
                    "domainName",
                    "messageId",
                    "routeKey",
                    "requestId",
                    "apiId",
                    "identity.sourceIp",
                    "identity.userAgent",
                    "requestTime",
                    "requestTimeEpoch",
                    "stage",
                ] {
                    assert!(
                        v[must].as_str().is_some_and(|s| !s.is_empty()),
                        "{cid}: {must} empty in {v}"
                    );
                }
                assert_eq!(v["eventType"], "MESSAGE");
                assert_eq!(v["requestId"], v["extendedRequestId"]);
                let epoch = v["requestTimeEpoch"].as_str().unwrap_or_default();
                assert!(
                    epoch.len() == 13 && epoch.bytes().all(|b| b.is_ascii_digit()),
                    "{cid}: ms epoch {epoch}"
                );
                let t = v["requestTime"].as_str().unwrap_or_default();
                assert!(
                    regex_lite(r"^\d\d/XXX/\d{4}:\d\d:\d\d:\d\d +0000$")(&t.replacen(
                        &t[3..6],
                        "XXX",
                        1
                    )),
                    "{cid}: {t}"
                );
            }
            "connections-api" => {
                let mut ws = connect(&url).await.expect("connect");
                let conn = whoami(&mut ws).await;
                let req = &case["request"];
                if let Some(base) = exp["callback_base_url"].as_str() {
                    // https://{domainName}/{stage}: here http and the listener's port.
                    assert_eq!(base, "https://{domainName}/{stage}");
                    ws.send(Message::text(r#"{"action":"whoami"}"#))
                        .await
                        .expect("send");
                    let who = next_json(&mut ws).await;
                    let cb = format!(
                        "http://{}:{}/{}",
                        who["domainName"].as_str().expect("d"),
                        tp.port,
                        who["stage"].as_str().expect("s")
                    );
                    let r = send(
                        http.post(format!("{cb}/@connections/{conn}"))
                            .body("via callback"),
                    )
                    .await;
                    assert_eq!(r.status, 200, "{cid}");
                    assert_eq!(next_text(&mut ws).await, "via callback");
                } else {
                    let path = req["path"].as_str().expect("path");
                    let path = if path.contains("{connectionId}") {
                        path.replace("{stage}", "prod")
                            .replace("{connectionId}", &conn)
                    } else {
                        // A literal example id: substitute ours, encoded the same way.
                        let (prefix, _) = path.rsplit_once('/').expect("id");
                        format!("{prefix}/{}", conn.replace('=', "%3D"))
                    };
                    let body = match &req["body"] {
                        Value::String(s) => s.clone(),
                        Value::Object(o) => o["$repeat"]
                            .as_str()
                            .expect("repeat")
                            .repeat(o["times"].as_u64().expect("times") as usize),
                        _ => String::new(),
                    };
                    let url = format!("http://127.0.0.1:{}/_aws/execute-api/{id}{path}", tp.port);
                    let method = reqwest::Method::from_bytes(
                        req["method"].as_str().expect("method").as_bytes(),
                    )
                    .expect("method");
                    let r = send(http.request(method, &url).body(body.clone())).await;
                    assert_eq!(
                        u64::from(r.status),
                        exp["status"].as_u64().expect("status"),
                        "{cid}"
                    );
                    if let Some(t) = exp["error_type"].as_str() {
                        assert_eq!(r.header("x-amzn-errortype"), Some(t), "{cid}");
                    }
                    if let Some(keys) = exp["body_keys"].as_array() {
                        for k in keys {
                            assert!(r.json().get(k.as_str().expect("key")).is_some(), "{cid}");
                        }
                    }
                    if let Some(shape) = exp["body_json"].as_object() {
                        let v = r.json();
                        let mut want: Vec<&String> = shape.keys().collect();
                        let mut got: Vec<&String> = v.as_object().expect("object").keys().collect();
                        want.sort();
                        got.sort();
                        assert_eq!(want, got, "{cid}");
                        assert!(
                            v["identity"]["sourceIp"].is_string()
                                && v["identity"]["userAgent"].is_string(),
                            "{cid}"
                        );
                    }
                    if exp["status"] == 200 && req["method"] == "POST" {
                        assert_eq!(next_text(&mut ws).await, body, "{cid}");
                    }
                }
            }
            other => panic!("{cid}: kind {other:?}"),
        }
        ran += 1;
    }
    assert_eq!(ran, cases.len());
}

/// `$connect` with a Lambda REQUEST authorizer (real function) and a required API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_authorizer_and_api_key() {
    let dir = temp_dir();
    write(
        dir.path(),
        "auth.py",
        r#"
def handler(event, context):
    tok = event["headers"].get("Auth", "")
    if tok == "boom":
        raise Exception("boom")
    effect = "Deny" if tok == "deny" else "Allow"
    assert event["type"] == "REQUEST" and event["methodArn"].endswith("/prod/$connect")
    return {
        "principalId": "user-" + tok,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}]},
        "context": {"role": "admin"},
    }
"#,
    );
    let project = json!({
        "functions": {"auth": lambda_fn("auth.handler", dir.path(), json!({}))},
        "apiKeys": [{"name": "alice", "value": "alice-key-0123456789abcdefghij"}, {"name": "bob", "value": "bob-key-0123456789abcdefghijkl"}],
        "usagePlans": [
            {"name": "ws", "apiStages": [{"api": "wsauthapi1", "stage": "prod"}], "keys": ["alice"]},
        ],
        "websocketApis": [{
            "name": "authws", "id": "wsauthapi1",
            "routeSelectionExpression": "$request.body.action",
            "authorizers": {"lambda": {"authorizerType": "REQUEST", "authorizerUri": "auth", "identitySource": ["route.request.header.Auth"]}},
            "routes": {
                "$connect": {"integration": mock(200, ""), "authorizer": "lambda", "apiKeyRequired": true},
                "$default": {
                    "integration": mock(200, r#"{"principal":"$context.authorizer.principalId","role":"$context.authorizer.role","key":"$context.identity.apiKey"}"#),
                    "routeResponseSelectionExpression": "$default", "routeResponses": {"$default": {}},
                },
            },
            "stages": [{"name": "prod"}],
        }],
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let tp = Turnpike::serve(&file);
    let url = ws_url(&tp, "wsauthapi1", "prod");
    let status_with = |headers: Vec<(&'static str, &'static str)>| {
        let url = url.clone();
        async move {
            let mut req = url.as_str().into_client_request().expect("request");
            for (k, v) in headers {
                req.headers_mut().insert(k, v.parse().expect("value"));
            }
            match tokio_tungstenite::connect_async(req).await {
                Ok((ws, r)) => (r.status().as_u16(), Some(ws)),
                Err(WsError::Http(r)) => (r.status().as_u16(), None),
                Err(e) => panic!("{e}"),
            }
        }
    };
    let key = ("x-api-key", "alice-key-0123456789abcdefghij");
    assert_eq!(
        status_with(vec![key]).await.0,
        401,
        "identity source missing"
    );
    assert_eq!(
        status_with(vec![("auth", "deny"), key]).await.0,
        403,
        "policy denies"
    );
    assert_eq!(
        status_with(vec![("auth", "boom"), key]).await.0,
        500,
        "authorizer fails"
    );
    assert_eq!(status_with(vec![("auth", "ok")]).await.0, 403, "no API key");
    assert_eq!(
        status_with(vec![
            ("auth", "ok"),
            ("x-api-key", "wrong-key-0123456789abcdefghij")
        ])
        .await
        .0,
        403,
        "unknown key"
    );
    assert_eq!(
        status_with(vec![
            ("auth", "ok"),
            ("x-api-key", "bob-key-0123456789abcdefghijkl")
        ])
        .await
        .0,
        403,
        "key in no plan of the stage"
    );
    let (status, ws) = status_with(vec![("auth", "ok"), key]).await;
    assert_eq!(status, 101);
    let mut ws = ws.expect("connected");
    ws.send(Message::text("hi")).await.expect("send");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"principal": "user-ok", "role": "admin", "key": "alice-key-0123456789abcdefghij"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_and_shutdown_close_with_going_away() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = ws_project(dir.path(), json!([lifecycle_api(&up.base())]));
    let mut tp = Turnpike::serve_with(&file, &["--no-watch", "--ws-max-duration", "2"]);
    let url = ws_url(&tp, "wslifecyc1", "prod");

    // Busy or not, a connection ends at the maximum duration (2 s here).
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    let closed = loop {
        ws.send(Message::text(r#"{"action":"join"}"#)).await.ok();
        match tokio::time::timeout(WAIT, ws.next()).await.expect("frame") {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(closed, 1001);
    assert_eq!(wait_disconnect(&up, &id).await["code"], "1001");

    // SIGTERM: open connections are closed with 1001 and `$disconnect` runs before exit.
    let mut ws = connect(&url).await.expect("connect");
    let id = whoami(&mut ws).await;
    tp.sigterm();
    assert_eq!(close_code(&mut ws).await.0, 1001);
    let status = tp.wait_exit(WAIT).expect("exited");
    assert!(status.success());
    assert_eq!(wait_disconnect(&up, &id).await["code"], "1001");
}
