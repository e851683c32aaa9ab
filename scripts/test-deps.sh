#!/usr/bin/env bash
# Installs the test-only tools the suite needs, idempotently:
#   .venv/  Python virtualenv with scripts/requirements-test.txt (AWS's own clients and runtimes:
#           boto3, awslambdaric, moto's server, websockets, ...).
# Tests locate the venv at <repo>/.venv (override with TURNPIKE_TEST_PYTHON=/path/to/python).
set -euo pipefail
cd "$(dirname "$0")/.."

req=scripts/requirements-test.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "test dependencies installed in .venv"
