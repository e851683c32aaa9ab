//! MOCK integrations (§6.2), the console's CORS OPTIONS method, and HTTP (non-proxy)
//! integrations (§5, §6.3): status selection, response parameters, what the backend receives.

mod common;

use common::*;
use serde_json::json;

const API_ID: &str = "mockapi001";

/// A MOCK method declaring only 200 whose default integration response is 404, rendered
/// with `template`.
fn undeclared_404(template: &str) -> serde_json::Value {
    json!({
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
            "type": "MOCK",
            "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {
                "statusCode": "404",
                "responseTemplates": {"application/json": template},
            }},
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_status_selection_and_static_headers() {
    let dir = temp_dir();
    let template = "#set($want = $input.params('want'))\n#if($want == \"\")\n{\"statusCode\": 200}\n#else\n{\"statusCode\": $want}\n#end";
    let def = openapi(
        "Mock",
        json!({
            "/pick": {"get": {
                "parameters": [{"name": "want", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "ok", "headers": {"X-Static": {"schema": {"type": "string"}}, "X-Kind": {"schema": {"type": "string"}}}},
                    "404": {"description": "nf", "headers": {"X-Kind": {"schema": {"type": "string"}}}},
                    "503": {"description": "other"},
                },
                "x-amazon-apigateway-integration": {
                    "type": "MOCK",
                    "requestTemplates": {"application/json": template},
                    "responses": {
                        "2\\d{2}": {
                            "statusCode": "200",
                            "responseParameters": {
                                "method.response.header.X-Static": "'static-value'",
                                "method.response.header.X-Kind": "'two'",
                            },
                            "responseTemplates": {"application/json": "{\"selected\":\"2xx\",\"want\":\"$input.params('want')\"}"},
                        },
                        "4\\d{2}": {
                            "statusCode": "404",
                            "responseParameters": {"method.response.header.X-Kind": "'four'"},
                            "responseTemplates": {"application/json": "{\"selected\":\"4xx\"}"},
                        },
                        "default": {
                            "statusCode": "503",
                            "responseTemplates": {"application/json": "{\"selected\":\"default\"}"},
                        },
                    },
                },
            }},
            "/undeclared": {"get": undeclared_404("{\"never\":true}")},
            "/undeclared-overridden": {"get": undeclared_404(
                "#set($context.responseOverride.status = 202){\"overridden\":true}",
            )},
            "/no-status": {"get": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "MOCK",
                    "requestTemplates": {"application/json": "{\"nothing\": true}"},
                    "responses": {"default": {"statusCode": "200"}},
                },
            }},
        }),
    );
    let file = write_json(dir.path(), "api.json", &def);
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);

    let cases = [
        ("", 200, "2xx", Some("two")),
        ("?want=201", 200, "2xx", Some("two")),
        ("?want=404", 404, "4xx", Some("four")),
        ("?want=429", 404, "4xx", Some("four")),
        ("?want=500", 503, "default", None),
        ("?want=302", 503, "default", None),
    ];
    for (q, status, selected, kind) in cases {
        let r = get(&tp.url(&format!("/dev/pick{q}"))).await;
        assert_eq!(r.status, status, "{q}: {}", r.text());
        assert_eq!(r.json()["selected"], selected, "{q}");
        assert_eq!(r.header("X-Kind"), kind, "{q}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-amzn-trace-id"), None, "no trace id on MOCK");
        r.assert_aws_ids();
    }
    let r = get(&tp.url("/dev/pick?want=250")).await;
    assert_eq!(r.header("X-Static"), Some("static-value"));
    assert_eq!(r.json()["want"], "250");

    // A request template that names no statusCode → 500.
    // An integration response whose status the method does not declare: AWS answers 500
    // ("Output mapping refers to an invalid method response"), unless a template overrides it.
    let r = get(&tp.url("/dev/undeclared")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.text(), r#"{"message": "Internal server error"}"#);
    r.assert_aws_ids();
    let r = get(&tp.url("/dev/undeclared-overridden")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"overridden": true}));

    let r = get(&tp.url("/dev/no-status")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), r#"{"message": "Internal server error"}"#);
}

