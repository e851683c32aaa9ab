//! The listener: accepts connections, serves HTTP/1.1 and HTTP/2 on one port, bounds what a slow
//! or malicious client can hold, and drains in-flight requests on shutdown.
//!
//! Every connection starts on the HTTP/1.1 fast path ([`http1`]), which serves the requests
//! API clients send nearly always: a whole head, no body or a small one with a
//! `Content-Length`. On anything else (HTTP/2, an upgrade, `Expect`, a chunked or large
//! upload, HTTP/1.0, a malformed or oversized head) it hands the connection, with the bytes it
//! has read, to hyper for the rest of the connection's life ([`hand_off`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::RequestBody;
use crate::timer::ConnTimer;
use crate::{pipeline, Gateway};

mod http1;
mod rewind;

use rewind::Rewind;

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Time a client has to send a complete request head (slowloris protection).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// HTTP/1 read buffer, which bounds the request head hyper accepts (431 beyond it).
    pub max_head_bytes: usize,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_head_bytes: 64 * 1024,
            max_connections: 16_384,
        }
    }
}

/// Serves `gateway` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    opts: ServerOptions,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    let opts = Arc::new(opts);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            gateway: gateway.clone(),
            client: pipeline::Client::new(peer),
            opts: opts.clone(),
            shutdown: shutdown.clone(),
        };
        connections.spawn(async move {
            http1::serve(stream, conn).await;
            drop(permit);
        });
    }
    drop(listener);
    // WebSocket connections close with 1001 (Going Away) and run `$disconnect`.
    gateway.websockets.shutdown.cancel();
    connections.close();
    let ws = gateway.websockets.clone();
    let drained = async move {
        connections.wait().await;
        ws.drained().await;
    };
    tokio::select! {
        _ = drained => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(opts.drain_timeout) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// What serving one connection needs.
struct Connection {
    gateway: Arc<Gateway>,
    client: pipeline::Client,
    opts: Arc<ServerOptions>,
    shutdown: CancellationToken,
}

/// Serves the rest of a connection with hyper: HTTP/2, upgrades, and every request the fast
/// path leaves to it. `io` replays what the fast path has read and not served.
async fn hand_off(io: Rewind<TcpStream>, conn: Connection) {
    let Connection {
        gateway,
        client,
        opts,
        shutdown,
    } = conn;
    let peer = client.addr;
    let service = service_fn(move |req: Request<Incoming>| {
        let gw = gateway.clone();
        let client = client.clone();
        async move {
            let req = req.map(RequestBody::Streaming);
            // hyper writes the map alone: everything joins it.
            Ok::<_, Infallible>(
                pipeline::handle(&gw, req, &client, crate::headers::HeaderHints::UNKNOWN)
                    .await
                    .into_response(),
            )
        }
    });
    let builder = conn_builder(&opts);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close (HTTP/2: GOAWAY).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// One connection's protocol settings. A builder per connection, because its header-read
/// timer is the connection's own [`ConnTimer`] (re-armed per request, not re-created).
fn conn_builder(opts: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(ConnTimer::default())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_head_bytes)
        // One flattened buffer per write costs less than an iovec queue for API-sized
        // responses.
        .writev(false)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    builder
}

/// Binds `addr` (use port 0 for an ephemeral port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
