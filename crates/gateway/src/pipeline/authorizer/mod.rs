//! Step 5 of AWS's pipeline: authentication and authorization, then the resource policy.
//!
//! * `NONE`: the resource policy alone (an explicit Allow is needed when a policy exists).
//! * `AWS_IAM`: SigV4 ([`sigv4`]) against the project's IAM access keys, then the resource policy
//!   combined as AWS's same-account table (cross-account callers need an explicit Allow).
//! * `COGNITO_USER_POOLS`: JWT validation ([`jwt`]), then the resource policy alone.
//! * `CUSTOM` (Lambda authorizers, [`lambda`]): the function's policy combined with the resource
//!   policy as AWS's same-account table.
//!
//! Before any of these, an explicit Deny in the resource policy rejects the request without
//! invoking an authorizer (AWS's "pre-auth" phase).

pub mod jwt;
pub mod lambda;
pub mod sigv4;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use turnpike_model::access::AccessConfig;
use turnpike_model::rest::{AuthorizationType, Authorizer, AuthorizerType, GatewayResponseType};

use crate::error::GatewayError;
use crate::pipeline::resource_policy::{access_denied, Decision, RequestFacts};
use crate::pipeline::Invocation;
use crate::Gateway;

/// What an authorizer established about the caller.
#[derive(Debug, Clone, Default)]
pub struct AuthResult {
    pub principal_id: Option<String>,
    /// `$context.authorizer.*` (values as the authorizer returned them).
    pub context: Map<String, Value>,
    /// Cognito/JWT claims (`$context.authorizer.claims.*`).
    pub claims: Option<Map<String, Value>>,
    /// `usageIdentifierKey` (the API key when `apiKeySource` is `AUTHORIZER`).
    pub usage_identifier_key: Option<String>,
    pub iam: Option<sigv4::Caller>,
}

/// An authorizer compiled at deploy time.
#[derive(Debug)]
pub struct AuthorizerRuntime {
    pub model: Authorizer,
    pub jwt: Option<jwt::JwtConfig>,
    /// The header holding the token (TOKEN and Cognito authorizers).
    pub header: Option<String>,
    pub validation: Option<regex::Regex>,
    /// TOKEN and REQUEST authorizers: identity sources, TTL and the result cache.
    pub lambda: Option<lambda::LambdaAuthorizer>,
}

/// Compiles an authorizer with the project's settings for it.
pub fn compile(
    a: &Authorizer,
    access: &AccessConfig,
    region: &str,
) -> Result<AuthorizerRuntime, String> {
    let header = a
        .identity_source
        .as_deref()
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().strip_prefix("method.request.header."))
        .map(str::to_string);
    let validation = match a.identity_validation_expression.as_deref() {
        Some(e) if a.kind == AuthorizerType::Token => Some(
            regex::Regex::new(&format!("^(?:{e})$"))
                .map_err(|e| format!("identityValidationExpression: {e}"))?,
        ),
        _ => None,
    };
    let jwt = if a.kind == AuthorizerType::CognitoUserPools {
        let settings = access.authorizers.get(&a.name).cloned().unwrap_or_default();
        let pool = a.provider_arns.first().and_then(|arn| {
            let mut it = arn.split(':');
            let (_, _, _, r, _, res) = (
                it.next(),
                it.next(),
                it.next(),
                it.next(),
                it.next(),
                it.next(),
            );
            let pool_id = res?.strip_prefix("userpool/")?;
            Some((
                r.filter(|r| !r.is_empty()).unwrap_or(region).to_string(),
                pool_id.to_string(),
            ))
        });
        let issuer = match (&settings.issuer, &pool) {
            (Some(i), _) => i.clone(),
            (None, Some((r, p))) => format!("https://cognito-idp.{r}.amazonaws.com/{p}"),
            (None, None) => {
                return Err(format!(
                    "authorizer {:?}: providerARNs must name a user pool (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID)",
                    a.name
                ))
            }
        };
        let jwks_uri = settings
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
        if header.is_none() {
            return Err(format!(
                "authorizer {:?}: identitySource must be method.request.header.NAME",
                a.name
            ));
        }
        Some(jwt::JwtConfig {
            issuer,
            jwks_uri,
            audience: settings.audience,
        })
    } else {
        None
    };
    let lambda = match a.kind {
        AuthorizerType::Token | AuthorizerType::Request => {
            Some(lambda::LambdaAuthorizer::compile(a)?)
        }
        AuthorizerType::CognitoUserPools => None,
    };
    Ok(AuthorizerRuntime {
        model: a.clone(),
        jwt,
        header,
        validation,
        lambda,
    })
}

