//! Lambda integrations: `AWS_PROXY` (the payload 1.0 event, the function's output validated
//! and converted as AWS does) and `AWS` with a Lambda URI (the event comes from the request
//! template; function errors are selected by `selectionPattern` on `errorMessage`). Payload 2.0
//! (HTTP APIs) is built and converted by [`event_v2`] and [`convert_v2`].

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};
use turnpike_lambda::{InvokeError, InvokeOptions, InvokeOutput};

use crate::body::Body;
use crate::context;
use crate::error::{GatewayError, INTERNAL_SERVER_ERROR_BODY};
use crate::pipeline::integration::proxy_event;
use crate::pipeline::integration_request;
use crate::pipeline::integration_response::{self, IntegrationOutput};
use crate::pipeline::{content_handling, Invocation};
use crate::Gateway;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The function named by a Lambda integration URI
/// (`arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function-arn}/invocations`).
pub fn function_from_uri(uri: &str) -> Option<String> {
    let i = uri.find(":lambda:path/")?;
    let rest = &uri[i + ":lambda:path/".len()..];
    let rest = rest.trim_start_matches('/');
    let rest = rest.strip_prefix("2015-03-31/functions/")?;
    let f = rest.strip_suffix("/invocations").unwrap_or(rest);
    (!f.is_empty()).then(|| f.to_string())
}

/// Whether an integration URI is a Lambda invocation.
pub fn is_lambda_uri(uri: &str) -> bool {
    uri.contains(":lambda:path/")
}

/// 502 `{"message": "Internal server error"}`: malformed proxy output, function errors.
pub fn bad_gateway(detail: impl Into<String>) -> GatewayError {
    GatewayError {
        status_override: Some(502),
        ..GatewayError::internal(detail)
    }
}

/// 413 `{"message": "Request Too Long"}` (`BadRequestException`): over Lambda's payload limit.
pub fn request_too_long(detail: impl Into<String>) -> GatewayError {
    GatewayError {
        kind: turnpike_model::rest::GatewayResponseType::Default4xx,
        message: Some("Request Too Long".into()),
        error_type: Some("BadRequestException"),
        status_override: Some(413),
        builtin_body: Some("{\"message\": \"Request Too Long\"}"),
        detail: Some(detail.into()),
    }
}

/// Maps Lambda's own API errors to what API Gateway answers.
pub fn invoke_error(e: InvokeError) -> GatewayError {
    match e {
        InvokeError::RequestTooLarge { .. } => request_too_long(format!(
            "Execution failed: Lambda invocation failed with status: 413: {e}"
        )),
        InvokeError::CallerTimeout(_) => GatewayError::integration_timeout()
            .with_detail(format!("Execution failed: endpoint request timed out ({e})")),
        InvokeError::NotFound(_) => GatewayError::internal(format!(
            "Execution failed due to configuration error: Lambda invocation failed with status: 404: {e}"
        )),
        InvokeError::Throttled => GatewayError::internal(format!(
            "Lambda invocation failed with status: 429. Execution failed due to configuration error: {e}"
        )),
        other => GatewayError::internal(format!("Lambda invocation failed: {other}")),
    }
}

/// The function of a Lambda integration: resolved at deploy time, or with stage variables
/// filled in.
fn target_function(gw: &Gateway, inv: &Invocation<'_>) -> Result<String, GatewayError> {
    let integration = &inv.method.integration;
    let f = match (&integration.lambda_function, &integration.uri) {
        (Some(f), _) => f.clone(),
        (None, Some(t)) => {
            let uri = t.render(&[], &inv.stage.variables);
            function_from_uri(&uri).ok_or_else(|| {
                GatewayError::configuration(format!(
                    "Execution failed due to configuration error: Invalid Lambda function URI {uri:?}"
                ))
            })?
        }
        (None, None) => return Err(GatewayError::configuration("integration has no uri")),
    };
    if !gw.functions.contains(&f) {
        return Err(GatewayError::internal(format!(
            "Execution failed due to configuration error: function {f:?} is not defined in the project's `functions`"
        )));
    }
    Ok(f)
}

