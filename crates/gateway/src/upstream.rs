//! The pooled HTTP client that HTTP and HTTP_PROXY integrations call: keep-alive connections,
//! HTTP/1.1 and HTTP/2 (negotiated by ALPN over TLS), bodies streamed both ways.
//!
//! Plain `http://` backends, the common case for a local gateway, take a lean path: a pool of
//! hyper HTTP/1 connections keyed by authority ([`H1Pool`]). A connection goes back to the pool
//! when its response body has been read to the end, so a request costs one lock, no pool-key
//! hashing beyond the authority and no per-request extensions. `https://` backends (TLS, ALPN,
//! HTTP/2) use hyper-util's client.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::Body;

pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long an unused pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per backend authority.
const MAX_IDLE_PER_HOST: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<Connector, Body>,
    h1: Arc<H1Pool>,
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
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Client(#[from] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect { .. } => true,
            UpstreamError::Http(_) => false,
            UpstreamError::Client(e) => e.is_connect(),
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
    pub async fn request(
        &self,
        req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        self.request_with_replay(req, || None).await
    }

    /// Like [`Upstream::request`]; if a reused keep-alive connection dies after the request was
    /// written but before any of the response arrived, `replay` may supply the same request
    /// again (`None`: not safe to repeat), and it goes out on another connection. This is
    /// nginx's `proxy_next_upstream error` for idempotent requests; building the copy only when
    /// needed keeps the common path free of it.
    pub async fn request_with_replay(
        &self,
        req: Request<Body>,
        mut replay: impl FnMut() -> Option<Request<Body>> + Send,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let plain = req.uri().scheme() == Some(&Scheme::HTTP);
        match req.uri().authority().cloned() {
            Some(authority) if plain => self.h1.request(req, authority, &mut replay).await,
            _ => {
                let resp = self.client.request(req).await?;
                Ok(resp.map(|inner| UpstreamBody {
                    inner,
                    checkin: None,
                }))
            }
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

/// Idle HTTP/1 connections to plain-HTTP backends, by authority.
#[derive(Debug, Default)]
struct H1Pool {
    /// Keyed by the authority's text: `Authority`'s own `Hash`/`Eq` are case-insensitive and
    /// cost more than the whole lookup should.
    /// foldhash: the keys come from the configuration, and SipHash showed in profiles.
    idle: Mutex<HashMap<Box<str>, Vec<Idle>, foldhash::fast::RandomState>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl H1Pool {
    async fn request(
        self: &Arc<Self>,
        req: Request<Body>,
        authority: Authority,
        replay: &mut (dyn FnMut() -> Option<Request<Body>> + Send),
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut req = origin_form(req, &authority);
        // A pooled connection may have been closed by the backend just as we picked it. If the
        // request comes back unsent, it goes out on the next connection; if it was sent and the
        // connection died before a response began, `replay` decides. A fresh connection gets
        // no second try, so this ends once the pool has no more stale connections to offer.
        loop {
            let (mut sender, reused) = match self.checkout(&authority).await {
                Some(s) => (s, true),
                None => (connect(&authority).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (head, inner) = resp.into_parts();
                    let mut body = UpstreamBody {
                        inner,
                        checkin: Some(Checkin {
                            pool: self.clone(),
                            authority,
                            sender,
                        }),
                    };
                    body.check_in_if_done();
                    return Ok(Response::from_parts(head, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ if reused && died_before_response(e.error()) => match replay() {
                        Some(again) => req = origin_form(again, &authority),
                        None => return Err(UpstreamError::Http(e.into_error())),
                    },
                    _ => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
    }

    /// An idle connection that is still open and ready, dropping stale ones on the way.
    async fn checkout(&self, authority: &Authority) -> Option<SendRequest<Body>> {
        loop {
            let idle = {
                let mut map = self.idle.lock().ok()?;
                let list = map.get_mut(authority.as_str())?;
                list.pop()?
            };
            if idle.since.elapsed() > IDLE_TIMEOUT || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put(&self, authority: Authority, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut map) = self.idle.lock() else {
            return;
        };
        let idle = Idle {
            sender,
            since: Instant::now(),
        };
        match map.get_mut(authority.as_str()) {
            Some(list) if list.len() < MAX_IDLE_PER_HOST => list.push(idle),
            Some(_) => {}
            None => {
                map.insert(authority.as_str().into(), vec![idle]);
            }
        }
    }
}

/// HTTP/1 requests go out in origin form (`/path?query`) with the backend's `Host`.
fn origin_form(req: Request<Body>, authority: &Authority) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key(http::header::HOST) {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(http::header::HOST, v);
        }
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    Request::from_parts(parts, body)
}

/// Whether the connection closed or reset before any of the response arrived.
fn died_before_response(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    e.source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        })
}

async fn connect(authority: &Authority) -> Result<SendRequest<Body>, UpstreamError> {
    let err = |source| UpstreamError::Connect {
        authority: authority.to_string(),
        source,
    };
    let host = authority.host();
    // `[::1]` in a URI is `::1` to the resolver.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        ))
    })?
    .map_err(err)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        // One buffer per write instead of an iovec queue: cheaper for the small heads and
        // bodies that dominate API traffic; large bodies pay one memcpy per chunk.
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Where a connection goes once its response has been read.
struct Checkin {
    pool: Arc<H1Pool>,
    authority: Authority,
    sender: SendRequest<Body>,
}

/// A backend response body. Reading it to the end returns its connection to the pool;
/// dropping it early closes the connection (HTTP/1 cannot skip the rest of a body).
pub struct UpstreamBody {
    inner: Incoming,
    checkin: Option<Checkin>,
}

impl UpstreamBody {
    fn check_in_if_done(&mut self) {
        use http_body::Body as _;
        if self.inner.is_end_stream() {
            if let Some(c) = self.checkin.take() {
                c.pool.put(c.authority, c.sender);
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            // Callers stop polling once `is_end_stream` says so, so check after every frame.
            Some(Ok(_)) => this.check_in_if_done(),
            None => {
                if let Some(c) = this.checkin.take() {
                    c.pool.put(c.authority, c.sender);
                }
            }
            Some(Err(_)) => this.checkin = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
