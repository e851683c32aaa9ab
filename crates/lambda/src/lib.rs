//! Turnpike's Lambda emulation.
//!
//! [`Functions`] is the registry built from a project's `functions:` section. Each function
//! either runs locally, as processes Turnpike starts and feeds through the Lambda Runtime API
//! (cold start on demand, warm reuse, one invocation per process at a time, scale-up to the
//! function's concurrency, then queue, then throttle; crashed, hung or oversized processes are
//! replaced), or remotely through a Lambda `Invoke` endpoint (AWS Lambda with SigV4, or any
//! compatible endpoint such as the Runtime Interface Emulator).
//!
//! The one call every caller uses is [`Functions::invoke`]: the gateway's Lambda integrations,
//! Lambda authorizers and WebSocket routes all go through it.

pub mod aws;
mod local;
mod log;
mod output;
mod remote;
mod runtime_api;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnpike_model::functions::{FunctionConfig, FunctionDef, DEFAULT_CONCURRENCY};

/// Lambda's synchronous request payload limit (6 MB).
pub const MAX_REQUEST_PAYLOAD: usize = 6 * 1024 * 1024;
/// Lambda's synchronous response payload limit, as Lambda's error message states it.
pub const MAX_RESPONSE_PAYLOAD: usize = 6_291_556;

/// Per-call options of [`Functions::invoke`]. All optional.
#[derive(Debug, Clone, Default)]
pub struct InvokeOptions {
    /// Alias or version (`…:function:name:alias`); reported in the invoked function ARN.
    pub qualifier: Option<String>,
    /// X-Ray trace header to hand to the function (`Lambda-Runtime-Trace-Id`); generated when
    /// absent.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context` (JSON text).
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity` (JSON text).
    pub cognito_identity: Option<String>,
    /// How long the caller waits at most (e.g. the integration timeout). The function keeps its
    /// own timeout; when the caller gives up first the call ends with
    /// [`InvokeError::CallerTimeout`] and the instance is replaced.
    pub caller_timeout: Option<Duration>,
}

/// What a synchronous invocation returned (Lambda's `Invoke` response).
#[derive(Debug, Clone)]
pub struct InvokeOutput {
    /// The Lambda request id (`x-amzn-RequestId` / `Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The function's result, or its error document when `function_error` is set.
    pub payload: Bytes,
    /// `X-Amz-Function-Error`: `Unhandled` for errors (exceptions, crashes, timeouts, oversized
    /// responses), as Lambda reports them.
    pub function_error: Option<String>,
    /// The invocation started a new instance.
    pub cold_start: bool,
}

impl InvokeOutput {
    /// The `errorMessage` of a function error document (`None` on success or when absent).
    pub fn error_message(&self) -> Option<String> {
        self.function_error.as_ref()?;
        match serde_json::from_slice::<serde_json::Value>(&self.payload) {
            Ok(serde_json::Value::Object(m)) => match m.get("errorMessage") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            },
            _ => None,
        }
    }
}

/// Why an invocation produced no function result (Lambda's own API errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// `ResourceNotFoundException` (404).
    #[error("Function not found: {0}")]
    NotFound(String),
    /// `RequestEntityTooLargeException` (413).
    #[error(
        "Request must be smaller than {limit} bytes for the InvokeFunction operation (got {size})"
    )]
    RequestTooLarge { size: usize, limit: usize },
    /// `TooManyRequestsException` (429): concurrency limit reached and the queue is full.
    #[error("Rate Exceeded.")]
    Throttled,
    /// The caller's `caller_timeout` passed before the function answered.
    #[error("the invocation did not complete within {0:?}")]
    CallerTimeout(Duration),
    /// Turnpike is shutting down.
    #[error("function {0} is shutting down")]
    ShuttingDown(String),
    /// The function could not be started (bad command, working directory, ...).
    #[error("function {name} could not be started: {reason}")]
    StartFailed { name: String, reason: String },
    /// A remote endpoint answered with a Lambda service error.
    #[error("Lambda service error {status}: {body}")]
    Service { status: u16, body: String },
    /// A remote endpoint could not be reached or signed for.
    #[error("cannot reach the Lambda endpoint: {0}")]
    Transport(String),
    /// The invocation task ended abnormally (a bug).
    #[error("the invocation failed: {0}")]
    Internal(String),
}

