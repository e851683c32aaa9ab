//! Table-driven conformance test over the AWS-recorded cases in
//! `shared/conformance/vtl.json` (every `kind: render` case; no skipping).
//!
//! Comparison follows `shared/conformance/README.md`: `exact`, `json`, `json_subset`,
//! `contains`; `{{...}}` placeholders in expected strings; `{"$json": X}` markers; and
//! `context_overrides` checked against the `$context.requestOverride` /
//! `$context.responseOverride` state after rendering.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use turnpike_vtl::{Limits, Params, RenderInput, Template};

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/vtl.json")
}

fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `$context` a gateway would build for a case that only describes its request
/// (`input.request`), shaped like the recorded REST context without authorizer.
fn context_for_request(req: &Value) -> Value {
    let stage = req.get("stage").and_then(Value::as_str).unwrap_or("test");
    let resource = req
        .get("resource_path")
        .and_then(Value::as_str)
        .unwrap_or("/");
    let method = req.get("method").and_then(Value::as_str).unwrap_or("GET");
    let ua = req.get("user_agent").and_then(Value::as_str).unwrap_or("");
    json!({
        "resourceId": "abc123",
        "resourcePath": resource,
        "httpMethod": method,
        "extendedRequestId": "Xx1yYzZ2IAMEbQ=",
        "requestTime": "22/Nov/2026:10:00:00 +0000",
        "path": format!("/{stage}{resource}"),
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "stage": stage,
        "domainPrefix": "a1b2c3d4e5",
        "requestTimeEpoch": 1795428000000i64,
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "identity": {
            "cognitoIdentityPoolId": null,
            "accountId": null,
            "cognitoIdentityId": null,
            "caller": null,
            "sourceIp": "203.0.113.7",
            "principalOrgId": null,
            "accessKey": null,
            "cognitoAuthenticationType": null,
            "cognitoAuthenticationProvider": null,
            "userArn": null,
            "userAgent": ua,
            "user": null
        },
        "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "deploymentId": "dep123",
        "apiId": "a1b2c3d4e5"
    })
}

