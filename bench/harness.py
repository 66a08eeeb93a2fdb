"""Courier's benchmark harness: one backlog, three subjects (Courier in two shapes), four workloads,
medians of three.

Run through bench/run.sh, which builds and installs what this needs. See bench/README.md.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Another build (an older commit, for before/after figures) with COURIER_BENCH_BIN=<dir>.
BIN = Path(os.environ.get("COURIER_BENCH_BIN", ROOT / "target" / "release"))
STATE = ROOT / ".devstack" / "bench"
# Where the S3 server keeps its objects: in memory (tmpfs) where the machine has one. On ext4
# every run's objects are files (three per PUT) that the next run deletes, and ext4's inode
# allocator then steps over the recently deleted inodes of the directory's block group on
# every new file: on one machine the server's CPU per run grew from 3 to 17 s over six W2 runs
# (most of it in ext4's inode allocation), its PUTs slowed, and the subject's
# batches were cut smaller and smaller (bench/RESULTS.md, machine J). An S3 service has no
# such cost to charge the subject; COURIER_BENCH_S3_ROOT names another directory.
S3_ROOT = Path(os.environ.get("COURIER_BENCH_S3_ROOT")
               or ("/dev/shm/courier-bench-s3" if os.path.isdir("/dev/shm") else STATE / "s3"))
PG = "postgres://postgres@127.0.0.1:5432/postgres"
TOPIC = "bench"
# Each W3 and `mix` run sends its latency phase's stamped events to a topic of its own (which
# the subject subscribes to as well): produced at 2,000 events/s, they are small record batches,
# and in the backlog topic they made every later repetition drain a larger and slower backlog
# (80,000 of them took the raw consumer from ~1.2 million to ~420,000 events/s).
LIVE = "bench-live"
DLQ = "bench-dead-letter"
COUNTER = "127.0.0.1:18095"
S3 = "http://127.0.0.1:18070"
TICK = os.sysconf("SC_CLK_TCK")

WORKLOADS = {
    "w1": "route only (blackhole)",
    "w2": "raw archive to S3 (gzip NDJSON)",
    "w3": "webhook batches to a counting receiver",
    "w4": "warehouse load into PostgreSQL",
    "mix": "all four destinations per customer (memory)",
}

# How Courier's archive cuts objects in W2 and `mix`: one per batch of all partitions (a
# customer's events spread over all 128 partitions). `per_partition`, the connector's default,
# writes one object per customer, partition and offset range instead.
ARCHIVE_OBJECTS = os.environ.get("COURIER_BENCH_ARCHIVE_OBJECTS", "per_batch")

# The workloads a single destination kind stands for; `mix` gives each customer all four.
MIX = ["w1", "w2", "w3", "w4"]

# The subjects in table order. `courier` runs with Courier's defaults (one runtime thread per
# CPU, two here); `courier1` with one runtime thread, the shape the Marathon app definition
# deploys (`cpus: 1`, `COURIER__RUNTIME__WORKER_THREADS=1`) and the one the single-threaded
# ceiling and Python worker have.
SUBJECTS = {
    "ceiling": "ceiling",
    "python": "python",
    "courier": "courier",
    "courier1": "courier, 1 thread",
}
COURIER_ENV = {"courier": {}, "courier1": {"COURIER__RUNTIME__WORKER_THREADS": "1"}}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def usage(pid):
    """CPU seconds (user + system) and peak RSS in MB of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return cpu, hwm


