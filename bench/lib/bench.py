"""Helpers for bench/proxy-bench.py (stdlib only).

Adapted from the peers kit (peers/lib/bench.py); this copy is self-contained.

- Server: start a process (optionally pinned with taskset), remember its PID,
  stop it by that PID (SIGTERM, then SIGKILL of the PID and of any descendants
  it left, each by its own PID). Never kills by name.
- Process-tree CPU time and RSS from /proc.
- wrk runner that parses the WRKJSON line printed by wrk_report.lua.
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

LIB = os.path.dirname(os.path.abspath(__file__))
WRK_LUA = os.path.join(LIB, "wrk_report.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
WRK_MAX_S = 10.0  # hard cap: every wrk run is at most 10 s

LOGDIR = os.path.join(os.path.dirname(LIB), "logs")  # set_logdir() points it into the results dir
_live = []  # started servers, stopped at exit / on a signal
_clients = []  # running wrk / perf processes, killed by PID on a signal


def set_logdir(d):
    global LOGDIR
    LOGDIR = d
    os.makedirs(d, exist_ok=True)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pin_prefix(cpus):
    """['taskset','-c',cpus], or [] when cpus is None."""
    if cpus is None:
        return []
    return ["taskset", "-c", str(cpus)]


def port_free(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def children_of(pid):
    """All descendant PIDs of pid (via the ppid in /proc/*/stat)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            parent.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in parent.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def tree(pid):
    return [pid] + children_of(pid)


def cpu_seconds(pids):
    """utime+stime (all threads) summed over pids, in seconds."""
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            tot += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError):
            pass
    return tot / CLK_TCK


def sleeps(pids):
    """Voluntary context switches summed over every thread of pids: how many times they went
    to sleep waiting for something (each one later costs whoever wakes them)."""
    tot = 0
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            tot += int(line.split()[1])
            except (OSError, ValueError):
                pass
    return tot


def rss_kib(pids, field="VmRSS"):
    """Sum of VmRSS (or VmHWM) in KiB over pids."""
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        tot += int(line.split()[1])
        except OSError:
            pass
    return tot


class Server:
    def __init__(self, name, argv, cpus=None, env=None, cwd=None):
        self.name = name
        self.argv = pin_prefix(cpus) + list(argv)
        self.cpus = cpus
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.t_start = None
        self.logfile = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        os.makedirs(LOGDIR, exist_ok=True)
        self.logfile = os.path.join(LOGDIR, f"{self.name}.log")
        out = open(self.logfile, "ab")
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.t_start = time.perf_counter()
        # taskset execs the program, so proc.pid is the server's own PID. A new
        # session keeps the terminal's Ctrl-C away from it: we stop it ourselves.
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.cwd,
                                     start_new_session=True)
        out.close()
        _live.append(self)
        log(f"[start] {self.name} pid={self.proc.pid}: {' '.join(self.argv)}")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return tree(self.pid) if self.alive() else []

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kids = children_of(self.proc.pid)
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"[stop] {self.name} pid={self.proc.pid} ignored SIGTERM; SIGKILL")
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
            # leftovers (e.g. nginx workers), each by its own PID
            for k in kids:
                deadline = time.time() + 3
                while time.time() < deadline:
                    try:
                        os.kill(k, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)
                else:
                    try:
                        os.kill(k, signal.SIGKILL)
                        log(f"[stop] {self.name}: SIGKILL leftover pid={k}")
                    except ProcessLookupError:
                        pass
        log(f"[stop] {self.name} pid={self.proc.pid} rc={self.proc.returncode}")
        if self in _live:
            _live.remove(self)


def stop_all():
    for s in list(reversed(_live)):
        try:
            s.stop()
        except Exception as e:  # pragma: no cover
            log(f"[stop] {s.name}: {e}")


atexit.register(stop_all)


def track(proc):
    """Remember a client process (wrk, perf) so a signal stops it too."""
    _clients.append(proc)
    return proc


def _sig(signum, _frame):
    signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
    log(f"[signal {signum}] stopping servers")
    for p in _clients:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    stop_all()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _sig)
signal.signal(signal.SIGINT, _sig)
signal.signal(signal.SIGHUP, _sig)


def http_get(url, timeout=1.0):
    req = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_http(url, timeout=30.0, interval=0.01, server=None):
    """Poll until url answers 2xx; return seconds since the server started
    (or since the call). Raises on timeout or if the server died."""
    t0 = server.t_start if server else time.perf_counter()
    deadline = time.perf_counter() + timeout
    last = None
    while time.perf_counter() < deadline:
        if server is not None and not server.alive():
            raise RuntimeError(f"{server.name} exited rc={server.proc.returncode}; see {server.logfile}")
        try:
            st, _, _ = http_get(url, timeout=1.0)
            if 200 <= st < 300:
                return time.perf_counter() - t0
            last = f"HTTP {st}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready after {timeout}s ({last})")


def wait_log_line(server, needle, timeout=30.0):
    """Wait until server's log contains needle; return the line."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            with open(server.logfile, errors="replace") as f:
                for line in f:
                    if needle in line:
                        return line.strip()
        except OSError:
            pass
        if not server.alive():
            raise RuntimeError(f"{server.name} exited rc={server.proc.returncode}; see {server.logfile}")
        time.sleep(0.02)
    raise TimeoutError(f"{server.name}: no '{needle}' in {server.logfile} after {timeout}s")


def run_wrk(url, conns=64, duration=5, threads=1, cpus=None, timeout_s="2s", watch=None, logname=None,
            during=None):
    """One bounded wrk run; returns a dict with rps, latency percentiles, errors, and
    the CPU seconds used by each watched server (name -> Server). `during`, if
    given, is called with the wrk Popen right after wrk started (e.g. to attach perf)."""
    duration = max(1, min(int(round(float(duration))), int(WRK_MAX_S)))  # wrk takes whole seconds
    argv = pin_prefix(cpus) + ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration:g}s",
                               f"--timeout={timeout_s}", "--latency", "-s", WRK_LUA, url]
    watch = watch or {}
    cpu0 = {n: cpu_seconds(s.pids()) for n, s in watch.items()}
    sl0 = {n: sleeps(s.pids()) for n, s in watch.items()}
    t0 = time.perf_counter()
    ru0 = os.times()
    p = track(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    extra = during(p) if during else None
    if isinstance(extra, subprocess.Popen):
        track(extra)
    try:
        out, err = p.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise RuntimeError(f"wrk did not finish: {' '.join(argv)}")
    ru1 = os.times()
    _clients.remove(p)
    wall = time.perf_counter() - t0
    cpu1 = {n: cpu_seconds(s.pids()) for n, s in watch.items()}
    sl1 = {n: sleeps(s.pids()) for n, s in watch.items()}
    if logname:
        with open(os.path.join(LOGDIR, f"wrk-{logname}.log"), "a") as f:
            f.write(" ".join(argv) + "\n" + out + err + "\n")
    line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed rc={p.returncode}: {(err.strip() or out.strip())[-500:]}")
    r = json.loads(line[len("WRKJSON "):])
    secs = r["duration_us"] / 1e6
    # wrk counts non-2xx/3xx answers as requests too (and in err_status): rps counts good answers only.
    r["ok"] = r["requests"] - r["err_status"]
    r["rps"] = r["ok"] / secs if secs else 0.0
    r["rps_all_answers"] = r["requests"] / secs if secs else 0.0
    r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    r["wall_s"] = wall
    r["wrk_cpu_s"] = (ru1.children_user - ru0.children_user) + (ru1.children_system - ru0.children_system)
    r["cpu_s"] = {n: cpu1[n] - cpu0[n] for n in watch}
    r["cpu_us_per_req"] = {n: (r["cpu_s"][n] / r["requests"] * 1e6 if r["requests"] else None)
                           for n in watch}
    r["sleeps_per_req"] = {n: ((sl1[n] - sl0[n]) / r["requests"] if r["requests"] else None) for n in watch}
    r["extra"] = extra
    return r


def cpu_busy():
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                p = line.split()
                v = list(map(int, p[1:]))
                idle = v[3] + v[4]
                out[p[0]] = (sum(v) - idle, sum(v))
    return out


def busy_pct(s0, s1):
    return {k: round(100.0 * (s1[k][0] - s0[k][0]) / max(1, s1[k][1] - s0[k][1]), 1) for k in s1}


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def machine_info():
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "ncpu": NCPU}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    info["kernel"] = os.uname().release
    return info


def fmt_us(us):
    if us is None:
        return "-"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"
