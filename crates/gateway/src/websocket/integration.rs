//! Runs a route's integration for one event: MOCK, HTTP and HTTP_PROXY here, AWS_PROXY through
//! the [`LambdaInvoker`] the binary plugs in. Non-proxy integrations go through template
//! selection, the request template, integration-response selection and the response template.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use serde_json::Value;
use turnpike_model::v2::{IntegrationType, PassthroughBehavior};
use turnpike_vtl::{Params, RenderInput};

use super::events::{self, ConnCtx, EventCtx, EventType};
use super::selection::{self, SelectionInput};
use super::{Hub, ParamSource, WsIntegration, WsRoute};
use crate::body::Body;
use crate::upstream::Upstream;

/// What a WebSocket integration needs from the gateway; cheap to clone into connection tasks.
#[derive(Clone)]
pub struct WsEnv {
    pub hub: Arc<Hub>,
    pub upstream: Upstream,
    /// Functions AWS_PROXY integrations invoke.
    pub functions: Arc<turnpike_lambda::Functions>,
}

/// The integration's answer, after response mapping for non-proxy integrations.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("{0}")]
    Failed(String),
    #[error("integration timed out after {0:?}")]
    Timeout(Duration),
}

fn fail(msg: impl Into<String>) -> IntegrationError {
    IntegrationError::Failed(msg.into())
}

