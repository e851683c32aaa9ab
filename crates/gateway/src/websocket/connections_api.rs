//! The `@connections` management API (`apigatewaymanagementapi`): `POST` sends a message,
//! `GET` describes the connection, `DELETE` closes it. Served on the gateway's own listener at
//! `/{stage}/@connections/{id}` (also `%40connections`, host-based and `/_aws/execute-api/…`).

use std::sync::Arc;

use crate::body::RequestBody;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use super::registry::PostError;
use super::WsApi;
use crate::body::Body;
use crate::deployment::Runtime;
use crate::Gateway;

fn error(status: u16, error_type: &'static str, message: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(
        json!({ "message": message }).to_string(),
    )));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    r
}

fn gone() -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from_static(b"{}")));
    *r.status_mut() = StatusCode::GONE;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        "x-amzn-errortype",
        HeaderValue::from_static("GoneException"),
    );
    r
}

fn iso8601(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let ms = epoch_ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            ms
        ),
        Err(_) => String::new(),
    }
}

fn with_request_id(mut r: Response<Body>) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

/// Serves one `@connections` call. `api` is the API the URL names (host- or path-based), `None`
/// for the plain `/{stage}/@connections/{id}` form.
pub async fn handle(
    gw: &Gateway,
    runtime: &Arc<Runtime>,
    api: Option<&WsApi>,
    stage: &str,
    raw_id: &str,
    req: Request<RequestBody>,
) -> Response<Body> {
    with_request_id(serve(gw, runtime, api, stage, raw_id, req).await)
}

async fn serve(
    gw: &Gateway,
    runtime: &Arc<Runtime>,
    api: Option<&WsApi>,
    stage: &str,
    raw_id: &str,
    req: Request<RequestBody>,
) -> Response<Body> {
    let id = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8_lossy()
        .into_owned();
    if id.is_empty() || id.contains('/') {
        return error(404, "NotFoundException", "Not Found");
    }
    // The stage (and API, when named) must exist: AWS answers 403 for a wrong callback URL.
    let stage_known = match api {
        Some(a) => a.stages.contains_key(stage),
        None => runtime
            .websocket_apis
            .iter()
            .any(|a| a.stages.contains_key(stage)),
    };
    if !stage_known {
        return error(403, "ForbiddenException", "Forbidden");
    }
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let limit = gw.websockets.settings.max_message_bytes;
    let body = match crate::pipeline::read_body(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                413,
                "PayloadTooLargeException",
                &format!("Message payload must be at most {limit} bytes"),
            )
        }
    };
    // With IAM keys configured, callers must sign (SigV4, service `execute-api`), as on AWS
    // where `execute-api:ManageConnections` needs IAM credentials.
    if !runtime.access.iam.is_empty() {
        let signed = crate::pipeline::authorizer::sigv4::SignedRequest {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
            region: &runtime.region,
            now_secs: crate::context::now_epoch_ms() / 1000,
        };
        match crate::pipeline::authorizer::sigv4::verify(&signed, &runtime.access.iam) {
            Ok(Some(_)) => {}
            Ok(None) => return error(403, "ForbiddenException", "Missing Authentication Token"),
            Err(e) => {
                return error(
                    403,
                    "ForbiddenException",
                    e.message.as_deref().unwrap_or("Forbidden"),
                )
            }
        }
    }
    let registry = gw.websockets.registry.clone();
    let Some(info) = registry.get(&id).await else {
        return gone();
    };
    if info.stage != stage || api.is_some_and(|a| a.id != info.api_id) {
        return error(403, "ForbiddenException", "Forbidden");
    }
    match method {
        Method::POST => match registry.post(&id, body).await {
            Ok(()) => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::OK;
                r
            }
            Err(PostError::Gone) => gone(),
            Err(PostError::LimitExceeded) => error(
                429,
                "LimitExceededException",
                "Rate exceeded: the connection's outbound buffer is full",
            ),
        },
        Method::GET => {
            let mut identity = serde_json::Map::new();
            identity.insert("sourceIp".into(), info.source_ip.clone().into());
            if let Some(ua) = &info.user_agent {
                identity.insert("userAgent".into(), ua.clone().into());
            }
            let body = json!({
                "connectedAt": iso8601(info.connected_at_ms),
                "identity": identity,
                "lastActiveAt": iso8601(info.last_active_ms),
            });
            let mut r = Response::new(Body::full(Bytes::from(body.to_string())));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Method::DELETE => match registry.disconnect(&id).await {
            Ok(()) => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            Err(_) => gone(),
        },
        _ => error(
            405,
            "MethodNotAllowedException",
            "Method not allowed on @connections",
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso() {
        assert_eq!(
            super::iso8601(1_707_502_303_419),
            "2024-02-09T18:11:43.419Z"
        );
    }
}
