//! Project files (`turnpike.yaml`) and bare definitions loaded with `load_project`.

use std::path::{Path, PathBuf};

use turnpike_model::rest::{IntegrationType, MethodSetting};
use turnpike_model::{load_project, LoadOptions, Severity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn opts(stage: Option<&str>) -> LoadOptions {
    LoadOptions {
        stage: stage.map(str::to_string),
    }
}

#[test]
fn project_file_fields() {
    let path = fixture("project/turnpike.yaml");
    let p = load_project(&path, &opts(None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.source, path);
    assert_eq!(p.listen.as_deref(), Some("127.0.0.1:4567"));
    assert_eq!(p.region, "eu-west-1");
    assert_eq!(p.account_id, "000000000042");
    assert_eq!(p.functions.len(), 1);
    let f = &p.functions[0];
    assert_eq!(f.name, "hello");
    assert_eq!(f.config.handler.as_deref(), Some("index.handler"));
    assert_eq!(f.config.timeout, 10.0);
    assert_eq!(
        f.config.command.as_ref().map(|c| c.args()),
        Some(vec![
            "python3".to_string(),
            "-m".into(),
            "awslambdaric".into(),
            "index.handler".into()
        ])
    );
    assert_eq!(f.config.working_dir.as_deref(), path.parent());
    assert_eq!(p.apis.len(), 2);

    // Paths are relative to the project file.
    let pet = &p.apis[0];
    assert_eq!(pet.source, fixture("project/apis/petstore.yaml"));
    assert_eq!(pet.definition.api.id, "petstore01");
    assert_eq!(pet.definition.api.name, "PetStore");
    let names: Vec<&str> = pet.stages.iter().map(|s| s.stage_name.as_str()).collect();
    assert_eq!(names, ["dev", "prod"]);

    let dev = &pet.stages[0];
    assert_eq!(dev.description.as_deref(), Some("development"));
    assert_eq!(dev.variables["backendHost"], "localhost:8080");
    assert_eq!(dev.variables["port"], "8080", "YAML numbers become strings");
    assert!(dev.tracing_enabled);
    let log = dev.access_log_settings.as_ref().expect("access log");
    assert_eq!(log.format, "$context.requestId $context.status");
    assert_eq!(
        log.destination_arn.as_deref().map(PathBuf::from),
        Some(fixture("project/logs/access.log"))
    );
    // Stage throttling → `*/*`; per-method entries are filled from `*/*` like AWS does.
    assert_eq!(
        dev.method_settings["*/*"],
        MethodSetting {
            throttling_rate_limit: Some(100.0),
            throttling_burst_limit: Some(50),
            ..MethodSetting::default()
        }
    );
    assert_eq!(
        dev.method_settings["/pets/GET"],
        MethodSetting {
            throttling_rate_limit: Some(10.0),
            throttling_burst_limit: Some(50),
            ..MethodSetting::default()
        }
    );
    assert_eq!(
        dev.method_settings["/pets/{id}/GET"],
        MethodSetting {
            metrics_enabled: true,
            throttling_rate_limit: Some(100.0),
            throttling_burst_limit: Some(50),
            ..MethodSetting::default()
        }
    );
    assert_eq!(
        dev.effective_method_setting("/pets", "POST")
            .throttling_rate_limit,
        Some(100.0)
    );
    assert_eq!(
        dev.effective_method_setting("/pets", "GET")
            .throttling_rate_limit,
        Some(10.0)
    );

    let prod = &pet.stages[1];
    let canary = prod.canary_settings.as_ref().expect("canary");
    assert_eq!(canary.percent_traffic, 10.0);
    assert_eq!(
        canary.stage_variable_overrides["backendHost"],
        "canary:8080"
    );

    // No `stages:` → the definition's basePath names the one stage; region/account substituted.
    let orders = &p.apis[1];
    assert_eq!(orders.stages.len(), 1);
    assert_eq!(orders.stages[0].stage_name, "prod");
    let m = &orders.definition.resources[1].resource_methods["GET"];
    let i = m.method_integration.as_ref().expect("integration");
    assert_eq!(i.kind, IntegrationType::Mock);
    assert_eq!(
        i.uri.as_deref(),
        Some("arn:aws:apigateway:eu-west-1:s3:path/bucket")
    );

    // Warnings: canary (not emulated), and nothing is an error.
    assert!(p.warnings.iter().all(|w| w.severity == Severity::Warning));
    let w = p
        .warnings
        .iter()
        .find(|w| w.message.contains("canary releases"))
        .expect("canary warning");
    assert_eq!(
        (w.line, w.column, w.pointer.as_str()),
        (Some(22), Some(9), "/apis/0/stages/1/canarySettings")
    );

    // Positions of the definition survive for the gateway's own diagnostics.
    let d = pet.diagnostic(Severity::Error, "/paths/~1pets/get", "x");
    assert_eq!((d.line, d.column), (Some(12), Some(5)));
    assert_eq!(
        turnpike_model::ProjectApi::method_pointer("/pets", "ANY"),
        "/paths/~1pets/x-amazon-apigateway-any-method"
    );
}

#[test]
fn stage_option_filters_project_stages() {
    let path = fixture("project/turnpike.yaml");
    let p = load_project(&path, &opts(Some("prod"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis[0].stages.len(), 1);
    assert_eq!(p.apis[0].stages[0].stage_name, "prod");
    // The API without `stages:` takes the --stage name.
    assert_eq!(p.apis[1].stages[0].stage_name, "prod");
    let p = load_project(&path, &opts(Some("dev"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis[0].stages[0].stage_name, "dev");
}

#[test]
fn bad_project_reports_every_error_with_positions() {
    let path = fixture("project/bad-project.yaml");
    let err = load_project(&path, &opts(None)).expect_err("errors");
    let got: Vec<(Option<usize>, Option<usize>, &str)> = err
        .errors()
        .map(|d| (d.line, d.column, d.pointer.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(1), Some(1), "/listen"),
            (Some(2), Some(1), "/region"),
            (Some(5), Some(5), "/apis/0/stage"),
            (Some(6), Some(5), "/apis/0/id"),
            (Some(8), Some(9), "/apis/0/stages/0/name"),
            (Some(10), Some(9), "/apis/0/stages/1/variabels"),
            (Some(12), Some(11), "/apis/0/stages/1/variables/bad-name"),
            (Some(13), Some(11), "/apis/0/stages/1/variables/good"),
            (
                Some(15),
                Some(11),
                "/apis/0/stages/1/accessLogSettings/format"
            ),
            (
                Some(17),
                Some(11),
                "/apis/0/stages/1/methodSettings/~1nope~1GET"
            ),
            (
                Some(18),
                Some(11),
                "/apis/0/stages/1/methodSettings/~1pets~1DELETE"
            ),
            (
                Some(19),
                Some(25),
                "/apis/0/stages/1/methodSettings/~1pets~1GET/throttlingRateLimt"
            ),
            (Some(20), Some(11), "/apis/0/stages/1/methodSettings/*~1*"),
            (Some(22), Some(5), "/apis/1/definition"),
            (Some(23), Some(1), "/extra"),
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("unknown API key \"stage\" (did you mean \"stages\"?)"),
        "{text}"
    );
    assert!(
        text.contains("unknown stage key \"variabels\" (did you mean \"variables\"?)"),
        "{text}"
    );
    assert!(
        text.contains("resource \"/pets\" has no DELETE method (defined: GET, POST)"),
        "{text}"
    );
    assert!(text.contains("Access Log format must contain at least one of $context.requestId or $context.extendedRequestId"));
}

#[test]
fn errors_from_several_definitions_are_all_reported() {
    let path = fixture("project/broken/turnpike.yaml");
    let err = load_project(&path, &opts(None)).expect_err("errors");
    assert_eq!(err.errors().count(), 14);
    let files: std::collections::BTreeSet<_> = err.errors().map(|d| d.file.clone()).collect();
    assert_eq!(files.len(), 2);
    assert!(
        err.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning),
        "warnings are carried too"
    );
}

#[test]
fn same_title_needs_distinct_ids() {
    let path = fixture("project/same-title.yaml");
    let err = load_project(&path, &opts(None)).expect_err("errors");
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    let d = &err.diagnostics[0];
    assert_eq!(
        (d.line, d.column, d.pointer.as_str()),
        (Some(3), Some(5), "/apis/1")
    );
    assert!(d.message.contains("set a distinct `id`"));
}

#[test]
fn bare_definition_stage_defaults() {
    // OAS3: basePath server variable default.
    let p = load_project(&fixture("project/apis/petstore.yaml"), &opts(None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis[0].stages[0].stage_name, "v1");
    assert_eq!(p.region, "us-east-1");
    assert_eq!(p.account_id, "123456789012");
    assert!(p.listen.is_none() && p.functions.is_empty());
    // --stage wins.
    let p = load_project(&fixture("project/apis/petstore.yaml"), &opts(Some("qa")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis[0].stages[0].stage_name, "qa");
    // Swagger basePath: first segment.
    let p = load_project(&fixture("import/swagger2-small.yaml"), &opts(None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis[0].stages[0].stage_name, "v1");
    // Nothing: dev.
    let p = load_project(&fixture("import/oas3-small.json"), &opts(None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis[0].stages[0].stage_name, "dev");
    // Invalid --stage.
    let err = load_project(&fixture("import/oas3-small.json"), &opts(Some("a b")))
        .expect_err("bad stage");
    assert!(err.to_string().contains("--stage"), "{err}");
}

#[test]
fn deployment_checks() {
    let dir = std::env::temp_dir().join(format!("turnpike-model-project-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let f = dir.join("noint.yaml");
    std::fs::write(
        &f,
        "openapi: 3.0.1\ninfo: {title: t}\npaths:\n  /a:\n    get:\n      responses: {}\n",
    )
    .expect("write");
    let err = load_project(&f, &opts(None)).expect_err("no integration");
    let d = err.errors().next().expect("error");
    assert_eq!(
        (d.line, d.column, d.pointer.as_str()),
        (Some(5), Some(5), "/paths/~1a/get")
    );
    assert!(d.message.starts_with("No integration defined for method"));

    let f = dir.join("empty.yaml");
    std::fs::write(&f, "openapi: 3.0.1\ninfo: {title: t}\npaths: {}\n").expect("write");
    let err = load_project(&f, &opts(None)).expect_err("no methods");
    assert!(err
        .to_string()
        .contains("The REST API doesn't contain any methods"));

    let f = dir.join("p.yaml");
    std::fs::write(&f, "apis:\n  - definition: x.yaml\n    stages: []\n").expect("write");
    let err = load_project(&f, &opts(None)).expect_err("errors");
    assert!(
        err.to_string()
            .contains("stages must list at least one stage"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stage_option_in_project() {
    // PetStore has explicit stages without "nope": dropped with a warning. Orders has no
    // `stages:`, so its default stage takes the --stage name.
    let p = load_project(&fixture("project/turnpike.yaml"), &opts(Some("nope")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.apis.len(), 1);
    assert_eq!(p.apis[0].definition.api.name, "Orders");
    assert_eq!(p.apis[0].stages[0].stage_name, "nope");
    let w = p
        .warnings
        .iter()
        .find(|w| w.message.contains("has no stage \"nope\""))
        .expect("warning");
    assert_eq!(
        (w.line, w.column, w.pointer.as_str()),
        (Some(5), Some(5), "/apis/0")
    );

    // No API defines it at all: error.
    let dir = std::env::temp_dir().join(format!("turnpike-model-stageopt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let f = dir.join("turnpike.yaml");
    let def = fixture("project/apis/petstore.yaml");
    std::fs::write(
        &f,
        format!(
            "apis:\n  - definition: {}\n    stages: [{{name: dev}}]\n",
            def.display()
        ),
    )
    .expect("write");
    let err = load_project(&f, &opts(Some("nope"))).expect_err("no such stage");
    assert!(
        err.to_string()
            .contains("no API in the project defines this stage"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
