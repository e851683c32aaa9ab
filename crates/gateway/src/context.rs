//! `$context`: the per-request facts API Gateway exposes to templates, gateway responses and
//! access logs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::error::GatewayError;

/// Per-request facts, filled in as the pipeline advances.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub account_id: Arc<str>,
    pub api_id: Arc<str>,
    pub request_id: String,
    pub extended_request_id: String,
    pub deployment_id: Arc<str>,
    pub domain_name: String,
    /// A standard method's name is static: no allocation per request.
    pub http_method: std::borrow::Cow<'static, str>,
    /// `/{stage}{path}` as received.
    pub path: String,
    pub protocol: &'static str,
    pub resource_id: Arc<str>,
    pub resource_path: Arc<str>,
    pub stage: Arc<str>,
    /// Shared with the connection (worked out once per connection).
    pub source_ip: Arc<str>,
    pub user_agent: Option<String>,
    pub request_time_epoch_ms: i64,
    pub is_canary_request: Option<bool>,
    pub error: Option<ErrorContext>,
    pub status: Option<u16>,
    pub response_length: Option<u64>,
    pub response_latency_ms: Option<u64>,
    pub integration_status: Option<u16>,
    pub integration_latency_ms: Option<u64>,
    pub integration_error: Option<String>,
    pub trace_id: Option<String>,
    pub api_key: Option<String>,
    pub api_key_id: Option<String>,
    /// `$context.authorizer.*`: principalId, the Lambda authorizer's context, Cognito claims.
    pub authorizer: std::sync::Arc<Map<String, Value>>,
    /// SigV4-authenticated caller (`$context.identity.userArn`, `.user`, `.accessKey`, `.accountId`).
    pub identity_user_arn: Option<String>,
    pub identity_user: Option<String>,
    pub identity_access_key: Option<String>,
    pub identity_account_id: Option<String>,
}

impl Default for RequestContext {
    fn default() -> Self {
        // One empty authorizer context for every request: a derived default allocated (and
        // freed) a new one per request, though few requests have an authorizer.
        static NO_AUTHORIZER: std::sync::LazyLock<Arc<Map<String, Value>>> =
            std::sync::LazyLock::new(Arc::default);
        RequestContext {
            account_id: Arc::default(),
            api_id: Arc::default(),
            request_id: String::new(),
            extended_request_id: String::new(),
            deployment_id: Arc::default(),
            domain_name: String::new(),
            http_method: std::borrow::Cow::Borrowed(""),
            path: String::new(),
            protocol: "",
            resource_id: Arc::default(),
            resource_path: Arc::default(),
            stage: Arc::default(),
            source_ip: Arc::default(),
            user_agent: None,
            request_time_epoch_ms: 0,
            is_canary_request: None,
            error: None,
            status: None,
            response_length: None,
            response_latency_ms: None,
            integration_status: None,
            integration_latency_ms: None,
            integration_error: None,
            trace_id: None,
            api_key: None,
            api_key_id: None,
            authorizer: NO_AUTHORIZER.clone(),
            identity_user_arn: None,
            identity_user: None,
            identity_access_key: None,
            identity_account_id: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ErrorContext {
    pub message: Option<String>,
    pub response_type: String,
    pub validation_error_string: Option<String>,
}

impl ErrorContext {
    pub fn from_error(err: &GatewayError) -> Self {
        ErrorContext {
            message: err.message.clone(),
            response_type: err.kind.as_str().into(),
            validation_error_string: None,
        }
    }
}

pub fn now_epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `dd/MMM/yyyy:HH:mm:ss +0000`, the CLF timestamp AWS uses for `$context.requestTime`.
pub fn clf_time(epoch_ms: i64) -> String {
    // Every Lambda event and many access-log lines carry it; formatting a date costs far more
    // than remembering the last second's text per thread.
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let secs = epoch_ms.div_euclid(1000);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, format_clf(secs));
        }
        last.1.clone()
    })
}

fn format_clf(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return String::new();
    };
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[(t.month() as usize).saturating_sub(1) % 12],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// 128 bits from a per-thread fast generator seeded from the OS. Request, extended request
/// and trace ids must be unique, not unpredictable (AWS's own are no secrets either); a
/// CSPRNG draw per id showed in profiles of the proxy path.
fn random_u128() -> u128 {
    use rand::{RngCore, SeedableRng};
    thread_local! {
        static RNG: std::cell::RefCell<rand::rngs::SmallRng> = std::cell::RefCell::new(
            rand::rngs::SmallRng::try_from_os_rng().unwrap_or_else(|_| {
                // No OS randomness: the clock and the thread still make ids unique enough.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let thread = std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    std::thread::current().id(),
                );
                rand::rngs::SmallRng::seed_from_u64(nanos ^ thread)
            })
        );
    }
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())
    })
}

