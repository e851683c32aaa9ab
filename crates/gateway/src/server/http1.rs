//! The HTTP/1.1 fast path: serves a connection's requests itself while they are the plain
//! kind, and hands the connection to hyper ([`super::hand_off`]) at the first one that is not.
//!
//! Why: hyper's server connection was a third of the instructions of a proxied request
//! (bench/README.md). Most of that is generality an API request does not use: a body channel,
//! a dispatcher between the connection and the service, upgrade and `Expect` machinery.
//!
//! What it takes is deliberately narrow, because request parsing is where request smuggling
//! lives: an `HTTP/1.1` request in origin form with a standard method other than `HEAD` (whose
//! response framing hyper handles), a head httparse accepts in its strict mode, and at most one
//! `Content-Length` (digits only, at most [`MAX_BODY`] bytes). `Transfer-Encoding`, `Expect`,
//! `Upgrade` or any doubt at all: hyper serves the request, from its first byte, and everything
//! after it on the connection. So a malformed request still gets hyper's 400 or 431.
//!
//! Responses are written as hyper writes them (status line, header order and case, `date`,
//! the `content-length` / `transfer-encoding` rules), so which path served a request does not
//! show on the wire.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{hand_off, Connection, Rewind};
use crate::body::{Body, RequestBody};
use crate::headers::{
    has_token, parse_decimal, special, special_name, token_is, tokens, HeaderHints, Hinted, Special,
};
use crate::pipeline::{self, ClosingHeaders};
use crate::timer::SleepSlot;
use crate::upstream::LineName;

/// Header lines the fast path parses; a request with more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 64;
/// The largest body read together with its head. Larger ones stream, through hyper.
pub const MAX_BODY: usize = 64 * 1024;
/// Room kept free in the read buffer before each read.
const READ_SPACE: usize = 8 * 1024;
/// Response bytes gathered before they are written out.
const WRITE_BATCH: usize = 16 * 1024;

/// Serves `stream` until the client closes, a deadline passes, or shutdown.
pub(super) async fn serve(mut stream: TcpStream, conn: Connection) {
    let mut buf = BytesMut::with_capacity(READ_SPACE);
    let mut out = Vec::with_capacity(READ_SPACE);
    // The header-read deadline, re-armed per request (as hyper's, it also bounds how long a
    // keep-alive connection may sit idle).
    let timer = SleepSlot::default();
    // Registered once per connection: a new registration per idle wait costs a lock each.
    let mut shutdown = std::pin::pin!(conn.shutdown.clone().cancelled_owned());
    let mut scratch = Scratch::default();
    loop {
        let deadline = Instant::now() + conn.opts.header_read_timeout;
        // Read until the head (and its small body) is whole.
        let (req, Ready { close, hints }) = loop {
            if !buf.is_empty() {
                match take_request(&mut buf, conn.opts.max_head_bytes, &mut scratch) {
                    Taken::Request(req, ready) => break (req, ready),
                    Taken::Partial => {}
                    Taken::NotOurs => {
                        return hand_off(Rewind::new(buf.freeze(), stream), conn).await;
                    }
                }
            }
            let idle = buf.is_empty();
            let read_more = std::pin::pin!(read_some(&mut stream, &mut buf));
            let read = timer.timeout_at(deadline, read_more);
            let read = if idle {
                // Shutdown closes idle connections only; a request being read is served.
                tokio::select! {
                    biased;
                    r = read => r,
                    _ = shutdown.as_mut() => return,
                }
            } else {
                read.await
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                // The client closed or failed, or the head took too long: close, as hyper does.
                _ => return,
            }
        };
        let served = pipeline::handle(&conn.gateway, req, &conn.client, hints).await;
        let (parts, body) = served.response.into_parts();
        out.clear();
        let reusable = write_response(
            &mut stream,
            &mut out,
            parts.status,
            &parts.headers,
            &served.closing,
            body,
        )
        .await;
        // A shutdown that began during the request ends the connection after it.
        match reusable {
            Ok(true) if !close && !conn.shutdown.is_cancelled() => {}
            _ => return,
        }
        let next = match served.spare_headers {
            Some(h) => {
                crate::headers::discard(parts.headers);
                h
            }
            None => {
                let mut h = parts.headers;
                h.clear();
                h
            }
        };
        crate::headers::install(&mut scratch.headers, next);
    }
}

