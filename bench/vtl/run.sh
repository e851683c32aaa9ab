#!/usr/bin/env bash
# Turnpike VTL vs velocityjs on the peer kit's representative mapping template.
#
#   bench/vtl/run.sh [N] [MAX_SECONDS] [REPS]
#
# Renders shared/peers/vtl/template.vtl with shared/peers/vtl/request.json using
#   * turnpike-vtl  (crates/vtl/examples/vtl_bench.rs, release build)
#   * velocityjs    (the peer kit's own shared/peers/vtl/bench_velocity.js, with
#                    velocityjs from bench/vtl/node_modules)
# alternating engines for REPS rounds, pinned to one CPU when taskset is available,
# then prints the median renders/s of each and the ratio. Both outputs are checked
# to be the same JSON document.
set -euo pipefail

N=${1:-${VTL_N:-200000}}
MAX_S=${2:-${VTL_MAX_SECONDS:-3}}
REPS=${3:-${VTL_REPS:-3}}

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PEERS=${PEERS:-$(cd "$REPO/../shared/peers" && pwd)}
TPL=$PEERS/vtl/template.vtl
REQ=$PEERS/vtl/request.json
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}

if [ ! -d "$HERE/node_modules/velocityjs" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null)
fi
(cd "$REPO" && cargo build --release -q -p turnpike-vtl --example vtl_bench)

TURNPIKE=("$CARGO_TARGET_DIR/release/examples/vtl_bench")
VELOCITY=(node "$PEERS/vtl/bench_velocity.js")
export NODE_PATH="$HERE/node_modules"
PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && [ "${PIN_CPU:-1}" != "none" ]; then
    PIN=(taskset -c "${PIN_CPU:-1}")
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Same document?
"${TURNPIKE[@]}" "$TPL" "$REQ" 1 1 --print >"$OUT/turnpike.json"
"${VELOCITY[@]}" "$TPL" "$REQ" 1 1 --print >"$OUT/velocityjs.json"
python3 - "$OUT/turnpike.json" "$OUT/velocityjs.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print("same JSON output:", a == b)
sys.exit(0 if a == b else 1)
EOF

for rep in $(seq 1 "$REPS"); do
    "${PIN[@]}" "${VELOCITY[@]}" "$TPL" "$REQ" "$N" "$MAX_S" >>"$OUT/runs.jsonl"
    "${PIN[@]}" "${TURNPIKE[@]}" "$TPL" "$REQ" "$N" "$MAX_S" >>"$OUT/runs.jsonl"
done

python3 - "$OUT/runs.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
med = {}
for r in rows:
    med.setdefault((r["engine"], r["mode"]), []).append(r["renders_per_s"])
print(f"{'engine':<11} {'mode':<13} {'median r/s':>11} {'best r/s':>11} {'us/render':>10}  runs")
for (eng, mode), xs in sorted(med.items()):
    m = statistics.median(xs)
    print(f"{eng:<11} {mode:<13} {m:>11,.0f} {max(xs):>11,.0f} {1e6 / m:>10.2f}  {', '.join(f'{x:,.0f}' for x in xs)}")
for mode in ("pre-parsed", "parse+render"):
    t, v = med.get(("turnpike", mode)), med.get(("velocityjs", mode))
    if t and v:
        print(f"ratio turnpike/velocityjs ({mode}): median {statistics.median(t) / statistics.median(v):.1f}x, "
              f"best {max(t) / max(v):.1f}x")
EOF
