//! Import of representative OpenAPI 3 and Swagger 2 documents, checked field by field.

use std::path::{Path, PathBuf};

use serde_json::json;
use turnpike_model::rest::*;
use turnpike_model::{import_openapi, Diagnostic, Severity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn import(name: &str) -> (RestApiDefinition, Vec<Diagnostic>) {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    match import_openapi(&path, &text) {
        Ok(x) => x,
        Err(d) => panic!(
            "{name} failed:\n{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn resource<'a>(def: &'a RestApiDefinition, path: &str) -> &'a Resource {
    def.resources
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no resource {path}"))
}

fn method<'a>(def: &'a RestApiDefinition, path: &str, m: &str) -> &'a Method {
    resource(def, path)
        .resource_methods
        .get(m)
        .unwrap_or_else(|| panic!("no method {m} {path}"))
}

fn integration<'a>(def: &'a RestApiDefinition, path: &str, m: &str) -> &'a Integration {
    method(def, path, m)
        .method_integration
        .as_ref()
        .expect("integration")
}

fn is_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[test]
fn oas3_api_level_fields() {
    let (def, _) = import("oas3-full.yaml");
    let api = &def.api;
    assert!(is_id(&api.id, 10));
    assert_eq!(api.name, "Full OAS3");
    assert_eq!(
        api.description.as_deref(),
        Some("Every extension Turnpike imports")
    );
    assert_eq!(api.version.as_deref(), Some("2.1"));
    assert_eq!(
        api.binary_media_types,
        ["image/png", "application/octet-stream"]
    );
    assert_eq!(api.api_key_source, ApiKeySource::Authorizer);
    assert_eq!(api.minimum_compression_size, Some(1024));
    assert!(api.disable_execute_api_endpoint);
    assert_eq!(api.endpoint_configuration.vpc_endpoint_ids, ["vpce-1"]);
    assert_eq!(api.endpoint_configuration.types, [EndpointType::Edge]);
    let policy = api.policy.as_ref().expect("policy");
    assert_eq!(
        policy["Statement"][0]["Resource"],
        json!(format!(
            "arn:aws:execute-api:us-east-1:123456789012:{}/*",
            api.id
        ))
    );
}

#[test]
fn oas3_ids_are_deterministic() {
    let (a, _) = import("oas3-full.yaml");
    let (b, _) = import("oas3-full.yaml");
    assert_eq!(a, b);
    let root = &a.resources[0];
    assert_eq!(root.path, "/");
    assert!(root.parent_id.is_none() && root.path_part.is_none());
    assert!(is_id(&root.id, 10));
    for r in &a.resources[1..] {
        assert!(is_id(&r.id, 6), "{}", r.id);
    }
    let mut ids: Vec<&str> = a.resources.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), a.resources.len());
}

#[test]
fn oas3_resource_tree() {
    let (def, _) = import("oas3-full.yaml");
    let paths: Vec<&str> = def.resources.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/", "/pets", "/pets/{petId}", "/files", "/files/{proxy+}"]
    );
    let files = resource(&def, "/files");
    assert!(
        files.resource_methods.is_empty(),
        "intermediate resource has no methods"
    );
    assert_eq!(
        files.parent_id.as_deref(),
        Some(def.resources[0].id.as_str())
    );
    let proxy = resource(&def, "/files/{proxy+}");
    assert_eq!(proxy.path_part.as_deref(), Some("{proxy+}"));
    assert_eq!(proxy.parent_id.as_deref(), Some(files.id.as_str()));
    assert_eq!(proxy.resource_methods.keys().collect::<Vec<_>>(), ["ANY"]);
    assert!(resource(&def, "/").resource_methods.contains_key("GET"));
}

