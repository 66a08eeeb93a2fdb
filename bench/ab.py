"""Interleaved before/after runs of Courier alone, on the harness's backlog and configuration.

    bench/ab.py w1 variants.json [--events 500000] [--partitions 128] [--reps 3]

`variants.json` is a list of variants, run in turn within each repetition so that the machine's
drift falls on all of them alike; the turn starts one variant later each repetition, so that
each variant runs as often in each place of it (with --reps a multiple of their number). Each variant has a `name` and any of:
  - `bin`: a directory with another build's `courier` (default: target/release);
  - `consumer`: TOML lines put in `[consumer]`, replacing the harness's keys of the same name;
  - `append`: TOML appended to the worker's configuration (e.g. a `[kafka.consumer_properties]`
    table);
  - `customers`: [old, new], a text replacement in every customer file (destination settings);
  - `env`: environment variables for the worker;
  - `wrap`: a command the worker runs under (e.g. `perf record -o perf.data --`);
  - `ceiling: true`: instead of Courier, the raw consumer (`courier-devstack ceiling` of `bin`),
    so that ratios to it can be taken within each repetition; on a machine whose speed drifts,
    a ceiling measured minutes apart can move more than a change does.
Prints one line per run (events/s, CPU s per million events, the same from the first
assignment on (`drain_cpu_s_per_m`, without start-up), peak RSS MB, the broker's CPU s per
million events over the run (`broker_cpu_s_per_m`: it shares the cores); with `--idle S`, also
the worker's and the broker's CPU while the worker then sits idle for S seconds; for W2 and
`mix`, the objects written, their mean size and the S3 server's CPU seconds) and, per variant,
the sorted values of all repetitions. Run with the benchmark's venv after `bench/run.sh` has set it
up: `.devstack/bench-venv/bin/python bench/ab.py ...`. Not part of the tests.
"""

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402


def configure(stack, variant, group, workload):
    """The harness's worker configuration for `workload`, changed as the variant says."""
    config = h.write_config(stack, group, workload, h.STATE / group)
    text = config.read_text()
    consumer = variant.get("consumer", "")
    for line in filter(None, consumer.split("\n")):
        key = line.split("=")[0].strip()
        text = "\n".join(l for l in text.split("\n") if not l.startswith(key + " ="))
    text = text.replace("[consumer]\n", "[consumer]\n" + consumer + "\n")
    config.write_text(text + "\n" + variant.get("append", "") + "\n")
    if "customers" in variant:
        old, new = variant["customers"]
        for f in (config.parent / "customers").glob("*.toml"):
            f.write_text(f.read_text().replace(old, new))
    return config


def idle_usage(stack, proc, seconds):
    """CPU percent of one core the worker and the broker used while the worker sat idle (its
    backlog done) for `seconds`."""
    broker = stack.broker.pid
    worker0, broker0 = h.usage(proc.pid)[0], h.usage(broker)[0]
    time.sleep(seconds)
    worker1, broker1 = h.usage(proc.pid)[0], h.usage(broker)[0]
    return {"idle_worker_cpu_pct": round(100 * (worker1 - worker0) / seconds, 1),
            "idle_broker_cpu_pct": round(100 * (broker1 - broker0) / seconds, 1)}


def archive_usage(stack, s3_cpu0):
    """The objects the S3 server holds after a drain, their mean size in KB, and the CPU
    seconds the server used during it: how a W2 run cut its batches."""
    sizes = [f.stat().st_size for f in h.S3_ROOT.rglob("*.gz")]
    return {"objects": len(sizes), "object_kb": round(sum(sizes) / max(len(sizes), 1) / 1024, 1),
            "s3_cpu_s": round(h.usage(stack.s3.pid)[0] - s3_cpu0, 2)}


def run_ceiling(stack, variant, rep, events):
    """The raw consumer's drain of the backlog, in the figures `run` reports."""
    h.settle()
    r = h.run_ceiling(stack, rep, binary=Path(variant.get("bin", h.BIN)) / "courier-devstack",
                      group=f"ab-{variant['name']}-{rep}")
    return {"events_per_s": round(r["messages"] / r["seconds"]),
            "cpu_s_per_m": round(r["cpu_seconds"] / events * 1e6, 2),
            "drain_cpu_s_per_m": round(r["drain_cpu_seconds"] / events * 1e6, 2),
            "peak_rss_mb": round(r["peak_rss_mb"])}


