#!/usr/bin/env bash
# The benchmark: Courier beside the raw-consumer ceiling and a hand-written Python worker, on
# one backlog, four workloads, three repetitions (see bench/README.md). Not part of the tests.
#
#   bench/run.sh                                   500,000 events, everything
#   bench/run.sh --events 100000 --reps 1 --workloads w1,w3
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh bench
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bins >&2
if [ ! -x .devstack/bench-venv/bin/python ]; then
    python3 -m venv .devstack/bench-venv
fi
.devstack/bench-venv/bin/pip install --quiet --disable-pip-version-check \
    "confluent-kafka>=2.6" boto3 requests "psycopg[binary]>=3.1"
exec .devstack/bench-venv/bin/python bench/harness.py --python .devstack/bench-venv/bin/python "$@"
