//! Routing (§2.2) and invoke URL forms (§1), against the real binary.

mod common;

use common::*;
use serde_json::{json, Value};

const MISSING_TOKEN: &str = r#"{"message":"Missing Authentication Token"}"#;

fn named(name: &str) -> Value {
    mock_op(200, &format!("{{\"res\":\"{name}\"}}"))
}

/// A MOCK method reporting a path parameter as the gateway saw it.
fn with_param(name: &str, param: &str) -> Value {
    let mut op = mock_op(
        200,
        &format!("{{\"res\":\"{name}\",\"{param}\":\"$input.params('{param}')\"}}"),
    );
    op["parameters"] = path_params(&[param]);
    op
}

fn assert_missing_token(r: &Resp, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(r.text(), MISSING_TOKEN, "{what}");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException"),
        "{what}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    r.assert_aws_ids();
}

async fn res(url: &str) -> Value {
    let r = get(url).await;
    assert_eq!(r.status, 200, "GET {url}: {}", r.text());
    r.assert_aws_ids();
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_beats_param_beats_greedy() {
    let dir = temp_dir();
    let def = openapi(
        "Priority",
        json!({
            "/": {"get": named("root")},
            "/pets": {"get": named("pets")},
            "/pets/mine": {"get": named("mine")},
            "/pets/{id}": {"get": with_param("pet", "id")},
            "/files/{path+}": {"get": with_param("files", "path")},
            "/Upper": {"get": named("upper")},
        }),
    );
    let file = write_json(dir.path(), "api.json", &def);
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);

    assert_eq!(res(&tp.url("/dev/pets/mine")).await["res"], "mine");
    let pet = res(&tp.url("/dev/pets/7")).await;
    assert_eq!(
        (pet["res"].as_str(), pet["id"].as_str()),
        (Some("pet"), Some("7"))
    );
    let files = res(&tp.url("/dev/files/a/b/c.txt")).await;
    assert_eq!(files["res"], "files");
    assert_eq!(files["path"], "a/b/c.txt");
    // A single segment is enough for a greedy variable; none is not.
    assert_eq!(res(&tp.url("/dev/files/x")).await["path"], "x");
    assert_missing_token(&get(&tp.url("/dev/files")).await, "greedy with no segment");
    assert_missing_token(
        &get(&tp.url("/dev/files/")).await,
        "greedy with only a slash",
    );

    // The stage root, with and without a trailing slash.
    assert_eq!(res(&tp.url("/dev")).await["res"], "root");
    assert_eq!(res(&tp.url("/dev/")).await["res"], "root");
    // Trailing slash ignored; repeated leading slashes collapse.
    assert_eq!(res(&tp.url("/dev/pets/")).await["res"], "pets");
    assert_eq!(res(&tp.url("/dev//pets")).await["res"], "pets");
    assert_eq!(res(&tp.url("/dev///pets/mine")).await["res"], "mine");
    // Greedy values keep inner double slashes.
    assert_eq!(
        res(&tp.url("/dev/files/a//b")).await["path"],
        "a//b",
        "inner // kept in a greedy value"
    );

    // Literals are case-sensitive.
    assert_eq!(res(&tp.url("/dev/Upper")).await["res"], "upper");
    assert_missing_token(&get(&tp.url("/dev/upper")).await, "case-sensitive literal");
    assert_missing_token(&get(&tp.url("/dev/PETS")).await, "case-sensitive literal");

    // Percent-encoding is kept in path parameters.
    let enc = res(&tp.url("/dev/pets/test%2Balias@gmail.com")).await;
    assert_eq!(enc["id"], "test%2Balias@gmail.com");
    let enc = res(&tp.url("/dev/pets/foo%2Fbar")).await;
    assert_eq!(enc["id"], "foo%2Fbar", "an encoded slash stays one segment");

    // Unknown paths and methods.
    assert_missing_token(&get(&tp.url("/dev/nothing/here")).await, "unknown path");
    assert_missing_token(&get(&tp.url("/dev/pets/7/extra")).await, "too deep");
    let c = client();
    assert_missing_token(
        &send(c.delete(tp.url("/dev/pets"))).await,
        "undefined method",
    );
    assert_missing_token(
        &send(c.post(tp.url("/dev/pets/mine")).body("{}")).await,
        "undefined method",
    );
    // HEAD is not served by GET.
    let head = send(c.head(tp.url("/dev/pets"))).await;
    assert_eq!(head.status, 403);
    assert_eq!(
        head.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );
    head.assert_aws_ids();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtracking_and_method_aware_fallback() {
    let dir = temp_dir();
    let mut proxy = named("proxy-get");
    proxy["parameters"] = path_params(&["proxy"]);
    let mut proxy_options = named("proxy-options");
    proxy_options["parameters"] = path_params(&["proxy"]);
    let def = openapi(
        "Fallback",
        json!({
            "/part1": {"get": named("part1")},
            "/part1/hardcoded-value": {"get": named("hardcoded")},
            "/test": {"post": named("test-post")},
            "/test/any": {"x-amazon-apigateway-any-method": named("test-any")},
            "/both": {"get": named("both-get"), "x-amazon-apigateway-any-method": named("both-any")},
            "/nested/bar/{param}": {"get": with_param("nested-param", "param")},
            "/nested/{rest+}": {"get": with_param("nested-greedy", "rest")},
            "/{proxy+}": {"get": proxy, "options": proxy_options},
        }),
    );
    let file = write_json(dir.path(), "api.json", &def);
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    let c = client();

    // Backtracking across branches (observed on AWS).
    assert_eq!(
        res(&tp.url("/dev/part1/random-value")).await["res"],
        "proxy-get"
    );
    assert_eq!(
        res(&tp.url("/dev/part1/hardcoded-value")).await["res"],
        "hardcoded"
    );
    assert_eq!(res(&tp.url("/dev/part1")).await["res"], "part1");

    // Method-aware fallback: /test has only POST; OPTIONS and GET go to /{proxy+}.
    let r = send(c.request(reqwest::Method::OPTIONS, tp.url("/dev/test"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["res"], "proxy-options");
    assert_eq!(res(&tp.url("/dev/test")).await["res"], "proxy-get");
    let r = send(c.post(tp.url("/dev/test")).body("{}")).await;
    assert_eq!(r.json()["res"], "test-post");
    // ... but a method nobody has is still unmatched.
    assert_missing_token(
        &send(c.patch(tp.url("/dev/test")).body("{}")).await,
        "PATCH on no resource",
    );

    // ANY serves every method; an explicit method beats ANY on the same resource.
    for m in ["GET", "DELETE", "OPTIONS", "PUT", "PATCH", "POST"] {
        let r = send(
            c.request(m.parse().unwrap(), tp.url("/dev/test/any"))
                .body(""),
        )
        .await;
        assert_eq!(r.status, 200, "{m}");
        assert_eq!(r.json()["res"], "test-any", "{m}");
    }
    let head = send(c.head(tp.url("/dev/test/any"))).await;
    assert_eq!(head.status, 200, "ANY includes HEAD");
    assert_eq!(res(&tp.url("/dev/both")).await["res"], "both-get");
    let r = send(c.put(tp.url("/dev/both")).body("{}")).await;
    assert_eq!(r.json()["res"], "both-any");

    // Nested param vs greedy.
    let r = res(&tp.url("/dev/nested/bar/x")).await;
    assert_eq!(
        (r["res"].as_str(), r["param"].as_str()),
        (Some("nested-param"), Some("x"))
    );
    let r = res(&tp.url("/dev/nested/other/a/b")).await;
    assert_eq!(
        (r["res"].as_str(), r["rest"].as_str()),
        (Some("nested-greedy"), Some("other/a/b"))
    );
    let r = res(&tp.url("/dev/nested/bar/x/y")).await;
    assert_eq!(
        (r["res"].as_str(), r["rest"].as_str()),
        (Some("nested-greedy"), Some("bar/x/y"))
    );

    // The greedy root resource does not match the stage root.
    assert_missing_token(&get(&tp.url("/dev/")).await, "greedy does not match /");

    // X-HTTP-Method-Override (§2.4): routed and served as the method it names.
    let r = send(
        c.post(tp.url("/dev/both"))
            .header("X-HTTP-Method-Override", "GET")
            .body("{}"),
    )
    .await;
    assert_eq!(r.json()["res"], "both-get");
    let r = send(
        c.get(tp.url("/dev/test"))
            .header("X-HTTP-Method-Override", "post"),
    )
    .await;
    assert_eq!(r.json()["res"], "test-post");
    // A value that is no REST method is ignored.
    let r = send(
        c.get(tp.url("/dev/test"))
            .header("X-HTTP-Method-Override", "PURGE"),
    )
    .await;
    assert_eq!(r.json()["res"], "proxy-get");
    assert_missing_token(
        &send(
            c.get(tp.url("/dev/test"))
                .header("X-HTTP-Method-Override", "PATCH"),
        )
        .await,
        "overridden to a method nobody has",
    );

    // Unmatched with a non-SigV4 Authorization header: AWS reads it as a broken signature.
    let r = send(
        c.patch(tp.url("/dev/test"))
            .header("Authorization", "Bearer abc"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("IncompleteSignatureException")
    );
    assert_eq!(
        r.json(),
        json!({"message": "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=Bearer abc"})
    );
    r.assert_aws_ids();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_url_forms_and_unknown_apis_and_stages() {
    let dir = temp_dir();
    let def = openapi("Forms", json!({"/hello": {"get": named("hello")}}));
    write_json(dir.path(), "api.json", &def);
    let file = project(dir.path(), "api.json", "formsapi01", "dev", "");
    let tp = Turnpike::serve(&file);
    let c = client();
    let port = tp.port;

    // Plain /{stage}/... for the default (first) API.
    assert_eq!(res(&tp.url("/dev/hello")).await["res"], "hello");
    // Host-based; the API id is matched case-insensitively.
    for host in [
        format!("formsapi01.execute-api.localhost:{port}"),
        format!("FormsApi01.execute-api.localhost:{port}"),
        format!("formsapi01.execute-api.us-east-1.amazonaws.com:{port}"),
    ] {
        let r = send(c.get(tp.url("/dev/hello")).header("host", host.as_str())).await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.json()["res"], "hello");
        r.assert_aws_ids();
    }
    // Path-based forms.
    assert_eq!(
        res(&tp.url("/_aws/execute-api/formsapi01/dev/hello")).await["res"],
        "hello"
    );
    assert_eq!(
        res(&tp.url("/restapis/formsapi01/dev/_user_request_/hello")).await["res"],
        "hello"
    );

    // Unknown stage → 403 Forbidden in every form.
    let forbidden = |r: &Resp, what: &str| {
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.text(), r#"{"message":"Forbidden"}"#, "{what}");
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("ForbiddenException"),
            "{what}"
        );
        r.assert_aws_ids();
    };
    forbidden(&get(&tp.url("/prod/hello")).await, "plain");
    forbidden(
        &get(&tp.url("/Dev/hello")).await,
        "stage names are case-sensitive",
    );
    forbidden(&get(&tp.url("/")).await, "no stage");
    forbidden(
        &send(
            c.get(tp.url("/prod/hello"))
                .header("host", format!("formsapi01.execute-api.localhost:{port}")),
        )
        .await,
        "host-based",
    );
    forbidden(
        &get(&tp.url("/_aws/execute-api/formsapi01/prod/hello")).await,
        "path-based",
    );
    forbidden(
        &get(&tp.url("/restapis/formsapi01/prod/_user_request_/hello")).await,
        "legacy",
    );

    // Unknown API id → 404.
    let r = get(&tp.url("/_aws/execute-api/nosuchapi9/dev/hello")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "The API id 'nosuchapi9' does not correspond to a deployed API Gateway API"
    );
    r.assert_aws_ids();
    let r = send(
        c.get(tp.url("/dev/hello"))
            .header("host", format!("nosuchapi9.execute-api.localhost:{port}")),
    )
    .await;
    assert_eq!(r.status, 404);
    r.assert_aws_ids();

    // Unmatched route in the path-based form is still the MISSING_AUTHENTICATION_TOKEN response.
    assert_missing_token(
        &get(&tp.url("/_aws/execute-api/formsapi01/dev/nope")).await,
        "path-based unmatched",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_on_every_response() {
    let dir = temp_dir();
    let def = openapi("Ids", json!({"/hello": {"get": named("hello")}}));
    let file = write_json(dir.path(), "api.json", &def);
    let tp = Turnpike::serve_with(&file, &["--no-watch", "--stage", "dev"]);
    let c = client();

    // Fresh ids differ between requests.
    let a = get(&tp.url("/dev/hello")).await;
    let b = get(&tp.url("/dev/hello")).await;
    a.assert_aws_ids();
    b.assert_aws_ids();
    assert_ne!(a.header("x-amzn-RequestId"), b.header("x-amzn-RequestId"));
    assert_ne!(a.header("x-amz-apigw-id"), b.header("x-amz-apigw-id"));

    // A client-sent UUID is echoed, on successes and on gateway errors alike.
    let mine = "0d9c6f1e-5a3b-4c2d-9e8f-112233445566";
    for path in ["/dev/hello", "/dev/missing", "/nostage/x"] {
        let r = send(c.get(tp.url(path)).header("x-amzn-RequestId", mine)).await;
        assert_eq!(r.header("x-amzn-RequestId"), Some(mine), "{path}");
        assert!(r.header("x-amz-apigw-id").is_some_and(|v| !v.is_empty()));
    }
    // A value that is not a UUID is replaced.
    let r = send(
        c.get(tp.url("/dev/hello"))
            .header("x-amzn-RequestId", "not-a-uuid"),
    )
    .await;
    r.assert_aws_ids();
    assert_ne!(r.header("x-amzn-RequestId"), Some("not-a-uuid"));
}
