//! HTTP and HTTP_PROXY integrations.
//!
//! HTTP_PROXY streams both bodies without buffering and forwards the client's headers and query
//! string (less the ones AWS drops), with mapped parameters applied on top. HTTP (non-proxy)
//! sends only mapped parameters plus AWS's defaults and buffers both sides so templates can
//! run.

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;

use crate::body::{Body, RequestBody};
use crate::deployment::{lookup, StaticOrigin};
use crate::error::GatewayError;
use crate::headers::Hinted;
use crate::pipeline::integration_request::{self, IntegrationRequest};
use crate::pipeline::integration_response::{self, IntegrationOutput};
use crate::pipeline::{content_handling, Invocation};
use crate::upstream::{Rewrite, Target, UpstreamBody, UpstreamError};
use crate::Gateway;

/// Client headers that never reach an HTTP_PROXY integration (recorded against AWS) beyond the
/// hop-by-hop and framing ones routing already removed from the method request
/// (`route::hidden_request_header`): `Via`, `Keep-Alive`, and `Host` and `Content-Encoding`,
/// which AWS does not pass by default.
fn dropped_request_header(name: &str) -> bool {
    // `X-HTTP-Method-Override` has done its job (the method); AWS passes it on only mapped.
    matches!(
        name,
        "via" | "keep-alive" | "host" | "content-encoding" | "x-http-method-override"
    )
}

/// Integration response headers AWS renames to `x-amzn-Remapped-{name}` (HTTP header names are
/// case-insensitive; they are written in lower case).
static REMAPPED_CONNECTION: HeaderName = HeaderName::from_static("x-amzn-remapped-connection");
static REMAPPED_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("x-amzn-remapped-content-length");
static REMAPPED_DATE: HeaderName = HeaderName::from_static("x-amzn-remapped-date");
static REMAPPED_SERVER: HeaderName = HeaderName::from_static("x-amzn-remapped-server");
static REMAPPED_REQUEST_ID: HeaderName =
    HeaderName::from_static("x-amzn-remapped-x-amzn-requestid");

/// What AWS does with a backend's response header for HTTP_PROXY, by its name as received:
/// drops `Transfer-Encoding` and `Via`, renames `Connection`, `Date`, `Server` and
/// `x-amzn-RequestId`, and keeps `Content-Length` (which still frames the streamed body) while
/// also passing it on renamed.
fn remap_response_header(name: &[u8]) -> Rewrite {
    // Names come from httparse: tokens, for which `token_is` is exact.
    let is = |n: &[u8]| crate::headers::token_is(name, n);
    match name.len() {
        3 if is(b"via") => Rewrite::Drop,
        4 if is(b"date") => Rewrite::Rename(&REMAPPED_DATE),
        6 if is(b"server") => Rewrite::Rename(&REMAPPED_SERVER),
        10 if is(b"connection") => Rewrite::Rename(&REMAPPED_CONNECTION),
        14 if is(b"content-length") => Rewrite::KeepAndRename(&REMAPPED_CONTENT_LENGTH),
        16 if is(b"x-amzn-requestid") => Rewrite::Rename(&REMAPPED_REQUEST_ID),
        17 if is(b"transfer-encoding") => Rewrite::Drop,
        _ => Rewrite::Keep,
    }
}

/// Hop-by-hop headers that never reach an HTTP or HTTP_PROXY backend, even when mapped
/// (AWS drops `Expect`, `Proxy-Authenticate`, `TE` after mapping and `Via` for HTTP types).
fn dropped_after_mapping(name: &str) -> bool {
    matches!(
        name,
        "connection" | "expect" | "proxy-authenticate" | "te" | "via" | "keep-alive"
    )
}

fn drop_hop_by_hop(h: &mut HeaderMap) {
    crate::headers::remove_listed(h, dropped_after_mapping);
}

/// A client body up to this size is read before the backend is called, so that a small chunked
/// upload reaches the backend with a `Content-Length` (AWS buffers requests); larger ones stream.
const BUFFER_SMALL_BODY: usize = 64 * 1024;