/// A 16-character base64-like id ending in `=`, the shape of AWS's `x-amz-apigw-id`: 15
/// random characters of the base64 alphabet, six bits each, written straight from the
/// random bits (the base64 engine cost three times as much for 11 bytes).
pub fn extended_request_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // 90 random bits, six per character, from two 64-bit halves (shifts of a u128 cost
    // several instructions each).
    let r = random_u128();
    let (mut hi, mut lo) = ((r >> 64) as u64, r as u64);
    let mut out = [b'='; 16];
    for (i, c) in out[..15].iter_mut().enumerate() {
        let half = if i < 10 { &mut lo } else { &mut hi };
        *c = ALPHABET[(*half & 63) as usize];
        *half >>= 6;
    }
    ascii_string(&out)
}

/// An X-Ray trace header root: `Root=1-{epoch hex}-{24 hex}`.
pub fn trace_id(epoch_ms: i64) -> String {
    // Built in a fixed buffer, then one allocation: this runs on every HTTP/AWS integration
    // call. (Epoch seconds fit 8 hex digits until 2106.)
    let mut out = [0u8; 40];
    out[..7].copy_from_slice(b"Root=1-");
    hex_into(&mut out[7..15], ((epoch_ms / 1000) as u32).to_be_bytes());
    out[15] = b'-';
    // 96 random bits.
    let r = random_u128().to_le_bytes();
    hex_into(&mut out[16..], r);
    ascii_string(&out)
}

/// The trace header a request carries on: the client's own when it names a valid X-Ray root
/// (AWS keeps the root; a header that already has a `Parent` goes on as sent, one without gets
/// a generated parent and `Sampled=0`), else a new root. A header of more than 256 bytes or
/// without a well-formed `Root=1-{8 hex}-{24 hex}` is replaced, as AWS replaces garbage.
pub fn trace_header(client: Option<&[u8]>, epoch_ms: i64) -> String {
    let Some(client) = client
        .filter(|c| c.len() <= 256)
        .and_then(|c| std::str::from_utf8(c).ok())
    else {
        return trace_id(epoch_ms);
    };
    let mut root = None;
    let (mut parent, mut sampled) = (false, None);
    for field in client.split(';') {
        let (k, v) = field.trim().split_once('=').unwrap_or((field.trim(), ""));
        match k {
            "Root" if valid_root(v) => root = Some(v),
            "Root" => return trace_id(epoch_ms),
            "Parent" => parent = true,
            "Sampled" => sampled = Some(v),
            _ => {}
        }
    }
    let Some(root) = root else {
        return trace_id(epoch_ms);
    };
    if parent {
        return client.trim().to_string();
    }
    let mut id = [0u8; 16];
    hex_into(&mut id, random_u128().to_le_bytes());
    let sampled = sampled
        .filter(|s| matches!(*s, "0" | "1" | "?"))
        .unwrap_or("0");
    format!(
        "Root={root};Parent={};Sampled={sampled}",
        std::str::from_utf8(&id).unwrap_or("0000000000000000")
    )
}

/// `1-{8 hex digits}-{24 hex digits}`.
fn valid_root(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 35
        && b.starts_with(b"1-")
        && b[10] == b'-'
        && b[2..10].iter().all(u8::is_ascii_hexdigit)
        && b[11..].iter().all(u8::is_ascii_hexdigit)
}

/// Two lowercase hex digits per byte of `bytes`, as many as `out` holds, a table lookup
/// each (a digit at a time cost three times as much).
fn hex_into<const N: usize>(out: &mut [u8], bytes: [u8; N]) {
    const PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        t
    };
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&PAIRS[usize::from(b)]);
    }
}

/// `bytes` (ASCII by construction) as a `String`.
fn ascii_string(bytes: &[u8]) -> String {
    std::str::from_utf8(bytes).map_or_else(|_| String::new(), String::from)
}

