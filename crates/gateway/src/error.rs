//! The one error type of the request pipeline. Every failure a step can produce is a
//! [`GatewayError`]; [`crate::gateway_response`] renders it as the matching AWS gateway response.

use turnpike_model::rest::GatewayResponseType;

/// AWS's body for internal failures that are not customised (note the space after the colon:
/// AWS answers exactly these 36 bytes).
pub const INTERNAL_SERVER_ERROR_BODY: &str = "{\"message\": \"Internal server error\"}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: GatewayResponseType,
    /// `$context.error.message`; `None` renders as `null`.
    pub message: Option<String>,
    /// The `x-amzn-ErrorType` header AWS sends with this failure, if any.
    pub error_type: Option<&'static str>,
    /// Status to use instead of the type's default when the response is not customised
    /// (AWS answers some failures, e.g. malformed Lambda proxy output, with a non-default status).
    pub status_override: Option<u16>,
    /// The exact body AWS sends when the response is not customised, when it differs from the
    /// default template's output.
    pub builtin_body: Option<&'static str>,
    /// What went wrong, for the execution log (never sent to the client).
    pub detail: Option<String>,
}

impl GatewayError {
    pub fn new(kind: GatewayResponseType, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            message: Some(message.into()),
            error_type: default_error_type(kind),
            status_override: None,
            builtin_body: None,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn missing_authentication_token() -> Self {
        Self::new(
            GatewayResponseType::MissingAuthenticationToken,
            "Missing Authentication Token",
        )
    }

    /// `API_CONFIGURATION_ERROR`: the API is set up in a way that cannot work (no matching
    /// integration response, bad mapping, unsupported integration, ...).
    pub fn configuration(detail: impl Into<String>) -> Self {
        GatewayError {
            kind: GatewayResponseType::ApiConfigurationError,
            message: Some("Internal server error".into()),
            error_type: Some("InternalServerErrorException"),
            status_override: None,
            builtin_body: Some(INTERNAL_SERVER_ERROR_BODY),
            detail: Some(detail.into()),
        }
    }

    /// A DEFAULT_5XX internal failure (`InternalServerErrorException`).
    pub fn internal(detail: impl Into<String>) -> Self {
        GatewayError {
            kind: GatewayResponseType::Default5xx,
            message: Some("Internal server error".into()),
            error_type: Some("InternalServerErrorException"),
            status_override: Some(500),
            builtin_body: Some(INTERNAL_SERVER_ERROR_BODY),
            detail: Some(detail.into()),
        }
    }

    pub fn integration_timeout() -> Self {
        GatewayError {
            builtin_body: Some("{\"message\": \"Endpoint request timed out\"}"),
            ..Self::new(
                GatewayResponseType::IntegrationTimeout,
                "Endpoint request timed out",
            )
        }
    }

    pub fn integration_failure(detail: impl Into<String>) -> Self {
        GatewayError {
            builtin_body: Some(INTERNAL_SERVER_ERROR_BODY),
            error_type: Some("InternalServerErrorException"),
            ..Self::new(
                GatewayResponseType::IntegrationFailure,
                "Internal server error",
            )
        }
        .with_detail(detail)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            GatewayResponseType::UnsupportedMediaType,
            "Unsupported Media Type",
        )
    }

    pub fn status(&self) -> Option<u16> {
        self.status_override.or(self.kind.default_status())
    }
}

fn default_error_type(kind: GatewayResponseType) -> Option<&'static str> {
    use GatewayResponseType::*;
    Some(match kind {
        AccessDenied => "AccessDeniedException",
        AuthorizerConfigurationError => "AuthorizerConfigurationException",
        BadRequestParameters | BadRequestBody => "BadRequestException",
        ExpiredToken => "ExpiredTokenException",
        InvalidApiKey => "ForbiddenException",
        InvalidSignature => "InvalidSignatureException",
        MissingAuthenticationToken => "MissingAuthenticationTokenException",
        QuotaExceeded => "LimitExceededException",
        Throttled => "TooManyRequestsException",
        Unauthorized => "UnauthorizedException",
        ApiConfigurationError | IntegrationFailure | Default5xx => "InternalServerErrorException",
        _ => return None,
    })
}
