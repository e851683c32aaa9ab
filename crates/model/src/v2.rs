//! API Gateway v2 (`apigatewayv2`) resources for WebSocket APIs: [`Api`] with
//! `protocolType: WEBSOCKET`, [`Route`], [`RouteResponse`], [`Integration`],
//! [`IntegrationResponse`], [`Authorizer`] and [`Stage`]. The serde form is AWS's apigatewayv2
//! JSON (camelCase); ids are generated like AWS's (short base-36 strings).
//!
//! The project file's `websocketApis:` section is loaded here ([`load_section`]); see
//! `PROJECT_FILE.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diagnostics::Severity;
use crate::load::LoadOptions;
use crate::source::join;
use crate::walk::{did_you_mean, Ctx};
use crate::{ids, validate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProtocolType {
    #[default]
    Websocket,
    Http,
}

/// `Api` (apigatewayv2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Api {
    pub api_id: String,
    pub name: String,
    pub protocol_type: ProtocolType,
    pub route_selection_expression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_selection_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationType {
    #[default]
    None,
    AwsIam,
    Custom,
}

/// `Route` (apigatewayv2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub route_id: String,
    pub route_key: String,
    /// `integrations/{integrationId}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub api_key_required: bool,
    pub authorization_type: AuthorizationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_response_selection_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_selection_expression: Option<String>,
}

/// `RouteResponse` (apigatewayv2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteResponse {
    pub route_response_id: String,
    pub route_response_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_selection_expression: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntegrationType {
    Aws,
    AwsProxy,
    Http,
    HttpProxy,
    #[default]
    Mock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    #[default]
    WhenNoMatch,
    WhenNoTemplates,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentHandlingStrategy {
    ConvertToBinary,
    ConvertToText,
}

/// `Integration` (apigatewayv2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub integration_id: String,
    pub integration_type: IntegrationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_method: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub request_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub request_templates: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_selection_expression: Option<String>,
    pub passthrough_behavior: PassthroughBehavior,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_handling_strategy: Option<ContentHandlingStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_response_selection_expression: Option<String>,
    pub timeout_in_millis: u32,
}

/// `IntegrationResponse` (apigatewayv2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponse {
    pub integration_response_id: String,
    /// `$default` or a regular expression written `/2\d\d/`.
    pub integration_response_key: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub response_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub response_templates: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_selection_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_handling_strategy: Option<ContentHandlingStrategy>,
}

/// `Authorizer` (apigatewayv2): a Lambda `REQUEST` authorizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Authorizer {
    pub authorizer_id: String,
    pub name: String,
    /// `REQUEST`.
    pub authorizer_type: String,
    pub authorizer_uri: String,
    pub identity_source: Vec<String>,
}

/// `Stage` (apigatewayv2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub stage_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_variables: BTreeMap<String, String>,
}

/// A whole WebSocket API: the API and its sub-resources, as `get-api`, `get-routes`,
/// `get-route-responses`, `get-integrations`, `get-integration-responses` return them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketApiDefinition {
    pub api: Api,
    pub routes: Vec<Route>,
    /// Route id → its route responses.
    pub route_responses: BTreeMap<String, Vec<RouteResponse>>,
    pub integrations: Vec<Integration>,
    /// Integration id → its integration responses.
    pub integration_responses: BTreeMap<String, Vec<IntegrationResponse>>,
    pub authorizers: Vec<Authorizer>,
}

impl WebSocketApiDefinition {
    pub fn integration(&self, id: &str) -> Option<&Integration> {
        self.integrations.iter().find(|i| i.integration_id == id)
    }

    /// The integration a route targets (`integrations/{id}`).
    pub fn route_integration(&self, route: &Route) -> Option<&Integration> {
        let id = route.target.as_deref()?.strip_prefix("integrations/")?;
        self.integration(id)
    }

    pub fn authorizer(&self, id: &str) -> Option<&Authorizer> {
        self.authorizers.iter().find(|a| a.authorizer_id == id)
    }
}

/// A WebSocket API from the project file, with its stages.
#[derive(Debug, Clone)]
pub struct WebSocketProjectApi {
    pub definition: WebSocketApiDefinition,
    pub stages: Vec<Stage>,
}

