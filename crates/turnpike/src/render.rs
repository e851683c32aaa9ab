//! `turnpike render`: render a mapping template against a request, to debug templates the way
//! the API Gateway console's test invoke does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Map, Value};
use turnpike_vtl::{Limits, Params, RenderInput, Template};

#[derive(Args)]
pub struct RenderArgs {
    /// Template file (`-` reads standard input).
    template: PathBuf,
    /// Request body text.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the request body from a file.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Path parameter `name=value` (repeatable).
    #[arg(long = "path")]
    path: Vec<String>,
    /// Query string parameter `name=value` (repeatable).
    #[arg(long = "query")]
    query: Vec<String>,
    /// Stage variable `name=value` (repeatable).
    #[arg(long = "stage-var")]
    stage_vars: Vec<String>,
    /// JSON object merged over the default `$context` (e.g. '{"stage":"prod","authorizer":{"principalId":"u1"}}').
    #[arg(long)]
    context: Option<String>,
    /// Also print the `$context.requestOverride`/`responseOverride` values the template set.
    #[arg(long)]
    show_overrides: bool,
}

fn pairs(list: &[String], sep: char, what: &str) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|s| match s.split_once(sep) {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim_start().to_string())),
            None => bail!("{what} {s:?} must look like name{sep}value"),
        })
        .collect()
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

pub fn run(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let source = if args.template.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("reading the template from standard input")?
    } else {
        std::fs::read_to_string(&args.template)
            .with_context(|| format!("reading {}", args.template.display()))?
    };
    let template = match Template::compile(&source) {
        Ok(t) => t,
        Err(e) => {
            errln!(
                "{}:{}:{}: error: {}",
                args.template.display(),
                e.line,
                e.column,
                e.message
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => b.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => String::new(),
    };
    let params = Params {
        path: pairs(&args.path, '=', "--path")?,
        querystring: pairs(&args.query, '=', "--query")?,
        header: pairs(&args.headers, ':', "--header")?,
    };
    let stage_variables: Map<String, Value> = pairs(&args.stage_vars, '=', "--stage-var")?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut context = json!({
        "accountId": turnpike_model::DEFAULT_ACCOUNT_ID,
        "apiId": "testapi123",
        "authorizer": {},
        "httpMethod": "POST",
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "turnpike-render"},
        "path": "/test/resource",
        "protocol": "HTTP/1.1",
        "requestId": uuid_like(),
        "resourcePath": "/resource",
        "stage": "test",
        "requestOverride": {"header": {}, "path": {}, "querystring": {}},
        "responseOverride": {"header": {}},
    });
    if let Some(c) = &args.context {
        let over: Value = serde_json::from_str(c).context("--context must be a JSON object")?;
        if !over.is_object() {
            bail!("--context must be a JSON object");
        }
        merge(&mut context, over);
    }
    let input = RenderInput {
        body: &body,
        params: &params,
        context: &context,
        stage_variables: &stage_variables,
    };
    match template.render(&input, &Limits::default()) {
        Ok(r) => {
            out!("{}", r.output);
            if args.show_overrides {
                errln!(
                    "requestOverride: {}",
                    r.request_override.clone().unwrap_or_default()
                );
                errln!(
                    "responseOverride: {}",
                    r.response_override.clone().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln!("{}: render error: {e}", args.template.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_string()
}
