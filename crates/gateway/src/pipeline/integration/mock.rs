//! MOCK integrations: the request template's `statusCode` selects the integration response;
//! nothing is called.

use bytes::Bytes;
use http::{HeaderMap, Response};

use crate::body::Body;
use crate::error::GatewayError;
use crate::pipeline::integration_request;
use crate::pipeline::integration_response::{self, IntegrationOutput};
use crate::pipeline::Invocation;

/// Reads `statusCode` from the (rendered) integration request. Lenient like AWS about the
/// surrounding text (CDK emits `{statusCode: 200}` with an unquoted key).
pub fn status_code(body: &str) -> Option<u16> {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(body) {
        return match m.get("statusCode") {
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
    }
    let i = body.find("statusCode")?;
    let rest = body[i + "statusCode".len()..]
        .trim_start_matches(['"', '\''])
        .trim_start();
    let rest = rest
        .strip_prefix(':')?
        .trim_start()
        .trim_start_matches(['"', '\'']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn invoke(inv: &mut Invocation<'_>, body: Bytes) -> Result<Response<Body>, GatewayError> {
    let req = integration_request::prepare(inv, body)?;
    let text = String::from_utf8_lossy(&req.body);
    let status = match status_code(&text) {
        Some(s) => s,
        // Without a template (passthrough of a body that names no status) the default
        // integration response answers (AWS docs).
        None if !req.templated => 200,
        None => {
            return Err(GatewayError::internal(
                "Execution failed: Unable to parse statusCode. It should be an integer that is defined in the request template.",
            ))
        }
    };
    integration_response::respond(
        inv,
        IntegrationOutput {
            selector: status.to_string(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            binary: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn parses_status_codes() {
        assert_eq!(status_code("{\"statusCode\": 200}"), Some(200));
        assert_eq!(status_code("{statusCode: 404}"), Some(404));
        assert_eq!(status_code(" \"statusCode\": 500 "), Some(500));
        assert_eq!(status_code("{\"statusCode\": \"201\"}"), Some(201));
        assert_eq!(status_code("{\"statusCode\": \"abc\"}"), None);
        assert_eq!(status_code(""), None);
    }
}