/// WebSocket API id: 10 base-36 characters from the API name.
pub fn websocket_api_id(name: &str) -> String {
    ids::id_from(&["websocketapi", name], 10)
}

fn sub_id(api: &str, kind: &str, name: &str) -> String {
    ids::id_from(&[api, kind, name], 7)
}

// ---------------------------------------------------------------------------------------------
// The project file's `websocketApis:` section
// ---------------------------------------------------------------------------------------------

const API_KEYS: &[&str] = &[
    "name",
    "id",
    "description",
    "routeSelectionExpression",
    "apiKeySelectionExpression",
    "routes",
    "integrations",
    "authorizers",
    "stages",
];
const ROUTE_KEYS: &[&str] = &[
    "integration",
    "apiKeyRequired",
    "authorizationType",
    "authorizer",
    "routeResponseSelectionExpression",
    "routeResponses",
    "modelSelectionExpression",
];
const INTEGRATION_KEYS: &[&str] = &[
    "integrationType",
    "integrationUri",
    "integrationMethod",
    "requestParameters",
    "requestTemplates",
    "templateSelectionExpression",
    "passthroughBehavior",
    "contentHandlingStrategy",
    "integrationResponseSelectionExpression",
    "timeoutInMillis",
    "integrationResponses",
];
const INTEGRATION_RESPONSE_KEYS: &[&str] = &[
    "responseParameters",
    "responseTemplates",
    "templateSelectionExpression",
    "contentHandlingStrategy",
];
const AUTHORIZER_KEYS: &[&str] = &["authorizerType", "authorizerUri", "identitySource"];
const STAGE_KEYS: &[&str] = &["name", "description", "variables"];

fn unknown(cx: &mut Ctx<'_>, ptr: &str, key: &str, what: &str, known: &[&str]) {
    let hint = did_you_mean(key, known);
    cx.error(
        ptr,
        format!(
            "unknown {what} key {key:?}{hint}; expected one of {}",
            known.join(", ")
        ),
    );
}

fn enum_value<T: serde::de::DeserializeOwned>(
    cx: &mut Ctx<'_>,
    v: &Value,
    ptr: &str,
    allowed: &str,
) -> Option<T> {
    let s = cx.str(v, ptr)?;
    match serde_json::from_value(Value::String(s.to_ascii_uppercase())) {
        Ok(t) => Some(t),
        Err(_) => {
            cx.error(
                ptr,
                format!("invalid value {s:?}; expected one of {allowed}"),
            );
            None
        }
    }
}

fn btree(list: Vec<(String, String)>) -> BTreeMap<String, String> {
    list.into_iter().collect()
}

/// Loads `websocketApis:`. `seen_ids` are the REST API ids already taken.
pub(crate) fn load_section(
    cx: &mut Ctx<'_>,
    v: &Value,
    ptr: &str,
    opts: &LoadOptions,
    seen_ids: &[String],
) -> Vec<WebSocketProjectApi> {
    let mut out: Vec<WebSocketProjectApi> = Vec::new();
    let Some(list) = cx.arr(v, ptr) else {
        return out;
    };
    for (i, item) in list.iter().enumerate() {
        let ap = format!("{ptr}/{i}");
        let Some(m) = cx.obj(item, &ap) else { continue };
        let Some(api) = load_api(cx, m, &ap, opts) else {
            continue;
        };
        let id = &api.definition.api.api_id;
        if seen_ids.contains(id) || out.iter().any(|o| &o.definition.api.api_id == id) {
            cx.error(
                &ap,
                format!("API id {id:?} is already used by another API; set a distinct `id`"),
            );
            continue;
        }
        out.push(api);
    }
    out
}

