//! Step 1: find the API, the stage and the (resource, method) a request is for, and enforce the
//! request limits AWS applies before routing.

use std::sync::Arc;

use crate::body::RequestBody;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use turnpike_model::rest::GatewayResponseType;

use crate::address;
use crate::body::Body;
use crate::context::{self, ErrorContext, RequestContext};
use crate::deployment::{Runtime, StageRuntime};
use crate::error::GatewayError;
use crate::gateway_response::FailedRequest;
use crate::headers::{HeaderHints, Hinted};
use crate::pipeline::Invocation;
use crate::Limits;

/// Client headers API Gateway strips from the method request (§3.5).
fn hidden_request_header(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "content-length"
            | "content-md5"
            | "expect"
            | "max-forwards"
            | "proxy-authenticate"
            | "server"
            | "te"
            | "transfer-encoding"
            | "trailer"
            | "upgrade"
            | "www-authenticate"
    )
}

/// A response decided before the request reached an integration.
pub struct Early {
    pub response: Response<Body>,
    pub stage: Option<Arc<StageRuntime>>,
}

pub fn too_large_error() -> GatewayError {
    GatewayError::new(GatewayResponseType::RequestTooLarge, "Request Too Long")
}

/// AWS's fixed answer to a payload over 10 MB (this response cannot be customised).
pub fn too_large_response(limit: usize) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(format!(
        "HTTP content length exceeded {limit} bytes."
    ))));
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text; charset=utf-8"),
    );
    r
}

fn json_error(
    status: StatusCode,
    body: String,
    error_type: Option<&'static str>,
) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(t) = error_type {
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(t));
    }
    r
}

/// A client-supplied `x-amzn-RequestId` is honoured when it is a UUID (AWS).
fn request_id<B>(req: &Request<B>, hints: HeaderHints) -> String {
    hints
        .get(
            req.headers(),
            Hinted::RequestId,
            &crate::headers::X_AMZN_REQUEST_ID,
        )
        .and_then(|v| v.to_str().ok())
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

pub fn host_of<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

pub fn initial_context<B>(
    runtime: &Runtime,
    req: &Request<B>,
    client: &crate::pipeline::Client,
    hints: HeaderHints,
) -> RequestContext {
    let now = context::now_epoch_ms();
    let host = host_of(req).unwrap_or_default();
    RequestContext {
        account_id: runtime.account_id.clone(),
        request_id: request_id(req, hints),
        extended_request_id: context::extended_request_id(),
        domain_name: without_port(host).to_string(),
        http_method: method_name(req.method()),
        protocol: "HTTP/1.1",
        source_ip: client.source_ip.clone(),
        user_agent: hints
            .get(req.headers(), Hinted::UserAgent, &http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        request_time_epoch_ms: now,
        ..Default::default()
    }
}

/// `host` less a `:port` suffix (a byte scan: `rsplit_once(char)` cost more than the rest).
fn without_port(host: &str) -> &str {
    match host.bytes().rposition(|b| b == b':') {
        Some(i) if host.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) => &host[..i],
        _ => host,
    }
}

/// No resource and method match. AWS answers "Missing Authentication Token", unless the
/// request carries an `Authorization` header that is not SigV4: then it reads the header as a
/// broken signature and says what it lacks (403 `IncompleteSignatureException`, the header
/// echoed at the end), still as the MISSING_AUTHENTICATION_TOKEN gateway response.
fn unmatched(headers: &http::HeaderMap) -> GatewayError {
    use crate::pipeline::authorizer::sigv4;
    match headers.get(http::header::AUTHORIZATION) {
        Some(v) if !sigv4::is_signature(v) => {
            let mut err = GatewayError::missing_authentication_token();
            err.message = Some(sigv4::not_a_signature_message(&String::from_utf8_lossy(
                v.as_bytes(),
            )));
            err.error_type = Some("IncompleteSignatureException");
            err
        }
        _ => GatewayError::missing_authentication_token(),
    }
}

/// `x-apigw-api-id`: the API a request to a VPC endpoint's own name is for.
pub fn api_id_header(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-apigw-api-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

static X_HTTP_METHOD_OVERRIDE: http::HeaderName =
    http::HeaderName::from_static("x-http-method-override");

/// `X-HTTP-Method-Override`: API Gateway routes and serves the request as the method it names
/// (one of the methods a REST API has; anything else is ignored).
fn method_override(headers: &http::HeaderMap, hints: HeaderHints) -> Option<http::Method> {
    let v = hints.get(headers, Hinted::MethodOverride, &X_HTTP_METHOD_OVERRIDE)?;
    let v = v.to_str().ok()?.trim();
    use http::Method;
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ]
    .into_iter()
    .find(|m| m.as_str().eq_ignore_ascii_case(v))
}

/// A method's name, static for the standard ones.
fn method_name(m: &http::Method) -> std::borrow::Cow<'static, str> {
    use http::Method;
    std::borrow::Cow::Borrowed(match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => return std::borrow::Cow::Owned(m.as_str().to_owned()),
    })
}

