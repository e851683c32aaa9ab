//! Turnpike's project file (`turnpike.yaml`); see `PROJECT_FILE.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Severity};
use crate::functions::{AwsSettings, FunctionConfig, FunctionDef};
use crate::load::{
    default_stage_name, file_error, finish_api, read_text, relative_to, LoadError, LoadOptions,
};
use crate::openapi::{self, ImportOptions};
use crate::rest::{
    AccessLogSettings, CanarySettings, MethodSetting, RestApiDefinition, Stage, HTTP_METHODS,
};
use crate::source::{join, Document};
use crate::unsupported::{unsupported_stage_features, Feature};
use crate::walk::{did_you_mean, Ctx};
use crate::{ids, validate, Project, DEFAULT_ACCOUNT_ID, DEFAULT_REGION};

const ROOT_KEYS: &[&str] = &[
    "listen",
    "region",
    "accountId",
    "apis",
    "functions",
    "aws",
    "websocketApis",
    "apiKeys",
    "usagePlans",
    "throttling",
    "iamAccessKeys",
    "authorizers",
    "dataDir",
];
const API_KEYS: &[&str] = &["definition", "id", "stages"];
const STAGE_KEYS: &[&str] = &[
    "name",
    "description",
    "variables",
    "accessLogSettings",
    "throttling",
    "methodSettings",
    "canarySettings",
    "tracingEnabled",
    "cacheClusterEnabled",
];
const METHOD_SETTING_KEYS: &[&str] = &[
    "metricsEnabled",
    "loggingLevel",
    "dataTraceEnabled",
    "throttlingBurstLimit",
    "throttlingRateLimit",
    "cachingEnabled",
    "cacheTtlInSeconds",
];
const MAX_STAGE_VARIABLES: usize = 100;

fn unknown_key(cx: &mut Ctx<'_>, ptr: &str, key: &str, what: &str, known: &[&str]) {
    let hint = did_you_mean(key, known);
    cx.error(
        ptr,
        format!(
            "unknown {what} key {key:?}{hint}; expected one of {}",
            known.join(", ")
        ),
    );
}

