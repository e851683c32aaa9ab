//! The HTTP/1.1 client for plain-HTTP backends, run on the caller's own task.
//!
//! Why not hyper's client on this path: hyper drives each client connection from a task of its
//! own and passes requests, responses and body chunks to it over channels. For a proxied API
//! call that was a third of the gateway's per-request work (bench/README.md, "Where the time
//! goes"): two extra task wake-ups, a channel send each way, and moves of the request and
//! response through them. Here the request's task writes the request and reads the response
//! head itself, and the response body is read straight off the socket by whoever polls it
//! (the server connection writing it to the client). Heads are parsed by httparse, the parser
//! hyper uses.
//!
//! Scope: what a reverse proxy's backend side needs. Request bodies are buffered (streamed
//! uploads take hyper's client, which writes and reads at once); response bodies stream, framed
//! by `Content-Length`, chunked encoding or the connection's end; 1xx interim responses are
//! skipped; connections are kept alive and pooled per authority.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::headers::Special;

use super::{
    HeaderRewrite, HeaderSource, Rewrite, UpstreamError, CONNECT_TIMEOUT, IDLE_TIMEOUT,
    MAX_IDLE_PER_HOST,
};

/// Largest response head accepted (hyper's client default is about the same).
const MAX_HEAD_BYTES: usize = 400 * 1024;
/// Most header lines in a response head (hyper's limit).
const MAX_HEADERS: usize = 100;
/// Read size; also the largest body frame handed on.
const READ_CHUNK: usize = 16 * 1024;
/// A request body up to this size is copied behind the head, so the request is one write.
const COALESCE_BODY: usize = 16 * 1024;
/// Largest write buffer a connection keeps between requests.
const KEEP_WRITE_BUFFER: usize = 4 * 1024;
/// Longest chunk-size line (with extensions) and most trailer bytes accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// Idle connections by authority.
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// Keyed by the authority's text (`Authority`'s own `Hash`/`Eq` are case-insensitive and
    /// cost more than the whole lookup should); foldhash because SipHash showed in profiles.
    /// Boxed connections: one goes from here into a response body and back without being
    /// moved or allocated again.
    #[allow(clippy::vec_box)]
    idle: Mutex<HashMap<Box<str>, Vec<Box<Conn>>, foldhash::fast::RandomState>>,
}

/// Boxed once per connection (pool, response body): the response body, and every future and
/// response holding it, stays small, which saves copying on every move.
#[derive(Debug)]
struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed. Empty whenever the connection is idle.
    buf: BytesMut,
    /// The last request's head (and small body), kept for the next one's.
    out: Vec<u8>,
    since: Instant,
}

/// How one request/response exchange on a connection failed.
enum Failure {
    /// The connection closed or reset before any of the response arrived: on a reused
    /// connection this is the backend closing an idle connection just as it was picked, and an
    /// idempotent request may go out again on another.
    ClosedEarly(io::Error),
    Other(UpstreamError),
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Self {
        Failure::Other(e)
    }
}

