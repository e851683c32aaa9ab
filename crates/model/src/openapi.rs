//! OpenAPI 3.0.x / Swagger 2.0 import with the `x-amazon-apigateway-*` extensions (reference
//! §15), producing a [`RestApiDefinition`] the way API Gateway's importer does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostics::Diagnostic;
use crate::ids::{id_from, rest_api_id};
use crate::rest::*;
use crate::source::{self, join, Document};
use crate::unsupported::{unsupported_features, Feature, Site};
use crate::validate;
use crate::walk::{did_you_mean, kind, Ctx};

/// AWS's import limit for a definition.
pub const MAX_DEFINITION_BYTES: u64 = 6 * 1024 * 1024;

/// Settings the importer needs from its caller.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Fixed API id (a project file's `id`); otherwise derived from the title.
    pub api_id: Option<String>,
    /// Substituted for `${AWS::Region}` and used in expanded ARNs.
    pub region: String,
    /// Substituted for `${AWS::AccountId}`.
    pub account_id: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            api_id: None,
            region: crate::DEFAULT_REGION.to_string(),
            account_id: crate::DEFAULT_ACCOUNT_ID.to_string(),
        }
    }
}

/// Result of a successful import.
#[derive(Debug, Clone)]
pub struct Imported {
    pub definition: RestApiDefinition,
    /// Warnings (no errors) with positions.
    pub warnings: Vec<Diagnostic>,
    /// Swagger `basePath` / OAS3 `basePath` server variable default, without the leading slash.
    pub base_path: Option<String>,
    /// Pointer of each operation, keyed by (resource path, HTTP method).
    pub method_pointers: HashMap<(String, String), String>,
    /// The parsed document (for callers that report more findings against it).
    pub document: Document,
}

/// Partition for a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition_for(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Swagger2,
    OpenApi3,
}

const OPERATIONS: [(&str, &str); 7] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("patch", "PATCH"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
];
const ANY_METHOD: &str = "x-amazon-apigateway-any-method";

const ROOT_FIELDS_V2: &[&str] = &[
    "swagger",
    "info",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "paths",
    "definitions",
    "parameters",
    "responses",
    "securityDefinitions",
    "security",
    "tags",
    "externalDocs",
];
const ROOT_FIELDS_V3: &[&str] = &[
    "openapi",
    "info",
    "servers",
    "paths",
    "components",
    "security",
    "tags",
    "externalDocs",
];
const OPERATION_FIELDS: &[&str] = &[
    "tags",
    "summary",
    "description",
    "externalDocs",
    "operationId",
    "parameters",
    "requestBody",
    "responses",
    "callbacks",
    "deprecated",
    "security",
    "servers",
    "consumes",
    "produces",
    "schemes",
];
const INTEGRATION_FIELDS: &[&str] = &[
    "type",
    "uri",
    "httpMethod",
    "credentials",
    "requestParameters",
    "requestTemplates",
    "passthroughBehavior",
    "contentHandling",
    "timeoutInMillis",
    "cacheNamespace",
    "cacheKeyParameters",
    "connectionType",
    "connectionId",
    "tlsConfig",
    "responses",
];
const HTTP_API_INTEGRATION_FIELDS: &[&str] = &[
    "payloadFormatVersion",
    "integrationSubtype",
    "$ref",
    "description",
];
const INTEGRATION_TYPES: &str = "http, http_proxy, mock, aws, aws_proxy";

/// Imports one document. `Err` carries every error found (and the warnings).
pub fn import(file: &Path, text: &str, opts: &ImportOptions) -> Result<Imported, Vec<Diagnostic>> {
    if text.len() as u64 > MAX_DEFINITION_BYTES {
        return Err(vec![Diagnostic {
            severity: crate::Severity::Error,
            file: file.to_path_buf(),
            line: None,
            column: None,
            pointer: String::new(),
            message: format!(
                "definition is {} bytes; API Gateway imports definitions of at most 6 MB ({MAX_DEFINITION_BYTES} bytes)",
                text.len()
            ),
        }]);
    }
    let document = source::parse(file, text)?;
    import_document(file, document, opts)
}

/// Imports an already parsed document.
pub fn import_document(
    file: &Path,
    document: Document,
    opts: &ImportOptions,
) -> Result<Imported, Vec<Diagnostic>> {
    let mut cx = Ctx::new(file, &document.map);
    let mut root = document.value.clone();
    let partition = partition_for(&opts.region);
    substitute_aws_variables(&mut cx, &mut root, opts, partition);
    let mut imp = Importer {
        cx,
        root: &root,
        version: Version::OpenApi3,
        api_id: String::new(),
        region: opts.region.clone(),
        account_id: opts.account_id.clone(),
        partition,
        model_names: HashMap::new(),
        models: Vec::new(),
        schemes: HashMap::new(),
        authorizers: Vec::new(),
        validators: Vec::new(),
        validator_ids: HashMap::new(),
        default_validator: None,
        resources: Vec::new(),
        resource_index: HashMap::new(),
        children: HashMap::new(),
        used_ids: HashSet::new(),
        method_pointers: HashMap::new(),
        method_extra: HashMap::new(),
        aws_warnings: Vec::new(),
    };
    let result = imp.run(opts);
    let Importer { cx, .. } = imp;
    let mut diags = cx.diags;
    match result {
        Some((definition, base_path, method_pointers))
            if !diags.iter().any(|d| d.severity == crate::Severity::Error) =>
        {
            Ok(Imported {
                definition,
                warnings: diags,
                base_path,
                method_pointers,
                document,
            })
        }
        _ => {
            sort_diagnostics(&mut diags);
            Err(diags)
        }
    }
}

pub(crate) fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.file.as_path(), a.line.unwrap_or(0), a.column.unwrap_or(0)).cmp(&(
            b.file.as_path(),
            b.line.unwrap_or(0),
            b.column.unwrap_or(0),
        ))
    });
}

