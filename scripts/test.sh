#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit, property and
# end-to-end tests. The end-to-end tests start their own brokers and HTTP receivers on
# loopback; nothing needs to run beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
