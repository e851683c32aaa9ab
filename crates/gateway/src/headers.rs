//! Headers on the hot path. The names the gateway sets or reads on every request are statics
//! built at compile time: `HeaderName::from_static` validates its argument each time it runs,
//! and `get("x-...")` parses the name on every lookup.

use http::{HeaderMap, HeaderName};

pub static X_AMZN_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
pub static X_AMZ_APIGW_ID: HeaderName = HeaderName::from_static("x-amz-apigw-id");
pub static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
pub static X_AMZN_APIGATEWAY_API_ID: HeaderName =
    HeaderName::from_static("x-amzn-apigateway-api-id");

/// Request headers the pipeline looks up on every request and that are usually absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Hinted {
    Connection = 1,
    ContentLength = 2,
    /// `x-amzn-RequestId`: a client's own id, honoured when it is a UUID.
    RequestId = 4,
    UserAgent = 8,
    /// `X-Amzn-Trace-Id`: a client's trace, honoured when its root is well-formed.
    TraceId = 16,
    /// `X-HTTP-Method-Override`: the method the request is routed and served as.
    MethodOverride = 32,
}

/// Which [`Hinted`] headers a request has, when the server found out while parsing its head
/// (the fast HTTP/1 path looks at every name anyway). A lookup by name hashes the name; most
/// of these headers are missing from most requests, and their lookups were a tenth of the
/// pipeline's own work on the proxy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderHints {
    /// `None`: nothing is known, every lookup is made.
    present: Option<u8>,
}

impl HeaderHints {
    /// Nothing known (requests hyper parsed).
    pub const UNKNOWN: HeaderHints = HeaderHints { present: None };

    /// Known: none of the [`Hinted`] headers yet.
    pub fn known() -> HeaderHints {
        HeaderHints { present: Some(0) }
    }

    pub fn saw(&mut self, h: Hinted) {
        if let Some(p) = &mut self.present {
            *p |= h as u8;
        }
    }

    /// Whether the request may carry `h`: false only when it is known not to.
    #[inline]
    pub fn may_have(self, h: Hinted) -> bool {
        self.present.is_none_or(|p| p & h as u8 != 0)
    }

    /// `map.get(name)`, skipped when the request is known not to have it.
    #[inline]
    pub fn get<'m>(
        self,
        map: &'m HeaderMap,
        h: Hinted,
        name: &HeaderName,
    ) -> Option<&'m http::HeaderValue> {
        if self.may_have(h) {
            map.get(name)
        } else {
            None
        }
    }
}

/// Puts `map` in `slot`, whose map is usually the unallocated empty one `Request::new` and
/// `Response::new` start with (see [`discard`]).
pub fn install(slot: &mut HeaderMap, map: HeaderMap) {
    discard(std::mem::replace(slot, map));
}

/// Drops `map`, skipping the drop glue when it never allocated. Dropping an empty
/// `HeaderMap::new()` frees nothing, yet its three parts' drop glue cost about 60
/// instructions, several times per proxied request.
pub fn discard(map: HeaderMap) {
    if map.capacity() == 0 && map.is_empty() {
        // `HeaderMap::new` allocates nothing: there is nothing to free.
        std::mem::forget(map);
    }
}

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

/// Whether the header name `name`, an HTTP token (what httparse and `HeaderName` accept), is
/// `lower` in any case. `lower` holds lower-case letters, digits and `-`: setting bit 0x20 of
/// a token's byte lowers a letter and leaves those alone, and only control bytes (never in a
/// token) would map onto them. Eight bytes at a time; `eq_ignore_ascii_case` lowers every
/// byte of both sides and showed in profiles of the response path.
pub fn token_is(name: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-'));
    if name.len() != lower.len() {
        return false;
    }
    let mut a = name.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            return false;
        };
        if u64::from_le_bytes(x) | 0x2020_2020_2020_2020 != u64::from_le_bytes(y) {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == *y)
}

/// Header names with a part in a message's framing or in what its head says, whichever side
/// reads it (the backend client, the response writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    ContentLength,
    TransferEncoding,
    Connection,
    Date,
    /// Not framing, but a head without one gets AWS's default.
    ContentType,
}

/// The content type API Gateway gives a response that has none.
pub fn default_content_type() -> http::HeaderValue {
    http::HeaderValue::from_static("application/json")
}

