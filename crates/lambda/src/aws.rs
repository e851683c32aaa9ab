//! AWS credentials (the standard chain: environment, then the shared credentials file) and
//! SigV4 request signing, shared by remote Lambda invokes and the gateway's AWS service
//! integrations.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use turnpike_model::functions::AwsCredentials;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// Credentials from the standard chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
/// (`AWS_SESSION_TOKEN`), else the profile `AWS_PROFILE` (default `default`) of
/// `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`).
pub fn default_credentials() -> Option<AwsCredentials> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(a), Some(s)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Some(AwsCredentials {
            access_key_id: a,
            secret_access_key: s,
            session_token: env("AWS_SESSION_TOKEN"),
        });
    }
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    profile_credentials(&text, &profile)
}

/// Parses one profile of an INI credentials file.
pub fn profile_credentials(text: &str, profile: &str) -> Option<AwsCredentials> {
    let mut in_profile = false;
    let (mut a, mut s, mut t) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_profile = name == profile || name == format!("profile {profile}");
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => a = Some(v),
                "aws_secret_access_key" => s = Some(v),
                "aws_session_token" => t = Some(v),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: a?,
        secret_access_key: s?,
        session_token: t,
    })
}

/// Signs `parts` (method, URI, headers) and `body` for `service` in `region` with SigV4,
/// adding `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token`, `x-amz-content-sha256`
/// for S3) to the headers.
pub fn sign_request(
    parts: &mut http::request::Parts,
    body: &[u8],
    service: &str,
    region: &str,
    creds: &AwsCredentials,
) -> Result<(), SignError> {
    let identity: Identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "turnpike",
    )
    .into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| SignError::Sign(e.to_string()))?
        .into();
    let uri = parts.uri.to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError::Sign(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| SignError::Sign(e.to_string()))?
        .into_parts();
    for (name, value) in instructions.headers() {
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| SignError::Sign(e.to_string()))?;
        let v = http::HeaderValue::from_str(value).map_err(|e| SignError::Sign(e.to_string()))?;
        parts.headers.insert(n, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n[other]\naws_access_key_id=B\naws_secret_access_key=T\naws_session_token=X\n";
        let d = profile_credentials(text, "default").expect("default");
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.as_str()),
            ("A", "S")
        );
        let o = profile_credentials(text, "other").expect("other");
        assert_eq!(o.session_token.as_deref(), Some("X"));
        assert!(profile_credentials(text, "none").is_none());
    }

    #[test]
    fn signs_requests() {
        let (mut parts, _) = http::Request::builder()
            .method("POST")
            .uri("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/f/invocations")
            .header("content-type", "application/json")
            .body(())
            .map(|r| r.into_parts())
            .expect("request");
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        sign_request(&mut parts, b"{}", "lambda", "us-east-1", &creds).expect("signed");
        let auth = parts.headers["authorization"].to_str().unwrap_or_default();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(auth.contains("/us-east-1/lambda/aws4_request"));
        assert!(parts.headers.contains_key("x-amz-date"));
    }
}