/// Match `actual` against an expected string that may contain `{{...}}` placeholders.
fn match_placeholder(expected: &str, actual: &str, bound: &mut HashMap<String, String>) -> bool {
    if !expected.contains("{{") {
        return expected == actual;
    }
    let mut pattern = String::from("^");
    let mut names = Vec::new();
    let mut rest = expected;
    while let Some(i) = rest.find("{{") {
        pattern.push_str(&regex::escape(&rest[..i]));
        let Some(j) = rest[i..].find("}}") else {
            break;
        };
        let ph = &rest[i + 2..i + j];
        names.push(ph.to_string());
        pattern.push_str("(.+?)");
        rest = &rest[i + j + 2..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    let Ok(re) = regex::Regex::new(&pattern) else {
        return false;
    };
    let Some(caps) = re.captures(actual) else {
        return false;
    };
    for (k, name) in names.iter().enumerate() {
        let got = caps.get(k + 1).map(|m| m.as_str()).unwrap_or("");
        if name.contains('#') {
            match bound.get(name) {
                Some(prev) if prev != got => return false,
                Some(_) => {}
                None => {
                    bound.insert(name.clone(), got.to_string());
                }
            }
        }
    }
    true
}

/// Compare JSON values with the corpus rules. `subset`: objects in `expected` may
/// omit keys present in `actual`.
fn json_matches(
    expected: &Value,
    actual: &Value,
    subset: bool,
    bound: &mut HashMap<String, String>,
    path: &str,
    diffs: &mut Vec<String>,
) {
    if let Value::Object(o) = expected {
        if o.len() == 1 {
            if let Some(inner) = o.get("$json") {
                match actual {
                    Value::String(s) => match serde_json::from_str::<Value>(s) {
                        Ok(parsed) => json_matches(inner, &parsed, subset, bound, path, diffs),
                        Err(e) => diffs.push(format!("{path}: not JSON text ({e}): {s:?}")),
                    },
                    other => json_matches(inner, other, subset, bound, path, diffs),
                }
                return;
            }
        }
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => json_matches(ev, av, subset, bound, &format!("{path}.{k}"), diffs),
                    None => diffs.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
            if !subset {
                for k in a.keys() {
                    if !e.contains_key(k) {
                        diffs.push(format!("{path}.{k}: unexpected key"));
                    }
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                diffs.push(format!(
                    "{path}: array length {} != expected {}",
                    a.len(),
                    e.len()
                ));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                json_matches(ev, av, subset, bound, &format!("{path}[{i}]"), diffs);
            }
        }
        (Value::String(e), Value::String(a)) => {
            if !match_placeholder(e, a, bound) {
                diffs.push(format!("{path}: {a:?} != expected {e:?}"));
            }
        }
        (Value::String(e), other) if e.contains("{{") => {
            let s = other.to_string();
            if !match_placeholder(e, &s, bound) {
                diffs.push(format!("{path}: {s} != expected {e:?}"));
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            if e.as_f64() != a.as_f64() {
                diffs.push(format!("{path}: {a} != expected {e}"));
            }
        }
        (e, a) => {
            if e != a {
                diffs.push(format!("{path}: {a} != expected {e}"));
            }
        }
    }
}

fn check_overrides(
    expected: &Map<String, Value>,
    req: &Option<Value>,
    resp: &Option<Value>,
    bound: &mut HashMap<String, String>,
    diffs: &mut Vec<String>,
) {
    let req = req
        .clone()
        .unwrap_or_else(|| json!({"header": {}, "path": {}, "querystring": {}}));
    let resp = resp.clone().unwrap_or_else(|| json!({"header": {}}));
    let root = json!({"requestOverride": req, "responseOverride": resp});
    for (k, ev) in expected {
        let mut cur = &root;
        let mut ok = true;
        for seg in k.split('.') {
            match cur.get(seg) {
                Some(v) => cur = v,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            diffs.push(format!("context_overrides.{k}: missing in {root}"));
            continue;
        }
        json_matches(
            ev,
            cur,
            true,
            bound,
            &format!("context_overrides.{k}"),
            diffs,
        );
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let template = case["template"].as_str().ok_or("case has no template")?;
    let input = &case["input"];
    let body = input.get("body").and_then(Value::as_str).unwrap_or("");
    let params_v = input.get("params");
    let params = Params {
        path: pairs(params_v.and_then(|p| p.get("path"))),
        querystring: pairs(params_v.and_then(|p| p.get("querystring"))),
        header: pairs(params_v.and_then(|p| p.get("header"))),
    };
    let stage = match input.get("stage_variables") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    let context = match (input.get("context"), input.get("request")) {
        (Some(c @ Value::Object(_)), _) => c.clone(),
        (_, Some(r)) => context_for_request(r),
        _ => json!({}),
    };
    let tpl = Template::compile(template).map_err(|e| format!("compile error: {e}"))?;
    let rendered = tpl
        .render(
            &RenderInput {
                body,
                params: &params,
                context: &context,
                stage_variables: &stage,
            },
            &Limits::default(),
        )
        .map_err(|e| format!("render error: {e}"))?;
    let out = &rendered.output;
    let expected = &case["expected"];
    let mut bound = HashMap::new();
    let mut diffs = Vec::new();
    match expected["match"].as_str().unwrap_or("exact") {
        "exact" => {
            let want = expected["output"].as_str().unwrap_or("");
            if !match_placeholder(want, out, &mut bound) {
                diffs.push(format!("output {out:?}\n      expected {want:?}"));
            }
        }
        m @ ("json" | "json_subset") => match serde_json::from_str::<Value>(out) {
            Ok(actual) => json_matches(
                &expected["output_json"],
                &actual,
                m == "json_subset",
                &mut bound,
                "$",
                &mut diffs,
            ),
            Err(e) => diffs.push(format!("output is not JSON ({e}): {out:?}")),
        },
        "contains" => {
            for s in expected["output"].as_array().into_iter().flatten() {
                let s = s.as_str().unwrap_or("");
                if !out.contains(s) {
                    diffs.push(format!("output does not contain {s:?}: {out:?}"));
                }
            }
        }
        other => diffs.push(format!("unknown match kind {other}")),
    }
    if let Some(Value::Object(ov)) = expected.get("context_overrides") {
        check_overrides(
            ov,
            &rendered.request_override,
            &rendered.response_override,
            &mut bound,
            &mut diffs,
        );
    }
    if let Some(status) = expected.get("final_status").and_then(Value::as_u64) {
        if rendered.overrides.response_status != Some(status as u16) {
            diffs.push(format!(
                "overrides.response_status {:?} != expected {status}",
                rendered.overrides.response_status
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n    "))
    }
}

#[test]
fn aws_recorded_render_cases() {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let corpus: Value = serde_json::from_str(&text).expect("vtl.json is JSON");
    let cases = corpus["cases"].as_array().expect("cases array");
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in cases {
        if case["kind"] != "render" {
            continue;
        }
        ran += 1;
        let id = case["id"].as_str().unwrap_or("?");
        if let Err(d) = run_case(case) {
            failures.push(format!("  {id}:\n    {d}"));
        }
    }
    assert!(
        ran >= 30,
        "expected the corpus to have render cases, found {ran}"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} render cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} render cases passed");
}

/// Pipeline cases are end-to-end (the gateway's job), but where a stage's output is
/// determined by the template alone we check the rendering of each template.
#[test]
fn pipeline_templates_render() {
    let text = std::fs::read_to_string(corpus_path()).expect("corpus");
    let corpus: Value = serde_json::from_str(&text).expect("json");
    let empty = Map::new();
    let ctx = json!({});
    let params = Params::default();
    let mut failures = Vec::new();
    for case in corpus["cases"].as_array().into_iter().flatten() {
        if case["kind"] != "pipeline" || case["integration"]["type"] != "HTTP" {
            continue;
        }
        // HTTP echo pipelines: request template renders the client body, the echo
        // returns it, the response template renders that.
        let id = case["id"].as_str().unwrap_or("?");
        let req_t = case["request_template"]["application/json"]
            .as_str()
            .unwrap_or("");
        let resp_t = case["response_template"]["application/json"]
            .as_str()
            .unwrap_or("");
        let body = case["request"]["body"].as_str().unwrap_or("");
        let render = |t: &str, body: &str| -> String {
            let tpl = Template::compile(t).expect("compiles");
            tpl.render(
                &RenderInput {
                    body,
                    params: &params,
                    context: &ctx,
                    stage_variables: &empty,
                },
                &Limits::default(),
            )
            .expect("renders")
            .output
        };
        let mid = render(req_t, body);
        let out = render(resp_t, &mid);
        let want = case["expected"]["body"].as_str().unwrap_or("");
        if out != want {
            failures.push(format!("  {id}: {out:?} != expected {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "pipeline renders failed:\n{}",
        failures.join("\n")
    );
}
