//! Step 6: what every response carries on its way out (`x-amzn-RequestId`, `x-amz-apigw-id`),
//! and the access log line.

use std::time::Instant;

use http::{HeaderValue, Response};
use http_body::Body as _;

use crate::body::Body;
use crate::context::RequestContext;
use crate::deployment::StageRuntime;
use crate::headers;

pub fn finish(
    resp: &mut Response<Body>,
    ctx: &mut RequestContext,
    started: Instant,
    stage: Option<&StageRuntime>,
) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        h.insert(headers::X_AMZN_REQUEST_ID.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.extended_request_id) {
        h.insert(headers::X_AMZ_APIGW_ID.clone(), v);
    }
    ctx.status = Some(resp.status().as_u16());
    ctx.response_latency_ms = Some(started.elapsed().as_millis() as u64);
    ctx.response_length = resp.body().size_hint().exact().or_else(|| {
        resp.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    if let Some(log) = stage.and_then(|s| s.access_log.as_ref()) {
        log.log(ctx);
    }
}