impl InvokeError {
    /// The HTTP status Lambda's `Invoke` API answers with.
    pub fn status(&self) -> u16 {
        match self {
            InvokeError::NotFound(_) => 404,
            InvokeError::RequestTooLarge { .. } => 413,
            InvokeError::Throttled => 429,
            InvokeError::Service { status, .. } => *status,
            _ => 500,
        }
    }
}

/// Errors building the registry.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("function {name}: {reason}")]
    Config { name: String, reason: String },
}

/// Region and account used in ARNs and the functions' environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub region: String,
    pub account_id: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: turnpike_model::DEFAULT_REGION.into(),
            account_id: turnpike_model::DEFAULT_ACCOUNT_ID.into(),
        }
    }
}

enum Backend {
    Local(local::Pool),
    Remote(Box<remote::Remote>),
}

struct Function {
    backend: Backend,
    /// What it was built from: a reload keeps the function (and its warm processes) when this
    /// is unchanged.
    config: FunctionConfig,
}

impl Function {
    /// Lets the invocations in flight finish (at most the function's timeout plus a margin, or
    /// until `now` is cancelled), then stops the function's processes.
    async fn retire(&self, now: CancellationToken) {
        if let Backend::Local(p) = &self.backend {
            tokio::select! {
                _ = p.drained() => {}
                _ = now.cancelled() => {}
            }
            p.shutdown().await;
        }
    }
}

/// One generation of the registry: what a project file defines.
struct Table {
    functions: HashMap<String, Arc<Function>>,
    settings: Settings,
}

/// The function registry: every function of the project, by name.
///
/// A reload ([`Functions::reload`]) builds a new generation and swaps it in; invocations that
/// already started finish on the function they found, whose processes are stopped once they
/// are done. Callers keep one `Arc<Functions>` for the life of the gateway.
pub struct Functions {
    table: RwLock<Arc<Table>>,
    /// Retiring generations' drain-then-stop tasks.
    retiring: TaskTracker,
    /// Cancelled by [`Functions::shutdown`]: retiring functions stop without waiting.
    stopping: CancellationToken,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions")
            .field("names", &self.names())
            .finish()
    }
}

/// What [`Functions::reload`] did, by function name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// New or changed: fresh instances start on their next invocation.
    pub started: Vec<String>,
    /// Unchanged: warm processes kept.
    pub kept: Vec<String>,
    /// Changed or removed: processes stop once their invocations in flight are done.
    pub retired: Vec<String>,
}

/// A parsed function reference: a name, `name:qualifier`, or a (partial) Lambda ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionRef {
    pub fn parse(s: &str) -> FunctionRef {
        let rest = match s.find(":function:") {
            Some(i) => &s[i + ":function:".len()..],
            None => s,
        };
        match rest.split_once(':') {
            Some((n, q)) => FunctionRef {
                name: n.to_string(),
                qualifier: Some(q.to_string()).filter(|q| !q.is_empty()),
            },
            None => FunctionRef {
                name: rest.to_string(),
                qualifier: None,
            },
        }
    }
}

impl Functions {
    /// A registry with no functions (every invoke answers [`InvokeError::NotFound`]).
    pub fn empty() -> Self {
        Functions::from_table(Table {
            functions: HashMap::new(),
            settings: Settings::default(),
        })
    }

    fn from_table(table: Table) -> Self {
        Functions {
            table: RwLock::new(Arc::new(table)),
            retiring: TaskTracker::new(),
            stopping: CancellationToken::new(),
        }
    }

    /// Builds the registry. Nothing starts yet: local processes start on their first
    /// invocation. Must be called inside a Tokio runtime.
    pub fn new(defs: &[FunctionDef], settings: Settings) -> Result<Self, LambdaError> {
        let (table, _) = build_table(defs, settings, None)?;
        Ok(Functions::from_table(table))
    }

