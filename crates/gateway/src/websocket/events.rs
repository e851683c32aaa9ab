//! What integrations see of a WebSocket event: `$context` for mapping templates and the Lambda
//! proxy event, in AWS's shapes (§13.3/13.4 of the reference).

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{json, Map, Value};

use super::{WsApi, WsStage};
use crate::context;
use crate::pipeline::integration_request::title_case;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Connect,
    Message,
    Disconnect,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Connect => "CONNECT",
            EventType::Message => "MESSAGE",
            EventType::Disconnect => "DISCONNECT",
        }
    }
}

/// One connection's facts, fixed at `$connect`.
#[derive(Debug)]
pub struct ConnCtx {
    pub connection_id: String,
    pub api: Arc<WsApi>,
    pub stage: Arc<WsStage>,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    /// Host without the port.
    pub domain_name: String,
    pub account_id: String,
    /// `requestContext.authorizer` (principalId and context), from the `$connect` authorizer.
    pub authorizer: Option<Map<String, Value>>,
    pub api_key: Option<String>,
}

/// One event of a connection.
#[derive(Debug)]
pub struct EventCtx<'a> {
    pub kind: EventType,
    pub route_key: &'a str,
    pub request_id: String,
    pub message_id: Option<String>,
    pub request_time_ms: i64,
    /// The upgrade request's headers and query (`$connect` only).
    pub headers: Option<&'a HeaderMap>,
    pub query: Option<&'a [(String, String)]>,
    pub body: Option<&'a str>,
    /// `$disconnect`: close code and reason.
    pub disconnect: Option<(u16, String)>,
}

impl<'a> EventCtx<'a> {
    pub fn new(kind: EventType, route_key: &'a str) -> Self {
        EventCtx {
            kind,
            route_key,
            request_id: context::extended_request_id(),
            message_id: (kind == EventType::Message).then(context::extended_request_id),
            request_time_ms: context::now_epoch_ms(),
            headers: None,
            query: None,
            body: None,
            disconnect: None,
        }
    }
}

fn identity(conn: &ConnCtx) -> Map<String, Value> {
    let mut id = Map::new();
    if let Some(ua) = &conn.user_agent {
        id.insert("userAgent".into(), ua.clone().into());
    }
    id.insert("sourceIp".into(), conn.source_ip.clone().into());
    id
}

/// `$context` for mapping templates and selection expressions.
pub fn context_json(conn: &ConnCtx, ev: &EventCtx<'_>) -> Value {
    let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    let mut m = Map::new();
    m.insert("accountId".into(), conn.account_id.clone().into());
    m.insert("apiId".into(), conn.api.id.clone().into());
    m.insert("connectionId".into(), conn.connection_id.clone().into());
    m.insert("connectedAt".into(), conn.connected_at_ms.into());
    m.insert("domainName".into(), conn.domain_name.clone().into());
    m.insert("eventType".into(), ev.kind.as_str().into());
    m.insert("messageDirection".into(), "IN".into());
    if let Some(mid) = &ev.message_id {
        m.insert("messageId".into(), mid.clone().into());
    }
    m.insert("routeKey".into(), ev.route_key.into());
    m.insert("requestId".into(), ev.request_id.clone().into());
    m.insert("extendedRequestId".into(), ev.request_id.clone().into());
    m.insert(
        "requestTime".into(),
        context::clf_time(ev.request_time_ms).into(),
    );
    m.insert("requestTimeEpoch".into(), ev.request_time_ms.into());
    m.insert("stage".into(), conn.stage.name.clone().into());
    m.insert("status".into(), Value::Null);
    m.insert(
        "identity".into(),
        json!({
            "accountId": null, "apiKey": opt(&conn.api_key), "apiKeyId": null, "caller": null,
            "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
            "cognitoIdentityId": null, "cognitoIdentityPoolId": null,
            "sourceIp": conn.source_ip, "user": null, "userAgent": opt(&conn.user_agent),
            "userArn": null,
        }),
    );
    m.insert(
        "authorizer".into(),
        conn.authorizer
            .clone()
            .map_or_else(|| json!({"principalId": null}), Value::Object),
    );
    m.insert(
        "error".into(),
        json!({"message": null, "messageString": null, "validationErrorString": null}),
    );
    if let Some((code, reason)) = &ev.disconnect {
        m.insert("disconnectStatusCode".into(), (*code).into());
        m.insert("disconnectReason".into(), reason.clone().into());
    }
    Value::Object(m)
}

