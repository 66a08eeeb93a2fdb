//! Bounded in-flight per partition and per worker: at the partition's bound the partition
//! pauses and resumes below it; at the worker's byte budget partitions wait their turn, and
//! one that waits long is paused; every event still arrives; partial batches that hold the
//! budget leave early.

use std::time::{Duration, Instant};

use crate::support::{eventually, get, ids, metric, until_fully_committed, Spec, Stack, Worker};

/// The lines of `log` where a partition paused (`paused` true) or resumed (false).
fn backpressure_lines(log: &str, paused: bool) -> usize {
    let needle = format!("\"paused\":{paused}");
    log.lines()
        .filter(|l| l.contains("backpressure") && l.contains(&needle))
        .count()
}

/// The numeric `field` of every JSON log line containing `needle`.
fn logged_numbers<'a>(
    log: &'a str,
    needle: &'a str,
    field: &'a str,
) -> impl Iterator<Item = u64> + 'a {
    log.lines()
        .filter(move |l| l.contains(needle))
        .filter_map(move |l| serde_json::from_str::<serde_json::Value>(l).ok()?[field].as_u64())
}

/// Sends `count` events over `partitions` through one worker whose whole in-flight budget is
/// 16 KiB (its partitions log at debug level) to a destination that takes `delay` per batch,
/// and returns once every event is delivered and committed (the stack stays up while it is
/// held).
async fn through_a_16_kib_budget(
    partitions: i32,
    delivery: &str,
    delay: Duration,
    count: u64,
) -> (Stack, Worker) {
    let stack = Stack::start(Spec {
        env: &[
            ("COURIER__CONSUMER__MAX_IN_FLIGHT_BYTES", "16384"),
            ("COURIER__CONSUMER__MAX_MESSAGE_BYTES", "16384"),
            (
                "COURIER__LOG__LEVEL",
                "info,librdkafka=warn,courier::partition=debug",
            ),
        ],
        ..Spec::one_hook(partitions, delivery)
    })
    .await;
    stack.receiver.delay("acme/hook", delay);
    let events = stack.produce_events("wk_acme", "acme", 0..count).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
    (stack, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_pauses_the_partition_at_the_in_flight_bound() {
    let stack = Stack::start(Spec {
        env: &[
            ("COURIER__CONSUMER__MAX_IN_FLIGHT_PER_PARTITION", "40"),
            (
                "COURIER__LOG__LEVEL",
                "info,librdkafka=warn,courier::partition=debug",
            ),
        ],
        ..Spec::one_hook(1, "delivery = { batch_max_events = 10, concurrency = 2 }")
    })
    .await;
    stack.receiver.delay("acme/hook", Duration::from_millis(20));
    let events = stack.produce_events("wk_acme", "acme", 0..1_500).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
    let log = worker.log_text();
    let (pauses, resumes) = (
        backpressure_lines(&log, true),
        backpressure_lines(&log, false),
    );
    assert!(
        pauses >= 5,
        "the partition paused at its bound ({pauses} times)"
    );
    assert!(
        resumes >= pauses - 1,
        "and resumed below it ({resumes} times)"
    );
    let max_in_flight = logged_numbers(&log, "backpressure", "in_flight")
        .max()
        .unwrap();
    assert!(
        max_in_flight <= 40,
        "never more than the bound in flight: {max_in_flight}"
    );
}

/// The worker-wide byte budget: far below the per-partition bound, it alone holds partitions
/// back (every partition waits its turn for a share), and nothing is lost or stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_budget_bounds_all_partitions_together() {
    // 16 KiB: about forty ~420-byte events in flight across all four partitions.
    let (_stack, worker) = through_a_16_kib_budget(
        4,
        "delivery = { batch_max_events = 5, concurrency = 2 }",
        Duration::from_millis(10),
        1_000,
    )
    .await;
    let (_, text) = get(&format!("{}/metrics", worker.ops_url())).await;
    let waits = metric(&text, "courier_budget_waits_total", &[]).unwrap_or(0.0);
    let log = worker.log_text();
    let waited: std::collections::HashSet<u64> =
        logged_numbers(&log, "budget spent; waiting for a share", "partition").collect();
    assert!(
        waited.len() >= 2,
        "partitions waited for the shared budget, not their own bound: {waited:?}"
    );
    assert!(
        waits >= waited.len() as f64,
        "and the waits were counted: {waits}"
    );
}

/// A partition that finds the budget spent for longer than a moment is paused in librdkafka
/// (so its prefetched messages do not stay in memory while the bytes in flight are stuck), and
/// resumed once its share comes: with a 16 KiB budget and a destination that takes 400 ms per
/// batch of five, the one partition waits seconds in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_starved_of_the_budget_is_paused_and_resumed() {
    let (_stack, worker) = through_a_16_kib_budget(
        1,
        "delivery = { batch_max_events = 5, concurrency = 1 }",
        Duration::from_millis(400),
        60,
    )
    .await;
    let log = worker.log_text();
    let (pauses, resumes) = (
        backpressure_lines(&log, true),
        backpressure_lines(&log, false),
    );
    assert!(pauses >= 1, "the starved partition was paused");
    assert!(
        resumes >= pauses,
        "and resumed every time ({pauses} pauses, {resumes} resumes)"
    );
}