fn params(ev: &EventCtx<'_>) -> Params {
    Params {
        path: Vec::new(),
        querystring: ev.query.map(<[_]>::to_vec).unwrap_or_default(),
        header: ev
            .headers
            .map(|h| {
                h.iter()
                    .map(|(k, v)| {
                        (
                            crate::pipeline::integration_request::title_case(k.as_str()),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Runs `route`'s integration for `ev`.
pub async fn run(
    env: &WsEnv,
    conn: &ConnCtx,
    route: &WsRoute,
    ev: &EventCtx<'_>,
) -> Result<Outcome, IntegrationError> {
    let integ = &route.integration;
    let fut = async {
        match integ.kind {
            IntegrationType::AwsProxy => lambda_proxy(env, conn, integ, ev).await,
            IntegrationType::HttpProxy => http_proxy(env, conn, integ, ev).await,
            IntegrationType::Http | IntegrationType::Mock => non_proxy(env, conn, integ, ev).await,
            IntegrationType::Aws => Err(fail(
                "AWS service integrations are not supported by this version of Turnpike",
            )),
        }
    };
    match tokio::time::timeout(integ.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(IntegrationError::Timeout(integ.timeout)),
    }
}

async fn lambda_proxy(
    env: &WsEnv,
    conn: &ConnCtx,
    integ: &WsIntegration,
    ev: &EventCtx<'_>,
) -> Result<Outcome, IntegrationError> {
    let function = lambda_function(integ.raw_uri.as_deref().unwrap_or_default());
    let event = events::lambda_event(conn, ev);
    let payload = Bytes::from(event.to_string());
    let opts = turnpike_lambda::InvokeOptions {
        caller_timeout: Some(integ.timeout),
        ..Default::default()
    };
    let out = env
        .functions
        .invoke(&function, payload, opts)
        .await
        .map_err(|e| fail(format!("Lambda invocation of {function} failed: {e}")))?;
    if out.function_error.is_some() {
        return Err(fail(format!(
            "Lambda function {function} failed: {}",
            String::from_utf8_lossy(&out.payload)
        )));
    }
    Ok(parse_proxy_output(&out.payload))
}

/// The function named by an integration URI: a name, a Lambda ARN, or API Gateway's
/// `arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations`.
pub fn lambda_function(uri: &str) -> String {
    if let Some(i) = uri.find("/functions/") {
        let rest = &uri[i + "/functions/".len()..];
        return rest
            .strip_suffix("/invocations")
            .unwrap_or(rest)
            .to_string();
    }
    uri.to_string()
}

/// A proxy result: `{"statusCode", "headers", "body"}`; anything else is a 200 with that body.
pub fn parse_proxy_output(payload: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(payload);
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) if m.contains_key("statusCode") || m.contains_key("body") => {
            let status = match m.get("statusCode") {
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => Some(200),
            }
            .unwrap_or(500);
            let mut headers = HeaderMap::new();
            if let Some(Value::Object(h)) = m.get("headers") {
                for (k, v) in h {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => selection::stringify(other),
                    };
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(&v),
                    ) {
                        headers.append(n, v);
                    }
                }
            }
            let body = match m.get("body") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            Outcome {
                status,
                headers,
                body,
            }
        }
        Ok(Value::Null) => Outcome {
            status: 200,
            ..Default::default()
        },
        Ok(Value::String(s)) => Outcome {
            status: 200,
            headers: HeaderMap::new(),
            body: s,
        },
        _ => Outcome {
            status: 200,
            headers: HeaderMap::new(),
            body: text.into_owned(),
        },
    }
}

fn mapped_headers(conn: &ConnCtx, integ: &WsIntegration, ev: &EventCtx<'_>) -> HeaderMap {
    let mut out = HeaderMap::new();
    let body_json: Option<Value> = ev.body.and_then(|b| serde_json::from_str(b).ok());
    let ctx = events::context_json(conn, ev);
    for (name, src) in &integ.request_parameters {
        let v = match src {
            ParamSource::Literal(l) => Some(l.clone()),
            ParamSource::Header(h) => ev
                .headers
                .and_then(|m| m.get(h.to_ascii_lowercase().as_str()))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            ParamSource::Query(q) => ev
                .query
                .and_then(|qs| qs.iter().find(|(k, _)| k == q))
                .map(|(_, v)| v.clone()),
            ParamSource::Body(path) => body_json.as_ref().and_then(|b| {
                let s = selection::evaluate(
                    &[selection::SelectionPart::Variable(format!(
                        "request.body.{path}"
                    ))],
                    &SelectionInput {
                        body: Some(b),
                        ..Default::default()
                    },
                );
                (!s.is_empty()).then_some(s)
            }),
            ParamSource::Context(c) => {
                let mut cur = Some(&ctx);
                for seg in c.split('.') {
                    cur = cur.and_then(|x| x.get(seg));
                }
                cur.filter(|v| !v.is_null()).map(selection::stringify)
            }
            ParamSource::StageVariable(n) => conn
                .stage
                .variables
                .get(n)
                .and_then(|v| v.as_str())
                .map(str::to_string),
        };
        if let Some(v) = v {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                out.insert(n, v);
            }
        }
    }
    out
}

fn integration_url(conn: &ConnCtx, integ: &WsIntegration) -> Result<http::Uri, IntegrationError> {
    let uri = integ
        .uri
        .as_ref()
        .map(|u| u.render(&[], &conn.stage.variables))
        .unwrap_or_default();
    uri.parse::<http::Uri>()
        .map_err(|e| fail(format!("invalid integration URI {uri:?}: {e}")))
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "upgrade",
    "host",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "proxy-authorization",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

async fn call(
    env: &WsEnv,
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(u16, HeaderMap, String), IntegrationError> {
    let mut req = http::Request::new(Body::full(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let resp = env
        .upstream
        .client()
        .request(req)
        .await
        .map_err(|e| fail(format!("calling the integration endpoint failed: {e}")))?;
    let (parts, body) = resp.into_parts();
    let bytes = http_body_util::Limited::new(body, 10 * 1024 * 1024)
        .collect()
        .await
        .map_err(|e| fail(format!("reading the integration response failed: {e}")))?
        .to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

async fn http_proxy(
    env: &WsEnv,
    conn: &ConnCtx,
    integ: &WsIntegration,
    ev: &EventCtx<'_>,
) -> Result<Outcome, IntegrationError> {
    let uri = integration_url(conn, integ)?;
    let mut headers = HeaderMap::new();
    if let Some(h) = ev.headers {
        for (k, v) in h {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                headers.append(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in &mapped_headers(conn, integ, ev) {
        headers.insert(k.clone(), v.clone());
    }
    let body = Bytes::from(ev.body.unwrap_or_default().to_string());
    let (status, headers, body) = call(env, integ.method.clone(), uri, headers, body).await?;
    Ok(Outcome {
        status,
        headers,
        body,
    })
}

/// Picks a template by the evaluated key, falling back to `$default`.
fn pick<'t, T>(list: &'t [(String, T)], key: &str) -> Option<&'t T> {
    list.iter()
        .find(|(k, _)| k == key)
        .or_else(|| list.iter().find(|(k, _)| k == "$default"))
        .map(|(_, t)| t)
}

async fn non_proxy(
    env: &WsEnv,
    conn: &ConnCtx,
    integ: &WsIntegration,
    ev: &EventCtx<'_>,
) -> Result<Outcome, IntegrationError> {
    let ctx = events::context_json(conn, ev);
    let body_text = ev.body.unwrap_or_default();
    let body_json: Option<Value> = serde_json::from_str(body_text).ok();
    let sel_in = SelectionInput {
        body: body_json.as_ref(),
        context: Some(&ctx),
        ..Default::default()
    };
    let key = selection::evaluate(&integ.template_selection, &sel_in);
    let params = params(ev);
    let limits = turnpike_vtl::Limits::default();
    let (request, templated) = match pick(&integ.request_templates, &key) {
        Some(t) => {
            let r = t
                .render(
                    &RenderInput {
                        body: body_text,
                        params: &params,
                        context: &ctx,
                        stage_variables: &conn.stage.variables,
                    },
                    &limits,
                )
                .map_err(|e| fail(format!("request template failed: {e}")))?;
            (r.output, true)
        }
        None => {
            let reject = match integ.passthrough {
                PassthroughBehavior::WhenNoMatch => false,
                PassthroughBehavior::Never => true,
                PassthroughBehavior::WhenNoTemplates => !integ.request_templates.is_empty(),
            };
            if reject {
                return Err(fail(format!(
                    "no request template for key {key:?} and passthroughBehavior forbids passthrough"
                )));
            }
            (body_text.to_string(), false)
        }
    };
    let (status, headers, ibody) = match integ.kind {
        IntegrationType::Mock => {
            let status = match crate::pipeline::integration::mock::status_code(&request) {
                Some(s) => s,
                None if !templated => 200,
                None => {
                    return Err(fail(
                        "Execution failed: Unable to parse statusCode. It should be an integer that is defined in the request template.",
                    ))
                }
            };
            (status, HeaderMap::new(), String::new())
        }
        _ => {
            let uri = integration_url(conn, integ)?;
            let mut headers = mapped_headers(conn, integ, ev);
            if !headers.contains_key(http::header::CONTENT_TYPE) {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            call(
                env,
                integ.method.clone(),
                uri,
                headers,
                Bytes::from(request),
            )
            .await?
        }
    };
    // Integration response selection.
    let resp_sel_in = SelectionInput {
        body: body_json.as_ref(),
        context: Some(&ctx),
        status: Some(status),
        headers: Some(&headers),
    };
    let selector = selection::evaluate(&integ.response_selection, &resp_sel_in);
    let chosen = integ
        .responses
        .iter()
        .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(&selector)))
        .or_else(|| integ.responses.iter().find(|r| r.pattern.is_none()));
    let Some(resp) = chosen else {
        return Ok(Outcome {
            status,
            headers,
            body: ibody,
        });
    };
    let tkey = selection::evaluate(&resp.template_selection, &resp_sel_in);
    let body = match pick(&resp.templates, &tkey) {
        Some(t) => {
            t.render(
                &RenderInput {
                    body: &ibody,
                    params: &params,
                    context: &ctx,
                    stage_variables: &conn.stage.variables,
                },
                &limits,
            )
            .map_err(|e| fail(format!("response template failed: {e}")))?
            .output
        }
        None => ibody,
    };
    Ok(Outcome {
        status,
        headers,
        body,
    })
}

/// For `$disconnect` and other places that only need to know it ran.
pub async fn run_quiet(env: &WsEnv, conn: &ConnCtx, route: &WsRoute, ev: &EventCtx<'_>) {
    if let Err(e) = run(env, conn, route, ev).await {
        tracing::warn!(connection_id = %conn.connection_id, route = %route.key, error = %e, "integration failed");
    }
    let _ = EventType::Disconnect;
}
