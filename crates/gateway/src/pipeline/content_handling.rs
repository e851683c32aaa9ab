//! Binary payloads: `binaryMediaTypes` and `contentHandling` (CONVERT_TO_TEXT /
//! CONVERT_TO_BINARY) as API Gateway applies them to non-proxy integrations (§5.9 of the
//! reference). Templates only ever see binary content as its base64 text.

use base64::Engine;
use bytes::Bytes;
use turnpike_model::rest::ContentHandling;

use crate::error::GatewayError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Whether `media_type` (lower-case, no parameters) is one of the API's binary media types.
/// `*/*` matches everything and `type/*` a whole type.
pub fn is_binary(binary_media_types: &[String], media_type: &str) -> bool {
    if media_type.is_empty() {
        return false;
    }
    binary_media_types.iter().any(|t| {
        let t = t.trim().to_ascii_lowercase();
        if t == "*/*" || t == media_type {
            return true;
        }
        match (t.strip_suffix("/*"), media_type.split_once('/')) {
            (Some(prefix), Some((ty, _))) => prefix == ty,
            _ => false,
        }
    })
}

/// Whether a payload with these headers is binary: its Content-Type is a binary media type.
pub fn is_binary_payload(binary_media_types: &[String], headers: &http::HeaderMap) -> bool {
    let media_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(super::integration_request::media_type)
        .unwrap_or_default();
    is_binary(binary_media_types, &media_type)
}

pub fn base64_encode(bytes: &[u8]) -> Bytes {
    Bytes::from(B64.encode(bytes))
}

pub fn base64_decode(bytes: &[u8]) -> Result<Bytes, GatewayError> {
    // AWS tolerates surrounding whitespace in base64 text.
    let trimmed: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    B64.decode(&trimmed).map(Bytes::from).map_err(|e| {
        GatewayError::configuration(format!(
            "Execution failed due to configuration error: Unable to base64 decode the body: {e}"
        ))
    })
}

/// The text a template sees for a payload: base64 for binary content, else the bytes as UTF-8.
pub fn template_text(body: &[u8], binary: bool) -> String {
    if binary {
        B64.encode(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    }
}

/// A payload handled as text is UTF-8 to API Gateway: bytes that are not valid UTF-8 become
/// U+FFFD (recorded against AWS with binary bodies and no binary media type).
fn as_text(body: Bytes) -> Bytes {
    match String::from_utf8_lossy(&body) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(s) => Bytes::from(s),
    }
}

/// Request side: converts a passed-through payload for the integration.
pub fn convert_request(
    body: Bytes,
    binary: bool,
    handling: Option<ContentHandling>,
) -> Result<Bytes, GatewayError> {
    match (handling, binary) {
        (Some(ContentHandling::ConvertToText), true) => Ok(base64_encode(&body)),
        (Some(ContentHandling::ConvertToBinary), false) => base64_decode(&body),
        (_, false) => Ok(as_text(body)),
        (_, true) => Ok(body),
    }
}

/// Response side: converts the integration (or template) payload for the client.
/// `payload_binary`: the payload is binary (its type is a binary media type);
/// `accept_binary`: the client's first `Accept` type is a binary media type;
/// `list_defined`: the API declares binary media types at all.
pub fn convert_response(
    body: Bytes,
    payload_binary: bool,
    accept_binary: bool,
    list_defined: bool,
    handling: Option<ContentHandling>,
) -> Result<Bytes, GatewayError> {
    match handling {
        Some(ContentHandling::ConvertToText) => Ok(if payload_binary {
            base64_encode(&body)
        } else {
            as_text(body)
        }),
        Some(ContentHandling::ConvertToBinary) => {
            if payload_binary {
                Ok(body)
            } else {
                base64_decode(&body)
            }
        }
        None if !list_defined => Ok(as_text(body)),
        None => match (payload_binary, accept_binary) {
            (true, true) => Ok(body),
            (false, false) => Ok(as_text(body)),
            (true, false) => Ok(base64_encode(&body)),
            (false, true) => base64_decode(&body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContentHandling::*;

    #[test]
    fn media_type_matching() {
        let list = vec![
            "image/*".to_string(),
            "application/octet-stream".to_string(),
        ];
        assert!(is_binary(&list, "image/png"));
        assert!(is_binary(&list, "application/octet-stream"));
        assert!(!is_binary(&list, "application/json"));
        assert!(is_binary(&["*/*".to_string()], "text/plain"));
        assert!(!is_binary(&[], "image/png"));
    }

    #[test]
    fn text_payloads_are_utf8() {
        let raw = Bytes::from_static(b"\x1f\x8b\x08ok");
        let mangled = Bytes::from("\u{1f}\u{fffd}\u{8}ok");
        assert_eq!(
            convert_request(raw.clone(), false, None).ok(),
            Some(mangled.clone())
        );
        assert_eq!(
            convert_request(raw.clone(), true, None).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            convert_response(raw.clone(), false, false, false, None).ok(),
            Some(mangled)
        );
        assert_eq!(
            convert_response(raw.clone(), true, true, true, None).ok(),
            Some(raw)
        );
    }

    #[test]
    fn response_matrix() {
        let text = Bytes::from_static(b"aGVsbG8=");
        let raw = Bytes::from_static(b"hello");
        // No list: text unless CONVERT_TO_BINARY.
        assert_eq!(
            convert_response(raw.clone(), false, false, false, None).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            convert_response(text.clone(), false, false, false, Some(ConvertToBinary)).ok(),
            Some(raw.clone())
        );
        // Text payload, binary Accept: decoded.
        assert_eq!(
            convert_response(text.clone(), false, true, true, None).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            convert_response(text.clone(), false, true, true, Some(ConvertToText)).ok(),
            Some(text.clone())
        );
        // Binary payload, text Accept: base64.
        assert_eq!(
            convert_response(raw.clone(), true, false, true, None).ok(),
            Some(text.clone())
        );
        assert_eq!(
            convert_response(raw.clone(), true, false, true, Some(ConvertToBinary)).ok(),
            Some(raw.clone())
        );
        // Binary payload, binary Accept: bytes unless CONVERT_TO_TEXT.
        assert_eq!(
            convert_response(raw.clone(), true, true, true, None).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            convert_response(raw.clone(), true, true, true, Some(ConvertToText)).ok(),
            Some(text.clone())
        );
        // Decoding non-base64 text fails as a configuration error.
        assert!(
            convert_response(Bytes::from_static(b"not base64!"), false, true, true, None).is_err()
        );
    }

    #[test]
    fn request_matrix() {
        let raw = Bytes::from_static(b"hi");
        let text = Bytes::from_static(b"aGk=");
        assert_eq!(
            convert_request(raw.clone(), true, None).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            convert_request(raw.clone(), true, Some(ConvertToText)).ok(),
            Some(text.clone())
        );
        assert_eq!(
            convert_request(text.clone(), false, Some(ConvertToBinary)).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            convert_request(text.clone(), false, None).ok(),
            Some(text.clone())
        );
        assert!(convert_request(Bytes::from_static(b"%%%"), false, Some(ConvertToBinary)).is_err());
    }
}
