//! AWS's validation rules for names and expressions (reference §2.1, §5.2, §5.3, §3.3, §11.3),
//! shared by the OpenAPI importer, the project-file loader and (later) the management API.
//! Each function returns `Err(message)` with the text to report.

/// The 10-character set AWS allows in a literal path part (OpenAPI import also allows `,` and
/// `:`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ',' | ':')
}

/// AWS's message for a bad path part.
pub const PATH_PART_MESSAGE: &str = "Resource's path part only allow a-zA-Z0-9._- and curly braces at the beginning and the end and an optional plus sign before the closing brace.";

/// Kind of a path part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathPart {
    Literal,
    Variable,
    Greedy,
}

/// Classifies a path part (`pets`, `{id}`, `{proxy+}`), or explains why it is invalid.
pub fn path_part(part: &str) -> Result<PathPart, String> {
    if part.is_empty() {
        return Err("empty path part (double or trailing slash)".to_string());
    }
    if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let (name, greedy) = match inner.strip_suffix('+') {
            Some(n) => (n, true),
            None => (inner, false),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!("invalid path part {part:?}: {PATH_PART_MESSAGE}"));
        }
        return Ok(if greedy {
            PathPart::Greedy
        } else {
            PathPart::Variable
        });
    }
    if part.chars().all(is_path_char) {
        Ok(PathPart::Literal)
    } else {
        Err(format!("invalid path part {part:?}: {PATH_PART_MESSAGE}"))
    }
}

/// The parameter name of a `{name}` / `{name+}` part.
pub fn path_variable_name(part: &str) -> Option<&str> {
    let inner = part.strip_prefix('{')?.strip_suffix('}')?;
    Some(inner.strip_suffix('+').unwrap_or(inner))
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '$' | '-'))
}

fn is_loose_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_literal(v: &str) -> bool {
    v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'')
}

fn is_context_var(rest: &str) -> bool {
    !rest.is_empty()
        && !rest.starts_with('.')
        && !rest.ends_with('.')
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_stage_var_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn aws_invalid(v: &str) -> String {
    format!(
        "Invalid mapping expression specified: Validation Result: warnings : [], errors : [Invalid mapping expression specified: {v}]"
    )
}

/// Validates an `Integration.requestParameters` key (`integration.request.{header|querystring|path}.{name}`).
pub fn integration_request_key(key: &str) -> Result<(), String> {
    let ok = [
        "integration.request.header.",
        "integration.request.querystring.",
        "integration.request.path.",
    ]
    .iter()
    .any(|p| key.strip_prefix(p).is_some_and(is_param_name));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}; keys must be integration.request.{{header|querystring|path}}.NAME with NAME matching ^[a-zA-Z0-9._$-]+$",
            aws_invalid(key)
        ))
    }
}

/// A method request parameter a mapping expression reads (`method.request.path.id` →
/// `("path", "id")`), for cross-checking against the method's declared parameters.
pub fn referenced_method_parameter(value: &str) -> Option<(&'static str, &str)> {
    for (prefix, loc) in [
        ("method.request.path.", "path"),
        ("method.request.querystring.", "querystring"),
        (
            "method.request.multivaluequerystring.",
            "multivaluequerystring",
        ),
        ("method.request.header.", "header"),
        ("method.request.multivalueheader.", "multivalueheader"),
    ] {
        if let Some(name) = value.strip_prefix(prefix) {
            return Some((loc, name));
        }
    }
    None
}

/// Validates an `Integration.requestParameters` value (§5.2).
pub fn integration_request_value(value: &str) -> Result<(), String> {
    if is_literal(value) || value == "method.request.body" {
        return Ok(());
    }
    if let Some((_, name)) = referenced_method_parameter(value) {
        if is_loose_name(name) {
            return Ok(());
        }
    }
    if let Some(path) = value.strip_prefix("method.request.body.") {
        if !path.is_empty() {
            return Ok(());
        }
    }
    if value
        .strip_prefix("stageVariables.")
        .is_some_and(is_stage_var_name)
    {
        return Ok(());
    }
    if value.strip_prefix("context.").is_some_and(is_context_var) {
        return Ok(());
    }
    Err(format!(
        "{}; expected 'literal', method.request.{{path|querystring|multivaluequerystring|header|multivalueheader}}.NAME, method.request.body[.JSONPATH], stageVariables.NAME or context.VARIABLE",
        aws_invalid(value)
    ))
}