/// Reads the first frames of `body`; returns the whole body if it ends within
/// [`BUFFER_SMALL_BODY`] bytes, else a stream replaying what was read followed by the rest.
async fn small_or_stream(
    mut body: hyper::body::Incoming,
    limit: usize,
) -> Result<Body, GatewayError> {
    use http_body::Body as _;
    if body.is_end_stream() {
        return Ok(Body::empty());
    }
    let mut prefix = bytes::BytesMut::new();
    while prefix.len() <= BUFFER_SMALL_BODY {
        match body.frame().await {
            None => return Ok(Body::full(prefix.freeze())),
            Some(Ok(frame)) => {
                if let Ok(d) = frame.into_data() {
                    prefix.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => {
                return Err(GatewayError::internal(format!(
                    "reading the request body failed: {e}"
                )))
            }
        }
    }
    let first = prefix.freeze();
    let head = http_body_util::Full::new(first.clone())
        .map_err(|never: std::convert::Infallible| -> crate::body::BoxError { match never {} });
    let rest = http_body_util::Limited::new(body, limit.saturating_sub(first.len()));
    Ok(Body::stream(Chain {
        head: Some(head),
        rest,
    }))
}

/// `head` then `rest`, as one body.
struct Chain<A, B> {
    head: Option<A>,
    rest: B,
}

impl<A, B> http_body::Body for Chain<A, B>
where
    A: http_body::Body<Data = Bytes, Error = crate::body::BoxError> + Unpin,
    B: http_body::Body<Data = Bytes, Error = crate::body::BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if let Some(h) = self.head.as_mut() {
            match std::pin::Pin::new(h).poll_frame(cx) {
                Poll::Ready(None) => self.head = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

fn header_value(s: &str) -> Result<HeaderValue, GatewayError> {
    HeaderValue::from_str(s).map_err(|_| {
        GatewayError::internal(format!(
            "mapped header value {s:?} is not a valid header value"
        ))
    })
}

fn header_name(s: &str) -> Result<HeaderName, GatewayError> {
    HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| GatewayError::internal(format!("mapped header name {s:?} is not valid")))
}

const QUERY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, QUERY_ENCODE)
}

/// A backend URL, checked.
enum BackendUrl<'t> {
    /// Rendered from a template with a literal origin: `text` starts with the origin's text,
    /// and the rest, the request target, holds only bytes every part of a URI may carry as
    /// they are (checked in place: parsing it into an `http::Uri` and reading it back cost a
    /// few hundred instructions per request).
    Literal {
        origin: &'t StaticOrigin,
        text: String,
    },
    /// Anything else, parsed by the `http` types.
    Parsed(Uri),
}

impl BackendUrl<'_> {
    fn target(&self) -> Option<Target<'_>> {
        match self {
            BackendUrl::Literal { origin, text } => Some(Target {
                scheme: &origin.scheme,
                authority: &origin.authority,
                path_and_query: text.get(origin.len..)?,
            }),
            BackendUrl::Parsed(uri) => Target::of(uri),
        }
    }

    fn into_uri(self) -> Result<Uri, GatewayError> {
        match self {
            BackendUrl::Literal { origin, text } => {
                let bytes = Bytes::from(text);
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(origin.scheme.clone());
                parts.authority = Some(origin.authority.clone());
                parts.path_and_query = Some(
                    http::uri::PathAndQuery::from_maybe_shared(bytes.slice(origin.len..))
                        .map_err(|_| invalid_endpoint(&String::from_utf8_lossy(&bytes)))?,
                );
                Uri::from_parts(parts)
                    .map_err(|_| invalid_endpoint(&String::from_utf8_lossy(&bytes)))
            }
            BackendUrl::Parsed(uri) => Ok(uri),
        }
    }
}

/// API_CONFIGURATION_ERROR: AWS's "invalid endpoint address" (a URL it cannot call, or a
/// backend that refuses the connection or does not resolve).
fn invalid_endpoint(url: &str) -> GatewayError {
    GatewayError::configuration(format!(
        "Execution failed due to configuration error: Invalid endpoint address {url:?}"
    ))
}

/// Whether `target` is a request target that `http::uri::PathAndQuery` takes exactly as it
/// is: a `/`, then unreserved characters, sub-delimiters, `:`, `@`, `/`, `?` and `%` (no
/// fragment to cut, no byte it refuses or would have to check for UTF-8).
fn plain_request_target(target: &str) -> bool {
    target.len() < usize::from(u16::MAX)
        && target.starts_with('/')
        && target.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                        | b'%'
                )
        })
}