impl Pool {
    /// Sends a request with a buffered body to `authority` and returns the response head;
    /// the body streams after.
    pub(super) async fn request(
        self: &Arc<Self>,
        method: &Method,
        target: super::Target<'_>,
        headers: &(dyn HeaderSource + Sync),
        body: Option<Bytes>,
        rewrite: Option<HeaderRewrite>,
        now: Instant,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        let (path_and_query, authority) = (target.path_and_query, target.authority);
        let body_len = body.as_ref().map_or(0, Bytes::len);
        let coalesce = body_len <= COALESCE_BODY;
        let (head_body, tail) = match body {
            Some(b) if coalesce => (Some(b), None),
            other => (None, other),
        };
        let idempotent = is_idempotent(method);
        let head_only = method == Method::HEAD;
        loop {
            let (mut conn, reused) = match self.checkout(authority.as_str(), now) {
                Some(c) => (c, true),
                // Boxed: the connect future (address lookup included) is large, and would
                // otherwise size every request's future for a step most requests skip.
                None => (Box::pin(Conn::connect(authority)).await?, false),
            };
            // Written into the connection's own buffer, kept from its last request: no
            // allocation per request. (A retry on another connection writes it again.)
            let mut out = std::mem::take(&mut conn.out);
            out.clear();
            encode_head(
                method,
                path_and_query,
                headers,
                authority,
                body_len,
                &mut out,
            );
            if let Some(b) = &head_body {
                out.extend_from_slice(b);
            }
            let result = conn.exchange(&out, tail.as_ref(), head_only, rewrite).await;
            // A large upload's buffer is not kept for the small requests that follow.
            if out.capacity() <= KEEP_WRITE_BUFFER {
                conn.out = out;
            }
            match result {
                Ok((mut head, state, reusable)) => {
                    let body = ResponseBody::new(
                        conn,
                        state,
                        reusable.then(|| Checkin {
                            pool: self.clone(),
                            authority: authority.clone(),
                        }),
                        head.raw.take(),
                    );
                    let mut resp = Response::new(body);
                    *resp.status_mut() = head.status;
                    *resp.version_mut() = head.version;
                    crate::headers::install(resp.headers_mut(), head.headers);
                    return Ok(resp);
                }
                // A stale pooled connection: the request goes out on the next one, or a fresh
                // one (which gets no second try, so this ends).
                Err(Failure::ClosedEarly(_)) if reused && idempotent => continue,
                Err(Failure::ClosedEarly(e)) => return Err(UpstreamError::Io(e)),
                Err(Failure::Other(e)) => return Err(e),
            }
        }
    }

    /// An idle connection that is still open and not idle too long at `now` (the request's
    /// clock reading: a connection returned since then counts as idle for no time), dropping
    /// stale ones on the way.
    fn checkout(&self, authority: &str, now: Instant) -> Option<Box<Conn>> {
        loop {
            let mut conn = {
                let mut map = self.idle.lock().ok()?;
                map.get_mut(authority)?.pop()?
            };
            if now.saturating_duration_since(conn.since) <= IDLE_TIMEOUT && conn.still_open() {
                return Some(conn);
            }
        }
    }

    fn put(&self, authority: &Authority, mut conn: Box<Conn>) {
        let Ok(mut map) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        conn.since = now;
        let list = match map.get_mut(authority.as_str()) {
            Some(list) => list,
            None => map.entry(authority.as_str().into()).or_default(),
        };
        // Checkout takes the newest; the oldest, at the front, are dropped here once expired
        // so that a quiet backend's closed connections do not linger.
        let fresh = |c: &Conn| now.duration_since(c.since) <= IDLE_TIMEOUT;
        if list.first().is_some_and(|c| !fresh(c)) {
            list.retain(|c| fresh(c));
        }
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(conn);
        }
    }
}