/// Validates an `IntegrationResponse.responseParameters` key; returns the header name.
pub fn method_response_header_key(key: &str) -> Result<&str, String> {
    match key.strip_prefix("method.response.header.") {
        Some(name) if is_loose_name(name) => Ok(name),
        _ => Err(format!(
            "{}; keys must be method.response.header.NAME",
            aws_invalid(key)
        )),
    }
}

/// Validates an `IntegrationResponse.responseParameters` value (§5.3).
pub fn integration_response_value(value: &str) -> Result<(), String> {
    if is_literal(value) || value == "integration.response.body" {
        return Ok(());
    }
    for prefix in [
        "integration.response.header.",
        "integration.response.multivalueheader.",
        "integration.response.body.",
    ] {
        if value.strip_prefix(prefix).is_some_and(is_loose_name) {
            return Ok(());
        }
    }
    if value
        .strip_prefix("stageVariables.")
        .is_some_and(is_stage_var_name)
    {
        return Ok(());
    }
    if value.strip_prefix("context.").is_some_and(is_context_var) {
        return Ok(());
    }
    Err(format!(
        "{}; expected 'literal', integration.response.{{header|multivalueheader}}.NAME, integration.response.body[.JSONPATH], stageVariables.NAME or context.VARIABLE",
        aws_invalid(value)
    ))
}

/// Validates a gateway response `responseParameters` key.
pub fn gateway_response_key(key: &str) -> Result<(), String> {
    match key.strip_prefix("gatewayresponse.header.") {
        Some(name) if is_loose_name(name) => Ok(()),
        _ => Err(format!(
            "{}; keys must be gatewayresponse.header.NAME",
            aws_invalid(key)
        )),
    }
}

/// Validates a gateway response `responseParameters` value (§3.3).
pub fn gateway_response_value(value: &str) -> Result<(), String> {
    if is_literal(value) {
        return Ok(());
    }
    for prefix in [
        "method.request.header.",
        "method.request.path.",
        "method.request.querystring.",
        "method.request.multivalueheader.",
        "method.request.multivaluequerystring.",
    ] {
        if value.strip_prefix(prefix).is_some_and(is_loose_name) {
            return Ok(());
        }
    }
    if value
        .strip_prefix("stageVariables.")
        .is_some_and(is_stage_var_name)
    {
        return Ok(());
    }
    if value.strip_prefix("context.").is_some_and(is_context_var) {
        return Ok(());
    }
    Err(format!(
        "{}; expected 'literal', method.request.{{header|path|querystring}}.NAME, stageVariables.NAME or context.VARIABLE",
        aws_invalid(value)
    ))
}

/// Validates the `${stageVariables.NAME}` references in a URI-like string and returns the text
/// with each reference replaced by `stagevar` (so the rest can be checked as a plain URL).
pub fn substitute_stage_variables(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated ${{...}} in {s:?}"));
        };
        let inner = &after[..end];
        match inner.strip_prefix("stageVariables.") {
            Some(name) if is_stage_var_name(name) => out.push_str("stagevar"),
            _ => return Err(format!("invalid variable ${{{inner}}} in {s:?}; only ${{stageVariables.NAME}} is allowed here")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `HTTP`/`HTTP_PROXY` integration URI: an absolute http(s) URL (stage variables allowed).
pub fn http_uri(uri: &str) -> Result<(), String> {
    let bad = || {
        format!("Invalid HTTP endpoint specified for URI: {uri:?} (expected an absolute http:// or https:// URL)")
    };
    let s = substitute_stage_variables(uri)
        .map_err(|e| format!("Invalid HTTP endpoint specified for URI: {e}"))?;
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host_no_port = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| h.trim_start_matches('['))
            .unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host_no_port.is_empty() {
        return Err(bad());
    }
    if let Some(port) = host.rsplit_once(']').map_or_else(
        || host.split_once(':').map(|x| x.1),
        |(_, p)| p.strip_prefix(':'),
    ) {
        if !port.is_empty() && port != "stagevar" && port.parse::<u16>().is_err() {
            return Err(bad());
        }
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok(())
}

/// `AWS`/`AWS_PROXY` integration URI: `arn:PARTITION:apigateway:REGION:SERVICE:{path|action}/...`.
pub fn aws_uri(uri: &str) -> Result<(), String> {
    let s = substitute_stage_variables(uri)
        .map_err(|e| format!("Invalid ARN specified in the request: {e}"))?;
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" || parts[1].is_empty() {
        return Err(format!("Invalid ARN specified in the request: {uri:?} (expected arn:aws:apigateway:REGION:SERVICE:path/... or :action/...)"));
    }
    if parts[2] != "apigateway" {
        return Err(format!(
            "AWS ARN for integration must be an apigateway service ARN (arn:aws:apigateway:REGION:SERVICE:...), got {uri:?}"
        ));
    }
    if !(parts[5].starts_with("path/") || parts[5].starts_with("action/")) {
        return Err(format!(
            "AWS ARN for integration must contain path or action: {uri:?}"
        ));
    }
    Ok(())
}

/// Stage name rule `[A-Za-z0-9_-]{1,128}`.
pub fn stage_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "invalid stage name {name:?}: Stage name only allows a-zA-Z0-9_- (1 to 128 characters)"
        ))
    }
}