/// Builds the backend URL: URI template + path variables (`path_var`), then `raw_query`
/// (proxy only) and the mapped query parameters.
fn backend_url<'t, 'v>(
    inv: &'t Invocation<'_>,
    path_var: impl Fn(&str) -> Option<&'v str>,
    mapped_query: &[(String, String)],
    raw_query: Option<&str>,
) -> Result<BackendUrl<'t>, GatewayError> {
    let Some(template) = &inv.method.integration.uri else {
        return Err(GatewayError::configuration("integration has no uri"));
    };
    let mut url = template.render_with(path_var, &inv.stage.variables);
    let mut first = !url.contains('?');
    let mut push = |url: &mut String, piece: &str| {
        url.push(if first { '?' } else { '&' });
        first = false;
        url.push_str(piece);
    };
    if let Some(q) = raw_query.filter(|q| !q.is_empty()) {
        push(&mut url, q);
    }
    for (k, v) in mapped_query {
        let piece = format!("{}={}", encode(k), encode(v));
        push(&mut url, &piece);
    }
    if let Some(origin) = &template.static_origin {
        // The origin was parsed at deploy time: only the path and query are checked here (the
        // rendered URI starts with the origin's text).
        let plain = url.get(origin.len..).is_some_and(plain_request_target);
        let literal = BackendUrl::Literal { origin, text: url };
        return if plain {
            Ok(literal)
        } else {
            literal.into_uri().map(BackendUrl::Parsed)
        };
    }
    let uri: Uri = url.parse().map_err(|_| invalid_endpoint(&url))?;
    if uri.host().is_none_or(str::is_empty) || !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid_endpoint(&url));
    }
    Ok(BackendUrl::Parsed(uri))
}

fn outgoing_method(inv: &Invocation<'_>) -> http::Method {
    inv.method
        .integration
        .http_method
        .clone()
        .unwrap_or_else(|| inv.parts.method.clone())
}

/// Sends the request with the integration's timeout and classifies failures as AWS does.
async fn send(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    req: Request<Body>,
) -> Result<Response<UpstreamBody>, GatewayError> {
    let started = Instant::now();
    let timeout = inv.method.integration.timeout;
    let result = inv
        .client
        .integration_timer
        .timeout(timeout, std::pin::pin!(gw.upstream.request(req)))
        .await;
    outcome(inv, result, started)
}

/// Records how a backend call went in `$context.integration*` and turns failures into AWS's
/// gateway responses (timeout 504, unreachable 500, network error 502).
fn outcome(
    inv: &mut Invocation<'_>,
    result: Result<Result<Response<UpstreamBody>, UpstreamError>, crate::timer::Elapsed>,
    started: Instant,
) -> Result<Response<UpstreamBody>, GatewayError> {
    let timeout = inv.method.integration.timeout;
    inv.ctx.integration_latency_ms = Some(started.elapsed().as_millis() as u64);
    match result {
        Err(_) => {
            inv.ctx.integration_error = Some("timeout".into());
            Err(GatewayError::integration_timeout().with_detail(format!(
                "Execution failed: endpoint request timed out after {} ms",
                timeout.as_millis()
            )))
        }
        Ok(Err(e)) => {
            inv.ctx.integration_error = Some(e.to_string());
            if exceeded_body_limit(&e) {
                // The streamed client body grew past the payload limit mid-upload.
                Err(crate::pipeline::route::too_large_error())
            } else if e.is_connect() {
                Err(GatewayError::configuration(format!(
                    "Execution failed due to configuration error: Invalid endpoint address ({e:?})"
                )))
            } else {
                Err(GatewayError::integration_failure(format!(
                    "Network error communicating with endpoint: {e:?}"
                )))
            }
        }
        Ok(Ok(resp)) => {
            inv.ctx.integration_status = Some(resp.status().as_u16());
            Ok(resp)
        }
    }
}

/// Whether a client error was caused by the request body's [`http_body_util::Limited`] limit.
fn exceeded_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The headers API Gateway adds to every HTTP and HTTP_PROXY backend request, replacing a
/// client's of the same name.
fn gateway_headers(inv: &Invocation<'_>) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
    let trace = inv
        .ctx
        .trace_id
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .map(|v| (crate::headers::X_AMZN_TRACE_ID.clone(), v));
    trace.into_iter().chain(std::iter::once((
        crate::headers::X_AMZN_APIGATEWAY_API_ID.clone(),
        inv.api.headers.api_id.clone(),
    )))
}

fn add_gateway_headers(h: &mut HeaderMap, inv: &Invocation<'_>) {
    for (name, value) in gateway_headers(inv) {
        h.insert(name, value);
    }
}

fn default_user_agent(inv: &Invocation<'_>) -> HeaderValue {
    inv.api.headers.user_agent.clone()
}

