//! The single-node [`Store`](crate::Store): one SQLite file in the data directory (WAL mode)
//! for keys, plans and folded usage, and the [usage ledger](crate::ledger) for quota counters:
//! in memory, journaled before each request is answered, folded into SQLite every second.
//! [`Durability::Process`] (the default): a journal line reaches the OS before the request is
//! answered; it survives a crash or kill of Turnpike, not of the machine. [`Durability::Full`]:
//! it is also fsync'd first, surviving power loss.
//!
//! One server owns a data directory's ledger; other processes (the `keys` and `usage` commands)
//! open the same store as observers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::ledger::{self, Ledger};
use crate::{
    check_key_value, derived_id, generate_key_value, random_id, ApiKey, ConsumeRequest, KeySource,
    KeyStore, NewKey, PlanRecord, Quota, QuotaDecision, QuotaPeriod, QuotaStore, Result,
    StateError, UsageRow,
};

/// The database file inside the data directory.
pub const DB_FILE: &str = "turnpike.db";

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: keys, plans, membership, per-day usage.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        value TEXT NOT NULL UNIQUE,
        enabled INTEGER NOT NULL,
        source TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX api_keys_name ON api_keys(name);
    CREATE TABLE usage_plans (
        name TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        quota_limit INTEGER,
        quota_period TEXT,
        quota_offset INTEGER,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE plan_keys (
        plan TEXT NOT NULL,
        key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        PRIMARY KEY (plan, key_id)
    );
    CREATE TABLE usage (
        plan TEXT NOT NULL,
        key_id TEXT NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (plan, key_id, day)
    );",
    // 2: a generation number that changes with every change to keys, plans or membership (also
    // by other processes, e.g. `turnpike keys disable`), so servers can cache key lookups.
    "CREATE TABLE key_generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO key_generation (id, value) VALUES (1, 0);
    CREATE TRIGGER api_keys_ins AFTER INSERT ON api_keys BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER api_keys_upd AFTER UPDATE ON api_keys BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER api_keys_del AFTER DELETE ON api_keys BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER plan_keys_ins AFTER INSERT ON plan_keys BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER plan_keys_del AFTER DELETE ON plan_keys BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER usage_plans_ins AFTER INSERT ON usage_plans BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER usage_plans_upd AFTER UPDATE ON usage_plans BEGIN UPDATE key_generation SET value = value + 1; END;
    CREATE TRIGGER usage_plans_del AFTER DELETE ON usage_plans BEGIN UPDATE key_generation SET value = value + 1; END;",
    // 3: the usage ledger's fold mark: journal records up to this sequence number are in `usage`.
    "CREATE TABLE ledger (id INTEGER PRIMARY KEY CHECK (id = 1), folded_seq INTEGER NOT NULL);
    INSERT INTO ledger (id, folded_seq) VALUES (1, 0);",
];

/// How far a counted request is guaranteed to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync'd before the request is answered: survives power loss. Bounded by the disk's
    /// fsync rate (concurrent requests share one).
    Full,
    /// Written to the OS before the request is answered: survives a crash or kill of the
    /// process, not of the machine. AWS itself applies quotas on a best-effort basis.
    #[default]
    Process,
}

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Present when this process owns the data directory's usage ledger.
    ledger: Option<Arc<Ledger>>,
    /// The ledger's ownership lock, released when the store is dropped.
    _ledger_lock: Option<std::fs::File>,
    durability: Durability,
    /// Tells the checkpoint thread to end.
    stop: Arc<AtomicBool>,
    /// Lookups on the request path (key by value, plans, the key generation) use their own
    /// connection: in WAL mode they never wait for the writer's commit (an fsync).
    reader: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// How a process opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Counts requests: owns the usage ledger, waiting up to this long for a previous owner
    /// (a server being restarted) to let go; fails with [`StateError::InUse`] after that.
    Server(Duration),
    /// Owns the ledger if nobody does (folding what a crashed server left), else observes.
    Tool,
}