impl Conn {
    async fn connect(authority: &Authority) -> Result<Box<Conn>, UpstreamError> {
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
        let io = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(err)?;
        let _ = io.set_nodelay(true);
        Ok(Box::new(Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::with_capacity(1024),
            since: Instant::now(),
        }))
    }

    /// Whether an idle connection is still usable: nothing arrived while it sat in the pool
    /// (a close, a reset or stray bytes all make it unusable). The reactor's cached readiness
    /// answers without a system call in the common case.
    fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness may be left over from the last read: look.
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read_buf(&mut self.buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes the request and reads the response head; also says how the body is framed and
    /// whether the connection may serve another request after it.
    async fn exchange(
        &mut self,
        head: &[u8],
        body: Option<&Bytes>,
        head_only: bool,
        rewrite: Option<HeaderRewrite>,
    ) -> Result<(Head, BodyState, bool), Failure> {
        let mut early = self.write_all(head).await?;
        if let (Some(b), false) = (body, early) {
            early = self.write_all(b).await?;
        }
        let received_any = early;
        let head = self.read_head(received_any, rewrite).await?;
        let (body, framed_to_end) = framing(head_only, &head)?;
        // The backend answered before taking the whole request, or switched protocols: the
        // connection is not reused.
        let reusable = head.keep_alive
            && framed_to_end
            && !early
            && head.status != StatusCode::SWITCHING_PROTOCOLS;
        Ok((head, body, reusable))
    }

    /// Writes `data`. Returns `true` if the backend started answering before it was all
    /// written (a backend that rejects a request early and stops reading must not stall it).
    async fn write_all(&mut self, mut data: &[u8]) -> Result<bool, Failure> {
        while !data.is_empty() {
            match self.io.try_write(data) {
                Ok(0) => {
                    return Err(Failure::ClosedEarly(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::select! {
                        biased;
                        r = self.io.writable() => r.map_err(closed_early)?,
                        r = self.io.readable() => {
                            r.map_err(closed_early)?;
                            match self.io.try_read_buf(&mut self.buf) {
                                Ok(0) => return Err(Failure::ClosedEarly(io::ErrorKind::UnexpectedEof.into())),
                                Ok(_) => return Ok(true),
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                                Err(e) => return Err(closed_early(e)),
                            }
                        }
                    }
                }
                Err(e) => return Err(closed_early(e)),
            }
        }
        Ok(false)
    }

    /// Reads until a final (non-1xx) response head is complete and consumes it from `buf`.
    async fn read_head(
        &mut self,
        mut received_any: bool,
        rewrite: Option<HeaderRewrite>,
    ) -> Result<Head, Failure> {
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, rewrite)? {
                    // 100 Continue, 103 Early Hints and the like: the final response follows.
                    Some(h)
                        if h.status.is_informational()
                            && h.status != StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        continue
                    }
                    Some(h) => return Ok(h),
                    None if self.buf.len() >= MAX_HEAD_BYTES => {
                        return Err(UpstreamError::Protocol("response head too large").into())
                    }
                    None => {}
                }
            }
            self.buf.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) if !received_any => {
                    return Err(Failure::ClosedEarly(io::ErrorKind::UnexpectedEof.into()))
                }
                Ok(0) => return Err(UpstreamError::Incomplete.into()),
                Ok(_) => received_any = true,
                Err(e) if !received_any => return Err(closed_early(e)),
                Err(e) => return Err(UpstreamError::Io(e).into()),
            }
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

