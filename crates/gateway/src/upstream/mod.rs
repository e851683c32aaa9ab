//! The pooled HTTP client that HTTP and HTTP_PROXY integrations call: keep-alive connections,
//! HTTP/1.1 and HTTP/2 (negotiated by ALPN over TLS), bodies streamed both ways.
//!
//! A plain `http://` backend with a buffered request body, the common case for a local
//! gateway, takes [`h1`]: a lean HTTP/1.1 client run on the request's own task. Everything
//! else (TLS, HTTP/2, streamed uploads) uses hyper-util's client.

mod h1;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;

pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// What happens to one backend response header on its way to the client (HTTP_PROXY renames
/// `Date`, `Server` and the like, and drops `Transfer-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    Keep,
    Drop,
    /// Passed on under this name instead.
    Rename(&'static http::HeaderName),
    /// Passed on as it is and also under this name.
    KeepAndRename(&'static http::HeaderName),
}

/// Decides a response header's [`Rewrite`] from its name as received (any case).
///
/// Given one, the plain-HTTP client builds no header map for the response: the head's lines
/// stay as received and are rewritten as they are written to the client
/// ([`ResponseHead`]). Hashing a dozen header names into a map and out again cost more than
/// the rest of the response's handling.
pub type HeaderRewrite = fn(&[u8]) -> Rewrite;

/// Appends `name: value` to `map` as `rewrite` says.
pub fn append_rewritten(
    map: &mut http::HeaderMap,
    rewrite: HeaderRewrite,
    name: http::HeaderName,
    value: http::HeaderValue,
) {
    match rewrite(name.as_str().as_bytes()) {
        Rewrite::Keep => {
            map.append(name, value);
        }
        Rewrite::Drop => {}
        Rewrite::Rename(to) => {
            map.append(to.clone(), value);
        }
        Rewrite::KeepAndRename(to) => {
            map.append(name, value.clone());
            map.append(to.clone(), value);
        }
    }
}

pub use h1::{LineName, ResponseHead};

/// Headers for an outgoing request, read once as its head is written. HTTP_PROXY's are the
/// client's less a few, plus a few of the gateway's own: written straight from those, they cost
/// no `HeaderMap` of their own on the plain-HTTP path.
pub trait HeaderSource {
    /// Calls `f` with every header line, in the order they are sent.
    fn for_each(&self, f: &mut dyn FnMut(&http::HeaderName, &http::HeaderValue));

    /// The same headers as a map (for hyper's client).
    fn to_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        self.for_each(&mut |n, v| {
            map.append(n.clone(), v.clone());
        });
        map
    }
}

impl HeaderSource for http::HeaderMap {
    fn for_each(&self, f: &mut dyn FnMut(&http::HeaderName, &http::HeaderValue)) {
        for (n, v) in self {
            f(n, v);
        }
    }

    fn to_map(&self) -> http::HeaderMap {
        self.clone()
    }
}

/// Where a backend request goes: its origin, and the request target (path and query) its
/// request line carries, both already checked.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub scheme: &'a Scheme,
    pub authority: &'a http::uri::Authority,
    pub path_and_query: &'a str,
}

impl<'a> Target<'a> {
    /// `None` for a URI without a scheme or an authority.
    pub fn of(uri: &'a http::Uri) -> Option<Target<'a>> {
        Some(Target {
            scheme: uri.scheme()?,
            authority: uri.authority()?,
            path_and_query: uri.path_and_query().map_or("/", |pq| pq.as_str()),
        })
    }

    fn to_uri(self) -> Result<http::Uri, UpstreamError> {
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(self.path_and_query)
            .build()
            .map_err(|_| UpstreamError::Protocol("invalid request target"))
    }
}

/// How long an unused pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per backend authority.
const MAX_IDLE_PER_HOST: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<Connector, Body>,
    h1: Arc<h1::Pool>,
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (DNS, refused, unreachable, connect timeout).
    #[error("connecting to {authority} failed: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("reading from or writing to the endpoint failed: {0}")]
    Io(std::io::Error),
    #[error("invalid response from the endpoint: {0}")]
    Protocol(&'static str),
    #[error("the endpoint closed the connection before the response was complete")]
    Incomplete,
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Client(#[from] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect { .. } => true,
            UpstreamError::Client(e) => e.is_connect(),
            _ => false,
        }
    }
}

impl Upstream {
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // Trust the system's roots when they can be read; fall back to the bundled Mozilla set.
        let https = match builder.with_native_roots() {
            Ok(b) => b
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(https);
        Upstream {
            client,
            h1: Arc::default(),
        }
    }

    pub fn client(&self) -> &Client<Connector, Body> {
        &self.client
    }

