//! Gateway responses (§3): AWS's defaults for what the core can trigger, and customisation
//! through `x-amazon-apigateway-gateway-responses`.

mod common;

use common::*;
use serde_json::{json, Value};

const INTERNAL: &str = r#"{"message": "Internal server error"}"#;
const TIMED_OUT: &str = r#"{"message": "Endpoint request timed out"}"#;

fn mock_with(passthrough: &str, templates: Value) -> Value {
    json!({
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "MOCK",
            "passthroughBehavior": passthrough,
            "requestTemplates": templates,
            "responses": {"default": {
                "statusCode": "200",
                "responseTemplates": {"application/json": "{\"ok\":true}"},
            }},
        },
    })
}

fn http_op(kind: &str, uri: &str, timeout_ms: Option<u64>, responses: Value) -> Value {
    let mut integ = json!({
        "type": kind,
        "httpMethod": "GET",
        "uri": uri,
        "responses": responses,
    });
    if let Some(t) = timeout_ms {
        integ["timeoutInMillis"] = json!(t);
    }
    json!({
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": integ,
    })
}

/// Paths that trigger every gateway response the core can produce.
fn failing_paths(up: &Upstream) -> Value {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    json!({
        "/never": {"post": mock_with("NEVER", json!({"application/json": "{\"statusCode\": 200}"}))},
        "/never-no-templates": {"post": mock_with("NEVER", json!({}))},
        "/when-no-templates": {"post": mock_with("WHEN_NO_TEMPLATES", json!({"application/json": "{\"statusCode\": 200}"}))},
        "/no-templates": {"post": mock_with("WHEN_NO_TEMPLATES", json!({}))},
        "/slow": {"get": http_op("HTTP_PROXY", &format!("{}/sleep/20000", up.base()), Some(300), json!({}))},
        "/slow-http": {"get": http_op("HTTP", &format!("{}/sleep/20000", up.base()), Some(300), json!({"default": {"statusCode": "200"}}))},
        "/no-match": {"get": http_op("HTTP", &format!("{}/status/404", up.base()), None, json!({"2\\d{2}": {"statusCode": "200"}}))},
        "/unreachable": {"get": http_op("HTTP_PROXY", &format!("{dead}/x"), None, json!({}))},
        "/unreachable-http": {"get": http_op("HTTP", &format!("{dead}/x"), None, json!({"default": {"statusCode": "200"}}))},
        "/mock": {"post": mock_with("WHEN_NO_MATCH", json!({"application/json": "{\"statusCode\": 200}"}))},
    })
}

fn assert_plain_413(r: &Resp) {
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text; charset=utf-8"));
    assert_eq!(r.text(), "HTTP content length exceeded 10485760 bytes.");
    r.assert_aws_ids();
}

async fn oversized(tp: &Turnpike, path: &str) -> Resp {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10485761\r\n\r\n"
    );
    raw(tp.addr(), req.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_gateway_responses() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = write_json(
        dir.path(),
        "api.json",
        &openapi("Defaults", failing_paths(&up)),
    );
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    let c = client();

    // MISSING_AUTHENTICATION_TOKEN
    let r = get(&tp.url("/dev/none")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), r#"{"message":"Missing Authentication Token"}"#);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );

    // UNSUPPORTED_MEDIA_TYPE: NEVER transforms a type with a template and rejects the others.
    let unsupported = |r: &Resp, what: &str| {
        assert_eq!(r.status, 415, "{what}: {}", r.text());
        assert_eq!(
            r.text(),
            r#"{"message":"Unsupported Media Type"}"#,
            "{what}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        r.assert_aws_ids();
    };
    let post = |path: &str, ct: &str| {
        c.post(tp.url(path))
            .header("content-type", ct)
            .body("hello")
    };
    unsupported(
        &send(post("/dev/never", "text/plain")).await,
        "NEVER, no match",
    );
    unsupported(
        &send(post("/dev/never-no-templates", "application/json")).await,
        "NEVER without templates",
    );
    let ok = send(post("/dev/never", "application/json; charset=UTF-8")).await;
    assert_eq!(ok.status, 200, "NEVER with a matching template transforms");
    unsupported(
        &send(post("/dev/when-no-templates", "text/plain")).await,
        "WHEN_NO_TEMPLATES with templates",
    );
    assert_eq!(
        send(post("/dev/when-no-templates", "application/json"))
            .await
            .status,
        200
    );
    assert_eq!(
        send(post("/dev/no-templates", "text/plain")).await.status,
        200,
        "WHEN_NO_TEMPLATES without templates passes through"
    );

    // INTEGRATION_TIMEOUT, for both HTTP integration kinds.
    for path in ["/dev/slow", "/dev/slow-http"] {
        let r = get(&tp.url(path)).await;
        assert_eq!(r.status, 504, "{path}: {}", r.text());
        assert_eq!(r.text(), TIMED_OUT, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        r.assert_aws_ids();
    }

    // API_CONFIGURATION_ERROR: no integration response matches 404 and there is no default.
    let r = get(&tp.url("/dev/no-match")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), INTERNAL);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
    assert_eq!(r.header("content-length"), Some("36"));
    r.assert_aws_ids();

    // Unreachable upstream → 500.
    for path in ["/dev/unreachable", "/dev/unreachable-http"] {
        let r = get(&tp.url(path)).await;
        assert_eq!(r.status, 500, "{path}");
        assert_eq!(r.text(), INTERNAL, "{path}");
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("InternalServerErrorException")
        );
        r.assert_aws_ids();
    }

    // REQUEST_TOO_LARGE: plain text.
    assert_plain_413(&oversized(&tp, "/dev/mock").await);
    // Still serving afterwards.
    assert_eq!(
        send(post("/dev/mock", "application/json")).await.status,
        200
    );
}

