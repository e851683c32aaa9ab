//! Turnpike's state: what must survive a restart (API keys, usage plans, quota and usage
//! counters) and what throttling keeps in memory (token buckets).
//!
//! Both sit behind traits so that a cluster backend (PostgreSQL, Redis) can replace the
//! single-node implementations without touching the request pipeline:
//!
//! * [`Store`] ([`KeyStore`] + [`QuotaStore`]): durable; [`sqlite::SqliteStore`] is an embedded
//!   SQLite file with schema migrations, with quota counters in the [`ledger`]: each counted
//!   request is journaled before it is answered, so a crash of Turnpike loses nothing (with
//!   [`Durability::Full`], neither does a power loss): a counter is at most one request optimistic.
//! * [`RateLimiter`]: token buckets; [`limiter::MemoryLimiter`] is in-process.

pub mod ledger;
pub mod limiter;
pub mod period;
pub mod sqlite;

pub use limiter::{Limit, MemoryLimiter, RateLimiter};
pub use period::{Quota, QuotaPeriod};
pub use sqlite::{Durability, Role, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("no API key {0:?} (give its id or name)")]
    NoSuchKey(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the usage counters of {path} belong to another running `turnpike serve` (give each server its own --data-dir; a cluster shares counters through Redis)")]
    InUse { path: String },
    #[error(
        "the state database is newer (schema {found}) than this Turnpike (schema {supported})"
    )]
    SchemaTooNew { found: i64, supported: i64 },
}

pub type Result<T> = std::result::Result<T, StateError>;

/// Where a key was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The project file's `apiKeys` (re-applied at every start).
    Project,
    /// `turnpike keys create`.
    Cli,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Project => "project",
            KeySource::Cli => "cli",
        }
    }
}

/// An API key. `value` is a secret: never log it (its `Debug` is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub value: String,
    pub enabled: bool,
    pub source: KeySource,
    pub created_ms: i64,
    /// Names of the usage plans the key belongs to.
    pub plans: Vec<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("plans", &self.plans)
            .finish()
    }
}

/// A key as declared in the project file or on the command line.
#[derive(Clone)]
pub struct NewKey {
    /// `None`: derived from the name (project keys) or generated (CLI keys).
    pub id: Option<String>,
    pub name: String,
    /// `None`: 40 random alphanumerics, like AWS's generated keys.
    pub value: Option<String>,
    pub enabled: bool,
    pub plans: Vec<String>,
}

/// A usage plan's durable facts (the rest of the plan lives in the project file).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRecord {
    pub id: String,
    pub name: String,
    pub quota: Option<Quota>,
    /// When the plan was first seen (the quota `offset` applies to that period only).
    pub created_ms: i64,
}

/// The outcome of counting one request against a key's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Counted; `remaining` is `None` without a quota.
    Allowed { used: u64, remaining: Option<u64> },
    /// The quota is used up; nothing was counted.
    Exceeded,
}

/// One row of a usage report: requests of `key_id` on `day` (UTC `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub plan: String,
    pub key_id: String,
    pub day: String,
    pub used: u64,
}

