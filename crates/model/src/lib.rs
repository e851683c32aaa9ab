//! The API Gateway resource model, and the loaders that fill it: OpenAPI/Swagger import with the
//! `x-amazon-apigateway-*` extensions and Turnpike's project file (`turnpike.yaml`).
//!
//! One model, three faces: the importer, the management API and the exporter all speak these
//! types, whose serde form is AWS's own JSON.

pub mod access;
pub mod diagnostics;
pub mod functions;
pub mod ids;
mod load;
pub mod openapi;
mod project;
pub mod rest;
pub mod source;
pub mod unsupported;
pub mod v2;
pub mod validate;
mod walk;

pub use diagnostics::{Diagnostic, Severity};
pub use load::{import_openapi, load_project, LoadError, LoadOptions};
pub use unsupported::{
    unsupported_features, unsupported_stage_features, Feature, NOT_YET_EMULATED,
};

use std::path::PathBuf;

/// Defaults AWS would fill in; used in ARNs and `$context`.
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// A loaded project: every API with its stages, ready to compile into deployments.
#[derive(Debug, Clone)]
pub struct Project {
    /// The file that was loaded (project file or bare OpenAPI definition).
    pub source: PathBuf,
    /// Listen address from the project file, if it names one.
    pub listen: Option<String>,
    pub region: String,
    pub account_id: String,
    pub apis: Vec<ProjectApi>,
    /// WebSocket APIs (`websocketApis:` in the project file).
    pub websocket_apis: Vec<v2::WebSocketProjectApi>,
    /// Everything Turnpike accepted but does not (yet) emulate, unknown extensions, and other
    /// findings that do not stop the project from serving.
    pub warnings: Vec<Diagnostic>,
    /// The project file's `functions:` (Lambda functions integrations resolve by name).
    pub functions: Vec<functions::FunctionDef>,
    /// The project file's `aws:` section (service endpoints and credentials).
    pub aws: functions::AwsSettings,
    /// API keys, usage plans, account throttle, IAM access keys, authorizer settings, data dir.
    pub access: access::AccessConfig,
}

#[derive(Debug, Clone)]
pub struct ProjectApi {
    /// The OpenAPI file this API was imported from.
    pub source: PathBuf,
    pub definition: rest::RestApiDefinition,
    pub stages: Vec<rest::Stage>,
    /// JSON pointer → line/column of the definition file, for positioning later diagnostics
    /// (see [`ProjectApi::diagnostic`]).
    pub source_map: source::SourceMap,
}
