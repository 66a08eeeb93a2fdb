//! Offsets are committed only after delivery: a failing destination holds the watermark.

use std::time::Duration;

use crate::support::{eventually, get, ids, metric, until_fully_committed, Spec, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_waits_for_delivery_while_a_destination_answers_503() {
    let stack = Stack::start(Spec::one_hook(1, "")).await;
    let first = stack.produce_events("wk_acme", "acme", 0..100).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    assert_eq!(stack.offsets()[0].committed, Some(100));

    stack.receiver.answer("acme/hook", Some(503));
    let second = stack.produce_events("wk_acme", "acme", 100..200).await;
    eventually(
        Duration::from_secs(30),
        "the destination to be retried",
        || stack.receiver.stats("acme/hook").requests >= 5,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = stack.offsets()[0].committed;
    assert_eq!(
        held,
        Some(100),
        "the committed offset stays at the first undelivered event"
    );

    stack.receiver.answer("acme/hook", None);
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    assert_eq!(stack.offsets()[0].committed, Some(200));
    let mut all = ids(&first);
    all.extend(ids(&second));
    assert_eq!(stack.receiver.message_ids("acme/hook"), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dead_letter_topic_a_rejected_event_holds_its_partition() {
    let stack = Stack::start(Spec {
        dead_letter: false,
        retry: false,
        ..Spec::one_hook(1, "")
    })
    .await;
    stack.produce_events("wk_acme", "acme", 0..50).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;

    stack.receiver.answer("acme/hook", Some(400));
    stack.produce_events("wk_acme", "acme", 50..60).await;
    eventually(
        Duration::from_secs(30),
        "the rejection to be logged",
        || {
            worker
                .log_text()
                .contains("no dead-letter topic is configured")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stack.offsets()[0].committed,
        Some(50),
        "the rejected events are held, not committed"
    );
}

/// A partition that has caught up is committed soon instead of at its next tick: with a
/// ten-minute commit interval (the first tick, at start, finds nothing to commit), the burst
/// is committed within seconds of its delivery, and only after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_caught_up_commits_before_its_next_tick() {
    let stack = Stack::start(Spec {
        env: &[("COURIER__CONSUMER__COMMIT_INTERVAL_MS", "600000")],
        ..Spec::one_hook(2, "")
    })
    .await;
    let events = stack.produce_events("wk_acme", "acme", 0..200).await;
    let _worker = stack.worker("worker");
    eventually(
        Duration::from_secs(60),
        "both partitions committed long before their next tick",
        || stack.fully_committed(),
    )
    .await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
    let committed: i64 = stack.offsets().iter().filter_map(|p| p.committed).sum();
    assert_eq!(committed, 200);
}

/// The worker commits its partitions together: each commit request carries the watermarks of
/// every partition that moved. All events go in one batch, so all eight partitions finish at
/// once and take fewer requests than partition commits (one request per partition, as before
/// the committer, would make the two equal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_commits_the_watermarks_of_many_partitions() {
    let stack = Stack::start(Spec::one_hook(
        8,
        "delivery = { batch_max_events = 1000, batch_max_age_ms = 2000 }",
    ))
    .await;
    let events = stack.produce_events("wk_acme", "acme", 0..800).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
    assert_eq!(stack.receiver.stats("acme/hook").requests, 1, "one batch");
    let offsets = stack.offsets();
    assert!(
        offsets.iter().all(|p| p.committed.unwrap_or(0) > 0),
        "every partition has events and a commit: {offsets:?}"
    );
    let (_, text) = get(&format!("{}/metrics", worker.ops_url())).await;
    let ok = ["result=\"ok\""];
    let requests = metric(&text, "courier_offset_commit_requests_total", &ok)
        .expect("commit requests counted");
    let partitions = metric(&text, "courier_offset_commit_partitions_total", &ok)
        .expect("committed partitions counted");
    assert!(partitions >= 8.0, "each partition committed: {partitions}");
    assert!(
        requests < partitions,
        "{requests} requests for {partitions} partition commits"
    );
}