fn load_api(
    cx: &mut Ctx<'_>,
    m: &Map<String, Value>,
    ap: &str,
    opts: &LoadOptions,
) -> Option<WebSocketProjectApi> {
    let before = cx.diags.len();
    for k in m.keys() {
        if !API_KEYS.contains(&k.as_str()) {
            unknown(cx, &join(ap, k), k, "WebSocket API", API_KEYS);
        }
    }
    let name = match m.get("name") {
        Some(v) => cx.scalar_string(v, &join(ap, "name")).unwrap_or_default(),
        None => {
            cx.error(ap, "name is required");
            String::new()
        }
    };
    let api_id = match m.get("id") {
        Some(v) => {
            let p = join(ap, "id");
            match cx.scalar_string(v, &p) {
                Some(s) if ids::is_valid_api_id(&s) => s,
                Some(s) => {
                    cx.error(
                        &p,
                        format!("invalid API id {s:?}; expected 10 characters [a-z0-9]"),
                    );
                    String::new()
                }
                None => String::new(),
            }
        }
        None => websocket_api_id(&name),
    };
    let rse = match m.get("routeSelectionExpression") {
        Some(v) => {
            let p = join(ap, "routeSelectionExpression");
            let s = cx.str(v, &p).unwrap_or_default().to_string();
            if let Err(e) = check_selection_expression(&s) {
                cx.error(&p, e);
            }
            s
        }
        None => {
            cx.error(
                ap,
                "routeSelectionExpression is required (e.g. $request.body.action)",
            );
            String::new()
        }
    };
    let aks = m.get("apiKeySelectionExpression").and_then(|v| {
        let p = join(ap, "apiKeySelectionExpression");
        let s = cx.str(v, &p)?;
        if s == "$request.header.x-api-key" || s == "$context.authorizer.usageIdentifierKey" {
            Some(s.to_string())
        } else {
            cx.error(&p, format!("invalid apiKeySelectionExpression {s:?}; expected $request.header.x-api-key or $context.authorizer.usageIdentifierKey"));
            None
        }
    });
    let description = m
        .get("description")
        .and_then(|v| cx.str(v, &join(ap, "description")).map(str::to_string));
    let mut def = WebSocketApiDefinition {
        api: Api {
            api_id: api_id.clone(),
            name,
            protocol_type: ProtocolType::Websocket,
            route_selection_expression: rse,
            api_key_selection_expression: aks,
            description,
        },
        ..Default::default()
    };

    // Named integrations first, so routes can refer to them.
    let mut named: Vec<(String, String)> = Vec::new(); // (name, id)
    if let Some(v) = m.get("integrations") {
        let ip = join(ap, "integrations");
        if let Some(im) = cx.obj(v, &ip) {
            for (iname, iv) in im {
                let p = join(&ip, iname);
                let id = sub_id(&api_id, "integration", iname);
                if let Some((integ, responses)) = load_integration(cx, iv, &p, &id) {
                    named.push((iname.clone(), id.clone()));
                    def.integrations.push(integ);
                    def.integration_responses.insert(id, responses);
                }
            }
        }
    }
    let mut authorizers: Vec<(String, String)> = Vec::new();
    if let Some(v) = m.get("authorizers") {
        let ap2 = join(ap, "authorizers");
        if let Some(am) = cx.obj(v, &ap2) {
            for (aname, av) in am {
                let p = join(&ap2, aname);
                let id = sub_id(&api_id, "authorizer", aname);
                if let Some(a) = load_authorizer(cx, av, &p, aname, &id) {
                    authorizers.push((aname.clone(), id));
                    def.authorizers.push(a);
                }
            }
        }
    }
    if let Some(v) = m.get("routes") {
        let rp = join(ap, "routes");
        if let Some(rm) = cx.obj(v, &rp) {
            for (key, rv) in rm {
                let p = join(&rp, key);
                if key.starts_with('$')
                    && !["$connect", "$disconnect", "$default"].contains(&key.as_str())
                {
                    cx.error(&p, format!("invalid route key {key:?}: only $connect, $disconnect and $default may start with '$'"));
                    continue;
                }
                if key.is_empty() {
                    cx.error(&p, "route keys must not be empty");
                    continue;
                }
                let route_id = sub_id(&api_id, "route", key);
                let Some(rmap) = cx.obj(rv, &p) else { continue };
                let mut route = Route {
                    route_id: route_id.clone(),
                    route_key: key.clone(),
                    ..Default::default()
                };
                let mut responses = Vec::new();
                for (k, val) in rmap {
                    let kp = join(&p, k);
                    match k.as_str() {
                        "integration" => match val {
                            Value::String(n) => match named.iter().find(|(name, _)| name == n) {
                                Some((_, id)) => route.target = Some(format!("integrations/{id}")),
                                None => {
                                    let known: Vec<&str> =
                                        named.iter().map(|(n, _)| n.as_str()).collect();
                                    let hint = did_you_mean(n, &known);
                                    cx.error(&kp, format!("no integration named {n:?} in this API's integrations{hint}"));
                                }
                            },
                            other => {
                                let id = sub_id(&api_id, "route-integration", key);
                                if let Some((integ, resp)) = load_integration(cx, other, &kp, &id) {
                                    route.target = Some(format!("integrations/{id}"));
                                    def.integrations.push(integ);
                                    def.integration_responses.insert(id, resp);
                                }
                            }
                        },
                        "apiKeyRequired" => {
                            route.api_key_required = cx.bool(val, &kp).unwrap_or(false)
                        }
                        "authorizationType" => {
                            if let Some(t) = enum_value(cx, val, &kp, "NONE, AWS_IAM, CUSTOM") {
                                route.authorization_type = t;
                            }
                        }
                        "authorizer" => {
                            if let Some(n) = cx.str(val, &kp) {
                                match authorizers.iter().find(|(name, _)| name == n) {
                                    Some((_, id)) => route.authorizer_id = Some(id.clone()),
                                    None => cx.error(
                                        &kp,
                                        format!(
                                            "no authorizer named {n:?} in this API's authorizers"
                                        ),
                                    ),
                                }
                            }
                        }
                        "routeResponseSelectionExpression" => {
                            if let Some(s) = cx.str(val, &kp) {
                                if s == "$default" {
                                    route.route_response_selection_expression = Some(s.to_string());
                                } else {
                                    cx.error(&kp, format!("routeResponseSelectionExpression {s:?} is not supported; WebSocket APIs support only $default"));
                                }
                            }
                        }
                        "routeResponses" => {
                            if let Some(rr) = cx.obj(val, &kp) {
                                for (rk, rrv) in rr {
                                    let rrp = join(&kp, rk);
                                    if rk != "$default" {
                                        cx.error(&rrp, format!("route response key {rk:?} is not supported; only $default"));
                                        continue;
                                    }
                                    let mse = cx.obj(rrv, &rrp).and_then(|o| {
                                        for k2 in o.keys() {
                                            if k2 != "modelSelectionExpression" {
                                                unknown(
                                                    cx,
                                                    &join(&rrp, k2),
                                                    k2,
                                                    "route response",
                                                    &["modelSelectionExpression"],
                                                );
                                            }
                                        }
                                        o.get("modelSelectionExpression").and_then(|x| {
                                            cx.str(x, &join(&rrp, "modelSelectionExpression"))
                                                .map(str::to_string)
                                        })
                                    });
                                    responses.push(RouteResponse {
                                        route_response_id: sub_id(
                                            &api_id,
                                            "routeresponse",
                                            &format!("{key}/{rk}"),
                                        ),
                                        route_response_key: rk.clone(),
                                        model_selection_expression: mse,
                                    });
                                }
                            }
                        }
                        "modelSelectionExpression" => {
                            route.model_selection_expression = cx.str(val, &kp).map(str::to_string)
                        }
                        other => unknown(cx, &kp, other, "route", ROUTE_KEYS),
                    }
                }
                if route.target.is_none() && !rmap.contains_key("integration") {
                    cx.error(&p, format!("route {key:?} needs an integration"));
                }
                if route.authorization_type == AuthorizationType::Custom
                    && route.authorizer_id.is_none()
                {
                    cx.error(&p, "authorizationType CUSTOM needs an `authorizer`");
                }
                if route.authorizer_id.is_some()
                    && route.authorization_type == AuthorizationType::None
                {
                    route.authorization_type = AuthorizationType::Custom;
                }
                if key != "$connect"
                    && (route.authorizer_id.is_some()
                        || route.authorization_type != AuthorizationType::None)
                {
                    cx.error(&p, "authorization is only supported on the $connect route");
                }
                if key != "$connect" && route.api_key_required {
                    cx.error(
                        &join(&p, "apiKeyRequired"),
                        "apiKeyRequired is only supported on the $connect route",
                    );
                }
                if route.authorization_type == AuthorizationType::AwsIam {
                    cx.warn(&join(&p, "authorizationType"), "AWS_IAM authorization on $connect is not emulated yet: connections are accepted without a signature");
                }
                if !responses.is_empty() && route.route_response_selection_expression.is_none() {
                    cx.warn(&p, "routeResponses without routeResponseSelectionExpression: $default; the route stays one-way");
                }
                if route.route_response_selection_expression.is_some() && responses.is_empty() {
                    cx.warn(&p, "routeResponseSelectionExpression without a $default route response; the route stays one-way (add routeResponses: {$default: {}})");
                }
                if !responses.is_empty() {
                    def.route_responses.insert(route_id, responses);
                }
                def.routes.push(route);
            }
        }
    } else {
        cx.error(ap, "routes is required: at least one route ($connect, $disconnect, $default or a custom route key)");
    }

    let mut stages: Vec<Stage> = Vec::new();
    let mut any_stage = false;
    match m.get("stages") {
        None => {
            any_stage = true;
            stages.push(Stage {
                stage_name: opts.stage.clone().unwrap_or_else(|| "dev".to_string()),
                ..Default::default()
            });
        }
        Some(v) => {
            let sp = join(ap, "stages");
            if let Some(list) = cx.arr(v, &sp) {
                if list.is_empty() {
                    cx.error(
                        &sp,
                        "stages must list at least one stage (or be omitted for the default stage)",
                    );
                }
                for (i, s) in list.iter().enumerate() {
                    let p = format!("{sp}/{i}");
                    let Some(sm) = cx.obj(s, &p) else { continue };
                    let mut st = Stage::default();
                    for (k, val) in sm {
                        let kp = join(&p, k);
                        match k.as_str() {
                            "name" => {
                                if let Some(n) = cx.scalar_string(val, &kp) {
                                    match validate::stage_name(&n) {
                                        Ok(()) => st.stage_name = n,
                                        Err(e) => cx.error(&kp, e),
                                    }
                                }
                            }
                            "description" => st.description = cx.str(val, &kp).map(str::to_string),
                            "variables" => {
                                st.stage_variables = crate::project::variables(cx, val, &kp)
                            }
                            other => unknown(cx, &kp, other, "stage", STAGE_KEYS),
                        }
                    }
                    if !sm.contains_key("name") {
                        cx.error(&p, "stage name is required");
                        continue;
                    }
                    if st.stage_name.is_empty() {
                        continue;
                    }
                    if stages.iter().any(|o| o.stage_name == st.stage_name) {
                        cx.error(
                            &join(&p, "name"),
                            format!("duplicate stage name {:?}", st.stage_name),
                        );
                        continue;
                    }
                    if opts.stage.as_ref().is_some_and(|s| *s != st.stage_name) {
                        continue;
                    }
                    any_stage = true;
                    stages.push(st);
                }
            }
        }
    }
    if cx.diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    if !any_stage {
        if let Some(s) = &opts.stage {
            cx.warn(
                ap,
                format!(
                    "WebSocket API {:?} has no stage {s:?}; it is not served",
                    def.api.name
                ),
            );
        }
        return None;
    }
    Some(WebSocketProjectApi {
        definition: def,
        stages,
    })
}

