//! Table-driven conformance over `shared/conformance/rest_http.json` (responses recorded from real
//! API Gateway). Each in-scope case's API is converted to an OpenAPI 3 document with
//! `x-amazon-apigateway-integration`, served by the real binary, wired to a real in-process
//! backend that behaves as the case describes (an in-process HTTP server, awslambdaric functions,
//! S3 on moto's server), and the request is compared per the README.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::*;
use serde_json::{json, Map, Value};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/rest_http.json"
);

/// The number of cases the predicate selects today; the filter must never drop below it.
const MIN_SELECTED: usize = 79;

const IN_SCOPE_TYPES: [&str; 5] = ["MOCK", "HTTP", "HTTP_PROXY", "AWS", "AWS_PROXY"];

/// Backends the harness provides: an in-process HTTP server, awslambdaric functions
/// (tests/fixtures/lambda/conformance.py) and S3 (moto's server).
const BACKEND_KINDS: [&str; 3] = ["http", "lambda", "aws-s3"];

/// The API of a case, normalised: resources → method → method object.
fn case_api(corpus: &Value, case: &Value) -> Option<Value> {
    let api = match (case.get("api"), case.get("api_ref")) {
        (Some(a), _) => a.clone(),
        (None, Some(Value::String(r))) => corpus["apis"][r].clone(),
        _ => return None,
    };
    if let Some(Value::String(text)) = api.get("definition") {
        return from_description(&api, text);
    }
    let mut resources = Map::new();
    for (path, methods) in api.get("resources")?.as_object()? {
        let mut out = Map::new();
        match methods {
            // Documentation shorthand: "GET only" = a method that is not the one requested.
            Value::String(s) => {
                let m = s.split_whitespace().next()?.to_string();
                out.insert(
                    m,
                    json!({"integration": {"type": "MOCK",
                    "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
                    "responses": [{"statusCode": "200"}]}}),
                );
            }
            Value::Object(ms) if ms.contains_key("integration") => {
                // `all_methods` cases: one method per resource with shared settings.
                let all = api.get("all_methods")?;
                let mut m = all.as_object()?.clone();
                let name = m.remove("method")?.as_str()?.to_string();
                m.insert("integration".into(), ms["integration"].clone());
                out.insert(name, Value::Object(m));
            }
            Value::Object(ms) => {
                for (k, v) in ms {
                    out.insert(k.clone(), v.clone());
                }
            }
            _ => return None,
        }
        resources.insert(path.clone(), Value::Object(out));
    }
    let mut api = api;
    api["resources"] = Value::Object(resources);
    Some(api)
}

/// The two recorded OpenAPI imports described in prose:
/// "OpenAPI 3.0.1 import: /path1 get → HTTP_PROXY, httpMethod POST, uri '...'".
fn from_description(api: &Value, text: &str) -> Option<Value> {
    let rest = text.strip_prefix("OpenAPI 3.0.1 import: ")?;
    let mut words = rest.split_whitespace();
    let path = words.next()?;
    let method = words.next()?.to_ascii_uppercase();
    let kind = rest.split("→ ").nth(1)?.split(',').next()?.trim();
    let http_method = rest.split("httpMethod ").nth(1)?.split(',').next()?.trim();
    let uri = rest.split("uri '").nth(1)?.split('\'').next()?;
    let mut api = api.clone();
    api["resources"] = json!({path: {method: {"integration": {
        "type": kind, "httpMethod": http_method, "uri": uri,
    }}}});
    Some(api)
}

fn integrations(api: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, methods) in api["resources"].as_object().into_iter().flatten() {
        for (m, def) in methods.as_object().into_iter().flatten() {
            out.push((path.clone(), m.clone(), def.clone()));
        }
    }
    out
}

