//! Step 3: the integration request of non-proxy integrations (HTTP, MOCK, AWS): parameter
//! mapping, request template selection by Content-Type, passthrough behaviour, rendering and
//! `$context.requestOverride`.

use bytes::Bytes;
use turnpike_model::rest::{IntegrationType, PassthroughBehavior};
use turnpike_vtl::{Limits, Params, RenderInput};

use crate::error::GatewayError;
use crate::mapping::{self, MappingInput, RequestTarget};
use crate::pipeline::{content_handling, Invocation};

/// What the integration is called with.
#[derive(Debug, Default)]
pub struct IntegrationRequest {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub path: Vec<(String, String)>,
    pub body: Bytes,
    /// Whether a request template produced the body (false: passed through).
    pub templated: bool,
}

/// Headers no mapping may set, on any integration type (AWS answers 500).
const FORBIDDEN_MAPPED_HEADERS: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "x-amzn-trace-id",
    "x-amzn-apigateway-api-id",
];

/// Headers no mapping may set on `AWS` and `AWS_PROXY` integrations either (AWS answers 500).
const FORBIDDEN_MAPPED_HEADERS_AWS: [&str; 5] = [
    "authorization",
    "connection",
    "expect",
    "proxy-authenticate",
    "te",
];

/// The media type of a Content-Type/Accept value, lower-cased, parameters dropped.
pub fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `$input.params()` for templates. Header names are given as the client sent them where
/// known; hyper normalises them to lower case, so lookups in the engine are case-insensitive.
pub fn template_params(inv: &Invocation<'_>) -> Params {
    Params {
        path: inv.path_params.clone(),
        querystring: inv.query.clone(),
        header: inv
            .parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    title_case(k.as_str()),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    }
}

/// `content-type` → `Content-Type`: the spelling clients almost always use.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

/// Applies `requestParameters`; a source that is absent produces no parameter (AWS).
pub fn map_parameters(
    inv: &Invocation<'_>,
    body: &[u8],
) -> Result<IntegrationRequest, GatewayError> {
    let mut out = IntegrationRequest::default();
    let input = MappingInput {
        path_params: &inv.path_params,
        query: &inv.query,
        headers: &inv.parts.headers,
        body,
        stage_variables: &inv.stage.variables,
        context: inv.ctx,
        integration_headers: None,
        integration_body: &[],
    };
    for (target, name, src) in &inv.method.integration.request_parameters {
        // A multi-value query source maps to repeated parameters, one per value as received
        // (joining them with commas to split again would also split `?a=x,y`).
        if let (RequestTarget::Query, mapping::Source::MethodMultiQuery(n)) = (target, src) {
            out.query.extend(
                mapping::query_values(&inv.query, n).map(|v| (name.clone(), v.to_string())),
            );
            continue;
        }
        let Some(value) = mapping::evaluate(src, &input) else {
            continue;
        };
        match target {
            RequestTarget::Header => {
                let lower = name.to_ascii_lowercase();
                let aws_type = matches!(
                    inv.method.integration.kind,
                    IntegrationType::Aws | IntegrationType::AwsProxy
                );
                if FORBIDDEN_MAPPED_HEADERS.contains(&lower.as_str())
                    || (aws_type && FORBIDDEN_MAPPED_HEADERS_AWS.contains(&lower.as_str()))
                {
                    return Err(GatewayError::internal(format!(
                        "mapping into reserved header {name} is not allowed"
                    )));
                }
                out.headers.push((name.clone(), value));
            }
            RequestTarget::Query => out.query.push((name.clone(), value)),
            RequestTarget::Path => out.path.push((name.clone(), value)),
        }
    }
    Ok(out)
}

/// Selects and renders the request template, or passes the body through, per
/// `passthroughBehavior`.
pub fn prepare(inv: &Invocation<'_>, body: Bytes) -> Result<IntegrationRequest, GatewayError> {
    let mut req = map_parameters(inv, &body)?;
    let integration = &inv.method.integration;
    let content_type = inv
        .parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "application/json".to_string(), media_type);
    let templates = &integration.request_templates;
    let chosen = templates.iter().find(|t| t.content_type == content_type);
    let Some(template) = chosen else {
        let allowed = match integration.passthrough {
            PassthroughBehavior::WhenNoMatch => true,
            PassthroughBehavior::WhenNoTemplates => templates.is_empty(),
            PassthroughBehavior::Never => false,
        };
        if !allowed {
            return Err(GatewayError::unsupported_media_type());
        }
        let binary = content_handling::is_binary(&inv.api.binary_media_types, &content_type);
        req.body = content_handling::convert_request(body, binary, integration.content_handling)?;
        return Ok(req);
    };
    let context = inv.ctx.to_json();
    let params = template_params(inv);
    let binary = content_handling::is_binary(&inv.api.binary_media_types, &content_type);
    let text = content_handling::template_text(&body, binary);
    let input = RenderInput {
        body: &text,
        params: &params,
        context: &context,
        stage_variables: &inv.stage.variables,
    };
    let rendered = template.template.render(&input, &Limits::default()).map_err(|e| {
        GatewayError::internal(format!(
            "Execution failed due to an error in the request template for {content_type} of {} {}: {e}",
            inv.method.http_method, inv.method.resource_path
        ))
    })?;
    let ov = rendered.overrides;
    for (name, values) in ov.request_header {
        req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        for v in values {
            req.headers.push((name.clone(), v));
        }
    }
    for (name, values) in ov.request_querystring {
        req.query.retain(|(n, _)| *n != name);
        for v in values {
            req.query.push((name.clone(), v));
        }
    }
    for (name, value) in ov.request_path {
        req.path.retain(|(n, _)| *n != name);
        req.path.push((name, value));
    }
    // A rendered template is text; CONVERT_TO_BINARY then decodes it (base64) for the backend.
    req.body = match integration.content_handling {
        Some(turnpike_model::rest::ContentHandling::ConvertToBinary) => {
            content_handling::base64_decode(rendered.output.as_bytes())?
        }
        _ => Bytes::from(rendered.output),
    };
    req.templated = true;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_names() {
        assert_eq!(
            media_type("Application/JSON; charset=UTF-8"),
            "application/json"
        );
        assert_eq!(title_case("x-api-key"), "X-Api-Key");
        assert_eq!(title_case("content-type"), "Content-Type");
    }
}