async fn call(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    function: &str,
    payload: Bytes,
) -> Result<InvokeOutput, GatewayError> {
    let started = std::time::Instant::now();
    let opts = InvokeOptions {
        trace_id: inv.ctx.trace_id.clone(),
        caller_timeout: Some(inv.method.integration.timeout),
        ..InvokeOptions::default()
    };
    let r = gw.functions.invoke(function, payload, opts).await;
    inv.ctx.integration_latency_ms = Some(started.elapsed().as_millis() as u64);
    match r {
        Ok(out) => {
            inv.ctx.integration_status = Some(200);
            Ok(out)
        }
        Err(e) => {
            inv.ctx.integration_status = Some(e.status());
            inv.ctx.integration_error = Some(e.to_string());
            Err(invoke_error(e))
        }
    }
}

fn first_accept(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(|v| integration_request::media_type(v.split(',').next().unwrap_or_default()))
        .filter(|v| !v.is_empty())
}

/// `AWS_PROXY`: the 1.0 event in, the proxy response out.
pub async fn proxy(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: Bytes,
) -> Result<Response<Body>, GatewayError> {
    inv.start_trace();
    if inv
        .method
        .integration
        .http_method
        .as_ref()
        .is_some_and(|m| *m != http::Method::POST)
    {
        return Err(GatewayError::internal(
            "Execution failed due to configuration error: Lambda integrations must use integrationHttpMethod POST",
        ));
    }
    let function = target_function(gw, inv)?;
    // The event carries no mapped parameters, but AWS still rejects reserved header mappings.
    integration_request::map_parameters(inv, &body)?;
    let content_type = inv
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(integration_request::media_type)
        .unwrap_or_default();
    let binary = content_handling::is_binary(&inv.api.binary_media_types, &content_type);
    let payload = Bytes::from(proxy_event::EventV1::new(inv, &body, binary).to_vec());
    let out = call(gw, inv, &function, payload).await?;
    if out.function_error.is_some() {
        return Err(bad_gateway(format!(
            "Lambda execution failed with status 200 due to customer function error: {}. Lambda request id: {}",
            String::from_utf8_lossy(&out.payload),
            out.request_id
        )));
    }
    let converted = convert_v1(&out.payload).map_err(|e| {
        bad_gateway(format!(
            "Execution failed due to configuration error: Malformed Lambda proxy response ({e})"
        ))
    })?;
    let accept_binary = first_accept(&inv.parts.headers)
        .is_some_and(|a| content_handling::is_binary(&inv.api.binary_media_types, &a));
    let mut resp = converted.into_response(accept_binary)?;
    inv.add_trace_header(&mut resp);
    Ok(resp)
}

/// `AWS` with a Lambda URI: the request template's output is the event; the result (or the
/// error document) goes through the integration responses, selected on `errorMessage`.
pub async fn invoke(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: Bytes,
) -> Result<Response<Body>, GatewayError> {
    inv.start_trace();
    let function = target_function(gw, inv)?;
    let mapped = integration_request::prepare(inv, body)?;
    let payload = if mapped.body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        mapped.body
    };
    let out = call(gw, inv, &function, payload).await?;
    let selector = out.error_message().unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&out.request_id) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
    headers.insert(
        HeaderName::from_static("x-amz-executed-version"),
        HeaderValue::from_static("$LATEST"),
    );
    if let Some(fe) = out
        .function_error
        .as_deref()
        .and_then(|f| HeaderValue::from_str(f).ok())
    {
        headers.insert(HeaderName::from_static("x-amz-function-error"), fe);
    }
    let mut resp = integration_response::respond(
        inv,
        IntegrationOutput {
            selector,
            headers,
            body: out.payload,
            binary: false,
        },
    )?;
    inv.add_trace_header(&mut resp);
    Ok(resp)
}

/// The REST API `AWS_PROXY` event (payload format 1.0), as a JSON value.
pub fn event_v1(inv: &Invocation<'_>, body: &[u8], binary: bool) -> Value {
    proxy_event::EventV1::new(inv, body, binary).to_value()
}

/// A function result converted to an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyResponse {
    pub status: u16,
    /// In emission order; repeated names are repeated header lines.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub is_base64: bool,
}