/// Why a case is out of the core's scope, or `None` when it is selected.
fn out_of_scope(corpus: &Value, case: &Value) -> Option<String> {
    let Some(api) = case_api(corpus, case) else {
        return Some("API not convertible".into());
    };
    if api["stage"].get("canarySettings").is_some() {
        return Some("canary".into());
    }
    if api.get("requestValidators").is_some() {
        return Some("request validators".into());
    }
    let request_path = case["request"]["path"].as_str().unwrap_or("/");
    let request_method = case["request"]["method"].as_str().unwrap_or("GET");
    let all = integrations(&api);
    // The method a literal resource serves the request with, when there is one; otherwise every
    // method of the API must be in scope.
    let reached: Vec<&(String, String, Value)> = all
        .iter()
        .filter(|(p, m, _)| p == request_path && (m == request_method || m == "ANY"))
        .collect();
    let considered: Vec<&(String, String, Value)> = if reached.is_empty() {
        all.iter().collect()
    } else {
        reached
    };
    let mut needs_backend = false;
    for (_, _, def) in considered {
        if def["authorizationType"]
            .as_str()
            .is_some_and(|a| a != "NONE")
        {
            return Some("authorizer".into());
        }
        if def["apiKeyRequired"] == true && api.get("usagePlans").is_none() {
            return Some("API key without a usage plan".into());
        }
        if def.get("requestValidator").is_some() {
            return Some("request validator".into());
        }
        let kind = def["integration"]["type"].as_str().unwrap_or("");
        if !IN_SCOPE_TYPES.contains(&kind) {
            return Some(format!("integration {kind}"));
        }
        needs_backend |= kind != "MOCK";
    }
    if let Some(kind) = case["backend"]["kind"].as_str() {
        if needs_backend && !BACKEND_KINDS.contains(&kind) {
            return Some(format!("backend {kind}"));
        }
    }
    None
}

struct Wiring {
    backend_base: String,
    backend_host: String,
    bucket: String,
}

fn wire(s: &str, w: &Wiring) -> String {
    let mut s = s
        .replace("{{backend_url}}", &format!("{}/", w.backend_base))
        .replace("{{backend}}", &format!("{}/post", w.backend_base))
        .replace("{{backend_host}}", &w.backend_host)
        .replace("{{bucket}}", &w.bucket)
        .replace("{{region}}", "us-east-1");
    // `{{lambda:NAME}}` stands for the whole invocation URI of function NAME.
    while let Some(i) = s.find("{{lambda:") {
        let Some(j) = s[i..].find("}}") else { break };
        let name = s[i + "{{lambda:".len()..i + j].to_string();
        s.replace_range(i..i + j + 2, &lambda_uri(&name));
    }
    s
}

fn lambda_uri(name: &str) -> String {
    format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{name}/invocations")
}

