//! Parameter mapping expressions (`method.request.header.x`, `'literal'`, `stageVariables.x`,
//! `context.x`, `integration.response.body.a.b`, ...), parsed once at deploy time.

use serde_json::Value;

/// Where a mapped value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Literal(String),
    MethodPath(String),
    MethodQuery(String),
    MethodMultiQuery(String),
    MethodHeader(String),
    MethodMultiHeader(String),
    MethodBody,
    /// JSONPath without the leading `$.`; stored with it re-added.
    MethodBodyPath(String),
    StageVariable(String),
    Context(String),
    IntegrationHeader(String),
    IntegrationMultiHeader(String),
    IntegrationBody,
    IntegrationBodyPath(String),
}

/// Where a request mapping writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTarget {
    Header,
    Query,
    Path,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid mapping expression specified: {0}")]
pub struct MappingError(pub String);

pub fn parse_source(expr: &str) -> Result<Source, MappingError> {
    let e = expr.trim();
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        return Ok(Source::Literal(e[1..e.len() - 1].to_string()));
    }
    let bad = || MappingError(expr.to_string());
    let name = |s: &str| {
        if s.is_empty() {
            Err(bad())
        } else {
            Ok(s.to_string())
        }
    };
    if let Some(rest) = e.strip_prefix("method.request.") {
        if rest == "body" {
            return Ok(Source::MethodBody);
        }
        if let Some(p) = rest.strip_prefix("body.") {
            return Ok(Source::MethodBodyPath(format!("$.{}", name(p)?)));
        }
        if let Some(n) = rest.strip_prefix("path.") {
            return Ok(Source::MethodPath(name(n)?));
        }
        if let Some(n) = rest.strip_prefix("querystring.") {
            return Ok(Source::MethodQuery(name(n)?));
        }
        if let Some(n) = rest.strip_prefix("multivaluequerystring.") {
            return Ok(Source::MethodMultiQuery(name(n)?));
        }
        if let Some(n) = rest.strip_prefix("header.") {
            return Ok(Source::MethodHeader(name(n)?));
        }
        if let Some(n) = rest.strip_prefix("multivalueheader.") {
            return Ok(Source::MethodMultiHeader(name(n)?));
        }
        return Err(bad());
    }
    if let Some(rest) = e.strip_prefix("integration.response.") {
        if rest == "body" {
            return Ok(Source::IntegrationBody);
        }
        if let Some(p) = rest.strip_prefix("body.") {
            return Ok(Source::IntegrationBodyPath(format!("$.{}", name(p)?)));
        }
        if let Some(n) = rest.strip_prefix("header.") {
            return Ok(Source::IntegrationHeader(name(n)?));
        }
        if let Some(n) = rest.strip_prefix("multivalueheader.") {
            return Ok(Source::IntegrationMultiHeader(name(n)?));
        }
        return Err(bad());
    }
    if let Some(n) = e.strip_prefix("stageVariables.") {
        return Ok(Source::StageVariable(name(n)?));
    }
    if let Some(n) = e.strip_prefix("context.") {
        return Ok(Source::Context(name(n)?));
    }
    Err(bad())
}

/// Parses a request mapping key `integration.request.{header|querystring|path}.{name}`.
pub fn parse_request_target(key: &str) -> Result<(RequestTarget, String), MappingError> {
    let bad = || MappingError(key.to_string());
    let rest = key.strip_prefix("integration.request.").ok_or_else(bad)?;
    let (kind, name) = rest.split_once('.').ok_or_else(bad)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._$-".contains(c))
    {
        return Err(bad());
    }
    let t = match kind {
        "header" => RequestTarget::Header,
        "querystring" => RequestTarget::Query,
        "path" => RequestTarget::Path,
        _ => return Err(bad()),
    };
    Ok((t, name.to_string()))
}

/// Values a source expression may read, for one request (and, for responses, one integration
/// response).
pub struct MappingInput<'a> {
    pub path_params: &'a [(String, String)],
    /// Decoded query parameters in order (repeated names repeat).
    pub query: &'a [(String, String)],
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub stage_variables: &'a serde_json::Map<String, Value>,
    pub context: &'a crate::context::RequestContext,
    pub integration_headers: Option<&'a http::HeaderMap>,
    pub integration_body: &'a [u8],
}

