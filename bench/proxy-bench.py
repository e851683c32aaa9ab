#!/usr/bin/env python3
"""HTTP_PROXY passthrough benchmark: direct upstream vs nginx vs Turnpike, in ONE run.

  bench/proxy-bench.py                 # default: 3 interleaved reps x 5 s, c64 and c8 (~2.5 min)
  QUICK=1 bench/proxy-bench.py         # smoke test: 1 rep x 2 s (~30 s)
  bench/proxy-bench.py --reps 5 --duration 8 --conns 64 --targets direct,nginx,turnpike

What runs (all on 127.0.0.1, all started here and stopped by PID at the end,
also on an error or Ctrl-C):
  upstream     nginx `return 200 '{"ok":true}'`                      :18280
  nginx        nginx reverse proxy, 1 worker, upstream keepalive      :18281
  turnpike     `turnpike serve` of a generated OpenAPI definition with one
               `/{proxy+}` ANY HTTP_PROXY route to the upstream,
               TOKIO_WORKER_THREADS=1 (nginx has 1 worker too)       :18283
  turnpike-t2  the same with TOKIO_WORKER_THREADS=2                  :18284
  turnpike-jemalloc  (JEMALLOC=1) the same binary and 1 worker, with
               LD_PRELOAD=libjemalloc.so.2: what a faster allocator buys   :18285
  nginx2       (AA_CONTROL=1) a 2nd identical nginx: the noise bar    :18282
  nginx-aws    (NGINX_AWS=1) nginx adding the headers API Gateway adds, so that
               it puts Turnpike's bytes on the wire (a diagnostic of what the
               larger heads cost wrk and the upstream)               :18287
  direct       wrk straight to the upstream: the physical limit

Load: `wrk -t1 -cN -dDs --latency`, GET /hello (Turnpike: /bench/hello, stage
`bench`; the upstream answers every path alike). Each target gets a 1 s
warm-up, then for each rep and each connection count every target runs once,
in an order rotated per rep. Medians over reps are reported.

CPU layout (PIN=1, default, when there are >= 2 CPUs): the proxy under test on
CPU 0 (PROXY_CPU), wrk and the upstream on CPU 1 (CLIENT_CPU, UPSTREAM_CPU), as
in the peers kit. turnpike-t2 gets T2_CPUS (default: PROXY_CPU, i.e. the same
one-core budget as nginx; T2_CPUS=0-1 lets its 2nd worker use CPU 1 as well).
PIN=0 runs everything unpinned.

Environment (all optional):
  QUICK=1            1 rep, 2 s runs
  REPS, DURATION, CONNS, TARGETS   defaults for --reps/--duration/--conns/--targets
  T2=0               leave out turnpike-t2
  AA_CONTROL=1       add nginx2 (A/A control: two identical nginx; their gap is noise)
  NGINX_AWS=1        add nginx-aws (bench/conf/nginx-proxy-aws.conf)
  JEMALLOC=1         add turnpike-jemalloc (needs libjemalloc2)
  BASE_BIN=path      add turnpike-base: the same setup with another turnpike binary (A/B of
                     two builds in one run; the binary is copied into the run dir first)
  TURNPIKE_BIN       use this binary instead of building (no cargo build)
  PGO=1              build the profile-guided release binary (bench/pgo-build.sh, ~9 min)
                     and measure that one; add BASE_BIN=<plain build> to see both. With
                     BOLT=1 too, the PGO binary is also laid out by LLVM BOLT (bolt-19)
  NO_BUILD=1         do not run cargo build; use the binary already in the target dir
  TURNPIKE_THREADS   worker threads of the `turnpike` target (default 1)
  TURNPIKE_LOG       passed through (default: warn, so logging costs nothing)
  WAIT_IDLE=S        on a shared machine: before each run wait for the other processes to
                     use < IDLE_PCT (default 10) % of a core, and re-run (at most twice) a run
                     they disturbed; S is the total waiting budget of the whole run (default 0:
                     never wait, only record other_cpu_pct and warn)
  PROFILE=1          afterwards, record a perf profile (cpu-clock) of turnpike and of
                     nginx under c64 load (PROFILE_SECONDS, default 5) into the results dir
  PERF_ARGS          extra `perf record` args (e.g. "--call-graph dwarf")
  BENCH_PATH         request path (default /hello)
  UPSTREAM_PORT, NGINX_PORT, NGINX2_PORT, NGINX_AWS_PORT, TURNPIKE_PORT, TURNPIKE_T2_PORT
  ACCOUNT_THROTTLE   account throttle written into the generated project file (default 1e9:
                     AWS's default 10,000 rps would answer 429 to the load)
  RESULTS_DIR        default bench/results/<UTC stamp>/ (bench/results/latest links to it)
"""
import argparse
import json
import os
import shlex
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
UP_PORT = int(os.environ.get("UPSTREAM_PORT", 18280))
PORTS = {
    "nginx": int(os.environ.get("NGINX_PORT", 18281)),
    "nginx2": int(os.environ.get("NGINX2_PORT", 18282)),
    "turnpike": int(os.environ.get("TURNPIKE_PORT", 18283)),
    "turnpike-t2": int(os.environ.get("TURNPIKE_T2_PORT", 18284)),
    "turnpike-jemalloc": int(os.environ.get("TURNPIKE_JE_PORT", 18285)),
    "turnpike-base": int(os.environ.get("TURNPIKE_BASE_PORT", 18286)),
    "nginx-aws": int(os.environ.get("NGINX_AWS_PORT", 18287)),
}
JEMALLOC = os.environ.get("JEMALLOC_SO", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
PATH = os.environ.get("BENCH_PATH", "/hello")
THROTTLE = int(os.environ.get("ACCOUNT_THROTTLE", 1_000_000_000))
QUICK = os.environ.get("QUICK") == "1"


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


# --------------------------------------------------------------------------- layout

def layout():
    """(pinned, proxy_cpu, client_cpu, upstream_cpu, t2_cpus)."""
    if os.environ.get("PIN", "1") == "0" or B.NCPU < 2 or not shutil.which("taskset"):
        return False, None, None, None, None
    proxy = os.environ.get("PROXY_CPU", "0")
    client = os.environ.get("CLIENT_CPU", "1")
    up = os.environ.get("UPSTREAM_CPU", client)
    return True, proxy, client, up, os.environ.get("T2_CPUS", proxy)


PINNED, PROXY_CPU, CLIENT_CPU, UP_CPU, T2_CPUS = layout()


def url_of(t):
    if t in ("direct", "upstream"):
        return f"http://127.0.0.1:{UP_PORT}{PATH}"
    if t.startswith("turnpike"):
        return f"http://127.0.0.1:{PORTS[t]}/{STAGE}{PATH}"
    return f"http://127.0.0.1:{PORTS[t]}{PATH}"


# --------------------------------------------------------------------------- build

def turnpike_binary():
    """Builds turnpike in release mode (unless TURNPIKE_BIN / NO_BUILD) and returns its path."""
    if os.environ.get("TURNPIKE_BIN"):
        b = os.path.abspath(os.environ["TURNPIKE_BIN"])
        if not os.access(b, os.X_OK):
            raise SystemExit(f"TURNPIKE_BIN={b} is not an executable")
        return b
    if os.environ.get("PGO") == "1":
        B.log("[build] bench/pgo-build.sh (instrumented build, training run, PGO build)")
        t0 = time.perf_counter()
        p = subprocess.run([os.path.join(REPO, "bench", "pgo-build.sh")], cwd=REPO,
                           stdout=subprocess.PIPE, text=True)
        lines = p.stdout.strip().splitlines()
        if p.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
            raise SystemExit(f"bench/pgo-build.sh failed (rc={p.returncode})")
        B.log(f"[build] done in {time.perf_counter() - t0:.1f}s: {lines[-1]}")
        return lines[-1]
    if os.environ.get("NO_BUILD") != "1":
        B.log("[build] cargo build --release -p turnpike"
              + (f"  (CARGO_TARGET_DIR={os.environ['CARGO_TARGET_DIR']})" if os.environ.get("CARGO_TARGET_DIR") else ""))
        t0 = time.perf_counter()
        p = subprocess.run(["cargo", "build", "--release", "-p", "turnpike"], cwd=REPO)
        if p.returncode != 0:
            raise SystemExit(f"cargo build failed (rc={p.returncode})")
        B.log(f"[build] done in {time.perf_counter() - t0:.1f}s")
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    b = os.path.join(json.loads(meta.stdout)["target_directory"], "release", "turnpike")
    if not os.access(b, os.X_OK):
        raise SystemExit(f"{b} not found; build it (cargo build --release -p turnpike) or set TURNPIKE_BIN")
    return b


# --------------------------------------------------------------------------- servers

def render(src, dst, **kv):
    with open(src) as f:
        text = f.read()
    for k, v in kv.items():
        text = text.replace(f"@{k}@", str(v))
    with open(dst, "w") as f:
        f.write(text)
    return dst


def openapi_definition(upstream):
    """One `/{proxy+}` ANY route, HTTP_PROXY to the upstream, as API Gateway exports it."""
    return {
        "openapi": "3.0.1",
        "info": {"title": "turnpike-proxy-bench", "version": "1.0",
                 "description": "Generated by bench/proxy-bench.py: HTTP_PROXY passthrough to the bench upstream."},
        "servers": [{"url": "http://127.0.0.1/{basePath}", "variables": {"basePath": {"default": STAGE}}}],
        "paths": {
            "/{proxy+}": {
                "x-amazon-apigateway-any-method": {
                    "parameters": [{"name": "proxy", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {},
                    "x-amazon-apigateway-integration": {
                        "type": "http_proxy",
                        "httpMethod": "ANY",
                        "uri": f"http://{upstream}/{{proxy}}",
                        "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"},
                        "passthroughBehavior": "when_no_match",
                        "timeoutInMillis": 29000,
                    },
                }
            }
        },
    }


def write_turnpike_project(run, upstream):
    """The generated definition plus a project file serving it as stage `bench`, in a directory
    of their own (each instance keeps its state in `.turnpike/` beside its project file, and two
    instances cannot share it). The project file raises the account throttle: AWS's default
    (10,000 rps, burst 5,000), which Turnpike emulates, would answer 429 to a load test. The
    throttle check itself still runs per request."""
    os.makedirs(run, exist_ok=True)
    definition = os.path.join(run, "turnpike-proxy.json")
    with open(definition, "w") as f:
        json.dump(openapi_definition(upstream), f, indent=2)
    project = os.path.join(run, "turnpike.yaml")
    with open(project, "w") as f:
        f.write("# Generated by bench/proxy-bench.py.\n"
                "# AWS's default account throttle (10,000 rps, burst 5,000) would throttle the benchmark.\n"
                f"throttling: {{rateLimit: {THROTTLE}, burstLimit: {THROTTLE}}}\n"
                "apis:\n"
                "  - definition: turnpike-proxy.json\n"
                "    id: proxybench\n"
                "    stages:\n"
                f"      - name: {STAGE}\n")
    return project


def make_server(t, run, binary):
    up = f"127.0.0.1:{UP_PORT}"
    if t == "upstream":
        conf = render(os.path.join(BENCH, "conf/nginx-upstream.conf"), os.path.join(run, "nginx-upstream.conf"),
                      RUN=run, PORT=UP_PORT)
        return B.Server("upstream", ["nginx", "-p", run, "-c", conf], cpus=UP_CPU)
    if t in ("nginx", "nginx2"):
        conf = render(os.path.join(BENCH, "conf/nginx-proxy.conf"), os.path.join(run, f"{t}-proxy.conf"),
                      RUN=run, PORT=PORTS[t], UPSTREAM=up)
        if t == "nginx2":  # same config, own pid file and temp dirs
            with open(conf) as f:
                text = f.read().replace("nginx-proxy.", "nginx2-proxy.").replace(f"{run}/px-", f"{run}/px2-")
            with open(conf, "w") as f:
                f.write(text)
        return B.Server(t, ["nginx", "-p", run, "-c", conf], cpus=PROXY_CPU)
    if t == "nginx-aws":
        conf = render(os.path.join(BENCH, "conf/nginx-proxy-aws.conf"), os.path.join(run, "nginx-aws-proxy.conf"),
                      RUN=run, PORT=PORTS[t], UPSTREAM=up)
        return B.Server(t, ["nginx", "-p", run, "-c", conf], cpus=PROXY_CPU)
    if t.startswith("turnpike"):
        project = write_turnpike_project(os.path.join(run, t), up)
        threads = "2" if t == "turnpike-t2" else os.environ.get("TURNPIKE_THREADS", "1")
        env = {"TOKIO_WORKER_THREADS": threads, "TURNPIKE_LOG": os.environ.get("TURNPIKE_LOG", "warn")}
        if t == "turnpike-jemalloc":  # experiment: same binary, glibc malloc replaced by jemalloc
            if not os.path.exists(JEMALLOC):
                raise SystemExit(f"turnpike-jemalloc: {JEMALLOC} not found (apt-get install libjemalloc2, or set JEMALLOC_SO)")
            env["LD_PRELOAD"] = JEMALLOC
        if t == "turnpike-base":  # A/B: another build (BASE_BIN), e.g. the commit before a change
            binary = os.path.join(run, "turnpike-base-bin")
        argv = [binary, "serve", project, "--listen", f"127.0.0.1:{PORTS[t]}", "--no-watch", "--drain-timeout", "2"]
        return B.Server(t, argv, cpus=T2_CPUS if t == "turnpike-t2" else PROXY_CPU, env=env)
    raise ValueError(t)


def client_core_us(r):
    """Time the client side's core (wrk, and the upstream when it shares that core) was busy
    per request, all of it: user, kernel, interrupts and softirqs, whoever they were for. With
    the proxy on its own core this is what each proxy costs the other core per request (its
    heads to parse, and waking it when it sleeps); None when unpinned."""
    if not PINNED or not r.get("requests"):
        return None
    pct = r["cpu_busy_pct"].get(f"cpu{CLIENT_CPU}")
    if pct is None:
        return None
    return pct / 100 * r["wall_s"] / r["requests"] * 1e6


def freeze(binary, run):
    """A private hard link (else a copy) of the binary, so that a rebuild in a shared target dir
    cannot swap it between targets or reps; removed at the end unless KEEP_BIN=1."""
    dst = os.path.join(run, "turnpike-bin")
    try:
        os.link(binary, dst)
    except OSError:
        shutil.copy2(binary, dst)
    return dst


def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_answer(t):
    st, headers, body = B.http_get(url_of(t), timeout=5)
    try:
        ok = st == 200 and json.loads(body) == {"ok": True}
    except ValueError:
        ok = False
    if not ok:
        raise SystemExit(f"{t}: unexpected answer to GET {url_of(t)}: {st} {body[:200]!r}")
    return headers


def start_all(targets, run, binary):
    for port in [UP_PORT] + [PORTS[t] for t in targets if t in PORTS]:
        if not B.port_free(port):
            raise SystemExit(f"port {port} is busy; stop whatever holds it (or set the *_PORT env vars)")
    servers = {"upstream": make_server("upstream", run, binary).start()}
    B.wait_http(url_of("upstream"), timeout=10, server=servers["upstream"])
    for t in targets:
        if t != "direct":
            servers[t] = make_server(t, run, binary).start()
    startup, headers = {}, {}
    for t in targets:
        if t == "direct":
            headers[t] = check_answer(t)
            continue
        if t.startswith("turnpike"):
            B.wait_log_line(servers[t], "turnpike listening on http://", timeout=30)
        startup[t] = B.wait_http(url_of(t), timeout=30, server=servers[t])
        headers[t] = check_answer(t)
        if t == "turnpike-jemalloc":
            with open(f"/proc/{servers[t].pid}/maps") as f:
                if "jemalloc" not in f.read():
                    raise SystemExit("turnpike-jemalloc: jemalloc is not mapped into the process")
    return servers, startup, headers


# --------------------------------------------------------------------------- profile

def perf_usable():
    if not shutil.which("perf"):
        return False
    p = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                       capture_output=True, text=True)
    return p.returncode == 0


def profile(targets, servers, outdir, seconds):
    """perf record (cpu-clock) of each proxy's processes during one c64 wrk run."""
    if not perf_usable():
        B.log("[profile] perf is not usable here; skipped")
        return {}
    res = {}
    for t in [x for x in targets if x.startswith("turnpike") or x == "nginx"]:
        data = os.path.join(outdir, f"perf-{t}.data")
        pids = ",".join(str(p) for p in servers[t].pids())
        rec_s = max(1, int(seconds) - 1)

        def start_perf(_wrk, data=data, pids=pids, rec_s=rec_s):
            time.sleep(0.5)  # skip wrk's connection setup
            argv = (["perf", "record", "-e", "cpu-clock", "-F", "1999", "-p", pids, "-o", data]
                    + shlex.split(os.environ.get("PERF_ARGS", "")) + ["--", "sleep", str(rec_s)])
            return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        r = B.run_wrk(url_of(t), conns=64, duration=seconds, cpus=CLIENT_CPU, during=start_perf,
                      watch={"proxy": servers[t]}, logname=f"profile-{t}")
        perf = r.pop("extra")
        _, perr = perf.communicate(timeout=30)
        if perf.returncode != 0:
            B.log(f"[profile] perf record failed for {t}: {perr.strip()[-300:]}")
            continue
        reports = {}
        for name, sort in (("dso", "dso"), ("sym", "dso,sym")):
            p = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                                "--percent-limit", "0.3"], capture_output=True, text=True)
            path = os.path.join(outdir, f"perf-{t}-{name}.txt")
            with open(path, "w") as f:
                f.write(p.stdout)
            reports[name] = path
        res[t] = {"rps": r["rps"], "proxy_cpu_us_per_req": r["cpu_us_per_req"]["proxy"], "reports": reports,
                  "top": top_symbols(reports["sym"], 25)}
        B.log(f"[profile] {t}: {r['rps']:.0f} rps under perf, {r['cpu_us_per_req']['proxy']:.1f} µs CPU/req;"
              f" {reports['sym']}")
    return res


