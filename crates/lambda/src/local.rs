//! Local functions: a pool of processes speaking the Runtime API.
//!
//! Processes start on demand (cold start), stay warm and take one invocation at a time. The
//! pool grows to the function's concurrency; beyond it invocations wait in a bounded queue, then
//! are throttled. A process that crashes, times out or exceeds its memory is killed (with its
//! whole process group) and replaced by the next invocation.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::runtime_api::{Job, Outcome, RuntimeApi};
use crate::{InvokeError, InvokeOptions, InvokeOutput, MAX_RESPONSE_PAYLOAD};

/// How long a new process may take to ask for its first invocation (Lambda's init limit).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub name: String,
    pub arn: String,
    pub args: Vec<String>,
    pub working_dir: Option<PathBuf>,
    pub environment: BTreeMap<String, String>,
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub concurrency: usize,
    pub queue_size: usize,
    pub region: String,
}

pub(crate) struct Pool {
    spec: Arc<Spec>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    idle: Mutex<Vec<Instance>>,
    running: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: TaskTracker,
    next_id: AtomicU64,
}

/// One running process and its Runtime API.
struct Instance {
    id: u64,
    pid: Option<u32>,
    api: RuntimeApi,
    /// `Some(description)` once the process has exited.
    exited: watch::Receiver<Option<String>>,
    /// Cancelling kills the process group and stops the Runtime API.
    kill: CancellationToken,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill.cancel();
    }
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn error_doc(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string())
}

fn unhandled(request_id: String, payload: Bytes, cold_start: bool) -> InvokeOutput {
    InvokeOutput {
        request_id,
        payload,
        function_error: Some("Unhandled".into()),
        cold_start,
    }
}

