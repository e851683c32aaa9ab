//! Authorizers end to end through the real server (§7.5, §7.6, §7.9): Lambda TOKEN and REQUEST
//! authorizers run as real functions (awslambdaric), Cognito user pool JWTs signed in the test
//! with keys served from a JWKS endpoint the test starts, SigV4 requests signed by botocore, and
//! a bad-input suite (forged, expired, malformed, oversized tokens and signatures).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API: &str = "authzapi01";
const KEYAPI: &str = "authkey001";
const ALICE: &str = "alice-key-0123456789abcdefghij";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

fn lambda_uri(function: &str) -> String {
    format!("arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}/invocations")
}

/// Authorizer and echo functions (run unmodified by awslambdaric). Every authorizer invocation
/// appends its event to `$AUTH_LOG`, so tests count invocations and inspect events.
const AUTH_PY: &str = r#"
import json, os, time

def _log(event):
    with open(os.environ["AUTH_LOG"], "a") as f:
        f.write(json.dumps(event) + "\n")

def _base(arn):
    parts = arn.split("/")
    return parts[0] + "/" + parts[1] + "/*"

def _policy(effect, resource, principal, extra=None):
    out = {"principalId": principal,
           "policyDocument": {"Version": "2012-10-17", "Statement": [
               {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
           "context": {"user": principal, "n": 7, "b": True}}
    if extra:
        out.update(extra)
    return out

def token(event, context):
    _log(event)
    tok = event["authorizationToken"]
    kind = tok.split("-")[0]
    arn = event["methodArn"]
    if kind == "allow":
        return _policy("Allow", arn, "user-" + tok)
    if kind == "wild":
        return _policy("Allow", _base(arn), "user-" + tok)
    if kind == "deny":
        return _policy("Deny", arn, "user-" + tok)
    if kind == "elsewhere":
        return _policy("Allow", arn.split("/")[0] + "/other-stage/*", "user-" + tok)
    if kind == "boom":
        raise Exception("boom")
    if kind == "http":
        return {"statusCode": 200, "body": "ok"}
    if kind == "nested":
        return _policy("Allow", arn, "user-" + tok, {"context": {"o": {"a": 1}}})
    if kind == "slow":
        time.sleep(5)
        return _policy("Allow", arn, "user-" + tok)
    if kind == "key":
        value = os.environ.get("KEY_" + tok.split("-")[1], "no-such-key-0123456789abcdef")
        return _policy("Allow", _base(arn), "user-" + tok, {"usageIdentifierKey": value})
    raise Exception("Unauthorized")

def request(event, context):
    _log(event)
    h = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    user = h.get("x-user", "anonymous")
    if user == "deny":
        return _policy("Deny", event["methodArn"], user)
    if user == "unauth":
        raise Exception("Unauthorized")
    ctx = {"tenant": (event.get("queryStringParameters") or {}).get("tenant", ""),
           "realm": (event.get("stageVariables") or {}).get("realm", "")}
    return _policy("Allow", _base(event["methodArn"]), user, {"context": ctx})

def echo(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(event)}
"#;

fn py_fn(handler: &str, dir: &Path, timeout: u32, env: Value) -> Value {
    json!({
        "command": [python(), "-m", "awslambdaric", handler],
        "workingDir": dir.display().to_string(),
        "handler": handler,
        "timeout": timeout,
        "environment": env,
    })
}

fn mock_ctx_op(security: Value) -> Value {
    let mut op = mock_op(
        200,
        r#"{"principal":"$context.authorizer.principalId","user":"$context.authorizer.user","n":"$context.authorizer.n","b":"$context.authorizer.b","tenant":"$context.authorizer.tenant","realm":"$context.authorizer.realm","key":"$context.identity.apiKeyId"}"#,
    );
    op["security"] = security;
    op
}

fn proxy_op(function: &str, security: Value) -> Value {
    json!({
        "security": security,
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "AWS_PROXY", "httpMethod": "POST", "uri": lambda_uri(function),
        },
    })
}

fn lambda_scheme(kind: &str, function: &str, source: &str, ttl: u32, extra: Value) -> Value {
    let mut a = json!({
        "type": kind,
        "authorizerUri": lambda_uri(function),
        "identitySource": source,
        "authorizerResultTtlInSeconds": ttl,
    });
    if let (Value::Object(a), Value::Object(e)) = (&mut a, extra) {
        a.extend(e);
    }
    json!({"type": "apiKey", "name": "Unused", "in": "header", "x-amazon-apigateway-authtype": "custom", "x-amazon-apigateway-authorizer": a})
}

struct Lambdas {
    _dir: tempfile::TempDir,
    tp: Turnpike,
    log: PathBuf,
}

impl Lambdas {
    /// The events the authorizers received so far.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("event JSON"))
            .collect()
    }

    fn count(&self) -> usize {
        self.events().len()
    }
}

/// One project with every Lambda authorizer case: `authzapi01` (TOKEN cached, TOKEN uncached,
/// TOKEN with a 1 s TTL, REQUEST cached and uncached) and `authkey001` (apiKeySource AUTHORIZER).
fn lambda_project() -> Lambdas {
    let dir = temp_dir();
    write(dir.path(), "auth.py", AUTH_PY);
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").expect("log");
    let tok = json!([{"tok": []}]);
    let paths = json!({
        "/pets/{id}": {
            "parameters": path_params(&["id"]),
            "get": mock_ctx_op(tok.clone()),
            "post": mock_ctx_op(tok.clone()),
        },
        "/": {"get": mock_ctx_op(tok.clone())},
        "/uncached": {"get": mock_ctx_op(json!([{"tok0": []}]))},
        "/short": {"get": mock_ctx_op(json!([{"tok1s": []}]))},
        "/req/{id}": {
            "parameters": path_params(&["id"]),
            "get": mock_ctx_op(json!([{"req": []}])),
        },
        "/req0": {"get": mock_ctx_op(json!([{"req0": []}]))},
        "/proxy": {"get": proxy_op("echo", tok.clone())},
        "/reqproxy": {"get": proxy_op("echo", json!([{"req": []}]))},
        "/open": {"get": mock_op(200, "{\"open\":true}")},
    });
    let mut doc = openapi("Authorizers", paths);
    doc["components"] = json!({"securitySchemes": {
        "tok": lambda_scheme("token", "tokauth", "method.request.header.Authorization", 300,
            json!({"identityValidationExpression": "[a-z]+-[A-Za-z0-9-]+"})),
        "tok0": lambda_scheme("token", "tokauth", "method.request.header.Authorization", 0, json!({})),
        "tok1s": lambda_scheme("token", "tokauth", "method.request.header.X-Token", 1, json!({})),
        "req": lambda_scheme("request", "reqauth",
            "method.request.header.X-User, method.request.querystring.tenant, stageVariables.realm, context.httpMethod", 300, json!({})),
        "req0": lambda_scheme("request", "reqauth", "method.request.header.X-User", 0, json!({})),
    }});
    write_json(dir.path(), "api.json", &doc);

    let mut keyed = mock_ctx_op(json!([{"tok": [], "api_key": []}]));
    keyed["security"] = json!([{"tok": [], "api_key": []}]);
    let mut kdoc = openapi("Keyed", json!({"/keyed": {"get": keyed}}));
    kdoc["x-amazon-apigateway-api-key-source"] = json!("AUTHORIZER");
    kdoc["components"] = json!({"securitySchemes": {
        "tok": lambda_scheme("token", "tokauth", "method.request.header.Authorization", 300, json!({})),
        "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
    }});
    write_json(dir.path(), "keyed.json", &kdoc);

    let env = json!({"AUTH_LOG": log.display().to_string(), "KEY_alice": ALICE});
    let project = json!({
        "apis": [
            {"definition": "api.json", "id": API, "stages": [{"name": "dev", "variables": {"realm": "blue"}}]},
            {"definition": "keyed.json", "id": KEYAPI, "stages": [{"name": "dev"}]},
        ],
        "functions": {
            "tokauth": py_fn("auth.token", dir.path(), 3, env.clone()),
            "reqauth": py_fn("auth.request", dir.path(), 10, env.clone()),
            "echo": py_fn("auth.echo", dir.path(), 10, env),
        },
        "apiKeys": [{"name": "alice", "value": ALICE}],
        "usagePlans": [{"name": "gold", "apiStages": [{"api": KEYAPI, "stage": "dev"}], "keys": ["alice"]}],
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let data = dir.path().join("state").display().to_string();
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--data-dir", &data]);
    Lambdas { _dir: dir, tp, log }
}

async fn call(tp: &Turnpike, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut rb = client().request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        tp.url(path),
    );
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    send(rb).await
}

fn assert_unauthorized(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Unauthorized"}));
    assert_eq!(r.header("x-amzn-errortype"), Some("UnauthorizedException"));
    r.assert_aws_ids();
}

fn assert_denied(r: &Resp, explicit: bool) {
    assert_eq!(r.status, 403, "{}", r.text());
    let m = if explicit {
        "User is not authorized to access this resource with an explicit deny"
    } else {
        "User is not authorized to access this resource"
    };
    assert_eq!(r.text(), format!("{{\"Message\":\"{m}\"}}"));
    assert_eq!(r.header("x-amzn-errortype"), Some("AccessDeniedException"));
}

fn assert_config_error(r: &Resp) {
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json(), json!({"message": null}));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("AuthorizerConfigurationException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_token_authorizer_allow_deny_errors_and_cache() {
    let l = lambda_project();
    let tp = &l.tp;
    let auth = |t: &'static str| [("Authorization", t)];

    // Allow: the TOKEN event is exactly AWS's, context values arrive stringified.
    let r = call(tp, "GET", "/dev/pets/1", &auth("allow-a")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    let v = r.json();
    assert_eq!(
        (&v["principal"], &v["user"], &v["n"], &v["b"]),
        (
            &json!("user-allow-a"),
            &json!("user-allow-a"),
            &json!("7"),
            &json!("true")
        )
    );
    let ev = l.events();
    assert_eq!(
        ev,
        vec![json!({
            "type": "TOKEN",
            "authorizationToken": "allow-a",
            "methodArn": format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/dev/GET/pets/1"),
        })]
    );
    // Cache hit: same token, same method, no new invocation.
    let r = call(tp, "GET", "/dev/pets/1", &auth("allow-a")).await;
    assert_eq!(r.status, 200);
    assert_eq!(l.count(), 1);
    // The cached policy names GET /pets/1 only: other methods are denied from the cache.
    assert_denied(
        &call(tp, "POST", "/dev/pets/1", &auth("allow-a")).await,
        false,
    );
    assert_denied(
        &call(tp, "GET", "/dev/pets/2", &auth("allow-a")).await,
        false,
    );
    assert_eq!(
        l.count(),
        1,
        "a cached policy is re-evaluated, not re-fetched"
    );
    // A wildcard policy covers other methods from the cache.
    assert_eq!(
        call(tp, "GET", "/dev/pets/1", &auth("wild-b")).await.status,
        200
    );
    assert_eq!(
        call(tp, "POST", "/dev/pets/9", &auth("wild-b"))
            .await
            .status,
        200
    );
    let root = call(tp, "GET", "/dev/", &auth("wild-b")).await;
    assert_eq!(root.status, 200, "{}", root.text());
    assert_eq!(l.count(), 2);
    // The root resource's method ARN ends in "GET/".
    let r = call(tp, "GET", "/dev/", &auth("allow-root")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        l.events().last().expect("event")["methodArn"],
        format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/dev/GET/")
    );

    // Deny and a policy for another stage.
    assert_denied(&call(tp, "GET", "/dev/pets/1", &auth("deny-c")).await, true);
    assert_denied(
        &call(tp, "GET", "/dev/pets/1", &auth("elsewhere-d")).await,
        false,
    );
    // Denials are cached too.
    let before = l.count();
    assert_denied(&call(tp, "GET", "/dev/pets/1", &auth("deny-c")).await, true);
    assert_eq!(l.count(), before);

    // "Unauthorized" from the function → 401; any other failure → 500 {"message":null}.
    assert_unauthorized(&call(tp, "GET", "/dev/pets/1", &auth("nobody-e")).await);
    assert_config_error(&call(tp, "GET", "/dev/pets/1", &auth("boom-f")).await);
    assert_config_error(&call(tp, "GET", "/dev/pets/1", &auth("http-g")).await);
    assert_config_error(&call(tp, "GET", "/dev/pets/1", &auth("nested-h")).await);
    // The function's own timeout (3 s).
    assert_config_error(&call(tp, "GET", "/dev/pets/1", &auth("slow-i")).await);
    // Failures are not cached.
    let before = l.count();
    assert_config_error(&call(tp, "GET", "/dev/pets/1", &auth("boom-f")).await);
    assert_eq!(l.count(), before + 1);

    // Identity checks happen before any invocation.
    let before = l.count();
    assert_unauthorized(&call(tp, "GET", "/dev/pets/1", &[]).await);
    assert_unauthorized(&call(tp, "GET", "/dev/pets/1", &auth("")).await);
    // identityValidationExpression must match the whole token.
    assert_unauthorized(&call(tp, "GET", "/dev/pets/1", &auth("nodash")).await);
    assert_unauthorized(&call(tp, "GET", "/dev/pets/1", &auth("allow-a!")).await);
    assert_eq!(l.count(), before, "no invocation without a valid identity");

    // TTL 0: every request invokes the function.
    let before = l.count();
    for _ in 0..3 {
        assert_eq!(
            call(tp, "GET", "/dev/uncached", &auth("allow-j"))
                .await
                .status,
            200
        );
    }
    assert_eq!(l.count(), before + 3);

    // TTL 1 s: a hit within the TTL, a new invocation after it.
    let before = l.count();
    let short = [("X-Token", "wild-k")];
    assert_eq!(call(tp, "GET", "/dev/short", &short).await.status, 200);
    assert_eq!(call(tp, "GET", "/dev/short", &short).await.status, 200);
    assert_eq!(l.count(), before + 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(call(tp, "GET", "/dev/short", &short).await.status, 200);
    assert_eq!(l.count(), before + 2, "the cached result expired");

    // Methods without authorization never call the authorizer.
    let before = l.count();
    assert_eq!(call(tp, "GET", "/dev/open", &[]).await.status, 200);
    assert_eq!(l.count(), before);

    // The Lambda proxy event carries requestContext.authorizer.
    let r = call(tp, "GET", "/dev/proxy", &auth("wild-b")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = &r.json()["requestContext"]["authorizer"];
    assert_eq!(a["principalId"], "user-wild-b");
    assert_eq!(a["user"], "user-wild-b");
    assert_eq!(a["n"], "7");
    assert_eq!(a["b"], "true");
    assert_eq!(a["integrationLatency"], 0, "served from the cache");
    let r = call(tp, "GET", "/dev/proxy", &auth("wild-fresh")).await;
    let a = &r.json()["requestContext"]["authorizer"];
    assert!(a["integrationLatency"].as_u64().is_some(), "{a}");

    // usageIdentifierKey with apiKeySource AUTHORIZER.
    let keyed = format!("/_aws/execute-api/{KEYAPI}/dev/keyed");
    let r = call(tp, "GET", &keyed, &auth("key-alice")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["key"].as_str().map(str::len), Some(10));
    let r = call(tp, "GET", &keyed, &auth("key-mallory")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Forbidden"}));
    // The x-api-key header does not count with apiKeySource AUTHORIZER.
    let r = call(
        tp,
        "GET",
        &keyed,
        &[("Authorization", "key-mallory"), ("x-api-key", ALICE)],
    )
    .await;
    assert_eq!(r.status, 403);

    let logs = tp.stderr() + &tp.stdout();
    assert!(!logs.contains("panicked"), "{logs}");
    for secret in ["allow-a", "wild-b", "boom-f", "key-alice", ALICE] {
        assert!(!logs.contains(secret), "{secret:?} was logged:\n{logs}");
    }
}

/// A Lambda authorizer with a resource policy, AWS's two phases: an explicit Deny in the resource
/// policy rejects before the authorizer runs; otherwise the authorizer's policy and the resource
/// policy combine by the same-account table (Allow+Allow, Allow+silent and silent+Allow allow;
/// any Deny denies explicitly; silent+silent denies implicitly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_authorizer_with_resource_policy() {
    const POLICY_API: &str = "authzpol01";
    let dir = temp_dir();
    write(dir.path(), "auth.py", AUTH_PY);
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").expect("log");
    let tok = json!([{"tok": []}]);
    let mut doc = openapi(
        "PolicyAndAuthorizer",
        json!({
            "/allowed": {"get": mock_ctx_op(tok.clone())},
            "/blocked": {"get": mock_ctx_op(tok.clone())},
            "/silent": {"get": mock_ctx_op(tok.clone())},
        }),
    );
    doc["components"] = json!({"securitySchemes": {
        // No caching: every request shows whether the authorizer ran.
        "tok": lambda_scheme("token", "tokauth", "method.request.header.Authorization", 0, json!({})),
    }});
    doc["x-amazon-apigateway-policy"] = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
             "Resource": "execute-api:/*/GET/allowed"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
             "Resource": "execute-api:/*/GET/blocked"},
        ],
    });
    write_json(dir.path(), "api.json", &doc);
    let env = json!({"AUTH_LOG": log.display().to_string()});
    let project = json!({
        "apis": [{"definition": "api.json", "id": POLICY_API, "stages": [{"name": "dev"}]}],
        "functions": {"tokauth": py_fn("auth.token", dir.path(), 3, env)},
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let data = dir.path().join("state").display().to_string();
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--data-dir", &data]);
    let invocations = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let auth = |t: &'static str| [("Authorization", t)];

    // Phase 1: the resource policy's explicit Deny answers before the authorizer is invoked.
    let r = call(&tp, "GET", "/dev/blocked", &auth("allow-a")).await;
    assert_eq!(r.status, 403, "{}\n{}", r.text(), tp.stderr());
    assert_eq!(r.header("x-amzn-errortype"), Some("AccessDeniedException"));
    assert!(r.text().contains("with an explicit deny"), "{}", r.text());
    assert_eq!(
        invocations(),
        0,
        "the authorizer ran despite the explicit Deny"
    );

    // Phase 2, caller (authorizer) policy x resource policy.
    // Allow x Allow
    let r = call(&tp, "GET", "/dev/allowed", &auth("allow-a")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    assert_eq!(r.json()["principal"], "user-allow-a");
    // Allow x silent
    let r = call(&tp, "GET", "/dev/silent", &auth("allow-b")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // silent x Allow: the authorizer's policy names another stage only.
    let r = call(&tp, "GET", "/dev/allowed", &auth("elsewhere-c")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // silent x silent: implicit deny.
    assert_denied(
        &call(&tp, "GET", "/dev/silent", &auth("elsewhere-d")).await,
        false,
    );
    // Deny x Allow: explicit deny.
    assert_denied(
        &call(&tp, "GET", "/dev/allowed", &auth("deny-e")).await,
        true,
    );
    assert_eq!(invocations(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_request_authorizer_event_identity_sources_and_cache() {
    let l = lambda_project();
    let tp = &l.tp;
    let path = "/dev/req/7?tenant=acme&tenant=acme2&x=1";
    let r = call(tp, "GET", path, &[("X-User", "ann"), ("X-Other", "o")]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    assert_eq!(r.json()["principal"], "ann");
    assert_eq!(r.json()["tenant"], "acme2");
    assert_eq!(r.json()["realm"], "blue");
    let ev = l.events().pop().expect("event");
    assert_eq!(
        sorted_keys(&ev),
        [
            "headers",
            "httpMethod",
            "methodArn",
            "multiValueHeaders",
            "multiValueQueryStringParameters",
            "path",
            "pathParameters",
            "queryStringParameters",
            "requestContext",
            "resource",
            "stageVariables",
            "type"
        ]
    );
    assert_eq!(ev["type"], "REQUEST");
    assert_eq!(
        ev["methodArn"],
        format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/dev/GET/req/7")
    );
    assert_eq!(ev["resource"], "/req/{id}");
    assert_eq!(ev["path"], "/req/7");
    assert_eq!(ev["httpMethod"], "GET");
    assert_eq!(ev["headers"]["X-User"], "ann");
    assert_eq!(ev["multiValueHeaders"]["X-Other"], json!(["o"]));
    assert_eq!(
        ev["queryStringParameters"],
        json!({"tenant": "acme2", "x": "1"})
    );
    assert_eq!(
        ev["multiValueQueryStringParameters"]["tenant"],
        json!(["acme", "acme2"])
    );
    assert_eq!(ev["pathParameters"], json!({"id": "7"}));
    assert_eq!(ev["stageVariables"], json!({"realm": "blue"}));
    let rc = &ev["requestContext"];
    assert_eq!(rc["resourcePath"], "/req/{id}");
    assert_eq!(rc["stage"], "dev");
    assert_eq!(rc["apiId"], API);
    assert_eq!(rc["accountId"], ACCOUNT);
    assert!(rc.get("authorizer").is_none());

    // Cache key = every identity source: same values hit, another value misses.
    let n = l.count();
    assert_eq!(
        call(tp, "GET", path, &[("X-User", "ann")]).await.status,
        200
    );
    assert_eq!(
        call(tp, "GET", "/dev/req/8?tenant=acme2", &[("X-User", "ann")])
            .await
            .status,
        200
    );
    assert_eq!(l.count(), n, "cached by header, query and stage values");
    assert_eq!(
        call(tp, "GET", "/dev/req/8?tenant=other", &[("X-User", "ann")])
            .await
            .status,
        200
    );
    assert_eq!(l.count(), n + 1);
    assert_eq!(
        call(tp, "GET", "/dev/req/8?tenant=other", &[("X-User", "bob")])
            .await
            .status,
        200
    );
    assert_eq!(l.count(), n + 2);

    // With caching on, every identity source must be present and non-empty: 401, no call.
    let n = l.count();
    assert_unauthorized(&call(tp, "GET", "/dev/req/7", &[("X-User", "ann")]).await);
    assert_unauthorized(&call(tp, "GET", "/dev/req/7?tenant=acme", &[]).await);
    assert_unauthorized(&call(tp, "GET", "/dev/req/7?tenant=", &[("X-User", "ann")]).await);
    assert_unauthorized(&call(tp, "GET", "/dev/req/7?tenant=a", &[("X-User", " ")]).await);
    assert_eq!(l.count(), n);

    // Deny, "Unauthorized".
    assert_denied(
        &call(tp, "GET", "/dev/req/7?tenant=a", &[("X-User", "deny")]).await,
        true,
    );
    assert_unauthorized(&call(tp, "GET", "/dev/req/7?tenant=a", &[("X-User", "unauth")]).await);

    // TTL 0: sources are optional and every request invokes the function.
    let n = l.count();
    let r = call(tp, "GET", "/dev/req0", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["principal"], "anonymous");
    assert_eq!(call(tp, "GET", "/dev/req0", &[]).await.status, 200);
    assert_eq!(l.count(), n + 2);

    // Proxy event: principalId, integrationLatency and the context in requestContext.authorizer.
    let r = call(tp, "GET", "/dev/reqproxy?tenant=t1", &[("X-User", "cy")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = &r.json()["requestContext"]["authorizer"];
    assert_eq!(a["principalId"], "cy");
    assert_eq!(a["tenant"], "t1");
    assert_eq!(a["realm"], "blue");
    assert!(a["integrationLatency"].is_u64(), "{a}");
}

// ---------------------------------------------------------------------------------------------
// Cognito user pool (JWT) authorizers
// ---------------------------------------------------------------------------------------------

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test01";
const CLIENT_ID: &str = "client-1";

/// Generates an RSA key, its JWKS and test tokens (python `cryptography`, signed by hand so the
/// forged variants can be built too).
const TOKENS_PY: &str = r#"
import base64, hashlib, hmac, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISS, AUD = sys.argv[1], sys.argv[2]
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def enc(o): return b64(json.dumps(o, separators=(",", ":")).encode())
def num(i): return b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = key.public_key()
pn = pub.public_numbers()
pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
jwks = {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": num(pn.n), "e": num(pn.e)}]}
def sign(header, claims, k=key):
    si = enc(header) + "." + enc(claims)
    return si + "." + b64(k.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256()))
now = int(time.time())
idt = {"sub": "u-123", "iss": ISS, "aud": AUD, "token_use": "id", "exp": now + 3600, "iat": now,
       "email": "ann@example.com", "custom:role": "admin", "cognito:username": "ann"}
acc = {"sub": "u-123", "iss": ISS, "client_id": AUD, "token_use": "access", "exp": now + 3600,
       "iat": now, "scope": "pets/read openid"}
H = {"alg": "RS256", "kid": "k1", "typ": "JWT"}
valid = sign(H, idt)
h, p, s = valid.split(".")
hs = enc({"alg": "HS256", "kid": "k1", "typ": "JWT"}) + "." + enc(idt)
tokens = {
    "valid": valid,
    "access": sign(H, acc),
    "access_wrong_scope": sign(H, {**acc, "scope": "openid"}),
    "expired": sign(H, {**idt, "exp": now - 3600, "iat": now - 7200}),
    "not_yet": sign(H, {**idt, "nbf": now + 3600}),
    "wrong_iss": sign(H, {**idt, "iss": ISS + "x"}),
    "wrong_aud": sign(H, {**idt, "aud": "someone-else"}),
    "bad_sig": sign(H, idt, other),
    "tampered": h + "." + enc({**idt, "custom:role": "root"}) + "." + s,
    "unknown_kid": sign({**H, "kid": "k9"}, idt),
    "alg_none": enc({"alg": "none", "typ": "JWT"}) + "." + enc(idt) + ".",
    "hs256_public_key": hs + "." + b64(hmac.new(pem, hs.encode(), hashlib.sha256).digest()),
    "big": sign(H, {**idt, "pad": "x" * 5000}),
}
print(json.dumps({"jwks": jwks, "tokens": tokens}))
"#;

/// A one-document HTTP server (the JWKS endpoint); counts requests.
async fn serve_document(body: String) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

fn run_python(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

struct Cognito {
    _dir: tempfile::TempDir,
    tp: Turnpike,
    tokens: Value,
    jwks_hits: Arc<AtomicUsize>,
}

async fn cognito_project() -> Cognito {
    let gen = run_python(TOKENS_PY, &[ISSUER, CLIENT_ID]);
    let (port, jwks_hits) = serve_document(gen["jwks"].to_string()).await;
    let dir = temp_dir();
    write(dir.path(), "auth.py", AUTH_PY);
    let claims_op = |scopes: Value| {
        let mut op = mock_op(
            200,
            r#"{"sub":"$context.authorizer.claims.sub","email":"$context.authorizer.claims.email","role":"$context.authorizer.claims['custom:role']"}"#,
        );
        op["security"] = json!([{"pool": scopes}]);
        op
    };
    let mut doc = openapi(
        "Cognito",
        json!({
            "/me": {"get": claims_op(json!([]))},
            "/scoped": {"get": claims_op(json!(["pets/read"]))},
            "/proxy": {"get": proxy_op("echo", json!([{"pool": []}]))},
        }),
    );
    doc["components"] = json!({"securitySchemes": {"pool": {
        "type": "apiKey", "name": "Authorization", "in": "header",
        "x-amazon-apigateway-authtype": "cognito_user_pools",
        "x-amazon-apigateway-authorizer": {
            "type": "cognito_user_pools",
            "providerARNs": [format!("arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/us-east-1_Test01")],
        },
    }}});
    write_json(dir.path(), "api.json", &doc);
    let project = json!({
        "apis": [{"definition": "api.json", "id": API, "stages": [{"name": "dev"}]}],
        "functions": {"echo": py_fn("auth.echo", dir.path(), 10, json!({}))},
        "authorizers": {"pool": {
            "jwksUri": format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
            "audience": [CLIENT_ID],
        }},
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let tp = Turnpike::serve(&file);
    Cognito {
        _dir: dir,
        tp,
        tokens: gen["tokens"].clone(),
        jwks_hits,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_jwt_valid_expired_issuer_audience_signature_scopes() {
    let c = cognito_project().await;
    let tp = &c.tp;
    let t = |name: &str| c.tokens[name].as_str().expect("token").to_string();
    let get = |path: &'static str, token: Option<String>| async move {
        let mut rb = client().get(tp.url(path));
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        send(rb).await
    };

    let r = get("/dev/me", Some(t("valid"))).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    assert_eq!(
        r.json(),
        json!({"sub": "u-123", "email": "ann@example.com", "role": "admin"})
    );
    // "Bearer " is accepted as Cognito does.
    let r = get("/dev/me", Some(format!("Bearer {}", t("valid")))).await;
    assert_eq!(r.status, 200);
    // Claims in the proxy event.
    let r = get("/dev/proxy", Some(t("valid"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let claims = &r.json()["requestContext"]["authorizer"]["claims"];
    assert_eq!(claims["sub"], "u-123");
    assert_eq!(claims["custom:role"], "admin");
    // Scopes: an access token with the scope passes; without it, 401; an ID token, 401.
    assert_eq!(get("/dev/scoped", Some(t("access"))).await.status, 200);
    assert_unauthorized(&get("/dev/scoped", Some(t("access_wrong_scope"))).await);
    assert_unauthorized(&get("/dev/scoped", Some(t("valid"))).await);

    for bad in [
        "expired",
        "not_yet",
        "wrong_iss",
        "wrong_aud",
        "bad_sig",
        "tampered",
        "unknown_kid",
        "alg_none",
        "hs256_public_key",
    ] {
        let r = get("/dev/me", Some(t(bad))).await;
        assert_eq!(r.status, 401, "{bad}: {}", r.text());
        assert_unauthorized(&r);
    }
    assert_unauthorized(&get("/dev/me", None).await);
    assert_unauthorized(&get("/dev/me", Some(String::new())).await);
    // The JWKS was fetched once, plus bounded refetches for the unknown kid.
    let hits = c.jwks_hits.load(Ordering::SeqCst);
    assert!((1..=2).contains(&hits), "{hits} JWKS fetches");
    for _ in 0..5 {
        assert_unauthorized(&get("/dev/me", Some(t("unknown_kid"))).await);
    }
    assert!(
        c.jwks_hits.load(Ordering::SeqCst) <= hits + 1,
        "unknown kids do not hammer the JWKS endpoint"
    );
    let logs = tp.stderr() + &tp.stdout();
    assert!(!logs.contains(&t("valid")), "a token was logged");
    assert!(!logs.contains("panicked"), "{logs}");
}

// ---------------------------------------------------------------------------------------------
// IAM (SigV4)
// ---------------------------------------------------------------------------------------------

const AK: &str = "AKIDTURNPIKETEST0001";
const SK: &str = "tUrNpIkEsEcReTkEy0123456789abcdefghijklm";

/// Signs a request with botocore (SigV4 header form, or the presigned query form).
const SIGN_PY: &str = r#"
import datetime, json, sys
import botocore.auth, botocore.awsrequest, botocore.credentials
a = json.loads(sys.argv[1])
if a.get("skew"):
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: real() - datetime.timedelta(seconds=a["skew"])
creds = botocore.credentials.Credentials(a["ak"], a["sk"])
req = botocore.awsrequest.AWSRequest(method=a["method"], url=a["url"], data=a.get("body", "").encode(),
                                     headers=a.get("headers", {}))
if a.get("presign"):
    botocore.auth.SigV4QueryAuth(creds, "execute-api", a["region"], expires=a["presign"]).add_auth(req)
else:
    botocore.auth.SigV4Auth(creds, "execute-api", a["region"]).add_auth(req)
print(json.dumps({"url": req.url, "headers": dict(req.headers.items())}))
"#;

fn sign(args: Value) -> (String, Vec<(String, String)>) {
    let mut a = json!({"ak": AK, "sk": SK, "region": REGION, "method": "GET"});
    if let (Value::Object(a), Value::Object(e)) = (&mut a, args) {
        a.extend(e);
    }
    let v = run_python(SIGN_PY, &[&a.to_string()]);
    let headers = v["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    (v["url"].as_str().expect("url").to_string(), headers)
}

async fn send_signed(method: &str, url: &str, headers: &[(String, String)], body: &str) -> Resp {
    let mut rb = client().request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        url,
    );
    for (k, v) in headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    send(rb.body(body.to_string())).await
}

fn iam_project() -> (tempfile::TempDir, Turnpike) {
    let dir = temp_dir();
    let mut op = mock_op(
        200,
        r#"{"arn":"$context.identity.userArn","key":"$context.identity.accessKey"}"#,
    );
    op["security"] = json!([{"sigv4": []}]);
    let mut doc = openapi("Iam", json!({"/things": {"get": op.clone(), "post": op}}));
    doc["components"] = json!({"securitySchemes": {"sigv4": {
        "type": "apiKey", "name": "Authorization", "in": "header",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }}});
    write_json(dir.path(), "api.json", &doc);
    let project = json!({
        "apis": [{"definition": "api.json", "id": API, "stages": [{"name": "dev"}]}],
        "iamAccessKeys": [{"accessKeyId": AK, "secretAccessKey": SK, "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice")}],
    });
    let file = write_json(dir.path(), "turnpike.json", &project);
    let tp = Turnpike::serve(&file);
    (dir, tp)
}

fn assert_mismatch(r: &Resp) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"message": "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."})
    );
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidSignatureException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_signed_tampered_expired_replayed_wrong_key_missing() {
    let (_dir, tp) = iam_project();
    let url = tp.url("/dev/things?b=2&a=1");

    // Signed by botocore: accepted; the caller is in $context.identity.
    let (u, h) = sign(json!({"url": url}));
    let r = send_signed("GET", &u, &h, "").await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    assert_eq!(
        r.json(),
        json!({"arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"), "key": AK})
    );
    // Replayed within the 5-minute window: AWS accepts it too (SigV4 has no nonce).
    assert_eq!(send_signed("GET", &u, &h, "").await.status, 200);

    // A body is covered by the signature.
    let (u, h) = sign(
        json!({"url": url, "method": "POST", "body": "{\"n\":1}", "headers": {"Content-Type": "application/json", "X-Extra": "a"}}),
    );
    assert_eq!(send_signed("POST", &u, &h, "{\"n\":1}").await.status, 200);
    assert_mismatch(&send_signed("POST", &u, &h, "{\"n\":2}").await);
    // A signed header changed.
    let tampered: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| {
            let v = if k == "X-Extra" {
                "b".into()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    assert_mismatch(&send_signed("POST", &u, &tampered, "{\"n\":1}").await);
    // Another path than the signed one.
    assert_mismatch(&send_signed("POST", &tp.url("/dev/things?b=2&a=3"), &h, "{\"n\":1}").await);

    // Wrong secret key.
    let (u, h) = sign(json!({"url": url, "sk": "wrong-secret-0123456789abcdefghijklmnopq"}));
    assert_mismatch(&send_signed("GET", &u, &h, "").await);
    // Unknown access key.
    let (u, h) = sign(json!({"url": url, "ak": "AKIDUNKNOWN000000000"}));
    let r = send_signed("GET", &u, &h, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"message": "The security token included in the request is invalid."})
    );
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("UnrecognizedClientException")
    );

    // Signed 20 minutes ago (a replay of an old request): expired.
    let (u, h) = sign(json!({"url": url, "skew": 1200}));
    let r = send_signed("GET", &u, &h, "").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let m = r.json()["message"].as_str().expect("message").to_string();
    assert!(
        m.starts_with("Signature expired: ") && m.ends_with(" - 5 min.)"),
        "{m}"
    );
    assert!(m.contains(" is now earlier than "), "{m}");
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidSignatureException")
    );

    // Presigned URL (query-string form).
    let (u, h) = sign(json!({"url": url, "presign": 60}));
    assert!(u.contains("X-Amz-Signature="), "{u}");
    let r = send_signed("GET", &u, &h, "").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // No signature at all.
    let r = call(&tp, "GET", "/dev/things", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "Missing Authentication Token"}));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    // A malformed Authorization header.
    let r = call(
        &tp,
        "GET",
        "/dev/things",
        &[("Authorization", "AWS4-HMAC-SHA256 garbage")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("IncompleteSignatureException")
    );
    assert!(r.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("Authorization header requires 'Credential' parameter.")));

    let logs = tp.stderr() + &tp.stdout();
    assert!(!logs.contains(SK), "the secret key was logged");
    assert!(!logs.contains("panicked"), "{logs}");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

fn raw_get(path: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_signatures_get_aws_answers_never_panic_or_leak() {
    // Lambda TOKEN authorizer.
    let l = lambda_project();
    let tp = &l.tp;
    let n = l.count();
    // Over the 10,240-byte header limit: rejected before any authorizer runs.
    let huge = format!("allow-{}", "A".repeat(11_000));
    let r = call(
        tp,
        "GET",
        "/dev/pets/1",
        &[("Authorization", huge.as_str())],
    )
    .await;
    assert_eq!(r.status, 431, "{}", r.text());
    assert_eq!(l.count(), n);
    // Large but within limits: the function sees it (and says Unauthorized).
    let big = format!("nobody-{}", "B".repeat(9_000));
    assert_unauthorized(&call(tp, "GET", "/dev/pets/1", &[("Authorization", big.as_str())]).await);
    // Non-UTF-8, control characters, separators only.
    for v in [&b"allow-\xff\xfe"[..], b"allow-a\x01b", b"----", b"\t"] {
        let r = raw(tp.addr(), &raw_get("/dev/pets/1", &[("Authorization", v)])).await;
        assert!(
            r.status == 401 || r.status == 400,
            "{:?}: {} {}",
            String::from_utf8_lossy(v),
            r.status,
            r.text()
        );
    }
    let r = raw(
        tp.addr(),
        &raw_get("/dev/req/1?tenant=%ff%fe", &[("X-User", b"\xc3\x28")]),
    )
    .await;
    assert!(r.status < 500, "{} {}", r.status, r.text());
    // Still serving.
    assert_eq!(
        call(tp, "GET", "/dev/pets/1", &[("Authorization", "wild-ok")])
            .await
            .status,
        200
    );
    let logs = tp.stderr() + &tp.stdout();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(!logs.contains(&big[..200]), "a token was logged");
    drop(l);

    // Cognito: forged and malformed JWTs.
    let c = cognito_project().await;
    let tp = &c.tp;
    let t = |name: &str| c.tokens[name].as_str().expect("token").to_string();
    let valid = t("valid");
    let (h, rest) = valid.split_once('.').expect("jwt");
    let forged = [
        "abc".to_string(),
        "a.b".to_string(),
        "a.b.c.d".to_string(),
        "!!!.###.$$$".to_string(),
        "....".to_string(),
        format!("{h}.%%%.{}", rest.split('.').nth(1).unwrap_or_default()),
        format!("{h}.{}", rest.replace('.', "..")),
        "Bearer ".to_string(),
        "Bearer".to_string(),
        format!("{}.{}", "eyJhbGciOiJSUzI1NiJ9", "x".repeat(9_000)),
        t("alg_none"),
        t("hs256_public_key"),
        format!("{valid}x"),
    ];
    for f in &forged {
        let r = call(tp, "GET", "/dev/me", &[("Authorization", f.as_str())]).await;
        assert_eq!(r.status, 401, "{f:.60}: {}", r.text());
        assert_unauthorized(&r);
    }
    let r = raw(
        tp.addr(),
        &raw_get("/dev/me", &[("Authorization", b"eyJ\xff\xfe.eyJ.sig")]),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    // A large (about 7 KB) but genuine token is fine.
    let r = call(
        tp,
        "GET",
        "/dev/me",
        &[("Authorization", t("big").as_str())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let huge = format!("Bearer {}", "e".repeat(12_000));
    let r = call(tp, "GET", "/dev/me", &[("Authorization", huge.as_str())]).await;
    assert_eq!(r.status, 431);
    assert_eq!(
        call(tp, "GET", "/dev/me", &[("Authorization", valid.as_str())])
            .await
            .status,
        200
    );
    let logs = tp.stderr() + &tp.stdout();
    assert!(!logs.contains("panicked"), "{logs}");
    for f in [&valid, &t("hs256_public_key"), &t("alg_none")] {
        assert!(!logs.contains(f.as_str()), "a token was logged");
    }
    let sig = valid.rsplit('.').next().unwrap_or_default();
    assert!(!logs.contains(sig), "a signature was logged");
    drop(c);

    // SigV4: malformed and oversized signatures.
    let (_dir, tp) = iam_project();
    let url = tp.url("/dev/things");
    let (u, h) = sign(json!({"url": url}));
    let auth = h
        .iter()
        .find(|(k, _)| k == "Authorization")
        .map(|(_, v)| v.clone())
        .expect("authorization");
    let date = h
        .iter()
        .find(|(k, _)| k == "X-Amz-Date")
        .map(|(_, v)| v.clone())
        .expect("date");
    let signature = auth
        .rsplit("Signature=")
        .next()
        .unwrap_or_default()
        .to_string();
    let variants = [
        auth.replace(&signature, &"0".repeat(64)),
        auth.replace(&signature, "zz"),
        auth.replace(&signature, &"a".repeat(5_000)),
        auth.replace("Credential=", "Credential=/"),
        auth.replace("/execute-api/", "/s3/"),
        auth.replace("host;", ""),
        auth.replace("SignedHeaders=", "SignedHeaders=zzz;"),
        format!("{auth}, Signature=abcd"),
        "AWS4-HMAC-SHA256".to_string(),
        "AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=".to_string(),
        format!("AWS4-HMAC-SHA256 Credential={}", "x/".repeat(3_000)),
        "Basic dXNlcjpwYXNz".to_string(),
    ];
    for v in &variants {
        assert_ne!(v, &auth);
        let r = send_signed(
            "GET",
            &u,
            &[
                ("Authorization".to_string(), v.clone()),
                ("X-Amz-Date".to_string(), date.clone()),
            ],
            "",
        )
        .await;
        assert_eq!(r.status, 403, "{v:.80}: {}", r.text());
        let et = r.header("x-amzn-errortype").unwrap_or_default().to_string();
        assert!(
            [
                "InvalidSignatureException",
                "IncompleteSignatureException",
                "MissingAuthenticationTokenException"
            ]
            .contains(&et.as_str()),
            "{v:.80}: {et} {}",
            r.text()
        );
    }
    // A presigned URL with a forged or absurd expiry.
    let (pu, _) = sign(json!({"url": url, "presign": 60}));
    for (from, to) in [
        ("X-Amz-Expires=60", "X-Amz-Expires=999999999999999999999"),
        ("X-Amz-Expires=60", "X-Amz-Expires=-5"),
        ("X-Amz-Expires=60", "X-Amz-Expires=9223372036854775807"),
        ("X-Amz-Signature=", "X-Amz-Signature=00"),
    ] {
        let r = send_signed("GET", &pu.replace(from, to), &[], "").await;
        assert_eq!(r.status, 403, "{to}: {}", r.text());
    }
    assert_eq!(send_signed("GET", &u, &h, "").await.status, 200);
    let logs = tp.stderr() + &tp.stdout();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(!logs.contains(SK), "the secret key was logged");
    assert!(!logs.contains(&signature), "a signature was logged");
}