    /// Sends `req` (absolute URI) and returns the response head; the body streams after.
    ///
    /// If a reused keep-alive connection turns out to be closed before any of the response
    /// arrived, an idempotent request with a buffered body goes out again on another
    /// connection (nginx's `proxy_next_upstream error`).
    pub async fn request(
        &self,
        req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (parts, body) = req.into_parts();
        match Target::of(&parts.uri) {
            Some(target) => {
                self.send(
                    parts.method,
                    target,
                    &parts.headers,
                    body,
                    None,
                    std::time::Instant::now(),
                )
                .await
            }
            // Relative: hyper's client has the error for it.
            None => {
                Box::pin(self.send_hyper(
                    parts.method,
                    parts.uri.clone(),
                    &parts.headers,
                    body,
                    None,
                ))
                .await
            }
        }
    }

    /// Sends a request whose headers come from `headers`, with every response header passed
    /// through `rewrite` (HTTP_PROXY's renaming).
    ///
    /// Not an `async fn`: as one, it would wrap `send`'s state machine in its own, which cost
    /// about 200 instructions per request for nothing.
    pub fn proxy<'a>(
        &'a self,
        method: http::Method,
        target: Target<'a>,
        headers: &'a (dyn HeaderSource + Sync),
        body: Body,
        rewrite: HeaderRewrite,
        now: std::time::Instant,
    ) -> impl std::future::Future<Output = Result<Response<UpstreamBody>, UpstreamError>> + 'a {
        self.send(method, target, headers, body, Some(rewrite), now)
    }

    /// Plain HTTP with a buffered body goes to [`h1`]; the rest to hyper's client. `now` is
    /// the caller's clock reading, which ages pooled connections.
    async fn send(
        &self,
        method: http::Method,
        target: Target<'_>,
        headers: &(dyn HeaderSource + Sync),
        body: Body,
        rewrite: Option<HeaderRewrite>,
        now: std::time::Instant,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        if *target.scheme == Scheme::HTTP {
            if let Body::Full(full) = &body {
                let resp = self
                    .h1
                    .request(&method, target, headers, full.clone(), rewrite, now)
                    .await?;
                return Ok(resp.map(UpstreamBody::H1));
            }
        }
        let uri = target.to_uri()?;
        // Boxed, so that its state does not size the plain-HTTP path's future.
        Box::pin(self.send_hyper(method, uri, headers, body, rewrite)).await
    }

    /// TLS, HTTP/2 and streamed uploads: hyper's client.
    async fn send_hyper(
        &self,
        method: http::Method,
        uri: http::Uri,
        headers: &(dyn HeaderSource + Sync),
        body: Body,
        rewrite: Option<HeaderRewrite>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers.to_map();
        let mut resp = self.client.request(req).await?;
        if let Some(f) = rewrite {
            let old = std::mem::take(resp.headers_mut());
            let h = resp.headers_mut();
            h.reserve(old.len());
            crate::headers::for_each_owned(old, |n, v| append_rewritten(h, f, n, v));
        }
        Ok(resp.map(UpstreamBody::Hyper))
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

/// A backend response body, streamed.
pub enum UpstreamBody {
    /// From [`h1`]: reading it to the end returns its connection to the pool.
    H1(h1::ResponseBody),
    Hyper(Incoming),
}

impl UpstreamBody {
    /// The backend's header lines still to be written, when the client kept them as received
    /// (see [`HeaderRewrite`]); the response's own map holds only what the gateway added.
    pub fn head(&self) -> Option<&ResponseHead> {
        match self {
            UpstreamBody::H1(b) => b.head(),
            UpstreamBody::Hyper(_) => None,
        }
    }

    /// Moves the backend's header lines kept as received into `map`, rewritten, ahead of what
    /// `map` holds: for writers that need every header in the map (hyper's server).
    pub fn merge_head_into(&mut self, map: &mut http::HeaderMap) {
        if let UpstreamBody::H1(b) = self {
            if let Some(head) = b.take_head() {
                let added = std::mem::take(map);
                map.reserve(head.len() + added.len());
                head.append_to(map);
                // AWS's default for a backend response without a content type, where the
                // plain-HTTP writer puts it too: after the backend's lines.
                if !map.contains_key(http::header::CONTENT_TYPE)
                    && !added.contains_key(http::header::CONTENT_TYPE)
                {
                    map.insert(
                        http::header::CONTENT_TYPE,
                        crate::headers::default_content_type(),
                    );
                }
                crate::headers::for_each_owned(added, |n, v| {
                    map.append(n, v);
                });
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(UpstreamError::Http),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(b) => b.is_end_stream(),
            UpstreamBody::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(b) => b.size_hint(),
            UpstreamBody::Hyper(b) => b.size_hint(),
        }
    }
}
