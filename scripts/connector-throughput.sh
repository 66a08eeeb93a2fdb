#!/usr/bin/env bash
# Measures the events/s one worker delivers to each connector's local contract server (the
# webhook to the local receiver, the s3 archive to the local S3 server, postgres to the local
# PostgreSQL and redshift through the Redshift front with S3 staging): for each connector, a worker joins its own group, then
# EVENTS sample events are produced and the time until every partition is committed is taken.
#
#   scripts/connector-throughput.sh            20,000 events per connector (slack: 300)
#   EVENTS=50000 scripts/connector-throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-20000}
PARTITIONS=8
STATE=.devstack/throughput
BIN=target/release

scripts/setup.sh postgres
PG=postgres://postgres@127.0.0.1:5432/postgres
psql -q "$PG" -c 'DROP SCHEMA IF EXISTS courier_throughput CASCADE; DROP SCHEMA IF EXISTS courier_throughput_rs CASCADE' 2>/dev/null
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bins >&2

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$STATE" && mkdir -p "$STATE"

runs=${RUNS:-"webhook amplitude amplitude-unlimited mixpanel segment slack s3 postgres redshift"}
topic_args=(--topic tp-dead-letter:1)
for run in $runs; do topic_args+=(--topic "tp-$run:$PARTITIONS"); done
"$BIN/courier-devstack" broker "${topic_args[@]}" --bootstrap-file "$STATE/bootstrap" >"$STATE/broker.log" 2>&1 &
pids+=($!)
"$BIN/courier-devstack" contracts --listen 127.0.0.1:18090 >"$STATE/contracts.log" 2>&1 &
pids+=($!)
"$BIN/courier-devstack" receive --listen 127.0.0.1:18091 >"$STATE/receiver.log" 2>&1 &
pids+=($!)
"$BIN/courier-devstack" s3 --listen 127.0.0.1:18070 --root "$STATE/s3" --bucket archive --bucket staging >"$STATE/s3.log" 2>&1 &
pids+=($!)
"$BIN/courier-devstack" redshift-front --listen 127.0.0.1:15439 --s3-endpoint http://127.0.0.1:18070 >"$STATE/front.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$STATE/bootstrap" ] && break; sleep 0.1; done
brokers=$(cat "$STATE/bootstrap")
api=http://127.0.0.1:18090

# The local S3 server's location settings: bucket, prefix.
s3_settings() {
    printf 'bucket = "%s"\nprefix = "%s"\nendpoint = "http://127.0.0.1:18070"\npath_style = true\naccess_key_id = "courier-local"\nsecret_access_key = "courier-local-secret"\n' "$1" "$2"
}

destination() {
    case "$1" in
        webhook) printf 'kind = "webhook"\n[destinations.d.settings]\nurl = "http://127.0.0.1:18091/tp"\n' ;;
        amplitude) printf 'kind = "amplitude"\n[destinations.d.settings]\napi_key = "amp-key"\nendpoint = "%s"\n' "$api" ;;
        amplitude-unlimited) printf 'kind = "amplitude"\ndelivery = { events_per_second = 1000000.0 }\n[destinations.d.settings]\napi_key = "amp-key"\nendpoint = "%s"\n' "$api" ;;
        mixpanel) printf 'kind = "mixpanel"\n[destinations.d.settings]\nproject_token = "mp-token"\nendpoint = "%s"\n' "$api" ;;
        segment) printf 'kind = "segment"\n[destinations.d.settings]\nwrite_key = "seg-write-key"\nendpoint = "%s"\n' "$api" ;;
        postgres) printf 'kind = "postgres"\ndelivery = { batch_max_events = 5000, batch_max_age_ms = 1000 }\n[destinations.d.settings]\nurl = "postgres://postgres@127.0.0.1:5432/postgres"\nschema = "courier_throughput"\n' ;;
        s3) printf 'kind = "s3"\ndelivery = { batch_max_events = 5000, batch_max_age_ms = 1000 }\n[destinations.d.settings]\n%s' "$(s3_settings archive tp)" ;;
        redshift) printf 'kind = "redshift"\ndelivery = { batch_max_events = 5000, batch_max_age_ms = 1000 }\n[destinations.d.settings]\nurl = "postgres://postgres@127.0.0.1:15439/postgres"\nschema = "courier_throughput_rs"\n[destinations.d.settings.staging]\n%s' "$(s3_settings staging loads)" ;;
        slack) printf 'kind = "slack"\n[destinations.d.settings]\nwebhook_url = "%s/services/T000/B000/XXXX"\nevents = ["Order Completed"]\n' "$api" ;;
    esac
}

printf '| connector | events | seconds | events/s | rows/s |\n|---|---:|---:|---:|---:|\n'
for run in $runs; do
    dir="$STATE/$run"
    mkdir -p "$dir/customers"
    cat >"$dir/courier.toml" <<TOML
customers_dir = "customers"
[kafka]
brokers = "$brokers"
group_id = "tp-$run"
topics = ["tp-$run"]
[dead_letter]
topic = "tp-dead-letter"
[log]
format = "json"
level = "warn"
TOML
    { printf 'id = "tp"\nwrite_keys = ["wk_tp"]\n[destinations.d]\nenabled = true\n'; destination "$run"; } >"$dir/customers/tp.toml"
    count=$EVENTS
    [ "$run" = slack ] && count=300
    "$BIN/courier" run --config "$dir/courier.toml" >"$dir/worker.log" 2>&1 &
    worker=$!
    pids+=("$worker")
    # Time from produce to the last commit, not the group join.
    "$BIN/courier-devstack" wait-committed --config "$dir/courier.toml" --timeout-secs 60 >/dev/null
    sleep 4
    start=$(date +%s.%N)
    "$BIN/courier-devstack" produce --brokers "$brokers" --topic "tp-$run" --write-key wk_tp --count "$count" >/dev/null
    "$BIN/courier-devstack" wait-committed --config "$dir/courier.toml" --timeout-secs 900 >/dev/null
    end=$(date +%s.%N)
    kill -TERM "$worker"; wait "$worker" || true
    # Warehouse rows (every table, users included) from the load ledger.
    rows=0
    case "$run" in
        postgres) rows=$(psql -Atq "$PG" -c 'SELECT coalesce(sum(events), 0) FROM courier_throughput.courier_ledger') ;;
        redshift) rows=$(psql -Atq "$PG" -c 'SELECT coalesce(sum(events), 0) FROM courier_throughput_rs.courier_ledger') ;;
    esac
    awk -v r="$run" -v n="$count" -v s="$start" -v e="$end" -v rows="$rows" 'BEGIN { rate = rows > 0 ? sprintf("%.0f", rows / (e - s)) : "-"; printf "| %s | %d | %.2f | %.0f | %s |\n", r, n, e - s, n / (e - s), rate }'
done
echo
echo "slack sends only listed events (Order Completed, about 1 in 8 here) at 1 message/s;"
echo "amplitude runs at its documented default of 1,000 events/s; amplitude-unlimited lifts it."
echo "Measured on $(nproc) cores with: scripts/connector-throughput.sh (EVENTS=$EVENTS)"