pub fn unauthorized() -> GatewayError {
    GatewayError::new(GatewayResponseType::Unauthorized, "Unauthorized")
}

/// A Lambda authorizer's policy denies: 403 `{"Message":"User is not authorized to access this
/// resource[ with an explicit deny]"}`.
pub fn policy_denied(explicit: bool) -> GatewayError {
    GatewayError::new(
        GatewayResponseType::AccessDenied,
        if explicit {
            "User is not authorized to access this resource with an explicit deny"
        } else {
            "User is not authorized to access this resource"
        },
    )
}

/// AWS's `AUTHORIZER_CONFIGURATION_ERROR`: `{"message":null}`.
pub fn configuration_error(detail: impl Into<String>) -> GatewayError {
    GatewayError {
        message: None,
        ..GatewayError::new(GatewayResponseType::AuthorizerConfigurationError, "")
    }
    .with_detail(detail)
}

/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`.
pub fn method_arn(gw_region: &str, inv: &Invocation<'_>) -> String {
    let full = inv.ctx.path.as_str();
    let path = full
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(&*inv.stage.name))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .unwrap_or(full)
        .trim_start_matches('/');
    let parts: [&str; 10] = [
        "arn:aws:execute-api:",
        gw_region,
        ":",
        &inv.ctx.account_id,
        ":",
        &inv.api.id,
        "/",
        &inv.stage.name,
        "/",
        inv.parts.method.as_str(),
    ];
    let mut arn =
        String::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 1 + path.len());
    for p in parts {
        arn.push_str(p);
    }
    arn.push('/');
    arn.push_str(path);
    arn
}

fn facts<'a>(
    inv: &'a Invocation<'_>,
    arn: &'a str,
    principal: Option<(&'a str, &'a str)>,
) -> RequestFacts<'a> {
    let header = |n: &str| inv.parts.headers.get(n).and_then(|v| v.to_str().ok());
    RequestFacts {
        resource: arn,
        principal_arn: principal.map(|p| p.0),
        principal_account: principal.map(|p| p.1),
        source_ip: inv.ctx.source_ip.parse().ok(),
        user_agent: header("user-agent"),
        referer: header("referer"),
        secure_transport: false,
        now_epoch_ms: crate::context::now_epoch_ms(),
        source_vpc: None,
        source_vpce: header("x-apigw-api-id").and(None),
    }
}

fn header_value<'a>(inv: &'a Invocation<'_>, name: &str) -> Option<&'a str> {
    inv.parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty())
}

/// Runs the method's authorization. `body`: the buffered request body (needed by `AWS_IAM`).
pub async fn authorize(
    gw: &Gateway,
    inv: &mut Invocation<'_>,
    region: &str,
    body: Option<&Bytes>,
) -> Result<Option<Arc<AuthResult>>, GatewayError> {
    let kind = inv.method.model.authorization_type;
    let policy = inv.api.policy.clone();
    if policy.is_none() && kind == AuthorizationType::None {
        // Nothing to evaluate: skip building the method ARN on the common path.
        return Ok(None);
    }
    let arn = method_arn(region, inv);
    // Pre-auth: an explicit Deny for this request rejects it before any authorizer runs.
    if let Some(p) = &policy {
        if p.evaluate(&facts(inv, &arn, None)) == Decision::Deny {
            return Err(access_denied(None, &arn, true));
        }
    }
    let result = match kind {
        AuthorizationType::None => None,
        AuthorizationType::AwsIam => {
            let runtime = inv.runtime;
            let now = crate::context::now_epoch_ms() / 1000;
            let raw_path = inv.parts.uri.path().to_string();
            let req = sigv4::SignedRequest {
                method: inv.parts.method.as_str(),
                raw_path: &raw_path,
                raw_query: inv.parts.uri.query(),
                headers: &inv.parts.headers,
                body: body.map_or(&[][..], |b| &b[..]),
                region,
                now_secs: now,
            };
            let caller = match sigv4::verify(&req, &runtime.access.iam)? {
                Some(c) => c,
                None => return Err(GatewayError::missing_authentication_token()),
            };
            Some(Arc::new(AuthResult {
                principal_id: Some(caller.arn.clone()),
                iam: Some(caller),
                ..Default::default()
            }))
        }
        AuthorizationType::CognitoUserPools => {
            let a = method_authorizer(inv)?;
            let (Some(cfg), Some(h)) = (&a.jwt, &a.header) else {
                return Err(configuration_error("the authorizer has no JWT settings"));
            };
            let Some(token) = header_value(inv, h) else {
                return Err(unauthorized());
            };
            let now = crate::context::now_epoch_ms() / 1000;
            let access = gw.access();
            match jwt::verify(
                &access.jwks,
                &gw.upstream,
                cfg,
                token,
                &inv.method.model.authorization_scopes,
                now,
            )
            .await
            {
                Ok(claims) => Some(Arc::new(AuthResult {
                    principal_id: claims
                        .get("sub")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    claims: Some(claims),
                    ..Default::default()
                })),
                Err(e) => {
                    tracing::info!(request_id = %inv.ctx.request_id, authorizer = %a.model.name, "JWT rejected: {e}");
                    return Err(unauthorized());
                }
            }
        }
        AuthorizationType::Custom => {
            let a = method_authorizer(inv)?;
            let Some(l) = &a.lambda else {
                return Err(configuration_error(format!(
                    "authorizer {:?} is not a Lambda authorizer",
                    a.model.name
                )));
            };
            let outcome = lambda::authorize(gw, inv, &a.model.name, l, &arn).await?;
            // Phase 2: the function's policy and the resource policy (AWS's same-account table).
            let resource = policy.as_ref().map(|p| p.evaluate(&facts(inv, &arn, None)));
            match (outcome.decision, resource) {
                (Decision::Deny, _) => return Err(policy_denied(true)),
                (_, Some(Decision::Deny)) => return Err(access_denied(None, &arn, true)),
                (Decision::Allow, _) | (_, Some(Decision::Allow)) => {}
                (Decision::Silent, _) => return Err(policy_denied(false)),
            }
            inv.ctx.authorizer = outcome.map;
            return Ok(Some(outcome.result));
        }
    };
    // The resource policy after authentication (AWS's evaluation tables).
    if let Some(p) = &policy {
        let caller = result.as_ref().and_then(|r| r.iam.as_ref());
        let principal = caller.map(|c| (c.arn.as_str(), c.account_id.as_str()));
        let decision = p.evaluate(&facts(inv, &arn, principal));
        let who = caller.map(|c| c.arn.as_str());
        match (kind, decision) {
            (_, Decision::Deny) => return Err(access_denied(who, &arn, true)),
            (_, Decision::Allow) => {}
            // Same-account IAM callers are allowed by their own (implicit) policy.
            (AuthorizationType::AwsIam, Decision::Silent)
                if caller.is_some_and(|c| *c.account_id == *inv.ctx.account_id) => {}
            (_, Decision::Silent) => return Err(access_denied(who, &arn, false)),
        }
    }
    if let Some(r) = &result {
        apply(inv.ctx, r);
    }
    Ok(result)
}

/// Exposes an authorizer's result as `$context.authorizer.*` / `$context.identity.*`.
pub fn apply(ctx: &mut crate::context::RequestContext, r: &AuthResult) {
    ctx.authorizer = authorizer_map(r);
    if let Some(c) = &r.iam {
        ctx.identity_user_arn = Some(c.arn.clone());
        ctx.identity_access_key = Some(c.access_key.clone());
        ctx.identity_account_id = Some(c.account_id.clone());
        ctx.identity_user = Some(c.arn.rsplit('/').next().unwrap_or(&c.arn).to_string());
    }
}

/// `$context.authorizer`: `principalId`, the authorizer's context and the JWT claims.
pub fn authorizer_map(r: &AuthResult) -> Arc<Map<String, Value>> {
    let mut m = Map::new();
    if let Some(p) = &r.principal_id {
        m.insert("principalId".into(), Value::String(p.clone()));
    }
    for (k, v) in &r.context {
        m.insert(k.clone(), v.clone());
    }
    if let Some(c) = &r.claims {
        let claims: Map<String, Value> = c
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(s))
            })
            .collect();
        m.insert("claims".into(), Value::Object(claims));
    }
    Arc::new(m)
}

/// The authorizer a `CUSTOM` or `COGNITO_USER_POOLS` method names.
fn method_authorizer(inv: &Invocation<'_>) -> Result<Arc<AuthorizerRuntime>, GatewayError> {
    inv.method
        .model
        .authorizer_id
        .as_ref()
        .and_then(|id| inv.api.authorizers.get(id))
        .cloned()
        .ok_or_else(|| configuration_error("the method's authorizer does not exist"))
}