/// Stage variable name rule.
pub fn stage_variable_name(name: &str) -> Result<(), String> {
    if is_stage_var_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid stage variable name {name:?}: Stage variable names must be alphanumeric or underscore, 1 to 64 characters"
        ))
    }
}

/// Stage variable value rule.
pub fn stage_variable_value(value: &str) -> Result<(), String> {
    let ok = value.len() <= 512
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#&=,".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid stage variable value {value:?}: values may contain only A-Za-z0-9-._~:/?#&=, and at most 512 characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts() {
        assert_eq!(path_part("pets"), Ok(PathPart::Literal));
        assert_eq!(path_part("a,b:c"), Ok(PathPart::Literal));
        assert_eq!(path_part("{id}"), Ok(PathPart::Variable));
        assert_eq!(path_part("{proxy+}"), Ok(PathPart::Greedy));
        assert!(path_part("a{b}").is_err());
        assert!(path_part("{}").is_err());
        assert!(path_part("pe ts").is_err());
        assert!(path_part("").is_err());
    }

    #[test]
    fn request_expressions() {
        assert!(integration_request_key("integration.request.header.x-a").is_ok());
        assert!(integration_request_key("integration.request.path.proxy").is_ok());
        assert!(integration_request_key("integration.request.body").is_err());
        assert!(integration_request_key("integration.request.header.a b").is_err());
        for ok in [
            "'lit'",
            "method.request.path.id",
            "method.request.multivaluequerystring.q",
            "method.request.body",
            "method.request.body.a.b[0]",
            "stageVariables.host",
            "context.requestId",
            "context.authorizer.principalId",
        ] {
            assert!(integration_request_value(ok).is_ok(), "{ok}");
        }
        for bad in [
            "$method.request.path.id",
            "method.request.foo.x",
            "lit",
            "'",
            "stageVariables.a-b",
            "context.",
        ] {
            assert!(integration_request_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uris() {
        assert!(http_uri("https://example.com/x/{proxy}").is_ok());
        assert!(http_uri("http://${stageVariables.host}/p").is_ok());
        assert!(http_uri("http://localhost:8080").is_ok());
        assert!(http_uri("example.com").is_err());
        assert!(http_uri("https:///x").is_err());
        assert!(http_uri("http://h:port/").is_err());
        assert!(http_uri("http://${foo}/").is_err());
        assert!(aws_uri("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:f/invocations").is_ok());
        assert!(aws_uri("arn:aws:apigateway:us-east-1:sqs:action/SendMessage").is_ok());
        assert!(aws_uri("arn:aws:lambda:us-east-1:1:function:f").is_err());
        assert!(aws_uri("https://x").is_err());
    }

    #[test]
    fn stage_rules() {
        assert!(stage_name("dev_1-a").is_ok());
        assert!(stage_name("de v").is_err());
        assert!(stage_variable_name("backendHost").is_ok());
        assert!(stage_variable_name("a-b").is_err());
        assert!(stage_variable_value("localhost:8080").is_ok());
        assert!(stage_variable_value("a b").is_err());
    }
}
