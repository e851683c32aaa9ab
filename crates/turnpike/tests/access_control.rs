//! Access control and traffic (§7) through the real server: API keys, usage plans, durable
//! quotas (surviving a restart), throttling at every level, resource policies.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const ALICE: &str = "alice-key-0123456789abcdefghij";
const BOB: &str = "bob-key-0123456789abcdefghijkl";
const CAROL: &str = "carol-key-0123456789abcdefghij";

fn api_with_key_methods(extra: Value) -> Value {
    let mut op = mock_op(200, "{\"key\":\"$context.identity.apiKeyId\"}");
    op["security"] = json!([{"api_key": []}]);
    let mut doc = openapi(
        "Keys",
        json!({
            "/keyed": {"get": op.clone()},
            "/other": {"get": op},
            "/open": {"get": mock_op(200, "{\"open\":true}")},
        }),
    );
    doc["components"] = json!({"securitySchemes": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}});
    if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
        d.extend(e);
    }
    doc
}

fn project_file(dir: &Path, body: &str) -> std::path::PathBuf {
    write(
        dir,
        "turnpike.yaml",
        &format!(
            "apis:\n  - definition: api.json\n    id: keysapi001\n    stages:\n      - name: dev\n{body}"
        ),
    )
}

async fn get_with_key(url: &str, key: Option<&str>) -> Resp {
    let mut rb = client().get(url);
    if let Some(k) = key {
        rb = rb.header("x-api-key", k);
    }
    send(rb).await
}

/// A key change by another process reaches requests that start more than 20 ms after it (the
/// server re-reads the store's key generation at most that often); a fast machine runs two CLI
/// commands inside that window, so wait it out as a client of the documented contract would.
async fn settle_key_change() {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

fn assert_forbidden(r: &Resp) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Forbidden"}));
    assert_eq!(r.header("x-amzn-errortype"), Some("ForbiddenException"));
}

#[tokio::test]
async fn api_keys_valid_missing_unknown_disabled_unassociated_and_cli() {
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &api_with_key_methods(json!({})));
    let file = project_file(
        dir.path(),
        &format!(
            "apiKeys:\n  - {{name: alice, value: {ALICE}}}\n  - {{name: bob, value: {BOB}, enabled: false}}\n  - {{name: carol, value: {CAROL}}}\nusagePlans:\n  - name: gold\n    apiStages: [{{api: keysapi001, stage: dev}}]\n    keys: [alice, bob]\n"
        ),
    );
    let data = dir.path().join("state");
    let data_s = data.display().to_string();
    let t = Turnpike::serve_with(&file, &["--no-watch", "--data-dir", &data_s]);
    let url = t.url("/dev/keyed");
    let ok = get_with_key(&url, Some(ALICE)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let id = ok.json()["key"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 10);
    assert_forbidden(&get_with_key(&url, None).await);
    assert_forbidden(&get_with_key(&url, Some("not-a-key-0123456789abcdef")).await);
    assert_forbidden(&get_with_key(&url, Some(BOB)).await);
    assert_forbidden(&get_with_key(&url, Some(CAROL)).await);
    // Methods without apiKeyRequired ignore keys entirely.
    assert_eq!(get_with_key(&t.url("/dev/open"), None).await.status, 200);
    assert_eq!(
        get_with_key(&t.url("/dev/open"), Some("junk")).await.status,
        200
    );

    // CLI: a new key in the plan works at once; disabling and deleting take effect at once.
    let (st, out, err) = run_cli(&[
        "keys",
        "create",
        "dave",
        "--plan",
        "gold",
        "--data-dir",
        &data_s,
    ]);
    assert!(st.success(), "{err}");
    let created: Value = serde_json::from_str(&out).expect("create prints JSON");
    let dave = created["value"].as_str().expect("value").to_string();
    assert_eq!(dave.len(), 40);
    assert_eq!(get_with_key(&url, Some(&dave)).await.status, 200);
    let (st, out, _) = run_cli(&["keys", "list", "--data-dir", &data_s]);
    assert!(st.success());
    assert!(out.contains("dave") && out.contains("alice"));
    assert!(!out.contains(ALICE), "list masks values: {out}");
    let (st, _, err) = run_cli(&["keys", "disable", "dave", "--data-dir", &data_s]);
    assert!(st.success(), "{err}");
    settle_key_change().await;
    assert_forbidden(&get_with_key(&url, Some(&dave)).await);
    let (st, _, _) = run_cli(&["keys", "delete", "dave", "--data-dir", &data_s]);
    assert!(st.success());
    settle_key_change().await;
    assert_forbidden(&get_with_key(&url, Some(&dave)).await);
    let (st, _, err) = run_cli(&["keys", "delete", "nobody", "--data-dir", &data_s]);
    assert!(!st.success());
    assert!(err.contains("nobody"));

    // Key values never reach the logs.
    let logs = t.stderr() + &t.stdout();
    for secret in [ALICE, BOB, CAROL, dave.as_str()] {
        assert!(!logs.contains(secret), "a key value was logged:\n{logs}");
    }
}