/// A stage as written, before it is checked against its API.
struct StageSpec {
    stage: Stage,
    ptr: String,
    /// Method settings keyed as written, with their pointers (checked against the API later).
    method_settings: Vec<(String, String, MethodSetting, Vec<&'static str>)>,
    /// Fields explicitly set in `*/*` by `throttling`.
    star: Option<(MethodSetting, Vec<&'static str>)>,
}

pub(crate) fn load(path: &Path, doc: Document, opts: &LoadOptions) -> Result<Project, LoadError> {
    let mut cx = Ctx::new(path, &doc.map);
    let mut project = Project {
        source: path.to_path_buf(),
        listen: None,
        region: DEFAULT_REGION.to_string(),
        account_id: DEFAULT_ACCOUNT_ID.to_string(),
        apis: Vec::new(),
        websocket_apis: Vec::new(),
        warnings: Vec::new(),
        functions: Vec::new(),
        aws: AwsSettings::default(),
        access: Default::default(),
    };
    let Some(root) = cx.obj(&doc.value, "") else {
        return Err(LoadError {
            diagnostics: cx.diags,
        });
    };
    for (k, v) in root {
        let p = join("", k);
        match k.as_str() {
            "listen" => {
                if let Some(s) = cx.scalar_string(v, &p) {
                    let ok = s
                        .rsplit_once(':')
                        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
                    if ok {
                        project.listen = Some(s);
                    } else {
                        cx.error(
                            &p,
                            format!("listen address {s:?} must be HOST:PORT, e.g. 127.0.0.1:4567"),
                        );
                    }
                }
            }
            "region" => {
                if let Some(s) = cx.str(v, &p) {
                    if is_region(s) {
                        project.region = s.to_string();
                    } else {
                        cx.error(
                            &p,
                            format!(
                                "invalid region {s:?}; expected a region name such as us-east-1"
                            ),
                        );
                    }
                }
            }
            "accountId" => {
                let s = match v {
                    Value::Number(n) if n.as_u64().is_some_and(|n| n < 1_000_000_000_000) => {
                        n.as_u64().map(|n| format!("{n:012}"))
                    }
                    other => cx.scalar_string(other, &p),
                };
                if let Some(s) = s {
                    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
                        project.account_id = s;
                    } else {
                        cx.error(
                            &p,
                            format!(
                                "invalid accountId {s:?}; expected 12 digits (quote it in YAML)"
                            ),
                        );
                    }
                }
            }
            "apis" | "websocketApis" => {}
            k if crate::access::ACCESS_ROOT_KEYS.contains(&k) => {
                crate::access::parse_root_key(&mut cx, k, v, &p, path, &mut project.access)
            }
            "functions" => project.functions = functions(&mut cx, v, &p, path),
            "aws" => match crate::functions::parse::<AwsSettings>(v) {
                Ok(a) => project.aws = a,
                Err(e) => cx.error(&p, format!("invalid aws section: {e}")),
            },
            other => unknown_key(&mut cx, &p, other, "project", ROOT_KEYS),
        }
    }

    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut seen_ids: HashMap<String, (usize, String)> = HashMap::new();
    let mut stage_found = false;
    if let Some(apis) = root.get("apis").and_then(|v| cx.arr(v, "/apis")) {
        if apis.is_empty() {
            cx.error("/apis", "apis must list at least one API");
        }
        for (i, api) in apis.iter().enumerate() {
            let ap = format!("/apis/{i}");
            let Some(am) = cx.obj(api, &ap) else { continue };
            for k in am.keys() {
                if !API_KEYS.contains(&k.as_str()) {
                    unknown_key(&mut cx, &join(&ap, k), k, "API", API_KEYS);
                }
            }
            let fixed_id = am.get("id").and_then(|v| {
                let p = join(&ap, "id");
                let s = cx.scalar_string(v, &p)?;
                if ids::is_valid_api_id(&s) {
                    Some(s)
                } else {
                    cx.error(
                        &p,
                        format!("invalid API id {s:?}; expected 10 characters [a-z0-9]"),
                    );
                    None
                }
            });
            let stage_specs = match am.get("stages") {
                None => None,
                Some(v) => {
                    let sp = join(&ap, "stages");
                    let specs = stages(&mut cx, v, &sp, path);
                    if let Some(Value::Array(a)) = am.get("stages") {
                        if a.is_empty() {
                            cx.error(&sp, "stages must list at least one stage (or be omitted for the default stage)");
                        }
                    }
                    Some(specs)
                }
            };
            let dp = join(&ap, "definition");
            let Some(def_rel) = am
                .get("definition")
                .and_then(|v| cx.str(v, &dp).map(str::to_string))
            else {
                if !am.contains_key("definition") {
                    cx.error(&ap, "definition is required: the OpenAPI/Swagger file of this API, relative to the project file");
                }
                continue;
            };
            let def_path = relative_to(path, &def_rel);
            let text = match read_text(&def_path) {
                Ok(t) => t,
                Err(e) => {
                    cx.error(&dp, e);
                    continue;
                }
            };
            let iopts = ImportOptions {
                api_id: fixed_id,
                region: project.region.clone(),
                account_id: project.account_id.clone(),
            };
            let imported = match openapi::import(&def_path, &text, &iopts) {
                Ok(i) => i,
                Err(d) => {
                    diags.extend(d);
                    continue;
                }
            };
            let api_id = imported.definition.api.id.clone();
            if let Some((other, other_title)) = seen_ids.get(&api_id) {
                cx.error(
                    &ap,
                    format!(
                        "API id {api_id:?} is already used by apis[{other}] ({other_title:?}); APIs with the same title get the same id, so set a distinct `id`"
                    ),
                );
                continue;
            }
            seen_ids.insert(api_id, (i, imported.definition.api.name.clone()));

            let mut stage_list = Vec::new();
            match stage_specs {
                None => {
                    let name = default_stage_name(&def_path, &imported, opts, &mut diags);
                    stage_list.push(Stage {
                        stage_name: name,
                        ..Stage::default()
                    });
                    stage_found = true;
                }
                Some(specs) => {
                    for spec in specs {
                        if opts
                            .stage
                            .as_ref()
                            .is_some_and(|s| *s != spec.stage.stage_name)
                        {
                            continue;
                        }
                        stage_found = true;
                        stage_list.push(finish_stage(&mut cx, spec, &imported.definition));
                    }
                    if stage_list.is_empty() {
                        if let Some(s) = &opts.stage {
                            cx.warn(
                                &ap,
                                format!(
                                    "API {:?} has no stage {s:?}; it is not served",
                                    imported.definition.api.name
                                ),
                            );
                            continue;
                        }
                    }
                }
            }
            project
                .apis
                .push(finish_api(&def_path, imported, stage_list, &mut diags));
        }
    } else if !root.contains_key("apis") && !root.contains_key("websocketApis") {
        cx.error("", "apis is required");
    }
    if let Some(v) = root.get("websocketApis") {
        let taken: Vec<String> = project
            .apis
            .iter()
            .map(|a| a.definition.api.id.clone())
            .collect();
        project.websocket_apis =
            crate::v2::load_section(&mut cx, v, "/websocketApis", opts, &taken);
        if !project.websocket_apis.is_empty() {
            stage_found = true;
        }
    }
    crate::access::check_references(&mut cx, &project);
    if let Some(s) = &opts.stage {
        if !stage_found {
            diags.push(file_error(
                path,
                format!("--stage {s:?}: no API in the project defines this stage"),
            ));
        }
    }
    let mut all = cx.diags;
    all.extend(diags);
    if all.iter().any(|d| d.severity == Severity::Error) {
        openapi::sort_diagnostics(&mut all);
        return Err(LoadError { diagnostics: all });
    }
    project.warnings = all;
    Ok(project)
}

/// The `functions:` mapping: name → [`FunctionConfig`].
fn functions(cx: &mut Ctx<'_>, v: &Value, ptr: &str, project_file: &Path) -> Vec<FunctionDef> {
    let mut out = Vec::new();
    let Some(m) = cx.obj(v, ptr) else {
        return out;
    };
    for (name, fv) in m {
        let fp = join(ptr, name);
        if !crate::functions::is_function_name(name) {
            cx.error(
                &fp,
                format!("invalid function name {name:?}: 1-64 letters, digits, '-' or '_'"),
            );
            continue;
        }
        let mut config = match crate::functions::parse::<FunctionConfig>(fv) {
            Ok(c) => c,
            Err(e) => {
                cx.error(&fp, format!("invalid function {name:?}: {e}"));
                continue;
            }
        };
        let problems = config.problems();
        for (key, msg) in &problems {
            let p = if key.is_empty() {
                fp.clone()
            } else {
                join(&fp, key)
            };
            cx.error(&p, msg.clone());
        }
        if problems.is_empty() {
            config.resolve_paths(project_file);
            out.push(FunctionDef {
                name: name.clone(),
                config,
            });
        }
    }
    out
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn stages(cx: &mut Ctx<'_>, v: &Value, ptr: &str, project_file: &Path) -> Vec<StageSpec> {
    let mut out: Vec<StageSpec> = Vec::new();
    let Some(list) = cx.arr(v, ptr) else {
        return out;
    };
    for (i, s) in list.iter().enumerate() {
        let sp = format!("{ptr}/{i}");
        let Some(m) = cx.obj(s, &sp) else { continue };
        if let Some(spec) = stage(cx, m, &sp, project_file) {
            if out
                .iter()
                .any(|o| o.stage.stage_name == spec.stage.stage_name)
            {
                cx.error(
                    &join(&sp, "name"),
                    format!("duplicate stage name {:?}", spec.stage.stage_name),
                );
                continue;
            }
            out.push(spec);
        }
    }
    out
}

fn stage(
    cx: &mut Ctx<'_>,
    m: &Map<String, Value>,
    ptr: &str,
    project_file: &Path,
) -> Option<StageSpec> {
    let mut st = Stage::default();
    let mut spec_settings = Vec::new();
    let mut star: Option<(MethodSetting, Vec<&'static str>)> = None;
    let mut name_ok = false;
    for (k, v) in m {
        let p = join(ptr, k);
        match k.as_str() {
            "name" => {
                if let Some(s) = cx.scalar_string(v, &p) {
                    match validate::stage_name(&s) {
                        Ok(()) => {
                            st.stage_name = s;
                            name_ok = true;
                        }
                        Err(e) => cx.error(&p, e),
                    }
                }
            }
            "description" => st.description = cx.str(v, &p).map(str::to_string),
            "variables" => st.variables = variables(cx, v, &p),
            "accessLogSettings" => st.access_log_settings = access_log(cx, v, &p, project_file),
            "throttling" => {
                let Some(tm) = cx.obj(v, &p) else { continue };
                let mut ms = MethodSetting::default();
                let mut set = Vec::new();
                for (tk, tv) in tm {
                    let tp = join(&p, tk);
                    match tk.as_str() {
                        "rateLimit" => {
                            ms.throttling_rate_limit = cx.f64(tv, &tp);
                            set.push("throttlingRateLimit");
                        }
                        "burstLimit" => {
                            ms.throttling_burst_limit =
                                cx.u64(tv, &tp).and_then(|n| u32::try_from(n).ok());
                            set.push("throttlingBurstLimit");
                        }
                        other => {
                            unknown_key(cx, &tp, other, "throttling", &["rateLimit", "burstLimit"])
                        }
                    }
                }
                star = Some((ms, set));
            }
            "methodSettings" => {
                let Some(mm) = cx.obj(v, &p) else { continue };
                for (key, body) in mm {
                    let kp = join(&p, key);
                    if let Some((ms, set)) = method_setting(cx, body, &kp) {
                        spec_settings.push((key.clone(), kp, ms, set));
                    }
                }
            }
            "canarySettings" => st.canary_settings = canary(cx, v, &p),
            "tracingEnabled" => st.tracing_enabled = cx.bool(v, &p).unwrap_or(false),
            "cacheClusterEnabled" => st.cache_cluster_enabled = cx.bool(v, &p).unwrap_or(false),
            other => unknown_key(cx, &p, other, "stage", STAGE_KEYS),
        }
    }
    if !m.contains_key("name") {
        cx.error(ptr, "stage name is required");
    }
    name_ok.then(|| StageSpec {
        stage: st,
        ptr: ptr.to_string(),
        method_settings: spec_settings,
        star,
    })
}

pub(crate) fn variables(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(m) = cx.obj(v, ptr) else { return out };
    if m.len() > MAX_STAGE_VARIABLES {
        cx.error(
            ptr,
            format!(
                "{} stage variables; a stage may have at most {MAX_STAGE_VARIABLES}",
                m.len()
            ),
        );
    }
    for (k, val) in m {
        let p = join(ptr, k);
        if let Err(e) = validate::stage_variable_name(k) {
            cx.error(&p, e);
            continue;
        }
        let Some(s) = (match val {
            Value::Object(_) | Value::Array(_) | Value::Null => {
                cx.error(&p, "a stage variable value must be a string");
                None
            }
            other => cx.scalar_string(other, &p),
        }) else {
            continue;
        };
        if let Err(e) = validate::stage_variable_value(&s) {
            cx.error(&p, e);
            continue;
        }
        out.insert(k.clone(), s);
    }
    out
}

fn access_log(
    cx: &mut Ctx<'_>,
    v: &Value,
    ptr: &str,
    project_file: &Path,
) -> Option<AccessLogSettings> {
    let m = cx.obj(v, ptr)?;
    let mut format = None;
    let mut dest = None;
    for (k, val) in m {
        let p = join(ptr, k);
        match k.as_str() {
            "format" => format = cx.str(val, &p).map(str::to_string),
            "destinationArn" => {
                if let Some(s) = cx.str(val, &p) {
                    dest = Some(match s {
                        "stdout" | "stderr" => s.to_string(),
                        s if s.starts_with("arn:") => {
                            cx.warn(&p, "CloudWatch Logs destinations are not available locally; access logs go to stdout");
                            "stdout".to_string()
                        }
                        s => relative_to(project_file, s).to_string_lossy().into_owned(),
                    });
                }
            }
            other => unknown_key(
                cx,
                &p,
                other,
                "accessLogSettings",
                &["format", "destinationArn"],
            ),
        }
    }
    let Some(format) = format else {
        cx.error(ptr, "accessLogSettings.format is required");
        return None;
    };
    if !format.contains("$context.requestId") && !format.contains("$context.extendedRequestId") {
        cx.error(
            &join(ptr, "format"),
            "Access Log format must contain at least one of $context.requestId or $context.extendedRequestId",
        );
    }
    Some(AccessLogSettings {
        format,
        destination_arn: Some(dest.unwrap_or_else(|| "stdout".to_string())),
    })
}

fn method_setting(
    cx: &mut Ctx<'_>,
    v: &Value,
    ptr: &str,
) -> Option<(MethodSetting, Vec<&'static str>)> {
    let m = cx.obj(v, ptr)?;
    let mut ms = MethodSetting::default();
    let mut set = Vec::new();
    for (k, val) in m {
        let p = join(ptr, k);
        let Some(&field) = METHOD_SETTING_KEYS.iter().find(|f| **f == k.as_str()) else {
            unknown_key(cx, &p, k, "method setting", METHOD_SETTING_KEYS);
            continue;
        };
        set.push(field);
        match field {
            "metricsEnabled" => ms.metrics_enabled = cx.bool(val, &p).unwrap_or(false),
            "dataTraceEnabled" => ms.data_trace_enabled = cx.bool(val, &p).unwrap_or(false),
            "cachingEnabled" => ms.caching_enabled = cx.bool(val, &p).unwrap_or(false),
            "loggingLevel" => {
                if let Some(s) = cx.str(val, &p) {
                    let up = s.to_ascii_uppercase();
                    if ["OFF", "ERROR", "INFO"].contains(&up.as_str()) {
                        ms.logging_level = Some(up);
                    } else {
                        cx.error(
                            &p,
                            format!("unknown loggingLevel {s:?}; expected OFF, ERROR or INFO"),
                        );
                    }
                }
            }
            "throttlingBurstLimit" => {
                ms.throttling_burst_limit = cx.u64(val, &p).and_then(|n| u32::try_from(n).ok())
            }
            "throttlingRateLimit" => ms.throttling_rate_limit = cx.f64(val, &p),
            "cacheTtlInSeconds" => {
                if let Some(n) = cx.u64(val, &p) {
                    if n > 3600 {
                        cx.error(&p, format!("cacheTtlInSeconds {n} is out of range 0..3600"));
                    } else {
                        ms.cache_ttl_in_seconds = u32::try_from(n).ok();
                    }
                }
            }
            _ => {}
        }
    }
    Some((ms, set))
}

fn canary(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Option<CanarySettings> {
    let m = cx.obj(v, ptr)?;
    let mut c = CanarySettings::default();
    for (k, val) in m {
        let p = join(ptr, k);
        match k.as_str() {
            "percentTraffic" => {
                if let Some(f) = cx.f64(val, &p) {
                    if f > 100.0 {
                        cx.error(&p, format!("percentTraffic {f} is out of range 0.0..100.0"));
                    } else {
                        c.percent_traffic = f;
                    }
                }
            }
            "deploymentId" => c.deployment_id = cx.scalar_string(val, &p),
            "stageVariableOverrides" => c.stage_variable_overrides = variables(cx, val, &p),
            "useStageCache" => c.use_stage_cache = cx.bool(val, &p).unwrap_or(false),
            other => unknown_key(
                cx,
                &p,
                other,
                "canarySettings",
                &[
                    "percentTraffic",
                    "deploymentId",
                    "stageVariableOverrides",
                    "useStageCache",
                ],
            ),
        }
    }
    Some(c)
}

/// Copies the fields named in `set` from `from` into `to`.
fn overlay(to: &mut MethodSetting, from: &MethodSetting, set: &[&str]) {
    for f in set {
        match *f {
            "metricsEnabled" => to.metrics_enabled = from.metrics_enabled,
            "loggingLevel" => to.logging_level.clone_from(&from.logging_level),
            "dataTraceEnabled" => to.data_trace_enabled = from.data_trace_enabled,
            "throttlingBurstLimit" => to.throttling_burst_limit = from.throttling_burst_limit,
            "throttlingRateLimit" => to.throttling_rate_limit = from.throttling_rate_limit,
            "cachingEnabled" => to.caching_enabled = from.caching_enabled,
            "cacheTtlInSeconds" => to.cache_ttl_in_seconds = from.cache_ttl_in_seconds,
            _ => {}
        }
    }
}

/// Checks method settings against the API, fills per-method entries from the `*/*` defaults
/// (AWS creates them from `*/*`), and reports not-yet-emulated stage features.
fn finish_stage(cx: &mut Ctx<'_>, spec: StageSpec, def: &RestApiDefinition) -> Stage {
    let StageSpec {
        mut stage,
        ptr,
        method_settings,
        star,
    } = spec;
    // `*/*` first: `throttling`, then an explicit `*/*` entry (conflicts are errors).
    let mut defaults = MethodSetting::default();
    let mut default_fields: Vec<&'static str> = Vec::new();
    if let Some((ms, set)) = &star {
        overlay(&mut defaults, ms, set);
        default_fields.extend(set.iter().copied());
    }
    for (key, kp, ms, set) in &method_settings {
        if key == "*/*" {
            for f in set {
                if default_fields.contains(f) && star.as_ref().is_some_and(|(_, s)| s.contains(f)) {
                    cx.error(kp, format!("{f} is set both here and by the stage's `throttling`; set it in one place"));
                }
            }
            overlay(&mut defaults, ms, set);
            default_fields.extend(set.iter().copied());
        }
    }
    if !default_fields.is_empty() {
        stage
            .method_settings
            .insert("*/*".to_string(), defaults.clone());
    }
    for (key, kp, ms, set) in &method_settings {
        if key == "*/*" {
            continue;
        }
        let Some((path, method)) = parse_method_setting_key(key) else {
            cx.error(kp, format!("invalid method setting key {key:?}; expected \"*/*\" or \"RESOURCE_PATH/METHOD\" such as \"/pets/GET\""));
            continue;
        };
        let Some(resource) = def.resources.iter().find(|r| r.path == path) else {
            let known: Vec<&str> = def.resources.iter().map(|r| r.path.as_str()).collect();
            let hint = did_you_mean(&path, &known);
            cx.error(
                kp,
                format!("method setting {key:?}: the API has no resource {path:?}{hint}"),
            );
            continue;
        };
        if !resource.resource_methods.contains_key(&method) {
            let defined: Vec<&str> = resource
                .resource_methods
                .keys()
                .map(String::as_str)
                .collect();
            cx.error(
                kp,
                format!("method setting {key:?}: resource {path:?} has no {method} method (defined: {})", defined.join(", ")),
            );
            continue;
        }
        let mut merged = defaults.clone();
        overlay(&mut merged, ms, set);
        stage
            .method_settings
            .insert(crate::rest::method_setting_key(&path, &method), merged);
    }
    for u in unsupported_stage_features(&stage) {
        let p = match u.feature {
            Feature::CanaryRelease => join(&ptr, "canarySettings"),
            _ => ptr.clone(),
        };
        cx.push(Severity::Warning, &p, u.message());
    }
    stage
}

/// `*/*` is handled by the caller; `/pets/GET`, `pets/GET`, `~1pets/GET` → (`/pets`, `GET`).
fn parse_method_setting_key(key: &str) -> Option<(String, String)> {
    let (path, method) = key.rsplit_once('/')?;
    let method = method.to_ascii_uppercase();
    if !HTTP_METHODS.contains(&method.as_str()) {
        return None;
    }
    let path = path.replace("~1", "/").replace("~0", "~");
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let path = if path.len() > 1 {
        path.trim_end_matches('/').to_string()
    } else {
        path
    };
    Some((
        if path.is_empty() {
            "/".to_string()
        } else {
            path
        },
        method,
    ))
}
