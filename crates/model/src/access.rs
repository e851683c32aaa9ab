//! Access control and traffic settings of a project file: API keys, usage plans, the account
//! throttle, IAM access keys for SigV4, JWT/Cognito authorizer settings and the data directory.
//! See `PROJECT_FILE.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::load::relative_to;
use crate::source::join;
use crate::walk::{did_you_mean, Ctx};

/// AWS's account-level throttle (most regions).
pub const ACCOUNT_RATE_LIMIT: f64 = 10_000.0;
pub const ACCOUNT_BURST_LIMIT: u32 = 5_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessConfig {
    pub api_keys: Vec<ApiKeySpec>,
    pub usage_plans: Vec<UsagePlanSpec>,
    /// `throttling` at the project root; `None` = AWS's 10,000 rps / 5,000 burst.
    pub account_throttle: Option<ThrottleSpec>,
    pub iam_access_keys: Vec<IamAccessKey>,
    /// Settings of JWT-validating authorizers (Cognito user pools), by authorizer name.
    pub authorizers: BTreeMap<String, JwtSettings>,
    /// `dataDir`, resolved against the project file.
    pub data_dir: Option<PathBuf>,
}

impl AccessConfig {
    pub fn account_throttle(&self) -> ThrottleSpec {
        self.account_throttle.unwrap_or(ThrottleSpec {
            rate_limit: ACCOUNT_RATE_LIMIT,
            burst_limit: ACCOUNT_BURST_LIMIT,
        })
    }
}

/// An API key. `value` is a secret (its `Debug` is redacted).
#[derive(Clone, PartialEq)]
pub struct ApiKeySpec {
    pub id: Option<String>,
    pub name: String,
    pub value: String,
    pub enabled: bool,
}