fn load_integration(
    cx: &mut Ctx<'_>,
    v: &Value,
    p: &str,
    id: &str,
) -> Option<(Integration, Vec<IntegrationResponse>)> {
    let m = cx.obj(v, p)?;
    let mut integ = Integration {
        integration_id: id.to_string(),
        timeout_in_millis: 29_000,
        ..Default::default()
    };
    let mut responses = Vec::new();
    for (k, val) in m {
        let kp = join(p, k);
        match k.as_str() {
            "integrationType" => {
                if let Some(t) = enum_value(cx, val, &kp, "AWS, AWS_PROXY, HTTP, HTTP_PROXY, MOCK")
                {
                    integ.integration_type = t;
                }
            }
            "integrationUri" => integ.integration_uri = cx.str(val, &kp).map(str::to_string),
            "integrationMethod" => {
                integ.integration_method = cx.str(val, &kp).map(|s| s.to_ascii_uppercase())
            }
            "requestParameters" => integ.request_parameters = btree(cx.str_map(val, &kp)),
            "requestTemplates" => integ.request_templates = btree(cx.str_map(val, &kp)),
            "templateSelectionExpression" => {
                integ.template_selection_expression = cx.str(val, &kp).map(str::to_string)
            }
            "passthroughBehavior" => {
                if let Some(t) = enum_value(cx, val, &kp, "WHEN_NO_MATCH, WHEN_NO_TEMPLATES, NEVER")
                {
                    integ.passthrough_behavior = t;
                }
            }
            "contentHandlingStrategy" => {
                integ.content_handling_strategy =
                    enum_value(cx, val, &kp, "CONVERT_TO_BINARY, CONVERT_TO_TEXT")
            }
            "integrationResponseSelectionExpression" => {
                integ.integration_response_selection_expression =
                    cx.str(val, &kp).map(str::to_string)
            }
            "timeoutInMillis" => {
                if let Some(n) = cx.u64(val, &kp) {
                    if (50..=29_000).contains(&n) {
                        integ.timeout_in_millis = n as u32;
                    } else {
                        cx.error(
                            &kp,
                            format!("timeoutInMillis {n} is out of range 50..29000"),
                        );
                    }
                }
            }
            "integrationResponses" => {
                let Some(rm) = cx.obj(val, &kp) else { continue };
                for (rk, rv) in rm {
                    let rp = join(&kp, rk);
                    if rk != "$default" {
                        let ok = rk.len() >= 2
                            && rk.starts_with('/')
                            && rk.ends_with('/')
                            && regex_ok(&rk[1..rk.len() - 1]);
                        if !ok {
                            cx.error(&rp, format!("invalid integration response key {rk:?}; expected $default or a regular expression written /.../ such as /2\\d\\d/"));
                            continue;
                        }
                    }
                    let Some(rmap) = cx.obj(rv, &rp) else {
                        continue;
                    };
                    let mut r = IntegrationResponse {
                        integration_response_id: sub_id(id, "integrationresponse", rk),
                        integration_response_key: rk.clone(),
                        ..Default::default()
                    };
                    for (k2, v2) in rmap {
                        let p2 = join(&rp, k2);
                        match k2.as_str() {
                            "responseParameters" => {
                                r.response_parameters = btree(cx.str_map(v2, &p2))
                            }
                            "responseTemplates" => {
                                r.response_templates = btree(cx.str_map(v2, &p2))
                            }
                            "templateSelectionExpression" => {
                                r.template_selection_expression =
                                    cx.str(v2, &p2).map(str::to_string)
                            }
                            "contentHandlingStrategy" => {
                                r.content_handling_strategy =
                                    enum_value(cx, v2, &p2, "CONVERT_TO_BINARY, CONVERT_TO_TEXT")
                            }
                            other => unknown(
                                cx,
                                &p2,
                                other,
                                "integration response",
                                INTEGRATION_RESPONSE_KEYS,
                            ),
                        }
                    }
                    responses.push(r);
                }
            }
            other => unknown(cx, &kp, other, "integration", INTEGRATION_KEYS),
        }
    }
    if !m.contains_key("integrationType") {
        cx.error(
            p,
            "integrationType is required (AWS_PROXY, HTTP, HTTP_PROXY or MOCK)",
        );
    }
    match integ.integration_type {
        IntegrationType::Mock => {}
        IntegrationType::Aws => {
            cx.warn(p, "AWS service integrations are not emulated yet: this route answers with an integration error");
        }
        _ => {
            if integ.integration_uri.as_deref().is_none_or(str::is_empty) {
                cx.error(p, "integrationUri is required for this integration type");
            }
        }
    }
    Some((integ, responses))
}

