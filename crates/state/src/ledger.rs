//! The usage ledger: quota counters kept in memory and made durable by an append-only journal,
//! folded into SQLite in the background.
//!
//! A SQLite transaction per request (or per batch of concurrent requests) costs tens of
//! microseconds of CPU, and an fsync per commit bounds throughput by the disk. The ledger instead
//! decides each request against in-memory per-day counters and appends one short line per
//! increment to `turnpike.db.usage-journal.<generation>` before the request is answered:
//! one `write()` (plus `fdatasync` with [`Durability::Full`](crate::Durability::Full)). Every
//! [`FOLD_EVERY`] a thread starts a new journal file, adds the previous ones' increments to the
//! `usage` table in one transaction that also records the last sequence number folded, and then
//! deletes them. At start the owner replays what a crash left behind, skipping lines that were
//! already folded (their sequence number is not above the recorded one), so nothing is counted
//! twice or lost.
//!
//! One server process owns a data directory's ledger (an exclusive lock on
//! `turnpike.db.usage-lock`): counters in memory are only exact if nobody else increments them.
//! Other processes (`turnpike usage`, `turnpike keys`) open the store as observers: they read
//! the journal files as well as SQLite, so usage reports are current while the server runs.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};
use time::Date;

use crate::period::{day_of, day_string, parse_day, period_bounds};
use crate::{Quota, QuotaDecision, Result, StateError, UsageRow};

/// One request to count, borrowed from the caller (nothing is copied on the hot path).
#[derive(Debug, Clone, Copy)]
pub struct Count<'a> {
    pub plan: &'a str,
    pub key_id: &'a str,
    pub quota: Option<&'a Quota>,
    pub plan_created_ms: i64,
    pub now_ms: i64,
}

/// How often the journal is folded into SQLite.
pub const FOLD_EVERY: Duration = Duration::from_secs(1);

/// Days of history kept in memory per key: more than the longest quota period (a month).
const DAYS_KEPT: i32 = 40;

/// Longest plan name or key id the journal records (the project loader and key ids are far
/// shorter); longer ones are refused rather than written.
const MAX_NAME: usize = 1024;

/// plan -> key id -> julian day -> requests.
pub(crate) type Tally = HashMap<String, HashMap<String, BTreeMap<i32, u64>>>;

fn tally_add(t: &mut Tally, plan: &str, key: &str, day: i32, n: u64) {
    let keys = match t.get_mut(plan) {
        Some(k) => k,
        None => t.entry(plan.to_string()).or_default(),
    };
    let days = match keys.get_mut(key) {
        Some(d) => d,
        None => keys.entry(key.to_string()).or_default(),
    };
    *days.entry(day).or_default() += n;
}

fn tally_merge(into: &mut Tally, from: Tally) {
    for (plan, keys) in from {
        for (key, days) in keys {
            for (day, n) in days {
                tally_add(into, &plan, &key, day, n);
            }
        }
    }
}

fn julian(d: Date) -> i32 {
    d.to_julian_day()
}

fn day_text(julian_day: i32) -> String {
    Date::from_julian_day(julian_day)
        .map(day_string)
        .unwrap_or_default()
}

/// The database file's name, which the ledger's files start with.
fn db_name(db: &Path) -> &str {
    db.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(crate::sqlite::DB_FILE)
}

pub(crate) fn journal_prefix(db: &Path) -> String {
    format!("{}.usage-journal.", db_name(db))
}

fn journal_path(db: &Path, generation: u64) -> PathBuf {
    db.with_file_name(format!("{}{generation}", journal_prefix(db)))
}

pub(crate) fn lock_path(db: &Path) -> PathBuf {
    db.with_file_name(format!("{}.usage-lock", db_name(db)))
}