    /// The current generation.
    fn current(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the registry with the functions of `defs` (a reloaded project file). Unchanged
    /// functions keep their warm processes; changed and removed ones are retired: their
    /// invocations in flight finish, then their processes stop. On error nothing changes.
    pub fn reload(
        &self,
        defs: &[FunctionDef],
        settings: Settings,
    ) -> Result<ReloadSummary, LambdaError> {
        let old = self.current();
        let (table, mut summary) = build_table(defs, settings, Some(&old))?;
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        let new = self.current();
        for (name, f) in &old.functions {
            let kept = new.functions.get(name).is_some_and(|n| Arc::ptr_eq(n, f));
            if !kept {
                summary.retired.push(name.clone());
                let f = f.clone();
                let now = self.stopping.clone();
                self.retiring.spawn(async move { f.retire(now).await });
            }
        }
        summary.started.sort();
        summary.kept.sort();
        summary.retired.sort();
        Ok(summary)
    }

    pub fn settings(&self) -> Settings {
        self.current().settings.clone()
    }

    /// Whether a function of this name (or ARN) exists.
    pub fn contains(&self, function: &str) -> bool {
        self.current()
            .functions
            .contains_key(&FunctionRef::parse(function).name)
    }

    /// Function names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.current().functions.keys().cloned().collect();
        v.sort();
        v
    }

    /// `arn:aws:lambda:{region}:{account}:function:{name}`.
    pub fn arn(&self, name: &str) -> String {
        arn_of(&self.current().settings, name)
    }

    /// Invokes `function` synchronously (`RequestResponse`) with a JSON `payload`.
    ///
    /// `function` is a name, `name:qualifier` or a Lambda function ARN. Function failures
    /// (exceptions, crashes, timeouts, oversized responses) are `Ok` with
    /// [`InvokeOutput::function_error`] set, as Lambda reports them; `Err` is for calls Lambda
    /// itself refuses (not found, payload too large, throttled, ...).
    pub async fn invoke(
        &self,
        function: &str,
        payload: Bytes,
        opts: InvokeOptions,
    ) -> Result<InvokeOutput, InvokeError> {
        let r = FunctionRef::parse(function);
        let table = self.current();
        let Some(f) = table.functions.get(&r.name) else {
            return Err(InvokeError::NotFound(arn_of(&table.settings, &r.name)));
        };
        if payload.len() > MAX_REQUEST_PAYLOAD {
            return Err(InvokeError::RequestTooLarge {
                size: payload.len(),
                limit: MAX_REQUEST_PAYLOAD,
            });
        }
        let mut opts = opts;
        if opts.qualifier.is_none() {
            opts.qualifier = r.qualifier;
        }
        match &f.backend {
            Backend::Local(_) => {
                // Its own task: a caller that goes away (client disconnect) must not abort the
                // invocation, which would kill a healthy instance; like Lambda, the invocation
                // runs to its end and the instance stays warm.
                let f = f.clone();
                let task = tokio::spawn(async move {
                    match &f.backend {
                        Backend::Local(p) => p.invoke(payload, opts).await,
                        Backend::Remote(rm) => rm.invoke(payload, opts).await,
                    }
                });
                task.await
                    .unwrap_or_else(|e| Err(InvokeError::Internal(e.to_string())))
            }
            Backend::Remote(rm) => rm.invoke(payload, opts).await,
        }
    }

    /// Local processes currently alive (all functions).
    pub fn running_processes(&self) -> usize {
        self.current()
            .functions
            .values()
            .map(|f| match &f.backend {
                Backend::Local(p) => p.running(),
                Backend::Remote(_) => 0,
            })
            .sum()
    }

    /// Stops every local process (process group kill) and waits until they are gone. Later
    /// invocations answer [`InvokeError::ShuttingDown`].
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        for f in self.current().functions.values() {
            if let Backend::Local(p) = &f.backend {
                p.shutdown().await;
            }
        }
        self.retiring.close();
        self.retiring.wait().await;
        // The processes' last lines are out before the caller reports anything else.
        let _ = tokio::task::spawn_blocking(log::flush).await;
    }
}

fn arn_of(settings: &Settings, name: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        settings.region, settings.account_id
    )
}

/// Builds a generation, reusing the functions of `old` whose definition (and the settings) did
/// not change.
fn build_table(
    defs: &[FunctionDef],
    settings: Settings,
    old: Option<&Table>,
) -> Result<(Table, ReloadSummary), LambdaError> {
    let mut functions = HashMap::new();
    let mut summary = ReloadSummary::default();
    let reusable = old.filter(|o| o.settings == settings);
    for def in defs {
        let same = reusable
            .and_then(|o| o.functions.get(&def.name))
            .filter(|f| f.config == def.config);
        let f = match same {
            Some(f) => {
                summary.kept.push(def.name.clone());
                f.clone()
            }
            None => {
                summary.started.push(def.name.clone());
                Arc::new(Function {
                    backend: build_backend(&def.name, &def.config, &settings)?,
                    config: def.config.clone(),
                })
            }
        };
        functions.insert(def.name.clone(), f);
    }
    Ok((
        Table {
            functions,
            settings,
        },
        summary,
    ))
}