/// The OPTIONS method the API Gateway console creates with "Enable CORS", as exported.
const CORS_YAML: &str = r##"openapi: "3.0.1"
info:
  title: "Cors"
  version: "2024-01-01T00:00:00Z"
paths:
  /items:
    get:
      responses:
        "200":
          description: "200 response"
          headers:
            Access-Control-Allow-Origin:
              schema:
                type: "string"
      x-amazon-apigateway-integration:
        type: "mock"
        requestTemplates:
          application/json: "{\"statusCode\": 200}"
        responses:
          default:
            statusCode: "200"
            responseParameters:
              method.response.header.Access-Control-Allow-Origin: "'*'"
            responseTemplates:
              application/json: "[]"
        passthroughBehavior: "when_no_match"
    options:
      responses:
        "200":
          description: "200 response"
          headers:
            Access-Control-Allow-Origin:
              schema:
                type: "string"
            Access-Control-Allow-Methods:
              schema:
                type: "string"
            Access-Control-Allow-Headers:
              schema:
                type: "string"
          content:
            application/json:
              schema:
                $ref: "#/components/schemas/Empty"
      x-amazon-apigateway-integration:
        type: "mock"
        responses:
          default:
            statusCode: "200"
            responseParameters:
              method.response.header.Access-Control-Allow-Methods: "'GET,OPTIONS'"
              method.response.header.Access-Control-Allow-Headers: "'Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token'"
              method.response.header.Access-Control-Allow-Origin: "'*'"
            responseTemplates:
              application/json: ""
        requestTemplates:
          application/json: "{\"statusCode\": 200}"
        passthroughBehavior: "when_no_match"