/// The journal files next to `db`, by generation.
fn journal_files(db: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = db.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let prefix = journal_prefix(db);
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("listing", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(gen) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((gen, entry.path()));
    }
    out.sort();
    Ok(out)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StateError {
    StateError::Invalid(format!("usage journal: {what} {}: {e}", path.display()))
}

/// Decimal digits of `n` (what `write!` does, without the formatting machinery per request).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Percent-escapes the bytes that delimit journal fields and lines.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b' ' | b'\n' | b'\r' | b'%' | b'\t' => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            _ => out.push(b),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One journal line: `<seq> <YYYY-MM-DD> <n> <key id> <plan>\n`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    seq: u64,
    day: i32,
    n: u64,
    key: String,
    plan: String,
}

fn write_record(out: &mut Vec<u8>, seq: u64, day: &str, n: u64, key: &str, plan: &str) {
    push_u64(out, seq);
    out.push(b' ');
    out.extend_from_slice(day.as_bytes());
    out.push(b' ');
    push_u64(out, n);
    out.push(b' ');
    escape_into(out, key);
    out.push(b' ');
    escape_into(out, plan);
    out.push(b'\n');
}

fn parse_record(line: &str) -> Option<Record> {
    let mut it = line.split(' ');
    let seq = it.next()?.parse().ok()?;
    let day = julian(parse_day(it.next()?)?);
    let n = it.next()?.parse().ok()?;
    let key = unescape(it.next()?)?;
    let plan = unescape(it.next()?)?;
    if it.next().is_some() {
        return None;
    }
    Some(Record {
        seq,
        day,
        n,
        key,
        plan,
    })
}

