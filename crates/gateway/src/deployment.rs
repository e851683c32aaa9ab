//! Deployments: a project compiled into an immutable runtime snapshot (routers, templates,
//! regexes, mapping expressions). Everything that can be decided before a request arrives is
//! decided here, once; the pipeline only reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use turnpike_model::rest::{
    ContentHandling, GatewayResponseType, IntegrationType, Method, PassthroughBehavior,
    RestApiDefinition, Stage,
};
use turnpike_model::{Diagnostic, Project, ProjectApi, Severity};
use turnpike_vtl::Template;

use crate::access_log::AccessLog;
use crate::gateway_response::GatewayResponses;
use crate::mapping::{self, RequestTarget, Source};
use crate::router::Router;

/// The whole served configuration. Swapped atomically on reload; requests hold an `Arc` to the
/// snapshot they started with.
#[derive(Debug, Default)]
pub struct Runtime {
    pub apis: Vec<Arc<Api>>,
    pub region: String,
    /// Shared, not copied, by every request's `$context` (as are the ids below).
    pub account_id: Arc<str>,
    /// WebSocket APIs (apigatewayv2), addressed like REST APIs.
    pub websocket_apis: Vec<Arc<crate::websocket::WsApi>>,
    /// Account throttle, usage plans, IAM access keys.
    pub access: Arc<crate::access::AccessRuntime>,
}

impl Runtime {
    /// The API for `id`, or the default API (the first) when the request names none.
    pub fn api(&self, id: Option<&str>) -> Option<&Arc<Api>> {
        match id {
            Some(id) => self.apis.iter().find(|a| &*a.id == id),
            None => self.apis.first(),
        }
    }
}

#[derive(Debug)]
pub struct Api {
    pub id: Arc<str>,
    pub name: String,
    pub deployment_id: Arc<str>,
    pub router: Router,
    pub resources: Vec<Resource>,
    /// foldhash, not std's SipHash: looked up on every request, and the keys are the
    /// definition's, not a client's.
    pub stages: HashMap<String, Arc<StageRuntime>, foldhash::fast::RandomState>,
    pub gateway_responses: GatewayResponses,
    pub binary_media_types: Vec<String>,
    pub api_key_source: turnpike_model::rest::ApiKeySource,
    /// The resource policy (`x-amazon-apigateway-policy`).
    pub policy: Option<Arc<crate::pipeline::resource_policy::Policy>>,
    /// Authorizers by id.
    pub authorizers: HashMap<String, Arc<crate::pipeline::authorizer::AuthorizerRuntime>>,
    /// Header values built once per deployment instead of per request.
    pub headers: ApiHeaders,
}

/// Per-API header values the integrations send.
#[derive(Debug)]
pub struct ApiHeaders {
    /// `x-amzn-apigateway-api-id`.
    pub api_id: http::HeaderValue,
    /// The `User-Agent` AWS sends when the client sent none: `AmazonAPIGateway_{api-id}`.
    pub user_agent: http::HeaderValue,
}

impl ApiHeaders {
    fn new(api_id: &str) -> Self {
        ApiHeaders {
            api_id: http::HeaderValue::from_str(api_id)
                .unwrap_or(http::HeaderValue::from_static("")),
            user_agent: http::HeaderValue::from_str(&format!("AmazonAPIGateway_{api_id}"))
                .unwrap_or(http::HeaderValue::from_static("AmazonAPIGateway")),
        }
    }
}

#[derive(Debug)]
pub struct Resource {
    pub id: String,
    pub path: String,
    /// Declared methods; `ANY` is kept separately so an explicit method wins.
    pub methods: Vec<(String, Arc<MethodRuntime>)>,
    pub any: Option<Arc<MethodRuntime>>,
}

impl Resource {
    pub fn method(&self, method: &str) -> Option<&Arc<MethodRuntime>> {
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, r)| r)
            .or(self.any.as_ref())
    }
}

#[derive(Debug)]
pub struct MethodRuntime {
    /// Position among the API's methods; indexes per-stage tables such as
    /// [`StageRuntime::method_throttle`].
    pub index: usize,
    pub http_method: String,
    pub resource_id: Arc<str>,
    pub resource_path: Arc<str>,
    /// `{resourcePath}/{METHOD}`: the key of stage method settings and usage-plan throttles.
    pub setting_key: String,
    pub model: Method,
    pub integration: IntegrationRuntime,
}