/// Evaluates a source; `None` means "absent" (AWS then omits the parameter).
/// Every value of query parameter `name`, in the order received.
pub fn query_values<'q>(
    query: &'q [(String, String)],
    name: &'q str,
) -> impl Iterator<Item = &'q str> {
    query
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn evaluate(src: &Source, input: &MappingInput<'_>) -> Option<String> {
    match src {
        Source::Literal(s) => Some(s.clone()),
        Source::MethodPath(n) => input
            .path_params
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone()),
        Source::MethodQuery(n) => input
            .query
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone()),
        Source::MethodMultiQuery(n) => {
            let vals: Vec<&str> = query_values(input.query, n).collect();
            (!vals.is_empty()).then(|| vals.join(","))
        }
        Source::MethodHeader(n) => header_last(input.headers, n),
        Source::MethodMultiHeader(n) => header_all(input.headers, n),
        Source::MethodBody => Some(String::from_utf8_lossy(input.body).into_owned()),
        Source::MethodBodyPath(p) => body_path(input.body, p),
        Source::StageVariable(n) => input.stage_variables.get(n).map(value_text),
        Source::Context(n) => input.context.lookup(n),
        Source::IntegrationHeader(n) => input.integration_headers.and_then(|h| header_last(h, n)),
        Source::IntegrationMultiHeader(n) => {
            input.integration_headers.and_then(|h| header_all(h, n))
        }
        Source::IntegrationBody => {
            Some(String::from_utf8_lossy(input.integration_body).into_owned())
        }
        Source::IntegrationBodyPath(p) => integration_body_path(input.integration_body, p),
    }
}

fn header_last(h: &http::HeaderMap, name: &str) -> Option<String> {
    h.get_all(name)
        .iter()
        .next_back()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn header_all(h: &http::HeaderMap, name: &str) -> Option<String> {
    let vals: Vec<String> = h
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!vals.is_empty()).then(|| vals.join(","))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `integration.response.body.{path}`. A Lambda error's `errorMessage` is often JSON written
/// into a string: `errorMessage.{field}` reads a field of that JSON (AWS deserialises it for
/// body-to-header mappings).
fn integration_body_path(body: &[u8], path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("$.errorMessage.") {
        let json: Value = serde_json::from_slice(body).ok()?;
        if let Some(Value::String(inner)) = json.get("errorMessage") {
            if let Ok(inner) = serde_json::from_str::<Value>(inner) {
                return turnpike_vtl::json_path(&inner, &format!("$.{rest}"))
                    .ok()?
                    .to_parameter_value();
            }
        }
        return turnpike_vtl::json_path(&json, path)
            .ok()?
            .to_parameter_value();
    }
    body_path(body, path)
}

fn body_path(body: &[u8], path: &str) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    turnpike_vtl::json_path(&json, path)
        .ok()?
        .to_parameter_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_errors_json_message_is_read_field_by_field() {
        let body = br#"{"errorMessage": "{\"code\": \"400\", \"detail\": {\"n\": 2}}", "errorType": "Error"}"#;
        assert_eq!(
            integration_body_path(body, "$.errorMessage.code").as_deref(),
            Some("400")
        );
        assert_eq!(
            integration_body_path(body, "$.errorMessage.detail.n").as_deref(),
            Some("2")
        );
        assert_eq!(
            integration_body_path(body, "$.errorType").as_deref(),
            Some("Error")
        );
        assert_eq!(integration_body_path(body, "$.errorMessage.nope"), None);
        // A plain-text message has no fields.
        let body = br#"{"errorMessage": "bad thing"}"#;
        assert_eq!(integration_body_path(body, "$.errorMessage.code"), None);
        assert_eq!(
            integration_body_path(body, "$.errorMessage").as_deref(),
            Some("bad thing")
        );
    }

    #[test]
    fn parses_sources() {
        assert_eq!(parse_source("'a b'"), Ok(Source::Literal("a b".into())));
        assert_eq!(
            parse_source("method.request.header.X-Id"),
            Ok(Source::MethodHeader("X-Id".into()))
        );
        assert_eq!(
            parse_source("method.request.body.pets[0].name"),
            Ok(Source::MethodBodyPath("$.pets[0].name".into()))
        );
        assert_eq!(
            parse_source("context.authorizer.principalId"),
            Ok(Source::Context("authorizer.principalId".into()))
        );
        assert_eq!(
            parse_source("integration.response.header.ETag"),
            Ok(Source::IntegrationHeader("ETag".into()))
        );
        assert!(parse_source("method.request.cookie.x").is_err());
        assert!(parse_source("nonsense").is_err());
    }

    #[test]
    fn parses_targets() {
        assert_eq!(
            parse_request_target("integration.request.path.proxy"),
            Ok((RequestTarget::Path, "proxy".into()))
        );
        assert_eq!(
            parse_request_target("integration.request.header.x-a"),
            Ok((RequestTarget::Header, "x-a".into()))
        );
        assert!(parse_request_target("integration.request.body.x").is_err());
        assert!(parse_request_target("integration.request.header.a b").is_err());
    }
}
