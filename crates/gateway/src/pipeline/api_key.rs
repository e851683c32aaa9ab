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
    pub key: Arc<KnownKey>,
    pub plan: Arc<PlanRuntime>,
    /// The name of the plan's per-key throttle bucket for this key.
    pub bucket: Arc<str>,
    pub plan_created_ms: i64,
}

impl KeyUse {
    pub fn key_id(&self) -> &str {
        &self.key.key.id
    }
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
    inv: &mut Invocation<'_>,
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
            .and_then(|v| v.to_str().ok()),
        ApiKeySource::Authorizer => auth.and_then(|a| a.usage_identifier_key.as_deref()),
    };
    let Some(value) = value.filter(|v| !v.is_empty() && v.len() <= 1024) else {
        return Err(forbidden().with_detail("API key missing"));
    };
    let access = gw.access();
    let Some(store) = access.store.clone() else {
        return Err(forbidden().with_detail("no state store: API keys cannot be validated"));
    };
    let Some(known) = lookup(&access.keys, store, value).await? else {
        return Err(forbidden().with_detail("unknown API key"));
    };
    let key = &known.key;
    if !key.enabled {
        return Err(forbidden().with_detail(format!("API key {} is disabled", key.id)));
    }
    let runtime = inv.runtime;
    // The first of the project's plans that holds the key and covers this stage.
    let Some((plan, bucket)) = runtime.access.plans.iter().find_map(|p| {
        let (_, bucket) = known.buckets.iter().find(|(name, _)| *name == p.name)?;
        p.stage(&inv.api.id, &inv.stage.name)?;
        Some((p.clone(), bucket.clone()))
    }) else {
        return Err(forbidden().with_detail(format!(
            "API key {} is in no usage plan of this stage",
            key.id
        )));
    };
    let plan_created_ms = match &plan.quota {
        Some(_) => known
            .plans
            .iter()
            .find(|r| r.name == plan.name)
            .map_or(0, |r| r.created_ms),
        None => 0,
    };
    inv.ctx.api_key = Some(value.to_string());
    inv.ctx.api_key_id = Some(key.id.clone());
    Ok(Some(KeyUse {
        key: known.clone(),
        plan,
        bucket,
        plan_created_ms,
    }))
}

type QuotaJob = (
    turnpike_state::ConsumeRequest,
    tokio::sync::oneshot::Sender<Result<QuotaDecision, String>>,
);

/// Group commit of quota increments that wait for the disk (`--state-sync full`). A request
/// that queues while no batch is forming starts a flush task; the task yields once, so every
/// request that is ready on this worker queues too, then commits the whole batch with one
/// blocking call on the blocking pool (one journal write, one fsync). Each request is answered
/// only after the commit that holds its increment. The flush is a task of its own so that a
/// client going away cannot cancel it.
pub struct QuotaWriter {
    store: Arc<dyn turnpike_state::Store>,
    queue: std::sync::Mutex<Vec<QuotaJob>>,
    forming: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for QuotaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaWriter").finish_non_exhaustive()
    }
}

impl QuotaWriter {
    pub fn new(store: Arc<dyn turnpike_state::Store>) -> Arc<Self> {
        Arc::new(QuotaWriter {
            store,
            queue: std::sync::Mutex::new(Vec::new()),
            forming: std::sync::atomic::AtomicBool::new(false),
        })
    }

