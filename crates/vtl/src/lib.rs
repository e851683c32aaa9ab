//! Velocity Template Language engine for API Gateway mapping templates.
//!
//! Templates are compiled once ([`Template::compile`]) into an AST and rendered many
//! times ([`Template::render`]) against a request ([`RenderInput`]). Rendering does no
//! I/O, never panics on any input, and is bounded by [`Limits`].
//!
//! See `crates/vtl/README.md` for the AWS behaviour decisions this engine makes.

mod ast;
mod doc;
mod eval;
mod java;
mod jsonpath;
mod parser;
mod value;

pub use jsonpath::{json_path, JsonPathError, JsonPathResult};

/// Maximum size of a mapping template in bytes (AWS quota: 300 KB).
pub const MAX_TEMPLATE_BYTES: usize = 300 * 1024;

/// A compiled mapping template. `Send + Sync`; share it behind an `Arc`.
pub struct Template {
    compiled: parser::Compiled,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("nodes", &self.compiled.nodes.len())
            .field("macros", &self.compiled.macros.len())
            .finish()
    }
}

impl Template {
    /// Parse once (at deployment time). Errors carry 1-based line/column.
    pub fn compile(source: &str) -> Result<Template, ParseError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(ParseError {
                line: 1,
                column: 1,
                message: format!(
                    "template is {} bytes; the maximum is {} bytes",
                    source.len(),
                    MAX_TEMPLATE_BYTES
                ),
            });
        }
        Ok(Template {
            compiled: parser::compile(source)?,
        })
    }

    /// Render the template for one request.
    ///
    /// The body is parsed as JSON at most once, and only if the template asks for it
    /// (`$input.path` / `$input.json`).
    pub fn render(
        &self,
        input: &RenderInput<'_>,
        limits: &Limits,
    ) -> Result<Rendered, RenderError> {
        let body_json = std::cell::OnceCell::new();
        let input = *input;
        let mut ev = eval::Eval::new(&self.compiled, &input, &body_json, limits);
        ev.run_template()?;
        Ok(ev.finish())
    }
}

/// A template syntax error, with 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a render failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A `#foreach` tried to run more than `Limits::max_loop_iterations` times.
    #[error("line {line}, column {column}: #foreach exceeded the limit of {limit} iterations")]
    LoopLimit {
        limit: usize,
        line: usize,
        column: usize,
    },
    /// Macro calls / `#define` evaluation nested deeper than `Limits::max_recursion_depth`.
    #[error("line {line}, column {column}: recursion deeper than {limit} levels")]
    RecursionLimit {
        limit: usize,
        line: usize,
        column: usize,
    },
    /// The output grew beyond `Limits::max_output_bytes`.
    #[error("rendered output exceeds {limit} bytes")]
    OutputLimit { limit: usize },
    /// The total evaluation budget (`Limits::max_steps`) was used up.
    #[error("line {line}, column {column}: evaluation budget of {limit} steps exhausted")]
    StepLimit {
        limit: u64,
        line: usize,
        column: usize,
    },
    /// Any other evaluation failure (e.g. a value too large to build).
    #[error("line {line}, column {column}: {message}")]
    Runtime {
        line: usize,
        column: usize,
        message: String,
    },
}

/// Bounds on one render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Iterations allowed per `#foreach` (AWS: 1000).
    pub max_loop_iterations: usize,
    /// Nesting depth of macro calls, `#define` blocks and nested evaluation.
    pub max_recursion_depth: usize,
    /// Maximum size of the rendered output in bytes.
    pub max_output_bytes: usize,
    /// Total evaluation budget (nodes evaluated, loop iterations, string work units).
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_loop_iterations: 1000,
            max_recursion_depth: 64,
            max_output_bytes: 10 * 1024 * 1024,
            max_steps: 10_000_000,
        }
    }
}

/// Everything a template can see of one request.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    /// Raw payload text (`$input.body`); binary payloads arrive already base64'd.
    pub body: &'a str,
    /// `$input.params()`.
    pub params: &'a Params,
    /// The `$context` object (a JSON object built by the gateway).
    pub context: &'a serde_json::Value,
    /// `$stageVariables` (string values).
    pub stage_variables: &'a serde_json::Map<String, serde_json::Value>,
}

/// Request parameters for `$input.params()`; insertion order is kept.
#[derive(Default, Clone, Debug)]
pub struct Params {
    pub path: Vec<(String, String)>,
    pub querystring: Vec<(String, String)>,
    pub header: Vec<(String, String)>,
}

/// The result of a render.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// The rendered text.
    pub output: String,
    /// Typed `$context.requestOverride` / `$context.responseOverride` values.
    pub overrides: Overrides,
    /// `$context.requestOverride` as it stands after rendering (a JSON object with
    /// `header`, `path`, `querystring`, plus anything else the template put there);
    /// `None` if the template never touched `$context.requestOverride` /
    /// `$context.responseOverride` (then nothing was overridden).
    pub request_override: Option<serde_json::Value>,
    /// `$context.responseOverride` as it stands after rendering (`header`, `status` if
    /// set, plus anything else); `None` as above. Pass it into the response
    /// template's `$context` as `responseOverride`.
    pub response_override: Option<serde_json::Value>,
}

/// Values written to `$context.requestOverride` / `$context.responseOverride` during rendering.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Overrides {
    pub request_header: Vec<(String, Vec<String>)>,
    pub request_querystring: Vec<(String, Vec<String>)>,
    pub request_path: Vec<(String, String)>,
    pub response_header: Vec<(String, Vec<String>)>,
    pub response_status: Option<u16>,
}

#[cfg(test)]
mod api_tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn template_is_send_sync() {
        assert_send_sync::<Template>();
        assert_send_sync::<ParseError>();
        assert_send_sync::<RenderError>();
    }
}

#[doc(hidden)]
pub mod __bench {
    /// Parse a JSON body the way `$input.path` does (benchmarking only).
    pub fn parse_body(text: &str) -> bool {
        crate::doc::Doc::parse(text).is_some()
    }
}