def run(stack, variant, workload, rep, events, idle=0):
    """One drain by `variant`, with the broker's CPU over it beside the subject's: the two
    share the machine's cores, so what the broker takes bounds every subject's drain rate."""
    broker0 = h.usage(stack.broker.pid)[0]
    if variant.get("ceiling"):
        r = run_ceiling(stack, variant, rep, events)
    else:
        r = run_courier(stack, variant, workload, rep, events, idle)
    return {**r, "broker_cpu_s_per_m": round((h.usage(stack.broker.pid)[0] - broker0) / events * 1e6, 2)}


def run_courier(stack, variant, workload, rep, events, idle):
    archive = workload in ("w2", "mix")
    if archive:
        stack.fresh_s3()
    h.settle()
    group = f"ab-{variant['name']}-{rep}"
    config = configure(stack, variant, group, workload)
    rows = h.offsets(config)
    binary = Path(variant.get("bin", h.BIN)) / "courier"
    log_file = h.STATE / f"{group}.log"
    s3_cpu0 = h.usage(stack.s3.pid)[0] if archive else 0
    proc = h.start(variant.get("wrap", []) + [binary, "run", "--config", config], log_file,
                   env=dict(os.environ, **variant.get("env", {})))
    try:
        started = h.wait_assigned(log_file, every=0.01)
        cpu_at_start = h.usage(proc.pid)[0]
        h.wait_committed(stack, group, rows)
        seconds = time.time() - started
        # Under `wrap` the worker is the wrapper's child: its figures are not the worker's.
        cpu, rss = h.usage(proc.pid)
        quiet = idle_usage(stack, proc, idle) if idle else {}
        if archive:
            quiet.update(archive_usage(stack, s3_cpu0))
    finally:
        proc.send_signal(signal.SIGINT if variant.get("wrap") else signal.SIGTERM)
        proc.wait(timeout=60)
    return {"events_per_s": round(events / seconds), "cpu_s_per_m": round(cpu / events * 1e6, 2),
            "drain_cpu_s_per_m": round((cpu - cpu_at_start) / events * 1e6, 2),
            "peak_rss_mb": round(rss), **quiet}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["w1", "w2", "w3", "w4", "mix"])
    p.add_argument("variants")
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--partitions", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--idle", type=float, default=0,
                   help="after each drain, also measure the idle worker's and broker's CPU for "
                        "this many seconds")
    args = p.parse_args()
    variants = json.loads(Path(args.variants).read_text())
    stack = h.Stack(args.partitions)
    try:
        h.produce(stack, args.events)
        results = {}
        for rep in range(args.reps):
            # The order turns by one each repetition: a run's place in the turn moved its
            # figures as much as a change did (bench/RESULTS.md, machine N).
            k = rep % len(variants)
            for variant in variants[k:] + variants[:k]:
                r = run(stack, variant, args.workload, rep, args.events, args.idle)
                results.setdefault(variant["name"], []).append(r)
                print(variant["name"], rep, r, flush=True)
        for name, runs in results.items():
            print(name, {k: sorted(r[k] for r in runs) for k in runs[0]})
        ceiling = next((v["name"] for v in variants if v.get("ceiling")), None)
        if ceiling:
            # Each variant against the ceiling of the same repetition, then the median.
            for name, runs in results.items():
                if name == ceiling:
                    continue
                pairs = list(zip(runs, results[ceiling]))
                ratios = {label: sorted(round(r[key] / c[key], 2) for r, c in pairs)
                          for label, key in [("cpu", "cpu_s_per_m"), ("drain cpu", "drain_cpu_s_per_m"),
                                             ("drain rate", "events_per_s")]}
                print(name, "/ ceiling by repetition:", "; ".join(
                    f"{label} {v} median {statistics.median(v)}" for label, v in ratios.items()))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