/// Which [`Special`] header `name` (a token, in any case) is. Always inlined: as a call it
/// cost more than its comparisons (callgrind, 7 calls per proxied request).
#[inline(always)]
pub fn special(name: &[u8]) -> Option<Special> {
    match name.len() {
        4 if token_is(name, b"date") => Some(Special::Date),
        10 if token_is(name, b"connection") => Some(Special::Connection),
        12 if token_is(name, b"content-type") => Some(Special::ContentType),
        14 if token_is(name, b"content-length") => Some(Special::ContentLength),
        17 if token_is(name, b"transfer-encoding") => Some(Special::TransferEncoding),
        _ => None,
    }
}

/// [`special`] for a `HeaderName`: the standard names compare as enum values, cheaper than
/// their bytes.
#[inline]
pub fn special_name(name: &HeaderName) -> Option<Special> {
    use http::header;
    if name == header::CONTENT_LENGTH {
        Some(Special::ContentLength)
    } else if name == header::TRANSFER_ENCODING {
        Some(Special::TransferEncoding)
    } else if name == header::CONNECTION {
        Some(Special::Connection)
    } else if name == header::DATE {
        Some(Special::Date)
    } else if name == header::CONTENT_TYPE {
        Some(Special::ContentType)
    } else {
        None
    }
}

/// Calls `f` with every header of `map`, by value, in order (a map's own iterator gives a
/// name only with the first of its values).
pub fn for_each_owned(map: HeaderMap, mut f: impl FnMut(HeaderName, http::HeaderValue)) {
    let mut current = None;
    for (name, value) in map {
        if let Some(n) = name {
            current = Some(n);
        }
        if let Some(n) = &current {
            f(n.clone(), value);
        }
    }
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
    fn token_names_in_any_case() {
        assert!(token_is(b"Content-Length", b"content-length"));
        assert!(token_is(b"CONTENT-LENGTH", b"content-length"));
        assert!(token_is(b"x-amzn-RequestId", b"x-amzn-requestid"));
        assert!(token_is(b"Via", b"via"));
        assert!(!token_is(b"Content-Lengths", b"content-length"));
        assert!(!token_is(b"Content_Length", b"content-length"));
        assert!(!token_is(b"Content-Lengtx", b"content-length"));
        assert!(!token_is(b"Xontent-Length", b"content-length"));
        assert!(!token_is(b"date", b"data"));
        assert!(!token_is(b"", b"a"));
        // Every token byte against every target byte: a match is the same byte or its case.
        let tchars =
            b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let targets = b"abcdefghijklmnopqrstuvwxyz0123456789-";
        for &x in tchars {
            for &y in targets {
                assert_eq!(token_is(&[x], &[y]), x.to_ascii_lowercase() == y, "{x} {y}");
                let long = [x; 9];
                assert_eq!(
                    token_is(&long, &[y; 9]),
                    x.to_ascii_lowercase() == y,
                    "{x} {y}"
                );
            }
        }
    }

    #[test]
    fn special_names_in_any_case() {
        assert_eq!(special(b"Content-Length"), Some(Special::ContentLength));
        assert_eq!(
            special(b"TRANSFER-ENCODING"),
            Some(Special::TransferEncoding)
        );
        assert_eq!(special(b"connection"), Some(Special::Connection));
        assert_eq!(special(b"Date"), Some(Special::Date));
        assert_eq!(special(b"Content-TYPE"), Some(Special::ContentType));
        assert_eq!(special(b"Dates"), None);
        // The `HeaderName` form agrees with the bytes form.
        for name in [
            "content-length",
            "transfer-encoding",
            "connection",
            "date",
            "content-type",
            "x-date",
        ] {
            let parsed = HeaderName::from_static(name);
            assert_eq!(special_name(&parsed), special(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn owned_headers_keep_every_value_in_order() {
        let mut map = HeaderMap::new();
        map.append("a", http::HeaderValue::from_static("1"));
        map.append("b", http::HeaderValue::from_static("2"));
        map.append("a", http::HeaderValue::from_static("3"));
        let mut seen = Vec::new();
        for_each_owned(map, |n, v| {
            seen.push(format!("{n}={}", v.to_str().unwrap_or("?")))
        });
        assert_eq!(seen, ["a=1", "a=3", "b=2"]);
    }

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