def top_symbols(path, n):
    out = []
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s and not s.startswith("#") and "%" in s:
                out.append(s)
            if len(out) >= n:
                break
    return out


# --------------------------------------------------------------------------- noise

class Quiet:
    """Waits for the machine to be quiet (CPU used by processes other than ours)."""

    def __init__(self, budget_s, pct):
        self.budget = budget_s
        self.pct = pct
        self.waited = 0.0
        self.retries = 0

    @staticmethod
    def other_pct(servers, window=0.5):
        pids = [p for s in servers for p in s.pids()]
        s0, c0, t0 = B.cpu_busy(), B.cpu_seconds(pids), time.perf_counter()
        time.sleep(window)
        s1, c1, t1 = B.cpu_busy(), B.cpu_seconds(pids), time.perf_counter()
        busy = sum(s1[k][0] - s0[k][0] for k in s1) / B.CLK_TCK
        return max(0.0, busy - (c1 - c0)) / (t1 - t0) * 100

    def wait(self, servers):
        if self.budget <= self.waited:
            return None
        t0 = time.perf_counter()
        o = self.other_pct(servers)
        while o >= self.pct and self.waited + (time.perf_counter() - t0) < self.budget:
            o = self.other_pct(servers, 1.0)
        w = time.perf_counter() - t0
        self.waited += w
        if w > 1:
            B.log(f"  [quiet] waited {w:.0f}s for other processes to calm down (now {o:.0f}% of a core)")
        return o


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=env_int("REPS", 1 if QUICK else 3))
    ap.add_argument("--duration", type=int, default=int(os.environ.get("DURATION") or (2 if QUICK else 5)),
                    help="seconds per wrk run (whole seconds, at most 10)")
    ap.add_argument("--conns", default=os.environ.get("CONNS", "64,8"))
    default_targets = "direct,nginx,turnpike" + ("" if os.environ.get("T2") == "0" else ",turnpike-t2")
    ap.add_argument("--targets", default=os.environ.get("TARGETS", default_targets))
    a = ap.parse_args()
    if a.duration > B.WRK_MAX_S:
        raise SystemExit(f"--duration is capped at {B.WRK_MAX_S:g} s per wrk run")
    targets = [t for t in a.targets.split(",") if t]
    if os.environ.get("AA_CONTROL") == "1" and "nginx2" not in targets:
        targets.insert(targets.index("nginx") + 1 if "nginx" in targets else len(targets), "nginx2")
    if os.environ.get("NGINX_AWS") == "1" and "nginx-aws" not in targets:
        targets.append("nginx-aws")
    if os.environ.get("JEMALLOC") == "1" and "turnpike-jemalloc" not in targets:
        targets.append("turnpike-jemalloc")
    if os.environ.get("BASE_BIN") and "turnpike-base" not in targets:
        targets.append("turnpike-base")
    unknown = [t for t in targets if t != "direct" and t not in PORTS]
    if unknown:
        raise SystemExit(f"unknown targets {unknown}; choose from direct,{','.join(PORTS)}")
    conns = [int(c) for c in a.conns.split(",")]
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run bench/setup.sh first")

    built = turnpike_binary() if any(t.startswith("turnpike") for t in targets) else None

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir = os.path.abspath(os.environ.get("RESULTS_DIR") or os.path.join(BENCH, "results", stamp))
    run = os.path.join(outdir, "run")
    os.makedirs(run, exist_ok=True)
    B.set_logdir(os.path.join(outdir, "logs"))
    binary = freeze(built, run) if built else None
    if "turnpike-base" in targets:
        base = os.path.abspath(os.environ.get("BASE_BIN", ""))
        if not os.access(base, os.X_OK):
            raise SystemExit(f"turnpike-base: BASE_BIN={base} is not an executable")
        shutil.copy2(base, os.path.join(run, "turnpike-base-bin"))
    if not os.environ.get("RESULTS_DIR"):
        latest = os.path.join(BENCH, "results", "latest")
        if os.path.islink(latest):
            os.unlink(latest)
        if not os.path.exists(latest):
            os.symlink(stamp, latest)

    lay = (f"proxy on CPU {PROXY_CPU}, wrk + upstream on CPU {CLIENT_CPU}"
           + (f", turnpike-t2 on CPUs {T2_CPUS}" if "turnpike-t2" in targets else "")) if PINNED else "unpinned"
    est = len(targets) * (1 + len(conns) * a.reps * (a.duration + 0.3)) + 5
    B.log(f"[proxy-bench] targets={targets} conns={conns} reps={a.reps} duration={a.duration:g}s; {lay}; "
          f"~{est:.0f}s; results -> {outdir}")
    load0 = os.getloadavg()
    if load0[0] > 0.5:
        B.log(f"[warn] load average {load0[0]:.2f} before the run: something else is using the CPUs; "
              f"figures will be noisy (see other_cpu_pct in the results)")

    quiet = Quiet(float(os.environ.get("WAIT_IDLE", 0)), float(os.environ.get("IDLE_PCT", 10)))
    t_start = time.perf_counter()
    runs, prof = [], {}
    try:
        servers, startup, headers = start_all(targets, run, binary)
        watch = {t: ({"upstream": servers["upstream"]} if t == "direct"
                     else {"proxy": servers[t], "upstream": servers["upstream"]}) for t in targets}
        for t in targets:  # warm-up: 1 s each (connection pools, page cache, CPU frequency)
            B.run_wrk(url_of(t), conns=max(conns), duration=1, cpus=CLIENT_CPU, logname=f"warmup-{t}")
        for rep in range(a.reps):
            order = targets[rep % len(targets):] + targets[:rep % len(targets)]
            for c in conns:
                for t in order:
                    for attempt in range(3):
                        quiet.wait(servers.values())
                        s0 = B.cpu_busy()
                        r = B.run_wrk(url_of(t), conns=c, duration=a.duration, cpus=CLIENT_CPU, watch=watch[t],
                                      logname=f"{t}-c{c}")
                        s1 = B.cpu_busy()
                        r.pop("extra", None)
                        r["cpu_busy_pct"] = B.busy_pct(s0, s1)
                        busy_s = sum(s1[k][0] - s0[k][0] for k in s1) / B.CLK_TCK
                        ours = sum(r["cpu_s"].values()) + r["wrk_cpu_s"]
                        r["other_cpu_pct"] = round(max(0.0, busy_s - ours) / r["wall_s"] * 100, 1)
                        r["client_core_us_per_req"] = client_core_us(r)
                        if r["other_cpu_pct"] < quiet.pct or quiet.waited >= quiet.budget or attempt == 2:
                            break
                        quiet.retries += 1
                        B.log(f"  rep{rep + 1} c{c:<3} {t:<17} disturbed (other processes used "
                              f"{r['other_cpu_pct']}% of a core): run again")
                    r.update(target=t, conns=c, rep=rep + 1, attempts=attempt + 1)
                    runs.append(r)
                    B.log(f"  rep{rep + 1} c{c:<3} {t:<17} {r['rps']:>9.0f} rps  p50 {B.fmt_us(r['p50_us']):>9}"
                          f"  p99 {B.fmt_us(r['p99_us']):>9}  err {r['errors']}"
                          f"  proxy {fmt1(r['cpu_us_per_req'].get('proxy'))} µs/req"
                          f"  busy {r['cpu_busy_pct']}  other {r['other_cpu_pct']}%")
                    time.sleep(0.3)
        mem = {t: {"rss_kib": B.rss_kib(s.pids()), "hwm_kib": B.rss_kib(s.pids(), "VmHWM")}
               for t, s in servers.items()}
        if os.environ.get("PROFILE") == "1":
            prof = profile(targets, servers, outdir, min(B.WRK_MAX_S, float(os.environ.get("PROFILE_SECONDS", 5))))
        for t, s in servers.items():
            if not s.alive():
                raise SystemExit(f"{t} died during the run; see {s.logfile}")
    finally:
        B.stop_all()
    elapsed = time.perf_counter() - t_start
    out_versions = versions(binary, built)
    if binary and os.environ.get("KEEP_BIN") != "1":
        os.unlink(binary)

    summary = summarize(runs, targets, conns, mem)
    goals = goal_rows(runs, summary, targets, conns)
    out = {
        "kind": "proxy-bench", "machine": B.machine_info(), "layout": lay, "pinned": PINNED,
        "duration_s": a.duration, "reps": a.reps, "conns": conns, "targets": targets, "path": PATH,
        "versions": out_versions, "git": git_rev(), "startup_s": startup, "memory": mem,
        "response_headers": headers, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "elapsed_s": round(elapsed, 1), "idle_waited_s": round(quiet.waited, 1), "reruns": quiet.retries,
        "idle_pct": quiet.pct, "summary": summary, "goal": goals, "profile": prof, "runs": runs,
    }
    with open(os.path.join(outdir, "proxy.json"), "w") as f:
        json.dump(out, f, indent=1)
    text = report(out)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    B.log(f"[results] {outdir}/summary.md, proxy.json, logs/  ({elapsed:.0f}s)")
    bad = [r for r in summary if r["errors"]]
    if bad:
        print(f"\n**Errors** (socket errors or non-2xx answers; rps counts 2xx only): "
              + ", ".join(f"{r['target']} c{r['conns']}: {r['errors']}" for r in bad))
    if bad:
        B.log(f"[warn] errors in: {[(r['target'], r['conns'], r['errors']) for r in bad]}")


