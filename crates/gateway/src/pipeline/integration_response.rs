//! Step 5: integration responses of non-proxy integrations: selection by `selectionPattern`,
//! `responseParameters`, the response template chosen by the client's `Accept`, and
//! `$context.responseOverride`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use turnpike_vtl::{Limits, RenderInput};

use crate::body::Body;
use crate::deployment::IntegrationResponseRuntime;
use crate::error::GatewayError;
use crate::mapping::{self, MappingInput};
use crate::pipeline::integration_request::{media_type, template_params};
use crate::pipeline::{content_handling, Invocation};

/// Method response headers of non-proxy integrations that AWS renames to
/// `x-amzn-Remapped-{name}` (§3.5); `Transfer-Encoding` is dropped.
const REMAPPED_METHOD_RESPONSE_HEADERS: [&str; 14] = [
    "authorization",
    "connection",
    "content-length",
    "content-md5",
    "date",
    "expect",
    "host",
    "max-forwards",
    "proxy-authenticate",
    "server",
    "trailer",
    "upgrade",
    "user-agent",
    "www-authenticate",
];

/// What the integration answered.
pub struct IntegrationOutput {
    /// The value matched against `selectionPattern`s: the backend status (HTTP, MOCK) or the
    /// Lambda error message.
    pub selector: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The payload is binary (its Content-Type is one of the API's binary media types).
    pub binary: bool,
}

/// First response whose pattern matches the whole selector, else the default one.
pub fn select<'a>(
    responses: &'a [IntegrationResponseRuntime],
    selector: &str,
) -> Option<&'a IntegrationResponseRuntime> {
    responses
        .iter()
        .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(selector)))
        .or_else(|| responses.iter().find(|r| r.pattern.is_none()))
}

pub fn respond(
    inv: &mut Invocation<'_>,
    out: IntegrationOutput,
) -> Result<Response<Body>, GatewayError> {
    let method = inv.method.clone();
    let Some(chosen) = select(&method.integration.responses, &out.selector) else {
        return Err(GatewayError::configuration(format!(
            "Execution failed due to configuration error: No match for output mapping and no default output mapping configured. Endpoint Response Status Code: {}",
            out.selector
        )));
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    {
        let input = MappingInput {
            path_params: &inv.path_params,
            query: &inv.query,
            headers: &inv.parts.headers,
            body: &[],
            stage_variables: &inv.stage.variables,
            context: inv.ctx,
            integration_headers: Some(&out.headers),
            integration_body: &out.body,
        };
        for (name, src) in &chosen.response_parameters {
            if let Some(v) = mapping::evaluate(src, &input) {
                headers.push((name.clone(), v));
            }
        }
    }
    let accept = inv
        .parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(|v| media_type(v.split(',').next().unwrap_or_default()))
        .filter(|v| !v.is_empty() && v != "*/*");
    let templates = &chosen.templates;
    let template = accept
        .as_ref()
        .and_then(|a| templates.iter().find(|t| t.content_type == *a))
        .or_else(|| {
            templates
                .iter()
                .find(|t| t.content_type == "application/json")
        })
        .or_else(|| templates.first());
    let mut status = chosen.status;
    let mut status_overridden = false;
    let mut payload_binary = out.binary;
    let (content_type, body) = match template {
        Some(t) => {
            let ct = &t.content_type;
            let context = inv.ctx.to_json();
            let params = template_params(inv);
            let text = content_handling::template_text(&out.body, out.binary);
            let input = RenderInput {
                body: &text,
                params: &params,
                context: &context,
                stage_variables: &inv.stage.variables,
            };
            let rendered = t.template.render(&input, &Limits::default()).map_err(|e| {
                GatewayError::internal(format!(
                    "Execution failed due to an error in the response template for {ct} of {} {}: {e}",
                    method.http_method, method.resource_path
                ))
            })?;
            if let Some(s) = rendered.overrides.response_status {
                status = s;
                status_overridden = true;
            }
            for (name, values) in rendered.overrides.response_header {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                if let Some(v) = values.into_iter().next_back() {
                    headers.push((name, v));
                }
            }
            // An empty template passes the integration body through (AWS).
            // An empty template passes the integration body through (AWS); a rendered one is text.
            payload_binary = t.is_empty && out.binary;
            let body = if t.is_empty {
                out.body.clone()
            } else {
                Bytes::from(rendered.output)
            };
            (ct.clone(), body)
        }
        None => ("application/json".to_string(), out.body.clone()),
    };
    if !status_overridden && !chosen.has_method_response {
        return Err(GatewayError::configuration(format!(
            "Execution failed due to configuration error: Output mapping refers to an invalid method response: {status}"
        )));
    }
    let list = &inv.api.binary_media_types;
    let accept_binary = accept
        .as_deref()
        .is_some_and(|a| content_handling::is_binary(list, a));
    let body = content_handling::convert_response(
        body,
        payload_binary,
        accept_binary,
        !list.is_empty(),
        chosen.content_handling,
    )?;
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if lower == "transfer-encoding" {
            continue;
        }
        // Reserved names come out as `x-amzn-Remapped-{name}` (recorded against AWS).
        let name = if REMAPPED_METHOD_RESPONSE_HEADERS.contains(&lower.as_str()) {
            format!("x-amzn-Remapped-{name}")
        } else {
            name
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    Ok(resp)
}