impl SqliteStore {
    /// Opens (creating on first use) `DIR/turnpike.db` and migrates it, as a [`Role::Tool`].
    pub fn open_dir(dir: &Path) -> Result<Self> {
        Self::open_dir_with(dir, Durability::default(), Role::Tool)
    }

    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Durability::default(), Role::Tool)
    }

    /// [`SqliteStore::open_dir`] with the given durability of counted requests and role.
    pub fn open_dir_with(dir: &Path, durability: Durability, role: Role) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        Self::open_with(&dir.join(DB_FILE), durability, role)
    }

    pub fn open_with(path: &Path, durability: Durability, role: Role) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Process => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut conn = conn;
        Self::migrate(&mut conn)?;
        // Checkpoints (copying the WAL into the database, with fsyncs) run on a thread of their
        // own, not inside a request's commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(Duration::from_secs(10))?;
        let lock = match role {
            Role::Tool => ledger::try_lock(path)?,
            Role::Server(wait) => {
                let deadline = std::time::Instant::now() + wait;
                loop {
                    if let Some(l) = ledger::try_lock(path)? {
                        break Some(l);
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(StateError::InUse {
                            path: path.display().to_string(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let ledger = match lock {
            Some(_) => Some(Arc::new(Ledger::open(
                path,
                &mut conn,
                durability == Durability::Full,
            )?)),
            None => None,
        };
        let conn = Arc::new(Mutex::new(conn));
        let stop = Arc::new(AtomicBool::new(false));
        spawn_checkpointer(path, stop.clone());
        if let Some(l) = &ledger {
            spawn_folder(Arc::downgrade(l), conn.clone(), stop.clone());
        }
        Ok(SqliteStore {
            conn,
            ledger,
            _ledger_lock: lock,
            durability,
            reader: Mutex::new(reader),
            path: path.to_path_buf(),
            stop,
        })
    }

    /// Whether this process counts requests (owns the usage ledger).
    pub fn is_owner(&self) -> bool {
        self.ledger.is_some()
    }

    /// Folds the usage journal into SQLite now (it also happens every second).
    pub fn fold(&self) -> Result<()> {
        match &self.ledger {
            Some(l) => l.fold(&self.conn),
            None => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(conn: &mut Connection) -> Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StateError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().map_err(|_| poisoned())?;
        f(&mut c)
    }

    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.reader.lock().map_err(|_| poisoned())?;
        f(&mut c)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Best effort: what is not folded now is replayed from the journal at the next start.
        let _ = self.fold();
    }
}

/// Folds the usage journal every [`ledger::FOLD_EVERY`] until the store is dropped.
fn spawn_folder(
    ledger: std::sync::Weak<Ledger>,
    conn: Arc<Mutex<Connection>>,
    stop: Arc<AtomicBool>,
) {
    let _ = std::thread::Builder::new()
        .name("turnpike-ledger".into())
        .spawn(move || {
            let mut failing = false;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(ledger::FOLD_EVERY);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some(ledger) = ledger.upgrade() else {
                    break;
                };
                // A failed fold loses nothing (the journal stays and is retried); say so once.
                match ledger.fold(&conn) {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "folding the usage journal into SQLite failed; retrying every second (nothing is lost: the journal stays)");
                    }
                    Err(_) => {}
                }
            }
        });
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A passive checkpoint every [`CHECKPOINT_EVERY`] on a connection of its own (it never blocks
/// writers or readers), until the store is dropped. Without the thread SQLite would still work,
/// with a growing WAL, so a failure to start it is not an error.
fn spawn_checkpointer(path: &Path, stop: Arc<AtomicBool>) {
    let path = path.to_path_buf();
    let _ = std::thread::Builder::new()
        .name("turnpike-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        });
}

fn poisoned() -> StateError {
    StateError::Invalid("the state database lock is poisoned".into())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn plans_of(conn: &Connection, key_id: &str) -> Result<Vec<String>> {
    let mut st =
        conn.prepare_cached("SELECT plan FROM plan_keys WHERE key_id = ?1 ORDER BY plan")?;
    let rows = st.query_map([key_id], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

fn row_to_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let source: String = r.get(4)?;
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        value: r.get(2)?,
        enabled: r.get::<_, i64>(3)? != 0,
        source: if source == "project" {
            KeySource::Project
        } else {
            KeySource::Cli
        },
        created_ms: r.get(5)?,
        plans: Vec::new(),
    })
}

const KEY_COLS: &str = "id, name, value, enabled, source, created_ms";

fn find_key(conn: &Connection, id_or_name: &str) -> Result<ApiKey> {
    let by_id = conn
        .query_row(
            &format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"),
            [id_or_name],
            row_to_key,
        )
        .optional()?;
    let key = match by_id {
        Some(k) => k,
        None => {
            let mut st = conn.prepare(&format!(
                "SELECT {KEY_COLS} FROM api_keys WHERE name = ?1 ORDER BY created_ms"
            ))?;
            let found: Vec<ApiKey> = st
                .query_map([id_or_name], row_to_key)?
                .collect::<std::result::Result<_, _>>()?;
            match found.len() {
                0 => return Err(StateError::NoSuchKey(id_or_name.to_string())),
                1 => found
                    .into_iter()
                    .next()
                    .ok_or_else(|| StateError::NoSuchKey(id_or_name.to_string()))?,
                n => {
                    return Err(StateError::Invalid(format!(
                        "{n} keys are named {id_or_name:?}; give the key id"
                    )))
                }
            }
        }
    };
    let plans = plans_of(conn, &key.id)?;
    Ok(ApiKey { plans, ..key })
}

fn set_plans(tx: &rusqlite::Transaction<'_>, key_id: &str, plans: &[String]) -> Result<()> {
    tx.execute("DELETE FROM plan_keys WHERE key_id = ?1", [key_id])?;
    for p in plans {
        tx.execute(
            "INSERT OR IGNORE INTO plan_keys (plan, key_id) VALUES (?1, ?2)",
            params![p, key_id],
        )?;
    }
    Ok(())
}

impl KeyStore for SqliteStore {
    fn upsert_declared_key(&self, key: &NewKey) -> Result<ApiKey> {
        let value = key
            .value
            .clone()
            .ok_or_else(|| StateError::Invalid(format!("API key {:?} has no value", key.name)))?;
        check_key_value(&value)?;
        let id = key
            .id
            .clone()
            .unwrap_or_else(|| derived_id(&format!("apikey/{}", key.name)));
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let clash: Option<String> = tx
                .query_row(
                    "SELECT id FROM api_keys WHERE value = ?1 AND id <> ?2",
                    params![value, id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = clash {
                return Err(StateError::Invalid(format!(
                    "API key {:?}: its value is already used by key {other}; values must be unique",
                    key.name
                )));
            }
            tx.execute(
                "INSERT INTO api_keys (id, name, value, enabled, source, created_ms)
                 VALUES (?1, ?2, ?3, ?4, 'project', ?5)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, value = excluded.value,
                   enabled = excluded.enabled, source = 'project'",
                params![id, key.name, value, key.enabled as i64, now_ms()],
            )?;
            set_plans(&tx, &id, &key.plans)?;
            tx.commit()?;
            find_key(conn, &id)
        })
    }

    fn create_key(&self, key: &NewKey) -> Result<ApiKey> {
        let value = key.value.clone().unwrap_or_else(generate_key_value);
        check_key_value(&value)?;
        if key.name.is_empty() || key.name.chars().count() > 1024 {
            return Err(StateError::Invalid(
                "Invalid API Key name, can be at most 1024 characters.".into(),
            ));
        }
        let id = key.id.clone().unwrap_or_else(random_id);
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: Option<String> = tx
                .query_row(
                    "SELECT id FROM api_keys WHERE value = ?1 OR id = ?2",
                    params![value, id],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StateError::Invalid(
                    "an API key with this value (or id) already exists".into(),
                ));
            }
            tx.execute(
                "INSERT INTO api_keys (id, name, value, enabled, source, created_ms)
                 VALUES (?1, ?2, ?3, ?4, 'cli', ?5)",
                params![id, key.name, value, key.enabled as i64, now_ms()],
            )?;
            set_plans(&tx, &id, &key.plans)?;
            tx.commit()?;
            find_key(conn, &id)
        })
    }

    fn list_keys(&self) -> Result<Vec<ApiKey>> {
        self.with(|conn| {
            let mut st = conn.prepare(&format!(
                "SELECT {KEY_COLS} FROM api_keys ORDER BY created_ms, name"
            ))?;
            let keys: Vec<ApiKey> = st
                .query_map([], row_to_key)?
                .collect::<std::result::Result<_, _>>()?;
            keys.into_iter()
                .map(|k| {
                    let plans = plans_of(conn, &k.id)?;
                    Ok(ApiKey { plans, ..k })
                })
                .collect()
        })
    }

    fn key_by_value(&self, value: &str) -> Result<Option<ApiKey>> {
        self.read(|conn| {
            let k = conn
                .prepare_cached(&format!("SELECT {KEY_COLS} FROM api_keys WHERE value = ?1"))?
                .query_row([value], row_to_key)
                .optional()?;
            match k {
                None => Ok(None),
                Some(k) => {
                    let plans = plans_of(conn, &k.id)?;
                    Ok(Some(ApiKey { plans, ..k }))
                }
            }
        })
    }

    fn set_enabled(&self, id_or_name: &str, enabled: bool) -> Result<ApiKey> {
        self.with(|conn| {
            let k = find_key(conn, id_or_name)?;
            conn.execute(
                "UPDATE api_keys SET enabled = ?1 WHERE id = ?2",
                params![enabled as i64, k.id],
            )?;
            find_key(conn, &k.id)
        })
    }

    fn delete_key(&self, id_or_name: &str) -> Result<ApiKey> {
        self.with(|conn| {
            let k = find_key(conn, id_or_name)?;
            conn.execute("DELETE FROM api_keys WHERE id = ?1", [&k.id])?;
            Ok(k)
        })
    }

    fn sync_plans(&self, plans: &[(String, Option<Quota>)], now_ms: i64) -> Result<()> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (name, quota) in plans {
                tx.execute(
                    "INSERT INTO usage_plans (name, id, quota_limit, quota_period, quota_offset, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(name) DO UPDATE SET quota_limit = excluded.quota_limit,
                       quota_period = excluded.quota_period, quota_offset = excluded.quota_offset",
                    params![
                        name,
                        derived_id(&format!("usageplan/{name}")),
                        quota.map(|q| q.limit as i64),
                        quota.map(|q| q.period.as_str()),
                        quota.map(|q| q.offset as i64),
                        now_ms
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn key_generation(&self) -> Result<Option<u64>> {
        self.read(|conn| {
            let g: i64 = conn
                .prepare_cached("SELECT value FROM key_generation WHERE id = 1")?
                .query_row([], |r| r.get(0))?;
            Ok(Some(g as u64))
        })
    }

    fn plans(&self) -> Result<Vec<PlanRecord>> {
        self.read(|conn| {
            let mut st = conn.prepare_cached(
                "SELECT name, id, quota_limit, quota_period, quota_offset, created_ms FROM usage_plans ORDER BY name",
            )?;
            let rows = st.query_map([], |r| {
                let limit: Option<i64> = r.get(2)?;
                let period: Option<String> = r.get(3)?;
                let offset: Option<i64> = r.get(4)?;
                let quota = match (limit, period.as_deref().and_then(QuotaPeriod::parse)) {
                    (Some(l), Some(p)) => Some(Quota {
                        limit: l.max(0) as u64,
                        period: p,
                        offset: offset.unwrap_or(0).max(0) as u64,
                    }),
                    _ => None,
                };
                Ok(PlanRecord {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    quota,
                    created_ms: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }
}

impl QuotaStore for SqliteStore {
    fn consume(
        &self,
        plan: &str,
        key_id: &str,
        quota: Option<&Quota>,
        plan_created_ms: i64,
        now_ms: i64,
    ) -> Result<QuotaDecision> {
        let req = ledger::Count {
            plan,
            key_id,
            quota,
            plan_created_ms,
            now_ms,
        };
        self.consume_all(std::slice::from_ref(&req))?
            .pop()
            .ok_or_else(|| StateError::Invalid("no quota decision".into()))
    }

    fn commit_may_block(&self) -> bool {
        self.durability == Durability::Full
    }

    fn consume_batch(&self, batch: &[ConsumeRequest]) -> Vec<Result<QuotaDecision>> {
        let counts: Vec<ledger::Count<'_>> = batch
            .iter()
            .map(|r| ledger::Count {
                plan: &r.plan,
                key_id: &r.key_id,
                quota: r.quota.as_ref(),
                plan_created_ms: r.plan_created_ms,
                now_ms: r.now_ms,
            })
            .collect();
        match self.consume_all(&counts) {
            Ok(decisions) => decisions.into_iter().map(Ok).collect(),
            Err(e) => {
                let msg = e.to_string();
                batch
                    .iter()
                    .map(|_| Err(StateError::Invalid(msg.clone())))
                    .collect()
            }
        }
    }

    fn usage(&self, plan: Option<&str>, start_day: &str, end_day: &str) -> Result<Vec<UsageRow>> {
        // Observers read the journal files before SQLite: see `ledger::tally_above`.
        let observed = match &self.ledger {
            Some(_) => None,
            None => Some(ledger::observed_records(&self.path)?),
        };
        self.with(|conn| {
            let tx = conn.transaction()?;
            let unfolded = match (&self.ledger, observed) {
                // Holding the writer connection: no fold commits until the rows are read.
                (Some(l), _) => l.unfolded()?,
                (None, Some(records)) => ledger::tally_above(records, ledger::folded_seq(&tx)?),
                (None, None) => Default::default(),
            };
            let mut rows = usage_rows(&tx, plan, start_day, end_day)?;
            drop(tx);
            ledger::merge_rows(&mut rows, &unfolded, plan, start_day, end_day);
            Ok(rows)
        })
    }
}

impl SqliteStore {
    fn consume_all(&self, batch: &[ledger::Count<'_>]) -> Result<Vec<QuotaDecision>> {
        match &self.ledger {
            Some(l) => l.consume(&self.reader, batch),
            None => Err(StateError::InUse {
                path: self.path.display().to_string(),
            }),
        }
    }
}

fn usage_rows(
    conn: &Connection,
    plan: Option<&str>,
    start_day: &str,
    end_day: &str,
) -> Result<Vec<UsageRow>> {
    let mut st = conn.prepare(
        "SELECT plan, key_id, day, used FROM usage
         WHERE (?1 IS NULL OR plan = ?1) AND day >= ?2 AND day <= ?3
         ORDER BY plan, key_id, day",
    )?;
    let rows = st.query_map(params![plan, start_day, end_day], |r| {
        Ok(UsageRow {
            plan: r.get(0)?,
            key_id: r.get(1)?,
            day: r.get(2)?,
            used: r.get::<_, i64>(3)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, value: &str, plans: &[&str]) -> NewKey {
        NewKey {
            id: None,
            name: name.into(),
            value: Some(value.into()),
            enabled: true,
            plans: plans.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Batches and concurrent callers keep the quota exact; the key generation moves with key
    /// changes made through another connection (another process), not with usage.
    #[test]
    fn batches_exact_quota_and_key_generation() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let now = NOW;
        let q = quota(50, QuotaPeriod::Day);
        let s = Arc::new(
            SqliteStore::open_dir_with(
                dir.path(),
                Durability::Process,
                Role::Server(Duration::ZERO),
            )
            .unwrap(),
        );
        let k = s
            .upsert_declared_key(&key("bob", "bob-key-0123456789abcdefgh", &["p"]))
            .unwrap();
        s.sync_plans(&[("p".into(), Some(q))], now).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                let id = k.id.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .filter(|_| {
                            matches!(
                                s.consume("p", &id, Some(&q), now, now).unwrap(),
                                QuotaDecision::Allowed { .. }
                            )
                        })
                        .count()
                })
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(allowed, 40);
        let usage = s.usage(Some("p"), "2023-11-14", "2023-11-14").unwrap();
        assert_eq!(usage[0].used, 40);
        // One batch across the limit: 10 more allowed, in order, then Exceeded.
        let req = ConsumeRequest {
            plan: "p".into(),
            key_id: k.id.clone(),
            quota: Some(q),
            plan_created_ms: now,
            now_ms: now,
        };
        let out = s.consume_batch(&vec![req; 15]);
        let decisions: Vec<QuotaDecision> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            decisions[9],
            QuotaDecision::Allowed {
                used: 50,
                remaining: Some(0)
            }
        );
        assert!(decisions[10..]
            .iter()
            .all(|d| *d == QuotaDecision::Exceeded));
        let usage = s.usage(Some("p"), "2023-11-14", "2023-11-14").unwrap();
        assert_eq!(usage[0].used, 50);

        let g0 = s.key_generation().unwrap().unwrap();
        assert_eq!(
            s.key_generation().unwrap(),
            Some(g0),
            "usage does not move it"
        );
        let other = SqliteStore::open_dir(dir.path()).unwrap();
        other.set_enabled("bob", false).unwrap();
        let g1 = s.key_generation().unwrap().unwrap();
        assert_ne!(g0, g1);
        assert!(
            !s.key_by_value("bob-key-0123456789abcdefgh")
                .unwrap()
                .unwrap()
                .enabled
        );
    }

    fn setup(dir: &Path, quota: Quota, now: i64) -> (SqliteStore, String) {
        let s = SqliteStore::open_dir(dir).unwrap();
        let k = s
            .upsert_declared_key(&key("dora", "dora-key-0123456789abcdefgh", &["p"]))
            .unwrap();
        s.sync_plans(&[("p".into(), Some(quota))], now).unwrap();
        (s, k.id)
    }

    /// 2023-11-14 (a Tuesday), 22:13 UTC.
    const NOW: i64 = 1_700_000_000_000;

    fn quota(limit: u64, period: QuotaPeriod) -> Quota {
        Quota {
            limit,
            period,
            offset: 0,
        }
    }

    /// A new data directory with key `dora` in plan `p` under this quota.
    fn fresh_store(
        limit: u64,
        period: QuotaPeriod,
    ) -> (tempfile::TempDir, SqliteStore, String, Quota) {
        let dir = tempfile::tempdir().unwrap();
        let q = quota(limit, period);
        let (s, id) = setup(dir.path(), q, NOW);
        (dir, s, id, q)
    }

    fn used(s: &SqliteStore, day: &str) -> u64 {
        s.usage(Some("p"), day, day)
            .unwrap()
            .iter()
            .map(|r| r.used)
            .sum()
    }

    /// What a crash leaves is replayed once: lines already folded (a crash between the fold's
    /// commit and the journal's removal) are skipped by sequence number, new ones counted, and
    /// a torn last line (a write cut short; never answered) ignored.
    #[test]
    fn journal_replay_after_a_crash_counts_each_request_once() {
        let (dir, s, id, q) = fresh_store(100, QuotaPeriod::Day);
        let now = NOW;
        for _ in 0..3 {
            s.consume("p", &id, Some(&q), now, now).unwrap();
        }
        s.fold().unwrap();
        for _ in 0..2 {
            s.consume("p", &id, Some(&q), now, now).unwrap();
        }
        let db = dir.path().join(DB_FILE);
        let files = ledger_files(&db);
        assert_eq!(files.len(), 1, "one journal file in use: {files:?}");
        let unfolded = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(unfolded.lines().count(), 2, "{unfolded}");
        assert_eq!(used(&s, "2023-11-14"), 5);
        drop(s); // folds: 5 in SQLite
        assert!(ledger_files(&db)
            .iter()
            .all(|f| std::fs::metadata(f).unwrap().len() == 0));
        // As if the crash came before the folded file was removed, and after two more lines
        // (seq 6, 7) and half of an eighth were written to the next one.
        let prefix = ledger::journal_prefix(&db);
        std::fs::write(dir.path().join(format!("{prefix}7")), &unfolded).unwrap();
        std::fs::write(
            dir.path().join(format!("{prefix}8")),
            format!("6 2023-11-14 1 {id} p\n7 2023-11-14 1 {id} p\n8 2023-11-14 1 {id}"),
        )
        .unwrap();
        let (s, id) = setup(dir.path(), q, now);
        assert_eq!(used(&s, "2023-11-14"), 7);
        assert!(matches!(
            s.consume("p", &id, Some(&q), now, now).unwrap(),
            QuotaDecision::Allowed { used: 8, .. }
        ));
        // Sequence numbers go on from the highest seen, so the next replay skips nothing new.
        drop(s);
        let (s, _) = setup(dir.path(), q, now);
        assert_eq!(used(&s, "2023-11-14"), 8);
    }

    /// A fold that fails (here: SQLite refuses the insert) loses nothing: the usage stays
    /// visible and in the journal, and the next fold commits it even with nothing new.
    #[test]
    fn a_failed_fold_keeps_the_usage_and_is_retried() {
        let (dir, s, id, q) = fresh_store(100, QuotaPeriod::Day);
        let now = NOW;
        s.with(|c| {
            Ok(c.execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
            )?)
        })
        .unwrap();
        for _ in 0..3 {
            s.consume("p", &id, Some(&q), now, now).unwrap();
        }
        assert!(s.fold().is_err());
        assert_eq!(used(&s, "2023-11-14"), 3);
        s.with(|c| Ok(c.execute_batch("DROP TRIGGER temp.refuse;")?))
            .unwrap();
        s.fold().unwrap();
        let in_sqlite: i64 = s
            .with(
                |c| Ok(c.query_row("SELECT COALESCE(SUM(used), 0) FROM usage", [], |r| r.get(0))?),
            )
            .unwrap();
        assert_eq!(in_sqlite, 3);
        assert_eq!(used(&s, "2023-11-14"), 3);
        assert!(ledger_files(&dir.path().join(DB_FILE))
            .iter()
            .all(|f| std::fs::metadata(f).unwrap().len() == 0));
    }

    fn ledger_files(db: &Path) -> Vec<PathBuf> {
        let prefix = ledger::journal_prefix(db);
        let mut v: Vec<PathBuf> = std::fs::read_dir(db.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }

    /// While a server owns the ledger, other processes observe: their usage reports include
    /// what is journaled and not folded yet, they cannot count, and a second server is refused.
    #[test]
    fn observers_see_unfolded_usage_and_a_second_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let now = NOW;
        let q = quota(10, QuotaPeriod::Week);
        let owner =
            SqliteStore::open_dir_with(dir.path(), Durability::Full, Role::Server(Duration::ZERO))
                .unwrap();
        assert!(owner.is_owner());
        let (observer, id) = setup(dir.path(), q, now);
        assert!(!observer.is_owner());
        for _ in 0..4 {
            owner.consume("p", &id, Some(&q), now, now).unwrap();
        }
        assert_eq!(used(&observer, "2023-11-14"), 4);
        owner.fold().unwrap();
        owner.consume("p", &id, Some(&q), now, now).unwrap();
        assert_eq!(used(&observer, "2023-11-14"), 5);
        assert_eq!(used(&owner, "2023-11-14"), 5);
        assert!(matches!(
            observer.consume("p", &id, Some(&q), now, now),
            Err(StateError::InUse { .. })
        ));
        let second = SqliteStore::open_dir_with(
            dir.path(),
            Durability::Process,
            Role::Server(Duration::from_millis(120)),
        );
        assert!(matches!(second, Err(StateError::InUse { .. })));
        // The week's quota counts across days: 5 used on Tuesday, 5 left on Wednesday.
        let wed = now + 86_400_000;
        let allowed = (0..8)
            .filter(|_| {
                matches!(
                    owner.consume("p", &id, Some(&q), now, wed).unwrap(),
                    QuotaDecision::Allowed { .. }
                )
            })
            .count();
        assert_eq!(allowed, 5);
        drop(owner);
        let server = SqliteStore::open_dir_with(
            dir.path(),
            Durability::Process,
            Role::Server(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(
            server.consume("p", &id, Some(&q), now, wed).unwrap(),
            QuotaDecision::Exceeded
        );
    }

    #[test]
    fn keys_quota_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = NOW;
        let q = quota(2, QuotaPeriod::Day);
        {
            let s = SqliteStore::open_dir(dir.path()).unwrap();
            let k = s
                .upsert_declared_key(&key("alice", "alice-key-0123456789abcdef", &["gold"]))
                .unwrap();
            assert_eq!(k.plans, vec!["gold".to_string()]);
            assert!(format!("{k:?}").contains("redacted"));
            s.sync_plans(&[("gold".into(), Some(q))], now).unwrap();
            assert!(matches!(
                s.consume("gold", &k.id, Some(&q), now, now).unwrap(),
                QuotaDecision::Allowed {
                    used: 1,
                    remaining: Some(1)
                }
            ));
            assert!(s.check_short_value());
        }
        let s = SqliteStore::open_dir(dir.path()).unwrap();
        let k = s
            .key_by_value("alice-key-0123456789abcdef")
            .unwrap()
            .unwrap();
        assert!(matches!(
            s.consume("gold", &k.id, Some(&q), now, now).unwrap(),
            QuotaDecision::Allowed {
                used: 2,
                remaining: Some(0)
            }
        ));
        assert_eq!(
            s.consume("gold", &k.id, Some(&q), now, now).unwrap(),
            QuotaDecision::Exceeded
        );
        // The next day starts over.
        assert!(matches!(
            s.consume("gold", &k.id, Some(&q), now, now + 86_400_000)
                .unwrap(),
            QuotaDecision::Allowed { used: 1, .. }
        ));
        let rows = s.usage(None, "2000-01-01", "2100-01-01").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].used, 2);
        let d = s.set_enabled("alice", false).unwrap();
        assert!(!d.enabled);
        let c = s
            .create_key(&NewKey {
                id: None,
                name: "bob".into(),
                value: None,
                enabled: true,
                plans: vec!["gold".into()],
            })
            .unwrap();
        assert_eq!(c.value.len(), 40);
        assert_eq!(s.list_keys().unwrap().len(), 2);
        s.delete_key(&c.id).unwrap();
        assert_eq!(s.list_keys().unwrap().len(), 1);
        assert!(s.delete_key("nobody").is_err());
    }

    impl SqliteStore {
        fn check_short_value(&self) -> bool {
            self.create_key(&key("x", "short", &[])).is_err()
        }
    }
}