/// Kills a whole process group.
fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Resident memory of a process in MB (Linux `/proc`), if known.
fn rss_mb(pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

impl Pool {
    pub fn new(spec: Spec) -> Pool {
        Pool {
            permits: Arc::new(Semaphore::new(spec.concurrency)),
            spec: Arc::new(spec),
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            running: Arc::new(AtomicUsize::new(0)),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Resolves once no invocation is running or queued, or after the longest an invocation can
    /// take. Meant for a retired pool, which gets no new callers: the slots stay taken so a
    /// straggler waits for the shutdown instead of starting a process.
    pub async fn drained(&self) {
        let longest = self.spec.timeout + INIT_TIMEOUT + Duration::from_secs(1);
        let all = u32::try_from(self.spec.concurrency).unwrap_or(u32::MAX);
        if let Ok(Ok(p)) = tokio::time::timeout(longest, self.permits.acquire_many(all)).await {
            p.forget();
        }
    }

    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.permits.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await;
    }

    pub async fn invoke(
        &self,
        payload: Bytes,
        opts: InvokeOptions,
    ) -> Result<InvokeOutput, InvokeError> {
        if self.stop.is_cancelled() {
            return Err(InvokeError::ShuttingDown(self.spec.name.clone()));
        }
        let started = Instant::now();
        let caller_deadline = opts.caller_timeout.map(|t| started + t);
        // Concurrency: a free slot, else a place in the queue, else throttle.
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(InvokeError::ShuttingDown(self.spec.name.clone()))
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
                if queued >= self.spec.queue_size {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(InvokeError::Throttled);
                }
                let acquire = self.permits.clone().acquire_owned();
                let got = match caller_deadline {
                    Some(d) => tokio::time::timeout_at(d.into(), acquire).await.ok(),
                    None => Some(acquire.await),
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match got {
                    None => {
                        return Err(InvokeError::CallerTimeout(
                            opts.caller_timeout.unwrap_or_default(),
                        ))
                    }
                    Some(Err(_)) => return Err(InvokeError::ShuttingDown(self.spec.name.clone())),
                    Some(Ok(p)) => p,
                }
            }
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let warm = loop {
            let popped = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match popped {
                Some(i) if i.exited.borrow().is_none() => break Some(i),
                Some(_) => continue,
                None => break None,
            }
        };
        let cold_start = warm.is_none();
        let instance = match warm {
            Some(i) => i,
            None => match self.spawn().await {
                Ok(i) => i,
                Err(reason) => {
                    return Err(InvokeError::StartFailed {
                        name: self.spec.name.clone(),
                        reason,
                    })
                }
            },
        };
        // Init: wait for the first `/next` (cold start only).
        if cold_start {
            match self.wait_ready(&instance, caller_deadline).await {
                Ok(()) => {}
                Err(Failure::Output(payload)) => {
                    return Ok(unhandled(request_id, payload, true));
                }
                Err(Failure::CallerTimeout) => {
                    return Err(InvokeError::CallerTimeout(
                        opts.caller_timeout.unwrap_or_default(),
                    ))
                }
            }
        }
        let result = self
            .run(
                &instance,
                request_id.clone(),
                payload,
                &opts,
                caller_deadline,
            )
            .await;
        drop(permit);
        match result {
            Ok((outcome, healthy)) => {
                if healthy && !self.stop.is_cancelled() {
                    self.idle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(instance);
                }
                Ok(match outcome {
                    Outcome::Response(b) => InvokeOutput {
                        request_id,
                        payload: b,
                        function_error: None,
                        cold_start,
                    },
                    Outcome::Error(b) => unhandled(request_id, b, cold_start),
                    Outcome::TooLarge => unhandled(
                        request_id,
                        error_doc(
                            "Function.ResponseSizeTooLarge",
                            &format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes)."),
                        ),
                        cold_start,
                    ),
                })
            }
            Err(Failure::Output(p)) => Ok(unhandled(request_id, p, cold_start)),
            Err(Failure::CallerTimeout) => Err(InvokeError::CallerTimeout(
                opts.caller_timeout.unwrap_or_default(),
            )),
        }
    }

    async fn wait_ready(
        &self,
        instance: &Instance,
        caller_deadline: Option<Instant>,
    ) -> Result<(), Failure> {
        let mut ready = instance.api.shared.ready.subscribe();
        let mut init_err = instance.api.shared.init_error.subscribe();
        let mut exited = instance.exited.clone();
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        let deadline = caller_deadline.map_or(init_deadline, |c| c.min(init_deadline));
        loop {
            if *ready.borrow_and_update() {
                return Ok(());
            }
            if let Some(b) = init_err.borrow_and_update().clone() {
                instance.kill.cancel();
                return Err(Failure::Output(init_error_doc(b)));
            }
            if let Some(status) = exited.borrow_and_update().clone() {
                return Err(Failure::Output(error_doc(
                    "Runtime.ExitError",
                    &format!("RequestId: (init) Error: Runtime exited with error: {status}"),
                )));
            }
            tokio::select! {
                _ = ready.changed() => {}
                _ = init_err.changed() => {}
                _ = exited.changed() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    instance.kill.cancel();
                    if caller_deadline.is_some_and(|c| c <= init_deadline) {
                        return Err(Failure::CallerTimeout);
                    }
                    return Err(Failure::Output(error_doc(
                        "Runtime.InitTimeout",
                        &format!("Init timed out after {:.2} seconds", INIT_TIMEOUT.as_secs_f64()),
                    )));
                }
            }
        }
    }

    /// Runs one job on a ready instance. `Ok((outcome, healthy))`.
    async fn run(
        &self,
        instance: &Instance,
        request_id: String,
        payload: Bytes,
        opts: &InvokeOptions,
        caller_deadline: Option<Instant>,
    ) -> Result<(Outcome, bool), Failure> {
        let spec = &self.spec;
        let (tx, mut rx) = oneshot::channel();
        let function_arn = match &opts.qualifier {
            Some(q) => format!("{}:{q}", spec.arn),
            None => spec.arn.clone(),
        };
        let job = Job {
            request_id: request_id.clone(),
            payload,
            deadline_ms: epoch_ms() + spec.timeout.as_millis(),
            function_arn,
            trace_id: opts.trace_id.clone().unwrap_or_else(crate::new_trace_id),
            client_context: opts.client_context.clone(),
            cognito_identity: opts.cognito_identity.clone(),
            reply: tx,
        };
        let started = Instant::now();
        crate::log::line(format!(
            "[lambda:{}] START RequestId: {request_id} Version: $LATEST\n",
            spec.name
        ));
        let timeout_at = started + spec.timeout;
        let mut exited = instance.exited.clone();
        if instance.api.jobs.send(job).await.is_err() {
            return Err(Failure::Output(error_doc(
                "Runtime.ExitError",
                &format!("RequestId: {request_id} Error: Runtime exited"),
            )));
        }
        // The first check after 50 ms: a short invocation costs no /proc read.
        let mem_period = Duration::from_millis(50);
        let mut mem_check =
            tokio::time::interval_at(tokio::time::Instant::now() + mem_period, mem_period);
        let result = loop {
            tokio::select! {
                r = &mut rx => {
                    break match r {
                        Ok(o) => Ok((o, true)),
                        Err(_) => Err(Failure::Output(error_doc(
                            "Runtime.ExitError",
                            &format!("RequestId: {request_id} Error: Runtime exited"),
                        ))),
                    };
                }
                _ = exited.changed() => {
                    // Give a response posted just before the exit a chance to win.
                    if let Ok(o) = rx.try_recv() {
                        break Ok((o, false));
                    }
                    let status = exited.borrow().clone().unwrap_or_default();
                    break Err(Failure::Output(error_doc(
                        "Runtime.ExitError",
                        &format!("RequestId: {request_id} Error: Runtime exited with error: {status}"),
                    )));
                }
                _ = mem_check.tick() => {
                    if rss_mb(instance.pid).is_some_and(|mb| mb > u64::from(spec.memory_mb)) {
                        instance.kill.cancel();
                        break Err(Failure::Output(error_doc(
                            "Runtime.OutOfMemory",
                            &format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed"),
                        )));
                    }
                }
                _ = tokio::time::sleep_until(timeout_at.into()) => {
                    instance.kill.cancel();
                    break Err(Failure::Output(error_doc(
                        "Sandbox.Timedout",
                        &format!(
                            "{} {request_id} Task timed out after {:.2} seconds",
                            rfc3339_now(),
                            spec.timeout.as_secs_f64()
                        ),
                    )));
                }
                _ = sleep_until_opt(caller_deadline) => {
                    instance.kill.cancel();
                    break Err(Failure::CallerTimeout);
                }
                _ = self.stop.cancelled() => {
                    break Err(Failure::Output(error_doc(
                        "Runtime.ExitError",
                        &format!("RequestId: {request_id} Error: Runtime exited with error: shutting down"),
                    )));
                }
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        crate::log::line(format!(
            "[lambda:{name}] END RequestId: {request_id}\n[lambda:{name}] REPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tMemory Size: {} MB\n",
            spec.memory_mb,
            name = spec.name,
        ));
        result
    }

    /// Starts a new process with its own Runtime API.
    async fn spawn(&self) -> Result<Instance, String> {
        let spec = &self.spec;
        let kill = self.stop.child_token();
        let api = RuntimeApi::start(kill.clone())
            .await
            .map_err(|e| format!("cannot start the Runtime API: {e}"))?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut cmd = tokio::process::Command::new(&spec.args[0]);
        cmd.args(&spec.args[1..]);
        if let Some(d) = &spec.working_dir {
            cmd.current_dir(d);
        }
        let day = time::OffsetDateTime::now_utc();
        let stream = format!(
            "{:04}/{:02}/{:02}/[$LATEST]{}",
            day.year(),
            day.month() as u8,
            day.day(),
            uuid::Uuid::new_v4().simple()
        );
        let task_root = spec
            .working_dir
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let env: [(&str, String); 14] = [
            ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", spec.region.clone()),
            ("AWS_DEFAULT_REGION", spec.region.clone()),
            ("_HANDLER", spec.handler.clone().unwrap_or_default()),
            ("LAMBDA_TASK_ROOT", task_root),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
            (
                "AWS_EXECUTION_ENV",
                format!(
                    "AWS_Lambda_{}",
                    spec.runtime.clone().unwrap_or_else(|| "provided".into())
                ),
            ),
            ("TZ", ":UTC".into()),
        ];
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.envs(&spec.environment);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: only async-signal-safe prctl(2) runs between fork and exec. The process is
        // killed if Turnpike dies without running its shutdown (SIGKILL, crash).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run {:?} (working directory {:?}): {e}",
                spec.args.join(" "),
                spec.working_dir
            )
        })?;
        let pid = child.id();
        self.running.fetch_add(1, Ordering::SeqCst);
        if let Some(out) = child.stdout.take() {
            let pipe = crate::output::Pipe::new(out.as_raw_fd());
            api.shared.add_output(pipe.clone());
            self.tasks
                .spawn(crate::output::pump(out, pipe, spec.name.clone()));
        }
        if let Some(err) = child.stderr.take() {
            let pipe = crate::output::Pipe::new(err.as_raw_fd());
            api.shared.add_output(pipe.clone());
            self.tasks
                .spawn(crate::output::pump(err, pipe, spec.name.clone()));
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let running = self.running.clone();
        let k = kill.clone();
        let name = spec.name.clone();
        self.tasks.spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = k.cancelled() => {
                    kill_group(pid);
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // Whatever the process left behind in its group goes too.
            kill_group(pid);
            k.cancel();
            let desc = match status {
                Ok(s) => describe_exit(s),
                Err(e) => e.to_string(),
            };
            tracing::debug!(function = %name, instance = id, "process exited: {desc}");
            running.fetch_sub(1, Ordering::SeqCst);
            let _ = exit_tx.send(Some(desc));
        });
        Ok(Instance {
            id,
            pid,
            api,
            exited: exit_rx,
            kill,
        })
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            let name = match sig {
                9 => "killed".to_string(),
                11 => "segmentation fault".to_string(),
                6 => "aborted".to_string(),
                15 => "terminated".to_string(),
                n => format!("{n}"),
            };
            return format!("signal: {name}");
        }
    }
    match s.code() {
        Some(c) => format!("exit status {c}"),
        None => "exited".into(),
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

enum Failure {
    /// A function error document (Unhandled).
    Output(Bytes),
    CallerTimeout,
}

/// Lambda reports an init failure of the invocation as the runtime posted it.
fn init_error_doc(b: Bytes) -> Bytes {
    if serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| v.is_object()) {
        b
    } else {
        error_doc("Runtime.Unknown", &String::from_utf8_lossy(&b))
    }
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .finish()
    }
}