/// The headers an HTTP_PROXY backend receives: the client's, less what AWS drops, with the
/// mapped ones on top and AWS's own added. Kept as the client's map plus a short list, and
/// written straight into the backend request's head: a copy of the client's map cost more
/// than the rest of the header handling (`crate::upstream::HeaderSource`).
struct ProxyHeaders<'a> {
    client: &'a HeaderMap,
    /// Mapped and gateway-set headers; a client header of the same name is not sent.
    set: Vec<(HeaderName, HeaderValue)>,
    /// Mapping ran: hop-by-hop headers are dropped after it, the client's included.
    mapped: bool,
}

impl<'a> ProxyHeaders<'a> {
    fn new(
        inv: &'a Invocation<'_>,
        mapped_headers: &[(String, String)],
        len: Option<usize>,
    ) -> Result<Self, GatewayError> {
        let mut h = ProxyHeaders {
            client: &inv.parts.headers,
            set: Vec::with_capacity(mapped_headers.len() + 5),
            mapped: !mapped_headers.is_empty(),
        };
        for (k, v) in mapped_headers {
            let name = header_name(k)?;
            let value = header_value(v)?;
            // Mapping may not bring back what AWS drops.
            if !dropped_after_mapping(name.as_str()) {
                h.set(name, value);
            }
        }
        for (name, value) in gateway_headers(inv) {
            h.set(name, value);
        }
        let client_agent =
            inv.hints.may_have(Hinted::UserAgent) && h.client.contains_key(header::USER_AGENT);
        if !client_agent && !h.has(&header::USER_AGENT) {
            h.set.push((header::USER_AGENT, default_user_agent(inv)));
        }
        // A plain-HTTP backend with a literal origin gets its `Host` built at deploy time (the
        // client's is never passed on); TLS backends get theirs from hyper's client, which
        // leaves out a default port.
        if let Some(origin) = inv
            .method
            .integration
            .uri
            .as_ref()
            .and_then(|t| t.static_origin.as_ref())
        {
            if origin.scheme == http::uri::Scheme::HTTP && !h.has(&header::HOST) {
                h.set.push((header::HOST, origin.host.clone()));
            }
        }
        if let Some(len) = len {
            // `HeaderValue::from` allocates; a bodiless request's length needs no allocation.
            let len = if len == 0 {
                HeaderValue::from_static("0")
            } else {
                HeaderValue::from(len)
            };
            h.set(header::CONTENT_LENGTH, len);
        }
        Ok(h)
    }

    fn has(&self, name: &HeaderName) -> bool {
        self.set.iter().any(|(n, _)| n == name)
    }

    /// Sets `name` to `value` alone (as `HeaderMap::insert`).
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        match self.set.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.set.push((name, value)),
        }
    }
}

impl crate::upstream::HeaderSource for ProxyHeaders<'_> {
    fn for_each(&self, f: &mut dyn FnMut(&HeaderName, &HeaderValue)) {
        for (name, value) in self.client {
            let s = name.as_str();
            if dropped_request_header(s)
                || (self.mapped && dropped_after_mapping(s))
                || self.has(name)
                // AWS does not pass on a SigV4 signature: it signed the request to API
                // Gateway, not to the backend.
                || (*name == header::AUTHORIZATION && crate::pipeline::authorizer::sigv4::is_signature(value))
            {
                continue;
            }
            f(name, value);
        }
        for (name, value) in &self.set {
            f(name, value);
        }
    }
}

