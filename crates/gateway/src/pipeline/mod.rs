//! The REST API request pipeline, in AWS's execution order, one module per step:
//!
//! 1. [`route`]: API and stage from the invoke URL, payload limits, resource + method match.
//! 2. Access control, throttling, validation and caching arrive with their own modules.
//! 3. [`integration_request`]: parameter mapping, template selection, passthrough.
//! 4. [`integration`]: MOCK, HTTP, HTTP_PROXY, AWS_PROXY and AWS (Lambda, AWS services).
//! 5. [`integration_response`]: response selection, response mapping and templates.
//! 6. [`method_response`]: headers every response carries, access log.
//!
//! Any step may fail with a [`GatewayError`], which short-circuits to the gateway response.

pub mod api_key;
pub mod authorizer;
pub mod content_handling;
pub mod integration;
pub mod integration_request;
pub mod integration_response;
pub mod method_response;
pub mod resource_policy;
pub mod route;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use turnpike_model::rest::{AuthorizationType, IntegrationType};

use crate::body::{Body, RequestBody};
use crate::context::RequestContext;
use crate::deployment::{Api, MethodRuntime, Runtime, StageRuntime};
use crate::error::GatewayError;
use crate::gateway_response::FailedRequest;
use crate::headers::{HeaderHints, Hinted};
use crate::Gateway;
pub use method_response::{ClosingHeaders, Served};

/// One matched request on its way through the pipeline. `ctx` is borrowed from the request's
/// handler, which keeps it for the access log: moving it (hundreds of bytes) in and out of
/// every step showed up as memcpy in profiles.
pub struct Invocation<'c> {
    pub api: Arc<Api>,
    pub stage: Arc<StageRuntime>,
    pub method: Arc<MethodRuntime>,
    pub parts: http::request::Parts,
    pub path_params: Vec<(String, String)>,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub ctx: &'c mut RequestContext,
    /// The connection the request came on.
    pub client: &'c Client,
    /// Headers the request is known to lack.
    pub hints: HeaderHints,
    /// The deployment snapshot the request was routed in; every step reads this one, even if
    /// a reload swaps in another meanwhile (and loading the current one costs atomics).
    pub runtime: &'c Runtime,
    /// When the request arrived: the steps that need "now" at microsecond precision (token
    /// buckets) use this one clock read.
    pub started: Instant,
}

impl Invocation<'_> {
    /// Starts the request's X-Ray trace for an integration call: the client's
    /// `X-Amzn-Trace-Id` carried on when its root is valid, else a new root.
    pub fn start_trace(&mut self) {
        let client = self
            .hints
            .get(
                &self.parts.headers,
                Hinted::TraceId,
                &crate::headers::X_AMZN_TRACE_ID,
            )
            .map(http::HeaderValue::as_bytes);
        self.ctx.trace_id = Some(crate::context::trace_header(
            client,
            self.ctx.request_time_epoch_ms,
        ));
    }

    /// Adds `X-Amzn-Trace-Id` to a successful integration response (AWS does this for HTTP,
    /// AWS and AWS_PROXY integrations, not for MOCK or HTTP_PROXY).
    pub fn add_trace_header(&self, resp: &mut Response<Body>) {
        if let Some(t) = self
            .ctx
            .trace_id
            .as_deref()
            .and_then(|t| http::HeaderValue::from_str(t).ok())
        {
            resp.headers_mut()
                .insert(crate::headers::X_AMZN_TRACE_ID.clone(), t);
        }
    }

    pub fn failed_request(&self) -> FailedRequest<'_> {
        FailedRequest {
            ctx: self.ctx,
            headers: &self.parts.headers,
            path_params: &self.path_params,
            query: &self.query,
            stage_variables: &self.stage.variables,
        }
    }
}

/// The client end of a connection, worked out once per connection rather than per request.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    /// `$context.identity.sourceIp` (IPv4-mapped IPv6 addresses shown as IPv4).
    pub source_ip: Arc<str>,
    /// The integration timeout's timer, re-armed by each request on the connection.
    pub integration_timer: crate::timer::SleepSlot,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            source_ip: crate::context::source_ip_string(addr.ip()).into(),
            integration_timer: crate::timer::SleepSlot::default(),
        }
    }
}