def fmt1(x):
    return "-" if x is None else f"{x:.1f}"


def fmt2(x):
    return "-" if x is None else f"{x:.2f}"


def summarize(runs, targets, conns, mem):
    summary = []
    for c in conns:
        d_med = B.median([r["rps"] for r in runs if r["target"] == "direct" and r["conns"] == c])
        for t in targets:
            rs = [r for r in runs if r["target"] == t and r["conns"] == c]
            if not rs:
                continue
            med = B.median([r["rps"] for r in rs])
            summary.append({
                "target": t, "conns": c, "n": len(rs),
                "rps_median": med, "rps_all": [round(r["rps"]) for r in rs],
                "ratio_vs_direct": (med / d_med) if d_med else None,
                "p50_us": B.median([r["p50_us"] for r in rs]), "p90_us": B.median([r["p90_us"] for r in rs]),
                "p99_us": B.median([r["p99_us"] for r in rs]), "p999_us": B.median([r["p999_us"] for r in rs]),
                "p99_all_us": [r["p99_us"] for r in rs],
                "errors": sum(r["errors"] for r in rs),
                "bytes_per_resp": B.median([r["bytes"] / r["requests"] for r in rs if r["requests"]]),
                "proxy_cpu_us_per_req": B.median([r["cpu_us_per_req"].get("proxy") for r in rs]),
                "upstream_cpu_us_per_req": B.median([r["cpu_us_per_req"].get("upstream") for r in rs]),
                "wrk_cpu_us_per_req": B.median([r["wrk_cpu_s"] / r["requests"] * 1e6 for r in rs if r["requests"]]),
                "client_core_us_per_req": B.median([r.get("client_core_us_per_req") for r in rs]),
                "proxy_sleeps_per_req": B.median([r["sleeps_per_req"].get("proxy") for r in rs]),
                "cpu_busy_pct": {k: B.median([r["cpu_busy_pct"][k] for r in rs]) for k in rs[0]["cpu_busy_pct"]},
                "other_cpu_pct": B.median([r["other_cpu_pct"] for r in rs]),
                "rss_kib": mem.get(t if t != "direct" else "upstream", {}).get("rss_kib"),
            })
    return summary


