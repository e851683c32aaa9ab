//! A Rust function built with AWS's own runtime (`lambda_runtime` + `aws_lambda_events`,
//! examples/lambda-rust) runs unmodified behind the real binary: the event it parses, the
//! context it gets, and how its typed `ApiGatewayProxyResponse` comes back to the client.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::{json, Value};

/// Builds examples/lambda-rust with cargo (same target directory and profile as this test) and
/// returns the path of its `bootstrap` binary.
fn bootstrap() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lambda-rust/Cargo.toml");
        let out = Command::new(cargo)
            .args([
                "build",
                "--bin",
                "bootstrap",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building examples/lambda-rust failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "bootstrap")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the bootstrap executable")
    })
}

fn lambda_uri(function: &str) -> String {
    format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{function}/invocations")
}

fn setup(dir: &Path) -> PathBuf {
    let op = json!({
        "parameters": path_params(&["id"]),
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "AWS_PROXY", "httpMethod": "POST", "uri": lambda_uri("rs"),
        },
    });
    let mut def = openapi(
        "LambdaRust",
        json!({"/items/{id}": {"get": op, "post": op}}),
    );
    def["x-amazon-apigateway-binary-media-types"] = json!(["image/png"]);
    write_json(dir, "api.json", &def);
    let text = format!(
        "apis:\n  - definition: api.json\n    id: lambdars01\n    stages:\n      - name: dev\n        variables: {{color: blue}}\nfunctions:\n  rs:\n    command: [\"{}\"]\n    runtime: provided.al2023\n    environment: {{GREETING: hi}}\n    timeout: 10\n",
        bootstrap().display()
    );
    write(dir, "turnpike.yaml", &text)
}

fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_runtime_function_round_trip_cold_then_warm() {
    let dir = temp_dir();
    let file = setup(dir.path());
    let mut tp = Turnpike::serve(&file);
    let c = client();

    // Cold start: the first invocation starts the bootstrap process.
    let r = send(
        c.get(tp.url("/dev/items/42?a=1&a=2&b=x%20y&name=you"))
            .header("X-Custom", "one")
            .header("User-Agent", "rust-test/1"),
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    r.assert_aws_ids();
    // The typed response converted as AWS does: headers and multiValueHeaders merged.
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.all("set-cookie"), vec!["a=1", "b=2"]);
    let v = r.json();
    assert_eq!(v["hello"], "you");
    assert_eq!(v["greeting"], "hi");
    assert_eq!(v["process"]["invocation"], 1, "cold start: a new process");
    let pid = v["process"]["pid"].as_u64().expect("pid");

    // The event as ApiGatewayProxyRequest parsed it (and serialised it back).
    let ev = &v["event"];
    assert_eq!(ev["resource"], "/items/{id}");
    assert_eq!(ev["path"], "/items/42");
    assert_eq!(ev["httpMethod"], "GET");
    assert_eq!(ev["pathParameters"], json!({"id": "42"}));
    assert_eq!(ev["stageVariables"], json!({"color": "blue"}));
    assert_eq!(
        ev["multiValueQueryStringParameters"],
        json!({"a": ["1", "2"], "b": ["x y"], "name": ["you"]})
    );
    // http::HeaderMap lower-cases names on the function's side.
    assert_eq!(ev["headers"]["x-custom"], "one");
    assert_eq!(ev["headers"]["user-agent"], "rust-test/1");
    assert_eq!(ev["multiValueHeaders"]["x-custom"], json!(["one"]));
    assert_eq!(ev["headers"]["x-forwarded-proto"], "http");
    assert_eq!(ev["body"], Value::Null);
    assert_eq!(ev["isBase64Encoded"], false);
    let rc = &ev["requestContext"];
    assert_eq!(rc["accountId"], "123456789012");
    assert_eq!(rc["apiId"], "lambdars01");
    assert_eq!(rc["stage"], "dev");
    assert_eq!(rc["resourcePath"], "/items/{id}");
    assert_eq!(rc["httpMethod"], "GET");
    assert_eq!(rc["path"], "/dev/items/42");
    assert_eq!(rc["protocol"], "HTTP/1.1");
    assert!(rc["requestTimeEpoch"]
        .as_i64()
        .is_some_and(|t| t > 1_600_000_000_000));
    assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(rc["identity"]["userAgent"], "rust-test/1");
    assert_eq!(
        Some(rc["requestId"].as_str().unwrap_or_default()),
        r.header("x-amzn-requestid")
    );

    // The Lambda context from the Runtime API headers and the standard environment.
    let ctx = &v["context"];
    assert!(is_uuid(ctx["requestId"].as_str().unwrap_or_default()));
    assert_eq!(
        ctx["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:rs"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    assert!(
        ctx["deadline"]
            .as_u64()
            .is_some_and(|d| d > now_ms && d <= now_ms + 10_000),
        "deadline {} vs now {now_ms}",
        ctx["deadline"]
    );
    assert!(ctx["xrayTraceId"]
        .as_str()
        .is_some_and(|t| t.starts_with("Root=1-")));
    assert_eq!(ctx["functionName"], "rs");
    assert_eq!(ctx["memory"], 128);
    assert_eq!(ctx["version"], "$LATEST");
    assert_eq!(ctx["logGroup"], "/aws/lambda/rs");

    // Warm: the same process takes the next invocation; a body round-trips.
    let r = send(
        c.post(tp.url("/dev/items/7?status=201"))
            .header("Content-Type", "application/json")
            .body(r#"{"k": [1, 2]}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["process"]["pid"].as_u64(), Some(pid));
    assert_eq!(v["process"]["invocation"], 2, "warm: the same process");
    assert_eq!(v["event"]["body"], r#"{"k": [1, 2]}"#);
    assert_eq!(v["event"]["httpMethod"], "POST");
    assert_eq!(v["event"]["headers"]["content-type"], "application/json");

    // Body::Binary + isBase64Encoded: decoded for a binary media type the client accepts.
    let r = send(
        c.get(tp.url("/dev/items/1?binary=1"))
            .header("Accept", "image/png"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(&r.body[..], b"\x89PNG\r\n\x1a\n");

    // A handler error goes to /invocation/{id}/error: AWS's 502, the process stays warm.
    let r = get(&tp.url("/dev/items/1?fail=1")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (502, "{\"message\": \"Internal server error\"}")
    );
    let r = get(&tp.url("/dev/items/1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["process"]["pid"].as_u64(), Some(pid));
    assert_eq!(r.json()["process"]["invocation"], 5);

    // Its output is captured (tagged "init" before the first invocation).
    assert!(
        tp.wait_stderr("[lambda:rs] [init] lambda-rust-example: init", WAIT),
        "{}",
        tp.stderr()
    );
    assert!(pid_alive(pid));
    tp.sigterm();
    assert!(tp.wait_exit(WAIT).is_some(), "turnpike did not exit");
    assert!(!pid_alive(pid), "bootstrap process {pid} outlived turnpike");
}
