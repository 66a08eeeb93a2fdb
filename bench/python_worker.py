"""The hand-written alternative Courier is measured against: one Python process with
confluent-kafka that does each benchmark workload the straightforward way, committing offsets
only after delivery.

    python_worker.py --brokers B --topic T[,T2...] --group G --workload w1|w2|w3|w4 [options]

It consumes with the group (subscribe), decodes each event (json), routes it by writeKey to its
customer (100 known write keys), and per workload:

  w1  acknowledges at once (route only);
  w2  gzip NDJSON per customer and partition of each batch (Courier's archive keeps one object
      per customer, partition and offset range), one boto3 put_object each;
  w3  POSTs each customer's events as JSON arrays of up to 500 with a requests.Session;
  w4  COPYs rows into tracks/identifies/pages of one schema with psycopg (standard columns
      plus the properties or traits as jsonb), one transaction per batch.

Batches are what one consume() call returns (up to 5,000 messages or 200 ms); after a batch is
delivered its offsets are committed synchronously. Runs until SIGTERM.
"""

import argparse
import gzip
import json
import signal
from collections import defaultdict

from confluent_kafka import Consumer, TopicPartition

running = True


def stop(*_):
    global running
    running = False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--workload", required=True, choices=["w1", "w2", "w3", "w4"])
    p.add_argument("--customers", type=int, default=100)
    p.add_argument("--webhook", default="http://127.0.0.1:18095/bench")
    p.add_argument("--s3-endpoint", default="http://127.0.0.1:18070")
    p.add_argument("--bucket", default="bench")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--schema", default="bench_python")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    customers = {f"wk_bench_{k:03}": f"c{k:03}" for k in range(args.customers)}
    deliver = make_delivery(args)
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
    })
    consumer.subscribe(args.topic.split(","), on_assign=lambda c, partitions: print("assigned", len(partitions), flush=True))
    while running:
        messages = consumer.consume(num_messages=5000, timeout=0.2)
        if not messages:
            continue
        by_partition = defaultdict(list)
        offsets = {}
        for m in messages:
            if m.error():
                continue
            offsets[(m.topic(), m.partition())] = m.offset()
            try:
                event = json.loads(m.value())
            except ValueError:
                continue  # a real worker would dead-letter it
            customer = customers.get(event.get("writeKey"))
            if customer is None:
                continue
            by_partition[(m.topic(), m.partition())].append((customer, m.offset(), event, m.value()))
        deliver(by_partition)
        consumer.commit(
            offsets=[TopicPartition(t, p, o + 1) for (t, p), o in offsets.items()],
            asynchronous=False,
        )
    consumer.close()


def make_delivery(args):
    if args.workload == "w1":
        return lambda batches: None
    if args.workload == "w2":
        import boto3
        s3 = boto3.client(
            "s3",
            endpoint_url=args.s3_endpoint,
            aws_access_key_id="courier-local",
            aws_secret_access_key="courier-local-secret",
            region_name="us-east-1",
        )

        def archive(batches):
            for (topic, partition), items in batches.items():
                per_customer = defaultdict(list)
                for customer, offset, _, raw in items:
                    per_customer[customer].append((offset, raw))
                for customer, lines in per_customer.items():
                    body = gzip.compress(b"\n".join(raw for _, raw in lines) + b"\n", 1)
                    first, last = lines[0][0], lines[-1][0]
                    key = f"python/{customer}/{topic}-{partition}-{first:020}-{last:020}.ndjson.gz"
                    s3.put_object(Bucket=args.bucket, Key=key, Body=body)

        return archive
    if args.workload == "w3":
        import requests
        session = requests.Session()

        def post(batches):
            per_customer = defaultdict(list)
            for items in batches.values():
                for customer, _, event, _ in items:
                    per_customer[customer].append(event)
            for customer, events in per_customer.items():
                for i in range(0, len(events), 500):
                    r = session.post(f"{args.webhook}/{customer}", json=events[i:i + 500], timeout=10)
                    r.raise_for_status()

        return post
    import psycopg
    conn = psycopg.connect(args.pg, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {args.schema}")
        for table in ("tracks", "identifies", "pages"):
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {args.schema}.{table} (id text PRIMARY KEY, customer text, "
                "user_id text, anonymous_id text, event text, timestamp timestamptz, received_at timestamptz, data jsonb)"
            )
    conn.commit()
    tables = {"track": "tracks", "identify": "identifies", "page": "pages"}

    def load(batches):
        rows = defaultdict(list)
        for items in batches.values():
            for customer, _, e, _ in items:
                table = tables.get(e.get("type"))
                if table:
                    data = e.get("properties") or e.get("traits") or {}
                    rows[table].append((e["messageId"], customer, e.get("userId"), e.get("anonymousId"),
                                        e.get("event") or e.get("name"), e.get("timestamp"), json.dumps(data)))
        with conn.cursor() as cur:
            for table, table_rows in rows.items():
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS stage (LIKE %s.tracks) ON COMMIT DELETE ROWS" % args.schema)
                with cur.copy("COPY stage (id, customer, user_id, anonymous_id, event, timestamp, data) FROM STDIN") as copy:
                    for row in table_rows:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO {args.schema}.{table} SELECT DISTINCT ON (id) id, customer, user_id, anonymous_id, event, timestamp, now(), data "
                    "FROM stage ORDER BY id ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, received_at = EXCLUDED.received_at"
                )
                cur.execute("TRUNCATE stage")
        conn.commit()

    return load


if __name__ == "__main__":
    main()