def bootstrap_ci(ratios, level=0.90, rounds=4000):
    """Percentile-bootstrap interval of the median of per-rep paired ratios: how far the
    median could move on this machine's noise. None with fewer than 4 reps."""
    if len(ratios) < 4:
        return None
    import random
    rnd = random.Random(1)  # the same runs give the same interval
    meds = sorted(B.median(rnd.choices(ratios, k=len(ratios))) for _ in range(rounds))
    lo = meds[int((1 - level) / 2 * rounds)]
    hi = meds[min(rounds - 1, int((1 + level) / 2 * rounds))]
    return [lo, hi]


def goal_rows(runs, summary, targets, conns):
    """Turnpike vs nginx: rps ratio (medians, and per-rep paired range), p99 difference."""
    rows = []
    controls = [x for x in ("nginx2", "nginx-aws") if x in targets]
    for t in [x for x in targets if x.startswith("turnpike")] + controls:
        if "nginx" not in targets:
            break
        for c in conns:
            s = next(r for r in summary if r["target"] == t and r["conns"] == c)
            n = next(r for r in summary if r["target"] == "nginx" and r["conns"] == c)
            mine = sorted((r for r in runs if r["target"] == t and r["conns"] == c), key=lambda r: r["rep"])
            ref = sorted((r for r in runs if r["target"] == "nginx" and r["conns"] == c), key=lambda r: r["rep"])
            paired = [m["rps"] / g["rps"] for m, g in zip(mine, ref) if g["rps"]]
            ratio = s["rps_median"] / n["rps_median"] if n["rps_median"] else None
            p99_diff_ms = (s["p99_us"] - n["p99_us"]) / 1000.0
            rows.append({
                "target": t, "conns": c, "rps_ratio": ratio,
                "paired_ratio_min_max": [min(paired), max(paired)] if paired else None,
                "paired_ratio_ci90": bootstrap_ci(paired),
                "p50_diff_ms": (s["p50_us"] - n["p50_us"]) / 1000.0,
                "p99_diff_ms": p99_diff_ms,
                "cpu_ratio": (s["proxy_cpu_us_per_req"] / n["proxy_cpu_us_per_req"]
                              if s["proxy_cpu_us_per_req"] and n["proxy_cpu_us_per_req"] else None),
                "errors": s["errors"] + n["errors"],
                # Which core set the pace: a proxy that leaves its core idle while the client
                # side's core is saturated is waiting on wrk and the upstream, not the reverse.
                "busy_pct": ([s["cpu_busy_pct"].get(f"cpu{PROXY_CPU}"), s["cpu_busy_pct"].get(f"cpu{CLIENT_CPU}")]
                             if PINNED else None),
                "meets_rps_goal": ratio is not None and ratio >= 1.0,
                "meets_p99_goal": p99_diff_ms <= 0.5,
            })
    return rows


