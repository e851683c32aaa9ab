//! `websocketApis:` in project files: the apigatewayv2 model they load into, and positioned
//! errors.

use turnpike_model::v2::{AuthorizationType, IntegrationType};
use turnpike_model::{load_project, LoadOptions, Severity};

fn load(text: &str) -> Result<turnpike_model::Project, Vec<turnpike_model::Diagnostic>> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("turnpike-ws-project-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("turnpike.yaml");
    std::fs::write(&path, text).expect("write");
    load_project(&path, &LoadOptions::default()).map_err(|e| e.diagnostics)
}

#[test]
fn loads_routes_integrations_and_stages() {
    let p = load(
        r#"
websocketApis:
  - name: chat
    id: chatapi001
    routeSelectionExpression: $request.body.action
    integrations:
      echo:
        integrationType: MOCK
        requestTemplates: {$default: '{"statusCode": 200}'}
        integrationResponses:
          $default: {responseTemplates: {$default: hi}}
          /4\d\d/: {}
    authorizers:
      auth: {authorizerType: REQUEST, authorizerUri: fn, identitySource: [route.request.header.Auth]}
    routes:
      $connect: {integration: {integrationType: AWS_PROXY, integrationUri: onconnect}, authorizer: auth, apiKeyRequired: true}
      echo: {integration: echo, routeResponseSelectionExpression: $default, routeResponses: {$default: {}}}
    stages:
      - name: prod
        variables: {backend: "127.0.0.1:8000"}
"#,
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    assert!(p.apis.is_empty());
    let ws = &p.websocket_apis[0];
    let def = &ws.definition;
    assert_eq!(def.api.api_id, "chatapi001");
    assert_eq!(def.api.route_selection_expression, "$request.body.action");
    assert_eq!(def.routes.len(), 2);
    let connect = def
        .routes
        .iter()
        .find(|r| r.route_key == "$connect")
        .expect("$connect");
    assert_eq!(connect.authorization_type, AuthorizationType::Custom);
    assert!(connect.api_key_required);
    let integ = def.route_integration(connect).expect("integration");
    assert_eq!(integ.integration_type, IntegrationType::AwsProxy);
    assert_eq!(integ.timeout_in_millis, 29_000);
    let echo = def
        .routes
        .iter()
        .find(|r| r.route_key == "echo")
        .expect("echo");
    assert_eq!(
        echo.route_response_selection_expression.as_deref(),
        Some("$default")
    );
    assert_eq!(
        def.route_responses[&echo.route_id][0].route_response_key,
        "$default"
    );
    let ei = def.route_integration(echo).expect("echo integration");
    assert_eq!(def.integration_responses[&ei.integration_id].len(), 2);
    assert_eq!(ws.stages[0].stage_variables["backend"], "127.0.0.1:8000");
    // AWS's JSON (apigatewayv2 camelCase).
    let json = serde_json::to_value(&def.api).expect("json");
    assert_eq!(json["protocolType"], "WEBSOCKET");
    assert_eq!(json["apiId"], "chatapi001");
}

#[test]
fn errors_are_positioned() {
    let d = load(
        r#"
websocketApis:
  - name: bad
    routes:
      $weird: {integration: {integrationType: MOCK}}
      send: {integration: sned}
      other: {integration: {integrationType: HTTP}, colour: blue}
    integrations:
      send: {integrationType: MOCK}
"#,
    )
    .expect_err("errors");
    let errors: Vec<_> = d.iter().filter(|d| d.severity == Severity::Error).collect();
    let find = |needle: &str| {
        errors
            .iter()
            .find(|d| d.message.contains(needle))
            .unwrap_or_else(|| panic!("no error containing {needle:?} in {errors:#?}"))
    };
    assert_eq!(
        find("routeSelectionExpression is required").pointer,
        "/websocketApis/0"
    );
    let e = find("invalid route key \"$weird\"");
    assert_eq!(
        (e.pointer.as_str(), e.line),
        ("/websocketApis/0/routes/$weird", Some(5))
    );
    let e = find("no integration named \"sned\"");
    assert!(e.message.contains("did you mean \"send\""), "{}", e.message);
    assert_eq!(e.line, Some(6));
    assert_eq!(
        find("integrationUri is required").pointer,
        "/websocketApis/0/routes/other/integration"
    );
    assert_eq!(find("unknown route key \"colour\"").line, Some(7));
}