impl ProxyResponse {
    /// Builds the client response. With `isBase64Encoded`, the body is decoded only when
    /// `decode` (REST: the first `Accept` type is a binary media type; HTTP APIs: always).
    pub fn into_response(self, decode: bool) -> Result<Response<Body>, GatewayError> {
        let body = if self.is_base64 && decode {
            content_handling::base64_decode(&self.body)?
        } else {
            self.body
        };
        let mut resp = Response::new(Body::full(body));
        *resp.status_mut() = StatusCode::from_u16(self.status)
            .map_err(|_| bad_gateway(format!("invalid statusCode {}", self.status)))?;
        let h = resp.headers_mut();
        for (k, v) in &self.headers {
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) else {
                continue;
            };
            h.append(n, v);
        }
        if !h.contains_key(header::CONTENT_TYPE) {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Ok(resp)
    }
}

fn scalar_text(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Null => Ok(None),
        other => Err(format!("header value {other} is not a scalar")),
    }
}

fn status_of(v: Option<&Value>) -> Result<u16, String> {
    let s = match v {
        None | Some(Value::Null) => return Ok(200),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match s {
        Some(s) if (100..=599).contains(&s) => Ok(s as u16),
        _ => Err(format!(
            "invalid statusCode {}",
            v.cloned().unwrap_or_default()
        )),
    }
}

fn headers_of(m: &Map<String, Value>, out: &mut Vec<(String, String)>) -> Result<(), String> {
    // `multiValueHeaders` first: when both name a header the client sees both values, with
    // the casing of `multiValueHeaders` (observed).
    match m.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(mv)) => {
            for (k, v) in mv {
                match v {
                    Value::Array(items) => {
                        for i in items {
                            if let Some(t) = scalar_text(i)? {
                                out.push((k.clone(), t));
                            }
                        }
                    }
                    Value::Null => {}
                    other => return Err(format!("multiValueHeaders.{k} is not a list: {other}")),
                }
            }
        }
        Some(other) => return Err(format!("multiValueHeaders is not an object: {other}")),
    }
    single_headers(m, out)
}

/// The `headers` object of a proxy response: one value per name.
fn single_headers(m: &Map<String, Value>, out: &mut Vec<(String, String)>) -> Result<(), String> {
    match m.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(hv)) => {
            for (k, v) in hv {
                if let Some(t) = scalar_text(v)? {
                    out.push((k.clone(), t));
                }
            }
        }
        Some(other) => return Err(format!("headers is not an object: {other}")),
    }
    Ok(())
}

fn body_of(m: &Map<String, Value>) -> Result<(Bytes, bool), String> {
    let is_base64 = match m.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => return Err(format!("isBase64Encoded is not a boolean: {other}")),
    };
    let body = match m.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => return Err(format!("body is not a string: {other}")),
    };
    Ok((body, is_base64))
}

/// Validates and converts a payload 1.0 function result (REST, and HTTP APIs with
/// `payloadFormatVersion: "1.0"`). `Err` is a malformed proxy response.
pub fn convert_v1(payload: &[u8]) -> Result<ProxyResponse, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("the result is not a JSON object".into());
    };
    const KEYS: [&str; 5] = [
        "statusCode",
        "headers",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
    ];
    if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unexpected key {k:?}"));
    }
    let status = status_of(m.get("statusCode"))?;
    let mut headers = Vec::new();
    headers_of(&m, &mut headers)?;
    let (body, is_base64) = body_of(&m)?;
    Ok(ProxyResponse {
        status,
        headers,
        body,
        is_base64,
    })
}

/// Converts a payload 2.0 function result (HTTP APIs): a JSON object with `statusCode` is a
/// response; any other valid JSON is the body of a 200 `application/json` response (a JSON
/// string is used as the text itself). `cookies` become `Set-Cookie` headers.
pub fn convert_v2(payload: &[u8]) -> Result<ProxyResponse, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let inferred = |body: Bytes| ProxyResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        is_base64: false,
    };
    let m = match v {
        Value::Object(m) if m.contains_key("statusCode") => m,
        Value::String(s) => return Ok(inferred(Bytes::from(s))),
        other => return Ok(inferred(Bytes::from(other.to_string()))),
    };
    let status = status_of(m.get("statusCode"))?;
    let mut headers = Vec::new();
    single_headers(&m, &mut headers)?;
    match m.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(c)) => {
            for cookie in c {
                if let Some(t) = scalar_text(cookie)? {
                    headers.push(("set-cookie".into(), t));
                }
            }
        }
        Some(other) => return Err(format!("cookies is not a list: {other}")),
    }
    let (body, is_base64) = body_of(&m)?;
    Ok(ProxyResponse {
        status,
        headers,
        body,
        is_base64,
    })
}

