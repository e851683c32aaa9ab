//! Turnpike's data plane: serves REST APIs the way Amazon API Gateway does.
//!
//! A [`Gateway`] holds the current [`deployment::Runtime`] behind an atomic pointer; the
//! [`server`] accepts connections and hands each request to the [`pipeline`], which runs AWS's
//! steps in order. Reloading swaps the pointer: requests in flight finish on the snapshot they
//! started with.

pub mod access;
pub mod access_log;
pub mod address;
pub mod body;
pub mod context;
pub mod deployment;
pub mod error;
pub mod gateway_response;
pub mod headers;
pub mod mapping;
pub mod pipeline;
pub mod router;
pub mod server;
pub mod timer;
pub mod upstream;
pub mod websocket;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub use deployment::{compile, Runtime};
pub use error::GatewayError;

/// Limits AWS applies to requests (defaults are AWS's REST API quotas).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request and response payload (10 MB).
    pub max_payload_bytes: usize,
    /// Total request header size (10,240 bytes).
    pub max_header_bytes: usize,
    /// Request target length (10,240 characters for regional endpoints).
    pub max_url_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 10 * 1024 * 1024,
            max_header_bytes: 10_240,
            max_url_bytes: 10_240,
        }
    }
}

/// The data plane: the current deployment snapshot plus what requests share.
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    pub upstream: upstream::Upstream,
    pub limits: Limits,
    /// WebSocket connections: settings, registry, shutdown.
    pub websockets: Arc<websocket::Hub>,
    /// Lambda functions that `AWS_PROXY` / `AWS` Lambda integrations invoke by name.
    pub functions: Arc<turnpike_lambda::Functions>,
    /// Endpoints and credentials of AWS service integrations (swapped on reload).
    aws: ArcSwap<turnpike_model::functions::AwsSettings>,
    /// API keys, quota counters, token buckets, JWKS and authorizer caches.
    access: Arc<access::AccessState>,
}

impl Gateway {
    pub fn new(runtime: Runtime, limits: Limits) -> Self {
        Gateway {
            runtime: ArcSwap::from_pointee(runtime),
            upstream: upstream::Upstream::new(),
            limits,
            websockets: Arc::default(),
            functions: Arc::new(turnpike_lambda::Functions::empty()),
            aws: ArcSwap::default(),
            access: Arc::default(),
        }
    }

    /// Uses `state` for API keys, usage plans, quotas and throttling (default: in-memory
    /// buckets and no store, so `apiKeyRequired` methods answer 403).
    pub fn with_state(mut self, state: access::AccessState) -> Self {
        self.access = Arc::new(state);
        self
    }

    /// The access-control state shared by every deployment.
    pub fn access(&self) -> &access::AccessState {
        &self.access
    }

    /// Uses `functions` for Lambda integrations (default: none, every invoke fails with 500).
    pub fn with_functions(mut self, functions: Arc<turnpike_lambda::Functions>) -> Self {
        self.functions = functions;
        self
    }

    /// Endpoints and credentials for AWS service integrations (the project's `aws:` section).
    pub fn with_aws(self, aws: turnpike_model::functions::AwsSettings) -> Self {
        self.set_aws(aws);
        self
    }

    /// The endpoints and credentials AWS service integrations use now.
    pub fn aws(&self) -> Arc<turnpike_model::functions::AwsSettings> {
        self.aws.load_full()
    }

    /// Replaces the AWS service settings (a reloaded project file).
    pub fn set_aws(&self, aws: turnpike_model::functions::AwsSettings) {
        self.aws.store(Arc::new(aws));
    }

    /// WebSocket limits and timers (default: AWS's).
    pub fn with_websocket_settings(mut self, settings: websocket::WsSettings) -> Self {
        self.websockets = Arc::new(websocket::Hub {
            settings,
            ..Default::default()
        });
        self
    }

    /// The snapshot new requests see.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Atomically replaces the served deployment; requests in flight keep the old one.
    pub fn swap(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
    }
}
