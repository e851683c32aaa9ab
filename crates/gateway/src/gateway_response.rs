//! Gateway responses: how a [`GatewayError`] reaches the client. Resolution order as AWS: the
//! customised entry for the exact type, else the customised DEFAULT_4XX/DEFAULT_5XX, else AWS's
//! built-in response.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use turnpike_model::rest::{GatewayResponse, GatewayResponseType};
use turnpike_vtl::{Limits, Params, RenderInput, Template};

use crate::body::Body;
use crate::context::{ErrorContext, RequestContext};
use crate::error::GatewayError;
use crate::mapping::{self, MappingInput, Source};

#[derive(Debug, Default)]
pub struct GatewayResponses {
    custom: HashMap<GatewayResponseType, Compiled>,
}

#[derive(Debug)]
struct Compiled {
    status: Option<u16>,
    headers: Vec<(HeaderName, Source)>,
    templates: Vec<(String, Arc<Template>)>,
}

/// What the renderer needs to know about the request that failed.
pub struct FailedRequest<'a> {
    pub ctx: &'a RequestContext,
    pub headers: &'a http::HeaderMap,
    pub path_params: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub stage_variables: &'a serde_json::Map<String, serde_json::Value>,
}

impl GatewayResponses {
    pub fn compile(
        list: &[GatewayResponse],
        error: &mut impl FnMut(GatewayResponseType, String),
    ) -> Self {
        let mut custom = HashMap::new();
        for gr in list {
            let status = match gr.status_code.as_deref() {
                None => None,
                Some(s) => match s.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => Some(code),
                    _ => {
                        error(gr.response_type, format!("invalid statusCode {s:?}"));
                        continue;
                    }
                },
            };
            let mut headers = Vec::new();
            for (k, v) in &gr.response_parameters {
                let Some(name) = k.strip_prefix("gatewayresponse.header.") else {
                    error(gr.response_type, format!("invalid response parameter key {k:?}; expected gatewayresponse.header.NAME"));
                    continue;
                };
                let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                    error(gr.response_type, format!("invalid header name in {k:?}"));
                    continue;
                };
                match mapping::parse_source(v) {
                    Ok(src) => headers.push((name, src)),
                    Err(e) => error(gr.response_type, e.to_string()),
                }
            }
            let mut templates = Vec::new();
            for (ct, src) in &gr.response_templates {
                match Template::compile(src) {
                    Ok(t) => templates.push((ct.to_ascii_lowercase(), Arc::new(t))),
                    Err(e) => error(
                        gr.response_type,
                        format!("invalid response template for {ct}: {e}"),
                    ),
                }
            }
            custom.insert(
                gr.response_type,
                Compiled {
                    status,
                    headers,
                    templates,
                },
            );
        }
        GatewayResponses { custom }
    }

    /// Renders `err` for the request described by `req`.
    pub fn render(&self, err: &GatewayError, req: &FailedRequest<'_>) -> Response<Body> {
        if err.kind == GatewayResponseType::RequestTooLarge {
            // AWS's 413 is plain text and cannot be customised.
            return crate::pipeline::route::too_large_response(
                crate::Limits::default().max_payload_bytes,
            );
        }
        let exact = self.custom.get(&err.kind);
        let fallback = err.kind.fallback().and_then(|f| self.custom.get(&f));
        let mut ctx = req.ctx.clone();
        ctx.error = Some(ErrorContext::from_error(err));
        let (status, body, headers, content_type) = match (exact, fallback) {
            (None, None) => {
                // ACCESS_DENIED's built-in body spells it `Message` (observed on AWS).
                let key = if err.kind == GatewayResponseType::AccessDenied {
                    "Message"
                } else {
                    "message"
                };
                let body = match err.builtin_body {
                    Some(b) => b.to_string(),
                    None => format!(
                        "{{\"{key}\":{}}}",
                        ctx.lookup("error.messageString")
                            .unwrap_or_else(|| "null".into())
                    ),
                };
                (
                    err.status().unwrap_or(500),
                    body,
                    Vec::new(),
                    "application/json".to_string(),
                )
            }
            (Some(c), _) | (None, Some(c)) => {
                let status = c.status.or(err.status()).unwrap_or(500);
                let (content_type, body) = render_template(c, &ctx, req);
                let headers = c
                    .headers
                    .iter()
                    .filter_map(|(name, src)| {
                        let input = mapping_input(req, &ctx);
                        mapping::evaluate(src, &input).map(|v| (name.clone(), v))
                    })
                    .collect::<Vec<_>>();
                (status, body, headers, content_type)
            }
        };
        let mut resp = Response::new(Body::full(Bytes::from(body)));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            h.insert(http::header::CONTENT_TYPE, v);
        }
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        if let Some(t) = err.error_type {
            h.insert(
                HeaderName::from_static("x-amzn-errortype"),
                HeaderValue::from_static(t),
            );
        }
        resp
    }
}

fn mapping_input<'a>(req: &'a FailedRequest<'a>, ctx: &'a RequestContext) -> MappingInput<'a> {
    MappingInput {
        path_params: req.path_params,
        query: req.query,
        headers: req.headers,
        body: &[],
        stage_variables: req.stage_variables,
        context: ctx,
        integration_headers: None,
        integration_body: &[],
    }
}

fn render_template(
    c: &Compiled,
    ctx: &RequestContext,
    req: &FailedRequest<'_>,
) -> (String, String) {
    // Templates are chosen like integration responses: application/json, else the first.
    let chosen = c
        .templates
        .iter()
        .find(|(ct, _)| ct == "application/json")
        .or(c.templates.first());
    let Some((ct, template)) = chosen else {
        // A customised response without templates keeps AWS's default template.
        let body = format!(
            "{{\"message\":{}}}",
            ctx.lookup("error.messageString")
                .unwrap_or_else(|| "null".into())
        );
        return ("application/json".into(), body);
    };
    let context = ctx.to_json();
    let params = Params {
        path: req.path_params.to_vec(),
        querystring: req.query.to_vec(),
        header: req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let input = RenderInput {
        body: "",
        params: &params,
        context: &context,
        stage_variables: req.stage_variables,
    };
    match template.render(&input, &Limits::default()) {
        Ok(r) => (ct.clone(), r.output),
        Err(e) => {
            tracing::warn!(error = %e, response_type = %ctx.error.as_ref().map(|e| e.response_type.as_str()).unwrap_or(""), "gateway response template failed");
            (
                ct.clone(),
                crate::error::INTERNAL_SERVER_ERROR_BODY.to_string(),
            )
        }
    }
}