/// The functions an API's URIs name (`{{lambda:NAME}}`).
fn lambda_names(api: &Value) -> Vec<String> {
    let text = api.to_string();
    let mut names: Vec<String> = text
        .split("{{lambda:")
        .skip(1)
        .filter_map(|rest| rest.split("}}").next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What the case's Lambda backend does, as conformance.py's BEHAVIOUR.
fn lambda_behaviour(case: &Value) -> &'static str {
    let b = case["backend"]["behaviour"].as_str().unwrap_or_default();
    if b.contains("json.loads(event.body)") {
        "return-request-body"
    } else if b.contains("statusCode: 300") {
        "xml-300"
    } else if b.contains("Raising four hundred") {
        "select-pattern"
    } else if b == "returns the event" {
        "event"
    } else if b.contains("isBase64Encoded: false}") {
        "echo"
    } else {
        "echo-body"
    }
}

fn wire_value(v: &Value, w: &Wiring) -> Value {
    match v {
        Value::String(s) => Value::String(wire(s, w)),
        Value::Array(a) => Value::Array(a.iter().map(|x| wire_value(x, w)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), wire_value(x, w)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The case's API as an OpenAPI 3 document with API Gateway extensions.
fn to_openapi(title: &str, api: &Value, w: &Wiring) -> Value {
    let mut paths = Map::new();
    for (path, methods) in api["resources"].as_object().into_iter().flatten() {
        let mut item = Map::new();
        for (method, def) in methods.as_object().into_iter().flatten() {
            let mut params = Vec::new();
            let mut declared = std::collections::HashSet::new();
            for (k, required) in def["requestParameters"].as_object().into_iter().flatten() {
                let mut parts = k.splitn(4, '.');
                let (_, _, loc, name) = (parts.next(), parts.next(), parts.next(), parts.next());
                let (Some(loc), Some(name)) = (loc, name) else {
                    continue;
                };
                let loc = match loc {
                    "querystring" => "query",
                    other => other,
                };
                declared.insert((loc.to_string(), name.to_string()));
                params.push(json!({"name": name, "in": loc, "required": required == &Value::Bool(true) || loc == "path",
                    "schema": {"type": "string"}}));
            }
            for seg in path.split('/') {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    let name = name.trim_end_matches('+');
                    if declared.insert(("path".into(), name.into())) {
                        params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
                    }
                }
            }
            let mut responses = Map::new();
            for mr in def["methodResponses"].as_array().into_iter().flatten() {
                let mut headers = Map::new();
                for (k, _) in mr["responseParameters"].as_object().into_iter().flatten() {
                    if let Some(h) = k.strip_prefix("method.response.header.") {
                        headers.insert(h.into(), json!({"schema": {"type": "string"}}));
                    }
                }
                let mut r = json!({"description": "response"});
                if !headers.is_empty() {
                    r["headers"] = Value::Object(headers);
                }
                responses.insert(mr["statusCode"].as_str().unwrap_or("200").into(), r);
            }
            if responses.is_empty() {
                responses.insert("200".into(), json!({"description": "response"}));
            }
            let integ = &def["integration"];
            let mut x = Map::new();
            for key in [
                "type",
                "httpMethod",
                "uri",
                "requestParameters",
                "requestTemplates",
                "passthroughBehavior",
                "contentHandling",
                "timeoutInMillis",
                "credentials",
            ] {
                if let Some(v) = integ.get(key) {
                    let lambda_type = matches!(integ["type"].as_str(), Some("AWS" | "AWS_PROXY"));
                    if key == "uri" && lambda_type && v == "{{backend}}" {
                        // The header-remapping APIs share `{{backend}}` between HTTP and Lambda
                        // integrations; for AWS/AWS_PROXY it is the case's Lambda function.
                        x.insert(key.into(), json!(lambda_uri("backend")));
                        continue;
                    }
                    let mut v = wire_value(v, w);
                    if key == "uri" {
                        // The recorded backends were HTTPS; the in-process one speaks HTTP.
                        v = json!(v
                            .as_str()
                            .unwrap_or_default()
                            .replace("https://", "http://"));
                    }
                    x.insert(key.into(), v);
                }
            }
            let mut ir = Map::new();
            // One recorded API gives its integration response templates only in prose.
            let noted_templates = api["note"]
                .as_str()
                .and_then(|n| n.strip_prefix("integration response responseTemplates "))
                .and_then(|t| serde_json::from_str::<Value>(t).ok());
            for r in integ["responses"].as_array().into_iter().flatten() {
                let key = r["selectionPattern"]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .unwrap_or("default")
                    .to_string();
                let mut out = Map::new();
                for k in [
                    "statusCode",
                    "responseParameters",
                    "responseTemplates",
                    "contentHandling",
                ] {
                    if let Some(v) = r.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
                if let Some(t) = &noted_templates {
                    out.entry("responseTemplates").or_insert_with(|| t.clone());
                }
                ir.insert(key, Value::Object(out));
            }
            if !ir.is_empty() {
                x.insert("responses".into(), Value::Object(ir));
            }
            let mut op = json!({
                "parameters": params,
                "responses": responses,
                "x-amazon-apigateway-integration": x,
            });
            if def["apiKeyRequired"] == true {
                op["security"] = json!([{"api_key": []}]);
            }
            let key = if method == "ANY" {
                "x-amazon-apigateway-any-method".to_string()
            } else {
                method.to_ascii_lowercase()
            };
            item.insert(key, op);
        }
        paths.insert(path.clone(), Value::Object(item));
    }
    let mut doc = json!({
        "openapi": "3.0.1",
        "info": {"title": title, "version": "1"},
        "paths": paths,
    });
    if let Some(gr) = api.get("gatewayResponses") {
        doc["x-amazon-apigateway-gateway-responses"] = gr.clone();
    }
    if let Some(b) = api.get("binaryMediaTypes") {
        doc["x-amazon-apigateway-binary-media-types"] = b.clone();
    }
    if let Some(s) = api.get("apiKeySource") {
        doc["x-amazon-apigateway-api-key-source"] = s.clone();
    }
    doc["components"] = json!({"securitySchemes": {"api_key":
        {"type": "apiKey", "name": "x-api-key", "in": "header"}}});
    doc
}

/// The value every recorded API key gets here (`{{api_key_value}}` in requests).
const API_KEY_VALUE: &str = "conformance-key-0123456789abcdef";

/// The API's usage plans and their keys as the project file's `apiKeys` and `usagePlans`.
fn usage_plans_yaml(api: &Value, api_id: &str) -> String {
    let Some(plans) = api["usagePlans"].as_array() else {
        return String::new();
    };
    let mut keys = String::new();
    let mut out = String::from("usagePlans:\n");
    for (i, p) in plans.iter().enumerate() {
        out.push_str(&format!("  - name: plan{i}\n    apiStages:\n"));
        for st in p["apiStages"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "      - {{api: {api_id}, stage: {}}}\n",
                st.as_str().unwrap_or("dev")
            ));
        }
        if let Some(q) = p.get("quota") {
            out.push_str(&format!("    quota: {q}\n"));
        }
        if let Some(t) = p.get("throttle") {
            out.push_str(&format!("    throttle: {t}\n"));
        }
        out.push_str("    keys: [");
        for (j, k) in p["keys"].as_array().into_iter().flatten().enumerate() {
            let name = k["name"].as_str().unwrap_or("key");
            out.push_str(&format!("{}{name}", if j > 0 { ", " } else { "" }));
            keys.push_str(&format!(
                "  - {{name: {name}, value: {API_KEY_VALUE}, enabled: {}}}\n",
                k["enabled"] != false
            ));
        }
        out.push_str("]\n");
    }
    format!("apiKeys:\n{keys}{out}")
}

/// Headers python-requests (the recording client) adds unless the test set them.
const CLIENT_DEFAULTS: [(&str, &str); 4] = [
    ("User-Agent", "python-requests/2.32.3"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Accept", "*/*"),
    ("Connection", "keep-alive"),
];

fn request_bytes(case: &Value, host: &str, stage: &str) -> Vec<u8> {
    let req = &case["request"];
    let method = req["method"].as_str().unwrap_or("GET");
    let path = req["path"].as_str().unwrap_or("/");
    let mut target = format!("/{stage}{path}");
    if let Some(q) = req["query"].as_str().filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(q);
    }
    let body: Vec<u8> = match (&req["body"], &req["body_b64"]) {
        (Value::String(s), _) => s.as_bytes().to_vec(),
        (_, Value::String(b)) => base64_decode(b),
        _ => Vec::new(),
    };
    let mut headers: Vec<(String, String)> = vec![("Host".into(), host.into())];
    let given: Vec<(String, String)> = req["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            (k.clone(), v.replace("{{api_key_value}}", API_KEY_VALUE))
        })
        .collect();
    for (k, v) in CLIENT_DEFAULTS {
        if !given.iter().any(|(g, _)| g.eq_ignore_ascii_case(k)) {
            headers.push((k.into(), v.into()));
        }
    }
    headers.extend(given.iter().cloned());
    let chunked = given
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if !chunked && (!body.is_empty() || !matches!(method, "GET" | "HEAD" | "OPTIONS" | "DELETE")) {
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if chunked {
        if !body.is_empty() {
            bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(&body);
    }
    bytes
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let Some(v) = T.iter().position(|t| *t == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Placeholder-aware comparison state for one case.
struct Matcher {
    bound: HashMap<String, String>,
    fixed: HashMap<&'static str, String>,
}

impl Matcher {
    /// Whether `actual` matches the `expected` pattern (`{{...}}` placeholders).
    fn string(&mut self, expected: &str, actual: &str) -> bool {
        let mut parts: Vec<(bool, String)> = Vec::new();
        let mut rest = expected;
        while let Some(i) = rest.find("{{") {
            let Some(j) = rest[i..].find("}}") else { break };
            if i > 0 {
                parts.push((false, rest[..i].to_string()));
            }
            parts.push((true, rest[i + 2..i + j].to_string()));
            rest = &rest[i + j + 2..];
        }
        if !rest.is_empty() {
            parts.push((false, rest.to_string()));
        }
        let snapshot = self.bound.clone();
        let ok = self.parts(&parts, actual);
        if !ok {
            self.bound = snapshot;
        }
        ok
    }

    fn parts(&mut self, parts: &[(bool, String)], actual: &str) -> bool {
        let Some(((is_ph, text), tail)) = parts.split_first() else {
            return actual.is_empty();
        };
        if !is_ph {
            return actual
                .strip_prefix(text.as_str())
                .is_some_and(|a| self.parts(tail, a));
        }
        if let Some(v) = self.fixed.get(text.as_str()).cloned().or_else(|| {
            text.strip_prefix("varies:")
                .filter(|k| k.contains('#'))
                .and_then(|k| self.bound.get(k).cloned())
        }) {
            return actual
                .strip_prefix(v.as_str())
                .is_some_and(|a| self.parts(tail, a));
        }
        // A free placeholder: try every non-empty prefix (shortest first when a literal follows).
        let ends: Vec<usize> = actual
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .collect();
        for end in ends {
            let (v, a) = actual.split_at(end);
            let key = text.strip_prefix("varies:").filter(|k| k.contains('#'));
            let snapshot = self.bound.clone();
            if let Some(k) = key {
                self.bound.insert(k.to_string(), v.to_string());
            }
            if self.parts(tail, a) {
                return true;
            }
            self.bound = snapshot;
        }
        false
    }

    /// JSON equality (objects unordered) with placeholders; `subset` allows extra keys.
    fn json(
        &mut self,
        expected: &Value,
        actual: &Value,
        subset: bool,
        at: &str,
    ) -> Result<(), String> {
        match (expected, actual) {
            // A lone `{{varies:...}}` stands for a value of any type (e.g. a stack trace list).
            (Value::String(e), a)
                if !a.is_string()
                    && e.starts_with("{{varies:")
                    && e.ends_with("}}")
                    && e.matches("{{").count() == 1 =>
            {
                Ok(())
            }
            (Value::String(e), Value::String(a)) => {
                if self.string(e, a) {
                    Ok(())
                } else {
                    Err(format!("{at}: expected {e:?}, got {a:?}"))
                }
            }
            (Value::Object(e), Value::String(a)) if e.contains_key("$json") => {
                let parsed: Value = serde_json::from_str(a).map_err(|x| format!("{at}: {x}"))?;
                self.json(&e["$json"], &parsed, subset, at)
            }
            (Value::Object(e), Value::Object(a)) => {
                for (k, ev) in e {
                    let av = a
                        .get(k)
                        .ok_or_else(|| format!("{at}: missing key {k:?} in {actual}"))?;
                    self.json(ev, av, subset, &format!("{at}.{k}"))?;
                }
                if !subset {
                    if let Some(extra) = a.keys().find(|k| !e.contains_key(*k)) {
                        return Err(format!("{at}: unexpected key {extra:?} in {actual}"));
                    }
                }
                Ok(())
            }
            (Value::Array(e), Value::Array(a)) => {
                if e.len() != a.len() {
                    return Err(format!("{at}: expected {expected}, got {actual}"));
                }
                for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                    self.json(ev, av, subset, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            (e, a) if e == a => Ok(()),
            (e, a) => Err(format!("{at}: expected {e}, got {a}")),
        }
    }

    /// Header checks: every expected header present (case-insensitive name) with a matching value.
    fn headers(
        &mut self,
        expected: &Value,
        actual: &[(String, String)],
        at: &str,
    ) -> Result<(), String> {
        for (name, ev) in expected.as_object().into_iter().flatten() {
            let ev = ev.as_str().unwrap_or_default();
            let values: Vec<&str> = actual
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect();
            if values.is_empty() {
                return Err(format!("{at}: header {name} missing from {actual:?}"));
            }
            // Lengths differ between implementations (the cases' notes say so): presence only.
            if name.to_ascii_lowercase().ends_with("content-length") {
                continue;
            }
            if !values.iter().any(|v| self.string(ev, v)) {
                return Err(format!(
                    "{at}: header {name}: expected {ev:?}, got {values:?}"
                ));
            }
        }
        Ok(())
    }
}

const CDN_HEADERS: [&str; 4] = ["via", "x-amz-cf-id", "x-amz-cf-pop", "x-cache"];

fn check(
    case: &Value,
    resp: &Resp,
    backend: Option<&Recorded>,
    m: &mut Matcher,
) -> Result<(), String> {
    let exp = &case["expected"];
    if let Some(s) = exp["status"].as_u64() {
        if u64::from(resp.status) != s {
            return Err(format!(
                "status {} (want {s}); body {}",
                resp.status,
                resp.text()
            ));
        }
    }
    let header_sets = [
        ("headers", &exp["headers"]),
        ("response_headers", &exp["response_headers"]),
    ];
    for (label, h) in header_sets {
        if h.is_null() {
            continue;
        }
        m.headers(h, &resp.headers, label)?;
        if exp["headers_match"] == "exact_names_case_insensitive_excluding_cdn" {
            let mut want: Vec<String> = h
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.to_ascii_lowercase())
                .collect();
            let mut got: Vec<String> = resp
                .headers
                .iter()
                .map(|(k, _)| k.to_ascii_lowercase())
                .filter(|k| !CDN_HEADERS.contains(&k.as_str()))
                .collect();
            want.sort();
            got.sort();
            got.dedup();
            if want != got {
                return Err(format!("header names {got:?}, want exactly {want:?}"));
            }
        }
    }
    for name in exp["headers_absent"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        if resp.header(name).is_some() {
            return Err(format!("header {name} must be absent"));
        }
    }
    // Substrings a header must (or must not) carry, e.g. the client's trace root.
    for (key, want) in [("header_contains", true), ("header_not_contains", false)] {
        for (name, parts) in exp[key].as_object().into_iter().flatten() {
            let got = resp.header(name).unwrap_or_default();
            for part in parts.as_array().into_iter().flatten() {
                let part = part.as_str().unwrap_or_default();
                if got.contains(part) != want {
                    return Err(format!("header {name} = {got:?}: {key} {part:?}"));
                }
            }
        }
    }
    if let Some(b) = exp["body"].as_str() {
        if !m.string(b, &resp.text()) {
            return Err(format!("body {:?}, want {b:?}", resp.text()));
        }
    }
    if let Some(b) = exp["body_b64"].as_str() {
        if resp.body.as_ref() != base64_decode(b).as_slice() {
            return Err("body bytes differ".into());
        }
    }
    let parse = || {
        serde_json::from_slice::<Value>(&resp.body)
            .map_err(|e| format!("body not JSON ({e}): {}", resp.text()))
    };
    if !exp["body_json"].is_null() {
        m.json(&exp["body_json"], &parse()?, false, "body")?;
    }
    if !exp["body_json_subset"].is_null() {
        m.json(&exp["body_json_subset"], &parse()?, true, "body")?;
    }
    for s in exp["body_contains"].as_array().into_iter().flatten() {
        if !resp.text().contains(s.as_str().unwrap_or_default()) {
            return Err(format!("body does not contain {s}"));
        }
    }
    let br = &exp["backend_received"];
    if !br.is_null() {
        let got = backend.ok_or("the backend received nothing")?;
        if !br["headers"].is_null() {
            m.headers(&br["headers"], &got.headers, "backend headers")?;
        }
        match &br["body"] {
            Value::String(s) => {
                let text = String::from_utf8_lossy(&got.body);
                if !m.string(s, &text) {
                    return Err(format!("backend body {text:?}, want {s:?}"));
                }
            }
            Value::Null => {}
            other => {
                let parsed: Value = serde_json::from_slice(&got.body).map_err(|e| {
                    format!(
                        "backend body not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&got.body)
                    )
                })?;
                m.json(other, &parsed, false, "backend body")?;
            }
        }
        if let Some(b) = br["body_b64"].as_str() {
            if got.body.as_ref() != base64_decode(b).as_slice() {
                return Err("backend body bytes differ".into());
            }
        }
        if let Some(ct) = br["content_type"].as_str() {
            if got.header("content-type") != Some(ct) {
                return Err(format!(
                    "backend content type {:?}, want {ct}",
                    got.header("content-type")
                ));
            }
        }
    }
    Ok(())
}

fn flavour(case: &Value) -> Flavour {
    let b = case["backend"]["behaviour"].as_str().unwrap_or_default();
    if b.contains("httpbin") {
        Flavour::Httpbin
    } else if b.contains("x-amzn-*/x-forwarded-* headers trimmed") {
        Flavour::LambdaUrlTrimmed
    } else if b.contains("Lambda function URL") {
        Flavour::LambdaUrl
    } else {
        Flavour::Plain
    }
}

/// The bucket of an aws-s3 case, holding the object the case's backend returns.
async fn s3_setup(moto: &Moto, bucket: &str, case: &Value) -> Result<(), String> {
    let c = client();
    let r = send(c.put(format!("{}/{bucket}", moto.base()))).await;
    if r.status != 200 {
        return Err(format!("create bucket: {} {}", r.status, r.text()));
    }
    if let Some(b64) = case["backend_response"]["body_b64"].as_str() {
        let key = case["request"]["path"]
            .as_str()
            .unwrap_or("/")
            .trim_start_matches('/');
        let ct = case["backend_response"]["content_type"]
            .as_str()
            .unwrap_or("binary/octet-stream");
        let r = send(
            c.put(format!("{}/{bucket}/{key}", moto.base()))
                .header("Content-Type", ct)
                .body(base64_decode(b64)),
        )
        .await;
        if r.status != 200 {
            return Err(format!("put object: {} {}", r.status, r.text()));
        }
    }
    Ok(())
}

/// What S3 stored for the request's key, as the backend's view of the request.
async fn s3_received(moto: &Moto, bucket: &str, case: &Value) -> Option<Recorded> {
    let key = case["request"]["path"]
        .as_str()
        .unwrap_or("/")
        .trim_start_matches('/');
    // moto applies object ACLs to anonymous calls only and does not check signatures.
    let r = send(client().get(format!("{}/{bucket}/{key}", moto.base())).header(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
    ))
    .await;
    (r.status == 200).then(|| Recorded {
        method: "PUT".into(),
        path: format!("/{bucket}/{key}"),
        query: None,
        headers: r.headers.clone(),
        body: r.body.clone(),
    })
}

/// What an echoing Lambda backend received, read back from its answer: an `AWS_PROXY` function
/// answers with the event (headers, body); an `AWS` one with `{"statusCode", "body": event}`
/// (the rendered request template; no headers reach a non-proxy function).
fn lambda_received(resp: &Resp) -> Option<Recorded> {
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    let (headers, body) = if v.get("requestContext").is_some() {
        let headers = v["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
            .collect();
        (headers, v["body"].as_str().unwrap_or_default().to_string())
    } else {
        (Vec::new(), v["body"].as_str()?.to_string())
    };
    Some(Recorded {
        method: "POST".into(),
        path: "/invocations".into(),
        query: None,
        headers,
        body: body.into(),
    })
}

async fn run_case(index: usize, corpus: &Value, case: &Value, moto: &Moto) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or("?");
    let api = case_api(corpus, case).ok_or("API not convertible")?;
    let up = Upstream::start_flavour(flavour(case)).await;
    let s3 = case["backend"]["kind"] == "aws-s3";
    let w = Wiring {
        backend_base: up.base(),
        backend_host: up.addr.to_string(),
        bucket: format!("bucket{index}"),
    };
    if s3 {
        s3_setup(moto, &w.bucket, case).await?;
    }
    let dir = temp_dir();
    let doc = to_openapi(id, &api, &w);
    write_json(dir.path(), "api.json", &doc);
    let stage = api["stage"]["name"].as_str().unwrap_or("dev").to_string();
    let mut vars = String::new();
    if let Some(v) = api["stage"]["variables"]
        .as_object()
        .filter(|v| !v.is_empty())
    {
        vars.push_str("        variables:\n");
        for (k, val) in v {
            vars.push_str(&format!(
                "          {k}: \"{}\"\n",
                wire(val.as_str().unwrap_or_default(), &w)
            ));
        }
    }
    let api_id = format!("conf{index:06}");
    let mut text = format!(
        "apis:\n  - definition: api.json\n    id: {api_id}\n    stages:\n      - name: {stage}\n{vars}{}",
        usage_plans_yaml(&api, &api_id)
    );
    let mut functions = lambda_names(&api);
    if case["backend"]["kind"] == "lambda" {
        functions.push("backend".into());
    }
    if !functions.is_empty() {
        text.push_str("functions:\n");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda");
        for f in functions {
            text.push_str(&format!(
                "  {f}:\n    command: [\"{}\", \"-m\", \"awslambdaric\", \"conformance.handler\"]\n    workingDir: {}\n    environment: {{BEHAVIOUR: {}}}\n",
                python(),
                fixtures.display(),
                lambda_behaviour(case)
            ));
        }
    }
    if s3 {
        text.push_str(&format!(
            "aws:\n  endpoints: {{s3: \"{}\"}}\n  credentials:\n    default: {{accessKeyId: test, secretAccessKey: test}}\n",
            moto.base()
        ));
    }
    let file = write(dir.path(), "turnpike.yaml", &text);
    let tp = Turnpike::serve(&file);
    let host = format!("127.0.0.1:{}", tp.port);
    let resp = raw(tp.addr(), &request_bytes(case, &host, &stage)).await;
    let backend = if s3 {
        s3_received(moto, &w.bucket, case).await
    } else if case["backend"]["kind"] == "lambda" {
        lambda_received(&resp)
    } else {
        up.requests().pop()
    };
    let mut m = Matcher {
        bound: HashMap::new(),
        fixed: HashMap::from([
            ("api_id", api_id.clone()),
            ("host", host.clone()),
            ("account_id", "123456789012".to_string()),
            ("region", "us-east-1".to_string()),
            ("partition", "aws".to_string()),
        ]),
    };
    check(case, &resp, backend.as_ref(), &mut m).map_err(|e| {
        format!(
            "{e}\n  response: {} {:?}\n  body: {}\n  backend saw: {:?}\n  turnpike stderr:\n{}",
            resp.status,
            resp.headers,
            resp.text(),
            backend,
            tp.stderr()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_http_conformance() {
    let text = std::fs::read_to_string(CORPUS).expect("read the conformance corpus");
    let corpus: Value = serde_json::from_str(&text).expect("corpus JSON");
    let cases = corpus["cases"].as_array().expect("cases");
    let mut selected = Vec::new();
    let mut skipped: HashMap<String, usize> = HashMap::new();
    for (i, case) in cases.iter().enumerate() {
        match out_of_scope(&corpus, case) {
            None => selected.push((i, case)),
            Some(why) => *skipped.entry(why).or_default() += 1,
        }
    }
    println!(
        "conformance: {} of {} cases selected; out of scope: {skipped:?}",
        selected.len(),
        cases.len()
    );
    assert!(
        selected.len() >= MIN_SELECTED,
        "only {} cases selected (want at least {MIN_SELECTED})",
        selected.len()
    );
    let moto = Moto::start();
    let mut failures = Vec::new();
    for (i, case) in &selected {
        let id = case["id"].as_str().unwrap_or("?");
        match run_case(*i, &corpus, case, &moto).await {
            Ok(()) => println!("  pass {id}"),
            Err(e) => {
                println!("  FAIL {id}: {e}");
                failures.push(format!("{id}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} selected cases failed:\n{}",
        failures.len(),
        selected.len(),
        failures.join("\n\n")
    );
}
