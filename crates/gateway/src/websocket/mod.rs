//! WebSocket APIs (API Gateway v2, `protocolType: WEBSOCKET`).
//!
//! * [`intercept`] picks the requests that belong to a WebSocket API out of the listener's
//!   traffic: upgrade requests addressed to one, and the `@connections` management API.
//! * [`connection`] answers the upgrade after `$connect` accepted it and runs the connection:
//!   frame and message limits, idle and maximum-duration timers, route selection, `$disconnect`.
//! * [`integration`] runs a route's integration (MOCK, HTTP, HTTP_PROXY, AWS_PROXY).
//! * [`connections_api`] serves `POST`/`GET`/`DELETE /{stage}/@connections/{id}`.
//! * [`registry`] is where live connections are found ([`ConnectionRegistry`]).

pub mod access;
pub mod connection;
pub mod connections_api;
pub mod events;
pub mod integration;
pub mod registry;
pub mod selection;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::body::RequestBody;
use http::{Request, Response};
use regex::Regex;
use tokio_util::sync::CancellationToken;
use turnpike_model::v2::{
    Authorizer, IntegrationType, PassthroughBehavior, SelectionPart, WebSocketApiDefinition,
    WebSocketProjectApi,
};
use turnpike_model::{Diagnostic, Severity};
use turnpike_vtl::Template;

use crate::address;
use crate::body::Body;
use crate::deployment::{Runtime, UriTemplate};
use crate::Gateway;

pub use registry::{ConnectionInfo, ConnectionRegistry, LocalRegistry, PostError};

/// AWS's WebSocket limits; the timers are configurable (tests use short ones).
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Closed after this long without traffic (AWS: 10 minutes).
    pub idle_timeout: Duration,
    /// Closed after this long in any case (AWS: 2 hours).
    pub max_duration: Duration,
    /// Largest frame payload (AWS: 32 KB).
    pub max_frame_bytes: usize,
    /// Largest message (AWS: 128 KB); also the `PostToConnection` limit.
    pub max_message_bytes: usize,
    /// Messages of one connection being integrated at once; reading pauses beyond it.
    pub max_in_flight: usize,
    /// Messages queued for one connection before `PostToConnection` answers 429.
    pub outbound_buffer: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            idle_timeout: Duration::from_secs(600),
            max_duration: Duration::from_secs(7200),
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            max_in_flight: 16,
            outbound_buffer: 256,
        }
    }
}

/// What WebSocket connections share: settings, the registry, the shutdown signal.
pub struct Hub {
    pub settings: WsSettings,
    pub registry: Arc<dyn ConnectionRegistry>,
    /// Cancelled when the server shuts down: every connection closes with 1001.
    pub shutdown: CancellationToken,
    /// Connection tasks still running (until their `$disconnect` has run).
    pub active: std::sync::atomic::AtomicUsize,
}

impl Hub {
    /// Resolves once every connection task has finished (after [`Hub::shutdown`]).
    pub async fn drained(&self) {
        while self.active.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            settings: WsSettings::default(),
            registry: Arc::new(LocalRegistry::default()),
            shutdown: CancellationToken::new(),
            active: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("settings", &self.settings)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled APIs
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct WsApi {
    pub id: String,
    pub name: String,
    pub route_selection: Vec<SelectionPart>,
    pub api_key_selection: Option<String>,
    pub routes: HashMap<String, Arc<WsRoute>>,
    pub stages: HashMap<String, Arc<WsStage>>,
    pub model: WebSocketApiDefinition,
}

#[derive(Debug)]
pub struct WsStage {
    pub name: String,
    pub variables: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug)]
pub struct WsRoute {
    pub key: String,
    pub integration: Arc<WsIntegration>,
    /// A `$default` route response exists with `routeResponseSelectionExpression: $default`.
    pub two_way: bool,
    pub api_key_required: bool,
    pub authorizer: Option<Authorizer>,
}

#[derive(Debug)]
pub struct WsIntegration {
    pub kind: IntegrationType,
    pub uri: Option<UriTemplate>,
    pub raw_uri: Option<String>,
    pub method: http::Method,
    /// `integration.request.header.{name}` ← source.
    pub request_parameters: Vec<(String, ParamSource)>,
    pub request_templates: Vec<(String, Template)>,
    pub template_selection: Vec<SelectionPart>,
    pub passthrough: PassthroughBehavior,
    pub timeout: Duration,
    pub response_selection: Vec<SelectionPart>,
    pub responses: Vec<WsIntegrationResponse>,
}

#[derive(Debug)]
pub struct WsIntegrationResponse {
    /// `None` for `$default`.
    pub pattern: Option<Regex>,
    pub templates: Vec<(String, Template)>,
    pub template_selection: Vec<SelectionPart>,
}

/// A request-parameter mapping source for WebSocket integrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamSource {
    Header(String),
    Query(String),
    /// JSONPath into the message (`route.request.body.x`).
    Body(String),
    Context(String),
    StageVariable(String),
    Literal(String),
}