#[tokio::test]
async fn quota_exact_boundary_survives_restart_and_usage_report() {
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &api_with_key_methods(json!({})));
    let file = project_file(
        dir.path(),
        &format!(
            "apiKeys:\n  - {{name: alice, value: {ALICE}}}\n  - {{name: bob, value: {BOB}}}\nusagePlans:\n  - name: bronze\n    apiStages: [dev]\n    quota: {{limit: 3, period: DAY}}\n    keys: [alice, bob]\n"
        ),
    );
    let data = dir.path().join("state");
    let data_s = data.display().to_string();
    // fsync'd counting (group commit on the blocking pool); the default is tested below.
    let args = ["--no-watch", "--data-dir", &data_s, "--state-sync", "full"];
    {
        let t = Turnpike::serve_with(&file, &args);
        for i in 0..3 {
            let r = get_with_key(&t.url("/dev/keyed"), Some(ALICE)).await;
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
        let r = get_with_key(&t.url("/dev/keyed"), Some(ALICE)).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.json(), json!({"message": "Limit Exceeded"}));
        assert_eq!(r.header("x-amzn-errortype"), Some("LimitExceededException"));
        // Quotas are per key; the quota applies across the plan's methods.
        assert_eq!(
            get_with_key(&t.url("/dev/other"), Some(BOB)).await.status,
            200
        );
        assert_eq!(
            get_with_key(&t.url("/dev/other"), Some(ALICE)).await.status,
            429
        );
    }
    // A new server process on the same data directory keeps the counters.
    let t = Turnpike::serve_with(&file, &args);
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(ALICE)).await.status,
        429
    );
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(BOB)).await.status,
        200
    );
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(BOB)).await.status,
        200
    );
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(BOB)).await.status,
        429
    );

    let (st, out, err) = run_cli(&["usage", "--data-dir", &data_s, "--plan", "bronze"]);
    assert!(st.success(), "{err}");
    let report: Value = serde_json::from_str(&out).expect("usage JSON");
    let items = report[0]["items"].as_object().expect("items").clone();
    let mut pairs: Vec<Value> = items.values().map(|v| v[0].clone()).collect();
    pairs.sort_by_key(|p| p.to_string());
    assert_eq!(pairs, vec![json!([3, 0]), json!([3, 0])], "{out}");
}

/// Concurrent requests keep the quota exact; with the default durability (`process`: the
/// journal line reaches the OS before the answer) the counters survive a kill -9 of the server,
/// which leaves its journal unfolded. A second server on the same data directory is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exact_under_concurrency_and_survives_kill() {
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &api_with_key_methods(json!({})));
    let file = project_file(
        dir.path(),
        &format!(
            "apiKeys:\n  - {{name: alice, value: {ALICE}}}\nusagePlans:\n  - name: tin\n    apiStages: [dev]\n    quota: {{limit: 20, period: DAY}}\n    keys: [alice]\n"
        ),
    );
    let data_s = dir.path().join("state").display().to_string();
    let args = ["--no-watch", "--data-dir", &data_s];
    {
        let t = Turnpike::serve_with(&file, &args);
        let url = t.url("/dev/keyed");
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { get_with_key(&url, Some(ALICE)).await.status })
            })
            .collect();
        let mut ok = 0;
        let mut limited = 0;
        for t in tasks {
            match t.await.expect("task") {
                200 => ok += 1,
                429 => limited += 1,
                other => panic!("status {other}"),
            }
        }
        assert_eq!((ok, limited), (20, 10));
        // Dropping the server kills it (SIGKILL).
    }
    let t = Turnpike::serve_with(&file, &args);
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(ALICE)).await.status,
        429
    );
    let (st, out, err) = run_cli(&["usage", "--data-dir", &data_s, "--plan", "tin"]);
    assert!(st.success(), "{err}");
    let report: Value = serde_json::from_str(&out).expect("usage JSON");
    let items = report[0]["items"].as_object().expect("items").clone();
    let used: Vec<Value> = items.values().map(|v| v[0].clone()).collect();
    assert_eq!(used, vec![json!([20, 0])], "{out}");

    // A start of a second server on this data directory, which must fail.
    let file_s = file.display().to_string();
    let refused_start = || {
        let (st, _, err) = run_cli(&[
            "serve",
            &file_s,
            "--no-watch",
            "--data-dir",
            &data_s,
            "--listen",
            "127.0.0.1:0",
        ]);
        assert!(!st.success());
        err
    };
    let err = refused_start();
    assert!(
        err.contains("belong to another running `turnpike serve`"),
        "{err}"
    );

    // A damaged journal (a line that is not a record, before its last line) stops the start
    // with the file and line, rather than losing or guessing counts.
    drop(t);
    let journal = dir.path().join("state/turnpike.db.usage-journal.999");
    std::fs::write(&journal, "999999 2026-12-02 1 somekey tin\nnot a record\n").expect("write");
    let err = refused_start();
    assert!(
        err.contains("turnpike.db.usage-journal.999 line 2: not a usage record"),
        "{err}"
    );
}

