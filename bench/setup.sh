#!/usr/bin/env bash
# Install what bench/proxy-bench.py needs (idempotent; run as root on Debian/Ubuntu).
#   apt: nginx (upstream + reference proxy), wrk (load generator)
#   python3 (stdlib only), taskset (util-linux) are expected to be there already.
# The nginx service is not started or enabled: the bench runs its own nginx
# processes with their own configs and stops them by PID.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing ${need[*]}; run as root (apt-get install)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # apt-get update only when the package lists do not know the packages yet.
  if ! apt-cache show "${need[@]}" >/dev/null 2>&1; then
    apt-get update -qq
  fi
  # policy-rc.d 101 keeps the nginx package from starting its system service.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

command -v python3 >/dev/null || { echo "setup.sh: python3 is required" >&2; exit 1; }

echo "versions:"
set +e +o pipefail   # version probes only (wrk -v exits 1)
nginx -v 2>&1
wrk -v 2>&1 | head -1
python3 --version
if perf stat -e instructions true >/dev/null 2>&1; then
  echo "perf: usable ($(perf --version 2>/dev/null)); PROFILE=1 proxy-bench.py records a profile of turnpike"
else
  echo "perf: not usable here (optional; only PROFILE=1 needs it)"
fi
exit 0