impl ParamSource {
    pub fn parse(s: &str) -> Result<ParamSource, String> {
        if let Some(l) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            return Ok(ParamSource::Literal(l.to_string()));
        }
        type Make = fn(String) -> ParamSource;
        let pairs: [(&str, Make); 7] = [
            ("route.request.header.", ParamSource::Header),
            ("route.request.multivalueheader.", ParamSource::Header),
            ("route.request.querystring.", ParamSource::Query),
            ("route.request.multivaluequerystring.", ParamSource::Query),
            ("route.request.body.", ParamSource::Body),
            ("context.", ParamSource::Context),
            ("stageVariables.", ParamSource::StageVariable),
        ];
        for (prefix, make) in pairs {
            if let Some(rest) = s.strip_prefix(prefix) {
                if !rest.is_empty() {
                    return Ok(make(rest.to_string()));
                }
            }
        }
        Err(format!("invalid mapping expression {s:?}: expected route.request.header|querystring|body.*, context.*, stageVariables.* or a 'literal'"))
    }
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Compiles one WebSocket API of the project.
pub fn compile_api(
    project_file: &std::path::Path,
    api: &WebSocketProjectApi,
) -> Result<WsApi, Vec<Diagnostic>> {
    let def = &api.definition;
    let mut errors = Vec::new();
    let mut err = |pointer: String, message: String| {
        errors.push(Diagnostic {
            severity: Severity::Error,
            file: project_file.to_path_buf(),
            line: None,
            column: None,
            pointer,
            message,
        })
    };
    let base = format!("/websocketApis/{}", def.api.name);
    let route_selection =
        match selection::parse_selection_expression(&def.api.route_selection_expression) {
            Ok(p) => p,
            Err(e) => {
                err(format!("{base}/routeSelectionExpression"), e);
                Vec::new()
            }
        };
    let mut integrations: HashMap<String, Arc<WsIntegration>> = HashMap::new();
    for i in &def.integrations {
        let p = format!("{base}/integrations/{}", i.integration_id);
        let mut request_parameters = Vec::new();
        for (k, v) in &i.request_parameters {
            let Some(name) = k.strip_prefix("integration.request.header.") else {
                err(
                    format!("{p}/requestParameters/{}", escape_pointer(k)),
                    format!(
                        "invalid mapping target {k:?}: expected integration.request.header.NAME"
                    ),
                );
                continue;
            };
            match ParamSource::parse(v) {
                Ok(s) => request_parameters.push((name.to_string(), s)),
                Err(e) => err(format!("{p}/requestParameters/{}", escape_pointer(k)), e),
            }
        }
        let mut request_templates = Vec::new();
        for (k, src) in &i.request_templates {
            match Template::compile(src) {
                Ok(t) => request_templates.push((k.clone(), t)),
                Err(e) => err(
                    format!("{p}/requestTemplates/{}", escape_pointer(k)),
                    format!("invalid mapping template: {e}"),
                ),
            }
        }
        let template_selection = match selection::parse_selection_expression(
            i.template_selection_expression
                .as_deref()
                .unwrap_or("\\$default"),
        ) {
            Ok(s) => s,
            Err(e) => {
                err(format!("{p}/templateSelectionExpression"), e);
                Vec::new()
            }
        };
        let response_selection = match selection::parse_selection_expression(
            i.integration_response_selection_expression
                .as_deref()
                .unwrap_or("${integration.response.statuscode}"),
        ) {
            Ok(s) => s,
            Err(e) => {
                err(format!("{p}/integrationResponseSelectionExpression"), e);
                Vec::new()
            }
        };
        let mut responses = Vec::new();
        for r in def
            .integration_responses
            .get(&i.integration_id)
            .into_iter()
            .flatten()
        {
            let rp = format!(
                "{p}/integrationResponses/{}",
                escape_pointer(&r.integration_response_key)
            );
            let pattern = if r.integration_response_key == "$default" {
                None
            } else {
                let k = &r.integration_response_key;
                let inner = k
                    .strip_prefix('/')
                    .and_then(|x| x.strip_suffix('/'))
                    .unwrap_or(k);
                match Regex::new(&format!("^(?:{inner})$")) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        err(
                            rp.clone(),
                            format!("invalid integration response key {k:?}: {e}"),
                        );
                        continue;
                    }
                }
            };
            let mut templates = Vec::new();
            for (k, src) in &r.response_templates {
                match Template::compile(src) {
                    Ok(t) => templates.push((k.clone(), t)),
                    Err(e) => err(
                        format!("{rp}/responseTemplates/{}", escape_pointer(k)),
                        format!("invalid mapping template: {e}"),
                    ),
                }
            }
            let template_selection = match selection::parse_selection_expression(
                r.template_selection_expression
                    .as_deref()
                    .unwrap_or("\\$default"),
            ) {
                Ok(s) => s,
                Err(e) => {
                    err(format!("{rp}/templateSelectionExpression"), e);
                    Vec::new()
                }
            };
            responses.push(WsIntegrationResponse {
                pattern,
                templates,
                template_selection,
            });
        }
        let method = match i.integration_method.as_deref() {
            None => http::Method::POST,
            Some(m) => match http::Method::from_bytes(m.as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    err(
                        format!("{p}/integrationMethod"),
                        format!("invalid HTTP method {m:?}"),
                    );
                    http::Method::POST
                }
            },
        };
        integrations.insert(
            i.integration_id.clone(),
            Arc::new(WsIntegration {
                kind: i.integration_type,
                uri: i.integration_uri.as_deref().map(UriTemplate::parse),
                raw_uri: i.integration_uri.clone(),
                method,
                request_parameters,
                request_templates,
                template_selection,
                passthrough: i.passthrough_behavior,
                timeout: Duration::from_millis(u64::from(i.timeout_in_millis.clamp(50, 29_000))),
                response_selection,
                responses,
            }),
        );
    }
    let mut routes = HashMap::new();
    for r in &def.routes {
        let Some(integration) = r
            .target
            .as_deref()
            .and_then(|t| t.strip_prefix("integrations/"))
            .and_then(|id| integrations.get(id))
        else {
            err(
                format!("{base}/routes/{}", escape_pointer(&r.route_key)),
                "route has no integration".into(),
            );
            continue;
        };
        let two_way = r.route_response_selection_expression.as_deref() == Some("$default")
            && def
                .route_responses
                .get(&r.route_id)
                .is_some_and(|v| v.iter().any(|rr| rr.route_response_key == "$default"));
        routes.insert(
            r.route_key.clone(),
            Arc::new(WsRoute {
                key: r.route_key.clone(),
                integration: integration.clone(),
                two_way,
                api_key_required: r.api_key_required,
                authorizer: r
                    .authorizer_id
                    .as_deref()
                    .and_then(|id| def.authorizer(id))
                    .cloned(),
            }),
        );
    }
    let stages = api
        .stages
        .iter()
        .map(|s| {
            (
                s.stage_name.clone(),
                Arc::new(WsStage {
                    name: s.stage_name.clone(),
                    variables: s
                        .stage_variables
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                }),
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(WsApi {
        id: def.api.api_id.clone(),
        name: def.api.name.clone(),
        route_selection,
        api_key_selection: def.api.api_key_selection_expression.clone(),
        routes,
        stages,
        model: def.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Entry
// ---------------------------------------------------------------------------------------------

/// Whether the listener hands a request to the WebSocket side.
pub enum Intercepted {
    Handled(Response<Body>),
    Pass(Request<RequestBody>),
}

pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: http::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(http::header::UPGRADE, "websocket")
}

/// `/@connections/{id}` or `/%40connections/{id}` after the stage: the raw connection id.
fn connections_path(rest: &str) -> Option<&str> {
    const ENCODED: &str = "/%40connections/";
    if let Some(id) = rest.strip_prefix("/@connections/") {
        return Some(id);
    }
    match rest.get(..ENCODED.len()) {
        Some(p) if p.eq_ignore_ascii_case(ENCODED) => rest.get(ENCODED.len()..),
        _ => None,
    }
}

/// Serves the request if it is for a WebSocket API (upgrade or `@connections`).
pub async fn intercept(
    gw: &Gateway,
    runtime: &Arc<Runtime>,
    req: Request<RequestBody>,
    peer: SocketAddr,
) -> Intercepted {
    if runtime.websocket_apis.is_empty() {
        return Intercepted::Pass(req);
    }
    let host = crate::pipeline::route::host_of(&req).map(str::to_string);
    let path = req.uri().path().to_string();
    let target = address::resolve(host.as_deref(), &path, || {
        crate::pipeline::route::api_id_header(req.headers())
    });
    let api = match &target.api_id {
        Some(id) => match runtime.websocket_apis.iter().find(|a| &a.id == id) {
            Some(a) => Some(a.clone()),
            None => return Intercepted::Pass(req),
        },
        None => None,
    };
    if let Some(raw_id) = connections_path(target.path) {
        let stage = target.stage.to_string();
        let raw_id = raw_id.to_string();
        return Intercepted::Handled(
            connections_api::handle(gw, runtime, api.as_deref(), &stage, &raw_id, req).await,
        );
    }
    let api = match api {
        Some(a) => a,
        None => {
            if !is_upgrade(&req) {
                return Intercepted::Pass(req);
            }
            let by_stage = runtime
                .websocket_apis
                .iter()
                .find(|a| a.stages.contains_key(target.stage));
            match by_stage.or_else(|| runtime.websocket_apis.first()) {
                Some(a) => a.clone(),
                None => return Intercepted::Pass(req),
            }
        }
    };
    let stage = target.stage.to_string();
    Intercepted::Handled(connection::upgrade(gw, runtime, api, &stage, req, peer).await)
}
