//! JWT validation for Cognito user pool authorizers (and HTTP-API-style JWT settings): RSA
//! signatures against a JWKS URL (fetched with a bound on time and size, cached, refetched on an
//! unknown `kid` at most once a second), issuer, audience/client_id, expiry, not-before, scopes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::body::Body;
use crate::upstream::Upstream;

/// Longest token accepted (anything longer is rejected before decoding).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// AWS's JWKS limits (HTTP API): 1,500 ms, 150,000 bytes.
pub const JWKS_TIMEOUT: Duration = Duration::from_millis(1500);
pub const JWKS_MAX_BYTES: usize = 150_000;
const JWKS_TTL: Duration = Duration::from_secs(3600);
const REFETCH_MIN: Duration = Duration::from_secs(1);
/// Clock skew allowed on `exp` and `nbf`.
pub const SKEW_SECS: i64 = 30;

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub issuer: String,
    pub jwks_uri: String,
    /// Accepted `aud` / `client_id`; empty = any.
    pub audience: Vec<String>,
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Debug)]
struct Entry {
    fetched: Instant,
    keys: Vec<Jwk>,
}

/// JWKS documents by URL.
#[derive(Debug, Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Serialises fetches so a burst of unknown `kid`s causes one fetch.
    fetching: tokio::sync::Mutex<()>,
}

/// Why a token was rejected (for the execution log; the client only sees 401).
#[derive(Debug, thiserror::Error)]
pub enum Reject {
    #[error("no token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    #[error("no key {0:?} in the JWKS")]
    UnknownKid(String),
    #[error("the JWKS could not be fetched: {0}")]
    Jwks(String),
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("no required scope")]
    Scope,
}

fn b64(s: &str) -> Result<Vec<u8>, Reject> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| Reject::Malformed("bad base64url"))
}

fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        if k.get("kty").and_then(Value::as_str) != Some("RSA") {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (
            k.get("kid").and_then(Value::as_str),
            k.get("n").and_then(Value::as_str),
            k.get("e").and_then(Value::as_str),
        ) else {
            continue;
        };
        let (Ok(n), Ok(e)) = (b64(n), b64(e)) else {
            continue;
        };
        out.push(Jwk {
            kid: kid.to_string(),
            n,
            e,
        });
    }
    Ok(out)
}

impl JwksCache {
    async fn fetch(&self, upstream: &Upstream, url: &str) -> Result<Vec<Jwk>, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let mut req = http::Request::new(Body::empty());
        *req.uri_mut() = uri;
        let fut = async {
            let resp = upstream
                .client()
                .request(req)
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let limited = http_body_util::Limited::new(resp.into_body(), JWKS_MAX_BYTES);
            let body: Bytes = limited
                .collect()
                .await
                .map_err(|e| format!("reading the JWKS: {e}"))?
                .to_bytes();
            parse_jwks(&body)
        };
        tokio::time::timeout(JWKS_TIMEOUT, fut)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    fn lookup(&self, url: &str, kid: &str) -> (Option<Jwk>, bool) {
        let Ok(m) = self.entries.lock() else {
            return (None, true);
        };
        match m.get(url) {
            Some(e) => {
                let fresh = e.fetched.elapsed() < JWKS_TTL;
                let key = e.keys.iter().find(|k| k.kid == kid).cloned();
                let may_refetch = !fresh || (key.is_none() && e.fetched.elapsed() >= REFETCH_MIN);
                (key.filter(|_| fresh), may_refetch)
            }
            None => (None, true),
        }
    }

    async fn key(&self, upstream: &Upstream, url: &str, kid: &str) -> Result<Jwk, Reject> {
        let (found, may_refetch) = self.lookup(url, kid);
        if let Some(k) = found {
            return Ok(k);
        }
        if !may_refetch {
            return Err(Reject::UnknownKid(kid.to_string()));
        }
        let _guard = self.fetching.lock().await;
        // Another request may have refreshed it while we waited.
        let (found, may_refetch) = self.lookup(url, kid);
        if let Some(k) = found {
            return Ok(k);
        }
        if !may_refetch {
            return Err(Reject::UnknownKid(kid.to_string()));
        }
        let keys = self.fetch(upstream, url).await.map_err(Reject::Jwks)?;
        let key = keys.iter().find(|k| k.kid == kid).cloned();
        if let Ok(mut m) = self.entries.lock() {
            m.insert(
                url.to_string(),
                Entry {
                    fetched: Instant::now(),
                    keys,
                },
            );
        }
        key.ok_or_else(|| Reject::UnknownKid(kid.to_string()))
    }
}

/// Validates `token` (raw or `Bearer ...`) and returns its claims.
pub async fn verify(
    cache: &JwksCache,
    upstream: &Upstream,
    cfg: &JwtConfig,
    token: &str,
    scopes: &[String],
    now_secs: i64,
) -> Result<Map<String, Value>, Reject> {
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    if token.is_empty() {
        return Err(Reject::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Reject::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::Malformed("not three parts"));
    };
    let header: Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| Reject::Malformed("header is not JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let params: &ring::signature::RsaParameters = match alg {
        "RS256" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &ring::signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &ring::signature::RSA_PKCS1_2048_8192_SHA512,
        other => return Err(Reject::Algorithm(other.to_string())),
    };
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(Reject::Malformed("no kid"))?;
    let sig = b64(s)?;
    let payload = b64(p)?;
    let claims: Map<String, Value> = match serde_json::from_slice(&payload) {
        Ok(Value::Object(m)) => m,
        _ => return Err(Reject::Malformed("payload is not a JSON object")),
    };
    let key = cache.key(upstream, &cfg.jwks_uri, kid).await?;
    let public = ring::signature::RsaPublicKeyComponents {
        n: &key.n,
        e: &key.e,
    };
    let signed = &token[..h.len() + 1 + p.len()];
    public
        .verify(params, signed.as_bytes(), &sig)
        .map_err(|_| Reject::Signature)?;
    if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
        return Err(Reject::Issuer);
    }
    let num = |k: &str| claims.get(k).and_then(Value::as_f64).map(|f| f as i64);
    match num("exp") {
        Some(exp) if exp + SKEW_SECS > now_secs => {}
        _ => return Err(Reject::Expired),
    }
    if let Some(nbf) = num("nbf") {
        if nbf > now_secs + SKEW_SECS {
            return Err(Reject::NotYetValid);
        }
    }
    if let Some(iat) = num("iat") {
        if iat > now_secs + SKEW_SECS {
            return Err(Reject::NotYetValid);
        }
    }
    if scopes.is_empty() {
        if !cfg.audience.is_empty() {
            let mut auds: Vec<&str> = match claims.get("aud") {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if let Some(c) = claims.get("client_id").and_then(Value::as_str) {
                auds.push(c);
            }
            if !auds.iter().any(|a| cfg.audience.iter().any(|x| x == a)) {
                return Err(Reject::Audience);
            }
        }
    } else {
        // An access token: any method scope must appear in `scope` (or `scp`).
        let have: Vec<String> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        if !scopes.iter().any(|s| have.contains(s)) {
            return Err(Reject::Scope);
        }
        if !cfg.audience.is_empty() {
            let cid = claims
                .get("client_id")
                .and_then(Value::as_str)
                .or_else(|| claims.get("aud").and_then(Value::as_str));
            if !cid.is_some_and(|c| cfg.audience.iter().any(|x| x == c)) {
                return Err(Reject::Audience);
            }
        }
    }
    Ok(claims)
}
