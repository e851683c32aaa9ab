//! Step 6a of AWS's pipeline: the API key (`apiKeyRequired`) and its usage plan, and (after the
//! throttles) the plan's quota.
//!
//! The key comes from `x-api-key` (`apiKeySource: HEADER`) or from the authorizer's
//! `usageIdentifierKey` (`AUTHORIZER`). It must exist, be enabled and belong to a usage plan that
//! covers this API stage; otherwise AWS answers `403 {"message":"Forbidden"}` (INVALID_API_KEY).
//! Key values never reach the logs.

use std::sync::Arc;

use turnpike_model::rest::{ApiKeySource, GatewayResponseType};
use turnpike_state::QuotaDecision;

use crate::access::PlanRuntime;
use crate::error::GatewayError;
use crate::pipeline::authorizer::AuthResult;
use crate::pipeline::Invocation;
use crate::Gateway;

/// The key and plan a request is metered under.
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub key_id: String,
    pub plan: PlanRuntime,
    pub plan_created_ms: i64,
}

pub fn forbidden() -> GatewayError {
    GatewayError::new(GatewayResponseType::InvalidApiKey, "Forbidden")
}

fn store_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::internal(format!("state store: {e}"))
}

/// Validates the API key of a method with `apiKeyRequired`.
pub async fn identify(
    gw: &Gateway,
    inv: &mut Invocation,
    auth: Option<&AuthResult>,
) -> Result<Option<KeyUse>, GatewayError> {
    if !inv.method.model.api_key_required {
        return Ok(None);
    }
    let value = match inv.api.api_key_source {
        ApiKeySource::Header => inv
            .parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ApiKeySource::Authorizer => auth.and_then(|a| a.usage_identifier_key.clone()),
    };
    let Some(value) = value.filter(|v| !v.is_empty() && v.len() <= 1024) else {
        return Err(forbidden().with_detail("API key missing"));
    };
    let access = gw.access();
    let Some(store) = access.store.clone() else {
        return Err(forbidden().with_detail("no state store: API keys cannot be validated"));
    };
    let v = value.clone();
    let key = tokio::task::spawn_blocking(move || store.key_by_value(&v))
        .await
        .map_err(store_error)?
        .map_err(store_error)?;
    let Some(key) = key else {
        return Err(forbidden().with_detail("unknown API key"));
    };
    if !key.enabled {
        return Err(forbidden().with_detail(format!("API key {} is disabled", key.id)));
    }
    let runtime = gw.runtime();
    let Some(plan) = runtime
        .access
        .plans
        .iter()
        .find(|p| key.plans.contains(&p.name) && p.stage(&inv.api.id, &inv.stage.name).is_some())
        .cloned()
    else {
        return Err(forbidden().with_detail(format!(
            "API key {} is in no usage plan of this stage",
            key.id
        )));
    };
    let plan_created_ms = match &plan.quota {
        Some(_) => {
            let store = access.store.clone();
            let name = plan.name.clone();
            tokio::task::spawn_blocking(move || {
                store.map(|s| s.plans()).transpose().map(|p| {
                    p.and_then(|list| list.into_iter().find(|r| r.name == name))
                        .map_or(0, |r| r.created_ms)
                })
            })
            .await
            .map_err(store_error)?
            .map_err(store_error)?
        }
        None => 0,
    };
    inv.ctx.api_key = Some(value);
    inv.ctx.api_key_id = Some(key.id.clone());
    Ok(Some(KeyUse {
        key_id: key.id,
        plan,
        plan_created_ms,
    }))
}

/// Counts the request against the key's plan (durably) or rejects it with AWS's 429.
pub async fn consume_quota(gw: &Gateway, key: &KeyUse) -> Result<(), GatewayError> {
    let access = gw.access();
    let Some(store) = access.store.clone() else {
        return Ok(());
    };
    let plan = Arc::new(key.plan.clone());
    let key_id = key.key_id.clone();
    let created = key.plan_created_ms;
    let now = crate::context::now_epoch_ms();
    let decision = tokio::task::spawn_blocking(move || {
        store.consume(&plan.name, &key_id, plan.quota.as_ref(), created, now)
    })
    .await
    .map_err(store_error)?
    .map_err(store_error)?;
    match decision {
        QuotaDecision::Allowed { .. } => Ok(()),
        QuotaDecision::Exceeded => Err(GatewayError::new(
            GatewayResponseType::QuotaExceeded,
            "Limit Exceeded",
        )),
    }
}