/// The complete lines of a journal file. A last line without its newline is a write that was
/// cut short by a crash: its requests were never answered, so it is not counted.
fn read_journal(path: &Path) -> Result<Vec<Record>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        // Folded and deleted by the owner in the meantime (observers race with it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("reading", path, e)),
    };
    let text = String::from_utf8_lossy(&text);
    let mut out = Vec::new();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => return Ok(out),
    };
    for (i, line) in complete.split('\n').enumerate() {
        match parse_record(line) {
            Some(r) => out.push(r),
            None => {
                return Err(StateError::Invalid(format!(
                    "usage journal {} line {}: not a usage record ({line:?}); the file is damaged: repair the line, or move the file aside to start without the usage it holds",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// The last journal sequence number whose increments are in the `usage` table.
pub(crate) fn folded_seq(conn: &Connection) -> Result<u64> {
    let s: i64 = conn.query_row("SELECT folded_seq FROM ledger WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    Ok(s.max(0) as u64)
}

/// Adds a tally to the `usage` table and records `seq` as folded, in one transaction.
fn fold_into(conn: &mut Connection, tally: &Tally, seq: u64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO usage (plan, key_id, day, used) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(plan, key_id, day) DO UPDATE SET used = used + ?4",
        )?;
        for (plan, keys) in tally {
            for (key, days) in keys {
                for (day, n) in days {
                    st.execute(params![plan, key, day_text(*day), *n as i64])?;
                }
            }
        }
    }
    tx.execute(
        "UPDATE ledger SET folded_seq = MAX(folded_seq, ?1) WHERE id = 1",
        [seq as i64],
    )?;
    tx.commit()?;
    Ok(())
}

struct Inner {
    journal: File,
    generation: u64,
    /// Bytes of complete records in `journal`: a failed write is cut back to this.
    journal_len: u64,
    /// The last sequence number written.
    seq: u64,
    /// Per-day counters of every (plan, key) used since start: SQLite's rows plus everything
    /// journaled since. Loaded on first use; exact because this process is the only writer.
    counts: Tally,
    /// Journaled, not yet handed to a fold.
    pending: Tally,
    /// Handed to the fold in progress (committed to SQLite once `folded` reaches its seq).
    folding: Option<(u64, Tally)>,
    /// Set when the journal could not be written or cut back: the next consume starts a new file.
    broken: bool,
    buf: Vec<u8>,
    /// The last day written and its `YYYY-MM-DD` text (the same for every request of a day).
    day: (i32, String),
}

/// The owner's ledger (see the module documentation).
pub struct Ledger {
    db: PathBuf,
    sync: bool,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("db", &self.db).finish()
    }
}

fn poisoned() -> StateError {
    StateError::Invalid("the usage ledger lock is poisoned".into())
}

fn open_journal(db: &Path, generation: u64, sync: bool) -> Result<File> {
    let path = journal_path(db, generation);
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error("creating", &path, e))?;
    if sync {
        // The new file's directory entry must be durable before records in it count as such.
        let dir = db.parent().filter(|p| !p.as_os_str().is_empty());
        if let Ok(d) = File::open(dir.unwrap_or(Path::new("."))) {
            let _ = d.sync_all();
        }
    }
    Ok(f)
}

/// Tries to become the owner of `db`'s ledger. `Ok(None)`: another process owns it.
pub(crate) fn try_lock(db: &Path) -> Result<Option<File>> {
    let path = lock_path(db);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("opening", &path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error("locking", &path, e)),
    }
}

impl Ledger {
    /// Becomes the owner (the caller holds the lock from [`try_lock`]): replays and folds what
    /// journals a previous owner left, then starts a new journal.
    pub(crate) fn open(db: &Path, conn: &mut Connection, sync: bool) -> Result<Self> {
        let folded = folded_seq(conn)?;
        let files = journal_files(db)?;
        let records = records_in(&files)?;
        let max_seq = records.iter().map(|r| r.seq).fold(folded, u64::max);
        let max_gen = files.iter().map(|(gen, _)| *gen).max().unwrap_or(0);
        if max_seq > folded {
            fold_into(conn, &tally_above(records, folded), max_seq)?;
        }
        for (_, path) in &files {
            std::fs::remove_file(path).map_err(|e| io_error("removing", path, e))?;
        }
        let generation = max_gen + 1;
        let journal = open_journal(db, generation, sync)?;
        Ok(Ledger {
            db: db.to_path_buf(),
            sync,
            inner: Mutex::new(Inner {
                journal,
                generation,
                journal_len: 0,
                seq: max_seq,
                counts: Tally::new(),
                pending: Tally::new(),
                folding: None,
                broken: false,
                buf: Vec::with_capacity(256),
                day: (i32::MIN, String::new()),
            }),
        })
    }

    /// Decides and journals a batch, in order. `reader` loads a key's history on first use.
    pub(crate) fn consume(
        &self,
        reader: &Mutex<Connection>,
        batch: &[Count<'_>],
    ) -> Result<Vec<QuotaDecision>> {
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let inner = &mut *guard;
        if inner.broken {
            inner.generation += 1;
            inner.journal = open_journal(&self.db, inner.generation, self.sync)?;
            inner.journal_len = 0;
            inner.broken = false;
        }
        let mut out = Vec::with_capacity(batch.len());
        let mut taken: Vec<(usize, i32)> = Vec::new();
        inner.buf.clear();
        for (i, req) in batch.iter().enumerate() {
            if req.plan.len() > MAX_NAME || req.key_id.len() > MAX_NAME {
                return Err(StateError::Invalid("plan or key name too long".into()));
            }
            let today_date = day_of(req.now_ms);
            let today = julian(today_date);
            let days = history(&mut inner.counts, reader, req.plan, req.key_id, today)?;
            let decision = match req.quota {
                Some(q) => {
                    let (start, end) = period_bounds(q.period, today_date);
                    let used: u64 = days.range(julian(start)..julian(end)).map(|(_, n)| n).sum();
                    let limit = q.effective_limit(req.plan_created_ms, req.now_ms);
                    if used >= limit {
                        out.push(QuotaDecision::Exceeded);
                        continue;
                    }
                    QuotaDecision::Allowed {
                        used: used + 1,
                        remaining: Some(limit - used - 1),
                    }
                }
                None => QuotaDecision::Allowed {
                    used: 0,
                    remaining: None,
                },
            };
            *days.entry(today).or_default() += 1;
            inner.seq += 1;
            if inner.day.0 != today {
                inner.day = (today, day_text(today));
            }
            write_record(
                &mut inner.buf,
                inner.seq,
                &inner.day.1,
                1,
                req.key_id,
                req.plan,
            );
            taken.push((i, today));
            out.push(decision);
        }
        if taken.is_empty() {
            return Ok(out);
        }
        let written = inner.journal.write_all(&inner.buf).and_then(|()| {
            if self.sync {
                inner.journal.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Nobody in the batch is answered with success: take the increments back, and cut
            // the file back so that a partial line cannot merge with the next one.
            for (i, day) in &taken {
                let r = &batch[*i];
                if let Some(n) = inner
                    .counts
                    .get_mut(r.plan)
                    .and_then(|k| k.get_mut(r.key_id))
                    .and_then(|d| d.get_mut(day))
                {
                    *n = n.saturating_sub(1);
                }
            }
            if inner.journal.set_len(inner.journal_len).is_err() {
                inner.broken = true;
            }
            let path = journal_path(&self.db, inner.generation);
            return Err(io_error("writing", &path, e));
        }
        inner.journal_len += inner.buf.len() as u64;
        for (i, day) in taken {
            let r = &batch[i];
            tally_add(&mut inner.pending, r.plan, r.key_id, day, 1);
        }
        Ok(out)
    }

    /// Moves what was journaled into SQLite and deletes the journal files it came from.
    pub(crate) fn fold(&self, conn: &Mutex<Connection>) -> Result<()> {
        let (tally, seq, old_gen) = {
            let mut inner = self.inner.lock().map_err(|_| poisoned())?;
            // Nothing new, and no failed fold waiting for another try.
            if inner.pending.is_empty() && inner.folding.is_none() {
                return Ok(());
            }
            let next = open_journal(&self.db, inner.generation + 1, self.sync)?;
            let old_gen = inner.generation;
            inner.journal = next;
            inner.generation += 1;
            inner.journal_len = 0;
            let tally = std::mem::take(&mut inner.pending);
            let seq = inner.seq;
            prune(&mut inner.counts);
            // A fold that failed earlier left its tally here: it goes again with this one.
            let mut all = tally;
            if let Some((_, earlier)) = inner.folding.take() {
                tally_merge(&mut all, earlier);
            }
            // Kept visible to usage reports until committed.
            inner.folding = Some((seq, all.clone()));
            (all, seq, old_gen)
        };
        let committed = {
            let mut c = conn.lock().map_err(|_| poisoned())?;
            let r = fold_into(&mut c, &tally, seq);
            if r.is_ok() {
                // Under the connection lock, so a usage report sees it either in SQLite or here.
                if let Ok(mut inner) = self.inner.lock() {
                    inner.folding = None;
                }
            }
            r
        };
        committed?;
        for (gen, path) in journal_files(&self.db)? {
            if gen <= old_gen {
                std::fs::remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
            }
        }
        Ok(())
    }

    /// Usage not yet in SQLite (journaled, or being folded). The caller holds the writer
    /// connection's lock, so no fold commits meanwhile.
    pub(crate) fn unfolded(&self) -> Result<Tally> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        let mut t = inner.pending.clone();
        if let Some((_, f)) = &inner.folding {
            tally_merge(&mut t, f.clone());
        }
        Ok(t)
    }
}

/// The per-day counters of (plan, key), loaded from SQLite on first use.
fn history<'a>(
    counts: &'a mut Tally,
    reader: &Mutex<Connection>,
    plan: &str,
    key: &str,
    today: i32,
) -> Result<&'a mut BTreeMap<i32, u64>> {
    let loaded = counts.get(plan).is_some_and(|keys| keys.contains_key(key));
    if !loaded {
        // Nothing of this key is pending or being folded (it would be loaded), so SQLite alone
        // is its complete history.
        let c = reader.lock().map_err(|_| poisoned())?;
        let mut st = c.prepare_cached(
            "SELECT day, used FROM usage WHERE plan = ?1 AND key_id = ?2 AND day >= ?3",
        )?;
        let rows = st.query_map(params![plan, key, day_text(today - DAYS_KEPT)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut days = BTreeMap::new();
        for row in rows {
            let (day, used) = row?;
            if let Some(d) = parse_day(&day) {
                days.insert(julian(d), used.max(0) as u64);
            }
        }
        counts
            .entry(plan.to_string())
            .or_default()
            .insert(key.to_string(), days);
    }
    counts
        .get_mut(plan)
        .and_then(|keys| keys.get_mut(key))
        .ok_or_else(|| StateError::Invalid("usage ledger: key history missing".into()))
}

/// Drops in-memory days that no quota period can reach any more: older than a key's newest day
/// by more than [`DAYS_KEPT`].
fn prune(counts: &mut Tally) {
    for keys in counts.values_mut() {
        for days in keys.values_mut() {
            if let Some(&newest) = days.keys().next_back() {
                let keep = days.split_off(&(newest - DAYS_KEPT));
                *days = keep;
            }
        }
    }
}

/// Adds unfolded usage to rows read from SQLite, keeping the filters of the query.
pub(crate) fn merge_rows(
    rows: &mut Vec<UsageRow>,
    extra: &Tally,
    plan: Option<&str>,
    start_day: &str,
    end_day: &str,
) {
    for (p, keys) in extra {
        if plan.is_some_and(|want| want != p) {
            continue;
        }
        for (key, days) in keys {
            for (day, n) in days {
                let day = day_text(*day);
                if day.as_str() < start_day || day.as_str() > end_day {
                    continue;
                }
                match rows
                    .iter_mut()
                    .find(|r| r.plan == *p && r.key_id == *key && r.day == day)
                {
                    Some(r) => r.used += n,
                    None => rows.push(UsageRow {
                        plan: p.clone(),
                        key_id: key.clone(),
                        day,
                        used: *n,
                    }),
                }
            }
        }
    }
    rows.sort_by(|a, b| (&a.plan, &a.key_id, &a.day).cmp(&(&b.plan, &b.key_id, &b.day)));
}

/// Observers: every record in the journal files. Read before SQLite's `folded_seq`, so that a
/// fold in between is neither lost nor counted twice (see [`tally_above`]).
pub(crate) fn observed_records(db: &Path) -> Result<Vec<Record>> {
    records_in(&journal_files(db)?)
}

/// Every complete record of these journal files, in file order.
fn records_in(files: &[(u64, PathBuf)]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (_, path) in files {
        out.extend(read_journal(path)?);
    }
    Ok(out)
}

/// Observers: the tally of the records above `folded` (the ones not in SQLite).
pub(crate) fn tally_above(records: Vec<Record>, folded: u64) -> Tally {
    let mut t = Tally::new();
    for r in records.into_iter().filter(|r| r.seq > folded) {
        tally_add(&mut t, &r.plan, &r.key, r.day, r.n);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_escapes() {
        let mut buf = Vec::new();
        let day = julian(parse_day("2026-12-02").unwrap());
        write_record(&mut buf, 42, &day_text(day), 3, "k 1%", "plan\nname");
        let line = String::from_utf8(buf).unwrap();
        assert_eq!(line, "42 2026-12-02 3 k%201%25 plan%0Aname\n");
        let r = parse_record(line.trim_end_matches('\n')).unwrap();
        assert_eq!(
            r,
            Record {
                seq: 42,
                day,
                n: 3,
                key: "k 1%".into(),
                plan: "plan\nname".into()
            }
        );
        assert!(parse_record("42 2026-12-02 3 k").is_none());
        assert!(parse_record("x 2026-12-02 3 k p").is_none());
    }

    #[test]
    fn a_torn_last_line_is_not_counted_and_garbage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        std::fs::write(&p, "1 2026-12-02 1 k p\n2 2026-12-02 1 k").unwrap();
        let r = read_journal(&p).unwrap();
        assert_eq!(r.len(), 1);
        std::fs::write(&p, "1 2026-12-02 1 k p\nnonsense\n").unwrap();
        let e = read_journal(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
