//! Malformed definitions: each yields exactly the expected diagnostics, with line, column and
//! JSON pointer. Errors are all reported at once, never just the first.

use std::path::{Path, PathBuf};

use turnpike_model::{import_openapi, load_project, Diagnostic, LoadOptions, Severity};

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad")
        .join(name)
}

/// (severity, line, column, pointer, substring of the message)
type Expect<'a> = (Severity, usize, usize, &'a str, &'a str);

fn check(name: &str, expected: &[Expect<'_>]) {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    let diags = match import_openapi(&path, &text) {
        Ok((_, w)) => panic!("{name} imported; warnings: {w:?}"),
        Err(d) => d,
    };
    assert_same(name, &path, &diags, expected);
}

fn assert_same(name: &str, path: &Path, diags: &[Diagnostic], expected: &[Expect<'_>]) {
    let render = || {
        diags
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(diags.len(), expected.len(), "{name}: got\n{}", render());
    for (d, (sev, line, col, ptr, msg)) in diags.iter().zip(expected) {
        assert_eq!(d.file, path, "{name}");
        assert_eq!(
            (d.severity, d.line, d.column, d.pointer.as_str()),
            (*sev, Some(*line), Some(*col), *ptr),
            "{name}: {d}"
        );
        assert!(
            d.message.contains(msg),
            "{name}: {:?} does not contain {msg:?}",
            d.message
        );
    }
}

#[test]
fn integration_errors() {
    const I: &str = "/x-amazon-apigateway-integration";
    check(
        "integration-errors.yaml",
        &[
            (
                E,
                9,
                9,
                &format!("/paths/~1pets/get{I}/type"),
                r#"unknown integration type "htp"; expected one of http, http_proxy, mock, aws, aws_proxy"#,
            ),
            (
                E,
                12,
                7,
                &format!("/paths/~1pets/post{I}"),
                "Enumeration value for HttpMethod must be non-empty",
            ),
            (
                E,
                14,
                9,
                &format!("/paths/~1pets/post{I}/uri"),
                "Invalid HTTP endpoint specified for URI",
            ),
            (
                E,
                19,
                9,
                &format!("/paths/~1pets/put{I}/uri"),
                "Invalid HTTP endpoint specified for URI",
            ),
            (
                E,
                20,
                9,
                &format!("/paths/~1pets/put{I}/timeoutInMillis"),
                "Timeout should be between 50 ms and 29000 ms",
            ),
            (
                E,
                21,
                9,
                &format!("/paths/~1pets/put{I}/passthroughBehavior"),
                "unknown passthroughBehavior \"sometimes\"",
            ),
            (
                E,
                26,
                9,
                &format!("/paths/~1pets/delete{I}/uri"),
                "must be an apigateway service ARN",
            ),
            (
                W,
                32,
                9,
                &format!("/paths/~1pets/patch{I}/unknownField"),
                "unknown integration field \"unknownField\"",
            ),
            (
                E,
                34,
                11,
                &format!("/paths/~1pets/patch{I}/responses/(?<=a)b"),
                "selection pattern \"(?<=a)b\" cannot be compiled: look-around",
            ),
            (
                E,
                37,
                13,
                &format!("/paths/~1pets/patch{I}/responses/default/statusCode"),
                "invalid status code \"abc\"",
            ),
        ],
    );
}

#[test]
fn resource_errors() {
    check(
        "resource-errors.yaml",
        &[
            (E, 9, 3, "/paths/~1a~1{name}", "A sibling ({id}) of this resource already has a variable path part -- only one is allowed"),
            (E, 12, 3, "/paths/~1{proxy+}~1child", "Cannot create a child of a resource with a greedy path variable: {proxy+}"),
            (E, 15, 3, "/paths/~1bad path", "Resource's path part only allow a-zA-Z0-9._- and curly braces"),
            (E, 19, 5, "/paths/~1ok/gett", "unknown operation \"gett\" (did you mean \"get\"?): Invalid HttpMethod specified. Valid options are GET,PUT,POST,DELETE,PATCH,OPTIONS,HEAD,ANY"),
            (E, 21, 5, "/paths/~1ok/trace", "Invalid HttpMethod specified"),
        ],
    );
}

#[test]
fn mapping_errors_json() {
    const I: &str = "/paths/~1test/get/x-amazon-apigateway-integration";
    check(
        "mapping-errors.json",
        &[
            (E, 15, 13, &format!("{I}/requestParameters/integration.request.body.x"), "Invalid mapping expression specified: integration.request.body.x"),
            (E, 16, 13, &format!("{I}/requestParameters/integration.request.header.x-a"), "Invalid mapping expression specified: $method.request.querystring.q"),
            (E, 17, 13, &format!("{I}/requestParameters/integration.request.header.x-b"), "Invalid mapping expression parameter specified: method.request.header.undeclared"),
            (E, 24, 17, &format!("{I}/responses/default/responseParameters/method.response.header.X-Undeclared"), "Invalid mapping expression parameter specified: method.response.header.X-Undeclared"),
            (E, 25, 17, &format!("{I}/responses/default/responseParameters/method.response.header.X-Bad"), "Invalid mapping expression specified: integration.request.header.x"),
            (E, 34, 44, "/x-amazon-apigateway-gateway-responses/DEFAULT_4XX/responseParameters/gatewayresponse.header.A", "Invalid mapping expression specified: nope"),
            (E, 35, 5, "/x-amazon-apigateway-gateway-responses/NOT_A_TYPE", "unknown gateway response type \"NOT_A_TYPE\""),
        ],
    );
}

#[test]
fn reference_errors() {
    check(
        "reference-errors.yaml",
        &[
            (
                E,
                9,
                11,
                "/paths/~1r/get/security/0/NoSuchScheme",
                "unknown security scheme \"NoSuchScheme\"",
            ),
            (
                E,
                10,
                7,
                "/paths/~1r/get/x-amazon-apigateway-request-validator",
                "unknown request validator \"nope\"",
            ),
            (
                W,
                17,
                17,
                "/paths/~1r/get/responses/200/content/application~1json/schema/$ref",
                "Invalid model reference specified: #/components/schemas/Missing",
            ),
            (
                E,
                22,
                5,
                "/components/schemas/Bad_Name",
                "Model name must be alphanumeric",
            ),
        ],
    );
}

#[test]
fn syntax_errors_have_positions() {
    check(
        "syntax-error.yaml",
        &[(E, 8, 1, "", "invalid YAML: while parsing a flow sequence")],
    );
    check(
        "syntax-error.json",
        &[(E, 6, 5, "", "invalid JSON: expected `,` or `}`")],
    );
}

#[test]
fn not_an_openapi_document() {
    check(
        "not-openapi.yaml",
        &[(E, 1, 1, "", "not an OpenAPI document")],
    );
    check(
        "openapi31.yaml",
        &[(E, 1, 1, "/openapi", "unsupported OpenAPI version \"3.1.0\"")],
    );
}

#[test]
fn display_format() {
    let path = fixture("integration-errors.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let diags = import_openapi(&path, &text).expect_err("errors");
    assert_eq!(
        diags[0].to_string(),
        format!(
            "{}:9:9: error at /paths/~1pets/get/x-amazon-apigateway-integration/type: unknown integration type \"htp\"; expected one of http, http_proxy, mock, aws, aws_proxy",
            path.display()
        )
    );
}

#[test]
fn load_error_lists_every_diagnostic_one_per_line() {
    let path = fixture("resource-errors.yaml");
    let err = load_project(&path, &LoadOptions::default()).expect_err("errors");
    let text = err.to_string();
    assert_eq!(text.lines().count(), err.diagnostics.len());
    assert_eq!(err.errors().count(), 5);
}

#[test]
fn small_snippets() {
    // (document, expected diagnostics as (severity, line, col, pointer, substring))
    let cases: &[(&str, &[Expect<'_>])] = &[
        (
            "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: id, in: query}\n        - {name: id, in: header}\n      x-amazon-apigateway-integration: {type: mock}\n",
            &[(E, 8, 11, "/paths/~1a/get/parameters/1", "Parameter names must be unique across querystring, header and path")],
        ),
        (
            "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration:\n        type: http\n        httpMethod: GET\n        uri: http://x/{id}\n        cacheKeyParameters: [method.request.path.nope]\n",
            &[
                (E, 10, 30, "/paths/~1a/get/x-amazon-apigateway-integration/cacheKeyParameters/0", "Invalid cache key parameter specified"),
                (W, 9, 9, "/paths/~1a/get/x-amazon-apigateway-integration/uri", "URI path variable {id} has no integration.request.path.id mapping"),
                (W, 10, 9, "/paths/~1a/get/x-amazon-apigateway-integration/cacheKeyParameters", "caching not yet emulated"),
            ],
        ),
        (
            "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration:\n        type: mock\n        connectionType: VPC_LINK\n",
            &[
                (E, 6, 7, "/paths/~1a/get/x-amazon-apigateway-integration", "connectionId is required when connectionType is VPC_LINK"),
                (W, 8, 9, "/paths/~1a/get/x-amazon-apigateway-integration/connectionType", "VPC links"),
            ],
        ),
        (
            "openapi: 3.0.1\ninfo: {version: '1'}\npaths: {}\n",
            &[(E, 2, 1, "/info", "info.title is required")],
        ),
        (
            "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration:\n        type: http\n        httpMethod: GET\n        uri: ${AWS::Nope}\n",
            &[
                (E, 9, 9, "/paths/~1a/get/x-amazon-apigateway-integration/uri", "Invalid HTTP endpoint specified for URI"),
                (W, 9, 9, "/paths/~1a/get/x-amazon-apigateway-integration/uri", "unknown variable ${AWS::Nope}"),
            ],
        ),
        (
            "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration:\n        type: mock\n        responses:\n          default: {statusCode: 200, responseParameters: {method.response.header.X: 'a'}}\n",
            &[(E, 9, 59, "/paths/~1a/get/x-amazon-apigateway-integration/responses/default/responseParameters/method.response.header.X", "Invalid mapping expression specified: a")],
        ),
        (
            "a: 1\na: 2\n",
            &[(E, 2, 1, "/a", "duplicate key \"a\" in mapping (first defined at line 1)")],
        ),
        (
            "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      security: [{auth: []}]\n      x-amazon-apigateway-integration: {type: mock}\ncomponents:\n  securitySchemes:\n    auth:\n      type: apiKey\n      x-amazon-apigateway-authorizer: {type: token}\n",
            &[
                (E, 12, 7, "/components/securitySchemes/auth/x-amazon-apigateway-authorizer", "authorizerUri is required"),
            ],
        ),
    ];
    for (i, (doc, expected)) in cases.iter().enumerate() {
        let path = PathBuf::from(format!("snippet{i}.yaml"));
        let diags = match import_openapi(&path, doc) {
            Ok((_, w)) => panic!("snippet {i} imported; warnings: {w:?}"),
            Err(d) => d,
        };
        let mut sorted: Vec<Diagnostic> = diags;
        // Errors first, then warnings, each in source order, to keep expectations readable.
        sorted.sort_by_key(|d| (d.severity != E, d.line, d.column));
        assert_same(&format!("snippet {i}"), &path, &sorted, expected);
    }
}

#[test]
fn oversized_and_non_utf8_files_are_rejected() {
    let dir = std::env::temp_dir().join(format!("turnpike-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let big = dir.join("big.yaml");
    let mut text = String::from("openapi: 3.0.1\ninfo: {title: t}\npaths: {}\nx-pad: \"");
    text.push_str(&"a".repeat(6 * 1024 * 1024));
    text.push_str("\"\n");
    std::fs::write(&big, &text).expect("write");
    let err = load_project(&big, &LoadOptions::default()).expect_err("too big");
    assert!(err.diagnostics[0].message.contains("at most 6 MB"), "{err}");
    let diags = import_openapi(&big, &text).expect_err("too big");
    assert!(diags[0].message.contains("at most 6 MB"));

    let bin = dir.join("bin.yaml");
    std::fs::write(&bin, [b'a', b':', b' ', 0xff, 0xfe]).expect("write");
    let err = load_project(&bin, &LoadOptions::default()).expect_err("not utf-8");
    assert!(
        err.diagnostics[0].message.contains("not valid UTF-8"),
        "{err}"
    );

    let missing = dir.join("missing.yaml");
    let err = load_project(&missing, &LoadOptions::default()).expect_err("missing");
    assert!(err.diagnostics[0].message.contains("cannot read"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn arbitrary_inputs_never_panic() {
    let docs = [
        "",
        "~",
        "[]",
        "42",
        "openapi: 3.0.1",
        "openapi: 3.0.1\npaths: []\ninfo: []",
        "openapi: 3.0.1\ninfo: {title: t}\npaths: {/a: {get: 5}}",
        "openapi: 3.0.1\ninfo: {title: t}\npaths: {/a: {get: {x-amazon-apigateway-integration: []}}}",
        "openapi: 3.0.1\ninfo: {title: t}\npaths: {/a: {get: {parameters: {a: 1}, responses: [], security: {}}}}",
        "openapi: 3.0.1\ninfo: {title: t}\npaths: {/a: {$ref: '#/paths/~1a'}}",
        "openapi: 3.0.1\ninfo: {title: t}\npaths: {/a: {get: {parameters: [{$ref: '#/nope'}]}}}",
        "openapi: 3.0.1\ninfo: {title: t}\npaths: {'': {}, '/': {}, '//': {}, '/{': {}, '/{+}': {}}",
        "swagger: '2.0'\ninfo: {title: t}\npaths: {/a: {get: {parameters: [{in: body, name: b, schema: 5}]}}}",
        "{\"openapi\": \"3.0.1\", \"info\": {\"title\": \"\\ud83d\\ude00\"}, \"paths\": {}}",
        "? [a, b]\n: c\n",
        "a: &x [*x]\n",
        "\u{feff}openapi: 3.0.1",
    ];
    for d in docs {
        let _ = import_openapi(Path::new("x.yaml"), d);
    }
}