/// Serves one request end to end. Never fails: every error becomes a response.
///
/// `hints` says which rarely sent headers the request is known to lack (the server's fast path
/// knows; hyper's does not).
pub async fn handle(
    gw: &Gateway,
    mut req: Request<RequestBody>,
    client: &Client,
    hints: HeaderHints,
) -> Served {
    let peer = client.addr;
    let started = Instant::now();
    // AWS answers HTTP/1.1 requests with `Connection: keep-alive` unless the client closes.
    let keep_alive = req.version() == http::Version::HTTP_11
        && !(hints.may_have(Hinted::Connection)
            && req
                .headers()
                .get_all(http::header::CONNECTION)
                .iter()
                .any(|v| crate::headers::has_token(v.as_bytes(), b"close")));
    let runtime: Arc<Runtime> = gw.runtime();
    // Not rebound when there is no WebSocket API: a move of the request is a 264-byte copy.
    if !runtime.websocket_apis.is_empty() {
        match Box::pin(crate::websocket::intercept(gw, &runtime, req, peer)).await {
            crate::websocket::Intercepted::Handled(r) => return Served::plain(r),
            crate::websocket::Intercepted::Pass(passed) => req = passed,
        }
    }
    let mut ctx = route::initial_context(&runtime, &req, client, hints);
    let routed = route::route(&runtime, req, &mut ctx, client, &gw.limits, hints, started);
    // Each arm builds the result in place: gathering the parts in a tuple first cost two more
    // copies of the response.
    match routed {
        Err(early) => {
            let early = *early;
            let closing = method_response::finish(
                &early.response,
                &mut ctx,
                started,
                early.stage.as_deref(),
                keep_alive,
            );
            Served {
                response: early.response,
                closing,
                spare_headers: None,
            }
        }
        Ok((mut inv, body)) => {
            // By reference: moved into `run`'s future, the invocation (hundreds of bytes)
            // would be copied twice more per request.
            let response = run(gw, &mut inv, body).await;
            let closing =
                method_response::finish(&response, inv.ctx, started, Some(&inv.stage), keep_alive);
            let mut spare = std::mem::take(&mut inv.parts.headers);
            spare.clear();
            Served {
                response,
                closing,
                spare_headers: Some(spare),
            }
        }
    }
}

async fn run(gw: &Gateway, inv: &mut Invocation<'_>, body: RequestBody) -> Response<Body> {
    // Steps 4-6: resource policy, authorization, API key, throttling, quota. An open method
    // (no authorizer, policy or key) only has its throttle checked, without entering
    // `access_control`'s state machine.
    let open = inv.method.model.authorization_type == AuthorizationType::None
        && inv.api.policy.is_none()
        && !inv.method.model.api_key_required;
    let body = if open {
        match throttle::check(gw, inv, None) {
            Ok(()) => body,
            Err(e) => return render_error(inv, &e),
        }
    } else {
        match access_control(gw, inv, body).await {
            Ok(body) => body,
            Err(e) => return render_error(inv, &e),
        }
    };
    // HTTP_PROXY is the hot path and runs inline; the other arms are boxed so that the
    // per-request future hyper stores (and moves) stays small. Each arm returns its response
    // straight away: a response (240 bytes) gathered into a local first is copied once more.
    match inv.method.integration.kind {
        IntegrationType::HttpProxy => match integration::http::proxy(gw, inv, body).await {
            Ok(r) => r,
            Err(e) => render_error(inv, &e),
        },
        _ => match Box::pin(buffered_integration(gw, inv, body)).await {
            Ok(r) => r,
            Err(e) => render_error(inv, &e),
        },
    }
}

/// The integrations that need the whole request body first.
async fn buffered_integration(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: RequestBody,
) -> Result<Response<Body>, GatewayError> {
    let b = read_body(body, gw.limits.max_payload_bytes).await?;
    match inv.method.integration.kind {
        IntegrationType::Http => integration::http::invoke(gw, inv, b).await,
        IntegrationType::Mock => integration::mock::invoke(inv, b),
        IntegrationType::AwsProxy => integration::lambda::proxy(gw, inv, b).await,
        IntegrationType::Aws if integration::aws::is_lambda(inv) => {
            integration::lambda::invoke(gw, inv, b).await
        }
        IntegrationType::Aws => integration::aws::invoke(gw, inv, b).await,
        IntegrationType::HttpProxy => {
            integration::http::proxy(gw, inv, RequestBody::buffered(b)).await
        }
    }
}

/// Steps 4-6 in AWS's order: resource policy and authorization ([`authorizer`]), the API key
/// ([`api_key`]), throttling ([`throttle`]), then the usage plan's quota.
async fn access_control(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: RequestBody,
) -> Result<RequestBody, GatewayError> {
    let kind = inv.method.model.authorization_type;
    let (body, buffered) = if kind == AuthorizationType::AwsIam {
        let b = read_body(body, gw.limits.max_payload_bytes).await?;
        (RequestBody::buffered(b.clone()), Some(b))
    } else {
        (body, None)
    };
    // The authorizer and API-key steps are boxed and skipped when they do not apply, so that
    // open methods pay neither for their work nor for their (large) futures.
    let auth = if kind == AuthorizationType::None && inv.api.policy.is_none() {
        None
    } else {
        let region = inv.runtime.region.clone();
        Box::pin(authorizer::authorize(gw, inv, &region, buffered.as_ref())).await?
    };
    let key = if inv.method.model.api_key_required {
        Box::pin(api_key::identify(gw, inv, auth.as_deref())).await?
    } else {
        None
    };
    throttle::check(gw, inv, key.as_ref())?;
    if let Some(k) = &key {
        Box::pin(api_key::consume_quota(gw, k)).await?;
    }
    Ok(body)
}

/// Renders a failed step as its gateway response and records `$context.error.*`.
fn render_error(inv: &mut Invocation<'_>, e: &GatewayError) -> Response<Body> {
    if let Some(d) = &e.detail {
        tracing::warn!(request_id = %inv.ctx.request_id, response_type = %e.kind, "{d}");
    }
    let r = inv.api.gateway_responses.render(e, &inv.failed_request());
    inv.ctx.error = Some(crate::context::ErrorContext::from_error(e));
    r
}

/// Reads a whole request body, bounded by `limit`.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(route::too_large_error())
            } else {
                Err(GatewayError::internal(format!(
                    "reading the request body failed: {e}"
                )))
            }
        }
    }
}
