//! Lambda (`CUSTOM`) authorizers, `TOKEN` and `REQUEST`, as AWS runs them for REST APIs:
//!
//! 1. Identity sources are read; a missing or empty one (always for `TOKEN`, for `REQUEST` when
//!    caching is on) or a token failing `identityValidationExpression` answers 401 without
//!    invoking the function.
//! 2. A cached result for the same identity (TOKEN: the token; REQUEST: every identity source
//!    value) is reused for `authorizerResultTtlInSeconds`; its policy is evaluated again against
//!    each request's method ARN, so a policy scoped to one method denies the others.
//! 3. Otherwise the function gets AWS's TOKEN or REQUEST event. An error whose message is exactly
//!    `Unauthorized` answers 401; any other error, a timeout or a malformed result answers 500
//!    `AUTHORIZER_CONFIGURATION_ERROR`.
//! 4. The returned IAM policy decides: explicit Deny, Allow, or no matching statement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value};
use turnpike_model::rest::{Authorizer, AuthorizerType};

use super::{configuration_error, unauthorized, AuthResult};
use crate::error::GatewayError;
use crate::pipeline::resource_policy::Decision;
use crate::pipeline::Invocation;
use crate::Gateway;

/// AWS's default `authorizerResultTtlInSeconds`.
const DEFAULT_TTL_SECS: u32 = 300;
const MAX_TTL_SECS: u32 = 3600;
/// How long API Gateway waits for an authorizer function.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Authorizer results larger than this are rejected as malformed (AWS: 8 KB).
const MAX_RESULT_BYTES: usize = 8 * 1024;

/// Where an identity value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// Lower-cased header name.
    Header(String),
    Query(String),
    StageVariable(String),
    /// A `$context` variable (`context.requestId`).
    Context(String),
}

impl IdentitySource {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(h) = s.strip_prefix("method.request.header.") {
            return Ok(Self::Header(h.to_ascii_lowercase()));
        }
        if let Some(q) = s.strip_prefix("method.request.querystring.") {
            return Ok(Self::Query(q.to_string()));
        }
        if let Some(v) = s.strip_prefix("stageVariables.") {
            return Ok(Self::StageVariable(v.to_string()));
        }
        if let Some(c) = s.strip_prefix("context.") {
            return Ok(Self::Context(c.to_string()));
        }
        Err(format!(
            "invalid identity source {s:?}: expected method.request.header.NAME, method.request.querystring.NAME, stageVariables.NAME or context.NAME"
        ))
    }

    fn value(&self, inv: &Invocation<'_>) -> Option<String> {
        match self {
            Self::Header(h) => {
                // Repeated headers: AWS joins them with a comma.
                let mut it = inv.parts.headers.get_all(h.as_str()).iter();
                let first = it.next()?;
                let mut v = String::from_utf8_lossy(first.as_bytes()).into_owned();
                for more in it {
                    v.push(',');
                    v.push_str(&String::from_utf8_lossy(more.as_bytes()));
                }
                Some(v)
            }
            Self::Query(q) => inv
                .query
                .iter()
                .rev()
                .find(|(k, _)| k == q)
                .map(|(_, v)| v.clone()),
            Self::StageVariable(v) => inv
                .stage
                .variables
                .get(v)
                .and_then(Value::as_str)
                .map(str::to_string),
            Self::Context(c) => inv.ctx.lookup(c),
        }
    }
}

/// A `TOKEN` or `REQUEST` authorizer compiled at deploy time, with its result cache (one per
/// deployment, so a redeploy starts empty).
#[derive(Debug)]
pub struct LambdaAuthorizer {
    pub kind: AuthorizerType,
    /// `authorizerUri`, possibly with `${stageVariables.x}` references.
    pub uri: String,
    pub sources: Vec<IdentitySource>,
    pub validation: Option<regex::Regex>,
    pub ttl: Duration,
    cache: ResultCache,
}