impl std::fmt::Debug for ApiKeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("enabled", &self.enabled)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleSpec {
    pub rate_limit: f64,
    pub burst_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSpec {
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH`.
    pub period: String,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlanSpec {
    pub name: String,
    pub api_stages: Vec<PlanApiStage>,
    pub throttle: Option<ThrottleSpec>,
    pub quota: Option<QuotaSpec>,
    /// Key names.
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanApiStage {
    /// API id; `None` = the project's first API.
    pub api: Option<String>,
    pub stage: String,
    /// `{resourcePath}/{METHOD}` → per-method throttle.
    pub throttle: BTreeMap<String, ThrottleSpec>,
}

/// An access key accepted for `AWS_IAM` methods.
#[derive(Clone, PartialEq)]
pub struct IamAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The caller's ARN (`$context.identity.userArn`); default `arn:aws:iam::{accountId}:user/{accessKeyId}`.
    pub arn: Option<String>,
}

impl std::fmt::Debug for IamAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamAccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("arn", &self.arn)
            .finish()
    }
}

/// Where a JWT authorizer gets its keys and what it checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtSettings {
    /// Expected `iss`; Cognito default `https://cognito-idp.{region}.amazonaws.com/{poolId}`.
    pub issuer: Option<String>,
    /// JWKS URL; default `{issuer}/.well-known/jwks.json`.
    pub jwks_uri: Option<String>,
    /// Accepted `aud` / `client_id` values; empty = any.
    pub audience: Vec<String>,
}

pub(crate) const ACCESS_ROOT_KEYS: &[&str] = &[
    "apiKeys",
    "usagePlans",
    "throttling",
    "iamAccessKeys",
    "authorizers",
    "dataDir",
];

fn unknown(cx: &mut Ctx<'_>, ptr: &str, key: &str, what: &str, known: &[&str]) {
    let hint = did_you_mean(key, known);
    cx.error(
        ptr,
        format!(
            "unknown {what} key {key:?}{hint}; expected one of {}",
            known.join(", ")
        ),
    );
}

/// Parses one access-related root key into `out`.
pub(crate) fn parse_root_key(
    cx: &mut Ctx<'_>,
    key: &str,
    v: &Value,
    ptr: &str,
    project_file: &Path,
    out: &mut AccessConfig,
) {
    match key {
        "apiKeys" => out.api_keys = api_keys(cx, v, ptr),
        "usagePlans" => out.usage_plans = usage_plans(cx, v, ptr),
        "throttling" => out.account_throttle = throttle(cx, v, ptr),
        "iamAccessKeys" => out.iam_access_keys = iam_keys(cx, v, ptr),
        "authorizers" => out.authorizers = authorizers(cx, v, ptr),
        "dataDir" => {
            if let Some(s) = cx.str(v, ptr) {
                out.data_dir = Some(relative_to(project_file, s));
            }
        }
        _ => {}
    }
}

fn throttle(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Option<ThrottleSpec> {
    let m = cx.obj(v, ptr)?;
    let mut rate = None;
    let mut burst = None;
    for (k, item) in m {
        let p = join(ptr, k);
        match k.as_str() {
            "rateLimit" => rate = cx.f64(item, &p),
            "burstLimit" => match cx.u64(item, &p).map(u32::try_from) {
                Some(Ok(b)) => burst = Some(b),
                Some(Err(_)) => cx.error(&p, "burstLimit is too large"),
                None => {}
            },
            other => unknown(cx, &p, other, "throttle", &["rateLimit", "burstLimit"]),
        }
    }
    if let Some(r) = rate {
        if r < 0.0 || !r.is_finite() {
            cx.error(&join(ptr, "rateLimit"), "rateLimit must be >= 0");
            return None;
        }
    }
    match (rate, burst) {
        (Some(rate_limit), Some(burst_limit)) => Some(ThrottleSpec {
            rate_limit,
            burst_limit,
        }),
        _ => {
            cx.error(ptr, "a throttle needs both rateLimit and burstLimit");
            None
        }
    }
}

fn api_keys(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Vec<ApiKeySpec> {
    const KEYS: &[&str] = &["name", "value", "enabled", "id"];
    let mut out: Vec<ApiKeySpec> = Vec::new();
    let Some(list) = cx.arr(v, ptr) else {
        return out;
    };
    for (i, item) in list.iter().enumerate() {
        let p = format!("{ptr}/{i}");
        let Some(m) = cx.obj(item, &p) else { continue };
        let mut name = None;
        let mut value = None;
        let mut enabled = true;
        let mut id = None;
        for (k, x) in m {
            let kp = join(&p, k);
            match k.as_str() {
                "name" => name = cx.scalar_string(x, &kp),
                "value" => {
                    if let Some(s) = cx.scalar_string(x, &kp) {
                        let n = s.chars().count();
                        if n < 20 {
                            cx.error(&kp, "API Key value should be at least 20 characters");
                        } else if n > 128 {
                            cx.error(&kp, "API Key value exceeds maximum size of 128 characters");
                        } else if !s.chars().all(|c| c.is_ascii_graphic()) {
                            cx.error(&kp, "API Key value must be printable ASCII without spaces");
                        } else {
                            value = Some(s);
                        }
                    }
                }
                "enabled" => enabled = cx.bool(x, &kp).unwrap_or(true),
                "id" => {
                    if let Some(s) = cx.scalar_string(x, &kp) {
                        if s.is_empty()
                            || s.len() > 64
                            || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        {
                            cx.error(&kp, "an API key id must be 1..64 characters [A-Za-z0-9-]");
                        } else {
                            id = Some(s);
                        }
                    }
                }
                other => unknown(cx, &kp, other, "API key", KEYS),
            }
        }
        let Some(name) = name else {
            cx.error(&p, "API key name is required");
            continue;
        };
        if name.chars().count() > 1024 {
            cx.error(
                &join(&p, "name"),
                "Invalid API Key name, can be at most 1024 characters.",
            );
            continue;
        }
        let Some(value) = value else {
            if !m.contains_key("value") {
                cx.error(&p, "API key value is required (20 to 128 characters)");
            }
            continue;
        };
        if out.iter().any(|o| o.name == name) {
            cx.error(
                &join(&p, "name"),
                format!("duplicate API key name {name:?}"),
            );
            continue;
        }
        if out.iter().any(|o| o.value == value) {
            cx.error(
                &join(&p, "value"),
                format!(
                    "API key {name:?} has the same value as another key; values must be unique"
                ),
            );
            continue;
        }
        out.push(ApiKeySpec {
            id,
            name,
            value,
            enabled,
        });
    }
    out
}

fn usage_plans(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Vec<UsagePlanSpec> {
    const KEYS: &[&str] = &[
        "name",
        "apiStages",
        "throttle",
        "quota",
        "keys",
        "description",
    ];
    let mut out: Vec<UsagePlanSpec> = Vec::new();
    let Some(list) = cx.arr(v, ptr) else {
        return out;
    };
    for (i, item) in list.iter().enumerate() {
        let p = format!("{ptr}/{i}");
        let Some(m) = cx.obj(item, &p) else { continue };
        let mut plan = UsagePlanSpec {
            name: String::new(),
            api_stages: Vec::new(),
            throttle: None,
            quota: None,
            keys: Vec::new(),
        };
        for (k, x) in m {
            let kp = join(&p, k);
            match k.as_str() {
                "name" => plan.name = cx.scalar_string(x, &kp).unwrap_or_default(),
                "description" => {
                    cx.str(x, &kp);
                }
                "throttle" => plan.throttle = throttle(cx, x, &kp),
                "quota" => plan.quota = quota(cx, x, &kp),
                "keys" => plan.keys = cx.str_list(x, &kp),
                "apiStages" => plan.api_stages = api_stages(cx, x, &kp),
                other => unknown(cx, &kp, other, "usage plan", KEYS),
            }
        }
        if plan.name.is_empty() {
            cx.error(&p, "usage plan name is required");
            continue;
        }
        if out.iter().any(|o| o.name == plan.name) {
            cx.error(
                &join(&p, "name"),
                format!("duplicate usage plan name {:?}", plan.name),
            );
            continue;
        }
        out.push(plan);
    }
    out
}

fn quota(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Option<QuotaSpec> {
    let m = cx.obj(v, ptr)?;
    let mut q = QuotaSpec {
        limit: 0,
        period: String::new(),
        offset: 0,
    };
    let mut have_limit = false;
    for (k, x) in m {
        let p = join(ptr, k);
        match k.as_str() {
            "limit" => {
                if let Some(n) = cx.u64(x, &p) {
                    q.limit = n;
                    have_limit = true;
                }
            }
            "offset" => q.offset = cx.u64(x, &p).unwrap_or(0),
            "period" => {
                if let Some(s) = cx.str(x, &p) {
                    let up = s.to_ascii_uppercase();
                    if ["DAY", "WEEK", "MONTH"].contains(&up.as_str()) {
                        q.period = up;
                    } else {
                        cx.error(
                            &p,
                            format!("unknown quota period {s:?}; expected DAY, WEEK or MONTH"),
                        );
                    }
                }
            }
            other => unknown(cx, &p, other, "quota", &["limit", "period", "offset"]),
        }
    }
    if !have_limit || q.period.is_empty() {
        cx.error(ptr, "a quota needs limit and period (DAY, WEEK or MONTH)");
        return None;
    }
    if q.offset >= q.limit && q.offset > 0 {
        cx.error(
            &join(ptr, "offset"),
            "quota offset must be less than the limit",
        );
        return None;
    }
    Some(q)
}

fn api_stages(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Vec<PlanApiStage> {
    let mut out = Vec::new();
    let Some(list) = cx.arr(v, ptr) else {
        return out;
    };
    for (i, item) in list.iter().enumerate() {
        let p = format!("{ptr}/{i}");
        // Shorthand: a bare stage name of the first API.
        if let Value::String(s) = item {
            out.push(PlanApiStage {
                api: None,
                stage: s.clone(),
                throttle: BTreeMap::new(),
            });
            continue;
        }
        let Some(m) = cx.obj(item, &p) else { continue };
        let mut st = PlanApiStage {
            api: None,
            stage: String::new(),
            throttle: BTreeMap::new(),
        };
        for (k, x) in m {
            let kp = join(&p, k);
            match k.as_str() {
                "api" | "apiId" => st.api = cx.scalar_string(x, &kp),
                "stage" => st.stage = cx.scalar_string(x, &kp).unwrap_or_default(),
                "throttle" => {
                    let Some(tm) = cx.obj(x, &kp) else { continue };
                    for (mk, mv) in tm {
                        let mp = join(&kp, mk);
                        if let Some(t) = throttle(cx, mv, &mp) {
                            st.throttle.insert(mk.clone(), t);
                        }
                    }
                    if tm.len() > 20 {
                        cx.error(&kp, "at most 20 method throttles per stage in a usage plan");
                    }
                }
                other => unknown(cx, &kp, other, "apiStages", &["api", "stage", "throttle"]),
            }
        }
        if st.stage.is_empty() {
            cx.error(&p, "stage is required");
            continue;
        }
        out.push(st);
    }
    out
}

fn iam_keys(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Vec<IamAccessKey> {
    const KEYS: &[&str] = &["accessKeyId", "secretAccessKey", "arn"];
    let mut out = Vec::new();
    let Some(list) = cx.arr(v, ptr) else {
        return out;
    };
    for (i, item) in list.iter().enumerate() {
        let p = format!("{ptr}/{i}");
        let Some(m) = cx.obj(item, &p) else { continue };
        let mut id = None;
        let mut secret = None;
        let mut arn = None;
        for (k, x) in m {
            let kp = join(&p, k);
            match k.as_str() {
                "accessKeyId" => id = cx.scalar_string(x, &kp),
                "secretAccessKey" => secret = cx.scalar_string(x, &kp),
                "arn" => arn = cx.scalar_string(x, &kp),
                other => unknown(cx, &kp, other, "IAM access key", KEYS),
            }
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key))
                if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
            {
                out.push(IamAccessKey {
                    access_key_id,
                    secret_access_key,
                    arn,
                })
            }
            _ => cx.error(
                &p,
                "an IAM access key needs accessKeyId and secretAccessKey",
            ),
        }
    }
    out
}

fn authorizers(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> BTreeMap<String, JwtSettings> {
    const KEYS: &[&str] = &["issuer", "jwksUri", "audience"];
    let mut out = BTreeMap::new();
    let Some(m) = cx.obj(v, ptr) else {
        return out;
    };
    for (name, item) in m {
        let p = join(ptr, name);
        let Some(am): Option<&Map<String, Value>> = cx.obj(item, &p) else {
            continue;
        };
        let mut s = JwtSettings::default();
        for (k, x) in am {
            let kp = join(&p, k);
            match k.as_str() {
                "issuer" => s.issuer = cx.str(x, &kp).map(str::to_string),
                "jwksUri" => {
                    if let Some(u) = cx.str(x, &kp) {
                        if u.starts_with("http://") || u.starts_with("https://") {
                            s.jwks_uri = Some(u.to_string());
                        } else {
                            cx.error(&kp, "jwksUri must be an http:// or https:// URL");
                        }
                    }
                }
                "audience" => s.audience = cx.str_list(x, &kp),
                other => unknown(cx, &kp, other, "authorizer settings", KEYS),
            }
        }
        out.insert(name.clone(), s);
    }
    out
}

/// Checks what the access settings name: keys of plans, APIs and stages, method throttle keys.
pub(crate) fn check_references(cx: &mut Ctx<'_>, project: &crate::Project) {
    let access = &project.access;
    for (pi, plan) in access.usage_plans.iter().enumerate() {
        let pp = format!("/usagePlans/{pi}");
        for (ki, k) in plan.keys.iter().enumerate() {
            if !access.api_keys.iter().any(|a| &a.name == k) {
                let known: Vec<&str> = access.api_keys.iter().map(|a| a.name.as_str()).collect();
                let hint = did_you_mean(k, &known);
                cx.error(
                    &format!("{pp}/keys/{ki}"),
                    format!("usage plan {:?}: no API key named {k:?}{hint}", plan.name),
                );
            }
        }
        for (si, st) in plan.api_stages.iter().enumerate() {
            let sp = format!("{pp}/apiStages/{si}");
            let api = match &st.api {
                None => project.apis.first(),
                Some(id) => project.apis.iter().find(|a| &a.definition.api.id == id),
            };
            // A WebSocket API's stage (its routes have no method throttles to check).
            let ws = st.api.as_ref().and_then(|id| {
                project
                    .websocket_apis
                    .iter()
                    .find(|w| &w.definition.api.api_id == id)
            });
            if let (None, Some(ws)) = (api, ws) {
                if !ws.stages.iter().any(|s| s.stage_name == st.stage) {
                    cx.error(
                        &sp,
                        format!(
                            "Invalid API Stage {{api: {}, stage: {}}} specified for usageplan {}",
                            ws.definition.api.api_id, st.stage, plan.name
                        ),
                    );
                }
                continue;
            }
            let Some(api) = api else {
                cx.error(
                    &sp,
                    format!(
                        "Invalid API Stage {{api: {}, stage: {}}} specified for usageplan {}",
                        st.api.as_deref().unwrap_or("-"),
                        st.stage,
                        plan.name
                    ),
                );
                continue;
            };
            if !api.stages.iter().any(|s| s.stage_name == st.stage) {
                cx.error(
                    &sp,
                    format!(
                        "Invalid API Stage {{api: {}, stage: {}}} specified for usageplan {}",
                        api.definition.api.id, st.stage, plan.name
                    ),
                );
                continue;
            }
            for key in st.throttle.keys() {
                let ok = key.rsplit_once('/').is_some_and(|(path, m)| {
                    let path = if path.is_empty() { "/" } else { path };
                    api.definition.resources.iter().any(|r| {
                        r.path == path
                            && (r.resource_methods.contains_key(m)
                                || (m == "*" && !r.resource_methods.is_empty()))
                    })
                });
                if !ok {
                    cx.error(
                        &join(&join(&sp, "throttle"), key),
                        format!("usage plan {:?}: {key:?} names no method of API {}; expected RESOURCE_PATH/METHOD such as /pets/GET (the root is //GET)", plan.name, api.definition.api.id),
                    );
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, k) in access.iam_access_keys.iter().enumerate() {
        if !seen.insert(&k.access_key_id) {
            cx.error(
                &format!("/iamAccessKeys/{i}/accessKeyId"),
                "duplicate accessKeyId",
            );
        }
    }
}