#[test]
fn oas3_method_fields() {
    let (def, _) = import("oas3-full.yaml");
    let m = method(&def, "/pets", "GET");
    assert_eq!(m.http_method, "GET");
    assert_eq!(m.operation_name.as_deref(), Some("ListPets"));
    assert_eq!(m.authorization_type, AuthorizationType::None);
    assert!(m.api_key_required);
    let params: Vec<(&str, bool)> = m
        .request_parameters
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        params,
        [
            ("method.request.header.X-Trace", false),
            ("method.request.querystring.page", true),
            ("method.request.querystring.type", false)
        ]
    );
    let params_validator = def
        .request_validators
        .iter()
        .find(|v| v.name == "params")
        .expect("validator");
    assert!(
        params_validator.validate_request_parameters && !params_validator.validate_request_body
    );
    assert_eq!(
        m.request_validator_id.as_deref(),
        Some(params_validator.id.as_str())
    );
    let r200 = &m.method_responses["200"];
    assert_eq!(r200.status_code, "200");
    assert_eq!(
        r200.response_parameters
            .get("method.response.header.Access-Control-Allow-Origin"),
        Some(&false)
    );
    assert_eq!(
        r200.response_models
            .get("application/json")
            .map(String::as_str),
        Some("Pets")
    );
    assert!(m.method_responses.contains_key("500"));

    // Root default validator applies where the operation names none.
    let all = def
        .request_validators
        .iter()
        .find(|v| v.name == "all")
        .expect("validator");
    let post = method(&def, "/pets", "POST");
    assert_eq!(post.request_validator_id.as_deref(), Some(all.id.as_str()));
    assert_eq!(
        post.request_models
            .get("application/json")
            .map(String::as_str),
        Some("NewPet")
    );
    assert_eq!(post.authorization_type, AuthorizationType::Custom);
    let auth = def
        .authorizers
        .iter()
        .find(|a| a.name == "MyAuthorizer")
        .expect("authorizer");
    assert_eq!(post.authorizer_id.as_deref(), Some(auth.id.as_str()));

    let get_pet = method(&def, "/pets/{petId}", "GET");
    assert_eq!(
        get_pet.request_parameters.get("method.request.path.petId"),
        Some(&true),
        "path params always required"
    );
    assert_eq!(
        get_pet.authorization_type,
        AuthorizationType::CognitoUserPools
    );
    assert_eq!(get_pet.authorization_scopes, ["pets/read", "pets/write"]);

    assert_eq!(
        method(&def, "/pets/{petId}", "DELETE").authorization_type,
        AuthorizationType::AwsIam
    );
    assert_eq!(
        method(&def, "/files/{proxy+}", "ANY").authorization_type,
        AuthorizationType::AwsIam
    );
}