/// A destination's partial batch that holds the budget is sent at once, not when it is full or
/// old: with batches of up to 10,000 events cut after ten minutes and a 128 KiB budget (~310
/// of these ~420-byte events), the first 2,000 of 3,000 events arrive in batches cut under
/// pressure (six at least: none can hold more than the budget), and their offsets are
/// committed. Once every event is taken no one waits, so the last partial batch (up to the
/// whole budget, with the runs it ends) waits for its age, until SIGTERM: the drain sends it
/// at once, and every event is delivered and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batches_holding_the_budget_leave_before_their_age() {
    let stack = Stack::start(Spec {
        env: &[
            ("COURIER__CONSUMER__MAX_IN_FLIGHT_BYTES", "131072"),
            ("COURIER__CONSUMER__MAX_MESSAGE_BYTES", "131072"),
        ],
        ..Spec::one_hook(
            2,
            "delivery = { batch_max_events = 10000, batch_max_bytes = 16777216, batch_max_age_ms = 600000 }",
        )
    })
    .await;
    let events = stack.produce_events("wk_acme", "acme", 0..3_000).await;
    let mut worker = stack.worker("worker");
    let committed = || -> i64 { stack.offsets().iter().filter_map(|p| p.committed).sum() };
    eventually(
        Duration::from_secs(60),
        "events delivered and committed under pressure",
        || committed() >= 2_000,
    )
    .await;
    let stats = stack.receiver.stats("acme/hook");
    assert!(
        stats.requests >= 6,
        "the events left in several batches cut under pressure: {stats:?}"
    );
    // Every event routed before SIGTERM: on a busy machine the last ones can still wait for a
    // budget share when 2,000 are committed, and a worker that stops leaves those (rightly)
    // to the next owner, which this test does not start.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(&format!("{}/metrics", worker.ops_url())).await;
        if metric(&text, "courier_consumed_messages_total", &[]).unwrap_or(0.0) >= 3_000.0 {
            break;
        }
        assert!(Instant::now() < deadline, "every event routed within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Committed first: whatever it covers was delivered before it.
    let committed_now = committed();
    let delivered = stack.receiver.message_ids("acme/hook");
    assert!(delivered.is_subset(&ids(&events)));
    assert!(
        committed_now <= delivered.len() as i64,
        "nothing committed past what was delivered: {committed_now} > {}",
        delivered.len()
    );
    let status = worker.stop("TERM", Duration::from_secs(20));
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
    assert!(stack.fully_committed(), "{:?}", stack.offsets());
}
