//! The pooled HTTP client that HTTP and HTTP_PROXY integrations call: keep-alive connections,
//! HTTP/1.1 and HTTP/2 (negotiated by ALPN over TLS), bodies streamed both ways.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;

pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<Connector, Body>,
}

impl Upstream {
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // Trust the system's roots when they can be read; fall back to the bundled Mozilla set.
        let https = match builder.with_native_roots() {
            Ok(b) => b
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(https);
        Upstream { client }
    }

    pub fn client(&self) -> &Client<Connector, Body> {
        &self.client
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}
