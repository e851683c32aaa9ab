//! Selection expressions (route, template and integration-response selection), evaluated as AWS
//! does: variables are substituted once, missing values become `""`, non-scalar values are
//! stringified.

use serde_json::Value;
pub use turnpike_model::v2::{parse_selection_expression, SelectionPart};

/// What an expression can refer to.
#[derive(Default)]
pub struct SelectionInput<'a> {
    /// The message parsed as JSON; `None` when it is not JSON.
    pub body: Option<&'a Value>,
    /// `$context` (as the templates see it).
    pub context: Option<&'a Value>,
    /// `integration.response.statuscode`.
    pub status: Option<u16>,
    /// `integration.response.header.*` (lower-cased names).
    pub headers: Option<&'a http::HeaderMap>,
}

/// Java-like stringification of a selected value (`[item1, item2]`, no quotes on strings).
pub fn stringify(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(stringify).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(_) => v.to_string(),
    }
}

fn body_path(body: &Value, rest: &str) -> String {
    let path = if rest.is_empty() {
        "$".to_string()
    } else if rest.starts_with('[') {
        format!("${rest}")
    } else {
        format!("$.{rest}")
    };
    match turnpike_vtl::json_path(body, &path) {
        Ok(r) => match r.to_value() {
            Value::Null => String::new(),
            v => stringify(&v),
        },
        Err(_) => String::new(),
    }
}

fn variable(var: &str, input: &SelectionInput<'_>) -> String {
    if let Some(rest) = var.strip_prefix("request.body") {
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        return input.body.map(|b| body_path(b, rest)).unwrap_or_default();
    }
    if let Some(rest) = var.strip_prefix("context.") {
        let mut cur = input.context;
        for seg in rest.split('.') {
            cur = cur.and_then(|c| c.get(seg));
        }
        return cur.map(stringify).unwrap_or_default();
    }
    if var.eq_ignore_ascii_case("integration.response.statuscode") {
        return input.status.map(|s| s.to_string()).unwrap_or_default();
    }
    let lower = var.to_ascii_lowercase();
    if let Some(name) = lower.strip_prefix("integration.response.header.") {
        return input
            .headers
            .and_then(|h| h.get(name))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
    }
    if let Some(name) = lower.strip_prefix("integration.response.multivalueheader.") {
        return input
            .headers
            .map(|h| {
                h.get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
    }
    String::new()
}

/// Evaluates a parsed expression.
pub fn evaluate(parts: &[SelectionPart], input: &SelectionInput<'_>) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            SelectionPart::Literal(s) => out.push_str(s),
            SelectionPart::Variable(v) => out.push_str(&variable(v, input)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str, body: &str) -> String {
        let parts = parse_selection_expression(expr).expect("parse");
        let v: Option<Value> = serde_json::from_str(body).ok();
        evaluate(
            &parts,
            &SelectionInput {
                body: v.as_ref(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn aws_doc_table() {
        let m = r#"{"service":"chat","action":"join","data":{"room":"room1234"},"items":["item1","item2"]}"#;
        assert_eq!(eval("$request.body.action", m), "join");
        assert_eq!(eval("${request.body.action}", m), "join");
        assert_eq!(
            eval("${request.body.service}/${request.body.action}", m),
            "chat/join"
        );
        assert_eq!(
            eval("${request.body.action}-${request.body.invalidPath}", m),
            "join-"
        );
        assert_eq!(eval("action", m), "action");
        assert_eq!(eval("\\$default", m), "$default");
        assert_eq!(eval("$request.body.data.room", m), "room1234");
        assert_eq!(eval("$request.body.items", m), "[item1, item2]");
    }
}