/// What the HTTP API engine knows about a request, for the 2.0 event.
#[derive(Debug, Clone, Default)]
pub struct V2Request {
    pub route_key: String,
    pub method: String,
    /// Path as received, including `/{stage}` for a named stage.
    pub raw_path: String,
    /// Query string as received (not decoded).
    pub raw_query: String,
    /// Headers as received (any case), in order.
    pub headers: Vec<(String, String)>,
    pub path_parameters: Vec<(String, String)>,
    pub stage_variables: Map<String, Value>,
    pub body: Bytes,
    pub account_id: String,
    pub api_id: String,
    pub domain_name: String,
    pub request_id: String,
    pub stage: String,
    pub source_ip: String,
    pub protocol: String,
    pub time_epoch_ms: i64,
    /// `requestContext.authorizer`, when an authorizer ran.
    pub authorizer: Option<Value>,
    /// `x-amzn-trace-id` added to the headers (when not empty).
    pub trace_id: String,
    /// `x-forwarded-port` / `x-forwarded-proto` of the listener (e.g. `443`, `https`).
    pub forwarded_port: String,
    pub forwarded_proto: String,
}

fn percent_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether HTTP APIs deliver a body of this Content-Type as text (else base64).
fn v2_text_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mt = integration_request::media_type(ct);
    mt.starts_with("text/")
        || matches!(
            mt.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
        || mt.ends_with("+json")
        || mt.ends_with("+xml")
}

/// The HTTP API event, payload format 2.0.
pub fn event_v2(r: &V2Request) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    let mut content_type = None;
    let mut user_agent = String::new();
    for (k, v) in &r.headers {
        let name = k.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_string())),
            );
            continue;
        }
        if name == "content-type" {
            content_type = Some(v.clone());
        }
        if name == "user-agent" {
            user_agent = v.clone();
        }
        match headers.get_mut(&name) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(v);
            }
            _ => {
                headers.insert(name, Value::String(v.clone()));
            }
        }
    }
    // What API Gateway adds: length, trace id, forwarding headers.
    headers
        .entry("content-length")
        .or_insert_with(|| Value::String(r.body.len().to_string()));
    if !r.trace_id.is_empty() {
        headers.insert("x-amzn-trace-id".into(), json!(r.trace_id));
    }
    let xff = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(x) => format!("{x}, {}", r.source_ip),
        None => r.source_ip.clone(),
    };
    headers.insert("x-forwarded-for".into(), json!(xff));
    if !r.forwarded_port.is_empty() {
        headers.insert("x-forwarded-port".into(), json!(r.forwarded_port));
    }
    if !r.forwarded_proto.is_empty() {
        headers.insert("x-forwarded-proto".into(), json!(r.forwarded_proto));
    }
    let mut query: Map<String, Value> = Map::new();
    for pair in r.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        match query.get_mut(&k) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let mut rc = json!({
        "accountId": r.account_id,
        "apiId": r.api_id,
        "domainName": r.domain_name,
        "domainPrefix": r.domain_name.split('.').next().unwrap_or_default(),
        "http": {
            "method": r.method,
            "path": r.raw_path,
            "protocol": r.protocol,
            "sourceIp": r.source_ip,
            "userAgent": user_agent,
        },
        "requestId": r.request_id,
        "routeKey": r.route_key,
        "stage": r.stage,
        "time": context::clf_time(r.time_epoch_ms),
        "timeEpoch": r.time_epoch_ms,
    });
    if let (Some(a), Value::Object(m)) = (&r.authorizer, &mut rc) {
        m.insert("authorizer".into(), a.clone());
    }
    let mut ev = Map::new();
    ev.insert("version".into(), json!("2.0"));
    ev.insert("routeKey".into(), json!(r.route_key));
    ev.insert("rawPath".into(), json!(r.raw_path));
    ev.insert("rawQueryString".into(), json!(r.raw_query));
    if !cookies.is_empty() {
        ev.insert("cookies".into(), Value::Array(cookies));
    }
    ev.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        ev.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !r.path_parameters.is_empty() {
        let p: Map<String, Value> = r
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        ev.insert("pathParameters".into(), Value::Object(p));
    }
    if !r.stage_variables.is_empty() {
        ev.insert(
            "stageVariables".into(),
            Value::Object(r.stage_variables.clone()),
        );
    }
    ev.insert("requestContext".into(), rc);
    let binary = !v2_text_type(content_type.as_deref());
    if !r.body.is_empty() {
        let b = if binary {
            B64.encode(&r.body)
        } else {
            String::from_utf8_lossy(&r.body).into_owned()
        };
        ev.insert("body".into(), Value::String(b));
    }
    ev.insert(
        "isBase64Encoded".into(),
        Value::Bool(binary && !r.body.is_empty()),
    );
    Value::Object(ev)
}

