//! Gateway responses: how a [`GatewayError`] reaches the client. Resolution order as AWS: the
//! customised entry for the exact type, else the customised DEFAULT_4XX/DEFAULT_5XX, else AWS's
//! built-in response.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use turnpike_model::rest::{GatewayResponse, GatewayResponseType};

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
    templates: Vec<(String, Arc<BodyTemplate>)>,
}

/// A gateway response body template. AWS does not run these through VTL: `$context.*`,
/// `$stageVariables.*` and `$method.request.{header|path|querystring}.*` are substituted,
/// everything else (`#if`, `$util`, `$input`, `##`) is text. Parsed at deploy time.
#[derive(Debug, Default, PartialEq)]
pub struct BodyTemplate(Vec<Piece>);

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Var(Source),
}

impl BodyTemplate {
    pub fn parse(src: &str) -> BodyTemplate {
        const ROOTS: [&str; 5] = [
            "context.",
            "stageVariables.",
            "method.request.header.",
            "method.request.path.",
            "method.request.querystring.",
        ];
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let var = ROOTS.iter().find_map(|root| {
                let name_len = identifier_path(after.strip_prefix(root)?);
                (name_len > 0).then_some(root.len() + name_len)
            });
            match var.and_then(|len| Some((len, mapping::parse_source(&after[..len]).ok()?))) {
                Some((len, source)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(source));
                    rest = &after[len..];
                }
                None => {
                    text.push('$');
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        BodyTemplate(pieces)
    }

    /// The body; a variable without a value renders as nothing.
    fn render(&self, input: &MappingInput<'_>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(source) => {
                    if let Some(v) = mapping::evaluate(source, input) {
                        out.push_str(&v);
                    }
                }
            }
        }
        out
    }
}

/// The length of the dotted name at the start of `s` (`a.b-c.d_e`): segments of letters,
/// digits, `_` and `-`, joined by dots that are followed by another segment (a sentence's
/// final dot is text).
fn identifier_path(s: &str) -> usize {
    let seg = |t: &str| {
        t.bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            .count()
    };
    let mut len = seg(s);
    if len == 0 {
        return 0;
    }
    while s[len..].starts_with('.') {
        let next = seg(&s[len + 1..]);
        if next == 0 {
            break;
        }
        len += 1 + next;
    }
    len
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
            let templates = gr
                .response_templates
                .iter()
                .map(|(ct, src)| (ct.to_ascii_lowercase(), Arc::new(BodyTemplate::parse(src))))
                .collect();
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
    (ct.clone(), template.render(&mapping_input(req, ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.into())
    }

    #[test]
    fn body_templates_substitute_variables_and_keep_everything_else() {
        let t = BodyTemplate::parse(
            "{\"m\":$context.error.messageString,\"s\":\"$stageVariables.a-b\",\
             \"h\":\"$method.request.header.x-trace\"}",
        );
        assert_eq!(
            t.0,
            vec![
                text("{\"m\":"),
                Piece::Var(Source::Context("error.messageString".into())),
                text(",\"s\":\""),
                Piece::Var(Source::StageVariable("a-b".into())),
                text("\",\"h\":\""),
                Piece::Var(Source::MethodHeader("x-trace".into())),
                text("\"}"),
            ]
        );
        // Not VTL: directives, `$util`, `$input`, comments and stray dollars are text.
        for src in [
            "#if(true)yes#end",
            "$util.escapeJavaScript('a') $input.params('x')",
            "a#b##c",
            "cost: $5 $ $context. $context.",
            "$method.request.body",
        ] {
            assert_eq!(BodyTemplate::parse(src).0, vec![text(src)], "{src}");
        }
        // A sentence's final dot is not part of the name.
        assert_eq!(
            BodyTemplate::parse("in $context.stage.").0,
            vec![
                text("in "),
                Piece::Var(Source::Context("stage".into())),
                text(".")
            ]
        );
        assert_eq!(BodyTemplate::parse("").0, vec![]);
    }
}