def http_json(url, data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


class Stack:
    """The broker, the S3 server and the counting receiver, stopped on exit."""

    def __init__(self, partitions, live=0):
        shutil.rmtree(STATE, ignore_errors=True)
        shutil.rmtree(S3_ROOT, ignore_errors=True)
        STATE.mkdir(parents=True)
        self.procs = []
        bootstrap = STATE / "bootstrap"
        self.broker = self.spawn("broker", [
            BIN / "courier-devstack", "broker", "--topic", f"{TOPIC}:{partitions}",
            *[a for k in range(live) for a in ("--topic", f"{LIVE}-{k}:4")],
            "--topic", f"{DLQ}:1", "--bootstrap-file", bootstrap])
        self.s3 = self.spawn("s3", self.s3_command())
        self.spawn("counter", [BIN / "courier-devstack", "count", "--listen", COUNTER])
        for _ in range(100):
            if bootstrap.exists() and bootstrap.read_text():
                break
            time.sleep(0.1)
        self.brokers = bootstrap.read_text().strip()
        time.sleep(1)

    def spawn(self, name, cmd):
        out = open(STATE / f"{name}.log", "w")
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    @staticmethod
    def s3_command():
        return [BIN / "courier-devstack", "s3", "--listen", "127.0.0.1:18070", "--root", S3_ROOT,
                "--bucket", "bench"]

    def fresh_s3(self):
        """Restarts the S3 server on an empty directory: it keeps every object of a bucket in one
        flat directory, and after a few hundred thousand objects (one W2 run of the Python
        worker writes ~180,000) every request slows down, which would charge one subject for
        another's objects."""
        self.s3.terminate()
        self.s3.wait(timeout=20)
        self.procs.remove(self.s3)
        shutil.rmtree(S3_ROOT, ignore_errors=True)
        self.s3 = self.spawn("s3", self.s3_command())
        for _ in range(100):
            try:
                urllib.request.urlopen(S3, timeout=1)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the S3 server did not come back")

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=20)
        # In memory: a Python W2 run leaves ~180,000 objects (over 2 GB of tmpfs pages).
        shutil.rmtree(S3_ROOT, ignore_errors=True)


def machine_times():
    """The machine's idle and total CPU time so far, in clock ticks (`/proc/stat`)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3], sum(fields)


def idle_fraction(before, after):
    """The fraction of the machine's CPU time that was idle between two `machine_times()`."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1)


def cpu_idle(seconds=1.0):
    """The fraction of the machine's CPU time that was idle over `seconds`."""
    before = machine_times()
    time.sleep(seconds)
    return idle_fraction(before, machine_times())


def settle(timeout=300, quiet=0.85):
    """Waits until the machine is quiet before a run: PostgreSQL checkpointed, and at least
    `quiet` of the CPU time idle over a second. Returns the seconds waited (recorded with each
    run). A guard: nothing one run leaves behind (PostgreSQL writing out or vacuuming what a W4
    or `mix` run loaded, say) may take the cores from the next subject. In the runs recorded
    so far it waited about a second each time."""
    started = time.time()
    subprocess.run(["psql", "-q", PG, "-c", "CHECKPOINT"], capture_output=True)
    while time.time() - started < timeout:
        if cpu_idle() >= quiet:
            return round(time.time() - started, 1)
    log(f"the machine is still busy after {timeout}s; running anyway")
    return round(time.time() - started, 1)


def topics(live):
    """The topics a run consumes: the backlog, and its live topic if it has one."""
    return [TOPIC] + ([live] if live else [])