def versions(binary, built=None):
    v = {}
    for name, argv in {"nginx": ["nginx", "-v"], "wrk": ["wrk", "-v"]}.items():
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            v[name] = (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception:
            v[name] = "?"
    if binary:
        try:
            p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5)
            v["turnpike"] = p.stdout.strip()
        except Exception:
            v["turnpike"] = "?"
        v["turnpike_bin"] = built or binary
        v["turnpike_built"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(binary)))
        v["turnpike_sha256"] = sha256(binary)
    return v


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "crates"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def report(out):
    m = out["machine"]
    lines = [
        f"## HTTP_PROXY passthrough: direct vs nginx vs Turnpike",
        "",
        f"{m['date']}, {m['ncpu']} cores ({m.get('cpu', '?')}), kernel {m['kernel']}; git {out['git']}; "
        f"{out['versions'].get('nginx', '')}; {out['versions'].get('turnpike', '')}",
        f"{out['layout']}; wrk -t1 -d{out['duration_s']:g}s GET {out['path']}, "
        f"median of {out['reps']} interleaved rep(s); load avg before/after "
        f"{out['loadavg_before'][0]:.2f}/{out['loadavg_after'][0]:.2f}; {out['elapsed_s']:.0f} s",
        "",
        "| target | conns | rps | vs direct | p50 | p90 | p99 | p99.9 | errors | proxy CPU µs/req "
        "| client core µs/req | proxy sleeps/req | bytes/resp | rps per rep | other CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in out["summary"]:
        lines.append(
            f"| {r['target']} | {r['conns']} | {r['rps_median']:,.0f} | "
            f"{'-' if r['ratio_vs_direct'] is None else format(r['ratio_vs_direct'], '.2f')} | "
            f"{B.fmt_us(r['p50_us'])} | {B.fmt_us(r['p90_us'])} | {B.fmt_us(r['p99_us'])} | "
            f"{B.fmt_us(r['p999_us'])} | {r['errors']} | {fmt1(r['proxy_cpu_us_per_req'])} | "
            f"{fmt1(r['client_core_us_per_req'])} | {fmt2(r['proxy_sleeps_per_req'])} | {r['bytes_per_resp']:.0f} | {' '.join(f'{x / 1000:.1f}k' for x in r['rps_all'])} | "
            f"{r['other_cpu_pct']} |")
    noisy = [f"{r['target']} c{r['conns']}" for r in out["summary"] if (r["other_cpu_pct"] or 0) >= out["idle_pct"]]
    if noisy:
        lines += ["", f"**Warning:** other processes used >= {out['idle_pct']:g}% of a core during "
                      f"{', '.join(noisy)} (median over reps): those figures are disturbed. "
                      "Run again on a quiet machine, or with WAIT_IDLE=120."]
    if out["idle_waited_s"] or out["reruns"]:
        lines += ["", f"Waited {out['idle_waited_s']:.0f} s in all for a quiet machine; {out['reruns']} disturbed "
                      "run(s) were run again."]
    if out["goal"]:
        lines += [
            "",
            "Goal: Turnpike rps >= 1.0x nginx, and p99 within +0.5 ms of nginx.",
            "",
            "| target vs nginx | conns | rps ratio | per-rep ratio range | 90% CI of the per-rep median | p50 diff | p99 diff | CPU/req ratio | busy % proxy / client core | goal |",
            "|---|---:|---:|---|---|---:|---:|---:|---|---|",
        ]
        for g in out["goal"]:
            rng = g["paired_ratio_min_max"]
            ci = g["paired_ratio_ci90"]
            busy = g.get("busy_pct")
            busy = "-" if not busy or None in busy else f"{busy[0]:.0f} / {busy[1]:.0f}"
            verdict = ("INVALID: errors or non-2xx answers, see logs/" if g["errors"] else
                       "met" if g["meets_rps_goal"] and g["meets_p99_goal"] else
                       "NOT met (" + ", ".join(x for x, ok in (("rps", g["meets_rps_goal"]),
                                                              ("p99", g["meets_p99_goal"])) if not ok) + ")")
            b = g.get("busy_pct")
            if (not g["meets_rps_goal"] and b and None not in b and b[1] >= 95 and b[0] < 95
                    and g["target"] not in ("nginx2", "nginx-aws")):
                # The proxy's core had room left while the client side's was saturated: the rps
                # measured what the proxy costs the load generator, not the proxy's capacity.
                verdict += "; client core bound"
            if g["target"] == "nginx2":
                verdict = "A/A control (noise)"
            elif g["target"] == "nginx-aws":
                verdict = "diagnostic: nginx with Turnpike's heads"
            lines.append(
                f"| {g['target']} | {g['conns']} | **{g['rps_ratio']:.2f}x** | "
                f"{'-' if not rng else f'{rng[0]:.2f}-{rng[1]:.2f}'} | "
                f"{'- (needs 4 reps)' if not ci else f'{ci[0]:.2f}-{ci[1]:.2f}'} | {g['p50_diff_ms']:+.2f} ms | "
                f"**{g['p99_diff_ms']:+.2f} ms** | {fmt1(g['cpu_ratio']) if g['cpu_ratio'] is None else format(g['cpu_ratio'], '.2f')} | {busy} | {verdict} |")
    st = out.get("startup_s") or {}
    if st:
        lines += ["", "Startup to first 200: " + ", ".join(f"{t} {s * 1000:.0f} ms" for t, s in st.items())
                  + ". RSS after the runs: " + ", ".join(
                      f"{t} {v['rss_kib'] / 1024:.0f} MiB" for t, v in out["memory"].items() if v["rss_kib"]) + "."]
    if out.get("profile"):
        for t, p in out["profile"].items():
            lines += ["", f"perf (cpu-clock) {t}: {p['rps']:,.0f} rps under perf, "
                          f"{p['proxy_cpu_us_per_req']:.1f} µs CPU/req; top symbols ({p['reports']['sym']}):", "```"]
            lines += p["top"][:15] + ["```"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
