//! AWS Signature Version 4 verification of incoming requests (`AWS_IAM` methods): header and
//! query-string (presigned) forms, payload hash, date skew, credential scope.

use ring::{digest, hmac};
use turnpike_model::rest::GatewayResponseType;

use crate::access::IamIdentity;
use crate::error::GatewayError;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SKEW_SECS: i64 = 300;
/// Most bytes of an `Authorization` header or signature parameters we look at.
const MAX_AUTH_BYTES: usize = 8192;

/// The verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub access_key: String,
    pub arn: String,
    pub account_id: String,
}

pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub region: &'a str,
    pub now_secs: i64,
}

fn invalid_signature(message: impl Into<String>) -> GatewayError {
    GatewayError::new(GatewayResponseType::InvalidSignature, message)
}

pub fn mismatch() -> GatewayError {
    invalid_signature("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
}

/// An `Authorization` value that is a SigV4 signature (`AWS4-HMAC-SHA256 Credential=…`).
pub fn is_signature(value: &http::HeaderValue) -> bool {
    value
        .as_bytes()
        .strip_prefix(ALGORITHM.as_bytes())
        .is_some_and(|rest| rest.starts_with(b" "))
}

/// AWS's message for an `Authorization` header that is not a SigV4 signature at all, ending
/// with `shown`, the part of the header it echoes.
pub fn not_a_signature_message(shown: &str) -> String {
    format!(
        "Authorization header requires 'Credential' parameter. Authorization header requires \
         'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
         Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
         Authorization={shown}"
    )
}

fn incomplete(message: impl Into<String>) -> GatewayError {
    GatewayError {
        error_type: Some("IncompleteSignatureException"),
        ..invalid_signature(message)
    }
}

fn unrecognized() -> GatewayError {
    GatewayError {
        error_type: Some("UnrecognizedClientException"),
        ..invalid_signature("The security token included in the request is invalid.")
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), and `/` when `keep_slash`.
fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// `YYYYMMDDTHHMMSSZ` → epoch seconds.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        n(0..4)? as i32,
        time::Month::try_from(n(4..6)? as u8).ok()?,
        n(6..8)? as u8,
    )
    .ok()?;
    let t = time::Time::from_hms(n(9..11)? as u8, n(11..13)? as u8, n(13..15)? as u8).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

fn amz_date(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

struct Parsed {
    access_key: String,
    scope_date: String,
    scope_region: String,
    scope_service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    expires: Option<i64>,
    presigned: bool,
}

impl Parsed {
    /// From the `Authorization` header, or from a presigned URL's query (with its expiry).
    fn new(
        cred: &str,
        signed: &str,
        sig: &str,
        date: &str,
        presigned: bool,
        expires: Option<i64>,
    ) -> Result<Parsed, GatewayError> {
        let (access_key, scope_date, scope_region, scope_service) = parse_credential(cred)?;
        Ok(Parsed {
            access_key,
            scope_date,
            scope_region,
            scope_service,
            signed_headers: signed.split(';').map(|s| s.to_ascii_lowercase()).collect(),
            signature: sig.to_string(),
            amz_date: date.to_string(),
            expires,
            presigned,
        })
    }
}

fn parse_credential(cred: &str) -> Result<(String, String, String, String), GatewayError> {
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" {
        return Err(incomplete(
            "Credential should be scoped to a valid region. ",
        ));
    }
    Ok((
        parts[0].to_string(),
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    ))
}

fn parse(req: &SignedRequest<'_>) -> Result<Option<Parsed>, GatewayError> {
    if let Some(auth) = req.headers.get(http::header::AUTHORIZATION) {
        let auth = auth
            .to_str()
            .map_err(|_| incomplete("Authorization header is not valid ASCII"))?;
        if auth.len() > MAX_AUTH_BYTES {
            return Err(incomplete("Authorization header is too long"));
        }
        let Some(rest) = auth.strip_prefix(ALGORITHM) else {
            return Err(incomplete(not_a_signature_message(
                auth.split_whitespace().next().unwrap_or(""),
            )));
        };
        let mut cred = None;
        let mut signed = None;
        let mut sig = None;
        for item in rest.split(',') {
            let item = item.trim();
            if let Some(v) = item.strip_prefix("Credential=") {
                cred = Some(v);
            } else if let Some(v) = item.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = item.strip_prefix("Signature=") {
                sig = Some(v);
            }
        }
        let date = req
            .headers
            .get("x-amz-date")
            .or_else(|| req.headers.get(http::header::DATE))
            .and_then(|v| v.to_str().ok());
        let mut missing = Vec::new();
        if cred.is_none() {
            missing.push("Authorization header requires 'Credential' parameter.");
        }
        if sig.is_none() {
            missing.push("Authorization header requires 'Signature' parameter.");
        }
        if signed.is_none() {
            missing.push("Authorization header requires 'SignedHeaders' parameter.");
        }
        if date.is_none() {
            missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
        }
        let (Some(cred), Some(signed), Some(sig), Some(date)) = (cred, signed, sig, date) else {
            return Err(incomplete(format!(
                "{} Authorization={ALGORITHM}",
                missing.join(" ")
            )));
        };
        return Parsed::new(cred, signed, sig, date, false, None).map(Some);
    }
    let q = crate::pipeline::route::parse_query(req.raw_query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(sig) = get("X-Amz-Signature") else {
        return Ok(None);
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(incomplete(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let (Some(cred), Some(signed), Some(date)) = (
        get("X-Amz-Credential"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Date"),
    ) else {
        return Err(incomplete("AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."));
    };
    if cred.len() > MAX_AUTH_BYTES || sig.len() > MAX_AUTH_BYTES {
        return Err(incomplete("signature parameters are too long"));
    }
    let expires = get("X-Amz-Expires").and_then(|e| e.parse().ok());
    Parsed::new(cred, signed, sig, date, true, expires).map(Some)
}

fn canonical_query(raw: Option<&str>, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                uri_encode(&decode(&k.replace('+', " ")), false),
                uri_encode(&decode(&v.replace('+', " ")), false),
            )
        })
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Verifies the request; `Ok(None)` when it carries no signature at all.
pub fn verify(
    req: &SignedRequest<'_>,
    keys: &std::collections::HashMap<String, IamIdentity>,
) -> Result<Option<Caller>, GatewayError> {
    let Some(p) = parse(req)? else {
        return Ok(None);
    };
    if p.scope_service != "execute-api" {
        return Err(invalid_signature(
            "Credential should be scoped to correct service: 'execute-api'. ",
        ));
    }
    if p.scope_region != req.region {
        return Err(invalid_signature(
            "Credential should be scoped to a valid region. ",
        ));
    }
    let Some(t) = parse_amz_date(&p.amz_date) else {
        return Err(incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            p.amz_date.chars().take(64).collect::<String>()
        )));
    };
    if !p.amz_date.starts_with(&p.scope_date) {
        return Err(invalid_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            p.scope_date.chars().take(16).collect::<String>(),
            &p.amz_date[..8],
            p.amz_date
        )));
    }
    let now = req.now_secs;
    match p.expires {
        Some(exp) if p.presigned => {
            // Saturating: X-Amz-Expires is client input and may be huge.
            if now > t.saturating_add(exp) {
                return Err(invalid_signature(format!(
                    "Signature expired: {} is now earlier than {} ({} - {} sec.)",
                    amz_date(t.saturating_add(exp)),
                    amz_date(now),
                    amz_date(now),
                    exp
                )));
            }
        }
        _ => {
            if t < now - SKEW_SECS {
                return Err(invalid_signature(format!(
                    "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                    p.amz_date,
                    amz_date(now - SKEW_SECS),
                    amz_date(now)
                )));
            }
        }
    }
    if t > now + SKEW_SECS {
        return Err(invalid_signature(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            p.amz_date,
            amz_date(now + SKEW_SECS),
            amz_date(now)
        )));
    }
    let Some(identity) = keys.get(&p.access_key) else {
        return Err(unrecognized());
    };
    if !p.signed_headers.iter().any(|h| h == "host") {
        return Err(mismatch());
    }
    let mut canonical_headers = String::new();
    for name in &p.signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    // Presigned URLs: generic SigV4 signers (botocore's SigV4QueryAuth) hash the body, S3-style
    // ones sign UNSIGNED-PAYLOAD; either is accepted unless the query names the hash.
    let payload_hashes: Vec<String> = if p.presigned {
        match crate::pipeline::route::parse_query(req.raw_query)
            .into_iter()
            .find(|(k, _)| k == "X-Amz-Content-Sha256")
        {
            Some((_, v)) => vec![v],
            None => vec![hex_sha256(req.body), "UNSIGNED-PAYLOAD".to_string()],
        }
    } else {
        match req
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
        {
            Some("UNSIGNED-PAYLOAD") => vec!["UNSIGNED-PAYLOAD".to_string()],
            _ => vec![hex_sha256(req.body)],
        }
    };
    let scope = format!(
        "{}/{}/{}/aws4_request",
        p.scope_date, p.scope_region, p.scope_service
    );
    let string_to_sign = |payload_hash: &str| {
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            req.method,
            uri_encode(req.raw_path.as_bytes(), true),
            canonical_query(req.raw_query, p.presigned),
            canonical_headers,
            p.signed_headers.join(";"),
            payload_hash
        );
        format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            p.amz_date,
            hex_sha256(canonical.as_bytes())
        )
    };
    let k_date = hmac_sha256(
        format!("AWS4{}", identity.secret).as_bytes(),
        p.scope_date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, p.scope_region.as_bytes());
    let k_service = hmac_sha256(&k_region, p.scope_service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let Ok(given) = hex::decode(&p.signature) else {
        return Err(mismatch());
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &k_signing);
    if !payload_hashes
        .iter()
        .any(|h| hmac::verify(&key, string_to_sign(h).as_bytes(), &given).is_ok())
    {
        return Err(mismatch());
    }
    Ok(Some(Caller {
        access_key: p.access_key,
        arn: identity.arn.clone(),
        account_id: identity.account_id.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_signature() {
        let v = |s: &str| http::HeaderValue::from_str(s).expect("value");
        assert!(is_signature(&v(
            "AWS4-HMAC-SHA256 Credential=a/b, Signature=c"
        )));
        for not in [
            "Bearer abc",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256X Credential=a",
            "",
        ] {
            assert!(!is_signature(&v(not)), "{not:?}");
        }
        assert_eq!(
            not_a_signature_message("Bearer"),
            "Authorization header requires 'Credential' parameter. Authorization header requires \
             'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
             Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
             header. Authorization=Bearer"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

    #[test]
    fn encoding() {
        assert_eq!(uri_encode(b"/a b/%20", true), "/a%20b/%2520");
        assert_eq!(canonical_query(Some("b=2&a=1&a=0"), false), "a=0&a=1&b=2");
    }
}