/// Not an `async fn`, so that the read is one state machine, not two.
fn read_some<'a>(
    stream: &'a mut TcpStream,
    buf: &'a mut BytesMut,
) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
    if buf.capacity() - buf.len() < READ_SPACE / 2 {
        buf.reserve(READ_SPACE);
    }
    stream.read_buf(buf)
}

// ---------------------------------------------------------------------------------------------
// Request head
// ---------------------------------------------------------------------------------------------

// Returned once per request and taken apart at once; boxing the request would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Taken {
    Request(Request<RequestBody>, Ready),
    /// The head or its body is not whole yet.
    Partial,
    /// A request the fast path leaves to hyper.
    NotOurs,
}

/// What the head told about a request besides the request itself.
struct Ready {
    /// The client asked to close after it (`Connection: close`).
    close: bool,
    hints: HeaderHints,
}

/// Per-connection space for parsing, kept between requests.
#[derive(Default)]
struct Scratch {
    /// The last response's header map, emptied: it holds the next request's headers (as
    /// hyper does), so they need no allocation.
    headers: HeaderMap,
    /// Offsets of each header's name and value in the head.
    spans: Vec<(u32, u32, u32, u32)>,
    /// The last request's header names, as received and as parsed, in order.
    names: NameCache,
}

/// The header names of a connection's last request. A client sends the same names in the same
/// order on every request of a connection, and `HeaderName::from_bytes` (a case-folding copy
/// and a match over every standard name) cost about 120 instructions per header; comparing
/// the received bytes with the last request's costs a tenth of that.
#[derive(Default)]
struct NameCache {
    entries: Vec<(Box<[u8]>, HeaderName)>,
}

/// Names kept per connection; a request with more parses the rest each time.
const CACHED_NAMES: usize = 32;

impl NameCache {
    /// The name of the `i`th header, `raw` as received; `None` for a name `http` refuses.
    fn name(&mut self, i: usize, raw: &[u8]) -> Option<HeaderName> {
        if let Some((seen, name)) = self.entries.get(i) {
            if **seen == *raw {
                return Some(name.clone());
            }
        }
        let name = HeaderName::from_bytes(raw).ok()?;
        if i < self.entries.len() {
            self.entries[i] = (raw.into(), name.clone());
        } else if i == self.entries.len() && i < CACHED_NAMES {
            self.entries.push((raw.into(), name.clone()));
        }
        Some(name)
    }
}

