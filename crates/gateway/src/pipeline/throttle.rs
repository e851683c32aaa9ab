//! Step 6b of AWS's pipeline: throttling, every level in AWS's order — the usage plan's
//! per-method limit for the key (else the plan's per-key limit), the stage's method settings
//! (else the stage default `*/*`), then the account. A request must get a token from every
//! bucket that applies; the first empty one answers `429 {"message":"Too Many Requests"}`.

use turnpike_model::rest::GatewayResponseType;
use turnpike_state::Limit;

use crate::error::GatewayError;
use crate::pipeline::api_key::KeyUse;
use crate::pipeline::Invocation;
use crate::Gateway;

pub fn throttled() -> GatewayError {
    GatewayError::new(GatewayResponseType::Throttled, "Too Many Requests")
}

pub fn check(gw: &Gateway, inv: &Invocation<'_>, key: Option<&KeyUse>) -> Result<(), GatewayError> {
    let runtime = inv.runtime;
    let access = gw.access();
    let limiter = &access.limiter;
    if let Some(k) = key {
        let per_method = k
            .plan
            .stage(&inv.api.id, &inv.stage.name)
            .and_then(|m| m.get(&inv.method.setting_key));
        let scoped = match (per_method, k.plan.throttle) {
            (Some(l), _) => Some((
                std::borrow::Cow::Owned(format!(
                    "{}:{}/{}{}",
                    k.bucket, inv.api.id, inv.stage.name, inv.method.setting_key
                )),
                *l,
            )),
            (None, Some(l)) => Some((std::borrow::Cow::Borrowed(&*k.bucket), l)),
            (None, None) => None,
        };
        if let Some((scope, l)) = scoped {
            if !limiter.try_acquire(&scope, l, inv.started) {
                return Err(throttled().with_detail(format!("usage plan {} throttle", k.plan.name)));
            }
        }
    }
    if let Some(t) = inv
        .stage
        .method_throttle
        .get(inv.method.index)
        .and_then(Option::as_ref)
    {
        let l = Limit {
            rate: t.rate.unwrap_or(runtime.access.account.rate),
            burst: t.burst.unwrap_or(runtime.access.account.burst),
        };
        if !limiter.try_acquire(&t.bucket, l, inv.started) {
            return Err(throttled().with_detail("stage/method throttle"));
        }
    }
    if !limiter.try_acquire_account(runtime.access.account, inv.started) {
        return Err(throttled().with_detail("account throttle"));
    }
    Ok(())
}