/// The exact 36-byte body AWS sends for these failures.
pub const FAILURE_BODY: &str = INTERNAL_SERVER_ERROR_BODY;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_uris() {
        let u = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello:live/invocations";
        assert_eq!(
            function_from_uri(u).as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:hello:live")
        );
        assert!(function_from_uri("arn:aws:apigateway:us-east-1:sqs:action/SendMessage").is_none());
    }

    #[test]
    fn v1_output_rules() {
        let ok = |s: &str| convert_v1(s.as_bytes()).expect(s);
        assert_eq!(ok(r#"{"statusCode": 200}"#).status, 200);
        assert_eq!(ok(r#"{"statusCode": "201"}"#).status, 201);
        let h = ok(r#"{"headers": {"test-header": "value", "b": true}}"#);
        assert_eq!(h.status, 200);
        assert_eq!(
            h.headers,
            vec![
                ("test-header".to_string(), "value".to_string()),
                ("b".into(), "true".into())
            ]
        );
        assert!(ok(r#"{"statusCode": 200, "headers": null}"#)
            .headers
            .is_empty());
        let both = ok(
            r#"{"headers": {"x": "solo"}, "multiValueHeaders": {"X": ["m1", "m2"]}, "body": "b"}"#,
        );
        assert_eq!(
            both.headers,
            vec![
                ("X".to_string(), "m1".to_string()),
                ("X".into(), "m2".into()),
                ("x".into(), "solo".into())
            ]
        );
        for bad in [
            r#"{"statusCode": 200, "wrongValue": "x"}"#,
            r#"{"statusCode": "test"}"#,
            r#"{"multiValueHeaders": {"a": "b"}}"#,
            r#""justAString""#,
            "not json",
            "[1]",
            r#"{"body": {"a": 1}}"#,
            r#"{"body": 5}"#,
        ] {
            assert!(convert_v1(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn v2_output_inference() {
        let r = convert_v2(br#""Hello""#).expect("string");
        assert_eq!((r.status, r.body.as_ref()), (200, &b"Hello"[..]));
        let r = convert_v2(br#"{"message":"hi"}"#).expect("object");
        assert_eq!(r.body.as_ref(), br#"{"message":"hi"}"#);
        assert_eq!(
            r.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        let r = convert_v2(br#"{"body":"x"}"#).expect("no statusCode");
        assert_eq!(r.body.as_ref(), br#"{"body":"x"}"#);
        let r = convert_v2(
            br#"{"statusCode": 201, "headers": {"content-type": "text/plain"}, "cookies": ["a=1; Path=/", "b=2"], "body": "created"}"#,
        )
        .expect("full");
        assert_eq!(r.status, 201);
        assert_eq!(r.headers.len(), 3);
        assert_eq!(r.headers[1], ("set-cookie".into(), "a=1; Path=/".into()));
        assert!(convert_v2(b"nope").is_err());
        assert_eq!(convert_v2(b"42").expect("number").body.as_ref(), b"42");
    }
}

/// Payload 2.0 events compared with the recorded/documented ones in
/// shared/conformance/lambda_events.json.
#[cfg(test)]
mod conformance_v2 {
    use super::*;

    fn cases() -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/lambda_events.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).expect("lambda_events.json");
        v["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .filter(|c| c["payload_version"] == "2.0" && c["api_kind"] == "HTTP")
            .cloned()
            .collect()
    }

    /// Builds the request the case describes, plus what the harness would know.
    fn request(case: &Value) -> V2Request {
        let req = &case["request"];
        let expected = &case["expected_event"];
        let rc = &expected["requestContext"];
        let s0 = |v: &Value| {
            v.as_str()
                .unwrap_or("id.execute-api.us-east-1.amazonaws.com")
                .to_string()
        };
        let raw = req["raw_path"].as_str().unwrap_or("/");
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let mut headers = Vec::new();
        if let Some(h) = req["headers"].as_object() {
            for (k, v) in h {
                match v {
                    Value::Array(a) => {
                        for x in a {
                            headers.push((k.clone(), x.as_str().unwrap_or_default().to_string()));
                        }
                    }
                    other => headers.push((k.clone(), other.as_str().unwrap_or_default().into())),
                }
            }
        }
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            headers.push(("Host".into(), s0(&rc["domainName"])));
        }
        if let Some(c) = req["cookies"].as_array() {
            let joined: Vec<&str> = c.iter().filter_map(Value::as_str).collect();
            headers.push(("Cookie".into(), joined.join("; ")));
        }
        let s = |v: &Value, d: &str| v.as_str().unwrap_or(d).to_string();
        // The client's User-Agent, as the recorded context shows it.
        if let Some(ua) = rc["http"]["userAgent"].as_str() {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            {
                headers.push(("User-Agent".into(), ua.to_string()));
            }
        }
        let has_body = req["body"].is_string();
        if has_body
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".into(), "text/plain".into()));
        }
        V2Request {
            route_key: s(&expected["routeKey"], "$default"),
            method: s(&req["method"], "GET"),
            raw_path: path.to_string(),
            raw_query: query.to_string(),
            headers,
            path_parameters: expected["pathParameters"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v, ""))).collect())
                .unwrap_or_default(),
            stage_variables: expected["stageVariables"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            body: Bytes::from(s(&req["body"], "")),
            account_id: s(&rc["accountId"], "123456789012"),
            api_id: s(&rc["apiId"], "api-id"),
            domain_name: s(&rc["domainName"], "id.execute-api.us-east-1.amazonaws.com"),
            request_id: s(&rc["requestId"], "id"),
            stage: s(&rc["stage"], "$default"),
            source_ip: s(&rc["http"]["sourceIp"], "192.0.2.1"),
            protocol: "HTTP/1.1".into(),
            time_epoch_ms: rc["timeEpoch"].as_i64().unwrap_or(1_583_348_638_390),
            authorizer: rc.get("authorizer").cloned(),
            trace_id: "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e".into(),
            forwarded_port: "443".into(),
            forwarded_proto: "https".into(),
        }
    }

    /// `expected` ⊆ `actual`, except the keys in `skip` (TLS client certificates, which
    /// Turnpike's plain-HTTP listener never sees) and `varies` placeholders.
    fn subset(expected: &Value, actual: &Value, at: &str, skip: &[&str]) {
        match (expected, actual) {
            (Value::Object(e), Value::Object(a)) => {
                for (k, v) in e {
                    if skip.contains(&k.as_str()) {
                        continue;
                    }
                    let p = format!("{at}.{k}");
                    let got = a
                        .get(k)
                        .unwrap_or_else(|| panic!("missing {p} in {actual}"));
                    subset(v, got, &p, skip);
                }
            }
            // Placeholders ({{varies:…}}, {{host}}, {{api_id}}, …) bind to per-run values.
            (Value::String(e), _) if e.contains("{{") => {}
            (e, a) => assert_eq!(e, a, "at {at}"),
        }
    }

    #[test]
    fn v2_events_match_the_reference() {
        let cases = cases();
        assert!(cases.len() >= 3, "expected the HTTP API 2.0 cases");
        for case in &cases {
            let id = case["id"].as_str().unwrap_or_default();
            let ev = event_v2(&request(case));
            let expected = &case["expected_event"];
            // Field types and names: the documented shape, never 1.0's multi-value keys.
            for absent in ["multiValueHeaders", "multiValueQueryStringParameters"] {
                assert!(ev.get(absent).is_none(), "{id}: {absent}");
            }
            assert_eq!(ev["version"], "2.0", "{id}");
            assert!(ev["requestContext"]["timeEpoch"].is_i64(), "{id}");
            let time = ev["requestContext"]["time"].as_str().unwrap_or_default();
            assert_eq!(
                time.len(),
                "12/Mar/2020:19:03:58 +0000".len(),
                "{id}: {time}"
            );
            assert_eq!(ev["routeKey"], ev["requestContext"]["routeKey"], "{id}");
            let skip: &[&str] = &["authentication", "time"];
            subset(expected, &ev, id, skip);
        }
    }
}
