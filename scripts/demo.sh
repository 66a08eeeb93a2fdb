#!/usr/bin/env bash
# The end-to-end demo: starts a local broker, a webhook receiver, an S3 server and the
# Redshift-compatible front, reuses or starts the local PostgreSQL as the warehouse, produces
# sample events for the three customers in config/customers (plus some bad input), runs a
# worker until every partition is committed, shows what each destination received, queries of
# both warehouses, the raw archive, the dead letters and the committed offsets, then stops
# everything.
#
#   scripts/demo.sh                  50,000 events
#   DEMO_EVENTS=200000 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${DEMO_EVENTS:-50000}
# The local broker keeps ~5 MB per partition: about 6,000 sample events fit in each.
PARTITIONS=${DEMO_PARTITIONS:-$(( EVENTS / 6000 + 1 > 16 ? EVENTS / 6000 + 1 : 16 ))}
STATE=.devstack
BIN=target/release

scripts/setup.sh postgres
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
echo "== building (release)"
cargo build --release --locked --bins

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$STATE" && mkdir -p "$STATE"
echo "== starting the local broker"
"$BIN/courier-devstack" broker --config config/courier.toml --partitions "$PARTITIONS" \
    --bootstrap-file "$STATE/bootstrap" >"$STATE/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
for _ in $(seq 1 50); do [ -s "$STATE/bootstrap" ] && break; sleep 0.1; done
if [ ! -s "$STATE/bootstrap" ] || ! kill -0 "$broker" 2>/dev/null; then
    echo "the broker did not start:" >&2
    cat "$STATE/broker.log" >&2
    exit 1
fi
export COURIER__KAFKA__BROKERS
COURIER__KAFKA__BROKERS=$(cat "$STATE/bootstrap")
echo "   broker at $COURIER__KAFKA__BROKERS"

