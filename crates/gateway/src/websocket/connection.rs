//! The upgrade (after `$connect` accepted it) and the life of one connection: limits, timers,
//! route selection per message, outbound messages from `@connections`, and `$disconnect` after
//! every kind of close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::body::RequestBody;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::events::{ConnCtx, EventCtx, EventType};
use super::integration::{self, WsEnv};
use super::registry::{LocalConnection, Outbound};
use super::selection::{self, SelectionInput};
use super::{is_upgrade, WsApi, WsRoute};
use crate::body::Body;
use crate::context;
use crate::deployment::Runtime;
use crate::Gateway;

fn plain(status: u16, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// A connection id: 16 base64-like characters ending in `=`, like AWS's.
pub fn new_connection_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut s: String = (0..15)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    s.push('=');
    s
}

fn domain_of(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => host.to_string(),
    }
}

/// Answers an upgrade request addressed to `api`: runs `$connect`, then switches protocols.
pub async fn upgrade(
    gw: &Gateway,
    runtime: &Arc<Runtime>,
    api: Arc<WsApi>,
    stage_name: &str,
    mut req: Request<RequestBody>,
    peer: SocketAddr,
) -> Response<Body> {
    let Some(stage) = api.stages.get(stage_name).cloned() else {
        return plain(403, "{\"message\":\"Forbidden\"}");
    };
    if !is_upgrade(&req) {
        return plain(426, "{\"message\":\"Upgrade Required\"}");
    }
    if req.method() != http::Method::GET {
        return plain(405, "");
    }
    let version_ok = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !version_ok {
        let mut r = plain(426, "");
        r.headers_mut().insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
    else {
        return plain(400, "");
    };
    let env = WsEnv {
        hub: gw.websockets.clone(),
        upstream: gw.upstream.clone(),
        functions: gw.functions.clone(),
    };
    let host = crate::pipeline::route::host_of(&req)
        .unwrap_or_default()
        .to_string();
    let api_key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut conn = ConnCtx {
        connection_id: new_connection_id(),
        api: api.clone(),
        stage,
        connected_at_ms: context::now_epoch_ms(),
        source_ip: context::source_ip_string(peer.ip()),
        user_agent: req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        domain_name: domain_of(&host),
        account_id: runtime.account_id.to_string(),
        authorizer: None,
        api_key,
    };
    let query = crate::pipeline::route::parse_query(req.uri().query());
    let mut subprotocol = None;
    if let Some(route) = api.routes.get("$connect") {
        let mut ev = EventCtx::new(EventType::Connect, "$connect");
        ev.headers = Some(req.headers());
        ev.query = Some(&query);
        // Authorizer first, then the API key (AWS's order).
        let mut usage_key = None;
        if let Some(a) = &route.authorizer {
            match super::access::authorize(&env, runtime, &conn, a, &ev).await {
                Ok(g) => {
                    conn.authorizer = Some(g.authorizer);
                    usage_key = g.usage_identifier_key;
                }
                Err(r) => return plain(r.status, r.body),
            }
        }
        if route.api_key_required {
            let value = if api.api_key_selection.as_deref()
                == Some("$context.authorizer.usageIdentifierKey")
            {
                usage_key.as_deref()
            } else {
                conn.api_key.as_deref()
            };
            if let Err(r) =
                super::access::check_api_key(gw, runtime, &api.id, stage_name, value).await
            {
                return plain(r.status, r.body);
            }
        }
        match integration::run(&env, &conn, route, &ev).await {
            Ok(out) if (200..300).contains(&out.status) => {
                subprotocol = out
                    .headers
                    .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                    .cloned();
            }
            Ok(out) => {
                tracing::debug!(connection_id = %conn.connection_id, status = out.status, "$connect rejected the connection");
                // A status that cannot answer a handshake (1xx, out of range) is a failure.
                let status = if (200..=599).contains(&out.status) {
                    out.status
                } else {
                    500
                };
                return plain(status, "");
            }
            Err(e) => {
                tracing::warn!(connection_id = %conn.connection_id, error = %e, "$connect integration failed");
                return plain(500, "{\"message\": \"Internal server error\"}");
            }
        }
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let conn = Arc::new(conn);
    env.hub.active.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let hub = env.hub.clone();
        match on_upgrade.await {
            Ok(upgraded) => serve(env, conn, upgraded).await,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
            }
        }
        hub.active.fetch_sub(1, Ordering::SeqCst);
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = subprotocol {
        h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    r
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why a connection ended: the close code and reason `$disconnect` reports, and whether the
/// gateway still owes the client a close frame.
struct Ending {
    code: u16,
    reason: String,
    send_close: bool,
}

fn ending(code: u16, reason: &str, send_close: bool) -> Ending {
    Ending {
        code,
        reason: reason.to_string(),
        send_close,
    }
}

async fn serve(env: WsEnv, conn: Arc<ConnCtx>, upgraded: hyper::upgrade::Upgraded) {
    let s = env.hub.settings.clone();
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 1024;
    config.write_buffer_size = 0;
    config.max_frame_size = Some(s.max_frame_bytes);
    config.max_message_size = Some(s.max_message_bytes);
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (tx, rx) = mpsc::channel(s.outbound_buffer.max(1));
    let last_active = Arc::new(AtomicI64::new(context::now_epoch_ms()));
    env.hub.registry.register(LocalConnection {
        connection_id: conn.connection_id.clone(),
        api_id: conn.api.id.clone(),
        stage: conn.stage.name.clone(),
        connected_at_ms: conn.connected_at_ms,
        source_ip: conn.source_ip.clone(),
        user_agent: conn.user_agent.clone(),
        last_active_ms: last_active.clone(),
        tx,
    });
    tracing::debug!(connection_id = %conn.connection_id, "connected");
    let end = run(&env, &conn, &mut ws, rx, &last_active).await;
    env.hub.registry.unregister(&conn.connection_id);
    if end.send_close {
        let frame = CloseFrame {
            code: CloseCode::from(end.code),
            reason: end.reason.clone().into(),
        };
        // Wait (briefly) for the client's close reply, then drop the TCP connection.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    }
    drop(ws);
    tracing::debug!(connection_id = %conn.connection_id, code = end.code, reason = %end.reason, "disconnected");
    if let Some(route) = conn.api.routes.get("$disconnect") {
        let mut ev = EventCtx::new(EventType::Disconnect, "$disconnect");
        ev.disconnect = Some((end.code, end.reason));
        integration::run_quiet(&env, &conn, route, &ev).await;
    }
}

async fn run(
    env: &WsEnv,
    conn: &Arc<ConnCtx>,
    ws: &mut Ws,
    mut rx: mpsc::Receiver<Outbound>,
    last_active: &AtomicI64,
) -> Ending {
    let s = &env.hub.settings;
    let idle = tokio::time::sleep(s.idle_timeout);
    let max = tokio::time::sleep(s.max_duration);
    tokio::pin!(idle);
    tokio::pin!(max);
    let mut inflight: JoinSet<Option<String>> = JoinSet::new();
    let mut client_close: Option<Ending> = None;
    let touch = |idle: &mut std::pin::Pin<&mut tokio::time::Sleep>| {
        last_active.store(context::now_epoch_ms(), Ordering::Relaxed);
        idle.as_mut()
            .reset(tokio::time::Instant::now() + s.idle_timeout);
    };
    let end = loop {
        tokio::select! {
            msg = ws.next(), if inflight.len() < s.max_in_flight => {
                match msg {
                    None => break client_close.take().unwrap_or_else(|| ending(1006, "Connection closed abnormally", false)),
                    Some(Err(e)) => {
                        if let Some(c) = client_close.take() {
                            break c;
                        }
                        break match e {
                            WsError::Capacity(_) => ending(1009, "Message too big", true),
                            WsError::Utf8(_) => ending(1007, "Invalid frame payload data", true),
                            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ending(1006, "Connection closed abnormally", false),
                            WsError::Protocol(_) => ending(1002, "Protocol error", true),
                            WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => ending(1006, "Connection closed abnormally", false),
                            _ => ending(1011, "Internal error", true),
                        };
                    }
                    Some(Ok(m)) => {
                        touch(&mut idle);
                        match m {
                            Message::Text(t) => {
                                let env = env.clone();
                                let conn = conn.clone();
                                let text = t.as_str().to_string();
                                inflight.spawn(async move { dispatch(&env, &conn, &text).await });
                            }
                            Message::Binary(_) => break ending(1003, "Unsupported data", true),
                            Message::Close(frame) => {
                                let c = match frame {
                                    Some(f) => ending(u16::from(f.code), &f.reason, false),
                                    None => ending(1005, "Client-side close frame status not set", false),
                                };
                                // tungstenite answers the close; keep polling until the stream ends.
                                client_close = Some(c);
                            }
                            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                        }
                    }
                }
            }
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                if let Ok(Some(frame)) = done {
                    if client_close.is_none() && !send(ws, Message::text(frame)).await {
                        break ending(1006, "Connection closed abnormally", false);
                    }
                }
            }
            out = rx.recv() => match out {
                Some(Outbound::Data(data)) => {
                    if client_close.is_some() {
                        continue;
                    }
                    last_active.store(context::now_epoch_ms(), Ordering::Relaxed);
                    let msg = match String::from_utf8(data.to_vec()) {
                        Ok(t) => Message::text(t),
                        Err(_) => Message::binary(data),
                    };
                    if !send(ws, msg).await {
                        break ending(1006, "Connection closed abnormally", false);
                    }
                }
                Some(Outbound::Close) | None => break ending(1000, "", client_close.is_none()),
            },
            _ = &mut idle => break ending(1001, "Going away", true),
            _ = &mut max => break ending(1001, "Going away", true),
            _ = env.hub.shutdown.cancelled() => break ending(1001, "Going away", true),
        }
    };
    // Messages being integrated keep running; their replies have nowhere to go.
    inflight.detach_all();
    end
}

/// How long a write may wait for a client that does not read (or vanished without a FIN).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one message; `false` when the connection is unusable (error or stuck writes).
async fn send(ws: &mut Ws, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

fn error_frame(message: &str, conn: &ConnCtx, request_id: &str) -> String {
    json!({"message": message, "connectionId": conn.connection_id, "requestId": request_id})
        .to_string()
}

/// The route a message selects: the evaluated key, else `$default`.
pub fn select_route<'a>(api: &'a WsApi, text: &str) -> (String, Option<&'a Arc<WsRoute>>) {
    let key = match serde_json::from_str::<Value>(text) {
        Ok(v) => selection::evaluate(
            &api.route_selection,
            &SelectionInput {
                body: Some(&v),
                ..Default::default()
            },
        ),
        Err(_) => "$default".to_string(),
    };
    let exact = if key == "$connect" || key == "$disconnect" {
        None
    } else {
        api.routes.get(&key)
    };
    let route = exact.or_else(|| api.routes.get("$default"));
    (key, route)
}

/// Runs the selected route for one message; returns the frame to send back, if any.
async fn dispatch(env: &WsEnv, conn: &ConnCtx, text: &str) -> Option<String> {
    let (_, route) = select_route(&conn.api, text);
    let Some(route) = route else {
        let ev = EventCtx::new(EventType::Message, "");
        return Some(error_frame("Forbidden", conn, &ev.request_id));
    };
    let mut ev = EventCtx::new(EventType::Message, &route.key);
    ev.body = Some(text);
    match integration::run(env, conn, route, &ev).await {
        Ok(out) => (route.two_way && !out.body.is_empty()).then_some(out.body),
        Err(e) => {
            tracing::warn!(connection_id = %conn.connection_id, route = %route.key, error = %e, "integration failed");
            Some(error_frame("Internal server error", conn, &ev.request_id))
        }
    }
}
