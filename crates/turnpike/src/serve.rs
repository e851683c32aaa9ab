//! `turnpike serve` and `turnpike validate`: load, compile, serve, hot-reload, drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use turnpike_gateway::server::{self, ServerOptions};
use turnpike_gateway::{Gateway, Limits, Runtime};
use turnpike_model::{Diagnostic, LoadOptions, Project, Severity};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4567";

#[derive(Args)]
pub struct ServeArgs {
    /// Project file (turnpike.yaml) or OpenAPI/Swagger definition (JSON or YAML).
    file: PathBuf,
    /// Address to listen on (overrides the project file).
    #[arg(long)]
    listen: Option<String>,
    /// Stage to create for a bare OpenAPI definition.
    #[arg(long)]
    stage: Option<String>,
    /// Do not reload when the definition files change.
    #[arg(long)]
    no_watch: bool,
    /// Seconds to wait for in-flight requests on shutdown.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Directory of the durable state (API keys, quota counters); created on first start.
    /// Default: the project file's `dataDir`, else `.turnpike/` beside the project file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// WebSocket APIs: seconds without traffic before a connection is closed (AWS: 600).
    #[arg(long, default_value_t = 600)]
    ws_idle_timeout: u64,
    /// WebSocket APIs: maximum connection duration in seconds (AWS: 7200).
    #[arg(long, default_value_t = 7200)]
    ws_max_duration: u64,
    /// Seconds a client has to send a complete request head.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Durability of usage-plan counters. Each counted request is journaled before it is
    /// answered: `process` (default) writes the line to the OS (survives a crash or kill of
    /// Turnpike, not of the machine; AWS's own quotas are best-effort); `full` also fsyncs it
    /// (survives power loss; concurrent requests share one fsync, but the disk bounds the rate).
    #[arg(long, default_value = "process", value_parser = ["full", "process"])]
    state_sync: String,
    /// Worker threads serving requests (default: `TOKIO_WORKER_THREADS`, else one per CPU).
    /// With 1, the runtime is tokio's single-threaded scheduler: one event loop, like one nginx
    /// worker, without the cost of work stealing.
    #[arg(long)]
    workers: Option<usize>,
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        errln!("{d}");
    }
}

/// Loads and compiles; on failure prints every diagnostic and returns `None`.
fn build(file: &Path, stage: Option<String>) -> Result<(Project, Runtime), Vec<Diagnostic>> {
    let project =
        turnpike_model::load_project(file, &LoadOptions { stage }).map_err(|e| e.diagnostics)?;
    let mut warnings = Vec::new();
    let runtime = turnpike_gateway::compile(&project, &mut warnings)?;
    let mut project = project;
    project.warnings.extend(warnings);
    Ok((project, runtime))
}

