//! Headers on the hot path. The names the gateway sets or reads on every request are statics
//! built at compile time: `HeaderName::from_static` validates its argument each time it runs,
//! and `get("x-...")` parses the name on every lookup.

use http::{HeaderMap, HeaderName};

pub static X_AMZN_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
pub static X_AMZ_APIGW_ID: HeaderName = HeaderName::from_static("x-amz-apigw-id");
pub static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
pub static X_AMZN_APIGATEWAY_API_ID: HeaderName =
    HeaderName::from_static("x-amzn-apigateway-api-id");

/// Removes every header whose (lower-case) name `listed` selects, in one pass over the
/// headers present: a request or response carries a few headers, and a lookup by name hashes
/// it each time. `listed` is a `matches!` over the names: the compiler turns it into a switch
/// on the length and one comparison.
pub fn remove_listed(h: &mut HeaderMap, listed: fn(&str) -> bool) {
    // Usually nothing is listed: find that out without allocating.
    if !h.keys().any(|k| listed(k.as_str())) {
        return;
    }
    let present: Vec<HeaderName> = h.keys().filter(|k| listed(k.as_str())).cloned().collect();
    for name in present {
        h.remove(name);
    }
}

/// The comma-separated tokens of a header value (`Connection`, `Transfer-Encoding`), trimmed,
/// empty ones skipped.
pub fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether a comma-separated header value lists `token` (case-insensitive), as HTTP reads
/// `Connection: keep-alive, close`.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// A decimal `Content-Length`: digits only (no sign, no spaces), at most 19 of them.
pub fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_decimals() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(!has_token(b"closed, xclose", b"close"));
        assert_eq!(tokens(b" a ,, b").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert_eq!(parse_decimal(b"0042"), Some(42));
        for bad in [&b""[..], b"+1", b"1 ", b"1,1", b"12345678901234567890"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
