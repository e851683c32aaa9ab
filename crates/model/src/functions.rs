//! Lambda functions and AWS service settings of a project file (`functions:` and `aws:`).
//!
//! A function either runs locally (a `command` Turnpike starts, speaking the Lambda Runtime API)
//! or remotely (`remote`: a Lambda Invoke endpoint, AWS Lambda itself or a compatible one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Lambda's defaults and limits.
pub const DEFAULT_TIMEOUT_SECS: f64 = 3.0;
pub const MAX_TIMEOUT_SECS: f64 = 900.0;
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Concurrency of a function without `reservedConcurrency` (Turnpike's local default; AWS's
/// account default is 1000).
pub const DEFAULT_CONCURRENCY: u32 = 10;

/// One function, by name (the name in `…:function:{name}` of integration URIs).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub name: String,
    pub config: FunctionConfig,
}

/// A command line: a string (split on whitespace) or a list of arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    Line(String),
    Args(Vec<String>),
}

impl CommandLine {
    pub fn args(&self) -> Vec<String> {
        match self {
            CommandLine::Line(s) => s.split_whitespace().map(str::to_string).collect(),
            CommandLine::Args(a) => a.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionConfig {
    /// Local execution: the process to start (`python3 -m awslambdaric app.handler`,
    /// `./bootstrap`, ...).
    #[serde(default)]
    pub command: Option<CommandLine>,
    /// Working directory of the process, relative to the project file (default: its directory).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Extra environment variables of the process.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `_HANDLER` for the process (informational for most runtimes).
    #[serde(default)]
    pub handler: Option<String>,
    /// `AWS_EXECUTION_ENV` suffix, e.g. `python3.12`.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Function timeout in seconds (1..900, default 3).
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Memory size in MB (128..10240, default 128): `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; a process
    /// whose resident memory exceeds it is replaced.
    #[serde(default = "default_memory")]
    pub memory_size: u32,
    /// Most instances running at once (default 10). Invocations beyond it wait in a queue of
    /// `queueSize`; beyond that they are throttled (429 `TooManyRequestsException`).
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// Invocations that may wait for a free instance (default 0: throttle at once, as Lambda's
    /// synchronous invocations are).
    #[serde(default)]
    pub queue_size: Option<u32>,
    /// Remote execution instead of a local process.
    #[serde(default)]
    pub remote: Option<RemoteFunction>,
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_memory() -> u32 {
    DEFAULT_MEMORY_MB
}

/// A Lambda Invoke endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteFunction {
    /// Base URL (`https://lambda.us-east-1.amazonaws.com`, the default for the region) or a full
    /// invoke URL containing `/invocations` (e.g. the Runtime Interface Emulator's
    /// `http://127.0.0.1:9000/2015-03-31/functions/function/invocations`), used as is.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Function name or ARN on the remote side (default: this function's name).
    #[serde(default)]
    pub function_name: Option<String>,
    /// Region for the default endpoint and SigV4 (default: the project's region).
    #[serde(default)]
    pub region: Option<String>,
    /// Credentials to sign with; default: the standard chain (environment, ~/.aws). Requests
    /// go unsigned when none are found.
    #[serde(default)]
    pub credentials: Option<AwsCredentials>,
}

/// Static AWS credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

/// The project's `aws:` section: how AWS service integrations are called.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsSettings {
    /// Service name (`sqs`, `dynamodb`, `s3`, ...) → endpoint URL replacing
    /// `https://{service}.{region}.amazonaws.com`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Integration `credentials` (role ARN) → keys to sign with; `default` applies to every
    /// other integration. Without an entry the standard chain is used.
    #[serde(default)]
    pub credentials: BTreeMap<String, AwsCredentials>,
}

impl FunctionConfig {
    /// Checks ranges; returns (relative pointer, message) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1.0..=MAX_TIMEOUT_SECS).contains(&self.timeout) {
            out.push((
                "timeout",
                format!("timeout {} must be 1..900 seconds", self.timeout),
            ));
        }
        if !(128..=10_240).contains(&self.memory_size) {
            out.push((
                "memorySize",
                format!("memorySize {} must be 128..10240 MB", self.memory_size),
            ));
        }
        if self.reserved_concurrency == Some(0) {
            out.push((
                "reservedConcurrency",
                "reservedConcurrency must be at least 1".to_string(),
            ));
        }
        match (&self.command, &self.remote) {
            (None, None) => out.push((
                "",
                "a function needs either `command` (run locally) or `remote` (invoke endpoint)"
                    .to_string(),
            )),
            (Some(_), Some(_)) => {
                out.push(("remote", "`command` and `remote` are exclusive".to_string()))
            }
            (Some(c), None) if c.args().is_empty() => {
                out.push(("command", "command is empty".to_string()))
            }
            _ => {}
        }
        out
    }

    /// Resolves `workingDir` against the project file's directory.
    pub fn resolve_paths(&mut self, project_file: &Path) {
        let base = project_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        self.working_dir = Some(match self.working_dir.take() {
            Some(p) if p.is_absolute() => p,
            Some(p) => base.join(p),
            None => base,
        });
    }
}

/// Function names as Lambda allows them (letters, digits, `-`, `_`; 1..64).
pub fn is_function_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses one value with serde, turning the error into a message.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}
