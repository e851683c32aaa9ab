//! Step 6: what every response carries on its way out (`x-amzn-RequestId`, `x-amz-apigw-id`,
//! `Connection: keep-alive`), and the access log line.

use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body::Body as _;

use crate::body::Body;
use crate::context::RequestContext;
use crate::deployment::StageRuntime;
use crate::headers;

/// A response, with the headers every response ends with kept apart: the HTTP/1.1 fast path
/// writes them straight from the request's ids, where putting them in the map would hash two
/// custom names and copy both ids per request.
pub struct Served {
    pub response: Response<Body>,
    pub closing: ClosingHeaders,
    /// The request's header map, emptied, for the connection's next request: an HTTP_PROXY
    /// response's map is never allocated (its lines stay outside it), so it cannot be the one
    /// reused.
    pub spare_headers: Option<HeaderMap>,
}

impl Served {
    /// A response whose map already holds everything (no closing headers).
    pub fn plain(response: Response<Body>) -> Self {
        Served {
            response,
            closing: ClosingHeaders::default(),
            spare_headers: None,
        }
    }

    /// The response with every header in its map, for writers that need them there
    /// (hyper's server): an HTTP_PROXY backend's lines kept as received first, then the map's
    /// own, then the closing headers, the order the fast path writes them in.
    pub fn into_response(self) -> Response<Body> {
        let (mut parts, mut body) = self.response.into_parts();
        if let Body::Upstream(b) = &mut body {
            b.merge_head_into(&mut parts.headers);
        }
        self.closing.apply_to(&mut parts.headers);
        Response::from_parts(parts, body)
    }
}

/// The headers written after a response's own. Each replaces any header of its name in the
/// response's map, as `HeaderMap::insert` would.
#[derive(Debug, Default)]
pub struct ClosingHeaders {
    /// `x-amzn-RequestId`; empty: none.
    pub request_id: String,
    /// `x-amz-apigw-id`; empty: none.
    pub extended_request_id: String,
    /// `Connection: keep-alive` (AWS says so to HTTP/1.1 clients that do not close).
    pub keep_alive: bool,
}

impl ClosingHeaders {
    /// Whether a header of the response's map gives way to one of these.
    pub fn replaces(&self, name: &HeaderName) -> bool {
        self.replaces_received(name.as_str().as_bytes())
    }

    /// [`Self::replaces`] for a name as received (a token, in any case): an HTTP_PROXY
    /// backend's lines give way too.
    pub fn replaces_received(&self, name: &[u8]) -> bool {
        let is = |n: &[u8]| headers::token_is(name, n);
        match name.len() {
            10 => self.keep_alive && is(b"connection"),
            14 => !self.extended_request_id.is_empty() && is(b"x-amz-apigw-id"),
            16 => !self.request_id.is_empty() && is(b"x-amzn-requestid"),
            _ => false,
        }
    }

    /// Calls `f` with each header line, in the order written.
    pub fn for_each(&self, mut f: impl FnMut(&'static HeaderName, &[u8])) {
        // The ids are ours (a UUID and base64), but a bad byte must never reach the wire
        // (`HeaderValue`'s rule, checked without building one).
        // A fold without an early exit: it vectorises.
        let valid = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .fold(true, |ok, b| ok & ((b >= 0x20 && b != 0x7f) | (b == b'\t')))
        };
        if valid(&self.request_id) {
            f(&headers::X_AMZN_REQUEST_ID, self.request_id.as_bytes());
        }
        if valid(&self.extended_request_id) {
            f(
                &headers::X_AMZ_APIGW_ID,
                self.extended_request_id.as_bytes(),
            );
        }
        if self.keep_alive {
            f(&http::header::CONNECTION, b"keep-alive");
        }
    }

    /// Puts the headers in `map` where the fast path writes them: after the map's own, whose
    /// headers of the same names are dropped.
    pub fn apply_to(&self, map: &mut HeaderMap) {
        if map.keys().any(|n| self.replaces(n)) {
            let old = std::mem::take(map);
            headers::for_each_owned(old, |n, v| {
                if !self.replaces(&n) {
                    map.append(n, v);
                }
            });
        }
        self.for_each(|name, value| {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                map.append(name.clone(), v);
            }
        });
    }
}

/// Records the response in `ctx` and writes the access log line; returns the closing headers.
pub fn finish(
    resp: &Response<Body>,
    ctx: &mut RequestContext,
    started: Instant,
    stage: Option<&StageRuntime>,
    keep_alive: bool,
) -> ClosingHeaders {
    ctx.status = Some(resp.status().as_u16());
    ctx.response_latency_ms = Some(started.elapsed().as_millis() as u64);
    ctx.response_length = resp.body().size_hint().exact().or_else(|| {
        resp.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    if let Some(log) = stage.and_then(|s| s.access_log.as_ref()) {
        log.log(ctx);
    }
    // The log line has been written: the ids are not needed in the context any more.
    ClosingHeaders {
        request_id: std::mem::take(&mut ctx.request_id),
        extended_request_id: std::mem::take(&mut ctx.extended_request_id),
        keep_alive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_headers_replace_the_maps_own_and_come_last() {
        let closing = ClosingHeaders {
            request_id: "r-1".into(),
            extended_request_id: "e-1".into(),
            keep_alive: true,
        };
        let mut map = HeaderMap::new();
        map.insert("x-amzn-requestid", HeaderValue::from_static("theirs"));
        map.insert("content-type", HeaderValue::from_static("text/plain"));
        map.append("connection", HeaderValue::from_static("close"));
        map.append("set-cookie", HeaderValue::from_static("a=1"));
        map.append("set-cookie", HeaderValue::from_static("b=2"));
        closing.apply_to(&mut map);
        let lines: Vec<String> = map
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(
            lines,
            [
                "content-type: text/plain",
                "set-cookie: a=1",
                "set-cookie: b=2",
                "x-amzn-requestid: r-1",
                "x-amz-apigw-id: e-1",
                "connection: keep-alive",
            ]
        );
        // Nothing to replace, nothing to write: the map is left as it is.
        let mut map = HeaderMap::new();
        map.insert("connection", HeaderValue::from_static("close"));
        ClosingHeaders::default().apply_to(&mut map);
        assert_eq!(map.len(), 1);
        assert_eq!(map["connection"], "close");
    }
}
