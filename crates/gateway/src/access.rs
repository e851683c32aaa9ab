//! Access control and traffic: what the pipeline's access steps share.
//!
//! * [`AccessRuntime`]: the project's access settings compiled with each deployment (account
//!   throttle, usage plans, IAM access keys); immutable like the rest of the snapshot.
//! * [`AccessState`]: what outlives deployments: the durable [`Store`] (API keys, quota counters),
//!   the token buckets, the JWKS cache and the authorizer result cache. Held by the
//!   [`Gateway`](crate::Gateway); token buckets keep their state across hot reloads when their
//!   settings are unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use turnpike_model::access::{AccessConfig, ApiKeySpec, ThrottleSpec};
use turnpike_model::Project;
use turnpike_state::{Limit, MemoryLimiter, Quota, QuotaPeriod, RateLimiter, Store};

/// A usage plan as the pipeline applies it.
#[derive(Debug, Clone)]
pub struct PlanRuntime {
    pub name: String,
    pub throttle: Option<Limit>,
    pub quota: Option<Quota>,
    /// `(api id, stage)` → per-method throttles keyed `{resourcePath}/{METHOD}`.
    pub stages: Vec<(String, String, HashMap<String, Limit>)>,
}

impl PlanRuntime {
    /// The plan's per-method throttles for a stage, if the plan covers it.
    pub fn stage(&self, api: &str, stage: &str) -> Option<&HashMap<String, Limit>> {
        self.stages
            .iter()
            .find(|(a, s, _)| a == api && s == stage)
            .map(|(_, _, m)| m)
    }
}

/// An IAM identity accepted for `AWS_IAM` methods.
#[derive(Clone)]
pub struct IamIdentity {
    pub secret: String,
    pub arn: String,
    pub account_id: String,
}

impl std::fmt::Debug for IamIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamIdentity")
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct AccessRuntime {
    pub account: Limit,
    pub plans: Vec<Arc<PlanRuntime>>,
    pub iam: HashMap<String, IamIdentity>,
    pub config: AccessConfig,
}

impl Default for AccessRuntime {
    fn default() -> Self {
        AccessRuntime::compile(&AccessConfig::default(), "123456789012", &[])
    }
}

pub fn limit(t: ThrottleSpec) -> Limit {
    Limit {
        rate: t.rate_limit,
        burst: t.burst_limit,
    }
}

impl AccessRuntime {
    pub fn from_project(project: &Project) -> Self {
        let first = project.apis.first().map(|a| a.definition.api.id.clone());
        let ids: Vec<String> = first.into_iter().collect();
        AccessRuntime::compile(&project.access, &project.account_id, &ids)
    }

    /// `default_api`: the id used for plan stages that name no API (the project's first API).
    pub fn compile(config: &AccessConfig, account_id: &str, default_api: &[String]) -> Self {
        let plans = config
            .usage_plans
            .iter()
            .map(|p| PlanRuntime {
                name: p.name.clone(),
                throttle: p.throttle.map(limit),
                quota: p.quota.as_ref().and_then(|q| {
                    Some(Quota {
                        limit: q.limit,
                        period: QuotaPeriod::parse(&q.period)?,
                        offset: q.offset,
                    })
                }),
                stages: p
                    .api_stages
                    .iter()
                    .filter_map(|s| {
                        let api = s.api.clone().or_else(|| default_api.first().cloned())?;
                        let methods = s
                            .throttle
                            .iter()
                            .map(|(k, t)| (k.clone(), limit(*t)))
                            .collect();
                        Some((api, s.stage.clone(), methods))
                    })
                    .collect(),
            })
            .map(Arc::new)
            .collect();
        let iam = config
            .iam_access_keys
            .iter()
            .map(|k| {
                let arn = k.arn.clone().unwrap_or_else(|| {
                    format!("arn:aws:iam::{account_id}:user/{}", k.access_key_id)
                });
                let account = arn
                    .split(':')
                    .nth(4)
                    .filter(|a| !a.is_empty())
                    .unwrap_or(account_id)
                    .to_string();
                (
                    k.access_key_id.clone(),
                    IamIdentity {
                        secret: k.secret_access_key.clone(),
                        arn,
                        account_id: account,
                    },
                )
            })
            .collect();
        AccessRuntime {
            account: limit(config.account_throttle()),
            plans,
            iam,
            config: config.clone(),
        }
    }