fn regex_ok(s: &str) -> bool {
    // Checked for real when the deployment compiles; here only obvious mistakes.
    !s.is_empty()
}

fn load_authorizer(
    cx: &mut Ctx<'_>,
    v: &Value,
    p: &str,
    name: &str,
    id: &str,
) -> Option<Authorizer> {
    let m = cx.obj(v, p)?;
    let mut a = Authorizer {
        authorizer_id: id.to_string(),
        name: name.to_string(),
        authorizer_type: "REQUEST".into(),
        ..Default::default()
    };
    for (k, val) in m {
        let kp = join(p, k);
        match k.as_str() {
            "authorizerType" => {
                if let Some(s) = cx.str(val, &kp) {
                    if s != "REQUEST" {
                        cx.error(&kp, format!("authorizerType {s:?} is not supported for WebSocket APIs; expected REQUEST"));
                    }
                }
            }
            "authorizerUri" => a.authorizer_uri = cx.str(val, &kp).unwrap_or_default().to_string(),
            "identitySource" => a.identity_source = cx.str_list(val, &kp),
            other => unknown(cx, &kp, other, "authorizer", AUTHORIZER_KEYS),
        }
    }
    if a.authorizer_uri.is_empty() {
        cx.error(
            p,
            "authorizerUri is required: the Lambda function (name or ARN)",
        );
    }
    Some(a)
}