impl LambdaAuthorizer {
    pub fn compile(a: &Authorizer) -> Result<Self, String> {
        let uri = a
            .authorizer_uri
            .clone()
            .ok_or_else(|| format!("authorizer {:?}: authorizerUri is required", a.name))?;
        let sources = a
            .identity_source
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(IdentitySource::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("authorizer {:?}: {e}", a.name))?;
        let ttl_secs = a
            .authorizer_result_ttl_in_seconds
            .unwrap_or(DEFAULT_TTL_SECS)
            .min(MAX_TTL_SECS);
        match a.kind {
            AuthorizerType::Token => {
                if !matches!(sources.as_slice(), [IdentitySource::Header(_)]) {
                    return Err(format!(
                        "authorizer {:?}: a TOKEN authorizer's identitySource must be one header (method.request.header.NAME)",
                        a.name
                    ));
                }
            }
            AuthorizerType::Request => {
                if ttl_secs > 0 && sources.is_empty() {
                    return Err(format!(
                        "authorizer {:?}: identitySource is required when authorizerResultTtlInSeconds is not 0",
                        a.name
                    ));
                }
            }
            AuthorizerType::CognitoUserPools => {
                return Err(format!(
                    "authorizer {:?} is not a Lambda authorizer",
                    a.name
                ))
            }
        }
        let validation = match a.identity_validation_expression.as_deref() {
            // Java's `matches()`: the whole token must match.
            Some(e) if a.kind == AuthorizerType::Token && !e.is_empty() => Some(
                regex::Regex::new(&format!("^(?:{e})$"))
                    .map_err(|err| format!("identityValidationExpression: {err}"))?,
            ),
            _ => None,
        };
        Ok(LambdaAuthorizer {
            kind: a.kind,
            uri,
            sources,
            validation,
            ttl: Duration::from_secs(u64::from(ttl_secs)),
            cache: ResultCache::default(),
        })
    }
}

/// What the function returned, kept in the cache: the policy is evaluated per request.
#[derive(Debug)]
pub struct Grant {
    policy: Policy,
    pub result: Arc<AuthResult>,
    /// What cache hits hand out: the result with `integrationLatency` 0 and its
    /// `$context.authorizer` map, built once rather than per request.
    hit: (Arc<AuthResult>, Arc<Map<String, Value>>),
}

impl Grant {
    fn new(policy: Policy, result: AuthResult) -> Self {
        let hit = with_latency(&result, 0);
        Grant {
            policy,
            result: Arc::new(result),
            hit,
        }
    }
}

/// The result as one request sees it: `integrationLatency` added to its context.
fn with_latency(r: &AuthResult, latency_ms: u64) -> (Arc<AuthResult>, Arc<Map<String, Value>>) {
    let mut r = r.clone();
    r.context
        .insert("integrationLatency".into(), Value::from(latency_ms));
    let map = super::authorizer_map(&r);
    (Arc::new(r), map)
}

/// The outcome of a Lambda authorizer for one request.
#[derive(Debug)]
pub struct Outcome {
    pub decision: Decision,
    pub result: Arc<AuthResult>,
    /// `$context.authorizer`.
    pub map: Arc<Map<String, Value>>,
}

/// Runs the authorizer for `inv` (identity checks, cache, invocation, policy).
pub async fn authorize(
    gw: &Gateway,
    inv: &Invocation<'_>,
    name: &str,
    a: &LambdaAuthorizer,
    method_arn: &str,
) -> Result<Outcome, GatewayError> {
    // Identity sources, checked before anything is invoked.
    let mut values = Vec::with_capacity(a.sources.len());
    let must_have = a.kind == AuthorizerType::Token || !a.ttl.is_zero();
    for s in &a.sources {
        match s.value(inv).filter(|v| !v.trim().is_empty()) {
            Some(v) => values.push(v),
            None if must_have => return Err(unauthorized()),
            None => values.push(String::new()),
        }
    }
    if let (Some(re), Some(token)) = (&a.validation, values.first()) {
        if !re.is_match(token) {
            return Err(unauthorized());
        }
    }
    let key = (!a.ttl.is_zero()).then(|| cache_key(&inv.stage.name, &values));
    let cached = key.as_deref().and_then(|k| a.cache.get(k));
    let (grant, (result, map)) = match cached {
        Some(g) => {
            let hit = g.hit.clone();
            (g, hit)
        }
        None => {
            let started = Instant::now();
            let grant = Arc::new(invoke(gw, inv, name, a, method_arn, &values).await?);
            let latency = started.elapsed().as_millis() as u64;
            if let Some(k) = key {
                a.cache.insert(k, a.ttl, grant.clone());
            }
            let fresh = with_latency(&grant.result, latency);
            (grant, fresh)
        }
    };
    Ok(Outcome {
        decision: grant.policy.evaluate(method_arn),
        result,
        map,
    })
}

