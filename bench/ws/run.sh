#!/usr/bin/env bash
# WebSocket benchmark: RSS with N idle connections and @connections broadcast throughput.
# Usage: bench/ws/run.sh [--connections 10000] [--receivers 1000] [--rounds 20]
set -euo pipefail
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release -p turnpike --bin turnpike --example ws_bench
target_dir=${CARGO_TARGET_DIR:-target}
TURNPIKE_BIN="$target_dir/release/turnpike" "$target_dir/release/examples/ws_bench" "$@"
