//! Header names the gateway sets or reads on every request, built at compile time:
//! `HeaderName::from_static` validates its argument each time it runs, and `get("x-...")`
//! parses the name on every lookup.

use http::HeaderName;

pub static X_AMZN_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
pub static X_AMZ_APIGW_ID: HeaderName = HeaderName::from_static("x-amz-apigw-id");
pub static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
pub static X_AMZN_APIGATEWAY_API_ID: HeaderName =
    HeaderName::from_static("x-amzn-apigateway-api-id");
