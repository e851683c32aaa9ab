#!/usr/bin/env bash
# The project's test command (README "Run the tests"; CI runs exactly this).
# Installs nothing system-wide; needs the Rust toolchain pinned in rust-toolchain.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies"
scripts/test-deps.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