def write_config(stack, group, workload, directory, live=None):
    """A worker configuration with 100 customers, each with the workload's destination (`mix`:
    all four), consuming the backlog topic and `live`, if given."""
    directory.mkdir(parents=True, exist_ok=True)
    customers = directory / "customers"
    customers.mkdir(exist_ok=True)
    delivery = {
        "w1": "",
        "w2": "delivery = { batch_max_events = 10000, batch_max_bytes = 16777216, batch_max_age_ms = 1000 }",
        "w3": "delivery = { batch_max_events = 500, batch_max_age_ms = 200 }",
        "w4": "delivery = { batch_max_events = 10000, batch_max_bytes = 16777216, batch_max_age_ms = 1000 }",
    }
    schema_base = group.replace("-", "_")
    for k in range(100):
        settings = {
            "w1": 'kind = "blackhole"\n',
            "w2": f'kind = "s3"\n[destinations.{{name}}.settings]\nbucket = "bench"\nprefix = "courier/c{k:03}"\nobjects = "{ARCHIVE_OBJECTS}"\n'
                  f'endpoint = "{S3}"\npath_style = true\naccess_key_id = "courier-local"\nsecret_access_key = "courier-local-secret"\n',
            "w3": f'kind = "webhook"\n[destinations.{{name}}.settings]\nurl = "http://{COUNTER}/c{k:03}"\n',
            "w4": f'kind = "postgres"\n[destinations.{{name}}.settings]\nurl = "{PG}"\nschema = "{schema_base}_c{k:03}"\n',
        }
        kinds = MIX if workload == "mix" else [workload]
        blocks = []
        for w in kinds:
            name = w if workload == "mix" else "d"
            blocks.append(f'[destinations.{name}]\nenabled = true\n{delivery[w]}\n' + settings[w].replace("{name}", name))
        (customers / f"c{k:03}.toml").write_text(
            f'id = "c{k:03}"\nwrite_keys = ["wk_bench_{k:03}"]\n' + "\n".join(blocks)
        )
    config = directory / "courier.toml"
    config.write_text(f"""customers_dir = "customers"
[kafka]
brokers = "{stack.brokers}"
group_id = "{group}"
topics = {json.dumps(topics(live))}
[consumer]
commit_interval_ms = 500
[dead_letter]
topic = "{DLQ}"
[log]
format = "json"
level = "warn,courier::consumer=info"
[server]
listen = "127.0.0.1:0"
""")
    return config


def offsets(config):
    out = subprocess.run([BIN / "courier", "offsets", "show", "--json", "--config", config],
                         capture_output=True, text=True, check=True).stdout
    return [r for r in next(iter(json.loads(out).values())) if r["topic"] == TOPIC]