#[test]
fn oas3_integrations() {
    let (def, _) = import("oas3-full.yaml");
    let i = integration(&def, "/pets", "GET");
    assert_eq!(i.kind, IntegrationType::Http);
    assert_eq!(i.http_method.as_deref(), Some("GET"));
    assert_eq!(
        i.uri.as_deref(),
        Some("http://petstore.example.com/petstore/pets")
    );
    assert_eq!(i.passthrough_behavior, PassthroughBehavior::WhenNoTemplates);
    assert_eq!(i.content_handling, Some(ContentHandling::ConvertToText));
    assert_eq!(i.timeout_in_millis, 5000);
    assert_eq!(i.cache_key_parameters, ["method.request.querystring.page"]);
    assert_eq!(
        i.cache_namespace.as_deref(),
        Some(resource(&def, "/pets").id.as_str())
    );
    assert_eq!(i.request_parameters.len(), 6);
    assert_eq!(
        i.request_parameters["integration.request.header.x-static"],
        "'fixed'"
    );
    assert_eq!(
        i.request_parameters["integration.request.header.x-stage"],
        "stageVariables.tier"
    );
    // Template order is kept (text/plain first).
    let cts: Vec<&str> = i
        .request_templates
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(cts, ["text/plain", "application/json"]);
    assert_eq!(
        i.request_templates[1].1,
        r#"{"type": "$input.params('type')"}"#
    );
    // Responses in declaration order; `default` has no selection pattern.
    assert_eq!(i.integration_responses.len(), 2);
    assert_eq!(
        i.integration_responses[0].selection_pattern.as_deref(),
        Some("5\\d{2}")
    );
    assert_eq!(i.integration_responses[0].status_code, "500");
    assert!(i.integration_responses[1].is_default());
    assert_eq!(i.integration_responses[1].status_code, "200");
    assert_eq!(
        i.integration_responses[1].response_parameters
            ["method.response.header.Access-Control-Allow-Origin"],
        "'*'"
    );
    assert_eq!(
        i.integration_responses[1].content_handling,
        Some(ContentHandling::ConvertToText)
    );

    let root = integration(&def, "/", "GET");
    assert_eq!(root.kind, IntegrationType::Mock);
    assert_eq!(root.http_method, None);
    assert_eq!(root.timeout_in_millis, DEFAULT_TIMEOUT_MILLIS);
    assert_eq!(root.passthrough_behavior, PassthroughBehavior::WhenNoMatch);
    assert_eq!(
        root.integration_responses[0].status_code, "200",
        "YAML integer status accepted"
    );

    // ${AWS::...} substitution.
    let lambda = integration(&def, "/pets", "POST");
    assert_eq!(lambda.kind, IntegrationType::AwsProxy);
    assert_eq!(
        lambda.uri.as_deref(),
        Some("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:create/invocations")
    );
    assert_eq!(
        lambda.credentials.as_deref(),
        Some("arn:aws:iam::123456789012:role/apigw")
    );

    let vpc = integration(&def, "/pets/{petId}", "GET");
    assert_eq!(vpc.kind, IntegrationType::HttpProxy);
    assert_eq!(vpc.http_method.as_deref(), Some("ANY"));
    assert_eq!(vpc.connection_type, ConnectionType::VpcLink);
    assert_eq!(
        vpc.connection_id.as_deref(),
        Some("${stageVariables.vpcLink}")
    );
    assert_eq!(
        vpc.tls_config,
        Some(TlsConfig {
            insecure_skip_verification: true
        })
    );
    assert_eq!(
        vpc.request_parameters["integration.request.path.id"],
        "method.request.path.petId"
    );

    assert_eq!(
        integration(&def, "/files/{proxy+}", "ANY").kind,
        IntegrationType::HttpProxy
    );
}

#[test]
fn oas3_models_authorizers_gateway_responses() {
    let (def, _) = import("oas3-full.yaml");
    let names: Vec<&str> = def.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Pets", "Pet", "NewPet"]);
    let pets = &def.models[0];
    assert!(is_id(&pets.id, 6));
    assert_eq!(pets.content_type, "application/json");
    let schema: serde_json::Value =
        serde_json::from_str(pets.schema.as_deref().expect("schema")).expect("json");
    assert_eq!(
        schema,
        json!({"type": "array", "items": {"$ref": format!("https://apigateway.amazonaws.com/restapis/{}/models/Pet", def.api.id)}})
    );

    assert_eq!(def.authorizers.len(), 2);
    let token = def
        .authorizers
        .iter()
        .find(|a| a.name == "MyAuthorizer")
        .expect("authorizer");
    assert_eq!(token.kind, AuthorizerType::Token);
    assert_eq!(token.auth_type.as_deref(), Some("custom"));
    assert_eq!(
        token.identity_source.as_deref(),
        Some("method.request.header.Auth")
    );
    assert_eq!(token.authorizer_result_ttl_in_seconds, Some(300));
    assert_eq!(
        token.identity_validation_expression.as_deref(),
        Some("Bearer .*")
    );
    assert!(token
        .authorizer_uri
        .as_deref()
        .is_some_and(|u| u.ends_with(":function:auth/invocations")));
    let cognito = def
        .authorizers
        .iter()
        .find(|a| a.name == "CognitoPool")
        .expect("authorizer");
    assert_eq!(cognito.kind, AuthorizerType::CognitoUserPools);
    assert_eq!(cognito.provider_arns.len(), 1);

    assert_eq!(def.gateway_responses.len(), 2);
    let d4 = &def.gateway_responses[0];
    assert_eq!(d4.response_type, GatewayResponseType::Default4xx);
    assert_eq!(d4.status_code, None);
    assert!(!d4.default_response);
    assert_eq!(
        d4.response_parameters["gatewayresponse.header.Access-Control-Allow-Origin"],
        "'*'"
    );
    assert_eq!(
        d4.response_templates,
        [(
            "application/json".to_string(),
            "{\"message\":$context.error.messageString}".to_string()
        )]
    );
    assert_eq!(
        def.gateway_responses[1].response_type,
        GatewayResponseType::MissingAuthenticationToken
    );
    assert_eq!(def.gateway_responses[1].status_code.as_deref(), Some("404"));
}

