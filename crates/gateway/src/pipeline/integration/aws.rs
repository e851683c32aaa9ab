//! AWS service integrations (`AWS` with a non-Lambda URI):
//! `arn:aws:apigateway:{region}:{service}:action/{Action}` and `…:{service}:path/{path}` become
//! SigV4-signed requests to the service endpoint (or the project's `aws.endpoints` override, so
//! local stand-ins work). The service's status selects the integration response.

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use turnpike_model::functions::AwsCredentials;

use crate::body::Body;
use crate::error::GatewayError;
use crate::pipeline::integration_request;
use crate::pipeline::integration_response::{self, IntegrationOutput};
use crate::pipeline::{content_handling, Invocation};
use crate::Gateway;

/// Whether the integration's URI invokes a Lambda function (`…:lambda:path/…`).
pub fn is_lambda(inv: &Invocation<'_>) -> bool {
    inv.method
        .integration
        .uri
        .as_ref()
        .is_some_and(|t| super::lambda::is_lambda_uri(&t.render(&[], &inv.stage.variables)))
}

/// A parsed service ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUri {
    pub region: String,
    /// `{bucket}` of `{bucket}.s3`, if any.
    pub subdomain: Option<String>,
    pub service: String,
    pub kind: UriKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriKind {
    /// `action/{Action}` plus `&k=v` parameters.
    Action {
        action: String,
        params: Vec<(String, String)>,
    },
    /// `path/{path}`.
    Path(String),
}

pub fn parse_uri(uri: &str) -> Option<ServiceUri> {
    let rest = uri.strip_prefix("arn:aws:apigateway:")?;
    let (region, rest) = rest.split_once(':')?;
    let (svc, rest) = rest.split_once(':')?;
    let (subdomain, service) = match svc.rsplit_once('.') {
        Some((sub, s)) => (Some(sub.to_string()), s.to_string()),
        None => (None, svc.to_string()),
    };
    let kind = if let Some(a) = rest.strip_prefix("action/") {
        let mut parts = a.split('&');
        let action = parts.next().unwrap_or_default().to_string();
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        UriKind::Action { action, params }
    } else if let Some(p) = rest.strip_prefix("path/") {
        UriKind::Path(p.to_string())
    } else {
        return None;
    };
    Some(ServiceUri {
        region: region.to_string(),
        subdomain,
        service,
        kind,
    })
}

/// JSON-protocol services: their actions go as `X-Amz-Target: {prefix}.{Action}`.
fn json_target(service: &str) -> Option<(&'static str, &'static str)> {
    Some(match service {
        "dynamodb" => ("DynamoDB_20120810", "application/x-amz-json-1.0"),
        "kinesis" => ("Kinesis_20131202", "application/x-amz-json-1.1"),
        "firehose" => ("Firehose_20150804", "application/x-amz-json-1.1"),
        "events" => ("AWSEvents", "application/x-amz-json-1.1"),
        "states" => ("AWSStepFunctions", "application/x-amz-json-1.0"),
        "logs" => ("Logs_20140328", "application/x-amz-json-1.1"),
        _ => return None,
    })
}

const QUERY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_ENCODE).to_string()
}

fn credentials_for(gw: &Gateway, inv: &Invocation<'_>) -> Option<AwsCredentials> {
    let role = inv
        .method
        .model
        .method_integration
        .as_ref()
        .and_then(|i| i.credentials.clone());
    let aws = gw.aws();
    role.and_then(|r| aws.credentials.get(&r).cloned())
        .or_else(|| aws.credentials.get("default").cloned())
        .or_else(turnpike_lambda::aws::default_credentials)
}

