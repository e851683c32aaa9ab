//! Render a mapping template N times and print renders/second, in the format of the
//! peer kit (`shared/peers/vtl-bench.py`, `TURNPIKE_VTL_CMD`):
//!
//! ```text
//! vtl_bench TEMPLATE REQUEST_JSON [N] [MAX_SECONDS] [--print]
//! ```
//!
//! `REQUEST_JSON` is `{"body": <JSON>, "params": {path, querystring, header},
//! "context": {...}, "stage_variables": {...}}`. The body is handed to the engine as
//! text (as the gateway receives it), so every render includes parsing it.
//! Two modes: `pre-parsed` (compile once, render N) and `parse+render`.

use std::time::{Duration, Instant};
use turnpike_vtl::{Limits, Params, RenderInput, Template};

fn pairs(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    v.and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn bench(mode: &str, n: u64, max: Duration, mut f: impl FnMut()) -> String {
    for _ in 0..n.min(200) {
        f();
    }
    let t0 = Instant::now();
    let mut done = 0u64;
    while done < n {
        f();
        done += 1;
        if done.is_multiple_of(64) && t0.elapsed() > max {
            break;
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    format!(
        "{{\"engine\":\"turnpike\",\"version\":\"{}\",\"mode\":\"{}\",\"renders\":{},\"seconds\":{:.4},\"renders_per_s\":{:.1},\"us_per_render\":{:.3}}}",
        env!("CARGO_PKG_VERSION"),
        mode,
        done,
        dt,
        done as f64 / dt,
        dt / done as f64 * 1e6
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let print = args.iter().any(|a| a == "--print");
    let pos: Vec<&String> = args.iter().filter(|a| *a != "--print").collect();
    if pos.len() < 2 {
        eprintln!("usage: vtl_bench TEMPLATE REQUEST_JSON [N] [MAX_SECONDS] [--print]");
        std::process::exit(2);
    }
    let src = std::fs::read_to_string(pos[0]).expect("read template");
    let req: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pos[1]).expect("read request"))
            .expect("request is JSON");
    let n: u64 = pos.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let max = Duration::from_secs_f64(pos.get(3).and_then(|s| s.parse().ok()).unwrap_or(5.0));

    let body = match req.get("body") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let p = req.get("params");
    let params = Params {
        path: pairs(p.and_then(|p| p.get("path"))),
        querystring: pairs(p.and_then(|p| p.get("querystring"))),
        header: pairs(p.and_then(|p| p.get("header"))),
    };
    let context = req
        .get("context")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let stage = req
        .get("stage_variables")
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let input = RenderInput {
        body: &body,
        params: &params,
        context: &context,
        stage_variables: &stage,
    };
    let limits = Limits::default();
    let tpl = Template::compile(&src).unwrap_or_else(|e| {
        eprintln!("compile error: {e}");
        std::process::exit(1)
    });
    let out = tpl.render(&input, &limits).unwrap_or_else(|e| {
        eprintln!("render error: {e}");
        std::process::exit(1)
    });
    if print {
        println!("{}", out.output);
        return;
    }
    // VTL_ONLY=pre-parsed|parse+render runs one mode (handy for profiling).
    let only = std::env::var("VTL_ONLY").unwrap_or_default();
    if only.is_empty() || only == "pre-parsed" {
        println!(
            "{}",
            bench("pre-parsed", n, max, || {
                let r = tpl.render(&input, &limits).expect("render");
                std::hint::black_box(r);
            })
        );
    }
    if only.is_empty() || only == "parse+render" {
        println!(
            "{}",
            bench("parse+render", n, max, || {
                let t = Template::compile(&src).expect("compile");
                let r = t.render(&input, &limits).expect("render");
                std::hint::black_box(r);
            })
        );
    }
}