    async fn consume(
        self: &Arc<Self>,
        req: turnpike_state::ConsumeRequest,
    ) -> Result<QuotaDecision, String> {
        use std::sync::atomic::Ordering;
        let stopped = || "the quota writer stopped".to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.lock().map_err(|_| stopped())?.push((req, tx));
        if !self.forming.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().flush());
        }
        rx.await.map_err(|_| stopped())?
    }

    async fn flush(self: Arc<Self>) {
        tokio::task::yield_now().await;
        let jobs = match self.queue.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => Vec::new(),
        };
        // Requests queued from now on start the next batch (committed after this one).
        self.forming
            .store(false, std::sync::atomic::Ordering::Release);
        let (reqs, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let store = self.store.clone();
        let results = tokio::task::spawn_blocking(move || store.consume_batch(&reqs)).await;
        match results {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// A key as the store knows it, with the plans' records (quota start).
#[derive(Debug)]
pub struct KnownKey {
    pub key: turnpike_state::ApiKey,
    pub plans: Vec<turnpike_state::PlanRecord>,
    /// Every plan the key is in, with the name of the key's throttle bucket in it (named once
    /// per cache fill, not per request).
    pub buckets: Vec<(String, Arc<str>)>,
}

const KEY_CACHE_MAX: usize = 10_000;

/// Key lookups cached while the store's key generation stays the same: a change by any process
/// (`turnpike keys disable`, a reload) changes the generation and empties the cache, so changes
/// apply to requests that start more than [`GENERATION_REUSE`] after them.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<(u64, std::collections::HashMap<String, Arc<KnownKey>>)>,
    /// The last generation read and when: requests arriving together share one read.
    checked: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

/// How long a generation read serves other requests.
const GENERATION_REUSE: std::time::Duration = std::time::Duration::from_millis(20);

fn generation(
    cache: &KeyCache,
    store: &dyn turnpike_state::Store,
) -> Result<Option<u64>, GatewayError> {
    if let Ok(c) = cache.checked.lock() {
        if let Some((at, g)) = *c {
            if at.elapsed() < GENERATION_REUSE {
                return Ok(Some(g));
            }
        }
    }
    // One small read on the store's reader connection: it never waits for a commit.
    let g = store.key_generation().map_err(store_error)?;
    if let (Some(g), Ok(mut c)) = (g, cache.checked.lock()) {
        *c = Some((std::time::Instant::now(), g));
    }
    Ok(g)
}

/// The key with this value (`None`: unknown), from the cache when the generation allows.
async fn lookup(
    cache: &KeyCache,
    store: Arc<dyn turnpike_state::Store>,
    value: &str,
) -> Result<Option<Arc<KnownKey>>, GatewayError> {
    let generation = generation(cache, store.as_ref())?;
    if let Some(g) = generation {
        if let Ok(m) = cache.entries.lock() {
            if m.0 == g {
                if let Some(k) = m.1.get(value) {
                    return Ok(Some(k.clone()));
                }
            }
        }
    }
    let v = value.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let key = store.key_by_value(&v)?;
        match key {
            Some(key) => {
                let plans = store.plans()?;
                let buckets = key
                    .plans
                    .iter()
                    .map(|p| (p.clone(), Arc::from(format!("plan:{p}:{}", key.id))))
                    .collect();
                Ok(Some(KnownKey {
                    key,
                    plans,
                    buckets,
                }))
            }
            None => Ok(None),
        }
    })
    .await
    .map_err(store_error)?
    .map_err(|e: turnpike_state::StateError| store_error(e))?;
    let Some(found) = found.map(Arc::new) else {
        return Ok(None);
    };
    if let (Some(g), Ok(mut m)) = (generation, cache.entries.lock()) {
        if m.0 != g || m.1.len() >= KEY_CACHE_MAX {
            *m = (g, std::collections::HashMap::new());
        }
        m.1.insert(value.to_string(), found.clone());
    }
    Ok(Some(found))
}

/// Counts the request against the key's plan (durably) or rejects it with AWS's 429.
pub async fn consume_quota(gw: &Gateway, key: &KeyUse) -> Result<(), GatewayError> {
    let access = gw.access();
    let Some(store) = access.store.clone() else {
        return Ok(());
    };
    let now_ms = crate::context::now_epoch_ms();
    let decision = if !store.commit_may_block() {
        // A journal line written to the OS: cheaper inline than any hand-off.
        store
            .consume(
                &key.plan.name,
                key.key_id(),
                key.plan.quota.as_ref(),
                key.plan_created_ms,
                now_ms,
            )
            .map_err(store_error)?
    } else {
        let req = turnpike_state::ConsumeRequest {
            plan: key.plan.name.clone(),
            key_id: key.key_id().to_string(),
            quota: key.plan.quota,
            plan_created_ms: key.plan_created_ms,
            now_ms,
        };
        // `AccessState::with_store` sets the writer with the store.
        let Some(w) = &access.quota_writer else {
            return Err(store_error("no quota writer"));
        };
        w.consume(req).await.map_err(store_error)?
    };
    match decision {
        QuotaDecision::Allowed { .. } => Ok(()),
        QuotaDecision::Exceeded => Err(GatewayError::new(
            GatewayResponseType::QuotaExceeded,
            "Limit Exceeded",
        )),
    }
}