/// Replaces `${AWS::Region}`, `${AWS::AccountId}` and `${AWS::Partition}` in every string value.
fn substitute_aws_variables(
    cx: &mut Ctx<'_>,
    root: &mut Value,
    opts: &ImportOptions,
    partition: &str,
) {
    let mut stack: Vec<(String, &mut Value)> = vec![(String::new(), root)];
    while let Some((ptr, v)) = stack.pop() {
        match v {
            Value::String(s) if s.contains("${AWS::") => {
                let mut out = String::with_capacity(s.len());
                let mut rest = s.as_str();
                while let Some(i) = rest.find("${AWS::") {
                    out.push_str(&rest[..i]);
                    let after = &rest[i..];
                    let Some(end) = after.find('}') else {
                        out.push_str(after);
                        rest = "";
                        break;
                    };
                    let var = &after[7..end];
                    match var {
                        "Region" => out.push_str(&opts.region),
                        "AccountId" => out.push_str(&opts.account_id),
                        "Partition" => out.push_str(partition),
                        other => {
                            cx.warn(
                                &ptr,
                                format!("unknown variable ${{AWS::{other}}} left as is; API Gateway resolves only ${{AWS::AccountId}}, ${{AWS::Partition}} and ${{AWS::Region}}"),
                            );
                            out.push_str(&after[..=end]);
                        }
                    }
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                *s = out;
            }
            Value::Array(a) => {
                for (i, item) in a.iter_mut().enumerate() {
                    stack.push((format!("{ptr}/{i}"), item));
                }
            }
            Value::Object(m) => {
                for (k, item) in m.iter_mut() {
                    stack.push((join(&ptr, k), item));
                }
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone)]
enum Scheme {
    ApiKey,
    Sigv4,
    Authorizer { id: String, kind: AuthorizationType },
    Ignored,
}

/// Pointers of the parts of an operation that unsupported-feature warnings point at.
#[derive(Debug, Clone, Default)]
struct MethodExtra {
    security: Option<String>,
    validator: Option<String>,
}

struct Importer<'r, 'a> {
    cx: Ctx<'a>,
    root: &'r Value,
    version: Version,
    api_id: String,
    region: String,
    account_id: String,
    partition: &'static str,
    /// Schema name → model index.
    model_names: HashMap<String, usize>,
    models: Vec<Model>,
    schemes: HashMap<String, Scheme>,
    authorizers: Vec<Authorizer>,
    validators: Vec<RequestValidator>,
    validator_ids: HashMap<String, String>,
    default_validator: Option<(String, String)>,
    resources: Vec<Resource>,
    resource_index: HashMap<String, usize>,
    children: HashMap<usize, Vec<usize>>,
    used_ids: HashSet<String>,
    method_pointers: HashMap<(String, String), String>,
    method_extra: HashMap<(String, String), MethodExtra>,
    aws_warnings: Vec<String>,
}

type RunResult = (
    RestApiDefinition,
    Option<String>,
    HashMap<(String, String), String>,
);

impl<'r> Importer<'r, '_> {
    fn run(&mut self, opts: &ImportOptions) -> Option<RunResult> {
        let root_ptr = "";
        let root = self.cx.obj(self.root, root_ptr)?;

        // Version.
        if let Some(v) = root.get("openapi") {
            let s = self.cx.scalar_string(v, "/openapi")?;
            if s.starts_with("3.0") {
                self.version = Version::OpenApi3;
            } else {
                self.cx.error(
                    "/openapi",
                    format!("unsupported OpenAPI version {s:?}; API Gateway imports OpenAPI 3.0.x and Swagger 2.0"),
                );
                return None;
            }
        } else if let Some(v) = root.get("swagger") {
            let s = self.cx.scalar_string(v, "/swagger")?;
            if s == "2.0" || s == "2" {
                self.version = Version::Swagger2;
            } else {
                self.cx.error(
                    "/swagger",
                    format!("unsupported Swagger version {s:?}; expected \"2.0\""),
                );
                return None;
            }
        } else {
            self.cx.error(
                "",
                "not an OpenAPI document: expected a top-level `openapi: 3.0.x` or `swagger: \"2.0\"` field (or `apis:` for a Turnpike project file)",
            );
            return None;
        }

        // Info.
        let mut name = None;
        let mut description = None;
        let mut version = None;
        match root.get("info") {
            Some(info) => {
                if let Some(info) = self.cx.obj(info, "/info") {
                    match info.get("title") {
                        Some(t) => name = self.cx.scalar_string(t, "/info/title"),
                        None => self
                            .cx
                            .error("/info", "info.title is required: it becomes the API name"),
                    }
                    if let Some(d) = info.get("description") {
                        description = self.cx.str(d, "/info/description").map(str::to_string);
                    }
                    if let Some(v) = info.get("version") {
                        version = self.cx.scalar_string(v, "/info/version");
                    }
                }
            }
            None => self
                .cx
                .error("", "info.title is required: it becomes the API name"),
        }
        if name.as_deref() == Some("") {
            self.cx.error("/info/title", "info.title must not be empty");
        }
        let name = name.unwrap_or_default();
        self.api_id = opts.api_id.clone().unwrap_or_else(|| rest_api_id(&name));

        let mut api = RestApi {
            id: self.api_id.clone(),
            name,
            description,
            version,
            binary_media_types: Vec::new(),
            api_key_source: ApiKeySource::Header,
            minimum_compression_size: None,
            endpoint_configuration: EndpointConfiguration::default(),
            policy: None,
            disable_execute_api_endpoint: false,
            warnings: Vec::new(),
        };

        // Root fields and extensions.
        let known_root = if self.version == Version::Swagger2 {
            ROOT_FIELDS_V2
        } else {
            ROOT_FIELDS_V3
        };
        let mut gateway_responses = Vec::new();
        for (k, v) in root {
            let ptr = join(root_ptr, k);
            match k.as_str() {
                "x-amazon-apigateway-binary-media-types" => {
                    api.binary_media_types = self.cx.str_list(v, &ptr)
                }
                "x-amazon-apigateway-api-key-source" => {
                    if let Some(s) = self.cx.str(v, &ptr) {
                        match s.to_ascii_uppercase().as_str() {
                            "HEADER" => api.api_key_source = ApiKeySource::Header,
                            "AUTHORIZER" => api.api_key_source = ApiKeySource::Authorizer,
                            _ => self.cx.error(
                                &ptr,
                                format!(
                                    "unknown API key source {s:?}; expected HEADER or AUTHORIZER"
                                ),
                            ),
                        }
                    }
                }
                "x-amazon-apigateway-minimum-compression-size" => {
                    if let Some(n) = self.cx.u64(v, &ptr) {
                        if n > 10_485_760 {
                            self.cx.error(
                                &ptr,
                                format!("minimumCompressionSize {n} is out of range 0..10485760"),
                            );
                        } else {
                            api.minimum_compression_size = Some(n);
                        }
                    }
                }
                "x-amazon-apigateway-policy" => api.policy = self.policy(v, &ptr),
                "x-amazon-apigateway-endpoint-configuration" => {
                    if self.version == Version::OpenApi3 {
                        self.cx.warn(&ptr, "in OpenAPI 3 the endpoint configuration belongs under a servers[] entry; read from here anyway");
                    }
                    self.endpoint_configuration(v, &ptr, &mut api);
                }
                "x-amazon-apigateway-gateway-responses" => {
                    gateway_responses = self.gateway_responses(v, &ptr)
                }
                "x-amazon-apigateway-request-validators"
                | "x-amazon-apigateway-request-validator" => {} // below
                "x-amazon-apigateway-documentation" => {
                    self.cx.warn(
                        &ptr,
                        "documentation parts are not imported by Turnpike (ignored)",
                    );
                }
                "x-amazon-apigateway-importexport-version"
                | "x-amazon-apigateway-cors"
                | "x-amazon-apigateway-tag-value"
                | "x-amazon-apigateway-integrations" => {
                    self.cx.warn(
                        &ptr,
                        format!("{k} applies to HTTP APIs only; ignored for this REST API"),
                    );
                }
                "x-amazon-apigateway-security-policy"
                | "x-amazon-apigateway-endpoint-access-mode" => {
                    self.cx.warn(&ptr, format!("{k} (TLS settings of the execute-api endpoint) is not emulated by Turnpike (ignored)"));
                }
                "security" => {
                    self.cx.warn(&ptr, "root-level security is ignored by API Gateway; set security on each operation");
                }
                k if k.starts_with("x-amazon-apigateway-") => {
                    self.cx
                        .warn(&ptr, format!("unknown extension {k} (ignored)"));
                }
                k if k.starts_with("x-") => {}
                k if known_root.contains(&k) => {}
                k => {
                    let hint = did_you_mean(k, known_root);
                    self.cx.warn(
                        &ptr,
                        format!("unknown top-level field {k:?} (ignored){hint}"),
                    );
                }
            }
        }
        if self.version == Version::OpenApi3 {
            if let Some(servers) = root.get("servers") {
                self.servers(servers, &mut api);
            }
        }
        let base_path = self.base_path(root);

        // Models, security schemes, validators.
        self.models(root);
        self.security_schemes(root);
        self.request_validators(root);

        // Resources and methods.
        let root_id = self.unique_id(&["root", &self.api_id.clone()], 10);
        self.resources.push(Resource {
            id: root_id,
            parent_id: None,
            path_part: None,
            path: "/".to_string(),
            resource_methods: BTreeMap::new(),
        });
        self.resource_index.insert("/".to_string(), 0);
        match root.get("paths") {
            Some(paths) => {
                if let Some(paths) = self.cx.obj(paths, "/paths") {
                    for (path, item) in paths {
                        self.path_item(path, item);
                    }
                }
            }
            None => self.cx.error("", "the document has no `paths`"),
        }

        api.warnings = std::mem::take(&mut self.aws_warnings);
        let def = RestApiDefinition {
            api,
            resources: std::mem::take(&mut self.resources),
            authorizers: std::mem::take(&mut self.authorizers),
            request_validators: std::mem::take(&mut self.validators),
            models: std::mem::take(&mut self.models),
            gateway_responses,
        };
        self.unsupported_warnings(&def);
        Some((def, base_path, std::mem::take(&mut self.method_pointers)))
    }

    fn unique_id(&mut self, parts: &[&str], len: usize) -> String {
        let mut id = id_from(parts, len);
        let mut salt = 0u32;
        while self.used_ids.contains(&id) {
            salt += 1;
            let s = salt.to_string();
            let mut p = parts.to_vec();
            p.push(&s);
            id = id_from(&p, len);
        }
        self.used_ids.insert(id.clone());
        id
    }

    fn unsupported_warnings(&mut self, def: &RestApiDefinition) {
        for u in unsupported_features(def) {
            let ptr = match &u.site {
                Site::Api => match u.feature {
                    Feature::ResourcePolicy => "/x-amazon-apigateway-policy".to_string(),
                    Feature::MinimumCompressionSize => {
                        "/x-amazon-apigateway-minimum-compression-size".to_string()
                    }
                    _ => String::new(),
                },
                Site::Method { path, http_method } => {
                    let key = (path.clone(), http_method.clone());
                    let op = self.method_pointers.get(&key).cloned().unwrap_or_default();
                    let extra = self.method_extra.get(&key).cloned().unwrap_or_default();
                    match u.feature {
                        Feature::RequestValidation => extra.validator.unwrap_or(op),
                        _ => extra.security.unwrap_or(op),
                    }
                }
                Site::Integration { path, http_method } => {
                    let op = self
                        .method_pointers
                        .get(&(path.clone(), http_method.clone()))
                        .cloned()
                        .unwrap_or_default();
                    let i = join(&op, "x-amazon-apigateway-integration");
                    match u.feature {
                        Feature::Caching => join(&i, "cacheKeyParameters"),
                        Feature::VpcLink => join(&i, "connectionType"),
                        _ => join(&i, "type"),
                    }
                }
                Site::Stage { .. } => String::new(),
            };
            self.cx.warn(&ptr, u.message());
        }
    }

    // -- root-level pieces ---------------------------------------------------------------------

    fn policy(&mut self, v: &Value, ptr: &str) -> Option<Value> {
        let mut policy = match v {
            Value::Object(_) => v.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(p @ Value::Object(_)) => p,
                _ => {
                    self.cx.error(
                        ptr,
                        "the resource policy must be a JSON policy document (an object)",
                    );
                    return None;
                }
            },
            other => {
                self.cx.error(
                    ptr,
                    format!(
                        "the resource policy must be a JSON policy document, got {}",
                        kind(other)
                    ),
                );
                return None;
            }
        };
        // `execute-api:/*` → `arn:aws:execute-api:REGION:ACCOUNT:API_ID/*`.
        let prefix = format!(
            "arn:{}:execute-api:{}:{}:{}",
            self.partition, self.region, self.account_id, self.api_id
        );
        let mut stack = vec![&mut policy];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    for (k, item) in m.iter_mut() {
                        if k == "Resource" || k == "NotResource" {
                            match item {
                                Value::String(s) => expand_execute_api(s, &prefix),
                                Value::Array(a) => {
                                    for s in a.iter_mut() {
                                        if let Value::String(s) = s {
                                            expand_execute_api(s, &prefix);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        } else {
                            stack.push(item);
                        }
                    }
                }
                Value::Array(a) => stack.extend(a.iter_mut()),
                _ => {}
            }
        }
        Some(policy)
    }

    fn endpoint_configuration(&mut self, v: &Value, ptr: &str, api: &mut RestApi) {
        let Some(m) = self.cx.obj(v, ptr) else { return };
        for (k, item) in m {
            let p = join(ptr, k);
            match k.as_str() {
                "types" => {
                    let mut types = Vec::new();
                    for (i, t) in self.cx.str_list(item, &p).iter().enumerate() {
                        match t.to_ascii_uppercase().as_str() {
                            "EDGE" => types.push(EndpointType::Edge),
                            "REGIONAL" => types.push(EndpointType::Regional),
                            "PRIVATE" => types.push(EndpointType::Private),
                            _ => self.cx.error(&format!("{p}/{i}"), format!("unknown endpoint type {t:?}; expected EDGE, REGIONAL or PRIVATE")),
                        }
                    }
                    if !types.is_empty() {
                        api.endpoint_configuration.types = types;
                    }
                }
                "vpcEndpointIds" => {
                    api.endpoint_configuration.vpc_endpoint_ids = self.cx.str_list(item, &p)
                }
                "disableExecuteApiEndpoint" => {
                    if let Some(b) = self.cx.bool(item, &p) {
                        api.disable_execute_api_endpoint = b;
                    }
                }
                "ipAddressType" => self
                    .cx
                    .warn(&p, "ipAddressType is not emulated by Turnpike (ignored)"),
                other => self.cx.warn(
                    &p,
                    format!("unknown endpoint configuration field {other:?} (ignored)"),
                ),
            }
        }
    }

    fn servers(&mut self, servers: &Value, api: &mut RestApi) {
        let Some(list) = self.cx.arr(servers, "/servers") else {
            return;
        };
        let mut seen = false;
        for (i, s) in list.iter().enumerate() {
            let ptr = format!("/servers/{i}");
            let Some(m) = self.cx.obj(s, &ptr) else {
                continue;
            };
            for (k, v) in m {
                let p = join(&ptr, k);
                match k.as_str() {
                    "x-amazon-apigateway-endpoint-configuration" => {
                        if seen {
                            self.cx
                                .warn(&p, "only the first server's endpoint configuration is used");
                        } else {
                            seen = true;
                            self.endpoint_configuration(v, &p, api);
                        }
                    }
                    k if k.starts_with("x-amazon-apigateway-") => {
                        self.cx.warn(&p, format!("unknown extension {k} (ignored)"))
                    }
                    _ => {}
                }
            }
        }
    }

    /// The base path as AWS reads it (without slashes at either end).
    fn base_path(&mut self, root: &Map<String, Value>) -> Option<String> {
        let raw = match self.version {
            Version::Swagger2 => root
                .get("basePath")
                .and_then(Value::as_str)
                .map(str::to_string),
            Version::OpenApi3 => root
                .get("servers")
                .and_then(Value::as_array)
                .and_then(|s| {
                    s.iter()
                        .find_map(|srv| srv.pointer("/variables/basePath/default"))
                })
                .and_then(|d| match d {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
        }?;
        let trimmed = raw.trim_matches('/').to_string();
        (!trimmed.is_empty()).then_some(trimmed)
    }

    fn gateway_responses(&mut self, v: &Value, ptr: &str) -> Vec<GatewayResponse> {
        let mut out = Vec::new();
        let Some(m) = self.cx.obj(v, ptr) else {
            return out;
        };
        for (ty, body) in m {
            let p = join(ptr, ty);
            let Some(response_type) = GatewayResponseType::parse(ty) else {
                let names: Vec<&str> = GatewayResponseType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect();
                self.cx.error(
                    &p,
                    format!(
                        "unknown gateway response type {ty:?}{}; expected one of {}",
                        did_you_mean(ty, &names),
                        names.join(", ")
                    ),
                );
                continue;
            };
            let Some(body) = self.cx.obj(body, &p) else {
                continue;
            };
            let mut gr = GatewayResponse {
                response_type,
                status_code: None,
                response_parameters: BTreeMap::new(),
                response_templates: Vec::new(),
                default_response: false,
            };
            for (k, item) in body {
                let ip = join(&p, k);
                match k.as_str() {
                    "statusCode" => {
                        if let Some(s) = self.cx.scalar_string(item, &ip) {
                            if is_status_code(&s) {
                                gr.status_code = Some(s);
                            } else {
                                self.cx.error(&ip, format!("invalid status code {s:?}; expected a 3-digit code 100-599"));
                            }
                        }
                    }
                    "responseParameters" => {
                        for (key, val) in self.cx.str_map(item, &ip) {
                            let kp = join(&ip, &key);
                            if let Err(e) = validate::gateway_response_key(&key) {
                                self.cx.error(&kp, e);
                            } else if let Err(e) = validate::gateway_response_value(&val) {
                                self.cx.error(&kp, e);
                            } else {
                                gr.response_parameters.insert(key, val);
                            }
                        }
                    }
                    "responseTemplates" => gr.response_templates = self.cx.str_map(item, &ip),
                    k => self.cx.warn(
                        &ip,
                        format!("unknown gateway response field {k:?} (ignored)"),
                    ),
                }
            }
            out.push(gr);
        }
        out
    }

    fn models(&mut self, root: &Map<String, Value>) {
        let (ptr, schemas) = match self.version {
            Version::Swagger2 => ("/definitions".to_string(), root.get("definitions")),
            Version::OpenApi3 => {
                let comps = root.get("components");
                if let Some(c) = comps {
                    if let Some(cm) = self.cx.obj(c, "/components") {
                        for (k, _) in cm {
                            let p = join("/components", k);
                            match k.as_str() {
                                "schemas" | "securitySchemes" | "parameters" | "responses" | "requestBodies" | "headers"
                                | "examples" | "links" | "callbacks" => {}
                                "x-amazon-apigateway-integrations" => {
                                    self.cx.warn(&p, "x-amazon-apigateway-integrations applies to HTTP APIs only; ignored for this REST API")
                                }
                                k if k.starts_with("x-amazon-apigateway-") => {
                                    self.cx.warn(&p, format!("unknown extension {k} (ignored)"))
                                }
                                _ => {}
                            }
                        }
                    }
                }
                (
                    "/components/schemas".to_string(),
                    comps.and_then(|c| c.get("schemas")),
                )
            }
        };
        let Some(schemas) = schemas else { return };
        let Some(m) = self.cx.obj(schemas, &ptr) else {
            return;
        };
        for (name, schema) in m {
            let p = join(&ptr, name);
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                self.cx.error(
                    &p,
                    format!("invalid model name {name:?}: Model name must be alphanumeric"),
                );
                continue;
            }
            if !schema.is_object() {
                self.cx.error(
                    &p,
                    format!("a schema must be an object, got {}", kind(schema)),
                );
                continue;
            }
            self.model_names.insert(name.clone(), self.models.len());
            let id = self.unique_id(&[&self.api_id.clone(), "model", name], 6);
            self.models.push(Model {
                id,
                name: name.clone(),
                description: schema
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                schema: None,
                content_type: "application/json".to_string(),
            });
        }
        // Second pass: rewrite references now that every model name is known.
        for (name, schema) in m {
            if let Some(&idx) = self.model_names.get(name) {
                let p = join(&ptr, name);
                let text = self.rewrite_schema(schema, &p);
                if let Some(model) = self.models.get_mut(idx) {
                    model.schema = Some(text);
                }
            }
        }
    }

    /// JSON text of a schema with local `$ref`s rewritten to AWS model URLs.
    fn rewrite_schema(&mut self, schema: &Value, ptr: &str) -> String {
        let mut s = schema.clone();
        let mut stack: Vec<(String, &mut Value)> = vec![(ptr.to_string(), &mut s)];
        let mut missing = Vec::new();
        while let Some((p, v)) = stack.pop() {
            match v {
                Value::Object(m) => {
                    for (k, item) in m.iter_mut() {
                        let ip = join(&p, k);
                        if k == "$ref" {
                            if let Value::String(r) = item {
                                if let Some(name) = self.model_ref_name(r) {
                                    if self.model_names.contains_key(&name) {
                                        *r = format!("https://apigateway.amazonaws.com/restapis/{}/models/{name}", self.api_id);
                                    } else {
                                        missing.push((ip, r.clone()));
                                    }
                                }
                            }
                        } else {
                            stack.push((ip, item));
                        }
                    }
                }
                Value::Array(a) => {
                    for (i, item) in a.iter_mut().enumerate() {
                        stack.push((format!("{p}/{i}"), item));
                    }
                }
                _ => {}
            }
        }
        for (ip, r) in missing {
            self.aws_warn(
                &ip,
                format!("Invalid model reference specified: {r} (no such model)"),
            );
        }
        s.to_string()
    }

    fn aws_warn(&mut self, ptr: &str, msg: String) {
        self.aws_warnings.push(msg.clone());
        self.cx.warn(ptr, msg);
    }

    /// `#/definitions/X` or `#/components/schemas/X` → `X`.
    fn model_ref_name(&self, r: &str) -> Option<String> {
        let prefix = match self.version {
            Version::Swagger2 => "#/definitions/",
            Version::OpenApi3 => "#/components/schemas/",
        };
        r.strip_prefix(prefix)
            .map(|n| n.replace("~1", "/").replace("~0", "~"))
    }

    fn security_schemes(&mut self, root: &Map<String, Value>) {
        let (ptr, schemes) = match self.version {
            Version::Swagger2 => (
                "/securityDefinitions".to_string(),
                root.get("securityDefinitions"),
            ),
            Version::OpenApi3 => (
                "/components/securitySchemes".to_string(),
                root.get("components")
                    .and_then(|c| c.get("securitySchemes")),
            ),
        };
        let Some(schemes) = schemes else { return };
        let Some(m) = self.cx.obj(schemes, &ptr) else {
            return;
        };
        for (name, scheme) in m {
            let p = join(&ptr, name);
            let Some(sm) = self.cx.obj(scheme, &p) else {
                continue;
            };
            let ty = sm.get("type").and_then(Value::as_str).unwrap_or("");
            let authtype = sm
                .get("x-amazon-apigateway-authtype")
                .and_then(Value::as_str);
            let header_name = sm
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("Authorization")
                .to_string();
            for (k, _) in sm {
                if k.starts_with("x-amazon-apigateway-")
                    && k != "x-amazon-apigateway-authtype"
                    && k != "x-amazon-apigateway-authorizer"
                {
                    self.cx
                        .warn(&join(&p, k), format!("unknown extension {k} (ignored)"));
                }
            }
            let kind = if let Some(auth) = sm.get("x-amazon-apigateway-authorizer") {
                self.authorizer(
                    name,
                    auth,
                    &join(&p, "x-amazon-apigateway-authorizer"),
                    authtype,
                    &header_name,
                )
            } else if authtype.is_some_and(|a| a.eq_ignore_ascii_case("awsSigv4")) {
                Scheme::Sigv4
            } else if ty == "apiKey" {
                Scheme::ApiKey
            } else {
                self.cx.warn(
                    &p,
                    format!("security scheme {name:?} of type {ty:?} has no x-amazon-apigateway-authorizer; API Gateway REST APIs ignore it"),
                );
                Scheme::Ignored
            };
            self.schemes.insert(name.clone(), kind);
        }
    }

    fn authorizer(
        &mut self,
        name: &str,
        v: &Value,
        ptr: &str,
        authtype: Option<&str>,
        header: &str,
    ) -> Scheme {
        let Some(m) = self.cx.obj(v, ptr) else {
            return Scheme::Ignored;
        };
        let id = self.unique_id(&[&self.api_id.clone(), "authorizer", name], 6);
        let mut a = Authorizer {
            id: id.clone(),
            name: name.to_string(),
            kind: AuthorizerType::Token,
            auth_type: authtype.map(str::to_string),
            authorizer_uri: None,
            authorizer_credentials: None,
            identity_source: None,
            identity_validation_expression: None,
            authorizer_result_ttl_in_seconds: None,
            provider_arns: Vec::new(),
        };
        let mut have_type = false;
        for (k, item) in m {
            let p = join(ptr, k);
            match k.as_str() {
                "type" => {
                    if let Some(t) = self.cx.str(item, &p) {
                        have_type = true;
                        match t.to_ascii_lowercase().as_str() {
                            "token" => a.kind = AuthorizerType::Token,
                            "request" => a.kind = AuthorizerType::Request,
                            "cognito_user_pools" => a.kind = AuthorizerType::CognitoUserPools,
                            "jwt" => {
                                self.cx.error(&p, "authorizer type \"jwt\" applies to HTTP APIs only; REST APIs take token, request or cognito_user_pools");
                            }
                            _ => self.cx.error(&p, format!("unknown authorizer type {t:?}; expected token, request or cognito_user_pools")),
                        }
                    }
                }
                "authorizerUri" => a.authorizer_uri = self.cx.str(item, &p).map(str::to_string),
                "authorizerCredentials" => {
                    a.authorizer_credentials = self.cx.str(item, &p).map(str::to_string)
                }
                "identitySource" => a.identity_source = self.cx.str(item, &p).map(str::to_string),
                "identityValidationExpression" => {
                    if let Some(s) = self.cx.str(item, &p) {
                        if let Err(e) = regex::Regex::new(&format!("^(?:{s})$")) {
                            self.cx.error(
                                &p,
                                format!(
                                    "identityValidationExpression does not compile: {}",
                                    first_line_of_regex_error(&e)
                                ),
                            );
                        }
                        a.identity_validation_expression = Some(s.to_string());
                    }
                }
                "authorizerResultTtlInSeconds" => {
                    if let Some(n) = self.cx.u64(item, &p) {
                        if n > 3600 {
                            self.cx.error(
                                &p,
                                format!("authorizerResultTtlInSeconds {n} is out of range 0..3600"),
                            );
                        } else {
                            a.authorizer_result_ttl_in_seconds = u32::try_from(n).ok();
                        }
                    }
                }
                "providerARNs" => a.provider_arns = self.cx.str_list(item, &p),
                "authorizerPayloadFormatVersion" | "enableSimpleResponses" | "jwtConfiguration" => {
                    self.cx.warn(
                        &p,
                        format!("{k} applies to HTTP API authorizers only (ignored)"),
                    );
                }
                other => self
                    .cx
                    .warn(&p, format!("unknown authorizer field {other:?} (ignored)")),
            }
        }
        if !have_type {
            self.cx.error(
                ptr,
                "authorizer type is required: token, request or cognito_user_pools",
            );
        }
        match a.kind {
            AuthorizerType::Token | AuthorizerType::Request => {
                if a.authorizer_uri.is_none() {
                    self.cx.error(
                        ptr,
                        "authorizerUri is required for token and request authorizers",
                    );
                }
                if a.kind == AuthorizerType::Token && a.identity_source.is_none() {
                    a.identity_source = Some(format!("method.request.header.{header}"));
                }
            }
            AuthorizerType::CognitoUserPools => {
                if a.provider_arns.is_empty() {
                    self.cx.error(
                        ptr,
                        "providerARNs is required for cognito_user_pools authorizers",
                    );
                }
                if a.identity_source.is_none() {
                    a.identity_source = Some(format!("method.request.header.{header}"));
                }
            }
        }
        let kind = if a.kind == AuthorizerType::CognitoUserPools {
            AuthorizationType::CognitoUserPools
        } else {
            AuthorizationType::Custom
        };
        self.authorizers.push(a);
        Scheme::Authorizer { id, kind }
    }

    fn request_validators(&mut self, root: &Map<String, Value>) {
        let ptr = "/x-amazon-apigateway-request-validators";
        if let Some(v) = root.get("x-amazon-apigateway-request-validators") {
            if let Some(m) = self.cx.obj(v, ptr) {
                for (name, body) in m {
                    let p = join(ptr, name);
                    let Some(bm) = self.cx.obj(body, &p) else {
                        continue;
                    };
                    let id = self.unique_id(&[&self.api_id.clone(), "validator", name], 6);
                    let mut rv = RequestValidator {
                        id: id.clone(),
                        name: name.clone(),
                        validate_request_body: false,
                        validate_request_parameters: false,
                    };
                    for (k, item) in bm {
                        let ip = join(&p, k);
                        match k.as_str() {
                            "validateRequestBody" => {
                                rv.validate_request_body = self.cx.bool(item, &ip).unwrap_or(false)
                            }
                            "validateRequestParameters" => {
                                rv.validate_request_parameters =
                                    self.cx.bool(item, &ip).unwrap_or(false)
                            }
                            other => self.cx.warn(
                                &ip,
                                format!("unknown request validator field {other:?} (ignored)"),
                            ),
                        }
                    }
                    self.validator_ids.insert(name.clone(), id);
                    self.validators.push(rv);
                }
            }
        }
        let dptr = "/x-amazon-apigateway-request-validator";
        if let Some(v) = root.get("x-amazon-apigateway-request-validator") {
            if let Some(name) = self.cx.str(v, dptr) {
                match self.validator_ids.get(name) {
                    Some(id) => self.default_validator = Some((id.clone(), dptr.to_string())),
                    None => self.unknown_validator(dptr, name),
                }
            }
        }
    }

    fn unknown_validator(&mut self, ptr: &str, name: &str) {
        let known: Vec<&str> = self.validators.iter().map(|v| v.name.as_str()).collect();
        let hint = did_you_mean(name, &known);
        self.cx.error(
            ptr,
            format!("unknown request validator {name:?}{hint}; define it under x-amazon-apigateway-request-validators"),
        );
    }

    // -- resources -----------------------------------------------------------------------------

    /// Creates (or finds) the resource for `path`, with its ancestors. `None` on invalid paths.
    fn ensure_resource(&mut self, path: &str, ptr: &str) -> Option<usize> {
        if path == "/" {
            return Some(0);
        }
        let Some(rest) = path.strip_prefix('/') else {
            self.cx
                .error(ptr, format!("path {path:?} must start with '/'"));
            return None;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut kinds = Vec::with_capacity(parts.len());
        let mut ok = true;
        for part in &parts {
            match validate::path_part(part) {
                Ok(k) => kinds.push(k),
                Err(e) => {
                    self.cx.error(ptr, format!("invalid path {path:?}: {e}"));
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            return None;
        }
        let mut parent = 0usize;
        let mut cur = String::new();
        for (part, kind) in parts.iter().zip(kinds) {
            cur.push('/');
            cur.push_str(part);
            if let Some(&idx) = self.resource_index.get(&cur) {
                parent = idx;
                continue;
            }
            // Rules against the siblings and the parent.
            let parent_part = self
                .resources
                .get(parent)
                .and_then(|r| r.path_part.clone())
                .unwrap_or_default();
            if validate::path_part(&parent_part) == Ok(validate::PathPart::Greedy) {
                self.cx.error(
                    ptr,
                    format!("invalid path {path:?}: Cannot create a child of a resource with a greedy path variable: {parent_part}"),
                );
                return None;
            }
            if kind != validate::PathPart::Literal {
                let sibling = self.children.get(&parent).and_then(|kids| {
                    kids.iter()
                        .filter_map(|&k| self.resources.get(k).and_then(|r| r.path_part.clone()))
                        .find(|p| p.starts_with('{'))
                });
                if let Some(sib) = sibling {
                    self.cx.error(
                        ptr,
                        format!("invalid path {path:?}: A sibling ({sib}) of this resource already has a variable path part -- only one is allowed"),
                    );
                    return None;
                }
            }
            let parent_id = self.resources.get(parent).map(|r| r.id.clone());
            let id = self.unique_id(&[&self.api_id.clone(), &cur], 6);
            let idx = self.resources.len();
            self.resources.push(Resource {
                id,
                parent_id,
                path_part: Some((*part).to_string()),
                path: cur.clone(),
                resource_methods: BTreeMap::new(),
            });
            self.resource_index.insert(cur.clone(), idx);
            self.children.entry(parent).or_default().push(idx);
            parent = idx;
        }
        Some(parent)
    }

    /// Follows local `$ref`s (`#/...`). Returns the target and its pointer.
    fn resolve(&mut self, v: &'r Value, ptr: &str) -> Option<(&'r Value, String)> {
        let mut cur = v;
        let mut cur_ptr = ptr.to_string();
        for _ in 0..32 {
            let Some(r) = cur.get("$ref") else {
                return Some((cur, cur_ptr));
            };
            let rp = join(&cur_ptr, "$ref");
            let Some(r) = r.as_str() else {
                self.cx.error(&rp, "$ref must be a string");
                return None;
            };
            let Some(target) = r.strip_prefix('#') else {
                self.cx.error(&rp, format!("external reference {r:?} is not supported; only local references (#/...) are"));
                return None;
            };
            match self.root.pointer(target) {
                Some(t) => {
                    cur = t;
                    cur_ptr = target.to_string();
                }
                None => {
                    self.cx
                        .error(&rp, format!("reference {r:?} does not resolve"));
                    return None;
                }
            }
        }
        self.cx.error(ptr, "too many nested references (cycle?)");
        None
    }

    fn path_item(&mut self, path: &str, item: &'r Value) {
        let ptr = join("/paths", path);
        let Some((item, item_ptr)) = self.resolve(item, &ptr) else {
            return;
        };
        let Some(m) = self.cx.obj(item, &item_ptr) else {
            return;
        };
        let Some(res_idx) = self.ensure_resource(path, &ptr) else {
            return;
        };
        let shared_params = m
            .get("parameters")
            .map(|p| (p, join(&item_ptr, "parameters")));
        for (k, op) in m {
            let op_ptr = join(&item_ptr, k);
            let http_method = if k == ANY_METHOD {
                "ANY"
            } else if let Some((_, m)) = OPERATIONS.iter().find(|(o, _)| o == k) {
                m
            } else {
                match k.as_str() {
                    "parameters" | "summary" | "description" | "servers" | "$ref" => {}
                    k if k.starts_with("x-amazon-apigateway-") => {
                        self.cx
                            .warn(&op_ptr, format!("unknown extension {k} (ignored)"));
                    }
                    k if k.starts_with("x-") => {}
                    other => {
                        let names: Vec<&str> = OPERATIONS
                            .iter()
                            .map(|(o, _)| *o)
                            .chain([ANY_METHOD])
                            .collect();
                        self.cx.error(
                            &op_ptr,
                            format!(
                                "unknown operation {other:?}{}: Invalid HttpMethod specified. Valid options are GET,PUT,POST,DELETE,PATCH,OPTIONS,HEAD,ANY (written get, put, post, delete, patch, options, head, x-amazon-apigateway-any-method)",
                                did_you_mean(other, &names)
                            ),
                        );
                    }
                }
                continue;
            };
            let resource_path = self
                .resources
                .get(res_idx)
                .map(|r| r.path.clone())
                .unwrap_or_default();
            if let Some(method) = self.operation(
                op,
                &op_ptr,
                http_method,
                &resource_path,
                shared_params.clone(),
            ) {
                self.method_pointers.insert(
                    (resource_path.clone(), http_method.to_string()),
                    op_ptr.clone(),
                );
                if let Some(r) = self.resources.get_mut(res_idx) {
                    r.resource_methods.insert(http_method.to_string(), method);
                }
            }
        }
    }

    fn operation(
        &mut self,
        op: &'r Value,
        ptr: &str,
        http_method: &str,
        resource_path: &str,
        shared_params: Option<(&'r Value, String)>,
    ) -> Option<Method> {
        let m = self.cx.obj(op, ptr)?;
        let mut method = Method {
            http_method: http_method.to_string(),
            authorization_type: AuthorizationType::None,
            authorizer_id: None,
            api_key_required: false,
            request_validator_id: self.default_validator.as_ref().map(|(id, _)| id.clone()),
            operation_name: None,
            request_parameters: BTreeMap::new(),
            request_models: BTreeMap::new(),
            authorization_scopes: Vec::new(),
            method_responses: BTreeMap::new(),
            method_integration: None,
        };
        let mut extra = MethodExtra {
            security: None,
            validator: self.default_validator.as_ref().map(|(_, p)| p.clone()),
        };

        // Parameters: path-level first, operation-level overrides by (in, name).
        let mut params: Vec<(&'r Value, String)> = Vec::new();
        if let Some((p, pp)) = shared_params {
            if let Some(list) = p.as_array() {
                params.extend(
                    list.iter()
                        .enumerate()
                        .map(|(i, v)| (v, format!("{pp}/{i}"))),
                );
            } else {
                self.cx
                    .error(&pp, format!("expected a list, got {}", kind(p)));
            }
        }
        if let Some(p) = m.get("parameters") {
            let pp = join(ptr, "parameters");
            if let Some(list) = p.as_array() {
                params.extend(
                    list.iter()
                        .enumerate()
                        .map(|(i, v)| (v, format!("{pp}/{i}"))),
                );
            } else {
                self.cx
                    .error(&pp, format!("expected a list, got {}", kind(p)));
            }
        }
        let consumes = self.media_types(m, "consumes");
        let produces = self.media_types(m, "produces");
        let mut names_by_location: HashMap<String, (String, String)> = HashMap::new();
        for (p, pp) in params {
            self.parameter(p, &pp, &mut method, &consumes, &mut names_by_location);
        }
        // Path template variables are always required path parameters when declared.
        for part in resource_path.split('/') {
            if let Some(name) = validate::path_variable_name(part) {
                let key = format!("method.request.path.{name}");
                // AWS does not require the declaration; record it so mappings can use it.
                method.request_parameters.entry(key).or_insert(true);
            }
        }

        for (k, v) in m {
            let p = join(ptr, k);
            match k.as_str() {
                "operationId" => method.operation_name = self.cx.scalar_string(v, &p),
                "requestBody" if self.version == Version::OpenApi3 => self.request_body(v, &p, &mut method),
                "responses" => self.responses(v, &p, &mut method, &produces),
                "security" => {
                    extra.security = Some(p.clone());
                    self.security(v, &p, &mut method);
                }
                "x-amazon-apigateway-auth" => {
                    extra.security.get_or_insert(p.clone());
                    if let Some(am) = self.cx.obj(v, &p) {
                        for (ak, av) in am {
                            let ap = join(&p, ak);
                            if ak == "type" {
                                if let Some(t) = self.cx.str(av, &ap) {
                                    match t.to_ascii_uppercase().as_str() {
                                        "NONE" => method.authorization_type = AuthorizationType::None,
                                        "AWS_IAM" => method.authorization_type = AuthorizationType::AwsIam,
                                        _ => self.cx.error(&ap, format!("unknown auth type {t:?}; expected NONE or AWS_IAM")),
                                    }
                                }
                            } else {
                                self.cx.warn(&ap, format!("unknown x-amazon-apigateway-auth field {ak:?} (ignored)"));
                            }
                        }
                    }
                }
                "x-amazon-apigateway-request-validator" => {
                    if let Some(name) = self.cx.str(v, &p) {
                        match self.validator_ids.get(name) {
                            Some(id) => {
                                method.request_validator_id = Some(id.clone());
                                extra.validator = Some(p.clone());
                            }
                            None => self.unknown_validator(&p, name),
                        }
                    }
                }
                "x-amazon-apigateway-integration" => {}
                k if k.starts_with("x-amazon-apigateway-") => self.cx.warn(&p, format!("unknown extension {k} (ignored)")),
                k if k.starts_with("x-") => {}
                "requestBody" => self.cx.warn(&p, "requestBody is an OpenAPI 3 field; Swagger 2.0 uses a body parameter (ignored)"),
                k if OPERATION_FIELDS.contains(&k) => {}
                other => {
                    let hint = did_you_mean(other, OPERATION_FIELDS);
                    self.cx.warn(&p, format!("unknown operation field {other:?} (ignored){hint}"));
                }
            }
        }
        if let Some(i) = m.get("x-amazon-apigateway-integration") {
            let ip = join(ptr, "x-amazon-apigateway-integration");
            method.method_integration =
                self.integration(i, &ip, &method, resource_path, http_method);
        }
        self.method_extra
            .insert((resource_path.to_string(), http_method.to_string()), extra);
        Some(method)
    }

    /// Operation-level `consumes`/`produces`, else root-level, else `application/json` (Swagger 2).
    fn media_types(&mut self, op: &Map<String, Value>, field: &str) -> Vec<String> {
        let from = |v: Option<&Value>| -> Option<Vec<String>> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .filter(|v| !v.is_empty())
        };
        from(op.get(field))
            .or_else(|| from(self.root.get(field)))
            .unwrap_or_else(|| vec!["application/json".to_string()])
    }

    fn parameter(
        &mut self,
        p: &'r Value,
        ptr: &str,
        method: &mut Method,
        consumes: &[String],
        names: &mut HashMap<String, (String, String)>,
    ) {
        let Some((p, ptr)) = self.resolve(p, ptr) else {
            return;
        };
        let Some(m) = self.cx.obj(p, &ptr) else {
            return;
        };
        let Some(name) = m
            .get("name")
            .and_then(|n| self.cx.scalar_string(n, &join(&ptr, "name")))
        else {
            if !m.contains_key("name") {
                self.cx.error(&ptr, "parameter `name` is required");
            }
            return;
        };
        let Some(location) = m
            .get("in")
            .and_then(|n| self.cx.str(n, &join(&ptr, "in")).map(str::to_string))
        else {
            if !m.contains_key("in") {
                self.cx
                    .error(&ptr, "parameter `in` is required (path, query, header)");
            }
            return;
        };
        let required = m
            .get("required")
            .and_then(|r| self.cx.bool(r, &join(&ptr, "required")))
            .unwrap_or(false);
        let loc = match location.as_str() {
            "path" => "path",
            "query" => "querystring",
            "header" => "header",
            "body" if self.version == Version::Swagger2 => {
                if let Some(schema) = m.get("schema") {
                    let sp = join(&ptr, "schema");
                    if let Some(model) = self.schema_model(schema, &sp) {
                        for ct in consumes {
                            method.request_models.insert(ct.clone(), model.clone());
                        }
                    }
                }
                return;
            }
            "formData" | "cookie" => {
                self.cx.warn(&join(&ptr, "in"), format!("{location} parameters are not supported by API Gateway REST APIs (ignored)"));
                return;
            }
            other => {
                self.cx.error(
                    &join(&ptr, "in"),
                    format!("unknown parameter location {other:?}; expected path, query or header"),
                );
                return;
            }
        };
        if let Some((other_loc, _)) = names.get(&name) {
            if other_loc != loc {
                self.cx.error(
                    &ptr,
                    format!("parameter {name:?} is declared in both {other_loc} and {loc}: Parameter names must be unique across querystring, header and path"),
                );
                return;
            }
        }
        names.insert(name.clone(), (loc.to_string(), ptr.clone()));
        method.request_parameters.insert(
            format!("method.request.{loc}.{name}"),
            loc == "path" || required,
        );
    }

    /// A schema used by a request or response: `$ref` to a model → its name; an inline schema →
    /// a generated model (AWS names them `MODEL` + id).
    fn schema_model(&mut self, schema: &Value, ptr: &str) -> Option<String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return match self.model_ref_name(r) {
                Some(name) if self.model_names.contains_key(&name) => Some(name),
                _ => {
                    self.aws_warn(
                        &join(ptr, "$ref"),
                        format!("Invalid model reference specified: {r} (no such model)"),
                    );
                    None
                }
            };
        }
        if !schema.is_object() {
            self.cx.error(
                ptr,
                format!("a schema must be an object, got {}", kind(schema)),
            );
            return None;
        }
        if schema.as_object().is_some_and(Map::is_empty) {
            return None;
        }
        let id = self.unique_id(&[&self.api_id.clone(), "inline-model", ptr], 6);
        let name = format!("MODEL{id}");
        let text = self.rewrite_schema(schema, ptr);
        self.model_names.insert(name.clone(), self.models.len());
        self.models.push(Model {
            id,
            name: name.clone(),
            description: None,
            schema: Some(text),
            content_type: "application/json".into(),
        });
        Some(name)
    }

    fn request_body(&mut self, v: &'r Value, ptr: &str, method: &mut Method) {
        let Some((v, ptr)) = self.resolve(v, ptr) else {
            return;
        };
        let Some(m) = self.cx.obj(v, &ptr) else {
            return;
        };
        if let Some(content) = m.get("content") {
            let cp = join(&ptr, "content");
            if let Some(cm) = self.cx.obj(content, &cp) {
                for (ct, media) in cm {
                    let mp = join(&cp, ct);
                    if let Some(schema) = media.get("schema") {
                        if let Some(model) = self.schema_model(schema, &join(&mp, "schema")) {
                            method.request_models.insert(ct.clone(), model);
                        }
                    }
                }
            }
        }
    }

    fn responses(&mut self, v: &'r Value, ptr: &str, method: &mut Method, produces: &[String]) {
        let Some(m) = self.cx.obj(v, ptr) else { return };
        for (code, resp) in m {
            let rp = join(ptr, code);
            if code == "default" {
                self.cx.warn(&rp, "the `default` response is not imported: API Gateway method responses need a status code (ignored)");
                continue;
            }
            if code.starts_with("x-") {
                continue;
            }
            if !is_status_code(code) {
                self.cx.error(
                    &rp,
                    format!("invalid status code {code:?}; expected a 3-digit code 100-599"),
                );
                continue;
            }
            let Some((resp, rp)) = self.resolve(resp, &rp) else {
                continue;
            };
            let Some(rm) = self.cx.obj(resp, &rp) else {
                continue;
            };
            let mut mr = MethodResponse {
                status_code: code.clone(),
                response_parameters: BTreeMap::new(),
                response_models: BTreeMap::new(),
            };
            if let Some(h) = rm.get("headers") {
                let hp = join(&rp, "headers");
                if let Some(hm) = self.cx.obj(h, &hp) {
                    for (name, _) in hm {
                        mr.response_parameters
                            .insert(format!("method.response.header.{name}"), false);
                    }
                }
            }
            match self.version {
                Version::OpenApi3 => {
                    if let Some(content) = rm.get("content") {
                        let cp = join(&rp, "content");
                        if let Some(cm) = self.cx.obj(content, &cp) {
                            for (ct, media) in cm {
                                if let Some(schema) = media.get("schema") {
                                    if let Some(model) =
                                        self.schema_model(schema, &join(&join(&cp, ct), "schema"))
                                    {
                                        mr.response_models.insert(ct.clone(), model);
                                    }
                                }
                            }
                        }
                    }
                }
                Version::Swagger2 => {
                    if let Some(schema) = rm.get("schema") {
                        if let Some(model) = self.schema_model(schema, &join(&rp, "schema")) {
                            for ct in produces {
                                mr.response_models.insert(ct.clone(), model.clone());
                            }
                        }
                    }
                }
            }
            method.method_responses.insert(code.clone(), mr);
        }
    }

    fn security(&mut self, v: &Value, ptr: &str, method: &mut Method) {
        let Some(list) = self.cx.arr(v, ptr) else {
            return;
        };
        let mut authorizer: Option<(String, String)> = None;
        for (i, req) in list.iter().enumerate() {
            let rp = format!("{ptr}/{i}");
            let Some(rm) = self.cx.obj(req, &rp) else {
                continue;
            };
            for (name, scopes) in rm {
                let sp = join(&rp, name);
                match self.schemes.get(name).cloned() {
                    None => {
                        let known: Vec<&str> = self.schemes.keys().map(String::as_str).collect();
                        let hint = did_you_mean(name, &known);
                        self.cx
                            .error(&sp, format!("unknown security scheme {name:?}{hint}"));
                    }
                    Some(Scheme::ApiKey) => method.api_key_required = true,
                    Some(Scheme::Sigv4) => method.authorization_type = AuthorizationType::AwsIam,
                    Some(Scheme::Ignored) => {}
                    Some(Scheme::Authorizer { id, kind }) => {
                        if let Some((other, _)) = &authorizer {
                            if other != name {
                                self.cx.error(&sp, format!("a method can use only one authorizer; {other:?} is already set"));
                                continue;
                            }
                        }
                        authorizer = Some((name.clone(), id.clone()));
                        method.authorization_type = kind;
                        method.authorizer_id = Some(id);
                        let scopes = self.cx.str_list(scopes, &sp);
                        if !scopes.is_empty() {
                            if kind == AuthorizationType::CognitoUserPools {
                                method.authorization_scopes = scopes;
                            } else {
                                self.cx.warn(&sp, "authorization scopes apply to Cognito user pool authorizers only (ignored)");
                            }
                        }
                    }
                }
            }
        }
    }

    // -- integration -----------------------------------------------------------------------------

    fn integration(
        &mut self,
        v: &Value,
        ptr: &str,
        method: &Method,
        resource_path: &str,
        http_method: &str,
    ) -> Option<Integration> {
        let m = self.cx.obj(v, ptr)?;
        let kind = match m.get("type") {
            None => {
                self.cx.error(
                    ptr,
                    format!("integration type is required; expected one of {INTEGRATION_TYPES}"),
                );
                None
            }
            Some(t) => {
                let tp = join(ptr, "type");
                self.cx.str(t, &tp).and_then(|t| {
                    let k = match t.to_ascii_lowercase().as_str() {
                        "http" => Some(IntegrationType::Http),
                        "http_proxy" => Some(IntegrationType::HttpProxy),
                        "mock" => Some(IntegrationType::Mock),
                        "aws" => Some(IntegrationType::Aws),
                        "aws_proxy" => Some(IntegrationType::AwsProxy),
                        _ => None,
                    };
                    if k.is_none() {
                        self.cx.error(&tp, format!("unknown integration type {t:?}; expected one of {INTEGRATION_TYPES}"));
                    }
                    k
                })
            }
        };
        let mut integ = Integration {
            kind: kind.unwrap_or(IntegrationType::Mock),
            http_method: None,
            uri: None,
            connection_type: ConnectionType::Internet,
            connection_id: None,
            credentials: None,
            request_parameters: BTreeMap::new(),
            request_templates: Vec::new(),
            passthrough_behavior: PassthroughBehavior::WhenNoMatch,
            content_handling: None,
            timeout_in_millis: DEFAULT_TIMEOUT_MILLIS,
            cache_namespace: None,
            cache_key_parameters: Vec::new(),
            tls_config: None,
            integration_responses: Vec::new(),
        };
        let mut responses_ptr = None;
        for (k, item) in m {
            let p = join(ptr, k);
            match k.as_str() {
                "type" => {}
                "uri" => integ.uri = self.cx.str(item, &p).map(str::to_string),
                "httpMethod" => {
                    if let Some(s) = self.cx.str(item, &p) {
                        let up = s.to_ascii_uppercase();
                        if up.is_empty() {
                            // Reported below as missing.
                        } else if HTTP_METHODS.contains(&up.as_str()) {
                            integ.http_method = Some(up);
                        } else {
                            self.cx.error(&p, format!("Invalid HttpMethod specified: {s:?}. Valid options are GET,PUT,POST,DELETE,PATCH,OPTIONS,HEAD,ANY"));
                        }
                    }
                }
                "credentials" => integ.credentials = self.cx.str(item, &p).map(str::to_string),
                "requestParameters" => {
                    if let Some(pm) = self.cx.obj(item, &p) {
                        for (key, val) in pm {
                            let kp = join(&p, key);
                            let Value::String(val) = val else {
                                let got = match val {
                                    Value::String(_) => String::new(),
                                    other => other.to_string(),
                                };
                                self.aws_warn(
                                    &kp,
                                    format!(
                                        "Invalid format for 'requestParameters'. Expected type string for property '{key}' of resource '{resource_path}' and method '{http_method}' but got '{got}'"
                                    ),
                                );
                                continue;
                            };
                            if let Err(e) = validate::integration_request_key(key) {
                                self.cx.error(&kp, e);
                                continue;
                            }
                            if let Err(e) = validate::integration_request_value(val) {
                                self.cx.error(&kp, e);
                                continue;
                            }
                            if let Some((loc, name)) = validate::referenced_method_parameter(val) {
                                if !method_declares(method, loc, name) {
                                    self.cx.error(
                                        &kp,
                                        format!(
                                            "Invalid mapping expression parameter specified: {val} (declare the {} parameter {name:?} on the operation)",
                                            loc.trim_start_matches("multivalue")
                                        ),
                                    );
                                    continue;
                                }
                            }
                            integ.request_parameters.insert(key.clone(), val.clone());
                        }
                    }
                }
                "requestTemplates" => integ.request_templates = self.templates(item, &p),
                "passthroughBehavior" => {
                    if let Some(s) = self.cx.str(item, &p) {
                        match s.to_ascii_uppercase().as_str() {
                            "WHEN_NO_MATCH" => integ.passthrough_behavior = PassthroughBehavior::WhenNoMatch,
                            "WHEN_NO_TEMPLATES" => integ.passthrough_behavior = PassthroughBehavior::WhenNoTemplates,
                            "NEVER" => integ.passthrough_behavior = PassthroughBehavior::Never,
                            _ => self.cx.error(&p, format!("unknown passthroughBehavior {s:?}; expected when_no_match, when_no_templates or never")),
                        }
                    }
                }
                "contentHandling" => integ.content_handling = self.content_handling(item, &p),
                "timeoutInMillis" => {
                    if let Some(n) = self.cx.u64(item, &p) {
                        if (MIN_TIMEOUT_MILLIS..=DEFAULT_TIMEOUT_MILLIS).contains(&n) {
                            integ.timeout_in_millis = n;
                        } else if (DEFAULT_TIMEOUT_MILLIS..=RAISED_TIMEOUT_MILLIS).contains(&n) {
                            // AWS takes this from accounts whose quota was raised (Regional and
                            // private APIs); served as written.
                            integ.timeout_in_millis = n;
                            self.cx.warn(&p, format!("timeoutInMillis {n} is above AWS's default maximum of {DEFAULT_TIMEOUT_MILLIS} ms: AWS accepts it only with a raised integration timeout quota (Regional and private APIs)"));
                        } else {
                            self.cx.error(&p, format!("Timeout should be between {MIN_TIMEOUT_MILLIS} ms and {DEFAULT_TIMEOUT_MILLIS} ms, or up to {RAISED_TIMEOUT_MILLIS} ms with a raised quota (got {n})"));
                        }
                    }
                }
                "cacheNamespace" => {
                    integ.cache_namespace = self.cx.str(item, &p).map(str::to_string)
                }
                "cacheKeyParameters" => {
                    let list = self.cx.str_list(item, &p);
                    for (i, key) in list.iter().enumerate() {
                        let declared = validate::referenced_method_parameter(key)
                            .is_some_and(|(loc, name)| method_declares(method, loc, name));
                        if !declared {
                            self.cx.error(&format!("{p}/{i}"), format!("Invalid cache key parameter specified: {key:?} (expected a declared method.request.{{path|querystring|header}}.NAME)"));
                        }
                    }
                    integ.cache_key_parameters = list;
                }
                "connectionType" => {
                    if let Some(s) = self.cx.str(item, &p) {
                        match s.to_ascii_uppercase().as_str() {
                            "INTERNET" => integ.connection_type = ConnectionType::Internet,
                            "VPC_LINK" => integ.connection_type = ConnectionType::VpcLink,
                            _ => self.cx.error(
                                &p,
                                format!(
                                    "unknown connectionType {s:?}; expected INTERNET or VPC_LINK"
                                ),
                            ),
                        }
                    }
                }
                "connectionId" => integ.connection_id = self.cx.str(item, &p).map(str::to_string),
                "tlsConfig" => {
                    if let Some(tm) = self.cx.obj(item, &p) {
                        let mut tls = TlsConfig::default();
                        for (tk, tv) in tm {
                            let tp = join(&p, tk);
                            match tk.as_str() {
                                "insecureSkipVerification" => tls.insecure_skip_verification = self.cx.bool(tv, &tp).unwrap_or(false),
                                "serverNameToVerify" => self.cx.warn(&tp, "serverNameToVerify applies to HTTP API private integrations only (ignored)"),
                                other => self.cx.warn(&tp, format!("unknown tlsConfig field {other:?} (ignored)")),
                            }
                        }
                        integ.tls_config = Some(tls);
                    }
                }
                "responses" => responses_ptr = Some((item, p)),
                k if HTTP_API_INTEGRATION_FIELDS.contains(&k) => {
                    self.cx.warn(
                        &p,
                        format!("integration field {k:?} applies to HTTP APIs only (ignored)"),
                    );
                }
                other => {
                    let hint = did_you_mean(other, INTEGRATION_FIELDS);
                    self.cx.warn(
                        &p,
                        format!("unknown integration field {other:?} (ignored){hint}"),
                    );
                }
            }
        }
        let kind = kind?;
        // Per-type rules (§6.1).
        if kind != IntegrationType::Mock {
            let missing_method = match m.get("httpMethod") {
                None => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            };
            if missing_method {
                self.cx.error(ptr, "Enumeration value for HttpMethod must be non-empty (integration httpMethod is required except for mock integrations)");
            }
            match (&integ.uri, kind) {
                (None, IntegrationType::Http | IntegrationType::HttpProxy) => {
                    if integ.connection_type == ConnectionType::Internet {
                        self.cx.error(ptr, "Invalid HTTP endpoint specified for URI: integration uri is required");
                    }
                }
                (None, _) => self.cx.error(ptr, "Invalid ARN specified in the request: integration uri is required for aws and aws_proxy integrations"),
                (Some(uri), IntegrationType::Http | IntegrationType::HttpProxy) => {
                    if let Err(e) = validate::http_uri(uri) {
                        self.cx.error(&join(ptr, "uri"), e);
                    } else {
                        self.check_uri_path_variables(uri, &integ, &join(ptr, "uri"));
                    }
                }
                (Some(uri), _) => {
                    if let Err(e) = validate::aws_uri(uri) {
                        self.cx.error(&join(ptr, "uri"), e);
                    }
                }
            }
        }
        if integ.connection_type == ConnectionType::VpcLink && integ.connection_id.is_none() {
            self.cx.error(
                ptr,
                "connectionId is required when connectionType is VPC_LINK",
            );
        }
        if integ.cache_namespace.is_none() {
            // AWS fills it with the resource id.
            integ.cache_namespace = self
                .resource_index
                .get(resource_path)
                .and_then(|&i| self.resources.get(i))
                .map(|r| r.id.clone());
        }
        if let Some((item, p)) = responses_ptr {
            integ.integration_responses = self.integration_responses(item, &p, method);
        }
        Some(integ)
    }

    /// Warns about `{name}` URI variables that no `integration.request.path.name` fills.
    fn check_uri_path_variables(&mut self, uri: &str, integ: &Integration, ptr: &str) {
        let bytes = uri.as_bytes();
        let mut i = 0;
        while let Some(off) = uri[i..].find('{') {
            let start = i + off;
            let Some(len) = uri[start..].find('}') else {
                break;
            };
            let name = &uri[start + 1..start + len];
            let is_stage_var = start > 0 && bytes.get(start - 1) == Some(&b'$');
            if !is_stage_var && !name.is_empty() {
                let name = name.trim_end_matches('+');
                if !integ
                    .request_parameters
                    .contains_key(&format!("integration.request.path.{name}"))
                {
                    self.cx.warn(
                        ptr,
                        format!("URI path variable {{{name}}} has no integration.request.path.{name} mapping in requestParameters; it will be sent literally"),
                    );
                }
            }
            i = start + len + 1;
        }
    }

    fn content_handling(&mut self, v: &Value, ptr: &str) -> Option<ContentHandling> {
        let s = self.cx.str(v, ptr)?;
        match s.to_ascii_uppercase().as_str() {
            "CONVERT_TO_TEXT" => Some(ContentHandling::ConvertToText),
            "CONVERT_TO_BINARY" => Some(ContentHandling::ConvertToBinary),
            _ => {
                self.cx.error(ptr, format!("unknown contentHandling {s:?}; expected CONVERT_TO_TEXT or CONVERT_TO_BINARY"));
                None
            }
        }
    }

    /// Content type → template, in declaration order. `null` templates are kept as empty.
    fn templates(&mut self, v: &Value, ptr: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(m) = self.cx.obj(v, ptr) else {
            return out;
        };
        for (ct, t) in m {
            let p = join(ptr, ct);
            match t {
                Value::String(s) => out.push((ct.clone(), s.clone())),
                Value::Null => out.push((ct.clone(), String::new())),
                other => self.cx.error(
                    &p,
                    format!("a mapping template must be a string, got {}", kind(other)),
                ),
            }
        }
        out
    }

    fn integration_responses(
        &mut self,
        v: &Value,
        ptr: &str,
        method: &Method,
    ) -> Vec<IntegrationResponse> {
        let mut out: Vec<IntegrationResponse> = Vec::new();
        let mut seen_status: HashMap<String, String> = HashMap::new();
        let Some(m) = self.cx.obj(v, ptr) else {
            return out;
        };
        for (pattern, body) in m {
            let p = join(ptr, pattern);
            let Some(bm) = self.cx.obj(body, &p) else {
                continue;
            };
            let selection_pattern = if pattern == "default" {
                None
            } else {
                if let Err(e) = regex::Regex::new(&format!("^(?:{pattern})$")) {
                    self.cx.error(
                        &p,
                        format!(
                            "selection pattern {pattern:?} cannot be compiled: {}",
                            first_line_of_regex_error(&e)
                        ),
                    );
                }
                Some(pattern.clone())
            };
            let mut ir = IntegrationResponse {
                status_code: String::new(),
                selection_pattern,
                response_parameters: BTreeMap::new(),
                response_templates: Vec::new(),
                content_handling: None,
            };
            match bm.get("statusCode") {
                None => self
                    .cx
                    .error(&p, "integration response statusCode is required"),
                Some(s) => {
                    let sp = join(&p, "statusCode");
                    if let Some(s) = self.cx.scalar_string(s, &sp) {
                        if is_status_code(&s) {
                            ir.status_code = s;
                        } else {
                            self.cx.error(
                                &sp,
                                format!(
                                    "invalid status code {s:?}; expected a 3-digit code 100-599"
                                ),
                            );
                        }
                    }
                }
            }
            let method_response = method.method_responses.get(&ir.status_code);
            for (k, item) in bm {
                let ip = join(&p, k);
                match k.as_str() {
                    "statusCode" => {}
                    "responseParameters" => {
                        if let Some(pm) = self.cx.obj(item, &ip) {
                            for (key, val) in pm {
                                let kp = join(&ip, key);
                                let Value::String(val) = val else {
                                    self.aws_warn(
                                        &kp,
                                        format!("Invalid format for 'responseParameters'. Expected type string for property '{key}' but got '{val}'"),
                                    );
                                    continue;
                                };
                                if let Err(e) = validate::method_response_header_key(key) {
                                    self.cx.error(&kp, e);
                                    continue;
                                }
                                if let Err(e) = validate::integration_response_value(val) {
                                    self.cx.error(&kp, e);
                                    continue;
                                }
                                if !ir.status_code.is_empty()
                                    && !method_response
                                        .is_some_and(|r| r.response_parameters.contains_key(key))
                                {
                                    self.cx.error(
                                        &kp,
                                        format!(
                                            "Invalid mapping expression parameter specified: {key} (declare the header under responses.{}.headers of the operation)",
                                            ir.status_code
                                        ),
                                    );
                                    continue;
                                }
                                ir.response_parameters.insert(key.clone(), val.clone());
                            }
                        }
                    }
                    "responseTemplates" => ir.response_templates = self.templates(item, &ip),
                    "contentHandling" => ir.content_handling = self.content_handling(item, &ip),
                    other => self.cx.warn(
                        &ip,
                        format!("unknown integration response field {other:?} (ignored)"),
                    ),
                }
            }
            if ir.status_code.is_empty() {
                continue;
            }
            if method_response.is_none() && !method.method_responses.is_empty() {
                self.cx.warn(
                    &p,
                    format!("status {} has no method response (declare it under the operation's responses); AWS answers 500 when this integration response is selected", ir.status_code),
                );
            }
            if let Some(prev) = seen_status.get(&ir.status_code) {
                self.cx.warn(
                    &p,
                    format!(
                        "integration response status {} is already used by pattern {prev:?}; API Gateway keeps one integration response per status code, so this one replaces it",
                        ir.status_code
                    ),
                );
                out.retain(|r| r.status_code != ir.status_code);
            }
            seen_status.insert(ir.status_code.clone(), pattern.clone());
            out.push(ir);
        }
        out
    }
}

fn method_declares(method: &Method, loc: &str, name: &str) -> bool {
    let plain = loc.trim_start_matches("multivalue");
    method
        .request_parameters
        .contains_key(&format!("method.request.{plain}.{name}"))
        || method
            .request_parameters
            .contains_key(&format!("method.request.{loc}.{name}"))
}

fn expand_execute_api(s: &mut String, prefix: &str) {
    if let Some(rest) = s.strip_prefix("execute-api:") {
        *s = format!("{prefix}{rest}");
    }
}

fn is_status_code(s: &str) -> bool {
    s.len() == 3
        && s.bytes().all(|b| b.is_ascii_digit())
        && (b'1'..=b'5').contains(&s.as_bytes()[0])
}

fn first_line_of_regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => {
            // The last line of regex's syntax error is the description ("error: ...").
            s.lines()
                .last()
                .map(|l| l.trim_start_matches("error: ").to_string())
                .unwrap_or_default()
        }
        other => other.to_string(),
    }
}