components:
  schemas:
    Empty:
      title: "Empty Schema"
      type: "object"
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_cors_options_mock() {
    let dir = temp_dir();
    let file = write(dir.path(), "cors.yaml", CORS_YAML);
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    let r = send(
        client()
            .request(reqwest::Method::OPTIONS, tp.url("/dev/items"))
            .header("Origin", "https://example.com")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "content-type"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("GET,OPTIONS")
    );
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some("Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        "",
        "the empty template passes the empty MOCK body"
    );
    r.assert_aws_ids();
    // Preflight without Origin headers is answered the same way (API Gateway does no CORS logic).
    let r = send(client().request(reqwest::Method::OPTIONS, tp.url("/dev/items"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));

    let r = get(&tp.url("/dev/items")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "[]");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
}

fn http_api(up: &Upstream) -> serde_json::Value {
    let base = up.base();
    openapi(
        "Http",
        json!({
            "/echo/{id}": {"post": {
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "m", "in": "query", "schema": {"type": "string"}},
                    {"name": "x-in", "in": "header", "schema": {"type": "string"}},
                    {"name": "absent", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP",
                    "httpMethod": "POST",
                    "uri": format!("{base}/echo/{{id}}?fixed=1"),
                    "requestParameters": {
                        "integration.request.path.id": "method.request.path.id",
                        "integration.request.querystring.q": "method.request.querystring.q",
                        "integration.request.querystring.multi": "method.request.multivaluequerystring.m",
                        "integration.request.header.X-Mapped": "method.request.header.x-in",
                        "integration.request.header.X-Lit": "'lit'",
                        "integration.request.header.X-Missing": "method.request.querystring.absent",
                    },
                    "requestTemplates": {
                        "application/json": "{\"id\":\"$input.params('id')\",\"in\":$input.json('$.v')}",
                    },
                    "responses": {"default": {
                        "statusCode": "200",
                        "responseTemplates": {"application/json": "$input.json('$')"},
                    }},
                },
            }},
            "/status/{code}": {"get": {
                "parameters": path_params(&["code"]),
                "responses": {
                    "200": {"description": "ok", "headers": {"X-Up-Type": {"schema": {"type": "string"}}}},
                    "400": {"description": "client", "headers": {"X-Code": {"schema": {"type": "string"}}}},
                    "502": {"description": "other"},
                },
                "x-amazon-apigateway-integration": {
                    "type": "HTTP",
                    "httpMethod": "GET",
                    "uri": format!("{base}/status/{{code}}"),
                    "requestParameters": {"integration.request.path.code": "method.request.path.code"},
                    "responses": {
                        "2\\d{2}": {
                            "statusCode": "200",
                            "responseParameters": {"method.response.header.X-Up-Type": "integration.response.header.Content-Type"},
                            "responseTemplates": {"application/json": "{\"ok\":true,\"code\":$input.json('$.status_code')}"},
                        },
                        "4\\d{2}": {
                            "statusCode": "400",
                            "responseParameters": {"method.response.header.X-Code": "integration.response.body.status_code"},
                            "responseTemplates": {"application/json": "{\"client_error\":$input.json('$.status_code')}"},
                        },
                        "default": {
                            "statusCode": "502",
                            "responseTemplates": {"application/json": "{\"other\":true}"},
                        },
                    },
                },
            }},
            "/passthrough": {"put": {
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "HTTP",
                    "httpMethod": "PUT",
                    "uri": format!("{base}/pt"),
                    "responses": {"default": {"statusCode": "200"}},
                },
            }},
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_integration_sends_only_mapped_headers_and_defaults() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &http_api(&up));
    let file = project(dir.path(), "api.json", API_ID, "dev", "");
    let tp = Turnpike::serve(&file);

    let r = send(
        client()
            .post(tp.url("/dev/echo/7?q=search&other=x&m=x%2Cy&m=z"))
            .header("content-type", "application/json")
            .header("accept", "application/xml")
            .header("user-agent", "test/ua")
            .header("x-in", "hello")
            .header("x-unmapped", "nope")
            .header("authorization", "Bearer t")
            .body(r#"{"v": 5}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_aws_ids();
    let trace = r
        .header("x-amzn-trace-id")
        .expect("HTTP integrations return X-Amzn-Trace-Id");
    assert!(trace.starts_with("Root=1-"));
    assert_eq!(r.header("content-type"), Some("application/json"));

    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/echo/7");
    let query: Vec<(String, String)> = seen
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    // A multi-value source gives one parameter per value received, commas and all.
    assert_eq!(
        query,
        [
            pair("fixed", "1"),
            pair("multi", "x,y"),
            pair("multi", "z"),
            pair("q", "search"),
        ],
        "{:?}",
        seen.query
    );
    assert_eq!(seen.body.as_ref(), br#"{"id":"7","in":5}"#);
    let mut names: Vec<String> = seen.headers.iter().map(|(k, _)| k.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "accept",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-amzn-apigateway-api-id",
            "x-amzn-trace-id",
            "x-lit",
            "x-mapped",
        ],
        "only mapped headers and AWS's defaults reach the backend: {:?}",
        seen.headers
    );
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(
        seen.header("user-agent"),
        Some(format!("AmazonAPIGateway_{API_ID}").as_str())
    );
    assert_eq!(seen.header("x-amzn-apigateway-api-id"), Some(API_ID));
    assert_eq!(seen.header("x-amzn-trace-id"), Some(trace));
    assert_eq!(seen.header("x-mapped"), Some("hello"));
    assert_eq!(seen.header("x-lit"), Some("lit"));
    assert_eq!(seen.header("content-type"), Some("application/json"));

    // The response template received the backend's JSON.
    let body = r.json();
    assert_eq!(body["path"], "/echo/7");
    assert_eq!(body["headers"]["x-mapped"], "hello");

    // Without a template for the content type, the body passes through unchanged.
    let r = send(
        client()
            .put(tp.url("/dev/passthrough"))
            .header("content-type", "text/plain")
            .body("plain text body"),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.body.as_ref(), b"plain text body");
    assert_eq!(seen.header("content-type"), Some("text/plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_backend_status_selects_the_integration_response() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &http_api(&up));
    let file = project(dir.path(), "api.json", API_ID, "dev", "");
    let tp = Turnpike::serve(&file);

    let r = get(&tp.url("/dev/status/201")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ok": true, "code": 201}));
    assert_eq!(r.header("X-Up-Type"), Some("application/json"));

    let r = get(&tp.url("/dev/status/404")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"client_error": 404}));
    assert_eq!(r.header("X-Code"), Some("404"));
    assert_eq!(r.header("X-Up-Type"), None);

    for code in [503, 302] {
        let r = get(&tp.url(&format!("/dev/status/{code}"))).await;
        assert_eq!(r.status, 502, "{code}");
        assert_eq!(r.json(), json!({"other": true}));
        r.assert_aws_ids();
    }
}
