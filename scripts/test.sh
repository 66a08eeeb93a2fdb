#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, the docs, unit, property and
# end-to-end tests. The end-to-end tests start their own brokers and HTTP servers on
# loopback; the warehouse tests use the PostgreSQL on 127.0.0.1:5432, which setup reuses or
# installs and starts (COURIER_TEST_POSTGRES_URL points them elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh postgres
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
