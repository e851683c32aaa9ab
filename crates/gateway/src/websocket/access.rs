//! Access control on `$connect`: the Lambda `REQUEST` authorizer and the API key
//! (`apiKeyRequired`), in AWS's order (authorizer first). Failures answer the upgrade request:
//! 401 `Unauthorized` (identity source missing), 403 `Forbidden` (denied, bad key), 500
//! (authorizer failure).

use http::HeaderMap;
use serde_json::{Map, Value};
use turnpike_model::v2::Authorizer;

use super::events::{self, ConnCtx, EventCtx};
use super::integration::{lambda_function, WsEnv};
use crate::deployment::Runtime;
use crate::Gateway;

/// Why `$connect` was refused: the HTTP status and body of the handshake answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {body}")]
pub struct Refused {
    pub status: u16,
    pub body: &'static str,
}

const UNAUTHORIZED: Refused = Refused {
    status: 401,
    body: "{\"message\":\"Unauthorized\"}",
};
const FORBIDDEN: Refused = Refused {
    status: 403,
    body: "{\"message\":\"Forbidden\"}",
};
const FAILED: Refused = Refused {
    status: 500,
    body: "{\"message\": \"Internal server error\"}",
};

/// What the authorizer granted.
#[derive(Debug, Default)]
pub struct Granted {
    /// `requestContext.authorizer`: `principalId` plus the returned context.
    pub authorizer: Map<String, Value>,
    pub usage_identifier_key: Option<String>,
}

fn identity_value(
    source: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    stage_vars: &Map<String, Value>,
) -> Option<String> {
    let lower = source.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("route.request.header.") {
        return headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
    }
    if let Some(q) = source.strip_prefix("route.request.querystring.") {
        return query.iter().find(|(k, _)| k == q).map(|(_, v)| v.clone());
    }
    if let Some(s) = source.strip_prefix("stageVariables.") {
        return stage_vars
            .get(s)
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    // context.* and other sources: not required to be present.
    Some(String::new())
}

/// Does an IAM-style resource pattern (with `*` and `?`) match the method ARN?
fn arn_matches(pattern: &str, arn: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], s) || (!s.is_empty() && rec(p, &s[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &s[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), arn.as_bytes())
}

fn as_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The policy's verdict for `arn`: an explicit Deny wins, then any Allow.
pub fn policy_allows(policy: &Value, arn: &str) -> bool {
    let statements = match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    };
    let mut allowed = false;
    for st in &statements {
        let actions = as_list(st.get("Action"));
        let acts = actions.is_empty()
            || actions.iter().any(|a| {
                a == "*" || a.eq_ignore_ascii_case("execute-api:Invoke") || a == "execute-api:*"
            });
        let res = as_list(st.get("Resource"))
            .iter()
            .any(|r| arn_matches(r, arn));
        if !(acts && res) {
            continue;
        }
        match st.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return false,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

/// Runs the `$connect` Lambda REQUEST authorizer.
pub async fn authorize(
    env: &WsEnv,
    runtime: &Runtime,
    conn: &ConnCtx,
    authorizer: &Authorizer,
    ev: &EventCtx<'_>,
) -> Result<Granted, Refused> {
    let headers = ev.headers.cloned().unwrap_or_default();
    let query = ev.query.unwrap_or_default();
    for source in &authorizer.identity_source {
        let v = identity_value(source, &headers, query, &conn.stage.variables);
        if v.is_none_or(|v| v.is_empty() && !source.starts_with("context.")) {
            return Err(UNAUTHORIZED);
        }
    }
    let method_arn = format!(
        "arn:aws:execute-api:{}:{}:{}/{}/$connect",
        runtime.region, runtime.account_id, conn.api.id, conn.stage.name
    );
    let mut event = events::lambda_event(conn, ev);
    if let Value::Object(m) = &mut event {
        m.insert("type".into(), "REQUEST".into());
        m.insert("methodArn".into(), method_arn.clone().into());
        m.insert(
            "stageVariables".into(),
            Value::Object(conn.stage.variables.clone()),
        );
    }
    let function = lambda_function(&authorizer.authorizer_uri);
    let opts = turnpike_lambda::InvokeOptions {
        caller_timeout: Some(std::time::Duration::from_secs(29)),
        ..Default::default()
    };
    let out = match env
        .functions
        .invoke(&function, bytes::Bytes::from(event.to_string()), opts)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(authorizer = %authorizer.name, error = %e, "authorizer invocation failed");
            return Err(FAILED);
        }
    };
    if out.function_error.is_some() {
        // A function error whose message is "Unauthorized" is AWS's way to answer 401.
        if out.error_message().as_deref() == Some("Unauthorized") {
            return Err(UNAUTHORIZED);
        }
        tracing::warn!(authorizer = %authorizer.name, "authorizer function failed");
        return Err(FAILED);
    }
    let Ok(Value::Object(result)) = serde_json::from_slice::<Value>(&out.payload) else {
        tracing::warn!(authorizer = %authorizer.name, "authorizer returned no policy");
        return Err(FAILED);
    };
    let Some(policy) = result.get("policyDocument") else {
        return Err(FAILED);
    };
    if !policy_allows(policy, &method_arn) {
        return Err(FORBIDDEN);
    }
    let mut granted = Granted::default();
    granted.authorizer.insert(
        "principalId".into(),
        result.get("principalId").cloned().unwrap_or(Value::Null),
    );
    if let Some(Value::Object(ctx)) = result.get("context") {
        for (k, v) in ctx {
            granted.authorizer.insert(k.clone(), v.clone());
        }
    }
    granted.usage_identifier_key = result
        .get("usageIdentifierKey")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(granted)
}

/// `apiKeyRequired` on `$connect`: the key must exist, be enabled and belong to a usage plan of
/// the stage. Returns the key's id.
pub async fn check_api_key(
    gw: &Gateway,
    runtime: &Runtime,
    api_id: &str,
    stage: &str,
    value: Option<&str>,
) -> Result<String, Refused> {
    let Some(value) = value.filter(|v| !v.is_empty() && v.len() <= 1024) else {
        return Err(FORBIDDEN);
    };
    let Some(store) = gw.access().store.clone() else {
        return Err(FORBIDDEN);
    };
    let v = value.to_string();
    let key = match tokio::task::spawn_blocking(move || store.key_by_value(&v)).await {
        Ok(Ok(k)) => k,
        _ => return Err(FAILED),
    };
    let Some(key) = key.filter(|k| k.enabled) else {
        return Err(FORBIDDEN);
    };
    let covered = runtime
        .access
        .plans
        .iter()
        .any(|p| key.plans.contains(&p.name) && p.stage(api_id, stage).is_some());
    if !covered {
        return Err(FORBIDDEN);
    }
    Ok(key.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect";
        let allow = json!({"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc/*"}]});
        assert!(policy_allows(&allow, arn));
        let deny = json!({"Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ["*"]}, allow["Statement"][0]]});
        assert!(!policy_allows(&deny, arn));
        let other = json!({"Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:us-east-1:123456789012:zzz/*"}]});
        assert!(!policy_allows(&other, arn));
    }
}
