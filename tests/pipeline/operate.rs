//! Operating the fleet: health, readiness and metrics endpoints, live toggles from customer
//! files and from the PostgreSQL store, replay, offsets reset, the Marathon app definition.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    customer, eventually, get, ids, metric, records, sample_events, until_fully_committed, Spec,
    Stack, SECRET, SECRET_VAR, TOPIC,
};

/// Runs `courier <args>` against the stack's configuration.
fn courier(stack: &Stack, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .arg("--config")
        .arg(&stack.config)
        .env(SECRET_VAR, SECRET)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("run courier")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_status() {
    let stack = Stack::start(Spec::one_hook(2, "")).await;
    // Without a reachable broker the worker lives but never joins: not ready.
    let orphan = stack.worker_with_env("orphan", &[("COURIER__KAFKA__BROKERS", "127.0.0.1:9")]);
    let url = orphan.ops_url();
    assert_eq!(get(&format!("{url}/healthz")).await.0, 200);
    for _ in 0..10 {
        assert_eq!(
            get(&format!("{url}/readyz")).await.0,
            503,
            "not ready before joining"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(orphan);

    let events = sample_events("wk_acme", "acme", 0..1_000);
    stack.produce_raw(records(&events)).await;
    let mut worker = stack.worker("worker");
    let url = worker.ops_url();
    let mut ready = false;
    for _ in 0..100 {
        if get(&format!("{url}/readyz")).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready once joined");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    let received = stack.receiver.stats("acme/hook").events;

    // Metrics match what was consumed and delivered (histograms included).
    let (status, text) = get(&format!("{url}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "courier_consumed_messages_total", &[]),
        Some(1_000.0)
    );
    assert_eq!(
        metric(
            &text,
            "courier_events_delivered_total",
            &["kind=\"webhook\""]
        ),
        Some(received as f64)
    );
    assert!(
        text.contains("courier_batch_events_bucket"),
        "batch size histogram"
    );
    assert!(
        text.contains("courier_delivery_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(
        text.contains("courier_commit_duration_seconds")
            || text.contains("courier_partition_in_flight_messages")
    );
    assert!(
        text.contains("courier_partition_in_flight_messages{"),
        "in-flight per partition"
    );

    // /status: both partitions committed to their end, the destination's queue empty.
    let (status, body) = get(&format!("{url}/status")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let offsets = stack.offsets();
    let partitions = doc["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{doc}");
    for p in partitions {
        let log_end = offsets
            .iter()
            .find(|o| o.partition == p["partition"].as_i64().unwrap() as i32)
            .unwrap()
            .log_end;
        assert_eq!(p["committed"].as_i64(), Some(log_end), "{doc}");
        assert_eq!(p["in_flight"], 0);
    }
    let destination = &doc["destinations"][0];
    assert_eq!(destination["name"], "hook");
    assert_eq!(destination["queued"], 0);
    assert_eq!(destination["circuit"], "closed");

    // Draining: with the destination failing, SIGTERM makes the worker not ready while it
    // drains (up to the 2 s drain timeout).
    stack.receiver.answer("acme/hook", Some(503));
    stack
        .produce_raw(records(&sample_events("wk_acme", "acme", 1_000..1_200)))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.signal("TERM");
    let started = Instant::now();
    let mut saw_draining = false;
    while started.elapsed() < Duration::from_secs(2) {
        if get(&format!("{url}/readyz")).await.0 == 503 {
            saw_draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_draining, "503 while draining");
    worker
        .wait(Duration::from_secs(10))
        .expect("the worker stops");
}

/// Rewrites acme's file with its hook enabled or not (or broken).
fn write_acme(stack: &Stack, body: &str) {
    let file = stack.dir.path().join("customers").join("acme.toml");
    let base = stack.receiver.url("");
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, body.replace("{receiver}", base.trim_end_matches('/'))).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
}

fn acme(enabled: bool) -> String {
    customer("acme", "wk_acme", &[("hook", "acme/hook", "")])
        .replace("enabled = true", &format!("enabled = {enabled}"))
}

/// Produces `n` acme events named `prefix-*` and waits until the group committed them.
async fn produce_and_commit(
    stack: &Stack,
    worker: &crate::support::Worker,
    prefix: &str,
    n: u64,
) -> Vec<Value> {
    let events = sample_events("wk_acme", prefix, 0..n);
    stack.produce_raw(records(&events)).await;
    until_fully_committed(stack, &[worker], Duration::from_secs(60)).await;
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggles_in_customer_files_apply_live_and_invalid_edits_are_rejected() {
    let stack = Stack::start(Spec::one_hook(2, "")).await;
    let worker = stack.worker("worker");
    let url = worker.ops_url();
    let first = produce_and_commit(&stack, &worker, "on", 300).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&first));

    // Off: within 5 s nothing more reaches the hook.
    write_acme(&stack, &acme(false));
    let changed = Instant::now();
    eventually(Duration::from_secs(5), "the reload", || {
        worker.log_text().contains("configuration reloaded")
    })
    .await;
    assert!(changed.elapsed() < Duration::from_secs(5));
    produce_and_commit(&stack, &worker, "off", 300).await;
    assert_eq!(
        stack.receiver.message_ids("acme/hook"),
        ids(&first),
        "disabled: nothing delivered"
    );

    // On again: delivered again.
    write_acme(&stack, &acme(true));
    eventually(Duration::from_secs(5), "the second reload", || {
        worker.log_text().matches("configuration reloaded").count() >= 2
    })
    .await;
    let third = produce_and_commit(&stack, &worker, "again", 300).await;
    assert!(ids(&third).is_subset(&stack.receiver.message_ids("acme/hook")));

    // An invalid edit is rejected; the running table keeps delivering.
    write_acme(
        &stack,
        &acme(true).replace("kind = \"webhook\"", "kind = \"no-such-kind\""),
    );
    eventually(Duration::from_secs(5), "the rejection", || {
        worker.log_text().contains("configuration change rejected")
    })
    .await;
    let fourth = produce_and_commit(&stack, &worker, "kept", 300).await;
    assert!(
        ids(&fourth).is_subset(&stack.receiver.message_ids("acme/hook")),
        "the old table still delivers"
    );
    let (_, text) = get(&format!("{url}/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "courier_config_reloads_total",
            &["result=\"rejected\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "courier_config_reloads_total", &["result=\"ok\""]),
        Some(2.0)
    );
    let (_, status) = get(&format!("{url}/status")).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    assert!(status["last_reload"]["error"]
        .as_str()
        .unwrap()
        .contains("no-such-kind"));

    // A filter change keeps the running instance (no new delivery task).
    let started = worker.log_text().matches("destination started").count();
    assert_eq!(started, 2, "started at start-up and when enabled again");
    write_acme(
        &stack,
        &acme(true).replace(
            "enabled = true",
            "enabled = true\nfilter = { deny_events = [\"Never Sent\"] }",
        ),
    );
    eventually(Duration::from_secs(5), "the filter reload", || {
        worker.log_text().matches("configuration reloaded").count() >= 3
    })
    .await;
    assert_eq!(
        worker.log_text().matches("destination started").count(),
        started
    );
}

/// The messageIds of the records of partition `partition` with offsets in `range`.
fn ids_at(
    records: &[courier::devstack::produce::Record],
    partition: i32,
    range: std::ops::RangeInclusive<i64>,
) -> std::collections::HashSet<String> {
    records
        .iter()
        .filter(|r| r.partition == partition && range.contains(&r.offset))
        .map(|r| {
            serde_json::from_slice::<Value>(&r.payload).unwrap()["messageId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_delivers_exactly_the_range_to_the_chosen_destination_only() {
    let stack = Stack::start(Spec {
        partitions: 2,
        dead_letter: true,
        retry: false,
        customers: vec![(
            "acme.toml",
            customer(
                "acme",
                "wk_acme",
                &[("a", "acme/a", ""), ("b", "acme/b", "")],
            ),
        )],
        env: &[],
    })
    .await;
    let early = sample_events("wk_acme", "early", 0..300);
    stack.produce_raw(records(&early)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let middle = chrono_now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = sample_events("wk_acme", "late", 0..300);
    stack.produce_raw(records(&late)).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    drop(worker);
    let committed = stack.offsets();
    let topic =
        courier::devstack::produce::read_topic(&stack.brokers(), TOPIC, Duration::from_secs(20))
            .unwrap();
    let (a_before, b_before) = (
        stack.receiver.events("acme/a").len(),
        stack.receiver.events("acme/b").len(),
    );

    // Offsets 10..=59 of partition 0 to destination a only.
    let out = courier(
        &stack,
        &[
            "replay",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--from-offset",
            "10",
            "--to-offset",
            "59",
            "--destination",
            "a",
            "--json",
        ],
        &[],
    );
    assert_ok(&out, "replay by offset");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["sent"]["acme/a"], 50, "{summary}");
    assert_eq!(summary["delivered"]["acme/a"], 50, "{summary}");
    let a_new = stack.ids_since("acme/a", a_before);
    assert_eq!(a_new.len(), 50, "each event of the range once");
    assert_eq!(
        a_new.into_iter().collect::<std::collections::HashSet<_>>(),
        ids_at(&topic, 0, 10..=59)
    );
    assert_eq!(
        stack.receiver.events("acme/b").len(),
        b_before,
        "b is not chosen"
    );

    // From a time: partition 1's late events to destination b only.
    let out = courier(
        &stack,
        &[
            "replay",
            "--topic",
            TOPIC,
            "--partition",
            "1",
            "--from-time",
            &middle,
            "--destination",
            "b",
        ],
        &[],
    );
    assert_ok(&out, "replay by time");
    let late_ids = ids(&late);
    let expected: std::collections::HashSet<String> = ids_at(&topic, 1, 0..=i64::MAX)
        .into_iter()
        .filter(|id| late_ids.contains(id))
        .collect();
    assert!(!expected.is_empty());
    let b_new = stack.ids_since("acme/b", b_before);
    assert_eq!(
        b_new.len(),
        expected.len(),
        "exactly the late events of partition 1"
    );
    assert_eq!(
        b_new.into_iter().collect::<std::collections::HashSet<_>>(),
        expected
    );

    // A dry run sends nothing; the live group's offsets never moved.
    let a_now = stack.receiver.events("acme/a").len();
    let out = courier(
        &stack,
        &[
            "replay",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--from-offset",
            "0",
            "--dry-run",
        ],
        &[],
    );
    assert_ok(&out, "dry run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("would send"));
    assert_eq!(stack.receiver.events("acme/a").len(), a_now);
    assert_eq!(
        stack.offsets(),
        committed,
        "replays leave the group's offsets alone"
    );

    // Bad arguments: one clear line, non-zero exit.
    let out = courier(
        &stack,
        &[
            "replay",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--from-offset",
            "0",
            "--customer",
            "nobody",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no customer \"nobody\""));
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_show_and_reset_and_the_next_worker_starts_there() {
    let stack = Stack::start(Spec::one_hook(2, "")).await;
    let events = sample_events("wk_acme", "acme", 0..600);
    stack.produce_raw(records(&events)).await;
    let mut worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;

    // show: what the group committed.
    let out = courier(&stack, &["offsets", "show", "--json"], &[]);
    assert_ok(&out, "offsets show");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in stack.offsets() {
        let row = shown["courier-test"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["partition"] == p.partition)
            .unwrap();
        assert_eq!(row["committed"].as_i64(), p.committed);
        assert_eq!(row["lag"], 0);
    }

    // reset refuses while a worker is in the group.
    let out = courier(
        &stack,
        &["offsets", "reset", "--to-earliest", "--execute"],
        &[],
    );
    assert!(!out.status.success(), "refused while running");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("active member"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    worker.stop("TERM", Duration::from_secs(15));
    let before = stack.offsets();
    assert!(before.iter().all(|p| p.committed == Some(p.log_end)));

    // A plan changes nothing; --execute moves partition 0 back to 100.
    let out = courier(
        &stack,
        &["offsets", "reset", "--to-offset", "100", "--partition", "0"],
        &[],
    );
    assert_ok(&out, "plan");
    assert!(String::from_utf8_lossy(&out.stdout).contains("plan only"));
    assert_eq!(stack.offsets(), before);
    let out = courier(
        &stack,
        &[
            "offsets",
            "reset",
            "--to-offset",
            "100",
            "--partition",
            "0",
            "--execute",
        ],
        &[],
    );
    assert_ok(&out, "reset");
    let after = stack.offsets();
    assert_eq!(after[0].committed, Some(100));
    assert_eq!(
        after[1].committed, before[1].committed,
        "other partitions untouched"
    );

    // The next worker starts at 100: partition 0's events from there arrive again.
    let received = stack.receiver.events("acme/hook").len();
    let next = stack.worker("next");
    until_fully_committed(&stack, &[&next], Duration::from_secs(60)).await;
    let topic =
        courier::devstack::produce::read_topic(&stack.brokers(), TOPIC, Duration::from_secs(20))
            .unwrap();
    let again = stack.ids_since("acme/hook", received);
    let expected = ids_at(&topic, 0, 100..=i64::MAX);
    assert_eq!(again.len(), expected.len());
    assert_eq!(
        again.into_iter().collect::<std::collections::HashSet<_>>(),
        expected
    );
}

/// One assignment with both kinds of partition: partition 0 has a committed offset (set by
/// `offsets reset` before any worker ran), partition 1 none. The worker starts 0 at its
/// committed offset and 1 at its beginning (`auto.offset.reset = earliest`): every event from
/// there arrives exactly once, and nothing before 100 on partition 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_assignment_starts_at_the_committed_offset_or_else_at_the_beginning() {
    let stack = Stack::start(Spec::one_hook(2, "")).await;
    let events = sample_events("wk_acme", "acme", 0..600);
    stack.produce_raw(records(&events)).await;
    let out = courier(
        &stack,
        &[
            "offsets",
            "reset",
            "--to-offset",
            "100",
            "--partition",
            "0",
            "--execute",
        ],
        &[],
    );
    assert_ok(&out, "reset");
    let before = stack.offsets();
    assert_eq!(before[0].committed, Some(100));
    assert_eq!(
        before[1].committed, None,
        "partition 1 has no committed offset"
    );

    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    let topic =
        courier::devstack::produce::read_topic(&stack.brokers(), TOPIC, Duration::from_secs(20))
            .unwrap();
    let mut expected = ids_at(&topic, 0, 100..=i64::MAX);
    let from_one = ids_at(&topic, 1, 0..=i64::MAX);
    assert!(!from_one.is_empty(), "partition 1 holds events");
    expected.extend(from_one);
    let received = stack.ids_since("acme/hook", 0);
    assert_eq!(received.len(), expected.len(), "each event once");
    assert_eq!(
        received
            .into_iter()
            .collect::<std::collections::HashSet<_>>(),
        expected
    );
}

#[test]
fn the_marathon_app_definition_has_what_operators_need() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/marathon/courier.json"
    ))
    .expect("deploy/marathon/courier.json");
    let app: Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(app["id"].as_str().is_some_and(|id| id.starts_with('/')));
    assert!(app["container"]["docker"]["image"]
        .as_str()
        .is_some_and(|i| !i.is_empty()));
    assert!(app["instances"].as_u64().is_some_and(|n| n >= 1));
    assert!(app["cpus"].as_f64().is_some_and(|c| c > 0.0));
    assert!(app["mem"].as_f64().is_some_and(|m| m >= 256.0));
    let port = &app["portDefinitions"][0];
    assert_eq!(port["name"], "ops");
    let health = &app["healthChecks"][0];
    assert_eq!(health["protocol"], "MESOS_HTTP");
    assert_eq!(health["path"], "/healthz");
    assert_eq!(health["portIndex"], 0);
    assert_eq!(app["readinessChecks"][0]["path"], "/readyz");
    // The kill grace period outlasts the drain timeout of config/courier.toml.
    let config: toml::Table = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/courier.toml"))
            .unwrap(),
    )
    .unwrap();
    let drain_ms = config["consumer"]["drain_timeout_ms"].as_integer().unwrap();
    let grace = app["taskKillGracePeriodSeconds"].as_i64().unwrap();
    assert!(
        grace * 1000 > drain_ms + 5_000,
        "grace {grace}s vs drain {drain_ms}ms"
    );
    // Upgrades keep capacity: never below 100% healthy.
    assert_eq!(app["upgradeStrategy"]["minimumHealthCapacity"], 1.0);
    let env = app["env"].as_object().unwrap();
    for key in ["COURIER__KAFKA__BROKERS", "COURIER__KAFKA__GROUP_ID"] {
        assert!(env.contains_key(key), "{key}");
    }
    // Mesos bounds a task by CPU shares: without the setting, a worker would start a runtime
    // thread per core of its host.
    let threads: f64 = env["COURIER__RUNTIME__WORKER_THREADS"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("COURIER__RUNTIME__WORKER_THREADS is a number");
    assert_eq!(threads, app["cpus"].as_f64().unwrap().ceil());
    assert!(
        env.values().any(|v| v.get("secret").is_some()),
        "secrets come from Marathon secrets, not literals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggles_through_the_postgres_store_reach_running_workers() {
    let (db, schema) = crate::warehouse::fresh_schema("_store").await;
    db.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    // The store's tables live in this test's schema (search_path in the URL's options).
    let store_url = format!(
        "{}?options=-c%20search_path%3D{schema}",
        crate::warehouse::url()
    );
    let stack = Stack::start(Spec::one_hook(2, "")).await;
    std::fs::remove_file(stack.dir.path().join("customers").join("acme.toml")).unwrap();
    // The fallback poll (every second by default) could see a change before its notification
    // arrives and reload first ("store changed"), so the check below that the notification
    // did it would fail by a race: this test leaves the poll a minute apart.
    let env = [
        ("COURIER__CONTROL__STORE", "postgres"),
        ("COURIER__CONTROL__POSTGRES_URL", store_url.as_str()),
        ("COURIER__CONTROL__RELOAD_INTERVAL_MS", "60000"),
    ];
    // The CLI creates the tables; the rows are a customer and its hook, like acme.toml.
    let out = courier(&stack, &["destinations", "list"], &env);
    assert_ok(&out, "destinations list on an empty store");
    db.execute(
        &format!("INSERT INTO {schema}.courier_customers (id, write_keys) VALUES ('acme', ARRAY['wk_acme'])"),
        &[],
    )
    .await
    .unwrap();
    let settings = serde_json::json!({
        "url": stack.receiver.url("acme/hook"),
        "secret": format!("${{{SECRET_VAR}}}"),
    });
    db.execute(
        &format!("INSERT INTO {schema}.courier_destinations (customer, name, kind, enabled, settings) VALUES ('acme', 'hook', 'webhook', true, $1)"),
        &[&settings],
    )
    .await
    .unwrap();

    let worker = stack.worker_with_env("worker", &env);
    let first = produce_and_commit(&stack, &worker, "on", 200).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&first));

    // Disabled through the CLI: every running worker hears it (NOTIFY) within 5 s.
    let out = courier(
        &stack,
        &[
            "destinations",
            "disable",
            "--customer",
            "acme",
            "--destination",
            "hook",
        ],
        &env,
    );
    assert_ok(&out, "disable");
    let changed = Instant::now();
    eventually(Duration::from_secs(5), "the reload", || {
        worker.log_text().contains("configuration reloaded")
    })
    .await;
    assert!(changed.elapsed() < Duration::from_secs(5));
    assert!(
        worker.log_text().contains("\"cause\":\"notification\""),
        "reloaded on the notification"
    );
    produce_and_commit(&stack, &worker, "off", 200).await;
    assert_eq!(
        stack.receiver.message_ids("acme/hook"),
        ids(&first),
        "disabled: nothing delivered"
    );

    let out = courier(
        &stack,
        &[
            "destinations",
            "enable",
            "--customer",
            "acme",
            "--destination",
            "hook",
        ],
        &env,
    );
    assert_ok(&out, "enable");
    eventually(Duration::from_secs(5), "the second reload", || {
        worker.log_text().matches("configuration reloaded").count() >= 2
    })
    .await;
    let third = produce_and_commit(&stack, &worker, "again", 200).await;
    assert!(ids(&third).is_subset(&stack.receiver.message_ids("acme/hook")));

    // An invalid setting is rejected by every worker; the old table keeps delivering.
    let out = courier(
        &stack,
        &[
            "destinations",
            "set",
            "--customer",
            "acme",
            "--destination",
            "hook",
            "timeout_ms=-5",
        ],
        &env,
    );
    assert_ok(&out, "set");
    eventually(Duration::from_secs(5), "the rejection", || {
        worker.log_text().contains("configuration change rejected")
    })
    .await;
    let fourth = produce_and_commit(&stack, &worker, "kept", 200).await;
    assert!(ids(&fourth).is_subset(&stack.receiver.message_ids("acme/hook")));
    let out = courier(&stack, &["destinations", "list", "--json"], &env);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["enabled"], true, "{listed}");
    drop(worker);
    crate::warehouse::drop_schema(&db, &schema).await;
}
