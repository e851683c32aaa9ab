#!/usr/bin/env bash
# Instructions per render (callgrind), turnpike-vtl vs velocityjs, pre-parsed mode:
# stable when the machine is busy, unlike renders/s. Each engine runs twice (N1 and N2
# renders); (Ir(N2) - Ir(N1)) / (N2 - N1) cancels start-up, template compilation and
# (for node) most JIT warm-up.
#
#   bench/vtl/ir.sh            # needs valgrind; node for velocityjs
set -euo pipefail

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

ir() { # command... -> total instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        sed -n 's/.*refs: *//p' | tr -d ,
}
per_render() { # n1 n2 command-with-N-placeholder...
    local n1=$1 n2=$2
    shift 2
    local a b
    a=$(ir "${@//@N@/$n1}")
    b=$(ir "${@//@N@/$n2}")
    echo $(((b - a) / (n2 - n1)))
}

T=$(VTL_ONLY=pre-parsed per_render 1000 3000 "$CARGO_TARGET_DIR/release/examples/vtl_bench" "$TPL" "$REQ" @N@ 1000)
V=$(VELOCITY_DIR="$HERE" per_render 1000 3000 node "$HERE/ir_velocity.js" "$TPL" "$REQ" @N@)
echo "turnpike   instructions/render: $T"
echo "velocityjs instructions/render: $V"
python3 -c "print(f'ratio velocityjs/turnpike (instructions): {$V / $T:.1f}x')"
