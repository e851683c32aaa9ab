#!/usr/bin/env bash
# Builds `turnpike` with profile-guided optimisation (PGO), the way a performance-sensitive
# release is built: an instrumented build serves a training workload, then the release build
# lays out and inlines its code by the profile recorded.
#
#   bench/pgo-build.sh            # prints the path of the PGO binary on its last line
#   TURNPIKE_BIN=$(bench/pgo-build.sh | tail -1) bench/proxy-bench.py
#
# Training workload: the HTTP_PROXY passthrough project of proxy-bench.py (wrk at 8 and 64
# connections), plus the paths every API has: a MOCK integration, the 403 of an unknown route,
# and a throttled route answering 429. Needs nginx and wrk (bench/setup.sh) and rustup's
# llvm-tools component (added here when missing).
#
# The instrumented and the PGO builds use their own target directories (their RUSTFLAGS differ
# from a plain build's, so sharing one would rebuild everything each time):
# ${CARGO_TARGET_DIR:-target}-pgo-gen and ${CARGO_TARGET_DIR:-target}-pgo.
# PGO_RUSTFLAGS adds flags to both builds, e.g. "-Ctarget-cpu=native" for a binary that only
# runs on this kind of CPU.
#
# BOLT=1 then lays the PGO binary's machine code out again with LLVM BOLT (Debian's bolt-19
# package; LLVM_BOLT names another llvm-bolt): the PGO build is linked with its relocations
# kept, BOLT instruments it, the same training workload runs against the instrumented binary,
# and BOLT rewrites the binary by that profile (hot blocks and functions together, cold code
# split off), so that the request path touches fewer instruction cache lines. The last line
# printed is then the path of that binary (`turnpike-bolt` next to the PGO one).
# BOLT_FROM=<binary> skips both cargo builds and lays out that binary (a PGO build made earlier
# with BOLT=1, which kept its relocations).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
GEN_TARGET=${PGO_GEN_TARGET:-$TARGET-pgo-gen}
USE_TARGET=${PGO_TARGET:-$TARGET-pgo}
UP_PORT=${UPSTREAM_PORT:-18296}
TP_PORT=${TURNPIKE_PORT:-18297}
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (bench/setup.sh)" >&2; exit 1; }
done
rustup component add llvm-tools >/dev/null 2>&1 || true
PROFDATA=$(find "$(rustc --print sysroot)" -name llvm-profdata -type f | head -1)
[ -n "$PROFDATA" ] || { echo "needs llvm-profdata: rustup component add llvm-tools" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "== training workload" >&2
sed -e "s#@RUN@#$WORK#g" -e "s#@PORT@#$UP_PORT#g" bench/conf/nginx-upstream.conf > "$WORK/nginx-upstream.conf"
nginx -p "$WORK" -c "$WORK/nginx-upstream.conf" &
PIDS+=($!)
cat > "$WORK/api.json" <<EOF
{"openapi": "3.0.1", "info": {"title": "pgo", "version": "1"},
 "paths": {
  "/{proxy+}": {"x-amazon-apigateway-any-method": {
   "parameters": [{"name": "proxy", "in": "path", "required": true, "schema": {"type": "string"}}],
   "x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "ANY",
     "uri": "http://127.0.0.1:$UP_PORT/{proxy}",
     "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}}}},
  "/mock": {"get": {
   "responses": {"200": {"description": "ok"}},
   "x-amazon-apigateway-integration": {"type": "mock",
     "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
     "responses": {"default": {"statusCode": "200",
       "responseTemplates": {"application/json": "{\"ok\": true}"}}}}}}}}
EOF
cat > "$WORK/turnpike.yaml" <<EOF
throttling: {rateLimit: 1000000000, burstLimit: 1000000000}
apis:
  - definition: api.json
    id: pgobench01
    stages:
      - name: bench
      - name: slow
        throttling: {rateLimit: 1, burstLimit: 1}
EOF
# train BIN: serves the training project with BIN, drives the workload, stops BIN cleanly (a
# clean exit writes the profile).
train() {
  TOKIO_WORKER_THREADS=1 TURNPIKE_LOG=warn "$1" serve "$WORK/turnpike.yaml" \
    --listen "127.0.0.1:$TP_PORT" --no-watch --drain-timeout 1 > "$WORK/turnpike.log" 2>&1 &
  local tp=$!
  PIDS+=($tp)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$TP_PORT/bench/hello" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local base="http://127.0.0.1:$TP_PORT"
  wrk -t1 -c8 -d4s "$base/bench/hello" >&2
  wrk -t1 -c64 -d4s "$base/bench/hello" >&2
  wrk -t1 -c8 -d1s "$base/bench/mock" >/dev/null
  wrk -t1 -c8 -d1s "$base/bench/" >/dev/null          # the 403 of an unmatched route
  wrk -t1 -c8 -d1s "$base/slow/hello" >/dev/null      # 429s
  kill -INT "$tp"
  wait "$tp" 2>/dev/null || true
}
if [ -z "${BOLT_FROM:-}" ]; then
  echo "== instrumented build ($GEN_TARGET)" >&2
  RUSTFLAGS="-Cprofile-generate=$WORK/profiles ${PGO_RUSTFLAGS:-}" \
    cargo build --release -p turnpike --target-dir "$GEN_TARGET" >&2
  train "$GEN_TARGET/release/turnpike"
  "$PROFDATA" merge -o "$WORK/merged.profdata" "$WORK/profiles"

  echo "== PGO build ($USE_TARGET)" >&2
  # BOLT moves functions only in a binary that kept its relocations.
  RELOCS=""
  [ "${BOLT:-0}" = 1 ] && RELOCS="-Clink-arg=-Wl,--emit-relocs"
  RUSTFLAGS="-Cprofile-use=$WORK/merged.profdata $RELOCS ${PGO_RUSTFLAGS:-}" \
    cargo build --release -p turnpike --target-dir "$USE_TARGET" >&2
  PGO_BIN="$USE_TARGET/release/turnpike"
  if [ "${BOLT:-0}" != 1 ]; then
    echo "$PGO_BIN"
    exit 0
  fi
else
  PGO_BIN=$BOLT_FROM
  mkdir -p "$USE_TARGET/release"
fi

echo "== BOLT: instrumented run" >&2
BOLT_TOOL=${LLVM_BOLT:-$(command -v llvm-bolt-19 || command -v llvm-bolt || true)}
[ -n "$BOLT_TOOL" ] || { echo "needs llvm-bolt: apt-get install bolt-19" >&2; exit 1; }
# Run from its real path: it looks for its instrumentation runtime in ../lib from there
# (Debian's /usr/bin/llvm-bolt-19 is a link into /usr/lib/llvm-19/bin).
BOLT_TOOL=$(readlink -f "$BOLT_TOOL")
"$BOLT_TOOL" "$PGO_BIN" -instrument -instrumentation-file="$WORK/bolt.fdata" \
  -o "$WORK/turnpike-bolt-inst" >&2
train "$WORK/turnpike-bolt-inst"
[ -s "$WORK/bolt.fdata" ] || { echo "the instrumented binary wrote no profile" >&2; exit 1; }
echo "== BOLT: optimised layout" >&2
"$BOLT_TOOL" "$PGO_BIN" -data="$WORK/bolt.fdata" -o "$USE_TARGET/release/turnpike-bolt" \
  -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions -split-all-cold \
  -split-eh -icf -use-gnu-stack -dyno-stats >&2
echo "$USE_TARGET/release/turnpike-bolt"