/// The function named by `authorizerUri` (a Lambda invocation URI, a function ARN or a name),
/// with stage variables substituted.
fn function_name(gw: &Gateway, inv: &Invocation<'_>, uri: &str) -> Result<String, GatewayError> {
    let mut uri = uri.to_string();
    while let Some(start) = uri.find("${stageVariables.") {
        let Some(len) = uri[start..].find('}') else {
            break;
        };
        let var = &uri[start + "${stageVariables.".len()..start + len];
        let value = inv
            .stage
            .variables
            .get(var)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        uri.replace_range(start..start + len + 1, &value);
    }
    let f = crate::pipeline::integration::lambda::function_from_uri(&uri)
        .unwrap_or_else(|| crate::websocket::integration::lambda_function(&uri));
    if f.is_empty() || !gw.functions.contains(&f) {
        return Err(configuration_error(format!(
            "Execution failed due to configuration error: authorizer function {f:?} (from {uri:?}) is not defined in the project's `functions`"
        )));
    }
    Ok(f)
}

async fn invoke(
    gw: &Gateway,
    inv: &Invocation<'_>,
    name: &str,
    a: &LambdaAuthorizer,
    method_arn: &str,
    values: &[String],
) -> Result<Grant, GatewayError> {
    let function = function_name(gw, inv, &a.uri)?;
    let event = match a.kind {
        AuthorizerType::Token => serde_json::json!({
            "type": "TOKEN",
            "authorizationToken": values.first().cloned().unwrap_or_default(),
            "methodArn": method_arn,
        }),
        _ => request_event(inv, method_arn),
    };
    let opts = turnpike_lambda::InvokeOptions {
        trace_id: inv.ctx.trace_id.clone(),
        caller_timeout: Some(INVOKE_TIMEOUT),
        ..Default::default()
    };
    let out = gw
        .functions
        .invoke(&function, Bytes::from(event.to_string()), opts)
        .await
        .map_err(|e| {
            configuration_error(format!(
                "Execution failed due to configuration error: authorizer {name:?} could not be invoked: {e}"
            ))
        })?;
    if out.function_error.is_some() {
        // AWS's one way for a function to answer 401.
        if out.error_message().as_deref() == Some("Unauthorized") {
            return Err(unauthorized());
        }
        // The error document is not logged: it may echo the caller's credentials.
        return Err(configuration_error(format!(
            "Execution failed due to configuration error: authorizer {name:?} failed (function error, Lambda request id {})",
            out.request_id
        )));
    }
    parse_result(&out.payload).map_err(|e| {
        configuration_error(format!(
            "Execution failed due to configuration error: authorizer {name:?} returned an invalid response: {e}"
        ))
    })
}

/// The REQUEST event: the Lambda proxy event's request fields plus `type` and `methodArn`.
fn request_event(inv: &Invocation<'_>, method_arn: &str) -> Value {
    let mut event = crate::pipeline::integration::lambda::event_v1(inv, &[], false);
    if let Value::Object(m) = &mut event {
        m.remove("body");
        m.remove("isBase64Encoded");
        m.insert("type".into(), "REQUEST".into());
        m.insert("methodArn".into(), method_arn.into());
    }
    event
}

/// Validates the function's output: a `policyDocument` with statements, an optional
/// `principalId`, a flat `context` (string, number and boolean values) and an optional
/// `usageIdentifierKey`.
pub fn parse_result(payload: &[u8]) -> Result<Grant, String> {
    if payload.len() > MAX_RESULT_BYTES {
        return Err(format!(
            "the result is {} bytes (more than {MAX_RESULT_BYTES})",
            payload.len()
        ));
    }
    let v: Value = serde_json::from_slice(payload).map_err(|_| "the result is not JSON")?;
    let Value::Object(m) = v else {
        return Err("the result is not a JSON object".into());
    };
    let policy = Policy::parse(m.get("policyDocument").ok_or("no policyDocument")?)?;
    let principal_id = match m.get("principalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(n @ (Value::Number(_) | Value::Bool(_))) => Some(n.to_string()),
        Some(_) => return Err("principalId must be a string".into()),
    };
    let mut context = Map::new();
    match m.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => {
            for (k, v) in c {
                // `$context.authorizer.*` values are strings downstream.
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    _ => {
                        return Err(format!(
                            "context value {k:?} is an object or array (only strings, numbers and booleans are allowed)"
                        ))
                    }
                };
                context.insert(k.clone(), Value::String(s));
            }
        }
        Some(_) => return Err("context must be an object".into()),
    }
    let usage_identifier_key = match m.get("usageIdentifierKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("usageIdentifierKey must be a string".into()),
    };
    Ok(Grant::new(
        policy,
        AuthResult {
            principal_id,
            context,
            usage_identifier_key,
            ..Default::default()
        },
    ))
}