/// HTTP_PROXY: stream the request to the backend and its response back.
pub async fn proxy(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: crate::body::RequestBody,
) -> Result<Response<Body>, GatewayError> {
    inv.start_trace();
    // Path-only mappings (the `{proxy+}` shape) are looked up in place: the mapping step
    // would copy every name and value for the URL to copy them again.
    let integration = &inv.method.integration;
    let mapped = if integration.maps_path_only {
        IntegrationRequest::default()
    } else {
        integration_request::map_parameters(inv, &[])?
    };
    let url = {
        let (params, mapped_path) = (lookup(&inv.path_params), lookup(&mapped.path));
        let path_var = |n: &str| {
            if integration.maps_path_only {
                params(integration.direct_path_source(n)?)
            } else {
                mapped_path(n)
            }
        };
        backend_url(inv, path_var, &mapped.query, inv.parts.uri.query())?
    };
    let limit = gw.limits.max_payload_bytes;
    let body = match body {
        RequestBody::Streaming(incoming) => small_or_stream(incoming, limit).await?,
        // Read with its head, or by the access steps (AWS_IAM hashes the payload).
        RequestBody::Buffered(b) => Body::Full(b),
    };
    let len = match &body {
        Body::Full(b) => Some(b.as_ref().map_or(0, |b| b.len())),
        _ => None,
    };
    let method = outgoing_method(inv);
    let started = Instant::now();
    let timeout = inv.method.integration.timeout;
    let result = {
        let inv: &Invocation<'_> = inv;
        let target = url
            .target()
            .ok_or_else(|| GatewayError::internal("the backend URL has no origin"))?;
        let headers = ProxyHeaders::new(inv, &mapped.headers, len)?;
        let call = std::pin::pin!(gw.upstream.proxy(
            method,
            target,
            &headers,
            body,
            remap_response_header,
            started
        ));
        // From `started`, which the latency is measured from too (one clock read).
        inv.client
            .integration_timer
            .timeout_at(started + timeout, call)
            .await
    };
    // A fresh response: the backend's version and extensions (hyper keeps its reason phrase
    // there) are not passed on.
    let (parts, body) = outcome(inv, result, started)?.into_parts();
    // AWS always answers with a content type: `application/json` when the backend gave none.
    // Header lines kept as received get it where they are written out
    // (`UpstreamBody::head`); a response in a map gets it here.
    let untyped = body.head().is_none() && !parts.headers.contains_key(header::CONTENT_TYPE);
    let mut out = Response::new(Body::Upstream(body));
    *out.status_mut() = parts.status;
    crate::headers::install(out.headers_mut(), parts.headers);
    if untyped {
        out.headers_mut()
            .insert(header::CONTENT_TYPE, crate::headers::default_content_type());
    }
    Ok(out)
}

/// HTTP (non-proxy): mapped request, buffered backend response, integration responses.
pub async fn invoke(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: Bytes,
) -> Result<Response<Body>, GatewayError> {
    inv.start_trace();
    let mapped = integration_request::prepare(inv, body)?;
    let uri = backend_url(inv, lookup(&mapped.path), &mapped.query, None)?.into_uri()?;
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(header::USER_AGENT, default_user_agent(inv));
    let method = outgoing_method(inv);
    if !matches!(
        method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) {
        if let Some(ct) = inv.parts.headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, ct.clone());
        }
    }
    for (k, v) in &mapped.headers {
        headers.insert(header_name(k)?, header_value(v)?);
    }
    drop_hop_by_hop(&mut headers);
    add_gateway_headers(&mut headers, inv);
    // AWS always sends the length, `Content-Length: 0` included.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(mapped.body.len()));
    let mut req = Request::new(Body::full(mapped.body.clone()));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let resp = send(gw, inv, req).await?;
    let (parts, body) = resp.into_parts();
    let limit = gw.limits.max_payload_bytes;
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(GatewayError::integration_failure(format!(
                "reading the endpoint response failed: {e}"
            )))
        }
    };
    let binary = content_handling::is_binary_payload(&inv.api.binary_media_types, &parts.headers);
    let mut resp = integration_response::respond(
        inv,
        IntegrationOutput {
            selector: parts.status.as_u16().to_string(),
            headers: parts.headers,
            body,
            binary,
        },
    )?;
    inv.add_trace_header(&mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::plain_request_target;

    /// A target taken as it is must be one `PathAndQuery` would take unchanged, wherever the
    /// byte stands (the path and the query have different rules).
    #[test]
    fn plain_request_targets_are_what_the_http_types_take_unchanged() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            for t in [format!("/a{c}b"), format!("/a?x{c}y"), format!("/{c}")] {
                if plain_request_target(&t) {
                    let parsed = http::uri::PathAndQuery::try_from(t.as_str());
                    assert_eq!(
                        parsed.as_ref().map(|p| p.as_str()).ok(),
                        Some(t.as_str()),
                        "{b:#x} in {t:?}"
                    );
                }
            }
        }
        for t in [
            "/bench/hello",
            "/pets/12?limit=10&sort=name%20asc",
            "/a:b@c/~d!$&'()*+,;=",
        ] {
            assert!(plain_request_target(t), "{t}");
        }
        // Left to the full parser: a fragment, bytes it refuses or percent-encodes, no
        // leading slash.
        for t in ["/a#b", "/a b", "/a\"b", "/a{b}", "/é", "a/b", ""] {
            assert!(!plain_request_target(t), "{t}");
        }
    }
}