#[tokio::test]
async fn throttling_stage_method_plan_and_account_levels() {
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &api_with_key_methods(json!({})));
    let stage = "        throttling: {rateLimit: 0.001, burstLimit: 2}\n        methodSettings:\n          /other/GET: {throttlingRateLimit: 0.001, throttlingBurstLimit: 4}\n";
    let file = project_file(
        dir.path(),
        &format!(
            "{stage}apiKeys:\n  - {{name: alice, value: {ALICE}}}\n  - {{name: bob, value: {BOB}}}\nusagePlans:\n  - name: silver\n    apiStages:\n      - stage: dev\n        throttle:\n          /other/GET: {{rateLimit: 0.001, burstLimit: 3}}\n    throttle: {{rateLimit: 0.001, burstLimit: 1}}\n    keys: [alice, bob]\n"
        ),
    );
    let data_s = dir.path().join("state").display().to_string();
    let t = Turnpike::serve_with(&file, &["--no-watch", "--data-dir", &data_s]);
    // Stage default (*/*): burst 2, applied per method.
    assert_eq!(get(&t.url("/dev/open")).await.status, 200);
    assert_eq!(get(&t.url("/dev/open")).await.status, 200);
    let r = get(&t.url("/dev/open")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json(), json!({"message": "Too Many Requests"}));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    // Plan per-key throttle (burst 1) on /keyed, per key.
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(ALICE)).await.status,
        200
    );
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(ALICE)).await.status,
        429
    );
    assert_eq!(
        get_with_key(&t.url("/dev/keyed"), Some(BOB)).await.status,
        200
    );
    // Plan per-method throttle (burst 3) overrides the per-key one on /other; the method
    // setting (burst 4) then limits all keys together.
    for _ in 0..3 {
        assert_eq!(
            get_with_key(&t.url("/dev/other"), Some(ALICE)).await.status,
            200
        );
    }
    assert_eq!(
        get_with_key(&t.url("/dev/other"), Some(ALICE)).await.status,
        429
    );
    assert_eq!(
        get_with_key(&t.url("/dev/other"), Some(BOB)).await.status,
        200
    );
    assert_eq!(
        get_with_key(&t.url("/dev/other"), Some(BOB)).await.status,
        429
    );

    // Account level.
    let dir2 = temp_dir();
    write_json(dir2.path(), "api.json", &api_with_key_methods(json!({})));
    let file2 = project_file(
        dir2.path(),
        "throttling: {rateLimit: 0.001, burstLimit: 3}\n",
    );
    let d2 = dir2.path().join("state").display().to_string();
    let t2 = Turnpike::serve_with(&file2, &["--no-watch", "--data-dir", &d2]);
    for _ in 0..3 {
        assert_eq!(get(&t2.url("/dev/open")).await.status, 200);
    }
    assert_eq!(get(&t2.url("/dev/open")).await.status, 429);
}

fn policy_api(policy: Value) -> Value {
    let mut doc = openapi(
        "Policy",
        json!({"/p": {"get": mock_op(200, "{\"ok\":true}")}}),
    );
    doc["x-amazon-apigateway-policy"] = policy;
    doc
}

async fn serve_policy(policy: Value) -> (tempfile::TempDir, Turnpike) {
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &policy_api(policy));
    let file = project_file(dir.path(), "");
    let d = dir.path().join("state").display().to_string();
    let t = Turnpike::serve_with(&file, &["--no-watch", "--data-dir", &d]);
    (dir, t)
}

#[tokio::test]
async fn resource_policies_source_ip() {
    let arn = "arn:aws:execute-api:us-east-1:123456789012:keysapi001/dev/GET/p";
    let allow_all = json!({"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"});
    // Allowed source IP.
    let (_d, t) = serve_policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
         "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}}
    ]}))
    .await;
    assert_eq!(get(&t.url("/dev/p")).await.status, 200);
    drop(t);
    // Denied source IP (explicit deny wins over the allow).
    let (_d, t) = serve_policy(json!({"Statement": [allow_all.clone(),
        {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}}
    ]}))
    .await;
    let r = get(&t.url("/dev/p")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"Message": format!("User: anonymous is not authorized to perform: execute-api:Invoke on resource: {arn} with an explicit deny")})
    );
    assert_eq!(r.header("x-amzn-errortype"), Some("AccessDeniedException"));
    drop(t);
    // Only another network is allowed: implicit deny (no "explicit deny" suffix).
    let (_d, t) = serve_policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    ]}))
    .await;
    let r = get(&t.url("/dev/p")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"Message": format!("User: anonymous is not authorized to perform: execute-api:Invoke on resource: {arn}")})
    );
    drop(t);
    // NotIpAddress deny for everything outside 127.0.0.0/8 lets us in.
    let (_d, t) = serve_policy(json!({"Statement": [allow_all,
        {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*/*/POST/*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    ]}))
    .await;
    assert_eq!(get(&t.url("/dev/p")).await.status, 200);
}