/// The authorizer's IAM policy, parsed once (results are cached and evaluated per request).
#[derive(Debug, Default)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug)]
struct Statement {
    allow: bool,
    /// Whether its `Action` covers `execute-api:Invoke` (no `Action` covers every action),
    /// worked out once when the result is parsed.
    invoke: bool,
    resources: Vec<String>,
}

fn string_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} entries must be strings"))
            })
            .collect(),
        Some(_) => Err(format!("{what} must be a string or a list of strings")),
    }
}

impl Policy {
    pub fn parse(doc: &Value) -> Result<Self, String> {
        let Value::Object(d) = doc else {
            return Err("policyDocument must be an object".into());
        };
        let list = match d.get("Statement") {
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => return Err("policyDocument has no Statement".into()),
        };
        let mut statements = Vec::with_capacity(list.len());
        for st in list {
            let Value::Object(s) = st else {
                return Err("a Statement must be an object".into());
            };
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some(e) if e.eq_ignore_ascii_case("allow") => true,
                Some(e) if e.eq_ignore_ascii_case("deny") => false,
                _ => return Err("a Statement's Effect must be Allow or Deny".into()),
            };
            let actions = string_list(s.get("Action"), "Action")?;
            statements.push(Statement {
                allow,
                invoke: actions.is_empty()
                    || actions
                        .iter()
                        .any(|a| glob(&a.to_ascii_lowercase(), "execute-api:invoke")),
                resources: string_list(s.get("Resource"), "Resource")?,
            });
        }
        Ok(Policy { statements })
    }

    /// IAM evaluation for `execute-api:Invoke` on `arn`: any matching Deny wins, then any
    /// matching Allow; otherwise silence (an implicit deny).
    pub fn evaluate(&self, arn: &str) -> Decision {
        Decision::combine(
            self.statements
                .iter()
                .filter(|s| s.invoke && s.resources.iter().any(|r| glob(r, arn)))
                .map(|s| s.allow),
        )
    }
}

/// IAM wildcard match: `*` any run of characters, `?` exactly one. Iterative, so hostile
/// patterns cannot recurse deeply.
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// SHA-256 of the stage and the identity values: the cache never holds the tokens themselves.
/// The cache key: the stage and the identity values, length-prefixed so that no two lists of
/// values share a key. Kept whole (not hashed) so that lookups compare the values themselves.
fn cache_key(stage: &str, values: &[String]) -> Box<[u8]> {
    let len = stage.len() + values.iter().map(|v| v.len() + 9).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.extend_from_slice(stage.as_bytes());
    for v in values {
        k.push(0);
        k.extend_from_slice(&(v.len() as u64).to_le_bytes());
        k.extend_from_slice(v.as_bytes());
    }
    k.into_boxed_slice()
}

const SHARDS: usize = 16;
type Shard = Mutex<HashMap<Box<[u8]>, (Instant, Arc<Grant>)>>;
const SHARD_CAPACITY: usize = 4096;

/// A small sharded TTL map: lookups take one uncontended lock on the hot path.
#[derive(Debug, Default)]
struct ResultCache {
    shards: [Shard; SHARDS],
    hasher: std::hash::RandomState,
}