/// Decodes a query string as AWS does: `+` is a space, percent escapes are decoded.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Matches `req` to its API, stage, resource and method. `ctx` is the request's
/// [`initial_context`], whose host it reads.
pub fn route<'c>(
    runtime: &'c Runtime,
    req: Request<RequestBody>,
    ctx: &'c mut RequestContext,
    client: &'c crate::pipeline::Client,
    limits: &Limits,
    hints: HeaderHints,
    started: std::time::Instant,
) -> Result<(Invocation<'c>, RequestBody), Box<Early>> {
    let early = |response| {
        Box::new(Early {
            response,
            stage: None,
        })
    };
    if req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1) > limits.max_url_bytes
    {
        return Err(early(json_error(
            StatusCode::URI_TOO_LONG,
            "{\"message\":\"Request-URI Too Long\"}".into(),
            None,
        )));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(early(json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{\"message\":\"Request Header Fields Too Large\"}".into(),
            None,
        )));
    }
    let (mut parts, body) = req.into_parts();
    if let Some(m) = method_override(&parts.headers, hints) {
        ctx.http_method = method_name(&m);
        parts.method = m;
    }
    // The host `initial_context` read, less its port (no invoke URL form depends on it).
    let target = address::resolve(Some(&ctx.domain_name), parts.uri.path(), || {
        api_id_header(&parts.headers)
    });
    let Some(api) = runtime.api(target.api_id.as_deref()).cloned() else {
        let body = match &target.api_id {
            Some(id) => format!("{{\"message\":\"The API id '{id}' does not correspond to a deployed API Gateway API\"}}"),
            None => "{\"message\":\"No API is deployed on this gateway\"}".to_string(),
        };
        return Err(early(json_error(
            StatusCode::NOT_FOUND,
            body,
            Some("NotFoundException"),
        )));
    };
    ctx.api_id = api.id.clone();
    ctx.deployment_id = api.deployment_id.clone();
    let Some(stage) = api.stages.get(target.stage).cloned() else {
        return Err(early(json_error(
            StatusCode::FORBIDDEN,
            "{\"message\":\"Forbidden\"}".into(),
            Some("ForbiddenException"),
        )));
    };
    ctx.stage = stage.name.clone();
    let mut path = String::with_capacity(1 + stage.name.len() + target.path.len());
    path.push('/');
    path.push_str(&stage.name);
    path.push_str(target.path);
    ctx.path = path;
    let resource_path = target.path;

    let query = parse_query(parts.uri.query());
    let fail = |err: GatewayError,
                ctx: &RequestContext,
                parts: &http::request::Parts,
                stage: &Arc<StageRuntime>| {
        let fr = FailedRequest {
            ctx,
            headers: &parts.headers,
            path_params: &[],
            query: &query,
            stage_variables: &stage.variables,
        };
        Box::new(Early {
            response: api.gateway_responses.render(&err, &fr),
            stage: Some(stage.clone()),
        })
    };

    let declared_len = hints
        .get(
            &parts.headers,
            Hinted::ContentLength,
            &http::header::CONTENT_LENGTH,
        )
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > limits.max_payload_bytes as u64) {
        ctx.error = Some(ErrorContext::from_error(&too_large_error()));
        return Err(Box::new(Early {
            response: too_large_response(limits.max_payload_bytes),
            stage: Some(stage),
        }));
    }

    let method = parts.method.as_str();
    let Some(m) = api.router.find(resource_path, |i| {
        api.resources
            .get(i)
            .is_some_and(|r| r.method(method).is_some())
    }) else {
        let err = unmatched(&parts.headers);
        ctx.error = Some(ErrorContext::from_error(&err));
        return Err(fail(err, ctx, &parts, &stage));
    };
    let Some(method_rt) = api
        .resources
        .get(m.resource)
        .and_then(|r| r.method(method))
        .cloned()
    else {
        let err = unmatched(&parts.headers);
        ctx.error = Some(ErrorContext::from_error(&err));
        return Err(fail(err, ctx, &parts, &stage));
    };
    ctx.resource_id = method_rt.resource_id.clone();
    ctx.resource_path = method_rt.resource_path.clone();
    // Hop-by-hop and framing headers never reach the integration: they are invisible to
    // mappings and templates too (`$input.params('Connection')` is empty, recorded on AWS).
    crate::headers::remove_listed(&mut parts.headers, hidden_request_header);
    let inv = Invocation {
        api,
        stage,
        method: method_rt,
        parts,
        path_params: m.params,
        query,
        ctx,
        client,
        hints,
        runtime,
        started,
    };
    Ok((inv, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_and_method_names() {
        assert_eq!(without_port("example.com:8080"), "example.com");
        assert_eq!(without_port("example.com"), "example.com");
        assert_eq!(without_port("example.com:"), "example.com");
        assert_eq!(without_port("[::1]:443"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port("a:b"), "a:b");
        assert!(matches!(
            method_name(&http::Method::PATCH),
            std::borrow::Cow::Borrowed("PATCH")
        ));
        let custom = http::Method::from_bytes(b"PURGE").expect("method");
        assert_eq!(method_name(&custom), "PURGE");
    }
}
