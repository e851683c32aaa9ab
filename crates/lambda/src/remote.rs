//! Remote functions: Lambda's `Invoke` API over HTTP(S), signed with SigV4 when credentials
//! are available (AWS Lambda), or plain (the Runtime Interface Emulator and other compatible
//! endpoints).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use turnpike_model::functions::{AwsCredentials, FunctionConfig, RemoteFunction};

use crate::{InvokeError, InvokeOptions, InvokeOutput, Settings, MAX_RESPONSE_PAYLOAD};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// RFC 3986 unreserved characters stay as they are (SigV4's canonical encoding).
const PATH_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) struct Remote {
    url: String,
    /// The URL was given in full (`…/invocations`): no qualifier is appended.
    full_url: bool,
    region: String,
    credentials: Option<AwsCredentials>,
    timeout: Duration,
    client: Client<Connector, Full<Bytes>>,
}

fn connector() -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b.https_or_http().enable_http1().wrap_connector(http),
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http),
    }
}

impl Remote {
    pub fn new(
        name: &str,
        config: &FunctionConfig,
        remote: &RemoteFunction,
        settings: &Settings,
    ) -> Remote {
        let region = remote
            .region
            .clone()
            .unwrap_or_else(|| settings.region.clone());
        let function = remote
            .function_name
            .clone()
            .unwrap_or_else(|| name.to_string());
        let base = remote
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"));
        let full_url = base.contains("/invocations");
        let url = if full_url {
            base
        } else {
            let encoded: String =
                percent_encoding::utf8_percent_encode(&function, PATH_ENCODE).to_string();
            format!(
                "{}/2015-03-31/functions/{encoded}/invocations",
                base.trim_end_matches('/')
            )
        };
        let credentials = remote
            .credentials
            .clone()
            .or_else(crate::aws::default_credentials);
        Remote {
            url,
            full_url,
            region,
            credentials,
            timeout: Duration::from_secs_f64(config.timeout),
            client: Client::builder(TokioExecutor::new()).build(connector()),
        }
    }

    pub async fn invoke(
        &self,
        payload: Bytes,
        opts: InvokeOptions,
    ) -> Result<InvokeOutput, InvokeError> {
        let mut url = self.url.clone();
        if let (Some(q), false) = (&opts.qualifier, self.full_url) {
            url.push_str("?Qualifier=");
            url.push_str(&percent_encoding::utf8_percent_encode(q, PATH_ENCODE).to_string());
        }
        let mut builder = Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse");
        if let Some(c) = &opts.client_context {
            use base64::Engine;
            builder = builder.header(
                "x-amz-client-context",
                base64::engine::general_purpose::STANDARD.encode(c),
            );
        }
        let req = builder
            .body(())
            .map_err(|e| InvokeError::Transport(format!("invalid endpoint {url:?}: {e}")))?;
        let (mut parts, ()) = req.into_parts();
        if let Some(host) = parts.uri.authority().map(|a| a.to_string()) {
            if let Ok(v) = HeaderValue::from_str(&host) {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        if let Some(creds) = &self.credentials {
            crate::aws::sign_request(&mut parts, &payload, "lambda", &self.region, creds)
                .map_err(|e| InvokeError::Transport(e.to_string()))?;
        }
        let req = Request::from_parts(parts, Full::new(payload));
        // The caller's deadline, else the function's timeout plus slack for the network.
        let wait = opts
            .caller_timeout
            .unwrap_or(self.timeout + Duration::from_secs(5));
        let resp = match tokio::time::timeout(wait, self.client.request(req)).await {
            Err(_) => return Err(InvokeError::CallerTimeout(wait)),
            Ok(Err(e)) => return Err(InvokeError::Transport(format!("{url}: {e}"))),
            Ok(Ok(r)) => r,
        };
        let (parts, body) = resp.into_parts();
        let body = match tokio::time::timeout(
            wait,
            Limited::new(body, MAX_RESPONSE_PAYLOAD + 1024).collect(),
        )
        .await
        {
            Err(_) => return Err(InvokeError::CallerTimeout(wait)),
            Ok(Err(e)) => return Err(InvokeError::Transport(format!("reading {url}: {e}"))),
            Ok(Ok(c)) => c.to_bytes(),
        };
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id =
            header("x-amzn-requestid").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let status = parts.status.as_u16();
        match status {
            200..=299 => Ok(InvokeOutput {
                request_id,
                payload: body,
                function_error: header("x-amz-function-error"),
                cold_start: false,
            }),
            404 => Err(InvokeError::NotFound(url)),
            413 => Err(InvokeError::RequestTooLarge {
                size: 0,
                limit: crate::MAX_REQUEST_PAYLOAD,
            }),
            429 => Err(InvokeError::Throttled),
            _ => Err(InvokeError::Service {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}