/// `requestContext` of the Lambda proxy event.
fn request_context(conn: &ConnCtx, ev: &EventCtx<'_>) -> Map<String, Value> {
    let mut rc = Map::new();
    rc.insert("routeKey".into(), ev.route_key.into());
    if let Some(mid) = &ev.message_id {
        rc.insert("messageId".into(), mid.clone().into());
    }
    if let Some((code, reason)) = &ev.disconnect {
        rc.insert("disconnectStatusCode".into(), (*code).into());
        rc.insert("disconnectReason".into(), reason.clone().into());
    }
    rc.insert("eventType".into(), ev.kind.as_str().into());
    rc.insert("extendedRequestId".into(), ev.request_id.clone().into());
    rc.insert(
        "requestTime".into(),
        context::clf_time(ev.request_time_ms).into(),
    );
    rc.insert("messageDirection".into(), "IN".into());
    rc.insert("stage".into(), conn.stage.name.clone().into());
    rc.insert("connectedAt".into(), conn.connected_at_ms.into());
    rc.insert("requestTimeEpoch".into(), ev.request_time_ms.into());
    rc.insert("identity".into(), Value::Object(identity(conn)));
    rc.insert("requestId".into(), ev.request_id.clone().into());
    rc.insert("domainName".into(), conn.domain_name.clone().into());
    rc.insert("connectionId".into(), conn.connection_id.clone().into());
    rc.insert("apiId".into(), conn.api.id.clone().into());
    if let Some(a) = &conn.authorizer {
        rc.insert("authorizer".into(), Value::Object(a.clone()));
    }
    rc
}

fn header_maps(headers: &HeaderMap) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in headers {
        let name = title_case(k.as_str());
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        single.insert(name.clone(), v.clone().into());
        match multi.get_mut(&name) {
            Some(Value::Array(a)) => a.push(v.into()),
            _ => {
                multi.insert(name, Value::Array(vec![v.into()]));
            }
        }
    }
    (single, multi)
}

/// The Lambda proxy integration's input event.
pub fn lambda_event(conn: &ConnCtx, ev: &EventCtx<'_>) -> Value {
    let mut m = Map::new();
    match ev.kind {
        EventType::Connect => {
            let mut headers = ev.headers.cloned().unwrap_or_default();
            for (k, v) in [
                ("x-forwarded-for", conn.source_ip.as_str()),
                ("x-forwarded-proto", "http"),
            ] {
                if !headers.contains_key(k) {
                    if let Ok(v) = http::HeaderValue::from_str(v) {
                        headers.insert(k, v);
                    }
                }
            }
            let (single, multi) = header_maps(&headers);
            m.insert("headers".into(), Value::Object(single));
            m.insert("multiValueHeaders".into(), Value::Object(multi));
            if let Some(q) = ev.query.filter(|q| !q.is_empty()) {
                let mut single = Map::new();
                let mut multi: Map<String, Value> = Map::new();
                for (k, v) in q {
                    single.insert(k.clone(), v.clone().into());
                    match multi.get_mut(k) {
                        Some(Value::Array(a)) => a.push(v.clone().into()),
                        _ => {
                            multi.insert(k.clone(), Value::Array(vec![v.clone().into()]));
                        }
                    }
                }
                m.insert("queryStringParameters".into(), Value::Object(single));
                m.insert(
                    "multiValueQueryStringParameters".into(),
                    Value::Object(multi),
                );
            }
        }
        EventType::Disconnect => {
            let host = conn.domain_name.clone();
            m.insert(
                "headers".into(),
                json!({"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}),
            );
            m.insert(
                "multiValueHeaders".into(),
                json!({"Host": [host], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]}),
            );
        }
        EventType::Message => {}
    }
    m.insert(
        "requestContext".into(),
        Value::Object(request_context(conn, ev)),
    );
    if ev.kind == EventType::Message {
        m.insert("body".into(), ev.body.unwrap_or_default().into());
    }
    m.insert("isBase64Encoded".into(), false.into());
    Value::Object(m)
}