#[test]
fn oas3_warnings_list_unsupported_features_and_unknown_extensions() {
    let (_, warnings) = import("oas3-full.yaml");
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    let find = |needle: &str| {
        warnings
            .iter()
            .find(|w| w.message.contains(needle))
            .unwrap_or_else(|| panic!("no warning {needle:?}"))
    };
    let w = find("unknown extension x-amazon-apigateway-unknown-thing");
    assert_eq!(
        (w.line, w.column, w.pointer.as_str()),
        (Some(211), Some(1), "/x-amazon-apigateway-unknown-thing")
    );
    // AWS_PROXY is emulated: no warning for the Lambda proxy method.
    assert!(!warnings
        .iter()
        .any(|w| w.message.contains("AWS_PROXY (Lambda proxy) integrations")));
    // API keys, Lambda, Cognito and IAM authorization and resource policies are emulated.
    for gone in [
        "Lambda (CUSTOM) authorizers",
        "API keys (apiKeyRequired)",
        "Cognito user pool authorizers",
        "AWS_IAM (SigV4) authorization",
        "resource policies",
    ] {
        assert!(!warnings.iter().any(|w| w.message.contains(gone)), "{gone}");
    }
    for needle in [
        "request validation",
        "caching",
        "VPC links",
        "minimumCompressionSize",
        "documentation parts",
    ] {
        find(needle);
    }
}

#[test]
fn swagger2_json_export() {
    let (def, warnings) = import("swagger2-export.json");
    assert_eq!(def.api.name, "PetStore");
    assert_eq!(def.api.version.as_deref(), Some("2016-10-13T23:04:43Z"));
    assert_eq!(
        def.api.endpoint_configuration.types,
        [EndpointType::Regional]
    );
    let paths: Vec<&str> = def.resources.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/", "/pets", "/pets/{petId}"],
        "basePath is ignored for resources (basepath=ignore)"
    );

    let get = method(&def, "/pets", "GET");
    assert_eq!(get.request_parameters.len(), 2);
    assert_eq!(
        get.method_responses["200"].response_models["application/json"],
        "Pets"
    );
    let i = integration(&def, "/pets", "GET");
    // The non-string requestParameters value is dropped with AWS's warning text.
    assert_eq!(i.request_parameters.len(), 2);
    let expected = "Invalid format for 'requestParameters'. Expected type string for property 'integration.request.header.nothing' of resource '/pets' and method 'GET' but got 'true'";
    let w = warnings
        .iter()
        .find(|w| w.message == expected)
        .expect("AWS warning");
    assert_eq!(w.pointer, "/paths/~1pets/get/x-amazon-apigateway-integration/requestParameters/integration.request.header.nothing");
    assert_eq!((w.line, w.column), (Some(34), Some(13)));
    assert_eq!(def.api.warnings, [expected]);

    let post = method(&def, "/pets", "POST");
    assert_eq!(post.operation_name.as_deref(), Some("CreatePet"));
    assert_eq!(post.request_models["application/json"], "NewPet");
    assert_eq!(
        post.method_responses["200"].response_models["application/json"],
        "NewPetResponse"
    );

    let names: Vec<&str> = def.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["Pets", "Pet", "NewPet", "PetType", "NewPetResponse"]
    );
    let new_pet: serde_json::Value =
        serde_json::from_str(def.models[2].schema.as_deref().expect("schema")).expect("json");
    assert_eq!(
        new_pet["properties"]["type"]["$ref"],
        json!(format!(
            "https://apigateway.amazonaws.com/restapis/{}/models/PetType",
            def.api.id
        ))
    );

    let by_id = integration(&def, "/pets/{petId}", "GET");
    assert_eq!(
        by_id.uri.as_deref(),
        Some("http://petstore.execute-api.us-east-1.amazonaws.com/petstore/pets/{petId}")
    );
    assert_eq!(
        by_id.request_parameters["integration.request.path.petId"],
        "method.request.path.petId"
    );
}

