#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that does not
# move when other processes share the machine (wall-clock rps and CPU time do).
#
#   bench/proxy-callgrind.sh [BIN...]     # default: the release build in $CARGO_TARGET_DIR
#   REQUESTS=3000 CONNS=8 bench/proxy-callgrind.sh old-turnpike new-turnpike
#   NGINX=1 bench/proxy-callgrind.sh      # adds nginx as a reverse proxy (1 process) for scale
#   AUTH=1 bench/proxy-callgrind.sh       # auth-bench.py's access-control project instead:
#                                         # API key + usage plan + cached Lambda authorizer
#
# For each binary: starts the bench upstream (nginx `return 200`), runs `turnpike serve` of the
# same generated HTTP_PROXY project as proxy-bench.py under callgrind with one worker thread,
# warms up, zeroes the counters, sends REQUESTS keep-alive requests over CONNS connections,
# dumps the counters and prints Ir/request (all threads). The top functions go to
# bench/results/callgrind-<stamp>/. Kernel work (syscalls) is not counted: see proxy-bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-3000}
CONNS=${CONNS:-8}
UP_PORT=${UPSTREAM_PORT:-18290}
TP_PORT=${TURNPIKE_PORT:-18291}
TARGET=${CARGO_TARGET_DIR:-target}
BINS=("$@")
if [ ${#BINS[@]} -eq 0 ]; then
  cargo build --release -p turnpike >&2
  BINS=("$TARGET/release/turnpike")
fi
for tool in valgrind callgrind_control nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (bench/setup.sh; apt-get install valgrind)" >&2; exit 1; }
done
OUT="bench/results/callgrind-$(date -u +%Y%m%dT%H%M%SZ)"
RUN="$OUT/run"
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

sed -e "s#@RUN@#$RUN#g" -e "s#@PORT@#$UP_PORT#g" bench/conf/nginx-upstream.conf > "$RUN/nginx-upstream.conf"
nginx -p "$RUN" -c "$RUN/nginx-upstream.conf" &
PIDS+=($!)

cat > "$RUN/api.json" <<EOF
{"openapi": "3.0.1", "info": {"title": "callgrind", "version": "1"},
 "paths": {"/{proxy+}": {"x-amazon-apigateway-any-method": {
   "parameters": [{"name": "proxy", "in": "path", "required": true, "schema": {"type": "string"}}],
   "x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "ANY",
     "uri": "http://127.0.0.1:$UP_PORT/{proxy}",
     "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}}}}}}
EOF
cat > "$RUN/turnpike.yaml" <<EOF
throttling: {rateLimit: 1000000000, burstLimit: 1000000000}
apis:
  - definition: api.json
    id: cgbench001
    stages:
      - name: bench
EOF

PROJECT="$RUN/turnpike.yaml"
HEADERS='{}'
if [ "${AUTH:-0}" = 1 ]; then
  # The project auth-bench.py measures (its `turnpike-auth` target), pointed at this upstream.
  PROJECT=$(python3 - "$RUN" "$UP_PORT" <<'EOF'
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("auth_bench", os.path.join("bench", "auth-bench.py"))
ab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ab)
ab.UP_PORT = int(sys.argv[2])
print(ab.project(sys.argv[1], "turnpike-auth"))
EOF
)
  HEADERS=$(python3 -c 'import importlib.util, json, os
spec = importlib.util.spec_from_file_location("auth_bench", os.path.join("bench", "auth-bench.py"))
ab = importlib.util.module_from_spec(spec); spec.loader.exec_module(ab)
print(json.dumps({"Authorization": ab.TOKEN, "x-api-key": ab.KEY}))')
fi

# N keep-alive requests over C connections, one thread per connection; prints 2xx count.
cat > "$RUN/load.py" <<'EOF'
import http.client, json, sys, threading
port, total, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
headers = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
ok = [0] * conns
def worker(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(total // conns):
        c.request("GET", "/bench/hello", headers=headers)
        r = c.getresponse(); r.read()
        ok[i] += 200 <= r.status < 300
ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(ok))
EOF

printf '| binary | requests | Ir/request |\n|---|---:|---:|\n' > "$OUT/summary.md"
for bin in "${BINS[@]}"; do
  name=$(basename "$bin")
  cg="$OUT/callgrind.$name.out"
  TOKIO_WORKER_THREADS=1 TURNPIKE_LOG=warn valgrind --tool=callgrind ${VG_ARGS:-} --callgrind-out-file="$cg" \
    "$bin" serve "$PROJECT" --listen "127.0.0.1:$TP_PORT" --no-watch --drain-timeout 1 \
    > "$OUT/$name.log" 2>&1 &
  vg=$!
  PIDS+=($vg)
  for _ in $(seq 1 600); do
    [ "$(python3 "$RUN/load.py" "$TP_PORT" 1 1 "$HEADERS" 2>/dev/null)" = 1 ] && break
    sleep 0.1
  done
  kill -0 "$vg" 2>/dev/null || { echo "turnpike did not start; see $OUT/$name.log" >&2; exit 1; }
  python3 "$RUN/load.py" "$TP_PORT" 400 "$CONNS" "$HEADERS" >/dev/null        # warm-up
  callgrind_control -z "$vg" >/dev/null
  ok=$(python3 "$RUN/load.py" "$TP_PORT" "$REQUESTS" "$CONNS" "$HEADERS")
  callgrind_control -d "$vg" >/dev/null
  kill -INT "$vg"; wait "$vg" 2>/dev/null || true
  dump=$(ls -t "$cg".* 2>/dev/null | head -1)
  ir=$(awk '/^(summary|totals):/ {print $2}' "$dump" | tail -1)
  [ "${ok:-0}" -gt 0 ] || { echo "no 2xx answers from $name; see $OUT/$name.log" >&2; exit 1; }
  per=$(( ir / ok ))
  # Whole listing to a file first: `| head` would SIGPIPE the annotator and fail the script.
  callgrind_annotate --threshold=100 "$dump" > "$OUT/annotate-$name.txt" 2>/dev/null || true
  head -90 "$OUT/annotate-$name.txt" > "$OUT/top-$name.txt"
  printf '| %s | %d | %d |\n' "$name" "$ok" "$per" | tee -a "$OUT/summary.md"
done
if [ "${NGINX:-0}" = 1 ]; then
  # nginx proxying to the same upstream, in one process (master_process off) so that callgrind
  # sees the worker.
  NG_PORT=${NGINX_PORT:-18292}
  sed -e "s#@RUN@#$RUN#g" -e "s#@PORT@#$NG_PORT#g" -e "s#@UPSTREAM@#127.0.0.1:$UP_PORT#g" \
      -e 's/^master_process on;/master_process off;/' -e 's#nginx-proxy.pid#nginx-cg.pid#' \
      bench/conf/nginx-proxy.conf > "$RUN/nginx-cg.conf"
  cg="$OUT/callgrind.nginx.out"
  valgrind --tool=callgrind ${VG_ARGS:-} --callgrind-out-file="$cg" nginx -p "$RUN" -c "$RUN/nginx-cg.conf" \
    > "$OUT/nginx.log" 2>&1 &
  vg=$!
  PIDS+=($vg)
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$NG_PORT/bench/hello" >/dev/null 2>&1 && break
    sleep 0.1
  done
  python3 "$RUN/load.py" "$NG_PORT" 400 "$CONNS" >/dev/null
  callgrind_control -z "$vg" >/dev/null
  ok=$(python3 "$RUN/load.py" "$NG_PORT" "$REQUESTS" "$CONNS")
  callgrind_control -d "$vg" >/dev/null
  kill "$vg"; wait "$vg" 2>/dev/null || true
  dump=$(ls -t "$cg".* 2>/dev/null | head -1)
  ir=$(awk '/^(summary|totals):/ {print $2}' "$dump" | tail -1)
  printf '| %s | %d | %d |\n' nginx "$ok" $(( ir / ok )) | tee -a "$OUT/summary.md"
fi
echo "[results] $OUT/summary.md"