/// Takes the first request off `buf` if it is whole and the fast path's kind; its header
/// values share the buffer's bytes.
fn take_request(buf: &mut BytesMut, max_head: usize, scratch: &mut Scratch) -> Taken {
    // Spans of the headers, as offsets: the buffer is split after parsing.
    let spans = &mut scratch.spans;
    spans.clear();
    let (len, method, target, body_len, ready) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() < max_head => return Taken::Partial,
            // Too large, too many headers, malformed: hyper has the answers (431, 400).
            _ => return Taken::NotOurs,
        };
        if len > max_head || req.version != Some(1) {
            return Taken::NotOurs;
        }
        let method = match req.method {
            Some("GET") => Method::GET,
            Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some("DELETE") => Method::DELETE,
            Some("PATCH") => Method::PATCH,
            Some("OPTIONS") => Method::OPTIONS,
            _ => return Taken::NotOurs,
        };
        let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
            return Taken::NotOurs;
        };
        let base = buf.as_ptr() as usize;
        // `len <= max_head`, so every offset fits in a u32.
        let span = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start as u32, (start + s.len()) as u32)
        };
        let mut body_len = None;
        let mut close = false;
        let mut hints = HeaderHints::known();
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            match header_role(name) {
                Role::Plain => {}
                Role::Hinted(hinted) => hints.saw(hinted),
                Role::ContentLength => {
                    hints.saw(Hinted::ContentLength);
                    if body_len.is_some() {
                        return Taken::NotOurs;
                    }
                    match parse_decimal(h.value) {
                        Some(n) if n <= MAX_BODY as u64 => body_len = Some(n as usize),
                        _ => return Taken::NotOurs,
                    }
                }
                Role::Connection => {
                    hints.saw(Hinted::Connection);
                    if has_token(h.value, b"upgrade") {
                        return Taken::NotOurs;
                    }
                    close |= has_token(h.value, b"close");
                }
                Role::NotOurs => return Taken::NotOurs,
            }
            let (ns, ne) = span(name);
            let (vs, ve) = span(h.value);
            spans.push((ns, ne, vs, ve));
        }
        (
            len,
            method,
            span(path.as_bytes()),
            body_len.unwrap_or(0),
            Ready { close, hints },
        )
    };
    if buf.len() < len + body_len {
        return Taken::Partial;
    }
    let head = buf.split_to(len).freeze();
    let body = buf.split_to(body_len).freeze();
    let headers = std::mem::take(&mut scratch.headers);
    match build_request(
        &head,
        method,
        target,
        &scratch.spans,
        &mut scratch.names,
        headers,
        body.clone(),
    ) {
        Some(req) => Taken::Request(req, ready),
        None => {
            // Something only the `http` types refuse (a URI or header name): hyper decides.
            let mut rest = BytesMut::with_capacity(head.len() + body_len + buf.len());
            rest.extend_from_slice(&head);
            rest.extend_from_slice(&body);
            rest.extend_from_slice(buf);
            *buf = rest;
            Taken::NotOurs
        }
    }
}

/// What a request header means to the fast path.
enum Role {
    Plain,
    /// One the pipeline looks up (`HeaderHints`).
    Hinted(Hinted),
    ContentLength,
    Connection,
    /// `Transfer-Encoding`, `Expect`, `Upgrade`, `HTTP2-Settings`: hyper's.
    NotOurs,
}

fn header_role(name: &[u8]) -> Role {
    // By length first: most names are none of these and cost one compare. Names come from
    // httparse: tokens, for which `token_is` is exact.
    let is = |n: &[u8]| token_is(name, n);
    match name.len() {
        14 if is(b"content-length") => Role::ContentLength,
        14 if is(b"http2-settings") => Role::NotOurs,
        10 if is(b"connection") => Role::Connection,
        10 if is(b"user-agent") => Role::Hinted(Hinted::UserAgent),
        16 if is(b"x-amzn-requestid") => Role::Hinted(Hinted::RequestId),
        15 if is(b"x-amzn-trace-id") => Role::Hinted(Hinted::TraceId),
        22 if is(b"x-http-method-override") => Role::Hinted(Hinted::MethodOverride),
        17 if is(b"transfer-encoding") => Role::NotOurs,
        6 if is(b"expect") => Role::NotOurs,
        7 if is(b"upgrade") => Role::NotOurs,
        _ => Role::Plain,
    }
}