    /// Plans whose quota settings the store should know (`sync_plans`).
    pub fn plan_quotas(&self) -> Vec<(String, Option<Quota>)> {
        self.plans
            .iter()
            .map(|p| (p.name.clone(), p.quota))
            .collect()
    }

    /// The declared keys with the plans that list them.
    pub fn declared_keys(&self) -> Vec<(ApiKeySpec, Vec<String>)> {
        self.config
            .api_keys
            .iter()
            .map(|k| {
                let plans = self
                    .config
                    .usage_plans
                    .iter()
                    .filter(|p| p.keys.contains(&k.name))
                    .map(|p| p.name.clone())
                    .collect();
                (k.clone(), plans)
            })
            .collect()
    }
}

/// Records the project's keys and plans in the store (at start and on every reload).
pub fn sync_store(
    store: &dyn Store,
    access: &AccessRuntime,
) -> Result<(), turnpike_state::StateError> {
    store.sync_plans(&access.plan_quotas(), crate::context::now_epoch_ms())?;
    for (k, plans) in access.declared_keys() {
        store.upsert_declared_key(&turnpike_state::NewKey {
            id: k.id.clone(),
            name: k.name.clone(),
            value: Some(k.value.clone()),
            enabled: k.enabled,
            plans,
        })?;
    }
    Ok(())
}

/// A cached authorizer outcome.
#[derive(Debug, Clone)]
pub struct CachedAuth {
    pub expires: Instant,
    pub value: Arc<crate::pipeline::authorizer::AuthResult>,
}

/// State shared by all deployments.
pub struct AccessState {
    /// `None` when serving without a data directory: API keys then never validate.
    pub store: Option<Arc<dyn Store>>,
    pub limiter: Arc<dyn RateLimiter>,
    pub jwks: crate::pipeline::authorizer::jwt::JwksCache,
    /// Authorizer results by `{api}/{stage}/{authorizer}/{identity}`.
    pub auth_cache: Mutex<HashMap<String, CachedAuth>>,
    /// Signatures seen recently (replay detection), with when they may be forgotten.
    pub seen_signatures: Mutex<HashMap<String, Instant>>,
    /// API key lookups, valid while the store's key generation stays the same.
    pub keys: crate::pipeline::api_key::KeyCache,
    /// Group-commits quota increments (with a store).
    pub quota_writer: Option<Arc<crate::pipeline::api_key::QuotaWriter>>,
}

impl std::fmt::Debug for AccessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessState")
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for AccessState {
    fn default() -> Self {
        AccessState {
            store: None,
            limiter: Arc::new(MemoryLimiter::new()),
            jwks: Default::default(),
            auth_cache: Mutex::new(HashMap::new()),
            seen_signatures: Mutex::new(HashMap::new()),
            keys: Default::default(),
            quota_writer: None,
        }
    }
}

const AUTH_CACHE_MAX: usize = 10_000;

impl AccessState {
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        AccessState {
            quota_writer: Some(crate::pipeline::api_key::QuotaWriter::new(store.clone())),
            store: Some(store),
            ..Default::default()
        }
    }

    pub fn cached_auth(&self, key: &str) -> Option<Arc<crate::pipeline::authorizer::AuthResult>> {
        let mut m = self.auth_cache.lock().ok()?;
        match m.get(key) {
            Some(c) if c.expires > Instant::now() => Some(c.value.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn cache_auth(
        &self,
        key: String,
        ttl: Duration,
        value: Arc<crate::pipeline::authorizer::AuthResult>,
    ) {
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut m) = self.auth_cache.lock() {
            if m.len() >= AUTH_CACHE_MAX {
                let now = Instant::now();
                m.retain(|_, c| c.expires > now);
                if m.len() >= AUTH_CACHE_MAX {
                    m.clear();
                }
            }
            m.insert(
                key,
                CachedAuth {
                    expires: Instant::now() + ttl,
                    value,
                },
            );
        }
    }

    /// `true` the first time a signature is seen within `window`.
    pub fn first_use(&self, signature: &str, window: Duration) -> bool {
        let Ok(mut m) = self.seen_signatures.lock() else {
            return true;
        };
        let now = Instant::now();
        if m.len() > 100_000 {
            m.retain(|_, exp| *exp > now);
        }
        match m.get(signature) {
            Some(exp) if *exp > now => false,
            _ => {
                m.insert(signature.to_string(), now + window);
                true
            }
        }
    }
}