#[derive(Debug)]
pub struct IntegrationRuntime {
    pub kind: IntegrationType,
    /// `None` means "the client's method" (`ANY` on HTTP_PROXY).
    pub http_method: Option<http::Method>,
    pub uri: Option<UriTemplate>,
    /// The Lambda function of an `AWS`/`AWS_PROXY` Lambda URI without stage variables,
    /// worked out here once; URIs with `${stageVariables.x}` are resolved per request.
    pub lambda_function: Option<String>,
    pub request_parameters: Vec<(RequestTarget, String, Source)>,
    /// Every request parameter maps a method path parameter into the path (the `{proxy+}`
    /// shape, or none at all): HTTP_PROXY then looks them up in place, with no mapping step.
    pub maps_path_only: bool,
    pub request_templates: Vec<MappingTemplate>,
    pub passthrough: PassthroughBehavior,
    pub content_handling: Option<ContentHandling>,
    pub timeout: Duration,
    pub responses: Vec<IntegrationResponseRuntime>,
}

impl IntegrationRuntime {
    /// The method path parameter that path variable `name` is mapped from; `None` when
    /// nothing maps `name`, or maps it from another source. With `maps_path_only`, this is
    /// the whole mapping step for the path.
    pub fn direct_path_source(&self, name: &str) -> Option<&str> {
        self.request_parameters
            .iter()
            .find(|(_, n, _)| n == name)
            .and_then(|(_, _, src)| match src {
                Source::MethodPath(from) => Some(from.as_str()),
                _ => None,
            })
    }
}

/// Whether every request parameter maps a method path parameter into the path.
fn maps_path_only(params: &[(RequestTarget, String, Source)]) -> bool {
    params
        .iter()
        .all(|(t, _, src)| *t == RequestTarget::Path && matches!(src, Source::MethodPath(_)))
}

/// The value of `name` in name/value pairs, the first of that name.
pub fn lookup<'p>(pairs: &'p [(String, String)]) -> impl Fn(&str) -> Option<&'p str> {
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct IntegrationResponseRuntime {
    pub status: u16,
    /// The method declares a response for `status`: AWS answers 500 for one it does not
    /// (unless a template overrides the status).
    pub has_method_response: bool,
    /// Anchored (whole-value) pattern; `None` for the default response.
    pub pattern: Option<Regex>,
    pub response_parameters: Vec<(String, Source)>,
    pub templates: Vec<MappingTemplate>,
    pub content_handling: Option<ContentHandling>,
}

/// A compiled mapping template and the content type it is declared for.
#[derive(Debug)]
pub struct MappingTemplate {
    /// Lower-cased media type.
    pub content_type: String,
    pub template: Template,
    /// The template text is empty: on the response side AWS then passes the body through.
    pub is_empty: bool,
}

#[derive(Debug)]
pub struct StageRuntime {
    pub name: Arc<str>,
    pub variables: serde_json::Map<String, serde_json::Value>,
    pub access_log: Option<Arc<AccessLog>>,
    pub model: Stage,
    /// Per method (by [`MethodRuntime::index`]): the stage's throttle for it, resolved from
    /// `methodSettings` at deploy time so requests only look it up.
    pub method_throttle: Vec<Option<MethodThrottle>>,
}

/// A stage/method throttle; unset values fall back to the account limit at request time.
#[derive(Debug, Clone)]
pub struct MethodThrottle {
    /// The limiter bucket: `method:{api}/{stage}{resourcePath}/{METHOD}`.
    pub bucket: String,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
}

/// An integration URI with `{var}` path placeholders and `${stageVariables.x}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    pub parts: Vec<UriPart>,
    /// The scheme and authority when they are literal text with a valid http(s) host, checked
    /// and parsed once here instead of on every rendered URI.
    pub static_origin: Option<StaticOrigin>,
    /// Bytes of literal text: the starting capacity of a rendered URI.
    literal_len: usize,
}

/// The literal `scheme://authority` an integration URI starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticOrigin {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// `Host` of plain-HTTP requests to this origin: the authority's text.
    pub host: http::HeaderValue,
    /// Length of `scheme://authority` at the start of a rendered URI.
    pub len: usize,
}