impl ResultCache {
    fn shard(&self, key: &[u8]) -> &Shard {
        use std::hash::BuildHasher;
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn get(&self, key: &[u8]) -> Option<Arc<Grant>> {
        let mut m = self.shard(key).lock().ok()?;
        match m.get(key) {
            Some((expires, g)) if *expires > Instant::now() => Some(g.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&self, key: Box<[u8]>, ttl: Duration, grant: Arc<Grant>) {
        let Ok(mut m) = self.shard(&key).lock() else {
            return;
        };
        let now = Instant::now();
        if m.len() >= SHARD_CAPACITY {
            m.retain(|_, (exp, _)| *exp > now);
            if m.len() >= SHARD_CAPACITY {
                m.clear();
            }
        }
        m.insert(key, (now + ttl, grant));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/GET/pets/1";

    #[test]
    fn wildcards() {
        assert!(glob("*", ARN));
        assert!(glob(
            "arn:aws:execute-api:us-east-1:123456789012:abc/*/GET/*",
            ARN
        ));
        assert!(glob(
            "arn:aws:execute-api:us-east-1:123456789012:abc/dev/*/pets/?",
            ARN
        ));
        assert!(!glob(
            "arn:aws:execute-api:us-east-1:123456789012:abc/dev/POST/*",
            ARN
        ));
        assert!(!glob(
            "arn:aws:execute-api:us-east-1:123456789012:abc/dev/*/pets/??",
            ARN
        ));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob(&"*a".repeat(50), &"a".repeat(200)));
    }

    #[test]
    fn policy_decisions() {
        let p = |st: Value| Policy::parse(&json!({"Version": "2012-10-17", "Statement": st}));
        let allow = p(json!([{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc/dev/GET/*"}])).unwrap();
        assert_eq!(allow.evaluate(ARN), Decision::Allow);
        assert_eq!(
            allow.evaluate("arn:aws:execute-api:us-east-1:123456789012:abc/dev/POST/pets"),
            Decision::Silent
        );
        let deny = p(json!([
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
            {"Action": ["execute-api:*"], "Effect": "Deny", "Resource": [ARN]},
        ]))
        .unwrap();
        assert_eq!(deny.evaluate(ARN), Decision::Deny);
        let single = Policy::parse(
            &json!({"Statement": {"Action": "*", "Effect": "Allow", "Resource": "*"}}),
        )
        .unwrap();
        assert_eq!(single.evaluate(ARN), Decision::Allow);
        let other_action =
            p(json!([{"Action": "s3:GetObject", "Effect": "Allow", "Resource": "*"}])).unwrap();
        assert_eq!(other_action.evaluate(ARN), Decision::Silent);
        assert!(p(json!([{"Effect": "Maybe", "Resource": "*"}])).is_err());
        assert!(Policy::parse(&json!({"Version": "2012-10-17"})).is_err());
        assert!(Policy::parse(&json!("Allow")).is_err());
    }

    #[test]
    fn results() {
        let ok = br#"{"principalId":"u1","policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"}]},"context":{"s":"x","n":3,"b":false},"usageIdentifierKey":"k"}"#;
        let g = parse_result(ok).unwrap();
        assert_eq!(g.result.principal_id.as_deref(), Some("u1"));
        assert_eq!(g.result.context["n"], "3");
        assert_eq!(g.result.context["b"], "false");
        assert_eq!(g.result.usage_identifier_key.as_deref(), Some("k"));
        for bad in [
            &br#"{"statusCode":200,"body":"ok"}"#[..],
            b"not json",
            b"[]",
            br#"{"policyDocument":{"Statement":[]},"context":{"o":{"a":1}}}"#,
            br#"{"policyDocument":{"Statement":[]},"context":{"a":[1]}}"#,
            br#"{"policyDocument":"Allow"}"#,
        ] {
            assert!(
                parse_result(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!(
            r#"{{"policyDocument":{{"Statement":[]}},"context":{{"x":"{}"}}}}"#,
            "a".repeat(9000)
        );
        assert!(parse_result(big.as_bytes()).is_err());
    }

    #[test]
    fn cache_expires() {
        let c = ResultCache::default();
        let g = Arc::new(parse_result(br#"{"policyDocument":{"Statement":[]}}"#).unwrap());
        let k = cache_key("dev", &["tok".into()]);
        c.insert(k.clone(), Duration::from_millis(30), g);
        assert!(c.get(&k).is_some());
        assert!(c.get(&cache_key("dev", &["tok2".into()])).is_none());
        assert!(c
            .get(&cache_key("dev", &["tok".into(), String::new()]))
            .is_none());
        assert!(c.get(&cache_key("prod", &["tok".into()])).is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get(&k).is_none());
    }
}