# Demo secrets: the customer files read them with ${VAR}.
export ACME_WEBHOOK_SECRET=demo-acme-signing-secret ACME_API_KEY=demo-acme-api-key
export INITECH_WEBHOOK_SECRET=demo-initech-signing-secret
# The local PostgreSQL is the demo's warehouse; acme's tables start empty.
export COURIER_WAREHOUSE_URL=${COURIER_WAREHOUSE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
psql -q "$COURIER_WAREHOUSE_URL" -c 'DROP SCHEMA IF EXISTS acme CASCADE; DROP SCHEMA IF EXISTS globex CASCADE' 2>/dev/null
# Acme's raw archive and globex's Redshift staging live on the local S3 server; globex's
# "Redshift" is the front, which runs COPY ... FROM 's3://...' against the local PostgreSQL.
export COURIER_S3_ENDPOINT=http://127.0.0.1:18070 COURIER_S3_ACCESS_KEY_ID=courier-local
export COURIER_S3_SECRET_ACCESS_KEY=courier-local-secret
export COURIER_REDSHIFT_URL=postgres://postgres@127.0.0.1:15439/postgres

echo "== starting the S3 server and the Redshift front"
"$BIN/courier-devstack" s3 --listen 127.0.0.1:18070 --root "$STATE/s3" \
    --bucket acme-archive --bucket globex-staging >"$STATE/s3.log" 2>&1 &
pids+=($!)
"$BIN/courier-devstack" redshift-front --listen 127.0.0.1:15439 --backend 127.0.0.1:5432 \
    --s3-endpoint "$COURIER_S3_ENDPOINT" >"$STATE/front.log" 2>&1 &
pids+=($!)
for log in s3 front; do
    for _ in $(seq 1 50); do grep -q listening "$STATE/$log.log" 2>/dev/null && break; sleep 0.1; done
    grep -q listening "$STATE/$log.log" || { echo "the $log server did not start:" >&2; cat "$STATE/$log.log" >&2; exit 1; }
done

echo "== starting the webhook receiver (verifies signatures)"
"$BIN/courier-devstack" receive --listen 127.0.0.1:18080 --out-dir "$STATE/received" \
    --secret acme/product=ACME_WEBHOOK_SECRET --secret initech/crm=INITECH_WEBHOOK_SECRET \
    >"$STATE/receiver.log" 2>&1 &
receiver=$!
pids+=("$receiver")
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18080/_summary >/dev/null && break; sleep 0.1; done
if ! kill -0 "$receiver" 2>/dev/null; then
    echo "the receiver did not start (is port 18080 taken?):" >&2
    cat "$STATE/receiver.log" >&2
    exit 1
fi

echo "== checking the configuration (effective configuration in $STATE/effective-config.json)"
"$BIN/courier" config check --config config/courier.toml >"$STATE/effective-config.json"

echo "== producing $EVENTS events for acme, globex and initech, plus bad input"
"$BIN/courier-devstack" produce --brokers "$COURIER__KAFKA__BROKERS" --topic segment-events \
    --write-key wk_acme_web --write-key wk_acme_ios --write-key wk_globex --write-key wk_initech \
    --count "$EVENTS" --bad-input

if "$BIN/courier" offsets show --config config/courier.toml --json | grep -q '"log_start": [1-9]'; then
    echo "the broker truncated a partition: run with more DEMO_PARTITIONS" >&2
    exit 1
fi

echo "== running a worker until every partition is committed"
start=$(date +%s.%N)
COURIER__LOG__FORMAT=json "$BIN/courier" run --config config/courier.toml >"$STATE/worker.log" 2>&1 &
worker=$!
pids+=("$worker")
"$BIN/courier-devstack" wait-committed --config config/courier.toml --timeout-secs 600
end=$(date +%s.%N)
awk -v n="$EVENTS" -v s="$start" -v e="$end" \
    'BEGIN { printf "   %d events routed, delivered and committed in %.2fs: %.0f events/s (from worker start, group join included)\n", n, e - s, n / (e - s) }'

echo "== what each destination received"
"$BIN/courier-devstack" received --receiver 127.0.0.1:18080
echo "   (acme/ops is disabled and receives nothing; initech's dry_run is a blackhole)"

echo "== the warehouse: acme's events by name in PostgreSQL (one row per event)"
psql "$COURIER_WAREHOUSE_URL" -c 'SELECT event_text AS event, count(*) AS rows, count(DISTINCT id) AS distinct_ids FROM acme.tracks GROUP BY 1 ORDER BY 2 DESC'
psql "$COURIER_WAREHOUSE_URL" -At -c "SELECT 'identifies: ' || count(*) FROM acme.identifies UNION ALL SELECT 'pages: ' || count(*) FROM acme.pages UNION ALL SELECT 'users: ' || count(*) FROM acme.users"

echo "== the Redshift warehouse (through the front): globex's tables"
psql "$COURIER_WAREHOUSE_URL" -c 'SELECT event_text AS event, count(*) AS rows, count(DISTINCT id) AS distinct_ids FROM globex.tracks GROUP BY 1 ORDER BY 2 DESC'
psql "$COURIER_WAREHOUSE_URL" -At -c "SELECT 'loads: ' || count(DISTINCT load_id) || ', staged files: ' || sum(length(files) - length(replace(files, ',', '')) + 1) FROM globex.courier_ledger"

echo "== the raw archive: acme's objects in s3://acme-archive/segment/raw/"
objects=$(find "$STATE/s3/acme-archive" -name '*.ndjson.gz' | sort)
echo "$objects" | head -3 | sed "s|$STATE/s3/|   s3://|"
echo "   ... $(echo "$objects" | wc -l) objects holding $(echo "$objects" | xargs zcat | wc -l) events"

echo "== dead letters"
"$BIN/courier-devstack" dead-letters --brokers "$COURIER__KAFKA__BROKERS" --topic courier-dead-letter

echo "== committed offsets"
"$BIN/courier" offsets show --config config/courier.toml

echo "== stopping the worker (SIGTERM: drain, commit, leave the group)"
kill -TERM "$worker"
wait "$worker"
grep -o '"message":"worker stopped"' "$STATE/worker.log" >/dev/null && echo "   worker stopped cleanly"
echo "== done; logs and received events are in $STATE/"
