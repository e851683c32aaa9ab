//! WebSocket benchmark (bench/ws/README.md): RSS of `turnpike serve` holding N idle WebSocket
//! connections, and `@connections` broadcast throughput (POSTs delivered to clients per second).
//!
//! cargo run --release -p turnpike --example ws_bench -- [--connections 10000] [--receivers 1000] [--rounds 20]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

const PROJECT: &str = r#"{"websocketApis": [{
  "name": "bench", "id": "wsbench001",
  "routeSelectionExpression": "$request.body.action",
  "routes": {
    "$connect": {"integration": {"integrationType": "MOCK", "requestTemplates": {"$default": "{\"statusCode\": 200}"}}},
    "whoami": {"integration": {"integrationType": "MOCK", "requestTemplates": {"$default": "{\"statusCode\": 200}"},
               "integrationResponses": {"$default": {"responseTemplates": {"$default": "$context.connectionId"}}}},
               "routeResponseSelectionExpression": "$default", "routeResponses": {"$default": {}}}
  },
  "stages": [{"name": "bench"}]
}]}"#;

#[tokio::main]
async fn main() {
    let n = arg("--connections", 10_000);
    let receivers = arg("--receivers", 1_000).min(n);
    let rounds = arg("--rounds", 20);
    let dir = std::env::temp_dir().join(format!("turnpike-ws-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let project = dir.join("turnpike.json");
    std::fs::write(&project, PROJECT).expect("project");
    let bin = std::env::var("TURNPIKE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/turnpike").to_string()
    });
    let mut child = Command::new(&bin)
        .args([
            "serve",
            &project.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--no-watch",
        ])
        .env("TURNPIKE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e} (set TURNPIKE_BIN)"));
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = loop {
        let line = lines.next().expect("turnpike exited").expect("read");
        if let Some(rest) = line.strip_prefix("turnpike listening on http://") {
            break rest
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse().ok())
                .expect("port");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let url = format!("ws://127.0.0.1:{port}/bench");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base_rss = rss_kb(pid);

    // 1. N idle connections.
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4096;
    config.write_buffer_size = 0;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let url = url.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.expect("sem");
            for _ in 0..5 {
                if let Ok((ws, _)) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
                        .await
                {
                    return Some(ws);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Some(ws)) = t.await {
            conns.push(ws);
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kb(pid);
    println!(
        "connections open: {} of {n} in {connect_secs:.1}s ({:.0}/s)",
        conns.len(),
        conns.len() as f64 / connect_secs
    );
    println!("turnpike RSS: {:.1} MB at start, {:.1} MB with {} idle connections ({:.1} KB per connection)",
        base_rss as f64 / 1024.0, idle_rss as f64 / 1024.0, conns.len(),
        (idle_rss.saturating_sub(base_rss)) as f64 / conns.len().max(1) as f64);

    // 2. Broadcast: `receivers` clients learn their ids, then every id is POSTed `rounds` times.
    let mut ids = Vec::new();
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for mut ws in conns.drain(..receivers) {
        ws.send(Message::text(r#"{"action":"whoami"}"#))
            .await
            .expect("send");
        let id = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break t.as_str().to_string(),
                Some(Ok(_)) => continue,
                other => panic!("no id: {other:?}"),
            }
        };
        ids.push(id);
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if matches!(m, Message::Text(_)) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let total = (ids.len() * rounds) as u64;
    let ids = Arc::new(ids);
    let started = Instant::now();
    let posted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut posters = Vec::new();
    let workers = 64;
    for w in 0..workers {
        let (client, ids, posted, errors) =
            (client.clone(), ids.clone(), posted.clone(), errors.clone());
        posters.push(tokio::spawn(async move {
            let mut i = w;
            while i < ids.len() * rounds {
                let id = &ids[i % ids.len()];
                let r = client
                    .post(format!("http://127.0.0.1:{port}/bench/@connections/{id}"))
                    .body("broadcast message payload")
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 200 => {
                        posted.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += workers;
            }
        }));
    }
    for p in posters {
        let _ = p.await;
    }
    let post_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::Relaxed) < posted.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    println!("broadcast: {total} POSTs to {} connections ({rounds} rounds, 64 concurrent HTTP/1.1 clients): {} accepted, {} refused",
        ids.len(), posted.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    println!("broadcast: {got} messages delivered in {secs:.2}s = {:.0} messages/s (POSTs answered in {post_secs:.2}s)", got as f64 / secs);
    println!(
        "turnpike RSS after broadcast: {:.1} MB",
        rss_kb(pid) as f64 / 1024.0
    );
    for r in readers {
        r.abort();
    }
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
