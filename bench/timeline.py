"""One drain of Courier, over time: events the counting receiver got and offsets committed.

    bench/timeline.py w3 [--events 500000] [--partitions 128] [--every 0.05]

Runs Courier alone on the harness's backlog and configuration for `workload` and prints, every
`--every` seconds from its first assignment until the backlog is committed, the seconds since
then, the events delivered (W3 and `mix`: the counting receiver's count), the offsets
committed (one OffsetFetch from a client that never joins the group), the worker's CPU
seconds, and how many of the machine's cores were busy since the line before (all processes:
the worker, the broker, the receiver). Shows where a drain's time goes: start-up, the steady
rate, the tail, and whether the machine was full meanwhile. Run with the benchmark's venv after
`bench/run.sh` has set it up. Not part of the tests.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["w1", "w2", "w3", "w4", "mix"])
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--partitions", type=int, default=128)
    p.add_argument("--every", type=float, default=0.05)
    args = p.parse_args()
    from confluent_kafka import Consumer, TopicPartition

    stack = h.Stack(args.partitions)
    try:
        h.produce(stack, args.events)
        h.settle()
        group = "timeline"
        config = h.write_config(stack, group, args.workload, h.STATE / group)
        rows = h.offsets(config)
        end = {r["partition"]: r["log_end"] for r in rows}
        h.http_json(f"http://{h.COUNTER}/_reset", data=b"")
        log_file = h.STATE / f"{group}.log"
        proc = h.start([h.BIN / "courier", "run", "--config", config], log_file)
        observer = Consumer({"bootstrap.servers": stack.brokers, "group.id": group,
                             "enable.auto.commit": False})
        try:
            started = h.wait_assigned(log_file, every=0.005)
            wanted = [TopicPartition(h.TOPIC, p) for p in end]
            print("seconds  delivered  committed  cpu_s  busy_cores")
            cores = os.cpu_count() or 1
            times = h.machine_times()
            while True:
                delivered = h.http_json(f"http://{h.COUNTER}/_count")["events"]
                committed = observer.committed(wanted, timeout=10)
                done = sum(max(tp.offset, 0) for tp in committed)
                cpu, _ = h.usage(proc.pid)
                now = h.machine_times()
                busy = cores * (1 - h.idle_fraction(times, now))
                times = now
                print(f"{time.time() - started:7.2f}  {delivered:9d}  {done:9d}  {cpu:5.2f}"
                      f"  {busy:10.2f}", flush=True)
                if all(tp.offset == end[tp.partition] for tp in committed):
                    break
                time.sleep(args.every)
        finally:
            observer.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