fn build_backend(
    name: &str,
    config: &FunctionConfig,
    settings: &Settings,
) -> Result<Backend, LambdaError> {
    if let Some(remote) = &config.remote {
        return Ok(Backend::Remote(Box::new(remote::Remote::new(
            name, config, remote, settings,
        ))));
    }
    let Some(command) = &config.command else {
        return Err(LambdaError::Config {
            name: name.into(),
            reason: "no command and no remote endpoint".into(),
        });
    };
    let args = command.args();
    if args.is_empty() {
        return Err(LambdaError::Config {
            name: name.into(),
            reason: "empty command".into(),
        });
    }
    let concurrency = config.reserved_concurrency.unwrap_or(DEFAULT_CONCURRENCY) as usize;
    let spec = local::Spec {
        name: name.to_string(),
        arn: format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            settings.region, settings.account_id
        ),
        args,
        working_dir: config.working_dir.clone(),
        environment: config.environment.clone(),
        handler: config.handler.clone(),
        runtime: config.runtime.clone(),
        timeout: Duration::from_secs_f64(config.timeout),
        memory_mb: config.memory_size,
        concurrency: concurrency.max(1),
        queue_size: config.queue_size.unwrap_or(0) as usize,
        region: settings.region.clone(),
    };
    Ok(Backend::Local(local::Pool::new(spec)))
}

/// `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled=0`.
pub(crate) fn new_trace_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    let p = uuid::Uuid::new_v4().simple().to_string();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        &u[..24],
        &p[..16]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_refs() {
        assert_eq!(
            FunctionRef::parse("arn:aws:lambda:us-east-1:123456789012:function:hello:live"),
            FunctionRef {
                name: "hello".into(),
                qualifier: Some("live".into())
            }
        );
        assert_eq!(FunctionRef::parse("hello").name, "hello");
        assert_eq!(
            FunctionRef::parse("hello:3").qualifier.as_deref(),
            Some("3")
        );
    }

    fn def(name: &str, config: serde_json::Value) -> FunctionDef {
        FunctionDef {
            name: name.into(),
            config: serde_json::from_value(config).expect("function config"),
        }
    }

    #[tokio::test]
    async fn reload_keeps_unchanged_functions_and_retires_the_rest() {
        let cmd = |c: &str| serde_json::json!({ "command": c });
        let f = Functions::new(
            &[def("a", cmd("true")), def("b", cmd("true"))],
            Settings::default(),
        )
        .expect("registry");
        let s = f
            .reload(
                &[
                    def("a", cmd("true")),
                    def("b", cmd("false")),
                    def("c", cmd("true")),
                ],
                Settings::default(),
            )
            .expect("reload");
        assert_eq!(s.kept, ["a"]);
        assert_eq!(s.started, ["b", "c"]);
        assert_eq!(s.retired, ["b"]);
        assert_eq!(f.names(), ["a", "b", "c"]);
        // Another region changes every ARN: everything is rebuilt.
        let eu = Settings {
            region: "eu-west-1".into(),
            ..Settings::default()
        };
        let s = f
            .reload(&[def("a", cmd("true"))], eu.clone())
            .expect("reload");
        assert_eq!(
            (s.started, s.retired),
            (
                vec!["a".to_string()],
                vec!["a".into(), "b".into(), "c".into()]
            )
        );
        assert_eq!(
            f.arn("a"),
            "arn:aws:lambda:eu-west-1:123456789012:function:a"
        );
        // An invalid definition changes nothing.
        assert!(f.reload(&[def("x", serde_json::json!({}))], eu).is_err());
        assert_eq!(f.names(), ["a"]);
        f.shutdown().await;
    }

    #[test]
    fn error_message_of_function_errors() {
        let out = InvokeOutput {
            request_id: "r".into(),
            payload: Bytes::from_static(br#"{"errorMessage":"boom","errorType":"E"}"#),
            function_error: Some("Unhandled".into()),
            cold_start: false,
        };
        assert_eq!(out.error_message().as_deref(), Some("boom"));
        let ok = InvokeOutput {
            function_error: None,
            ..out
        };
        assert_eq!(ok.error_message(), None);
    }
}