// ---------------------------------------------------------------------------------------------
// Selection expressions
// ---------------------------------------------------------------------------------------------

/// One piece of a selection expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionPart {
    Literal(String),
    /// A variable such as `request.body.action` (without the `$`).
    Variable(String),
}

/// Parses a selection expression (`$request.body.action`, `${request.body.a}/${request.body.b}`,
/// static text, `\$default`). Variables run to the end of the expression unless written `${…}`.
pub fn parse_selection_expression(expr: &str) -> Result<Vec<SelectionPart>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = expr;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("\\$") {
            lit.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(format!("unterminated ${{ in selection expression {expr:?}"));
            };
            let var = &after[..end];
            if var.is_empty() {
                return Err(format!("empty ${{}} in selection expression {expr:?}"));
            }
            if !lit.is_empty() {
                parts.push(SelectionPart::Literal(std::mem::take(&mut lit)));
            }
            parts.push(SelectionPart::Variable(var.to_string()));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('$') {
            if after.is_empty() || after == "default" {
                // `$default` written plainly is the key `$default`.
                lit.push('$');
                rest = after;
            } else {
                if !lit.is_empty() {
                    parts.push(SelectionPart::Literal(std::mem::take(&mut lit)));
                }
                parts.push(SelectionPart::Variable(after.to_string()));
                rest = "";
            }
        } else {
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !lit.is_empty() {
        parts.push(SelectionPart::Literal(lit));
    }
    Ok(parts)
}