pub async fn invoke(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    body: Bytes,
) -> Result<http::Response<Body>, GatewayError> {
    inv.start_trace();
    let mapped = integration_request::prepare(inv, body)?;
    let Some(t) = &inv.method.integration.uri else {
        return Err(GatewayError::configuration("integration has no uri"));
    };
    let uri = t.render(&mapped.path, &inv.stage.variables);
    let Some(svc) = parse_uri(&uri) else {
        return Err(GatewayError::configuration(format!(
            "Execution failed due to configuration error: AWS ARN for integration must contain path or action: {uri:?}"
        )));
    };
    let overridden = gw.aws().endpoints.get(&svc.service).cloned();
    let (base, path_prefix) = match (&overridden, &svc.subdomain) {
        (Some(e), Some(sub)) => (e.trim_end_matches('/').to_string(), format!("/{sub}")),
        (Some(e), None) => (e.trim_end_matches('/').to_string(), String::new()),
        (None, Some(sub)) => (
            format!("https://{sub}.{}.{}.amazonaws.com", svc.service, svc.region),
            String::new(),
        ),
        (None, None) => (
            format!("https://{}.{}.amazonaws.com", svc.service, svc.region),
            String::new(),
        ),
    };
    let mut headers = HeaderMap::new();
    let mut query: Vec<(String, String)> = Vec::new();
    let path = match &svc.kind {
        UriKind::Path(p) => format!("{path_prefix}/{}", p.trim_start_matches('/')),
        UriKind::Action { action, params } => {
            if let Some((prefix, ct)) = json_target(&svc.service) {
                if let Ok(v) = HeaderValue::from_str(&format!("{prefix}.{action}")) {
                    headers.insert(HeaderName::from_static("x-amz-target"), v);
                }
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            } else {
                query.push(("Action".into(), action.clone()));
            }
            query.extend(params.iter().cloned());
            format!("{path_prefix}/")
        }
    };
    query.extend(mapped.query.iter().cloned());
    let mut url = format!("{base}{path}");
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&enc(k));
        if !v.is_empty() || !matches!(svc.kind, UriKind::Path(_)) {
            url.push('=');
            url.push_str(&enc(v));
        }
    }
    let uri: http::Uri = url.parse().map_err(|_| {
        GatewayError::configuration(format!(
            "Execution failed due to configuration error: Invalid endpoint address {url:?}"
        ))
    })?;
    let method = inv
        .method
        .integration
        .http_method
        .clone()
        // `ANY`: the client's method, as on HTTP integrations (e.g. one S3 resource for GET/PUT).
        .unwrap_or_else(|| inv.parts.method.clone());
    if !headers.contains_key(header::CONTENT_TYPE)
        && !matches!(method, http::Method::GET | http::Method::HEAD)
    {
        if let Some(ct) = inv.parts.headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, ct.clone());
        }
    }
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    for (k, v) in &mapped.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("AmazonAPIGateway_{}", inv.api.id)) {
        headers.insert(header::USER_AGENT, v);
    }
    if let Some(host) = uri.authority().map(|a| a.to_string()) {
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, v);
        }
    }
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(())
        .map_err(|e| GatewayError::internal(format!("building the service request: {e}")))?;
    let (mut parts, ()) = req.into_parts();
    parts.headers = headers;
    if let Some(creds) = credentials_for(gw, inv) {
        turnpike_lambda::aws::sign_request(
            &mut parts,
            &mapped.body,
            &svc.service,
            &svc.region,
            &creds,
        )
        .map_err(|e| GatewayError::internal(e.to_string()))?;
    }
    let req = Request::from_parts(parts, Body::full(mapped.body.clone()));
    let started = Instant::now();
    let timeout = inv.method.integration.timeout;
    let result = tokio::time::timeout(timeout, gw.upstream.client().request(req)).await;
    inv.ctx.integration_latency_ms = Some(started.elapsed().as_millis() as u64);
    let resp = match result {
        Err(_) => {
            inv.ctx.integration_error = Some("timeout".into());
            return Err(GatewayError::integration_timeout());
        }
        Ok(Err(e)) => {
            inv.ctx.integration_error = Some(e.to_string());
            return Err(GatewayError::internal(format!(
                "Execution failed due to configuration error: cannot reach {url}: {e:?}"
            )));
        }
        Ok(Ok(r)) => r,
    };
    inv.ctx.integration_status = Some(resp.status().as_u16());
    let (parts, body) = resp.into_parts();
    let body = match http_body_util::Limited::new(body, gw.limits.max_payload_bytes)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(GatewayError::integration_failure(format!(
                "reading the service response failed: {e}"
            )))
        }
    };
    let binary = content_handling::is_binary_payload(&inv.api.binary_media_types, &parts.headers);
    integration_response::respond(
        inv,
        IntegrationOutput {
            selector: parts.status.as_u16().to_string(),
            headers: parts.headers,
            body,
            binary,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_uris() {
        let u = parse_uri("arn:aws:apigateway:us-east-1:sqs:action/SendMessage").expect("sqs");
        assert_eq!(u.service, "sqs");
        assert_eq!(
            u.kind,
            UriKind::Action {
                action: "SendMessage".into(),
                params: vec![]
            }
        );
        let u = parse_uri("arn:aws:apigateway:us-west-2:s3:action/GetObject&Bucket=b&Key=k")
            .expect("s3 action");
        assert!(matches!(u.kind, UriKind::Action { ref params, .. } if params.len() == 2));
        let u = parse_uri("arn:aws:apigateway:us-west-2:bkt.s3:path/key").expect("sub");
        assert_eq!(u.subdomain.as_deref(), Some("bkt"));
        assert_eq!(u.kind, UriKind::Path("key".into()));
        assert!(parse_uri("arn:aws:apigateway:us-east-1:s3:bogus").is_none());
    }
}
