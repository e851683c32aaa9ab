//! Features the model accepts but the gateway does not emulate yet.
//!
//! **This is the one table to shrink** as features land in the gateway: delete the feature's line
//! from [`NOT_YET_EMULATED`] and every warning about it disappears (the loaders call
//! [`unsupported_features`] / [`unsupported_stage_features`] and turn each finding into a
//! warning with a source position).

use crate::rest::{AuthorizationType, ConnectionType, IntegrationType, RestApiDefinition, Stage};

/// A feature that can be configured but may not be emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Methods with `authorizationType: CUSTOM` (Lambda authorizers).
    LambdaAuthorizer,
    /// Methods with `authorizationType: COGNITO_USER_POOLS`.
    CognitoAuthorizer,
    /// Methods with `authorizationType: AWS_IAM` (SigV4).
    IamAuthorization,
    /// `apiKeyRequired: true`.
    ApiKeyRequired,
    /// `x-amazon-apigateway-policy`.
    ResourcePolicy,
    /// Request validators attached to methods.
    RequestValidation,
    /// `AWS` integrations (AWS service actions, Lambda custom integrations).
    AwsIntegration,
    /// `AWS_PROXY` integrations (Lambda proxy).
    AwsProxyIntegration,
    /// Integration `cacheKeyParameters` and stage/method caching settings.
    Caching,
    /// `connectionType: VPC_LINK`.
    VpcLink,
    /// `minimumCompressionSize`.
    MinimumCompressionSize,
    /// Stage `canarySettings`.
    CanaryRelease,
}

/// The features the gateway does not emulate yet. Remove a line when the feature lands.
pub const NOT_YET_EMULATED: &[Feature] = &[
    Feature::RequestValidation,
    Feature::Caching,
    Feature::VpcLink,
    Feature::MinimumCompressionSize,
    Feature::CanaryRelease,
];

impl Feature {
    pub fn describe(self) -> &'static str {
        match self {
            Feature::LambdaAuthorizer => "Lambda (CUSTOM) authorizers",
            Feature::CognitoAuthorizer => "Cognito user pool authorizers",
            Feature::IamAuthorization => "AWS_IAM (SigV4) authorization",
            Feature::ApiKeyRequired => "API keys (apiKeyRequired)",
            Feature::ResourcePolicy => "resource policies (x-amazon-apigateway-policy)",
            Feature::RequestValidation => "request validation",
            Feature::AwsIntegration => "AWS integrations",
            Feature::AwsProxyIntegration => "AWS_PROXY (Lambda proxy) integrations",
            Feature::Caching => "caching",
            Feature::VpcLink => "VPC links (connectionType VPC_LINK)",
            Feature::MinimumCompressionSize => "response compression (minimumCompressionSize)",
            Feature::CanaryRelease => "canary releases (canarySettings)",
        }
    }

    pub fn is_emulated(self) -> bool {
        !NOT_YET_EMULATED.contains(&self)
    }
}

/// Where a not-yet-emulated feature is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// The API as a whole.
    Api,
    /// A method: resource path and HTTP method.
    Method { path: String, http_method: String },
    /// A method's integration.
    Integration { path: String, http_method: String },
    /// A stage.
    Stage { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedUse {
    pub feature: Feature,
    pub site: Site,
}

impl UnsupportedUse {
    /// `not yet emulated by Turnpike: ...; the setting is kept in the model but has no effect`.
    pub fn message(&self) -> String {
        let wher = match &self.site {
            Site::Api => "this API".to_string(),
            Site::Method { path, http_method } | Site::Integration { path, http_method } => {
                format!("{http_method} {path}")
            }
            Site::Stage { name } => format!("stage {name:?}"),
        };
        format!(
            "{} not yet emulated by Turnpike ({wher}); the setting is kept but has no effect",
            self.feature.describe()
        )
    }
}

/// Every use of a not-yet-emulated feature in an API definition.
pub fn unsupported_features(def: &RestApiDefinition) -> Vec<UnsupportedUse> {
    let mut out = Vec::new();
    let mut push = |feature: Feature, site: Site| {
        if !feature.is_emulated() {
            out.push(UnsupportedUse { feature, site });
        }
    };
    if def.api.policy.is_some() {
        push(Feature::ResourcePolicy, Site::Api);
    }
    if def.api.minimum_compression_size.is_some() {
        push(Feature::MinimumCompressionSize, Site::Api);
    }
    for r in &def.resources {
        for (m, method) in &r.resource_methods {
            let site = || Site::Method {
                path: r.path.clone(),
                http_method: m.clone(),
            };
            match method.authorization_type {
                AuthorizationType::None => {}
                AuthorizationType::Custom => push(Feature::LambdaAuthorizer, site()),
                AuthorizationType::CognitoUserPools => push(Feature::CognitoAuthorizer, site()),
                AuthorizationType::AwsIam => push(Feature::IamAuthorization, site()),
            }
            if method.api_key_required {
                push(Feature::ApiKeyRequired, site());
            }
            if method.request_validator_id.is_some() {
                push(Feature::RequestValidation, site());
            }
            if let Some(i) = &method.method_integration {
                let isite = || Site::Integration {
                    path: r.path.clone(),
                    http_method: m.clone(),
                };
                match i.kind {
                    IntegrationType::Aws => push(Feature::AwsIntegration, isite()),
                    IntegrationType::AwsProxy => push(Feature::AwsProxyIntegration, isite()),
                    _ => {}
                }
                if !i.cache_key_parameters.is_empty() {
                    push(Feature::Caching, isite());
                }
                if i.connection_type == ConnectionType::VpcLink {
                    push(Feature::VpcLink, isite());
                }
            }
        }
    }
    out
}

/// Every use of a not-yet-emulated feature in a stage's settings.
pub fn unsupported_stage_features(stage: &Stage) -> Vec<UnsupportedUse> {
    let mut out = Vec::new();
    let site = || Site::Stage {
        name: stage.stage_name.clone(),
    };
    if stage.canary_settings.is_some() && !Feature::CanaryRelease.is_emulated() {
        out.push(UnsupportedUse {
            feature: Feature::CanaryRelease,
            site: site(),
        });
    }
    let caching =
        stage.cache_cluster_enabled || stage.method_settings.values().any(|s| s.caching_enabled);
    if caching && !Feature::Caching.is_emulated() {
        out.push(UnsupportedUse {
            feature: Feature::Caching,
            site: site(),
        });
    }
    out
}