/// The request for the pipeline. `None` for what the `http` types refuse.
fn build_request(
    head: &Bytes,
    method: Method,
    (ts, te): (u32, u32),
    spans: &[(u32, u32, u32, u32)],
    names: &mut NameCache,
    mut headers: HeaderMap,
    body: Bytes,
) -> Option<Request<RequestBody>> {
    let uri = Uri::from_maybe_shared(head.slice(ts as usize..te as usize)).ok()?;
    headers.reserve(spans.len());
    for (i, &(ns, ne, vs, ve)) in spans.iter().enumerate() {
        let name = names.name(i, head.get(ns as usize..ne as usize)?)?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize)).ok()?;
        headers.append(name, value);
    }
    let mut req = Request::new(RequestBody::buffered(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    crate::headers::install(req.headers_mut(), headers);
    Some(req)
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

/// Writes a response; `Ok(true)` when the connection can carry another request.
async fn write_response(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    closing: &ClosingHeaders,
    mut body: Body,
) -> std::io::Result<bool> {
    if status.is_informational() {
        // A 1xx cannot be the response; hyper answers 500 and closes instead (so do we, so
        // that both paths agree).
        let empty = HeaderMap::new();
        let _ = encode_head(
            out,
            StatusCode::INTERNAL_SERVER_ERROR,
            &empty,
            &ClosingHeaders::default(),
            &Body::empty(),
        );
        stream.write_all(out).await?;
        return Ok(false);
    }
    let Some((framing, last)) = encode_head(out, status, headers, closing, &body) else {
        // A header the response cannot be sent with (hyper refuses it too): close.
        return Ok(false);
    };
    if !can_have_body(status) {
        stream.write_all(out).await?;
        return Ok(!last);
    }
    let mut sent: u64 = 0;
    loop {
        if body.is_end_stream() {
            break;
        }
        // Take what is ready without waiting; write out what is gathered before waiting.
        let ready = std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(f) => Some(f),
                Poll::Pending => None,
            })
        })
        .await;
        let frame = match ready {
            Some(f) => f,
            None => {
                if !out.is_empty() {
                    stream.write_all(out).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                // Trailers are not sent (hyper sends them only when the client asks).
                Err(_) => continue,
            },
            Some(Err(e)) => {
                // The backend failed mid-body: the client sees the connection close before
                // the body's end, as hyper does it.
                tracing::debug!(error = %e, "response body failed");
                if !out.is_empty() {
                    stream.write_all(out).await?;
                }
                return Ok(false);
            }
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            Framing::Length(n) if sent > n => {
                // More than announced: never let extra bytes become the next response.
                let keep = data.len() as u64 - (sent - n);
                out.extend_from_slice(&data[..keep as usize]);
                stream.write_all(out).await?;
                return Ok(false);
            }
            Framing::Chunked => {
                let mut hex = [0u8; 16];
                out.extend_from_slice(hex_len(data.len(), &mut hex));
                out.extend_from_slice(b"\r\n");
                push_data(stream, out, &data).await?;
                out.extend_from_slice(b"\r\n");
            }
            Framing::Length(_) => push_data(stream, out, &data).await?,
        }
    }
    let complete = match framing {
        Framing::Length(n) => sent == n,
        Framing::Chunked => {
            out.extend_from_slice(b"0\r\n\r\n");
            true
        }
    };
    if !out.is_empty() {
        stream.write_all(out).await?;
    }
    Ok(complete && !last)
}