pub fn validate(file: &Path, stage: Option<String>) -> anyhow::Result<ExitCode> {
    match build(file, stage) {
        Ok((project, _)) => {
            print_diagnostics(&project.warnings);
            let methods: usize = project
                .apis
                .iter()
                .flat_map(|a| &a.definition.resources)
                .map(|r| r.resource_methods.len())
                .sum();
            outln!(
                "{}: OK ({} API(s), {} method(s), {} WebSocket API(s), {} warning(s))",
                file.display(),
                project.apis.len(),
                methods,
                project.websocket_apis.len(),
                project.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            print_diagnostics(&diags);
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            errln!("{}: {} error(s)", file.display(), errors);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (project, runtime) = match build(&args.file, args.stage.clone()) {
        Ok(x) => x,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    print_diagnostics(&project.warnings);
    let listen = args
        .listen
        .clone()
        .or_else(|| project.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("invalid listen address {listen:?}"))?;
    let workers = args
        .workers
        .or_else(|| {
            std::env::var("TOKIO_WORKER_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    rt.block_on(async move {
        let listener = server::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        print_invoke_urls(&project, local);
        let functions = Arc::new(
            turnpike_lambda::Functions::new(&project.functions, lambda_settings(&project))
                .context("setting up the project's functions")?,
        );
        let gateway = Arc::new(
            Gateway::new(runtime, Limits::default())
                .with_websocket_settings(ws_settings(&args))
                .with_functions(functions.clone())
                .with_aws(project.aws.clone())
                .with_state(open_state(
                    &project,
                    &args.file,
                    args.data_dir.as_deref(),
                    &args.state_sync,
                )?),
        );
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        let _watcher = if args.no_watch {
            None
        } else {
            Some(watch(
                &project,
                args.file.clone(),
                args.stage.clone(),
                gateway.clone(),
            )?)
        };
        let opts = ServerOptions {
            drain_timeout: Duration::from_secs(args.drain_timeout),
            header_read_timeout: Duration::from_secs(args.header_timeout.max(1)),
            ..ServerOptions::default()
        };
        server::serve(gateway, listener, opts, shutdown).await;
        // No function process outlives the gateway.
        functions.shutdown().await;
        errln!("turnpike stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn lambda_settings(project: &Project) -> turnpike_lambda::Settings {
    turnpike_lambda::Settings {
        region: project.region.clone(),
        account_id: project.account_id.clone(),
    }
}

fn print_invoke_urls(project: &Project, local: SocketAddr) {
    let port = local.port();
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    // One line per stage, machine-readable enough for scripts waiting on startup.
    outln!("turnpike listening on http://{host}:{port}");
    for (i, api) in project.apis.iter().enumerate() {
        let id = &api.definition.api.id;
        for stage in &api.stages {
            let s = &stage.stage_name;
            if i == 0 {
                outln!(
                    "  {} ({id}) stage {s}: http://{host}:{port}/{s}/",
                    api.definition.api.name
                );
            }
            outln!(
                "  {} ({id}) stage {s}: http://{id}.execute-api.localhost:{port}/{s}/",
                api.definition.api.name
            );
            outln!(
                "  {} ({id}) stage {s}: http://{host}:{port}/_aws/execute-api/{id}/{s}/",
                api.definition.api.name
            );
        }
    }
    for api in &project.websocket_apis {
        let (id, name) = (&api.definition.api.api_id, &api.definition.api.name);
        for stage in &api.stages {
            let s = &stage.stage_name;
            outln!(
                "  {name} ({id}) WebSocket stage {s}: ws://{id}.execute-api.localhost:{port}/{s}"
            );
            outln!(
                "  {name} ({id}) WebSocket stage {s}: ws://{host}:{port}/_aws/execute-api/{id}/{s}"
            );
            outln!("  {name} ({id}) @connections stage {s}: http://{host}:{port}/{s}/@connections/{{connectionId}}");
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    // The handlers are installed here, before the server accepts its first connection: inside
    // the task they would be installed only when it first runs, and a SIGTERM sent as soon as
    // the server answered could still find the default action (exit without draining).
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    tracing::info!("shutting down: draining in-flight requests");
                    shutdown.cancel();
                });
                return;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot install the SIGTERM/SIGINT handlers");
            }
        }
    }
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: draining in-flight requests");
        shutdown.cancel();
    });
}

/// Watches the project file and every definition it names; a change reloads the whole project
/// and swaps it in atomically. An invalid edit keeps the running deployment and reports every
/// error.
fn watch(
    project: &Project,
    file: PathBuf,
    stage: Option<String>,
    gateway: Arc<Gateway>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watched: Vec<PathBuf> = vec![file.clone()];
    watched.extend(project.apis.iter().map(|a| a.source.clone()));
    let canonical: Vec<PathBuf> = watched
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let filter = canonical.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let relevant = ev.paths.iter().any(|p| {
                let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                filter.contains(&p)
            });
            if relevant && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })
    .context("starting the file watcher")?;
    // Watch directories, not files: editors replace files by renaming, which drops file watches.
    let mut dirs: Vec<PathBuf> = canonical
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", d.display()))?;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce bursts of events from one save.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let f = file.clone();
            let s = stage.clone();
            let built = tokio::task::spawn_blocking(move || build(&f, s)).await;
            match built {
                Ok(Ok((project, runtime))) => {
                    print_diagnostics(&project.warnings);
                    // Functions first: the new deployment may name functions only the new
                    // registry has. Retired functions stop after their invocations in flight.
                    match gateway
                        .functions
                        .reload(&project.functions, lambda_settings(&project))
                    {
                        Ok(s) => {
                            if !(s.started.is_empty() && s.retired.is_empty()) {
                                tracing::info!(started = ?s.started, retired = ?s.retired, kept = ?s.kept, "functions reloaded");
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reload failed; still serving the previous deployment");
                            continue;
                        }
                    }
                    if let Some(store) = gateway.access().store.clone() {
                        let access = runtime.access.clone();
                        let synced = tokio::task::spawn_blocking(move || {
                            turnpike_gateway::access::sync_store(store.as_ref(), &access)
                        })
                        .await;
                        if let Ok(Err(e)) = synced {
                            tracing::error!(error = %e, "reload: recording API keys and usage plans failed");
                        }
                    }
                    gateway.set_aws(project.aws.clone());
                    gateway.swap(runtime);
                    tracing::info!(file = %file.display(), "definition reloaded");
                }
                Ok(Err(diags)) => {
                    print_diagnostics(&diags);
                    tracing::error!(file = %file.display(), errors = diags.len(), "reload failed; still serving the previous deployment");
                }
                Err(e) => tracing::error!(error = %e, "reload task failed"),
            }
        }
    });
    Ok(watcher)
}

/// The data directory: `--data-dir`, else the project's `dataDir`, else `.turnpike/` beside the
/// project file.
pub fn data_dir(project_data_dir: Option<&Path>, file: &Path, flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    if let Some(d) = project_data_dir {
        return d.to_path_buf();
    }
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".turnpike")
}

/// Opens the state database and records the project's keys and plans in it.
fn open_state(
    project: &Project,
    file: &Path,
    flag: Option<&Path>,
    sync: &str,
) -> anyhow::Result<turnpike_gateway::access::AccessState> {
    let dir = data_dir(project.access.data_dir.as_deref(), file, flag);
    let durability = if sync == "process" {
        turnpike_state::Durability::Process
    } else {
        turnpike_state::Durability::Full
    };
    // A server being restarted may still hold the ledger for a moment.
    let role = turnpike_state::Role::Server(Duration::from_secs(5));
    let store = turnpike_state::SqliteStore::open_dir_with(&dir, durability, role)
        .with_context(|| format!("opening the state in {}", dir.display()))?;
    let access = turnpike_gateway::access::AccessRuntime::from_project(project);
    turnpike_gateway::access::sync_store(&store, &access)
        .context("recording the project's API keys and usage plans")?;
    tracing::info!(dir = %dir.display(), "state database ready");
    Ok(turnpike_gateway::access::AccessState::with_store(Arc::new(
        store,
    )))
}

/// WebSocket limits with the timers from the command line.
fn ws_settings(args: &ServeArgs) -> turnpike_gateway::websocket::WsSettings {
    turnpike_gateway::websocket::WsSettings {
        idle_timeout: Duration::from_secs(args.ws_idle_timeout.max(1)),
        max_duration: Duration::from_secs(args.ws_max_duration.max(1)),
        ..Default::default()
    }
}