/// API keys and their usage-plan membership.
pub trait KeyStore: Send + Sync {
    /// Creates or updates a key declared in the project file (matched by name).
    fn upsert_declared_key(&self, key: &NewKey) -> Result<ApiKey>;
    /// Creates a key (`turnpike keys create`). Values must be unique, 20..=128 characters.
    fn create_key(&self, key: &NewKey) -> Result<ApiKey>;
    fn list_keys(&self) -> Result<Vec<ApiKey>>;
    /// The key with this exact value.
    fn key_by_value(&self, value: &str) -> Result<Option<ApiKey>>;
    /// `id_or_name`: a key id, else a key name.
    fn set_enabled(&self, id_or_name: &str, enabled: bool) -> Result<ApiKey>;
    fn delete_key(&self, id_or_name: &str) -> Result<ApiKey>;
    /// Records the project's plans (name, quota); keeps `created_ms` of known plans.
    fn sync_plans(&self, plans: &[(String, Option<Quota>)], now_ms: i64) -> Result<()>;
    fn plans(&self) -> Result<Vec<PlanRecord>>;
    /// A number that changes whenever keys, plans or memberships change (by any process), so
    /// callers may cache [`KeyStore::key_by_value`] and [`KeyStore::plans`] while it stays the
    /// same. `None`: no such number, do not cache.
    fn key_generation(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// One request to count (see [`QuotaStore::consume`]).
#[derive(Debug, Clone)]
pub struct ConsumeRequest {
    pub plan: String,
    pub key_id: String,
    pub quota: Option<Quota>,
    pub plan_created_ms: i64,
    pub now_ms: i64,
}

/// Durable per-key request counters.
pub trait QuotaStore: Send + Sync {
    /// Counts one request of `key_id` under `plan` at `now_ms`, unless that would exceed the
    /// plan's quota. The increment is durable when this returns.
    fn consume(
        &self,
        plan: &str,
        key_id: &str,
        quota: Option<&Quota>,
        plan_created_ms: i64,
        now_ms: i64,
    ) -> Result<QuotaDecision>;
    /// Whether a commit may wait for the disk (fsync): callers then run
    /// [`QuotaStore::consume_batch`] off their async threads; otherwise inline is cheaper.
    fn commit_may_block(&self) -> bool {
        true
    }
    /// [`QuotaStore::consume`] for several requests at once, in order (each sees the ones
    /// before it), durable together when this returns: callers batch concurrent requests so
    /// that one commit serves them all.
    fn consume_batch(&self, batch: &[ConsumeRequest]) -> Vec<Result<QuotaDecision>> {
        batch
            .iter()
            .map(|r| {
                self.consume(
                    &r.plan,
                    &r.key_id,
                    r.quota.as_ref(),
                    r.plan_created_ms,
                    r.now_ms,
                )
            })
            .collect()
    }
    /// Requests per key and day between two UTC days (inclusive, `YYYY-MM-DD`).
    fn usage(&self, plan: Option<&str>, start_day: &str, end_day: &str) -> Result<Vec<UsageRow>>;
}

/// Everything durable. A cluster backend implements this one trait.
pub trait Store: KeyStore + QuotaStore {}
impl<T: KeyStore + QuotaStore> Store for T {}

/// Masks a secret for display: the first 4 characters and the length.
pub fn mask(value: &str) -> String {
    let head: String = value.chars().take(4).collect();
    format!("{head}…({} chars)", value.chars().count())
}

/// A stable 10-character `[a-z0-9]` id from a name (FNV-1a), like AWS's ids.
pub fn derived_id(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    base36(h, 10)
}

/// A random 10-character `[a-z0-9]` id.
pub fn random_id() -> String {
    base36(rand::random::<u64>(), 10)
}

fn base36(mut n: u64, len: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        out.push(A[(n % 36) as usize] as char);
        n /= 36;
        if n == 0 {
            n = 0x9e37_79b9_7f4a_7c15;
        }
    }
    out
}

/// 40 random alphanumerics (AWS's generated key values).
pub fn generate_key_value() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..40)
        .map(|_| A[rand::random_range(0..A.len())] as char)
        .collect()
}

/// AWS's CreateApiKey checks on a key value.
pub fn check_key_value(v: &str) -> Result<()> {
    let n = v.chars().count();
    if n < 20 {
        return Err(StateError::Invalid(
            "API Key value should be at least 20 characters".into(),
        ));
    }
    if n > 128 {
        return Err(StateError::Invalid(
            "API Key value exceeds maximum size of 128 characters".into(),
        ));
    }
    if !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(StateError::Invalid(
            "API Key value must be printable ASCII without spaces".into(),
        ));
    }
    Ok(())
}