def wait_committed(stack, group, rows, timeout=1800, every=0.02):
    """Returns when the group has committed every partition's log end (`rows` as from
    `offsets`, read before the subject started), at most `every` seconds late: one
    OffsetFetch per poll from a client that never joins the group. Polling through `courier
    offsets show` took 0.1-0.2 s per call, which a drain of a few seconds would count."""
    from confluent_kafka import Consumer, TopicPartition
    client = Consumer({"bootstrap.servers": stack.brokers, "group.id": group,
                       "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(TOPIC, r["partition"]) for r in rows]
        end = {r["partition"]: r["log_end"] for r in rows}
        deadline = time.time() + timeout
        while time.time() < deadline:
            committed = client.committed(wanted, timeout=10)
            if all(tp.offset == end[tp.partition] for tp in committed):
                return
            time.sleep(every)
        raise RuntimeError(f"{group} did not commit within {timeout}s")
    finally:
        client.close()


def latency_phase(stack, start, topic, count=20_000, rate=2_000):
    """Stamped events into `topic` at a steady rate while the subject runs; p50/p99 from the
    counter."""
    http_json(f"http://{COUNTER}/_reset", data=b"")
    subprocess.run([BIN / "courier-devstack", "bench-produce", "--brokers", stack.brokers, "--topic", topic,
                    "--count", str(count), "--from", str(start), "--rate", str(rate), "--stamp"],
                   check=True, capture_output=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        report = http_json(f"http://{COUNTER}/_count")
        if report["stamped"] >= count:
            return report["p50_ms"], report["p99_ms"]
        time.sleep(0.5)
    return None, None


def produce(stack, count, topic=TOPIC):
    """The backlog: `count` realistic events into `topic`."""
    subprocess.run([BIN / "courier-devstack", "bench-produce", "--brokers", stack.brokers, "--topic", topic,
                    "--count", str(count)], check=True, capture_output=True)


def start(cmd, log_file, env=None):
    """Starts a subject with its output in `log_file`."""
    return subprocess.Popen([str(c) for c in cmd], stdout=open(log_file, "w"), stderr=subprocess.STDOUT,
                            env=env)


def wait_assigned(log_file, every=0.02, timeout=120):
    """When the subject started in `log_file` logged its first assignment: drains are timed
    from there, as group join and start-up are not the subject's throughput (every subject logs
    "assigned")."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "assigned" in log_file.read_text():
            return time.time()
        time.sleep(every)
    raise RuntimeError(f"never got an assignment; see {log_file}")


def run_subject(stack, subject, workload, rep, backlog, python, live=None):
    group = f"bench-{subject}-{workload}-{rep}"
    config = write_config(stack, group, workload, STATE / group, live)
    # Latency phases write to live topics, so every run drains the same backlog.
    rows = offsets(config)
    events = sum(r["log_end"] for r in rows)
    env = None
    if subject in COURIER_ENV:
        cmd = [BIN / "courier", "run", "--config", config]
        env = {**os.environ, **COURIER_ENV[subject]}
    else:
        cmd = [python, ROOT / "bench" / "python_worker.py", "--brokers", stack.brokers, "--topic", ",".join(topics(live)),
               "--group", group, "--workload", workload, "--webhook", f"http://{COUNTER}", "--s3-endpoint", S3,
               "--bucket", "bench", "--pg", PG, "--schema", f"bench_python_{rep}"]
    http_json(f"http://{COUNTER}/_reset", data=b"")
    log_file = STATE / f"{group}.log"
    proc = start(cmd, log_file, env)
    try:
        started = wait_assigned(log_file)
        cpu_at_start = usage(proc.pid)[0]
        wait_committed(stack, group, rows)
        seconds = time.time() - started
        cpu, rss = usage(proc.pid)
        # `drain_cpu_seconds` leaves out the start-up before the first assignment (loading the
        # configuration and building destinations, the Python worker's imports): what the drain
        # itself cost, as the ceiling reports its own.
        result = {"events": events, "seconds": seconds, "cpu_seconds": cpu,
                  "drain_cpu_seconds": cpu - cpu_at_start, "peak_rss_mb": rss}
        if workload in ("w3", "mix"):
            result["p50_ms"], result["p99_ms"] = latency_phase(
                stack, 10_000_000 * (rep + 1) + backlog["events"], live)
            result["delivered"] = None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def run_ceiling(stack, rep, binary=None, group=None):
    """The raw consumer's drain (`courier-devstack ceiling` of `binary`, default this build's)."""
    out = subprocess.run([binary or BIN / "courier-devstack", "ceiling", "--brokers", stack.brokers, "--topic", TOPIC,
                          "--group", group or f"bench-ceiling-{rep}"], capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    report["events"] = report["messages"]
    return report


def runners(subjects, workload):
    """The subjects that run `workload` after the ceiling's drain: only Courier runs `mix` (the
    memory configuration)."""
    return [s for s in subjects if s != "ceiling" and (workload != "mix" or s in COURIER_ENV)]


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--partitions", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--workloads", default="w1,w2,w3,w4,mix")
    p.add_argument("--subjects", default=",".join(SUBJECTS))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = p.parse_args()
    workloads = args.workloads.split(",")
    subjects = args.subjects.split(",")
    assert set(subjects) <= set(SUBJECTS), f"subjects are {', '.join(SUBJECTS)}"

    # One transaction per schema: a single one would need a lock per table of every run.
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG], check=True, stdout=subprocess.DEVNULL,
                   input="SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace "
                         "WHERE nspname LIKE 'bench\\_%' \\gexec\n", text=True)
    # A live topic per W3 or `mix` run.
    live = args.reps * sum(len(runners(subjects, w)) for w in workloads if w in ("w3", "mix"))
    stack = Stack(args.partitions, live=live)
    lives = iter(f"{LIVE}-{k}" for k in range(live))
    try:
        log(f"producing {args.events} events into {args.partitions} partitions")
        t = time.time()
        produce(stack, args.events)
        probe = write_config(stack, "bench-probe", "w1", STATE / "probe")
        rows = offsets(probe)
        total = sum(r["log_end"] for r in rows)
        assert total == args.events, f"{total} messages in the topic, expected {args.events}"
        backlog = {"events": args.events, "produce_seconds": time.time() - t, "bytes": None}
        results = {"machine": machine(), "events": args.events, "partitions": args.partitions,
                   "reps": args.reps, "runs": {}}
        for rep in range(args.reps):
            if "ceiling" in subjects:
                check_log_start(probe)
                waited = settle()
                r = run_ceiling(stack, rep)
                r["settle_seconds"] = waited
                results["runs"].setdefault("ceiling", []).append(r)
                if backlog["bytes"] is None:
                    backlog["bytes"] = r["bytes"]
                log(f"ceiling rep {rep}: {r}")
            for w in workloads:
                for s in runners(subjects, w):
                    check_log_start(probe)
                    if w in ("w2", "mix"):
                        stack.fresh_s3()
                    waited = settle()
                    live = next(lives) if w in ("w3", "mix") else None
                    r = run_subject(stack, s, w, rep, backlog, args.python, live)
                    r["settle_seconds"] = waited
                    results["runs"].setdefault(f"{s}/{w}", []).append(r)
                    log(f"{s} {w} rep {rep}: {r}")
        results["backlog"] = backlog
        results["summary"] = summarize(results, workloads, subjects)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(table(results, workloads, subjects))
    finally:
        stack.stop()


def check_log_start(config):
    rows = offsets(config)
    assert all(r["log_start"] == 0 for r in rows), "the broker truncated a partition: use more partitions"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release()}


def summarize(results, workloads, subjects):
    # Bytes per event, from the ceiling's first read of the backlog.
    event_bytes = (results["backlog"]["bytes"] or 0) / results["events"]
    out = {}
    for key, runs in results["runs"].items():
        rates = [{"eps": r["events"] / r["seconds"], "cpu": r["cpu_seconds"] / r["events"] * 1e6,
                  "drain_cpu": (r["drain_cpu_seconds"] / r["events"] * 1e6
                                if r.get("drain_cpu_seconds") is not None else None)}
                 for r in runs if r.get("seconds")]
        eps = median(rates, "eps")
        out[key] = {
            "events_per_second": eps,
            "mb_per_second": eps * event_bytes / 1e6 if eps else None,
            "cpu_seconds_per_million": median(rates, "cpu"),
            "drain_cpu_seconds_per_million": median(rates, "drain_cpu"),
            "peak_rss_mb": median(runs, "peak_rss_mb"),
            "p50_ms": median(runs, "p50_ms"),
            "p99_ms": median(runs, "p99_ms"),
        }
    return out


def table(results, workloads, subjects):
    s = results["summary"]
    lines = ["| workload | subject | events/s | MB/s | CPU s / M events | drain CPU s / M | peak RSS MB | p50 / p99 ms "
             "| events/s vs ceiling | CPU vs ceiling | events/s vs Python |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ceiling = s.get("ceiling", {})
    ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "—"
    fmt = lambda v: f"{v:.2f}" if v is not None else "—"
    for w in workloads:
        py = s.get(f"python/{w}", {})
        for subject in [x for x in SUBJECTS if x in subjects]:
            r = s.get("ceiling" if subject == "ceiling" else f"{subject}/{w}")
            if not r:
                continue
            lat = f"{r['p50_ms']} / {r['p99_ms']}" if r.get("p99_ms") is not None else "—"
            lines.append(
                f"| {w} {WORKLOADS[w]} | {SUBJECTS[subject]} | {r['events_per_second']:,.0f} | "
                f"{r['mb_per_second']:.1f} | {r['cpu_seconds_per_million']:.2f} | "
                f"{fmt(r.get('drain_cpu_seconds_per_million'))} | {r['peak_rss_mb']:.0f} | {lat} | "
                f"{ratio(r['events_per_second'], ceiling.get('events_per_second'))} | "
                f"{ratio(r['cpu_seconds_per_million'], ceiling.get('cpu_seconds_per_million'))} | "
                f"{ratio(r['events_per_second'], py.get('events_per_second')) if subject in COURIER_ENV else '—'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
