//! A Lambda proxy function written with AWS's Rust runtime, exactly as it would be deployed to
//! AWS (`provided.al2023`, binary `bootstrap`). Turnpike runs it unchanged: the runtime finds
//! Turnpike's Runtime API through `AWS_LAMBDA_RUNTIME_API`.
//!
//! It answers with what it received, as the typed event (`ApiGatewayProxyRequest`) and context
//! parsed it, so the payload can be checked end to end. Query parameters steer the answer:
//! `name` (greeting), `status` (statusCode), `binary=1` (a base64-encoded PNG signature),
//! `fail=1` (a function error).

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::json;

/// Invocations served by this process: 1 on a cold start, more when warm.
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

async fn handler(
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    let (req, ctx) = event.into_parts();
    let n = INVOCATIONS.fetch_add(1, Ordering::SeqCst) + 1;
    let query = &req.query_string_parameters;
    if query.first("fail").is_some() {
        return Err("failure requested by the caller".into());
    }
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = query
        .first("status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    if query.first("binary").is_some() {
        resp.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
        resp.body = Some(Body::Binary(b"\x89PNG\r\n\x1a\n".to_vec()));
        resp.is_base64_encoded = true;
        return Ok(resp);
    }
    let body = json!({
        "hello": query.first("name").unwrap_or("world"),
        "event": serde_json::to_value(&req)?,
        "context": {
            "requestId": ctx.request_id,
            "invokedFunctionArn": ctx.invoked_function_arn,
            "deadline": ctx.deadline,
            "xrayTraceId": ctx.xray_trace_id,
            "functionName": ctx.env_config.function_name,
            "memory": ctx.env_config.memory,
            "version": ctx.env_config.version,
            "logGroup": ctx.env_config.log_group,
        },
        "process": {"pid": std::process::id(), "invocation": n},
        "greeting": std::env::var("GREETING").ok(),
    });
    resp.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.multi_value_headers
        .append(SET_COOKIE, HeaderValue::from_static("a=1"));
    resp.multi_value_headers
        .append(SET_COOKIE, HeaderValue::from_static("b=2"));
    resp.body = Some(Body::Text(body.to_string()));
    Ok(resp)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    println!("lambda-rust-example: init");
    lambda_runtime::run(service_fn(handler)).await
}
