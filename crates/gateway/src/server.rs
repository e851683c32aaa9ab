//! The listener: accepts connections, serves HTTP/1.1 and HTTP/2 on one port, bounds what a slow
//! or malicious client can hold, and drains in-flight requests on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::timer::ConnTimer;
use crate::{pipeline, Gateway};

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
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
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
        let gw = gateway.clone();
        let client = pipeline::Client::new(peer);
        let service = service_fn(move |req| {
            let gw = gw.clone();
            let client = client.clone();
            async move { Ok::<_, Infallible>(pipeline::handle(&gw, req, &client).await) }
        });
        let conn = conn_builder(&opts)
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // WebSocket connections close with 1001 (Going Away) and run `$disconnect`.
    gateway.websockets.shutdown.cancel();
    let ws = gateway.websockets.clone();
    let drained = async move {
        graceful.shutdown().await;
        ws.drained().await;
    };
    tokio::select! {
        _ = drained => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(opts.drain_timeout) => tracing::warn!("drain timeout reached; closing remaining connections"),
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