#[test]
fn swagger2_yaml_small() {
    let (def, warnings) = import("swagger2-small.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    let put = method(&def, "/items/{id}", "PUT");
    assert!(put.request_parameters["method.request.path.id"]);
    // Inline body schema → generated model.
    let model = &put.request_models["application/json"];
    assert!(model.starts_with("MODEL") && model.len() == 11, "{model}");
    assert!(def.models.iter().any(|m| &m.name == model));
    assert!(put.method_responses.contains_key("204"));
    assert_eq!(
        integration(&def, "/items/{id}", "PUT").integration_responses[0].status_code,
        "204"
    );
    assert_eq!(resource(&def, "/items").resource_methods.len(), 0);
}

#[test]
fn oas3_json_small_with_stage_variables() {
    let (def, warnings) = import("oas3-small.json");
    assert!(warnings.is_empty(), "{warnings:?}");
    let i = integration(&def, "/path1", "GET");
    assert_eq!(i.kind, IntegrationType::HttpProxy);
    assert_eq!(i.http_method.as_deref(), Some("POST"));
    assert_eq!(i.uri.as_deref(), Some("https://${stageVariables.TestHost}/${stageVariables.testPath}?${stageVariables.querystring}"));
}

#[test]
fn json_and_yaml_forms_import_identically() {
    let yaml = "openapi: 3.0.1\ninfo: {title: Same, version: '1'}\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration: {type: mock, requestTemplates: {application/json: '{\"statusCode\": 200}'}}\n";
    let json = r#"{"openapi": "3.0.1", "info": {"title": "Same", "version": "1"}, "paths": {"/a": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}}}}}}"#;
    let (a, _) = import_openapi(Path::new("a.yaml"), yaml).expect("yaml");
    let (b, _) = import_openapi(Path::new("a.json"), json).expect("json");
    assert_eq!(a, b);
}

#[test]
fn definition_round_trips_through_serde() {
    let (def, _) = import("oas3-full.yaml");
    let text = serde_json::to_string(&def).expect("serialise");
    let back: RestApiDefinition = serde_json::from_str(&text).expect("deserialise");
    assert_eq!(back, def);
}

#[test]
fn unsupported_table_drives_warnings() {
    let (def, _) = import("oas3-full.yaml");
    let uses = turnpike_model::unsupported_features(&def);
    assert!(uses.iter().all(|u| !u.feature.is_emulated()));
    // AWS_PROXY is emulated now: the definition's Lambda proxy methods draw no warning.
    assert!(!uses
        .iter()
        .any(|u| u.feature == turnpike_model::Feature::AwsProxyIntegration));
}

/// Above 29 s AWS wants a raised quota: served as written, with a warning; above 300 s it is
/// an error (bad_definitions.rs).
#[test]
fn raised_integration_timeouts_load_with_a_warning() {
    let text = r#"{
      "openapi": "3.0.1",
      "info": {"title": "Slow", "version": "1"},
      "paths": {"/slow": {"get": {
        "responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {
          "type": "http_proxy", "httpMethod": "GET", "uri": "http://127.0.0.1:9/x",
          "timeoutInMillis": 120000
        }
      }}}
    }"#;
    let (def, warnings) = import_openapi(Path::new("slow.json"), text).expect("loads");
    let integration = method(&def, "/slow", "GET")
        .method_integration
        .as_ref()
        .expect("integration");
    assert_eq!(integration.timeout_in_millis, 120_000);
    let w = warnings
        .iter()
        .find(|w| w.message.contains("raised integration timeout quota"))
        .expect("a warning");
    assert_eq!(
        w.pointer,
        "/paths/~1slow/get/x-amazon-apigateway-integration/timeoutInMillis"
    );
}