impl StaticOrigin {
    fn parse(origin: &str) -> Option<StaticOrigin> {
        let u = origin.parse::<http::Uri>().ok()?;
        let scheme = u.scheme()?.clone();
        if !matches!(scheme.as_str(), "http" | "https") {
            return None;
        }
        let authority = u.authority()?.clone();
        if authority.host().is_empty() {
            return None;
        }
        let host = http::HeaderValue::from_str(authority.as_str()).ok()?;
        Some(StaticOrigin {
            scheme,
            authority,
            host,
            len: origin.len(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriPart {
    Literal(String),
    PathVar(String),
    StageVar(String),
}

impl UriTemplate {
    pub fn parse(uri: &str) -> UriTemplate {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = uri;
        while let Some(i) = rest.find(['{', '$']) {
            let (before, at) = rest.split_at(i);
            lit.push_str(before);
            if let Some(after) = at.strip_prefix("${stageVariables.") {
                if let Some(end) = after.find('}') {
                    if !lit.is_empty() {
                        parts.push(UriPart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(UriPart::StageVar(after[..end].to_string()));
                    rest = &after[end + 1..];
                    continue;
                }
            } else if let Some(after) = at.strip_prefix('{') {
                if let Some(end) = after.find('}') {
                    let name = &after[..end];
                    if !name.is_empty() && !name.contains(['{', '/']) {
                        if !lit.is_empty() {
                            parts.push(UriPart::Literal(std::mem::take(&mut lit)));
                        }
                        parts.push(UriPart::PathVar(name.trim_end_matches('+').to_string()));
                        rest = &after[end + 1..];
                        continue;
                    }
                }
            }
            lit.push_str(&at[..1]);
            rest = &at[1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(UriPart::Literal(lit));
        }
        let static_origin = match parts.first() {
            Some(UriPart::Literal(s)) => s
                .find("://")
                .and_then(|i| s[i + 3..].find('/').map(|j| &s[..i + 3 + j]))
                .and_then(StaticOrigin::parse),
            _ => None,
        };
        let literal_len = parts
            .iter()
            .map(|p| match p {
                UriPart::Literal(s) => s.len(),
                _ => 0,
            })
            .sum();
        UriTemplate {
            parts,
            static_origin,
            literal_len,
        }
    }

    /// Fills the template. Path variables come only from `integration.request.path.*` mappings
    /// (AWS); unmapped placeholders and undefined stage variables become empty.
    /// The URI itself when it has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [UriPart::Literal(s)] => Some(s),
            _ => None,
        }
    }

    pub fn render(
        &self,
        path_vars: &[(String, String)],
        stage_vars: &serde_json::Map<String, serde_json::Value>,
    ) -> String {
        self.render_with(lookup(path_vars), stage_vars)
    }

    /// [`UriTemplate::render`] with the path variables looked up by `path_var` (`None`: the
    /// variable renders empty).
    pub fn render_with<'v>(
        &self,
        path_var: impl Fn(&str) -> Option<&'v str>,
        stage_vars: &serde_json::Map<String, serde_json::Value>,
    ) -> String {
        let mut out = String::with_capacity(self.literal_len + 64);
        for p in &self.parts {
            match p {
                UriPart::Literal(s) => out.push_str(s),
                UriPart::PathVar(n) => {
                    if let Some(v) = path_var(n) {
                        out.push_str(v);
                    }
                }
                UriPart::StageVar(n) => {
                    if let Some(serde_json::Value::String(v)) = stage_vars.get(n) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

/// Compiles a loaded project. Returns every error found; warnings go to `warnings`.
pub fn compile(
    project: &Project,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Runtime, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut apis = Vec::new();
    for api in &project.apis {
        match compile_api(api, warnings, project) {
            Ok(a) => apis.push(Arc::new(a)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let mut websocket_apis = Vec::new();
    for api in &project.websocket_apis {
        match crate::websocket::compile_api(&project.source, api) {
            Ok(a) => websocket_apis.push(Arc::new(a)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(Runtime {
            apis,
            websocket_apis,
            region: project.region.clone(),
            account_id: project.account_id.as_str().into(),
            access: Arc::new(crate::access::AccessRuntime::from_project(project)),
        })
    } else {
        Err(errors)
    }
}

struct Diag<'a> {
    api: &'a ProjectApi,
    errors: Vec<Diagnostic>,
}

impl Diag<'_> {
    /// Records an error located (file, line, column) through the definition's source map.
    fn error(&mut self, pointer: String, message: String) {
        self.errors
            .push(self.api.diagnostic(Severity::Error, &pointer, message));
    }
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn method_pointer(resource_path: &str, method: &str) -> String {
    let op = if method == "ANY" {
        "x-amazon-apigateway-any-method".to_string()
    } else {
        method.to_ascii_lowercase()
    };
    format!("/paths/{}/{}", escape_pointer(resource_path), op)
}

/// A deployment id: 6 characters `[a-z0-9]`, like AWS's.
pub fn new_deployment_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn compile_api(
    api: &ProjectApi,
    _warnings: &mut Vec<Diagnostic>,
    project: &Project,
) -> Result<Api, Vec<Diagnostic>> {
    let def: &RestApiDefinition = &api.definition;
    let mut d = Diag {
        api,
        errors: Vec::new(),
    };
    let mut router = Router::default();
    let mut resources = Vec::new();
    let mut all_methods: Vec<Arc<MethodRuntime>> = Vec::new();
    for res in &def.resources {
        let mut methods = Vec::new();
        let mut any = None;
        for (name, m) in &res.resource_methods {
            let pointer = method_pointer(&res.path, name);
            let Some(integration) = &m.method_integration else {
                d.error(pointer, "No integration defined for method".into());
                continue;
            };
            let integration =
                compile_integration(integration, &m.method_responses, &pointer, &mut d);
            let rt = Arc::new(MethodRuntime {
                index: all_methods.len(),
                http_method: name.clone(),
                resource_id: res.id.as_str().into(),
                resource_path: res.path.as_str().into(),
                setting_key: turnpike_model::rest::method_setting_key(&res.path, name),
                model: m.clone(),
                integration,
            });
            all_methods.push(rt.clone());
            if name == "ANY" {
                any = Some(rt);
            } else {
                methods.push((name.clone(), rt));
            }
        }
        if let Err(e) = router.insert(&res.path, resources.len()) {
            d.error(
                format!("/paths/{}", escape_pointer(&res.path)),
                e.to_string(),
            );
        }
        resources.push(Resource {
            id: res.id.clone(),
            path: res.path.clone(),
            methods,
            any,
        });
    }
    let gateway_responses = GatewayResponses::compile(
        &def.gateway_responses,
        &mut |ty: GatewayResponseType, msg| {
            d.error(
                format!("/x-amazon-apigateway-gateway-responses/{}", ty.as_str()),
                msg,
            )
        },
    );
    let mut stages = HashMap::default();
    for stage in &api.stages {
        let access_log = match &stage.access_log_settings {
            Some(s) => match AccessLog::new(&s.format, s.destination_arn.as_deref()) {
                Ok(l) => Some(Arc::new(l)),
                Err(e) => {
                    d.error(
                        format!("/stages/{}/accessLogSettings", stage.stage_name),
                        e.to_string(),
                    );
                    None
                }
            },
            None => None,
        };
        let variables = stage
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        stages.insert(
            stage.stage_name.clone(),
            Arc::new(StageRuntime {
                name: stage.stage_name.as_str().into(),
                variables,
                access_log,
                model: stage.clone(),
                method_throttle: all_methods
                    .iter()
                    .map(|m| {
                        let s = stage.effective_method_setting(&m.resource_path, &m.http_method);
                        (s.throttling_rate_limit.is_some() || s.throttling_burst_limit.is_some())
                            .then(|| MethodThrottle {
                                bucket: format!(
                                    "method:{}/{}{}",
                                    def.api.id, stage.stage_name, m.setting_key
                                ),
                                rate: s.throttling_rate_limit,
                                burst: s.throttling_burst_limit,
                            })
                    })
                    .collect(),
            }),
        );
    }
    let (policy, authorizers) = compile_access(def, project, &mut d);
    if !d.errors.is_empty() {
        return Err(d.errors);
    }
    Ok(Api {
        id: def.api.id.as_str().into(),
        name: def.api.name.clone(),
        deployment_id: new_deployment_id().into(),
        router,
        resources,
        stages,
        gateway_responses,
        binary_media_types: def.api.binary_media_types.clone(),
        api_key_source: def.api.api_key_source,
        policy,
        authorizers,
        headers: ApiHeaders::new(&def.api.id),
    })
}

type CompiledAccess = (
    Option<Arc<crate::pipeline::resource_policy::Policy>>,
    HashMap<String, Arc<crate::pipeline::authorizer::AuthorizerRuntime>>,
);

/// The resource policy and the authorizers of an API.
fn compile_access(def: &RestApiDefinition, project: &Project, d: &mut Diag<'_>) -> CompiledAccess {
    let policy = match &def.api.policy {
        Some(doc) => match crate::pipeline::resource_policy::Policy::parse(doc) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                d.error(
                    "/x-amazon-apigateway-policy".into(),
                    format!("resource policy: {e}"),
                );
                None
            }
        },
        None => None,
    };
    let mut authorizers = HashMap::new();
    for a in &def.authorizers {
        match crate::pipeline::authorizer::compile(a, &project.access, &project.region) {
            Ok(rt) => {
                authorizers.insert(a.id.clone(), Arc::new(rt));
            }
            Err(e) => d.error(d.api.authorizer_pointer(&a.name), e),
        }
    }
    (policy, authorizers)
}

fn compile_templates(
    list: &[(String, String)],
    pointer: &str,
    d: &mut Diag<'_>,
) -> Vec<MappingTemplate> {
    let mut out = Vec::new();
    for (ct, src) in list {
        let p = format!("{pointer}/{}", escape_pointer(ct));
        match Template::compile(src) {
            Ok(template) => out.push(MappingTemplate {
                content_type: ct.to_ascii_lowercase(),
                template,
                is_empty: src.trim().is_empty(),
            }),
            Err(e) => d.error(p, format!("invalid mapping template: {e}")),
        }
    }
    out
}

fn compile_integration(
    i: &turnpike_model::rest::Integration,
    method_responses: &std::collections::BTreeMap<String, turnpike_model::rest::MethodResponse>,
    pointer: &str,
    d: &mut Diag<'_>,
) -> IntegrationRuntime {
    let ip = format!("{pointer}/x-amazon-apigateway-integration");
    let http_method = match i.http_method.as_deref() {
        None | Some("ANY") => None,
        Some(m) => match http::Method::from_bytes(m.as_bytes()) {
            Ok(m) => Some(m),
            Err(_) => {
                d.error(
                    format!("{ip}/httpMethod"),
                    format!("invalid HTTP method {m:?}"),
                );
                None
            }
        },
    };
    let mut request_parameters = Vec::new();
    for (k, v) in &i.request_parameters {
        let p = format!("{ip}/requestParameters/{}", escape_pointer(k));
        match (mapping::parse_request_target(k), mapping::parse_source(v)) {
            (Ok((t, name)), Ok(src)) => request_parameters.push((t, name, src)),
            (Err(e), _) | (_, Err(e)) => d.error(p, e.to_string()),
        }
    }
    let request_templates =
        compile_templates(&i.request_templates, &format!("{ip}/requestTemplates"), d);
    let mut responses = Vec::new();
    for r in &i.integration_responses {
        let rp = format!(
            "{ip}/responses/{}",
            escape_pointer(r.selection_pattern.as_deref().unwrap_or("default"))
        );
        let status = match r.status_code.parse::<u16>() {
            Ok(s) if (100..=599).contains(&s) => s,
            _ => {
                d.error(
                    format!("{rp}/statusCode"),
                    format!("invalid status code {:?}", r.status_code),
                );
                continue;
            }
        };
        let pattern = match r.selection_pattern.as_deref().filter(|p| !p.is_empty()) {
            // Java's Pattern.matches semantics: the whole value must match; `.` excludes newlines
            // as in Java by default.
            Some(p) => match Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => Some(re),
                Err(e) => {
                    d.error(rp.clone(), format!("invalid selectionPattern {p:?}: {e}"));
                    continue;
                }
            },
            None => None,
        };
        let mut response_parameters = Vec::new();
        for (k, v) in &r.response_parameters {
            let Some(name) = k.strip_prefix("method.response.header.") else {
                d.error(
                    format!("{rp}/responseParameters/{}", escape_pointer(k)),
                    format!("Invalid mapping expression specified: {k}"),
                );
                continue;
            };
            match mapping::parse_source(v) {
                Ok(src) => response_parameters.push((name.to_string(), src)),
                Err(e) => d.error(
                    format!("{rp}/responseParameters/{}", escape_pointer(k)),
                    e.to_string(),
                ),
            }
        }
        let templates =
            compile_templates(&r.response_templates, &format!("{rp}/responseTemplates"), d);
        responses.push(IntegrationResponseRuntime {
            status,
            // A method without method responses is taken as declaring every status (the
            // importer warns about the undeclared ones).
            has_method_response: method_responses.is_empty()
                || method_responses.contains_key(&status.to_string()),
            pattern,
            response_parameters,
            templates,
            content_handling: r.content_handling,
        });
    }
    let uri = i.uri.as_deref().map(UriTemplate::parse);
    let lambda_function = uri
        .as_ref()
        .and_then(UriTemplate::as_literal)
        .and_then(crate::pipeline::integration::lambda::function_from_uri);
    IntegrationRuntime {
        kind: i.kind,
        http_method,
        uri,
        lambda_function,
        maps_path_only: maps_path_only(&request_parameters),
        request_parameters,
        request_templates,
        passthrough: i.passthrough_behavior,
        content_handling: i.content_handling,
        timeout: Duration::from_millis(i.timeout_in_millis.clamp(
            turnpike_model::rest::MIN_TIMEOUT_MILLIS,
            turnpike_model::rest::RAISED_TIMEOUT_MILLIS,
        )),
        responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_template() {
        let t = UriTemplate::parse("http://${stageVariables.host}/pets/{id}?x={q}&y=$z");
        let vars = vec![
            ("id".to_string(), "7".to_string()),
            ("q".to_string(), "a".to_string()),
        ];
        let mut sv = serde_json::Map::new();
        sv.insert("host".into(), "example.com:81".into());
        assert_eq!(
            t.render(&vars, &sv),
            "http://example.com:81/pets/7?x=a&y=$z"
        );
        let t = UriTemplate::parse("http://h/{proxy}");
        assert_eq!(
            t.render(&[("proxy".into(), "a/b".into())], &sv),
            "http://h/a/b"
        );
        assert_eq!(t.render(&[], &serde_json::Map::new()), "http://h/");
        // The origin is checked once when it is literal; otherwise per rendered URI.
        assert_eq!(
            t.static_origin
                .as_ref()
                .map(|o| (o.authority.as_str(), o.len)),
            Some(("h", 8))
        );
        let o = UriTemplate::parse("https://h:8443/x").static_origin;
        assert_eq!(
            o.map(|o| (o.scheme.as_str().to_string(), o.host, o.len)),
            Some((
                "https".to_string(),
                http::HeaderValue::from_static("h:8443"),
                14
            ))
        );
        assert!(UriTemplate::parse("http://${stageVariables.host}/pets")
            .static_origin
            .is_none());
        assert!(UriTemplate::parse("http://h{x}/pets")
            .static_origin
            .is_none());
        assert!(UriTemplate::parse("http://h").static_origin.is_none());
        assert!(UriTemplate::parse("http://:80/x").static_origin.is_none());
        assert!(UriTemplate::parse("ftp://h/x").static_origin.is_none());
    }

    /// Path-only mappings are looked up in place by the HTTP_PROXY path: the lookup must
    /// name the same method parameter the mapping step would copy.
    #[test]
    fn direct_path_sources() {
        use crate::mapping::{parse_request_target, parse_source};
        let integration = |params: &[(&str, &str)]| {
            let request_parameters: Vec<_> = params
                .iter()
                .map(|(k, v)| {
                    let (t, name) = parse_request_target(k).expect("target");
                    (t, name, parse_source(v).expect("source"))
                })
                .collect();
            IntegrationRuntime {
                kind: IntegrationType::HttpProxy,
                http_method: None,
                uri: None,
                lambda_function: None,
                maps_path_only: maps_path_only(&request_parameters),
                request_parameters,
                request_templates: Vec::new(),
                passthrough: PassthroughBehavior::WhenNoMatch,
                content_handling: None,
                timeout: Duration::from_secs(29),
                responses: Vec::new(),
            }
        };
        let renamed = integration(&[
            ("integration.request.path.p", "method.request.path.proxy"),
            ("integration.request.path.id", "method.request.path.id"),
        ]);
        assert!(renamed.maps_path_only);
        assert_eq!(renamed.direct_path_source("p"), Some("proxy"));
        assert_eq!(renamed.direct_path_source("id"), Some("id"));
        assert_eq!(renamed.direct_path_source("proxy"), None, "not mapped");
        assert!(integration(&[]).maps_path_only);
        for other in [
            ("integration.request.path.p", "'literal'"),
            ("integration.request.path.p", "method.request.querystring.q"),
            (
                "integration.request.querystring.q",
                "method.request.path.proxy",
            ),
            ("integration.request.header.h", "method.request.path.proxy"),
        ] {
            assert!(!integration(&[other]).maps_path_only, "{other:?}");
        }
    }
}
