//! `turnpike keys create|list|disable|enable|delete` and `turnpike usage`: the durable state in
//! the data directory, like API Gateway's CreateApiKey/GetApiKeys/UpdateApiKey/DeleteApiKey and
//! GetUsage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use turnpike_state::{KeyStore, NewKey, QuotaStore, SqliteStore};

#[derive(Args)]
pub struct StateArgs {
    /// Data directory (as given to `serve --data-dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Project file whose data directory to use (its `dataDir`, else `.turnpike/` beside it).
    #[arg(long)]
    project: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key (prints its id and value once).
    Create {
        name: String,
        /// The key value (20-128 characters); default 40 random alphanumerics.
        #[arg(long)]
        value: Option<String>,
        /// Usage plan(s) the key belongs to.
        #[arg(long = "plan")]
        plans: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List keys (values masked unless --include-values).
    List {
        #[arg(long)]
        include_values: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Disable a key (by id or name).
    Disable {
        key: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Enable a key (by id or name).
    Enable {
        key: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Delete a key (by id or name).
    Delete {
        key: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Args)]
pub struct UsageArgs {
    /// Only this usage plan.
    #[arg(long)]
    plan: Option<String>,
    /// Only this key (id).
    #[arg(long)]
    key_id: Option<String>,
    /// First day (YYYY-MM-DD, UTC); default today.
    #[arg(long)]
    start_date: Option<String>,
    /// Last day (YYYY-MM-DD, UTC); default today.
    #[arg(long)]
    end_date: Option<String>,
    #[command(flatten)]
    state: StateArgs,
}

fn open(state: &StateArgs) -> anyhow::Result<SqliteStore> {
    let dir = match (&state.data_dir, &state.project) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) => {
            let loaded = turnpike_model::load_project(p, &Default::default())
                .ok()
                .and_then(|pr| pr.access.data_dir);
            crate::serve::data_dir(loaded.as_deref(), p, None)
        }
        (None, None) => PathBuf::from(".turnpike"),
    };
    SqliteStore::open_dir(&dir).with_context(|| format!("opening the state in {}", dir.display()))
}

fn key_json(k: &turnpike_state::ApiKey, include_value: bool) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "value": if include_value { k.value.clone() } else { turnpike_state::mask(&k.value) },
        "enabled": k.enabled,
        "source": k.source.as_str(),
        "usagePlans": k.plans,
    })
}

pub fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            name,
            value,
            plans,
            disabled,
            state,
        } => {
            let s = open(&state)?;
            let k = s.create_key(&NewKey {
                id: None,
                name,
                value,
                enabled: !disabled,
                plans,
            })?;
            outln!("{}", serde_json::to_string_pretty(&key_json(&k, true))?);
        }
        KeysCommand::List {
            include_values,
            state,
        } => {
            let s = open(&state)?;
            let items: Vec<Value> = s
                .list_keys()?
                .iter()
                .map(|k| key_json(k, include_values))
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&json!({ "items": items }))?
            );
        }
        KeysCommand::Disable { key, state } => return set_enabled(&key, &state, false),
        KeysCommand::Enable { key, state } => return set_enabled(&key, &state, true),
        KeysCommand::Delete { key, state } => {
            let s = open(&state)?;
            let k = s.delete_key(&key)?;
            outln!("deleted API key {} ({})", k.id, k.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set_enabled(key: &str, state: &StateArgs, enabled: bool) -> anyhow::Result<ExitCode> {
    let s = open(state)?;
    let k = s.set_enabled(key, enabled)?;
    outln!("{}", serde_json::to_string_pretty(&key_json(&k, false))?);
    Ok(ExitCode::SUCCESS)
}

fn today() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    turnpike_state::period::day_string(turnpike_state::period::day_of(now))
}

/// GetUsage: `{"usagePlanId","startDate","endDate","items": {keyId: [[used, remaining], ...]}}`
/// per plan, one pair per day.
pub fn usage(args: UsageArgs) -> anyhow::Result<ExitCode> {
    let s = open(&args.state)?;
    let start = args.start_date.unwrap_or_else(today);
    let end = args.end_date.unwrap_or_else(|| start.clone());
    let (Some(sd), Some(ed)) = (
        turnpike_state::period::parse_day(&start),
        turnpike_state::period::parse_day(&end),
    ) else {
        anyhow::bail!("dates must be YYYY-MM-DD");
    };
    if ed < sd {
        anyhow::bail!("The usage data period cannot be negative: end date is before start date");
    }
    let rows = s.usage(args.plan.as_deref(), &start, &end)?;
    let plans = s.plans()?;
    let mut days = Vec::new();
    let mut d = sd;
    while d <= ed && days.len() < 366 {
        days.push(turnpike_state::period::day_string(d));
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    let mut out = Vec::new();
    for plan in plans
        .iter()
        .filter(|p| args.plan.as_ref().is_none_or(|n| *n == p.name))
    {
        let mut values = Map::new();
        let mut keys: Vec<String> = rows
            .iter()
            .filter(|r| r.plan == plan.name)
            .map(|r| r.key_id.clone())
            .collect();
        for k in s.list_keys()? {
            if k.plans.contains(&plan.name) {
                keys.push(k.id);
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            let key = key.as_str();
            if args.key_id.as_ref().is_some_and(|k| k != key) {
                continue;
            }
            let mut series = Vec::new();
            for day in &days {
                let used = rows
                    .iter()
                    .find(|r| r.plan == plan.name && r.key_id == key && &r.day == day)
                    .map_or(0, |r| r.used);
                let remaining = plan.quota.map(|q| {
                    let dd = turnpike_state::period::parse_day(day).unwrap_or(sd);
                    let (ps, _) = turnpike_state::period::period_bounds(q.period, dd);
                    let so_far: u64 = rows
                        .iter()
                        .filter(|r| r.plan == plan.name && r.key_id == key)
                        .filter(|r| {
                            turnpike_state::period::parse_day(&r.day)
                                .is_some_and(|rd| rd >= ps && rd <= dd)
                        })
                        .map(|r| r.used)
                        .sum();
                    let day_ms = dd.midnight().assume_utc().unix_timestamp() * 1000;
                    q.effective_limit(plan.created_ms, day_ms)
                        .saturating_sub(so_far)
                });
                series.push(json!([used, remaining]));
            }
            values.insert(key.to_string(), Value::Array(series));
        }
        out.push(json!({
            "usagePlanId": plan.id,
            "usagePlanName": plan.name,
            "startDate": start,
            "endDate": end,
            "items": values,
        }));
    }
    outln!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
    Ok(ExitCode::SUCCESS)
}