fn customised(up: &Upstream) -> Value {
    let mut def = openapi("Custom", failing_paths(up));
    def["x-amazon-apigateway-gateway-responses"] = json!({
        "MISSING_AUTHENTICATION_TOKEN": {
            "statusCode": "404",
            "responseParameters": {
                "gatewayresponse.header.X-Literal": "'fixed-value'",
                "gatewayresponse.header.X-Trace": "method.request.header.x-trace",
            },
            "responseTemplates": {
                "application/json": "{\"msg\":$context.error.messageString,\"raw\":\"$context.error.message\",\"type\":\"$context.error.responseType\",\"rid\":\"$context.requestId\",\"h\":\"$method.request.header.x-trace\",\"lit\":\"#if(true)y#end ##c $util.x $input.params('x-trace')\",\"none\":\"$stageVariables.nope\"}",
            },
        },
        "DEFAULT_4XX": {
            "responseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
            "responseTemplates": {
                "application/json": "{\"d4\":$context.error.messageString,\"type\":\"$context.error.responseType\"}",
            },
        },
        "DEFAULT_5XX": {
            "responseParameters": {"gatewayresponse.header.X-Five": "'5xx'"},
            "responseTemplates": {
                "application/json": "{\"d5\":$context.error.messageString,\"type\":\"$context.error.responseType\"}",
            },
        },
        "INTEGRATION_TIMEOUT": {
            "statusCode": "503",
            "responseParameters": {"gatewayresponse.header.Retry-After": "'3'"},
            "responseTemplates": {
                "application/json": "{\"timeout\":$context.error.messageString}",
            },
        },
    });
    def
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customised_gateway_responses() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    let file = write_json(dir.path(), "api.json", &customised(&up));
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    let c = client();

    // Exact type: status, literal header, header from the method request, template variables.
    let mine = "6f1c1e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6";
    let r = send(
        c.get(tp.url("/dev/none"))
            .header("x-trace", "trace-123")
            .header("x-amzn-RequestId", mine),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.header("X-Literal"), Some("fixed-value"));
    assert_eq!(r.header("X-Trace"), Some("trace-123"));
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "msg": "Missing Authentication Token",
            "raw": "Missing Authentication Token",
            "type": "MISSING_AUTHENTICATION_TOKEN",
            "rid": mine,
            "h": "trace-123",
            // Gateway response templates are not VTL: only variables are substituted.
            "lit": "#if(true)y#end ##c $util.x $input.params('x-trace')",
            "none": "",
        })
    );
    assert_eq!(r.header("x-amzn-RequestId"), Some(mine));
    // A header mapped from an absent request header is left out.
    let r = get(&tp.url("/dev/none")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-Trace"), None);
    assert_eq!(r.header("X-Literal"), Some("fixed-value"));
    let rid = r.header("x-amzn-RequestId").unwrap().to_string();
    assert_eq!(
        r.json()["rid"],
        rid.as_str(),
        "$context.requestId is the response's id"
    );

    // DEFAULT_4XX applies to a non-customised 4XX type, which keeps its own status.
    let r = send(
        c.post(tp.url("/dev/never"))
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        r.json(),
        json!({"d4": "Unsupported Media Type", "type": "UNSUPPORTED_MEDIA_TYPE"})
    );

    // The exact type beats DEFAULT_5XX.
    let r = get(&tp.url("/dev/slow")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Retry-After"), Some("3"));
    assert_eq!(r.header("X-Five"), None, "DEFAULT_5XX not applied");
    assert_eq!(r.json(), json!({"timeout": "Endpoint request timed out"}));

    // DEFAULT_5XX for API_CONFIGURATION_ERROR.
    let r = get(&tp.url("/dev/no-match")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("X-Five"), Some("5xx"));
    assert_eq!(
        r.json(),
        json!({"d5": "Internal server error", "type": "API_CONFIGURATION_ERROR"})
    );
    r.assert_aws_ids();
    // A backend that refuses the connection is AWS's "invalid endpoint address": also
    // API_CONFIGURATION_ERROR, not a bare DEFAULT_5XX.
    for path in ["/dev/unreachable", "/dev/unreachable-http"] {
        let r = get(&tp.url(path)).await;
        assert_eq!(r.status, 500, "{path}");
        assert_eq!(r.header("X-Five"), Some("5xx"), "{path}");
        assert_eq!(
            r.json(),
            json!({"d5": "Internal server error", "type": "API_CONFIGURATION_ERROR"}),
            "{path}"
        );
    }

    // REQUEST_TOO_LARGE cannot be customised, even with DEFAULT_4XX set.
    assert_plain_413(&oversized(&tp, "/dev/mock").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_4xx_status_applies_to_every_uncustomised_4xx() {
    let dir = temp_dir();
    let mut def = openapi(
        "Status",
        json!({
            "/never": {"post": mock_with("NEVER", json!({"application/json": "{\"statusCode\": 200}"}))},
        }),
    );
    def["x-amazon-apigateway-gateway-responses"] = json!({
        "DEFAULT_4XX": {"statusCode": "418"},
        "UNSUPPORTED_MEDIA_TYPE": {"statusCode": "400"},
    });
    let file = write_json(dir.path(), "api.json", &def);
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);

    // No templates given: AWS's default template renders the message.
    let r = get(&tp.url("/dev/none")).await;
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), r#"{"message":"Missing Authentication Token"}"#);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );
    let r = send(
        client()
            .post(tp.url("/dev/never"))
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), r#"{"message":"Unsupported Media Type"}"#);
}