fn check_selection_expression(expr: &str) -> Result<(), String> {
    if expr.is_empty() {
        return Err("routeSelectionExpression must not be empty".into());
    }
    for p in parse_selection_expression(expr)? {
        if let SelectionPart::Variable(v) = p {
            let ok = v == "request.body"
                || v.starts_with("request.body.")
                || v.starts_with("request.body[")
                || v.starts_with("context.");
            if !ok {
                return Err(format!("unsupported variable ${v} in routeSelectionExpression; use $request.body.<JSONPath> (e.g. $request.body.action)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_expressions_parse() {
        use SelectionPart::*;
        assert_eq!(
            parse_selection_expression("$request.body.action").unwrap(),
            vec![Variable("request.body.action".into())]
        );
        assert_eq!(
            parse_selection_expression("${request.body.service}/${request.body.action}").unwrap(),
            vec![
                Variable("request.body.service".into()),
                Literal("/".into()),
                Variable("request.body.action".into())
            ]
        );
        assert_eq!(
            parse_selection_expression("\\$default").unwrap(),
            vec![Literal("$default".into())]
        );
        assert_eq!(
            parse_selection_expression("action").unwrap(),
            vec![Literal("action".into())]
        );
        assert!(parse_selection_expression("${request.body").is_err());
    }
}
