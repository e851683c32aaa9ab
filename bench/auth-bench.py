#!/usr/bin/env python3
"""Access control on: Turnpike with API key + usage plan + cached Lambda TOKEN authorizer, next
to Turnpike's plain HTTP_PROXY passthrough and nginx, in ONE run.

  bench/auth-bench.py                  # 3 interleaved reps x 5 s, c64 and c8 (~2 min)
  QUICK=1 bench/auth-bench.py          # smoke test: 1 rep x 2 s

Targets (all on 127.0.0.1, started here, stopped by PID at the end, also on an error):
  upstream       nginx `return 200 '{"ok":true}'`                                  :18300
  direct         wrk straight to the upstream
  nginx          nginx reverse proxy, 1 worker, upstream keepalive                 :18301
  turnpike       `/{proxy+}` ANY HTTP_PROXY to the upstream, no access control     :18303
  turnpike-auth  the same route with `apiKeyRequired` (key in a usage plan with a per-key
                 throttle and a daily quota, both far above the load) and a Lambda TOKEN
                 authorizer (`authorizerResultTtlInSeconds: 300`, bench/auth/authorizer.py,
                 a Runtime API script): the cache answers every request after the first.
                 Every request is counted in the usage ledger (a journal line written to
                 the OS) before the answer (`--state-sync process`, the default)         :18304
  turnpike-auth-full  the same with `--state-sync full` (journal lines fsync'd before the
                 answer, concurrent requests sharing one fsync: survives power loss)     :18305

Every target gets the same request: GET /hello with `Authorization: Bearer bench-token` and
`x-api-key` (Turnpike: /bench/hello, stage `bench`). Same CPU layout as proxy-bench.py: proxies on
CPU 0, wrk and the upstream on CPU 1; TOKIO_WORKER_THREADS=1 (nginx has 1 worker).

Environment: QUICK, REPS, DURATION, CONNS, PIN=0, TURNPIKE_BIN, NO_BUILD=1, TURNPIKE_LOG,
RESULTS_DIR (default bench/results/auth-<UTC stamp>/).
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(BENCH, "lib"))
import bench as B  # noqa: E402

STAGE = "bench"
UP_PORT = 18300
PORTS = {"nginx": 18301, "turnpike": 18303, "turnpike-auth": 18304, "turnpike-auth-full": 18305}
TARGETS = ["direct", "nginx", "turnpike", "turnpike-auth", "turnpike-auth-full"]
KEY = "bench-key-0123456789abcdefghij"
TOKEN = "Bearer bench-token"
QUICK = os.environ.get("QUICK") == "1"
REPS = int(os.environ.get("REPS") or (1 if QUICK else 3))
DURATION = int(os.environ.get("DURATION") or (2 if QUICK else 5))
CONNS = [int(c) for c in os.environ.get("CONNS", "64,8").split(",")]
PIN = os.environ.get("PIN", "1") != "0" and B.NCPU >= 2 and shutil.which("taskset")
PROXY_CPU, CLIENT_CPU = ("0", "1") if PIN else (None, None)
BIG = 1_000_000_000


def url_of(t):
    if t == "direct":
        return f"http://127.0.0.1:{UP_PORT}/hello"
    if t.startswith("turnpike"):
        return f"http://127.0.0.1:{PORTS[t]}/{STAGE}/hello"
    return f"http://127.0.0.1:{PORTS[t]}/hello"


def turnpike_binary():
    if os.environ.get("TURNPIKE_BIN"):
        return os.path.abspath(os.environ["TURNPIKE_BIN"])
    if os.environ.get("NO_BUILD") != "1":
        B.log("[build] cargo build --release -p turnpike")
        if subprocess.run(["cargo", "build", "--release", "-p", "turnpike"], cwd=REPO).returncode != 0:
            raise SystemExit("cargo build failed")
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return os.path.join(json.loads(meta.stdout)["target_directory"], "release", "turnpike")


def definition(auth):
    op = {
        "parameters": [{"name": "proxy", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {},
        "x-amazon-apigateway-integration": {
            "type": "http_proxy", "httpMethod": "ANY", "uri": f"http://127.0.0.1:{UP_PORT}/{{proxy}}",
            "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"},
            "passthroughBehavior": "when_no_match",
        },
    }
    doc = {"openapi": "3.0.1", "info": {"title": "auth-bench", "version": "1"},
           "paths": {"/{proxy+}": {"x-amazon-apigateway-any-method": op}}}
    if auth:
        op["security"] = [{"tok": [], "api_key": []}]
        doc["components"] = {"securitySchemes": {
            "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
            "tok": {"type": "apiKey", "name": "Authorization", "in": "header",
                    "x-amazon-apigateway-authtype": "custom",
                    "x-amazon-apigateway-authorizer": {
                        "type": "token", "identitySource": "method.request.header.Authorization",
                        "authorizerResultTtlInSeconds": 300,
                        "authorizerUri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
                                         "arn:aws:lambda:us-east-1:123456789012:function:auth/invocations"}}}}
    return doc


def project(run, t):
    d = os.path.join(run, t)
    os.makedirs(d, exist_ok=True)
    auth = t.startswith("turnpike-auth")
    with open(os.path.join(d, "api.json"), "w") as f:
        json.dump(definition(auth), f, indent=1)
    p = {"throttling": {"rateLimit": BIG, "burstLimit": BIG},
         "apis": [{"definition": "api.json", "id": "authbench1", "stages": [{"name": STAGE}]}]}
    if auth:
        p["apiKeys"] = [{"name": "bench", "value": KEY}]
        p["usagePlans"] = [{"name": "bench", "apiStages": [{"api": "authbench1", "stage": STAGE}],
                            "throttle": {"rateLimit": BIG, "burstLimit": BIG},
                            "quota": {"limit": BIG, "period": "DAY"}, "keys": ["bench"]}]
        p["functions"] = {"auth": {"command": [sys.executable, os.path.join(BENCH, "auth", "authorizer.py")],
                                   "environment": {"AUTH_COUNT": os.path.join(d, "invocations")}}}
    path = os.path.join(d, "turnpike.json")
    with open(path, "w") as f:
        json.dump(p, f, indent=1)
    return path


def render(src, dst, **kv):
    with open(src) as f:
        text = f.read()
    for k, v in kv.items():
        text = text.replace(f"@{k}@", str(v))
    with open(dst, "w") as f:
        f.write(text)
    return dst


def start(run, binary):
    for port in [UP_PORT, *PORTS.values()]:
        if not B.port_free(port):
            raise SystemExit(f"port {port} is busy")
    up = B.Server("upstream", ["nginx", "-p", run, "-c", render(
        os.path.join(BENCH, "conf/nginx-upstream.conf"), os.path.join(run, "nginx-upstream.conf"),
        RUN=run, PORT=UP_PORT)], cpus=CLIENT_CPU).start()
    B.wait_http(url_of("direct"), timeout=10, server=up)
    servers = {"upstream": up}
    servers["nginx"] = B.Server("nginx", ["nginx", "-p", run, "-c", render(
        os.path.join(BENCH, "conf/nginx-proxy.conf"), os.path.join(run, "nginx-proxy.conf"),
        RUN=run, PORT=PORTS["nginx"], UPSTREAM=f"127.0.0.1:{UP_PORT}")], cpus=PROXY_CPU).start()
    env = {"TOKIO_WORKER_THREADS": "1", "TURNPIKE_LOG": os.environ.get("TURNPIKE_LOG", "warn")}
    for t in ("turnpike", "turnpike-auth", "turnpike-auth-full"):
        sync = ["--state-sync", "full"] if t == "turnpike-auth-full" else []
        servers[t] = B.Server(t, [binary, "serve", project(run, t), "--listen", f"127.0.0.1:{PORTS[t]}",
                                  "--no-watch", "--drain-timeout", "2", *sync], cpus=PROXY_CPU, env=env).start()
    for t in ("nginx", "turnpike", "turnpike-auth", "turnpike-auth-full"):
        if t.startswith("turnpike"):
            B.wait_log_line(servers[t], "turnpike listening on http://", timeout=30)
        else:
            B.wait_http(url_of(t), timeout=10, server=servers[t])
        check(t)
    return servers


def get(url, headers):
    import urllib.request
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check(t):
    """The target answers the benchmark request with the upstream's 200; turnpike-auth also
    rejects a request without the key (403) and with another token (401)."""
    st, body = get(url_of(t), {"Authorization": TOKEN, "x-api-key": KEY})
    if st != 200 or json.loads(body) != {"ok": True}:
        raise SystemExit(f"{t}: unexpected answer {st} {body[:200]!r}")
    if t.startswith("turnpike-auth"):
        for headers, want in (({"Authorization": TOKEN}, 403), ({"Authorization": "Bearer x", "x-api-key": KEY}, 401)):
            st, body = get(url_of(t), headers)
            if st != want:
                raise SystemExit(f"{t}: {headers} answered {st} {body[:200]!r}, expected {want}")


def main():
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run bench/setup.sh first")
    built = turnpike_binary()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir = os.path.abspath(os.environ.get("RESULTS_DIR") or os.path.join(BENCH, "results", f"auth-{stamp}"))
    run = os.path.join(outdir, "run")
    os.makedirs(run, exist_ok=True)
    B.set_logdir(os.path.join(outdir, "logs"))
    binary = os.path.join(run, "turnpike-bin")  # private copy: a rebuild cannot swap it mid-run
    shutil.copy2(built, binary)
    # Same request for every target (wrk_report.lua reads WRK_HEADERS).
    os.environ["WRK_HEADERS"] = f"Authorization: {TOKEN}|x-api-key: {KEY}"
    B.log(f"[auth-bench] targets={TARGETS} conns={CONNS} reps={REPS} duration={DURATION}s; "
          f"{'proxy on CPU 0, wrk + upstream on CPU 1' if PIN else 'unpinned'}; results -> {outdir}")
    runs = []
    try:
        servers = start(run, binary)
        for t in TARGETS:
            B.run_wrk(url_of(t), conns=max(CONNS), duration=1, cpus=CLIENT_CPU, logname=f"warmup-{t}")
        for rep in range(REPS):
            order = TARGETS[rep % len(TARGETS):] + TARGETS[:rep % len(TARGETS)]
            for c in CONNS:
                for t in order:
                    watch = {"proxy": servers[t]} if t in servers else {}
                    r = B.run_wrk(url_of(t), conns=c, duration=DURATION, cpus=CLIENT_CPU, watch=watch,
                                  logname=f"{t}-c{c}")
                    r.pop("extra", None)
                    r.update(target=t, conns=c, rep=rep + 1)
                    runs.append(r)
                    B.log(f"  rep{rep + 1} c{c:<3} {t:<14} {r['rps']:>9.0f} rps  p50 {B.fmt_us(r['p50_us']):>9}"
                          f"  p99 {B.fmt_us(r['p99_us']):>9}  err {r['errors']}")
                    time.sleep(0.3)
        invocations = 0
        for t in ("turnpike-auth", "turnpike-auth-full"):
            with open(os.path.join(run, t, "invocations")) as f:
                invocations += len(f.read().split())
        for t, s in servers.items():
            if not s.alive():
                raise SystemExit(f"{t} died during the run; see {s.logfile}")
    finally:
        B.stop_all()
        os.unlink(binary)
    rows = []
    for c in CONNS:
        med = {}
        for t in TARGETS:
            rs = [r for r in runs if r["target"] == t and r["conns"] == c]
            med[t] = {"rps": B.median([r["rps"] for r in rs]), "p50_us": B.median([r["p50_us"] for r in rs]),
                      "p99_us": B.median([r["p99_us"] for r in rs]), "errors": sum(r["errors"] for r in rs),
                      "cpu_us": B.median([r["cpu_us_per_req"].get("proxy") for r in rs])}
        for t in TARGETS:
            m = med[t]
            rows.append({"conns": c, "target": t, **m,
                         "vs_turnpike": m["rps"] / med["turnpike"]["rps"] if med["turnpike"]["rps"] else None})
    lines = [f"# auth-bench {stamp}", "",
             f"{REPS} reps x {DURATION} s, medians; GET /hello with Authorization + x-api-key; "
             f"{'proxy on CPU 0, wrk + upstream on CPU 1' if PIN else 'unpinned'}; 1 worker thread. "
             f"Authorizer invocations during the run: {invocations} (the cache answered the rest). "
             "proxy CPU µs/req: CPU time of the proxy's processes per request, the steadier figure on a shared machine.", "",
             "| conns | target | rps | p50 | p99 | vs turnpike | proxy CPU µs/req | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['conns']} | {r['target']} | {r['rps']:.0f} | {B.fmt_us(r['p50_us'])} | "
                     f"{B.fmt_us(r['p99_us'])} | {'-' if r['vs_turnpike'] is None else format(r['vs_turnpike'], '.2f')} | "
                     f"{'-' if r['cpu_us'] is None else format(r['cpu_us'], '.0f')} | {r['errors']} |")
    text = "\n".join(lines)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(outdir, "auth.json"), "w") as f:
        json.dump({"rows": rows, "runs": runs, "invocations": invocations, "machine": B.machine_info()}, f, indent=1)
    print(text)
    if any(r["errors"] for r in rows):
        B.log("[warn] some runs had errors or non-2xx answers (rps counts 2xx only)")


if __name__ == "__main__":
    main()