/// Adds `data` to the batch, or writes both out when it is large.
async fn push_data(stream: &mut TcpStream, out: &mut Vec<u8>, data: &[u8]) -> std::io::Result<()> {
    if out.len() + data.len() <= WRITE_BATCH {
        out.extend_from_slice(data);
        return Ok(());
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    stream.write_all(data).await
}

fn hex_len(n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Whether a response with `status` carries a body and its length (`HEAD` requests are left
/// to hyper, so the method does not matter here).
fn can_have_body(status: StatusCode) -> bool {
    !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Writes the status line and headers as hyper does (`proto::h1::role::Server::encode`):
/// headers in map order with lower-case names (an HTTP_PROXY backend's lines first, the
/// closing headers last: where [`Served::into_response`](pipeline::Served::into_response)
/// puts them for hyper), the body's own length unless the map sets one,
/// chunked when the length is unknown, `content-length: 0` for an empty body, and `date`.
/// Returns the framing and whether the connection ends after this response; `None` for
/// headers hyper refuses (conflicting or invalid `content-length`).
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    closing: &ClosingHeaders,
    body: &Body,
) -> Option<(Framing, bool)> {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // `None`: no body at all; `Some(None)`: a body of unknown length.
    let body_len = if body.is_end_stream() {
        None
    } else {
        Some(body.size_hint().exact())
    };
    let mut w = HeadWriter {
        out,
        status,
        body_len,
        framing: None,
        last: false,
        wrote_date: false,
        wrote_content_type: false,
    };
    // An HTTP_PROXY backend's lines, kept as received, go first: they would have been in the
    // map before anything the gateway added.
    if let Some(head) = upstream_head(body) {
        let mut ok = true;
        head.for_each(|name, value| {
            let replaced = match name {
                LineName::Received(n) => closing.replaces_received(n),
                LineName::Renamed(n) => closing.replaces(n),
            };
            if replaced {
                return;
            }
            ok &= match name {
                LineName::Received(n) => w.line(special(n), Name::Received(n), value),
                LineName::Renamed(n) => w.line(special_name(n), Name::Lower(n.as_str()), value),
            }
            .is_some();
        });
        if !ok {
            return None;
        }
        // AWS's default for a backend response without a content type.
        if !w.wrote_content_type && !headers.contains_key(http::header::CONTENT_TYPE) {
            w.line(
                Some(Special::ContentType),
                Name::Lower("content-type"),
                b"application/json",
            )?;
        }
    }
    for (name, value) in headers {
        if !closing.replaces(name) {
            w.line(
                special_name(name),
                Name::Lower(name.as_str()),
                value.as_bytes(),
            )?;
        }
    }
    let mut ok = true;
    closing.for_each(|name, value| {
        ok &= w
            .line(special_name(name), Name::Lower(name.as_str()), value)
            .is_some();
    });
    if !ok {
        return None;
    }
    let HeadWriter {
        out,
        framing,
        last,
        wrote_date,
        ..
    } = w;
    let chunk_ok = can_have_body(status);
    let framing = match framing {
        Some(f) => f,
        None => match body_len {
            Some(None) if chunk_ok => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            // A status without a body (below): nothing is sent.
            Some(None) => Framing::Length(0),
            None | Some(Some(0)) => {
                if can_have_body(status) {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Some(Some(n)) => {
                if can_have_body(status) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
        },
    };
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let framing = if chunk_ok {
        framing
    } else {
        Framing::Length(0)
    };
    Some((framing, last))
}

/// The backend's header lines that an HTTP_PROXY response carries outside its map.
fn upstream_head(body: &Body) -> Option<&crate::upstream::ResponseHead> {
    match body {
        Body::Upstream(b) => b.head(),
        _ => None,
    }
}

enum Name<'a> {
    /// Already in lower case (a `HeaderName`).
    Lower(&'a str),
    /// As received: written in lower case, as a `HeaderName` would be.
    Received(&'a [u8]),
}

/// The header lines of one response head, with what they say about its framing.
struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
    status: StatusCode,
    /// `None`: no body at all; `Some(None)`: a body of unknown length.
    body_len: Option<Option<u64>>,
    framing: Option<Framing>,
    /// `Connection: close` was written.
    last: bool,
    wrote_date: bool,
    wrote_content_type: bool,
}

impl HeadWriter<'_> {
    /// Writes one header line; `None` for a line hyper refuses (a conflicting or invalid
    /// `content-length`, or one after `transfer-encoding`).
    fn line(&mut self, kind: Option<Special>, name: Name<'_>, value: &[u8]) -> Option<()> {
        let chunk_ok = can_have_body(self.status);
        match kind {
            Some(Special::ContentLength) => {
                let n = match self.body_len {
                    // No body: `content-length: 0` follows at the end.
                    None => return Some(()),
                    // The body's own length, whatever the line says (hyper trusts the map).
                    Some(Some(n)) => n,
                    Some(None) => parse_decimal(value)?,
                };
                match self.framing {
                    Some(Framing::Length(prev)) if prev != n => return None,
                    Some(_) => return Some(()),
                    None => self.framing = Some(Framing::Length(n)),
                }
                if chunk_ok {
                    self.out.extend_from_slice(b"content-length: ");
                    self.out
                        .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    self.out.extend_from_slice(b"\r\n");
                }
                return Some(());
            }
            Some(Special::TransferEncoding) => {
                if !chunk_ok {
                    return Some(());
                }
                if matches!(self.framing, Some(Framing::Length(_))) {
                    return None;
                }
                self.framing = Some(Framing::Chunked);
                self.out.extend_from_slice(b"transfer-encoding: ");
                self.out.extend_from_slice(value);
                if !ends_with_chunked(value) {
                    self.out.extend_from_slice(b", chunked");
                }
                self.out.extend_from_slice(b"\r\n");
                return Some(());
            }
            Some(Special::Connection) => self.last |= has_token(value, b"close"),
            Some(Special::Date) => self.wrote_date = true,
            Some(Special::ContentType) => self.wrote_content_type = true,
            None => {}
        }
        let name_len = match name {
            Name::Lower(n) => n.len(),
            Name::Received(n) => n.len(),
        };
        // One capacity check for the line, not four.
        self.out.reserve(name_len + value.len() + 4);
        match name {
            Name::Lower(n) => self.out.extend_from_slice(n.as_bytes()),
            Name::Received(n) => {
                let start = self.out.len();
                self.out.extend_from_slice(n);
                if let Some(written) = self.out.get_mut(start..) {
                    written.make_ascii_lowercase();
                }
            }
        }
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        Some(())
    }
}

fn ends_with_chunked(v: &[u8]) -> bool {
    tokens(v)
        .next_back()
        .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"))
}

/// The `date` header's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    struct Cached {
        second: u64,
        text: [u8; 29],
    }

    thread_local! {
        static CACHED: RefCell<Cached> = const { RefCell::new(Cached { second: u64::MAX, text: [0; 29] }) };
    }

    pub fn extend(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.second != second {
                let text = httpdate::fmt_http_date(now);
                if text.len() == c.text.len() {
                    c.text.copy_from_slice(text.as_bytes());
                    c.second = second;
                } else {
                    out.extend_from_slice(text.as_bytes());
                    return;
                }
            }
            out.extend_from_slice(&c.text);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn take(raw: &[u8]) -> (Taken, BytesMut) {
        let mut buf = BytesMut::from(raw);
        let t = take_request(&mut buf, 64 * 1024, &mut Scratch::default());
        (t, buf)
    }

    fn not_ours(raw: &[u8]) -> bool {
        matches!(take(raw).0, Taken::NotOurs)
    }

    #[test]
    fn header_names_are_remembered_per_connection_and_checked() {
        let mut scratch = Scratch::default();
        let mut names = |raw: &[u8]| {
            let mut buf = BytesMut::from(raw);
            let Taken::Request(req, _) = take_request(&mut buf, 64 * 1024, &mut scratch) else {
                panic!("not taken")
            };
            let names: Vec<String> = req.headers().keys().map(|k| k.to_string()).collect();
            names
        };
        let first = b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\n\r\n";
        assert_eq!(names(first), ["host", "x-one"]);
        // The same names again, now from the cache.
        assert_eq!(names(first), ["host", "x-one"]);
        // Another name in the same place, another case, one more.
        assert_eq!(
            names(b"GET / HTTP/1.1\r\nHOST: a\r\nX-Two: 1\r\nAccept: */*\r\n\r\n"),
            ["host", "x-two", "accept"]
        );
        // Fewer, each in another place.
        assert_eq!(
            names(b"GET / HTTP/1.1\r\nAccept: */*\r\nX-Two: 1\r\n\r\n"),
            ["accept", "x-two"]
        );
        assert_eq!(
            scratch.names.entries.len(),
            3,
            "one entry per place, replaced as names change"
        );
    }

    #[test]
    fn plain_requests_are_taken_with_their_bodies() {
        let (t, rest) = take(
            b"POST /dev/pets?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nX-Two: 2\r\n\
              Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
        );
        let Taken::Request(req, ready) = t else {
            panic!("not taken")
        };
        assert!(!ready.close);
        // The head had a length, and none of the other looked-up headers.
        assert!(ready.hints.may_have(Hinted::ContentLength));
        for absent in [
            Hinted::Connection,
            Hinted::RequestId,
            Hinted::UserAgent,
            Hinted::TraceId,
            Hinted::MethodOverride,
        ] {
            assert!(!ready.hints.may_have(absent), "{absent:?}");
        }
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/dev/pets");
        assert_eq!(req.uri().query(), Some("x=1"));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "a");
        let twos: Vec<_> = req.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert!(matches!(req.body(), RequestBody::Buffered(Some(b)) if b == "hello"));
        // The next request's first bytes stay buffered.
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");

        let (t, _) = take(
            b"GET /a HTTP/1.1\r\nConnection: keep-alive, Close\r\nUser-AGENT: x\r\n\
              X-Amzn-RequestId: y\r\nX-Amzn-Trace-Id: t\r\nX-HTTP-Method-Override: GET\r\n\r\n",
        );
        let Taken::Request(_, ready) = t else {
            panic!("not taken")
        };
        assert!(ready.close);
        for present in [
            Hinted::Connection,
            Hinted::RequestId,
            Hinted::UserAgent,
            Hinted::TraceId,
            Hinted::MethodOverride,
        ] {
            assert!(ready.hints.may_have(present), "{present:?}");
        }
        assert!(!ready.hints.may_have(Hinted::ContentLength));
    }

    #[test]
    fn incomplete_heads_and_bodies_wait_for_more() {
        assert!(matches!(
            take(b"GET /a HTTP/1.1\r\nHost: a\r\n").0,
            Taken::Partial
        ));
        let (t, rest) = take(b"PUT /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab");
        assert!(matches!(t, Taken::Partial));
        // Nothing is consumed until the whole request is there.
        assert_eq!(rest.len(), 40);
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for raw in [
            &b"GET /a HTTP/1.0\r\n\r\n"[..],
            b"HEAD /a HTTP/1.1\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"GET http://a/b HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
            b"POST /a HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx",
            b"POST /a HTTP/1.1\r\nContent-Length: 70000\r\n\r\n",
            b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET /a HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad Name: a\r\n\r\n",
            b"GET /a\x01 HTTP/1.1\r\n\r\n",
        ] {
            assert!(not_ours(raw), "{}", String::from_utf8_lossy(raw));
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert!(not_ours(
            format!("GET /a HTTP/1.1\r\n{many}\r\n").as_bytes()
        ));
        // A head over the limit, whole or not.
        let big = format!("GET /a HTTP/1.1\r\nX: {}\r\n", "v".repeat(70_000));
        assert!(not_ours(big.as_bytes()));
    }

    #[test]
    fn requests_the_http_types_refuse_are_handed_over_whole() {
        // httparse takes `<` in a target; `http::Uri` does not (hyper answers 400).
        let raw = b"POST /a<b HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\r\n";
        let (t, rest) = take(raw);
        assert!(matches!(t, Taken::NotOurs));
        assert_eq!(&rest[..], &raw[..]);
    }

    fn head_of(status: u16, headers: &[(&str, &str)], body: Body) -> (String, Framing, bool) {
        head_closing(status, headers, &ClosingHeaders::default(), body)
    }

    #[test]
    fn closing_headers_come_last_and_replace_the_maps() {
        let closing = ClosingHeaders {
            request_id: "r-1".into(),
            extended_request_id: "e-1".into(),
            keep_alive: true,
        };
        let headers = [
            ("connection", "close"),
            ("content-type", "text/plain"),
            ("x-amzn-requestid", "theirs"),
        ];
        let (text, _, last) = head_closing(200, &headers, &closing, Body::full("ok"));
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\ncontent-type: text/plain\nx-amzn-requestid: r-1\n\
             x-amz-apigw-id: e-1\nconnection: keep-alive\ncontent-length: 2\ndate: *\n"
        );
        // (The body's length and the date follow the headers, as hyper writes them.) The
        // map's `Connection: close` gave way to keep-alive.
        assert!(!last);
        // What hyper's path is given says the same, in the same order.
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(k, HeaderValue::from_static(v));
        }
        closing.apply_to(&mut map);
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-amzn-requestid",
                "x-amz-apigw-id",
                "connection"
            ]
        );
        // Without keep-alive, the map's `Connection: close` stands and ends the connection.
        let (_, _, last) = head_closing(200, &headers, &ClosingHeaders::default(), Body::empty());
        assert!(last);
    }

    fn head_closing(
        status: u16,
        headers: &[(&str, &str)],
        closing: &ClosingHeaders,
        body: Body,
    ) -> (String, Framing, bool) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let mut out = Vec::new();
        let status = StatusCode::from_u16(status).expect("status");
        let (framing, last) =
            encode_head(&mut out, status, &map, closing, &body).expect("encodable");
        let text = String::from_utf8(out).expect("utf-8");
        // The date changes; its presence is checked by the callers.
        let text = text
            .lines()
            .map(|l| {
                if l.starts_with("date: ") {
                    "date: *"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        (text, framing, last)
    }

    fn unknown_length() -> Body {
        Body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(
            vec![Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                Bytes::from_static(b"x"),
            ))],
        )))
    }

    #[test]
    fn heads_are_written_as_hyper_writes_them() {
        let (h, f, last) = head_of(
            200,
            &[("x-a", "1"), ("connection", "keep-alive")],
            Body::full("hi"),
        );
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\nx-a: 1\nconnection: keep-alive\ncontent-length: 2\ndate: *\n"
        );
        assert_eq!((f, last), (Framing::Length(2), false));
        // The map's content-length keeps its place; the body's length is what is sent.
        let (h, f, _) = head_of(
            201,
            &[("content-length", "9"), ("x", "y")],
            Body::full("abc"),
        );
        assert_eq!(
            h,
            "HTTP/1.1 201 Created\ncontent-length: 3\nx: y\ndate: *\n"
        );
        assert_eq!(f, Framing::Length(3));
        // An empty body: `content-length: 0`, whatever the map said.
        let (h, _, _) = head_of(502, &[("content-length", "12")], Body::empty());
        assert_eq!(h, "HTTP/1.1 502 Bad Gateway\ncontent-length: 0\ndate: *\n");
        // No length known: chunked, unless the map gives one.
        let (h, f, _) = head_of(200, &[], unknown_length());
        assert_eq!(h, "HTTP/1.1 200 OK\ntransfer-encoding: chunked\ndate: *\n");
        assert_eq!(f, Framing::Chunked);
        let (h, f, _) = head_of(200, &[("content-length", "1")], unknown_length());
        assert_eq!(h, "HTTP/1.1 200 OK\ncontent-length: 1\ndate: *\n");
        assert_eq!(f, Framing::Length(1));
        // 204 and 304 carry no length and no body.
        let (h, f, _) = head_of(204, &[("content-length", "0")], Body::empty());
        assert_eq!(h, "HTTP/1.1 204 No Content\ndate: *\n");
        assert_eq!(f, Framing::Length(0));
        let (h, f, _) = head_of(304, &[], Body::full("x"));
        assert_eq!(h, "HTTP/1.1 304 Not Modified\ndate: *\n");
        assert_eq!(f, Framing::Length(0));
        // A status without a reason phrase, a date of the response's own, `connection: close`.
        let (h, _, last) = head_of(
            599,
            &[
                ("date", "Tue, 01 Dec 2026 00:00:00 GMT"),
                ("connection", "close"),
            ],
            Body::empty(),
        );
        assert_eq!(
            h,
            "HTTP/1.1 599 <none>\ndate: *\nconnection: close\ncontent-length: 0\n"
        );
        assert!(last);
        // Conflicting lengths for a body of unknown length cannot be sent.
        let mut map = HeaderMap::new();
        map.append(header::CONTENT_LENGTH, HeaderValue::from_static("1"));
        map.append(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        let mut out = Vec::new();
        assert!(encode_head(
            &mut out,
            StatusCode::OK,
            &map,
            &ClosingHeaders::default(),
            &unknown_length()
        )
        .is_none());
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut b = [0u8; 16];
        assert_eq!(hex_len(0, &mut b), b"0");
        assert_eq!(hex_len(255, &mut b), b"ff");
        assert_eq!(hex_len(65_536, &mut b), b"10000");
    }
}