pub fn source_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn opt(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

impl RequestContext {
    /// The `$context` object as templates see it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("accountId".into(), Value::from(&*self.account_id));
        m.insert("apiId".into(), Value::from(&*self.api_id));
        m.insert(
            "authorizer".into(),
            Value::Object((*self.authorizer).clone()),
        );
        m.insert("awsEndpointRequestId".into(), Value::Null);
        m.insert("deploymentId".into(), Value::from(&*self.deployment_id));
        m.insert("domainName".into(), self.domain_name.clone().into());
        m.insert(
            "domainPrefix".into(),
            self.domain_name
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string()
                .into(),
        );
        let error = match &self.error {
            Some(e) => json!({
                "message": opt(&e.message),
                "messageString": e.message.as_ref().map_or_else(|| "null".to_string(), |m| Value::String(m.clone()).to_string()),
                "responseType": e.response_type,
                "validationErrorString": opt(&e.validation_error_string),
            }),
            None => json!({}),
        };
        m.insert("error".into(), error);
        m.insert(
            "extendedRequestId".into(),
            self.extended_request_id.clone().into(),
        );
        m.insert("httpMethod".into(), self.http_method.clone().into());
        m.insert(
            "identity".into(),
            json!({
                "accessKey": opt(&self.identity_access_key),
                "accountId": opt(&self.identity_account_id),
                "apiKey": opt(&self.api_key),
                "apiKeyId": opt(&self.api_key_id),
                "caller": opt(&self.identity_user),
                "cognitoAuthenticationProvider": null,
                "cognitoAuthenticationType": null,
                "cognitoIdentityId": null,
                "cognitoIdentityPoolId": null,
                "principalOrgId": null,
                "sourceIp": &*self.source_ip,
                "user": opt(&self.identity_user),
                "userAgent": opt(&self.user_agent),
                "userArn": opt(&self.identity_user_arn),
            }),
        );
        if let Some(c) = self.is_canary_request {
            m.insert("isCanaryRequest".into(), c.into());
        }
        m.insert("path".into(), self.path.clone().into());
        m.insert("protocol".into(), self.protocol.into());
        m.insert("requestId".into(), self.request_id.clone().into());
        m.insert(
            "requestTime".into(),
            clf_time(self.request_time_epoch_ms).into(),
        );
        m.insert("requestTimeEpoch".into(), self.request_time_epoch_ms.into());
        m.insert("resourceId".into(), Value::from(&*self.resource_id));
        m.insert("resourcePath".into(), Value::from(&*self.resource_path));
        m.insert("stage".into(), Value::from(&*self.stage));
        m.insert(
            "requestOverride".into(),
            json!({"header": {}, "path": {}, "querystring": {}}),
        );
        m.insert("responseOverride".into(), json!({"header": {}}));
        Value::Object(m)
    }

    /// Looks up a `$context` variable by its dotted name (`identity.sourceIp`), as access logs
    /// and `context.*` parameter mappings do. Includes the log-only variables.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let s = |v: &str| Some(v.to_string());
        let n = |v: Option<u64>| v.map(|v| v.to_string());
        match name {
            "accountId" => s(&self.account_id),
            "apiId" => s(&self.api_id),
            "requestId" => s(&self.request_id),
            "extendedRequestId" => s(&self.extended_request_id),
            "deploymentId" => s(&self.deployment_id),
            "domainName" => s(&self.domain_name),
            "domainPrefix" => self.domain_name.split('.').next().map(str::to_string),
            "httpMethod" => s(&self.http_method),
            "path" => s(&self.path),
            "protocol" => s(self.protocol),
            "resourceId" => s(&self.resource_id),
            "resourcePath" => s(&self.resource_path),
            "stage" => s(&self.stage),
            "identity.sourceIp" => s(&self.source_ip),
            "identity.userAgent" => self.user_agent.clone(),
            "identity.apiKey" => self.api_key.clone(),
            "identity.apiKeyId" => self.api_key_id.clone(),
            "requestTime" => Some(clf_time(self.request_time_epoch_ms)),
            "requestTimeEpoch" => Some(self.request_time_epoch_ms.to_string()),
            "status" => self.status.map(|v| v.to_string()),
            "responseLength" => n(self.response_length),
            "responseLatency" => n(self.response_latency_ms),
            "integrationStatus" | "integration.status" | "integration.integrationStatus" => {
                self.integration_status.map(|v| v.to_string())
            }
            "integrationLatency" | "integration.latency" => n(self.integration_latency_ms),
            "integration.error" => self.integration_error.clone(),
            "error.message" => self.error.as_ref().and_then(|e| e.message.clone()),
            "error.messageString" => self.error.as_ref().map(|e| {
                e.message.as_ref().map_or_else(
                    || "null".to_string(),
                    |m| Value::String(m.clone()).to_string(),
                )
            }),
            "error.responseType" => self.error.as_ref().map(|e| e.response_type.clone()),
            "error.validationErrorString" => self
                .error
                .as_ref()
                .and_then(|e| e.validation_error_string.clone()),
            "isCanaryRequest" => self.is_canary_request.map(|b| b.to_string()),
            "xrayTraceId" => self.trace_id.clone(),
            "identity.userArn" => self.identity_user_arn.clone(),
            "identity.user" | "identity.caller" => self.identity_user.clone(),
            "identity.accessKey" => self.identity_access_key.clone(),
            "identity.accountId" => self.identity_account_id.clone(),
            n if n.starts_with("authorizer.") => {
                let mut parts = n["authorizer.".len()..].split('.');
                let mut cur = parts.next().and_then(|p| self.authorizer.get(p));
                for part in parts {
                    cur = cur.and_then(|c| c.get(part));
                }
                cur.map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time_format() {
        assert_eq!(clf_time(1_700_000_000_123), "14/Nov/2023:22:13:20 +0000");
        // The per-thread cache follows the second.
        assert_eq!(clf_time(1_700_000_000_999), "14/Nov/2023:22:13:20 +0000");
        assert_eq!(clf_time(1_700_000_001_000), "14/Nov/2023:22:13:21 +0000");
        assert_eq!(clf_time(1_700_000_000_000), "14/Nov/2023:22:13:20 +0000");
    }

    #[test]
    fn trace_id_shape() {
        let t = trace_id(1_700_000_000_123);
        assert_eq!(t.len(), 40);
        assert!(t.starts_with("Root=1-"), "{t}");
        assert_eq!(&t[7..16], "6553f100-");
        assert!(t[16..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(t[16..], trace_id(1_700_000_000_123)[16..]);
        // Every digit is drawn: over many ids each place takes many values.
        let ids: Vec<String> = (0..64).map(|_| trace_id(0)).collect();
        for place in 16..40 {
            let seen: std::collections::HashSet<u8> =
                ids.iter().map(|t| t.as_bytes()[place]).collect();
            assert!(seen.len() > 4, "place {place}: {seen:?}");
        }
    }

    #[test]
    fn a_clients_trace_header_is_honoured() {
        let full = "Root=1-3152b799-8954dae64eda91bc9a23a7e8;Parent=7fa8c0f79203be72;Sampled=1";
        assert_eq!(trace_header(Some(full.as_bytes()), 0), full);
        // Root only: the root is kept, a parent is made up.
        let t = trace_header(Some(b"Root=1-3152b799-8954dae64eda91bc9a23a7e8"), 0);
        let rest = t
            .strip_prefix("Root=1-3152b799-8954dae64eda91bc9a23a7e8;Parent=")
            .unwrap_or_else(|| panic!("{t}"));
        let (parent, sampled) = rest.split_once(';').unwrap_or_else(|| panic!("{t}"));
        assert_eq!(parent.len(), 16, "{t}");
        assert!(parent.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        assert_eq!(sampled, "Sampled=0");
        let t = trace_header(
            Some(b"Sampled=1;Root=1-3152b799-8954dae64eda91bc9a23a7e8"),
            0,
        );
        assert!(t.ends_with(";Sampled=1"), "{t}");
        // Not a root AWS would keep: a new one.
        for bad in [
            &b"Root=1-zz52b799-8954dae64eda91bc9a23a7e8"[..],
            b"Root=2-3152b799-8954dae64eda91bc9a23a7e8",
            b"Root=1-3152b799-8954dae64eda91bc9a23a7e",
            b"Parent=7fa8c0f79203be72",
            b"",
            b"\xff\xfe",
        ] {
            let t = trace_header(Some(bad), 1_700_000_000_123);
            assert!(t.starts_with("Root=1-6553f100-"), "{bad:?} -> {t}");
            assert_eq!(t.len(), 40);
        }
        let long = format!(
            "Root=1-3152b799-8954dae64eda91bc9a23a7e8;Parent=7fa8c0f79203be72;X={}",
            "a".repeat(300)
        );
        assert!(
            trace_header(Some(long.as_bytes()), 1_700_000_000_123).starts_with("Root=1-6553f100-")
        );
        assert!(trace_header(None, 1_700_000_000_123).starts_with("Root=1-6553f100-"));
    }

    #[test]
    fn extended_id_shape() {
        let id = extended_request_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(id[..15]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        assert_ne!(id, extended_request_id());
        let ids: Vec<String> = (0..64).map(|_| extended_request_id()).collect();
        for place in 0..15 {
            let seen: std::collections::HashSet<u8> =
                ids.iter().map(|t| t.as_bytes()[place]).collect();
            assert!(seen.len() > 8, "place {place}: {seen:?}");
        }
    }

    #[test]
    fn message_string_is_quoted_json() {
        let ctx = RequestContext {
            error: Some(ErrorContext {
                message: Some("a \"b\"".into()),
                response_type: "X".into(),
                validation_error_string: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            ctx.lookup("error.messageString").as_deref(),
            Some("\"a \\\"b\\\"\"")
        );
        let ctx = RequestContext {
            error: Some(ErrorContext {
                message: None,
                response_type: "X".into(),
                validation_error_string: None,
            }),
            ..Default::default()
        };
        assert_eq!(ctx.lookup("error.messageString").as_deref(), Some("null"));
    }
}
