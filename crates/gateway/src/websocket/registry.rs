//! Where live connections are found: the `@connections` API and broadcasts go through a
//! [`ConnectionRegistry`]. [`LocalRegistry`] keeps connections of this process; a shared
//! implementation (several nodes) registers the same way and forwards posts to the owning node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

/// What is sent to a connection from outside its task.
#[derive(Debug)]
pub enum Outbound {
    /// `PostToConnection` data: a text frame when it is UTF-8, else a binary frame.
    Data(Bytes),
    /// `DeleteConnection`: close the connection.
    Close,
}

/// Facts about a connection (`GetConnection`).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub api_id: String,
    pub stage: String,
    pub connected_at_ms: i64,
    pub last_active_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

/// A connection served by this process.
#[derive(Debug, Clone)]
pub struct LocalConnection {
    pub connection_id: String,
    pub api_id: String,
    pub stage: String,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub last_active_ms: Arc<AtomicI64>,
    pub tx: mpsc::Sender<Outbound>,
}

impl LocalConnection {
    pub fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            connection_id: self.connection_id.clone(),
            api_id: self.api_id.clone(),
            stage: self.stage.clone(),
            connected_at_ms: self.connected_at_ms,
            last_active_ms: self.last_active_ms.load(Ordering::Relaxed),
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// Unknown, closed, or not yet established (410 `GoneException`).
    #[error("connection is gone")]
    Gone,
    /// The connection's outbound buffer is full (429 `LimitExceededException`).
    #[error("the connection's outbound buffer is full")]
    LimitExceeded,
}

/// Live connections, by id.
pub trait ConnectionRegistry: Send + Sync + 'static {
    /// Records an established connection (after `$connect` accepted it).
    fn register(&self, conn: LocalConnection);
    /// Forgets a closed connection.
    fn unregister(&self, connection_id: &str);
    fn get<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Option<ConnectionInfo>>;
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), PostError>>;
    fn disconnect<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>>;
    /// Connections served by this process.
    fn local_count(&self) -> usize;
}

/// The in-process registry.
#[derive(Default)]
pub struct LocalRegistry {
    conns: RwLock<HashMap<String, LocalConnection>>,
}

impl LocalRegistry {
    fn lookup(&self, id: &str) -> Option<LocalConnection> {
        self.conns.read().ok().and_then(|m| m.get(id).cloned())
    }

    fn send(&self, id: &str, msg: Outbound) -> Result<(), PostError> {
        let Some(conn) = self.lookup(id) else {
            return Err(PostError::Gone);
        };
        match conn.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(PostError::LimitExceeded),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PostError::Gone),
        }
    }
}

impl ConnectionRegistry for LocalRegistry {
    fn register(&self, conn: LocalConnection) {
        if let Ok(mut m) = self.conns.write() {
            m.insert(conn.connection_id.clone(), conn);
        }
    }

    fn unregister(&self, connection_id: &str) {
        if let Ok(mut m) = self.conns.write() {
            m.remove(connection_id);
        }
    }

    fn get<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Option<ConnectionInfo>> {
        Box::pin(async move { self.lookup(connection_id).map(|c| c.info()) })
    }

    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move { self.send(connection_id, Outbound::Data(data)) })
    }

    fn disconnect<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            match self.send(connection_id, Outbound::Close) {
                // A full buffer must not stop a disconnect: drop the connection's handle so its
                // task sees the channel end.
                Err(PostError::LimitExceeded) => {
                    self.unregister(connection_id);
                    Ok(())
                }
                r => r,
            }
        })
    }

    fn local_count(&self) -> usize {
        self.conns.read().map_or(0, |m| m.len())
    }
}
