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