fn closed_early(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Failure::ClosedEarly(e),
        _ => Failure::Other(UpstreamError::Io(e)),
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// `METHOD /path?query HTTP/1.1`, the headers as given (names in lower case, as hyper writes
/// them), `Host` when missing, and the body's true length. The body is always sent whole, so
/// a `Transfer-Encoding` or a stale `Content-Length` from mapping is never passed on: a
/// backend reading either would frame the request differently (request smuggling).
fn encode_head(
    method: &Method,
    path_and_query: &str,
    headers: &dyn HeaderSource,
    authority: &Authority,
    body_len: usize,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let pq = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    let mut had_host = false;
    headers.for_each(&mut |name, value| {
        if matches!(
            crate::headers::special_name(name),
            Some(Special::ContentLength | Special::TransferEncoding)
        ) {
            had_length = true;
            return;
        }
        had_host |= name == header::HOST;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
    if !had_host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let payload_method = !matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT
    );
    if had_length || body_len > 0 || payload_method {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A response head as received.
#[derive(Debug)]
struct Head {
    status: StatusCode,
    version: Version,
    /// Empty when `raw` holds the lines.
    headers: HeaderMap,
    raw: Option<ResponseHead>,
    /// The backend allows another request on this connection.
    keep_alive: bool,
    /// Framing, read from the headers as they arrived (a rewrite may drop them from the map).
    transfer_encoding: Option<TransferEncoding>,
    length: Length,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferEncoding {
    ChunkedLast,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Absent,
    Known(u64),
    /// Unparsable, or lines that disagree (a response-splitting risk).
    Invalid,
}

/// Parses one response head off the front of `buf`; `None` until it is complete. Each header
/// goes through `rewrite` when given, so the caller's renaming costs no second map.
fn parse_head(
    buf: &mut BytesMut,
    rewrite: Option<HeaderRewrite>,
) -> Result<Option<Head>, UpstreamError> {
    // Offsets of each header's name and value in `buf`, taken while httparse borrows it (a
    // vector the size of the head, not a zeroed array the size of the limit). With a rewrite
    // they become the [`ResponseHead`]'s lines.
    let mut lines: Vec<(u32, u32, u32, u32)> = Vec::new();
    let (len, code, minor) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(UpstreamError::Protocol("too many headers in the response"))
            }
            Err(_) => return Err(UpstreamError::Protocol("invalid response head")),
        };
        // Where a slice of `buf` starts; anything else (never seen: httparse slices the
        // buffer) becomes an out-of-range span, which the checked slicing below rejects.
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| {
            (s.as_ptr() as usize)
                .checked_sub(base)
                .and_then(|o| u32::try_from(o).ok())
                .unwrap_or(u32::MAX)
        };
        lines.reserve_exact(res.headers.len());
        for h in res.headers.iter() {
            let n = offset(h.name.as_bytes());
            // An empty value needs no position.
            let v = if h.value.is_empty() {
                0
            } else {
                offset(h.value)
            };
            lines.push((
                n,
                n.saturating_add(h.name.len() as u32),
                v,
                v.saturating_add(h.value.len() as u32),
            ));
        }
        (len, res.code.unwrap_or(0), res.version.unwrap_or(1))
    };
    let status = StatusCode::from_u16(code)
        .map_err(|_| UpstreamError::Protocol("invalid response status"))?;
    let head = buf.split_to(len).freeze();
    // With a rewrite, the lines stay as received (httparse has checked every name and value
    // against the rules the `http` types apply) and no map is built.
    let mut headers = HeaderMap::new();
    if rewrite.is_none() {
        headers.reserve(lines.len());
    }
    let mut close = false;
    let mut keep_alive_token = false;
    let mut transfer_encoding = None;
    let mut length = Length::Absent;
    for &(ns, ne, vs, ve) in &lines {
        let (Some(name), Some(value)) = (
            head.get(ns as usize..ne as usize),
            head.get(vs as usize..ve as usize),
        ) else {
            return Err(UpstreamError::Protocol(
                "invalid header line in the response",
            ));
        };
        let tokens = || crate::headers::tokens(value);
        match crate::headers::special(name) {
            Some(Special::Connection) => {
                for token in tokens() {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Some(Special::TransferEncoding) => {
                // The last coding of all the lines decides.
                let last = tokens().next_back();
                transfer_encoding = match (last, transfer_encoding) {
                    (Some(t), _) if t.eq_ignore_ascii_case(b"chunked") => {
                        Some(TransferEncoding::ChunkedLast)
                    }
                    (Some(_), _) | (None, None) => Some(TransferEncoding::Other),
                    (None, kept) => kept,
                };
            }
            Some(Special::ContentLength) => {
                // `Content-Length: 5, 5` and repeated equal lines are one length.
                for part in value.split(|&b| b == b',') {
                    length = match (crate::headers::parse_decimal(part.trim_ascii()), length) {
                        (Some(n), Length::Absent) => Length::Known(n),
                        (Some(n), Length::Known(l)) if n == l => length,
                        _ => Length::Invalid,
                    };
                }
            }
            Some(Special::ContentType | Special::Date) | None => {}
        }
        if rewrite.is_some() {
            if name.len() > MAX_NAME_BYTES {
                return Err(UpstreamError::Protocol(
                    "invalid header name in the response",
                ));
            }
        } else {
            let name = HeaderName::from_bytes(name)
                .map_err(|_| UpstreamError::Protocol("invalid header name in the response"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
                .map_err(|_| UpstreamError::Protocol("invalid header value in the response"))?;
            headers.append(name, value);
        }
    }
    let (version, keep_alive) = if minor == 0 {
        (Version::HTTP_10, keep_alive_token && !close)
    } else {
        (Version::HTTP_11, !close)
    };
    Ok(Some(Head {
        status,
        version,
        headers,
        raw: rewrite.map(|rewrite| ResponseHead {
            bytes: head,
            lines,
            rewrite,
        }),
        keep_alive,
        transfer_encoding,
        length,
    }))
}

/// `http`'s limit on a header name's length.
const MAX_NAME_BYTES: usize = 1 << 16;

/// A backend response's header lines as received, with the [`HeaderRewrite`] that applies to
/// them as they are written out. httparse has checked every name and value against the
/// rules `HeaderName` and `HeaderValue` apply, so the lines can go to the client as they are.
#[derive(Debug)]
pub struct ResponseHead {
    /// The head, status line included; `lines` index into it.
    bytes: Bytes,
    /// Name start and end, value start and end, per line in the order received.
    lines: Vec<(u32, u32, u32, u32)>,
    rewrite: HeaderRewrite,
}

/// A header name on its way to the client: as the backend sent it (any case), or a
/// rewrite's new name.
#[derive(Debug, Clone, Copy)]
pub enum LineName<'a> {
    Received(&'a [u8]),
    Renamed(&'static HeaderName),
}

impl ResponseHead {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Each line's name and value as received, in order.
    fn received(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter().filter_map(|&(ns, ne, vs, ve)| {
            Some((
                self.bytes.get(ns as usize..ne as usize)?,
                self.bytes.get(vs as usize..ve as usize)?,
            ))
        })
    }

    /// Calls `f` with each line as the client gets it, rewritten, in the order received.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(LineName<'a>, &'a [u8])) {
        for (name, value) in self.received() {
            match (self.rewrite)(name) {
                Rewrite::Keep => f(LineName::Received(name), value),
                Rewrite::Drop => {}
                Rewrite::Rename(to) => f(LineName::Renamed(to), value),
                Rewrite::KeepAndRename(to) => {
                    f(LineName::Received(name), value);
                    f(LineName::Renamed(to), value);
                }
            }
        }
    }

    /// Appends the lines, rewritten, to `map` (values share the head's bytes).
    pub(super) fn append_to(self, map: &mut HeaderMap) {
        for (name, value) in self.received() {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(self.bytes.slice_ref(value)),
            ) else {
                continue;
            };
            super::append_rewritten(map, self.rewrite, name, value);
        }
    }
}

/// How the response body is delimited (RFC 9112, section 6.3), and whether that framing lets
/// the connection carry another response after it.
fn framing(head_only: bool, head: &Head) -> Result<(BodyState, bool), UpstreamError> {
    let s = head.status;
    if head_only
        || s.is_informational()
        || s == StatusCode::NO_CONTENT
        || s == StatusCode::NOT_MODIFIED
    {
        return Ok((BodyState::Done, true));
    }
    match (head.transfer_encoding, head.length) {
        // With both, Transfer-Encoding wins and the connection may not be reused.
        (Some(TransferEncoding::ChunkedLast), length) => Ok((
            BodyState::Chunked(ChunkState::Size),
            length == Length::Absent,
        )),
        (Some(TransferEncoding::Other), _) | (None, Length::Absent) => {
            Ok((BodyState::UntilClose, false))
        }
        (None, Length::Invalid) => Err(UpstreamError::Protocol(
            "invalid or conflicting Content-Length in the response",
        )),
        (None, Length::Known(0)) => Ok((BodyState::Done, true)),
        (None, Length::Known(n)) => Ok((BodyState::Length(n), true)),
    }
}

/// Where a connection goes once its response has been read.
#[derive(Debug)]
struct Checkin {
    pool: Arc<Pool>,
    authority: Authority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
    Done,
}

/// A backend response body, read off the connection as it is polled. Reading it to the end
/// returns a reusable connection to the pool; dropping it early closes the connection
/// (HTTP/1 cannot skip the rest of a body).
#[derive(Debug)]
pub struct ResponseBody {
    conn: Option<Box<Conn>>,
    state: BodyState,
    checkin: Option<Checkin>,
    /// The response's header lines, when kept as received (the caller gave a rewrite).
    head: Option<ResponseHead>,
}

impl ResponseBody {
    fn new(
        conn: Box<Conn>,
        state: BodyState,
        checkin: Option<Checkin>,
        head: Option<ResponseHead>,
    ) -> Self {
        let mut body = ResponseBody {
            conn: Some(conn),
            state,
            checkin,
            head,
        };
        if matches!(body.state, BodyState::Done) {
            body.finish();
        }
        body
    }

    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    pub fn take_head(&mut self) -> Option<ResponseHead> {
        self.head.take()
    }

    /// The body is complete: the connection goes back to the pool if the backend allows it
    /// and nothing beyond the response arrived.
    fn finish(&mut self) {
        self.state = BodyState::Done;
        let conn = self.conn.take();
        if let (Some(conn), Some(c)) = (conn, self.checkin.take()) {
            if conn.buf.is_empty() {
                c.pool.put(&c.authority, conn);
            }
        }
    }

    /// The body ended without its connection being reusable: the connection closes.
    fn close(&mut self) {
        self.state = BodyState::Done;
        self.conn = None;
        self.checkin = None;
    }

    fn fail(&mut self, e: UpstreamError) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        self.close();
        Poll::Ready(Some(Err(e)))
    }
}

/// What one step of chunked decoding found in the buffer.
enum Step {
    Data(Bytes),
    NeedMore,
    Continue,
    End,
}

/// Decodes as much of a chunked body as `buf` holds, one step at a time.
fn chunk_step(state: &mut ChunkState, buf: &mut BytesMut) -> Result<Step, UpstreamError> {
    match *state {
        ChunkState::Size => {
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                return if buf.len() > MAX_CHUNK_LINE {
                    Err(UpstreamError::Protocol("chunk size line too long"))
                } else {
                    Ok(Step::NeedMore)
                };
            };
            if nl > MAX_CHUNK_LINE {
                return Err(UpstreamError::Protocol("chunk size line too long"));
            }
            let line = &buf[..nl];
            let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            // Extensions (`;name=value`) and trailing whitespace are allowed and ignored.
            let rest = &line[digits..];
            let rest_ok = rest
                .iter()
                .position(|&b| b == b';')
                .map_or(rest, |p| &rest[..p])
                .iter()
                .all(|&b| b == b' ' || b == b'\t' || b == b'\r');
            if digits == 0 || digits > 16 || !rest_ok {
                return Err(UpstreamError::Protocol("invalid chunk size"));
            }
            let size = line[..digits].iter().fold(0u64, |n, &b| {
                n << 4 | u64::from(char::from(b).to_digit(16).unwrap_or(0))
            });
            buf.advance(nl + 1);
            *state = if size == 0 {
                ChunkState::Trailers(0)
            } else {
                ChunkState::Data(size)
            };
            Ok(Step::Continue)
        }
        ChunkState::Data(remaining) => {
            if buf.is_empty() {
                return Ok(Step::NeedMore);
            }
            let n = (buf.len() as u64).min(remaining) as usize;
            let data = buf.split_to(n).freeze();
            let left = remaining - n as u64;
            *state = if left == 0 {
                ChunkState::DataEnd
            } else {
                ChunkState::Data(left)
            };
            Ok(Step::Data(data))
        }
        ChunkState::DataEnd => match buf.first() {
            None => Ok(Step::NeedMore),
            Some(b'\n') => {
                buf.advance(1);
                *state = ChunkState::Size;
                Ok(Step::Continue)
            }
            Some(b'\r') if buf.len() < 2 => Ok(Step::NeedMore),
            Some(b'\r') if buf[1] == b'\n' => {
                buf.advance(2);
                *state = ChunkState::Size;
                Ok(Step::Continue)
            }
            Some(_) => Err(UpstreamError::Protocol("chunk data longer than its size")),
        },
        ChunkState::Trailers(seen) => {
            // Trailer fields are read and dropped: AWS passes none on.
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                return if seen + buf.len() > MAX_TRAILER_BYTES {
                    Err(UpstreamError::Protocol("response trailers too large"))
                } else {
                    Ok(Step::NeedMore)
                };
            };
            let blank = nl == 0 || (nl == 1 && buf[0] == b'\r');
            buf.advance(nl + 1);
            if blank {
                return Ok(Step::End);
            }
            if seen + nl + 1 > MAX_TRAILER_BYTES {
                return Err(UpstreamError::Protocol("response trailers too large"));
            }
            *state = ChunkState::Trailers(seen + nl + 1);
            Ok(Step::Continue)
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(remaining) => {
                    if !conn.buf.is_empty() {
                        let n = (conn.buf.len() as u64).min(*remaining) as usize;
                        let data = conn.buf.split_to(n).freeze();
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(chunk) => match chunk_step(chunk, &mut conn.buf) {
                    Ok(Step::Data(d)) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Step::Continue) => continue,
                    Ok(Step::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(e) => return this.fail(e),
                },
            }
            // The buffer has nothing more to give: read.
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    if this.state == BodyState::UntilClose {
                        this.close();
                        return Poll::Ready(None);
                    }
                    return this.fail(UpstreamError::Incomplete);
                }
                Ok(_) => {}
                Err(e) => return this.fail(UpstreamError::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        let mut buf = BytesMut::from(raw);
        parse_head(&mut buf, None)
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn parses_heads_and_keep_alive() {
        let h =
            head("HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\nX-E:\r\n\r\n");
        assert_eq!(
            h.headers.get("x-e").map(HeaderValue::as_bytes),
            Some(&b""[..])
        );
        assert_eq!(h.status, StatusCode::CREATED);
        assert!(h.keep_alive);
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.0 200 OK\r\n\r\n").keep_alive);
        assert!(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        let mut partial = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(parse_head(&mut partial, None).expect("valid").is_none());
        let mut bad = BytesMut::from("HTTP/1.1 2x0 OK\r\n\r\n");
        assert!(parse_head(&mut bad, None).is_err());
        let mut leftover = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        parse_head(&mut leftover, None).expect("valid");
        assert_eq!(&leftover[..], b"ok");
    }

    static RENAMED: HeaderName = HeaderName::from_static("x-renamed-server");

    /// Drops `Via`, renames `Server`, keeps and renames `Content-Length`.
    fn test_rewrite(name: &[u8]) -> Rewrite {
        if name.eq_ignore_ascii_case(b"via") {
            Rewrite::Drop
        } else if name.eq_ignore_ascii_case(b"server") {
            Rewrite::Rename(&RENAMED)
        } else if name.eq_ignore_ascii_case(b"content-length") {
            Rewrite::KeepAndRename(&RENAMED)
        } else {
            Rewrite::Keep
        }
    }

    /// The head parsed with a rewrite: its lines kept as received.
    fn kept(raw: &str) -> Head {
        let mut buf = BytesMut::from(raw);
        parse_head(&mut buf, Some(test_rewrite))
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn lines_kept_as_received_are_rewritten_as_written() {
        let raw = "HTTP/1.1 200 OK\r\nServer: Up\r\nVIA: 1.1 x\r\nX-Mixed-Case: A b\r\nX-E:\r\nContent-Length: 2\r\n\r\nok";
        let h = kept(raw);
        assert!(h.headers.is_empty(), "no map is built");
        assert_eq!(h.length, Length::Known(2));
        let lines = h.raw.expect("lines kept");
        let mut seen = Vec::new();
        lines.for_each(|name, value| {
            let name = match name {
                LineName::Received(n) => String::from_utf8_lossy(n).into_owned(),
                LineName::Renamed(n) => format!("renamed:{n}"),
            };
            seen.push(format!("{name}={}", String::from_utf8_lossy(value)));
        });
        assert_eq!(
            seen,
            [
                "renamed:x-renamed-server=Up",
                "X-Mixed-Case=A b",
                "X-E=",
                "Content-Length=2",
                "renamed:x-renamed-server=2",
            ]
        );
        // Into a map, the same lines as the map-building parse gives, rewritten.
        let mut map = HeaderMap::new();
        lines.append_to(&mut map);
        let mut expected = HeaderMap::new();
        for (n, v) in head(raw).headers {
            if let Some(n) = n {
                crate::upstream::append_rewritten(&mut expected, test_rewrite, n, v);
            }
        }
        assert_eq!(map, expected);
        assert_eq!(map.get_all("x-renamed-server").iter().count(), 2);
        // The framing lines are read whichever way the head is kept.
        assert!(!kept("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(kept("HTTP/1.0 200 OK\r\nCONNECTION: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |raw: &str| {
            let framed = framing(false, &head(raw)).ok();
            assert_eq!(framed, framing(false, &kept(raw)).ok(), "{raw}");
            framed
        };
        let chunked = BodyState::Chunked(ChunkState::Size);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
            Some((BodyState::Length(5), true))
        );
        assert!(f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").is_none());
        assert!(f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_none());
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n"),
            Some((chunked, false))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some((chunked, true))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Some((BodyState::UntilClose, false))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\n\r\n"),
            Some((BodyState::UntilClose, false))
        );
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\n\r\n"),
            Some((BodyState::Done, true))
        );
        assert_eq!(
            f("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
            Some((BodyState::Done, true))
        );
        assert_eq!(
            framing(true, &head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")).ok(),
            Some((BodyState::Done, true))
        );
    }

    #[test]
    fn chunked_decoding_with_extensions_and_trailers() {
        let mut buf = BytesMut::from("5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
        let mut state = ChunkState::Size;
        let mut out = Vec::new();
        loop {
            match chunk_step(&mut state, &mut buf).expect("valid") {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::Continue => {}
                Step::End => break,
                Step::NeedMore => panic!("the whole body is buffered"),
            }
        }
        assert_eq!(out, b"hello world");
        assert!(buf.is_empty());
        for bad in ["zz\r\n", "5\r\nhelloXX", "12345678901234567\r\n"] {
            let mut buf = BytesMut::from(bad);
            let mut state = ChunkState::Size;
            let failed = (0..4).any(|_| chunk_step(&mut state, &mut buf).is_err());
            assert!(failed, "{bad:?} is rejected");
        }
    }

    #[test]
    fn encodes_request_heads() {
        let mut headers = HeaderMap::new();
        headers.insert("x-one", HeaderValue::from_static("1"));
        let h = Authority::from_static("h:8080");
        let mut out = Vec::new();
        encode_head(&Method::POST, "/a/b?x=1", &headers, &h, 3, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /a/b?x=1 HTTP/1.1\r\nx-one: 1\r\nhost: h:8080\r\ncontent-length: 3\r\n\r\n"
        );
        // Framing headers from the caller are replaced by the body's own length.
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        out.clear();
        encode_head(&Method::GET, "/a/b?x=1", &headers, &h, 0, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /a/b?x=1 HTTP/1.1\r\nx-one: 1\r\nhost: h:8080\r\ncontent-length: 0\r\n\r\n"
        );
    }

    /// A listener for a test's backend, and its authority.
    async fn local_backend() -> (tokio::net::TcpListener, Authority) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let authority = Authority::try_from(addr.to_string().as_str()).expect("authority");
        (listener, authority)
    }

    fn target<'a>(authority: &'a Authority, path_and_query: &'a str) -> super::super::Target<'a> {
        super::super::Target {
            scheme: &http::uri::Scheme::HTTP,
            authority,
            path_and_query,
        }
    }

    /// A backend that answers before reading the request (and then stops reading) must not
    /// stall the upload: the answer is taken, and the connection is not reused.
    #[tokio::test]
    async fn an_early_answer_ends_the_upload() {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;

        let (listener, authority) = local_backend().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!")
                .await
                .expect("write");
            // Hold the connection open without reading from it.
            tokio::time::sleep(std::time::Duration::from_secs(20)).await;
            drop(s);
        });
        let pool = Arc::new(Pool::default());
        // Far more than the kernel's socket buffers hold.
        let body = Bytes::from(vec![b'x'; 64 * 1024 * 1024]);
        let headers = HeaderMap::new();
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            pool.request(
                &Method::POST,
                target(&authority, "/upload"),
                &headers,
                Some(body),
                None,
                Instant::now(),
            ),
        )
        .await
        .expect("the upload does not stall")
        .expect("the early answer");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"big!");
        let idle = pool.idle.lock().expect("lock");
        assert!(idle.get(authority.as_str()).is_none_or(Vec::is_empty));
        server.abort();
    }

    /// A pooled connection is reused while it has been idle for at most `IDLE_TIMEOUT` at the
    /// request's clock reading, including one returned after that reading was taken.
    #[tokio::test]
    async fn pooled_connections_age_by_the_requests_clock() {
        use http_body_util::BodyExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (listener, authority) = local_backend().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.expect("accept");
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let ok = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await;
                            if ok.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let pool = Arc::new(Pool::default());
        let headers = HeaderMap::new();
        let get = |now: Instant| {
            let pool = pool.clone();
            let authority = authority.clone();
            let headers = headers.clone();
            async move {
                let resp = pool
                    .request(
                        &Method::GET,
                        target(&authority, "/"),
                        &headers,
                        None,
                        None,
                        now,
                    )
                    .await
                    .expect("response");
                assert_eq!(resp.status(), StatusCode::OK);
                resp.into_body().collect().await.expect("body");
            }
        };
        // The request's clock reading is taken before the previous response returned its
        // connection: still reused.
        let early = Instant::now();
        get(early).await;
        get(early).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Idle longer than the limit at the request's reading: a new connection.
        get(Instant::now() + IDLE_TIMEOUT + std::time::Duration::from_secs(1)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        server.abort();
    }
}
