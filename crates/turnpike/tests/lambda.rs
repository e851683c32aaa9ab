//! Lambda integrations end to end: real function processes (awslambdaric and a plain script
//! speaking the Runtime API) started by the real binary.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda")
}

fn lambda_uri(function: &str) -> String {
    format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{function}/invocations")
}

fn proxy_op(function: &str) -> Value {
    json!({
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "AWS_PROXY", "httpMethod": "POST", "uri": lambda_uri(function),
        },
    })
}

/// Writes the definition and a project with `functions` (YAML text, indented by 2).
fn setup(dir: &Path, paths: Value, functions: &str, stage_vars: &str) -> PathBuf {
    write_json(dir, "api.json", &openapi("Lambda", paths));
    let text = format!(
        "apis:\n  - definition: api.json\n    id: lambdaapi1\n    stages:\n      - name: dev\n{stage_vars}functions:\n{functions}"
    );
    write(dir, "turnpike.yaml", &text)
}

fn py_fn(name: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    command: [\"{}\", \"-m\", \"awslambdaric\", \"app.handler\"]\n    workingDir: {}\n    handler: app.handler\n    runtime: python3.11\n    environment: {{CUSTOM: custom-value}}\n{extra}",
        python(),
        fixtures().display()
    )
}

fn plain_fn(name: &str, mode: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    command: [\"{}\", \"{}\", \"{mode}\"]\n{extra}",
        python(),
        fixtures().join("plain.py").display()
    )
}

fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn stop(tp: &mut Turnpike) {
    tp.sigterm();
    assert!(tp.wait_exit(WAIT).is_some(), "turnpike did not exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_proxy_event_v1_cold_warm_and_shutdown() {
    let dir = temp_dir();
    let mut paths = serde_json::Map::new();
    let mut op = proxy_op("py");
    op["parameters"] = path_params(&["id"]);
    paths.insert("/items/{id}".into(), json!({"get": op}));
    paths.insert(
        "/stagevar".into(),
        json!({"get": proxy_op("${stageVariables.fn}")}),
    );
    let file = setup(
        dir.path(),
        Value::Object(paths),
        &py_fn("py", "    timeout: 10\n"),
        "        variables: {fn: py}\n",
    );
    // The function pool and the Runtime API on the single-threaded runtime.
    let mut tp = Turnpike::serve_with(&file, &["--workers", "1"]);
    let r = send(
        client()
            .get(tp.url("/dev/items/42?a=1&a=2&b=x%20y"))
            .header("X-Custom", "one")
            .header("X-Multi", "m1")
            .header("X-Multi", "m2")
            .header("X-Forwarded-For", "10.0.0.1")
            .header("User-Agent", "lambda-test/1"),
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    r.assert_aws_ids();
    assert!(r.header("x-amzn-trace-id").is_some());
    let v = r.json();
    let ev = &v["event"];
    // Exactly AWS's 1.0 field set.
    assert_eq!(
        sorted_keys(ev),
        [
            "body",
            "headers",
            "httpMethod",
            "isBase64Encoded",
            "multiValueHeaders",
            "multiValueQueryStringParameters",
            "path",
            "pathParameters",
            "queryStringParameters",
            "requestContext",
            "resource",
            "stageVariables"
        ]
    );
    assert_eq!(ev["resource"], "/items/{id}");
    assert_eq!(ev["path"], "/items/42");
    assert_eq!(ev["httpMethod"], "GET");
    assert_eq!(ev["body"], Value::Null);
    assert_eq!(ev["isBase64Encoded"], false);
    assert_eq!(ev["pathParameters"], json!({"id": "42"}));
    assert_eq!(ev["queryStringParameters"], json!({"a": "2", "b": "x y"}));
    assert_eq!(
        ev["multiValueQueryStringParameters"],
        json!({"a": ["1", "2"], "b": ["x y"]})
    );
    assert_eq!(ev["stageVariables"], json!({"fn": "py"}));
    assert_eq!(ev["headers"]["X-Custom"], "one");
    assert_eq!(ev["multiValueHeaders"]["X-Custom"], json!(["one"]));
    assert_eq!(ev["headers"]["User-Agent"], "lambda-test/1");
    // A repeated header: the last value in `headers`, all of them in `multiValueHeaders`.
    assert_eq!(ev["headers"]["X-Multi"], "m2");
    assert_eq!(ev["multiValueHeaders"]["X-Multi"], json!(["m1", "m2"]));
    // The client's X-Forwarded-For gets the source IP appended.
    assert_eq!(ev["headers"]["X-Forwarded-For"], "10.0.0.1, 127.0.0.1");
    assert_eq!(
        ev["multiValueHeaders"]["X-Forwarded-For"],
        json!(["10.0.0.1, 127.0.0.1"])
    );
    assert_eq!(ev["headers"]["X-Forwarded-Proto"], "http");
    assert!(ev["headers"]["X-Amzn-Trace-Id"]
        .as_str()
        .is_some_and(|t| t.starts_with("Root=1-")));
    assert!(ev["headers"].get("Content-Length").is_none());
    let rc = &ev["requestContext"];
    assert_eq!(
        sorted_keys(rc),
        [
            "accountId",
            "apiId",
            "deploymentId",
            "domainName",
            "domainPrefix",
            "extendedRequestId",
            "httpMethod",
            "identity",
            "path",
            "protocol",
            "requestId",
            "requestTime",
            "requestTimeEpoch",
            "resourceId",
            "resourcePath",
            "stage"
        ]
    );
    assert_eq!(rc["accountId"], "123456789012");
    assert_eq!(rc["apiId"], "lambdaapi1");
    assert_eq!(rc["path"], "/dev/items/42");
    assert_eq!(rc["stage"], "dev");
    assert_eq!(rc["resourcePath"], "/items/{id}");
    assert_eq!(rc["protocol"], "HTTP/1.1");
    assert!(rc["requestTimeEpoch"].is_i64());
    assert_eq!(
        Some(rc["requestId"].as_str().unwrap_or_default()),
        r.header("x-amzn-requestid")
    );
    assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(rc["identity"]["userAgent"], "lambda-test/1");
    assert_eq!(rc["identity"]["accessKey"], Value::Null);
    assert_eq!(rc["identity"].as_object().map(|m| m.len()), Some(12));
    // The Runtime API and the standard environment as the function saw them.
    let info = &v["info"];
    assert_eq!(
        info["function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:py"
    );
    assert!(info["remaining_ms"]
        .as_i64()
        .is_some_and(|ms| ms > 5000 && ms <= 10_000));
    assert_eq!(info["function_name"], "py");
    assert_eq!(info["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(info["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(info["env"]["_HANDLER"], "app.handler");
    assert_eq!(info["env"]["CUSTOM"], "custom-value");
    assert_eq!(info["env"]["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/py");
    let request_id = info["request_id"].as_str().unwrap_or_default().to_string();
    assert!(is_uuid(&request_id));
    let pid = info["pid"].as_u64().expect("pid");

    // Warm: the same process serves the next invocation, through a stage-variable URI.
    let r2 = get(&tp.url("/dev/stagevar")).await;
    assert_eq!(r2.status, 200, "{}", r2.text());
    assert_eq!(r2.json()["info"]["pid"].as_u64(), Some(pid));
    assert_eq!(r2.json()["event"]["resource"], "/stagevar");

    // Function output is captured and tagged with the Lambda request id.
    assert!(
        tp.wait_stderr(
            &format!("[lambda:py] [{request_id}] handling mode=echo"),
            WAIT
        ),
        "{}",
        tp.stderr()
    );
    assert!(tp
        .stderr()
        .contains(&format!("START RequestId: {request_id}")));

    assert!(pid_alive(pid));
    stop(&mut tp);
    assert!(!pid_alive(pid), "function process {pid} outlived turnpike");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_output_rules_and_failures() {
    let dir = temp_dir();
    let mut paths = serde_json::Map::new();
    paths.insert(
        "/py".into(),
        json!({"post": proxy_op("py"), "get": proxy_op("py")}),
    );
    paths.insert("/slow".into(), json!({"get": proxy_op("slow")}));
    let mut short = proxy_op("py");
    short["x-amazon-apigateway-integration"]["timeoutInMillis"] = json!(1000);
    paths.insert("/short".into(), json!({"get": short}));
    paths.insert("/garbage".into(), json!({"get": proxy_op("garbage")}));
    paths.insert("/plain/{p+}".into(), json!({"get": {
        "parameters": path_params(&["p"]),
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {"type": "AWS_PROXY", "httpMethod": "POST", "uri": lambda_uri("plain")},
    }}));
    paths.insert("/hang".into(), json!({"get": proxy_op("hang")}));
    paths.insert("/plaincrash".into(), json!({"get": proxy_op("plaincrash")}));
    paths.insert("/initerr".into(), json!({"get": proxy_op("initerr")}));
    paths.insert("/missing".into(), json!({"get": proxy_op("nosuchfn")}));
    let functions = format!(
        "{}{}{}{}{}{}",
        py_fn("py", "    timeout: 5\n    memorySize: 128\n"),
        py_fn("slow", "    timeout: 1\n"),
        plain_fn("garbage", "garbage", ""),
        plain_fn("plain", "ok", ""),
        plain_fn("hang", "hang", "    timeout: 1\n"),
        plain_fn("plaincrash", "crash", ""),
    ) + &plain_fn("initerr", "init-error", "");
    let file = setup(dir.path(), Value::Object(paths), &functions, "");
    let mut tp = Turnpike::serve(&file);
    let c = client();
    let result = |v: Value| {
        c.post(tp.url("/dev/py?mode=raw"))
            .header("Content-Type", "application/json")
            .body(v.to_string())
    };
    // Output rules (rest-proxy-format-* conformance cases and spec §4.3).
    let r = send(result(json!({"statusCode": 200}))).await;
    assert_eq!((r.status, r.text().as_str()), (200, ""), "{}", tp.stderr());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = send(result(json!({"statusCode": "201", "body": "dGVzdC1kYXRh"}))).await;
    assert_eq!((r.status, r.text().as_str()), (201, "dGVzdC1kYXRh"));
    let r = send(result(
        json!({"headers": {"test-header": "value", "flag": true}}),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("test-header"), Some("value"));
    assert_eq!(r.header("flag"), Some("true"));
    let r = send(result(
        json!({"statusCode": 200, "isBase64Encoded": true, "body": "aGk="}),
    ))
    .await;
    assert_eq!(
        r.text(),
        "aGk=",
        "no binary media types: base64 text returned as is"
    );
    let r = send(result(
        json!({"multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": "ok"}),
    ))
    .await;
    assert_eq!(r.all("set-cookie"), vec!["a=1", "b=2"]);
    for bad in [
        json!({"statusCode": 200, "wrongValue": "value"}),
        json!({"statusCode": "test"}),
        json!({"multiValueHeaders": {"a": "b"}}),
        json!("justAString"),
        json!({"body": {"not": "a string"}}),
    ] {
        let r = send(result(bad.clone())).await;
        assert_eq!(r.status, 502, "{bad}");
        assert_eq!(r.text(), "{\"message\": \"Internal server error\"}");
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("InternalServerErrorException")
        );
    }
    // Function errors: an exception, a non-JSON result, a crash.
    let r = get(&tp.url("/dev/py?mode=raise")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (502, "{\"message\": \"Internal server error\"}")
    );
    let r = get(&tp.url("/dev/garbage")).await;
    assert_eq!(r.status, 502);
    let before = get(&tp.url("/dev/py")).await.json()["info"]["pid"].as_u64();
    let r = get(&tp.url("/dev/py?mode=crash")).await;
    assert_eq!(r.status, 502);
    let after = get(&tp.url("/dev/py")).await;
    assert_eq!(after.status, 200, "a crashed process is replaced");
    assert_ne!(after.json()["info"]["pid"].as_u64(), before);
    let r = get(&tp.url("/dev/plaincrash")).await;
    assert_eq!(r.status, 502);
    let r = get(&tp.url("/dev/initerr")).await;
    assert_eq!(r.status, 502);
    // Function timeout (1 s) → function error → 502; the hung process is replaced.
    let r = get(&tp.url("/dev/slow?mode=sleep&seconds=3")).await;
    assert_eq!(r.status, 502);
    let r = get(&tp.url("/dev/hang")).await;
    assert_eq!(r.status, 502);
    // Integration timeout (1 s) shorter than the function's → 504.
    let r = get(&tp.url("/dev/short?mode=sleep&seconds=3")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (504, "{\"message\": \"Endpoint request timed out\"}")
    );
    // Oversized response (> 6 MB) → 502; oversized request (> 6 MB, < 10 MB) → 413.
    let r = get(&tp.url("/dev/py?mode=big")).await;
    assert_eq!(r.status, 502);
    let r = send(
        c.post(tp.url("/dev/py"))
            .header("Content-Type", "text/plain")
            .body("y".repeat(7 * 1024 * 1024)),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (413, "{\"message\": \"Request Too Long\"}")
    );
    assert_eq!(r.header("x-amzn-errortype"), Some("BadRequestException"));
    // Memory above memorySize → the process is killed and replaced.
    let r = get(&tp.url("/dev/py?mode=mem")).await;
    assert_eq!(r.status, 502);
    // An unknown function is a configuration error.
    let r = get(&tp.url("/dev/missing")).await;
    assert_eq!(r.status, 500);
    // A plain Runtime API script: the headers it received, multi-value headers.
    let r = get(&tp.url("/dev/plain/a/b")).await;
    assert_eq!(r.status, 201, "{}", tp.stderr());
    assert_eq!(r.text(), "/plain/a/b");
    assert_eq!(r.all("x-multi"), vec!["a", "b"]);
    assert!(is_uuid(r.header("x-request-id").unwrap_or_default()));
    assert_eq!(
        r.header("x-arn"),
        Some("arn:aws:lambda:us-east-1:123456789012:function:plain")
    );
    assert!(r
        .header("x-trace")
        .is_some_and(|t| t.starts_with("Root=1-")));
    assert!(r
        .header("x-deadline")
        .and_then(|d| d.parse::<u128>().ok())
        .is_some_and(|d| d > 1_000_000_000_000));
    // The gateway kept serving through all of it.
    let ok = get(&tp.url("/dev/py")).await;
    assert_eq!(ok.status, 200);
    let pid = ok.json()["info"]["pid"].as_u64().expect("pid");
    let plain_pid: u64 = r.header("x-pid").and_then(|p| p.parse().ok()).expect("pid");
    stop(&mut tp);
    assert!(
        !pid_alive(pid) && !pid_alive(plain_pid),
        "no process left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_scale_up_queue_and_throttle() {
    let dir = temp_dir();
    let paths = json!({
        "/two": {"get": proxy_op("two")},
        "/one": {"get": proxy_op("one")},
    });
    let functions = py_fn("two", "    timeout: 10\n    reservedConcurrency: 2\n")
        + &py_fn(
            "one",
            "    timeout: 10\n    reservedConcurrency: 1\n    queueSize: 1\n",
        );
    let file = setup(dir.path(), paths, &functions, "");
    let mut tp = Turnpike::serve(&file);
    // Two slots, four simultaneous slow calls: two run (on two processes), two are throttled.
    let url = tp.url("/dev/two?mode=sleep&seconds=3");
    let calls: Vec<_> = (0..4)
        .map(|_| tokio::spawn(get_owned(url.clone())))
        .collect();
    let mut ok_pids = Vec::new();
    let mut throttled = 0;
    for c in calls {
        let r = c.await.expect("join");
        match r.status {
            200 => ok_pids.push(r.text()),
            500 => {
                assert_eq!(r.text(), "{\"message\": \"Internal server error\"}");
                throttled += 1;
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    ok_pids.sort();
    ok_pids.dedup();
    assert_eq!((ok_pids.len(), throttled), (2, 2), "{}", tp.stderr());
    // Warm instances are reused: sequential calls stay on those two processes.
    for _ in 0..3 {
        let r = get(&tp.url("/dev/two?mode=sleep&seconds=0")).await;
        assert!(
            ok_pids.contains(&r.text()),
            "{} not in {ok_pids:?}",
            r.text()
        );
    }
    // One slot and a queue of one: two simultaneous calls both succeed, one after the other,
    // on the same process; a third waiting call would be throttled.
    let url = tp.url("/dev/one?mode=sleep&seconds=2");
    let calls: Vec<_> = (0..2)
        .map(|_| tokio::spawn(get_owned(url.clone())))
        .collect();
    let mut texts = Vec::new();
    for c in calls {
        let r = c.await.expect("join");
        assert_eq!(r.status, 200, "{}", r.text());
        texts.push(r.text());
    }
    assert_eq!(texts[0], texts[1]);
    stop(&mut tp);
    for p in ok_pids.iter().chain(texts.iter()) {
        let pid: u64 = p.parse().expect("pid");
        assert!(!pid_alive(pid), "process {pid} left behind");
    }
}

/// What the Invoke endpoint received: path, Authorization, event.
type Seen = (String, Option<String>, Value);

async fn get_owned(url: String) -> Resp {
    get(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_lambda_non_proxy_selection_patterns() {
    let dir = temp_dir();
    let op = |code: &str| {
        json!({"get": {
            "responses": {"200": {"description": "ok"}, "405": {"description": "e"}, "502": {"description": "e"}},
            "x-amazon-apigateway-integration": {
                "type": "AWS", "httpMethod": "POST", "uri": lambda_uri("py"),
                "requestTemplates": {"application/json": format!("{{\"mode\": \"select\", \"statusCode\": \"{code}\"}}")},
                "passthroughBehavior": "WHEN_NO_TEMPLATES",
                "responses": {
                    "default": {"statusCode": "200"},
                    ".*four hundred.*": {"statusCode": "405"},
                    ".*five hundred.*": {"statusCode": "502",
                        "responseTemplates": {"application/json": "{\"failed\": \"$input.path('$.errorMessage')\"}"}},
                },
            },
        }})
    };
    let paths = json!({"/200": op("200"), "/400": op("400"), "/500": op("500")});
    let file = setup(dir.path(), paths, &py_fn("py", ""), "");
    let mut tp = Turnpike::serve(&file);
    let r = get(&tp.url("/dev/200")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "\"Pass\""),
        "{}",
        tp.stderr()
    );
    // rest-lambda-selection-pattern-400: the error document passes through with status 405.
    let r = get(&tp.url("/dev/400")).await;
    assert_eq!(r.status, 405);
    let v = r.json();
    assert_eq!(
        v["errorMessage"],
        "Error: Raising four hundred from within the Lambda function"
    );
    assert_eq!(v["errorType"], "Exception");
    assert!(is_uuid(v["requestId"].as_str().unwrap_or_default()));
    assert!(v["stackTrace"].is_array());
    let r = get(&tp.url("/dev/500")).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json(),
        json!({"failed": "Error: Raising five hundred from within the Lambda function"})
    );
    stop(&mut tp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_invoke_endpoint() {
    use std::sync::{Arc, Mutex};
    // A real HTTP server speaking Lambda's Invoke API.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let path = req.uri().to_string();
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let ev: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            s.lock().unwrap().push((path.clone(), auth, ev.clone()));
                            let (status, fe, payload) = if ev["path"] == "/fail" {
                                (
                                    200,
                                    Some("Unhandled"),
                                    json!({"errorMessage": "remote boom", "errorType": "Error"}),
                                )
                            } else if ev["path"] == "/throttle" {
                                (
                                    429,
                                    None,
                                    json!({"Type": "User", "message": "Rate Exceeded."}),
                                )
                            } else {
                                (
                                    200,
                                    None,
                                    json!({"statusCode": 200, "headers": {"x-remote": "yes"}, "body": format!("{} {}", path, ev["path"].as_str().unwrap_or_default())}),
                                )
                            };
                            let mut resp = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(payload.to_string()),
                            ));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            resp.headers_mut().insert(
                                "x-amzn-requestid",
                                "11111111-2222-3333-4444-555555555555".parse().unwrap(),
                            );
                            if let Some(fe) = fe {
                                resp.headers_mut()
                                    .insert("x-amz-function-error", fe.parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let dir = temp_dir();
    let paths = json!({
        "/ok": {"get": proxy_op("aws-style")},
        "/fail": {"get": proxy_op("aws-style")},
        "/throttle": {"get": proxy_op("aws-style")},
        "/rie": {"get": proxy_op("rie")},
    });
    let functions = format!(
        "  aws-style:\n    remote:\n      endpoint: http://{addr}\n      functionName: real-name\n      region: eu-west-1\n      credentials: {{accessKeyId: AKIDTEST, secretAccessKey: secret}}\n  rie:\n    remote:\n      endpoint: http://{addr}/2015-03-31/functions/function/invocations\n"
    );
    let file = setup(dir.path(), paths, &functions, "");
    let mut tp = Turnpike::serve(&file);
    let r = get(&tp.url("/dev/ok")).await;
    assert_eq!(r.status, 200, "{}", tp.stderr());
    assert_eq!(r.header("x-remote"), Some("yes"));
    assert_eq!(r.text(), "/2015-03-31/functions/real-name/invocations /ok");
    let r = get(&tp.url("/dev/rie")).await;
    assert_eq!(r.text(), "/2015-03-31/functions/function/invocations /rie");
    let r = get(&tp.url("/dev/fail")).await;
    assert_eq!(r.status, 502);
    let r = get(&tp.url("/dev/throttle")).await;
    assert_eq!(r.status, 500);
    let seen = seen.lock().unwrap().clone();
    let (_, auth, ev) = &seen[0];
    let auth = auth.clone().expect("signed");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && auth.contains("/eu-west-1/lambda/aws4_request"),
        "{auth}"
    );
    assert_eq!(ev["resource"], "/ok");
    assert_eq!(ev["requestContext"]["stage"], "dev");
    stop(&mut tp);
}

/// Editing `functions:` while serving: changed and added functions take effect, invocations in
/// flight finish on the old process, which then stops; unchanged functions stay warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_rebuilds_functions() {
    let dir = temp_dir();
    let mut paths = serde_json::Map::new();
    for (path, f) in [("/py", "py"), ("/keep", "keep"), ("/added", "added")] {
        paths.insert(path.into(), json!({"get": proxy_op(f)}));
    }
    let paths = Value::Object(paths);
    let before = format!("{}{}", py_fn("py", ""), py_fn("keep", ""));
    let file = setup(dir.path(), paths.clone(), &before, "");
    let mut tp = Turnpike::serve_with(&file, &[]);
    let r = get(&tp.url("/dev/py")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    let info = &r.json()["info"];
    assert_eq!(info["env"]["CUSTOM"], "custom-value");
    let old_pid = info["pid"].as_u64().expect("pid");
    let keep_pid = get(&tp.url("/dev/keep")).await.json()["info"]["pid"].as_u64();
    assert!(keep_pid.is_some());
    let r = get(&tp.url("/dev/added")).await;
    assert_eq!(r.status, 500, "not defined yet");

    // An invocation in flight on the old process while the file changes: its START line says
    // it went to an instance (a fixed sleep would race with a slow machine).
    let starts = |tp: &Turnpike| tp.stderr().matches("[lambda:py] START").count();
    let started_before = starts(&tp);
    let slow_url = tp.url("/dev/py?mode=sleep&seconds=2");
    let slow = tokio::spawn(async move { get(&slow_url).await });
    let deadline = std::time::Instant::now() + WAIT;
    while starts(&tp) == started_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow invocation never started:\n{}",
            tp.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let changed = py_fn("py", "")
        .replace("custom-value", "changed-value")
        .replace("handler: app.handler", "handler: app.handler_v2");
    let after = format!(
        "{changed}{}{}",
        py_fn("keep", ""),
        plain_fn("added", "ok", "")
    );
    setup(dir.path(), paths, &after, "");
    assert!(
        tp.wait_stderr("definition reloaded", WAIT),
        "{}",
        tp.stderr()
    );
    assert!(
        tp.stderr().contains("functions reloaded"),
        "{}",
        tp.stderr()
    );

    // The new definition serves new invocations, in a new process.
    let r = get(&tp.url("/dev/py")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let info = &r.json()["info"];
    assert_eq!(info["env"]["CUSTOM"], "changed-value");
    assert_eq!(info["env"]["_HANDLER"], "app.handler_v2");
    let new_pid = info["pid"].as_u64().expect("pid");
    assert_ne!(new_pid, old_pid);
    assert_eq!(get(&tp.url("/dev/added")).await.status, 201);
    let r = get(&tp.url("/dev/keep")).await;
    assert_eq!(
        r.json()["info"]["pid"].as_u64(),
        keep_pid,
        "unchanged: still warm"
    );

    // The old process finished its invocation, then went away.
    let r = slow.await.expect("slow request task");
    assert_eq!(
        (r.status, r.text()),
        (200, old_pid.to_string()),
        "in-flight invocation completed on the old process"
    );
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pid_alive(old_pid) && std::time::Instant::now() < gone {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!pid_alive(old_pid), "retired process {old_pid} left behind");

    stop(&mut tp);
    for pid in [Some(new_pid), keep_pid].into_iter().flatten() {
        assert!(!pid_alive(pid), "function process {pid} outlived turnpike");
    }
}

/// A client that disconnects mid-invocation does not kill the function instance: the
/// invocation runs to its end and the next request finds the same process warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_keeps_the_instance_warm() {
    let dir = temp_dir();
    let paths = json!({"/py": {"get": proxy_op("py")}});
    let file = setup(dir.path(), paths, &py_fn("py", "    timeout: 10\n"), "");
    let mut tp = Turnpike::serve(&file);
    let r = get(&tp.url("/dev/py")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    let pid = r.json()["info"]["pid"].as_u64().expect("pid");
    // Gives up after 300 ms on a 1-second invocation.
    let gave_up = client()
        .get(tp.url("/dev/py?mode=sleep&seconds=1"))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client was expected to time out");
    assert!(
        pid_alive(pid),
        "the instance was killed with the client's request"
    );
    // The abandoned invocation completes; then the same process serves the next one.
    let deadline = std::time::Instant::now() + WAIT;
    while tp.stderr().matches("] END RequestId").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", tp.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = get(&tp.url("/dev/py")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["info"]["pid"].as_u64(),
        Some(pid),
        "{}",
        tp.stderr()
    );
    stop(&mut tp);
    assert!(!pid_alive(pid));
}
