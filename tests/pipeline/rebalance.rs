//! Two workers share the group: one joins late, the other leaves on SIGTERM mid-stream.
//! Nothing is lost and the leaving worker exits cleanly within its drain timeout. A worker
//! whose final commit gets no answer still exits, after its drain and session timeouts.

use std::time::{Duration, Instant};

use courier::devstack::produce;

use crate::support::{
    eventually, ids, records, sample_events, tail, until_fully_committed, Spec, Stack, TOPIC,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_join_and_sigterm_lose_nothing() {
    let stack = Stack::start(Spec::one_hook(6, "delivery = { batch_max_events = 20 }")).await;
    // A slow destination (about 1,600 events/s) keeps the stream going while workers come and go.
    stack.receiver.delay("acme/hook", Duration::from_millis(50));
    let events = sample_events("wk_acme", "acme", 0..20_000);
    stack.produce_raw(records(&events[..6_000])).await;
    let mut early = stack.worker("early");
    eventually(
        Duration::from_secs(60),
        "the first worker to deliver",
        || stack.receiver.stats("acme/hook").events >= 1_000,
    )
    .await;

    // Slower still while the late worker joins: on a busy machine the join can take seconds,
    // and the stream must still be going when it is done.
    stack
        .receiver
        .delay("acme/hook", Duration::from_millis(200));
    let producer = stack.producer();
    let rest = records(&events[6_000..]);
    let producing = tokio::spawn(async move { produce::produce_all(&producer, TOPIC, rest).await });
    let late = stack.worker("late");
    eventually(
        Duration::from_secs(60),
        "the late worker to take partitions",
        || late.log_text().contains("partition started"),
    )
    .await;
    stack.receiver.delay("acme/hook", Duration::from_millis(50));

    let delivered = stack.receiver.message_ids("acme/hook").len();
    assert!(delivered < events.len(), "SIGTERM comes mid-stream");
    let sent = Instant::now();
    let status = early.stop("TERM", Duration::from_secs(10));
    let took = sent.elapsed();
    assert!(
        status.success(),
        "clean exit, got {status:?}\n{}",
        early.log_text()
    );
    // Drain timeout 2 s, plus up to 1 s for the poll interval, the final commit and leaving
    // the group.
    assert!(
        took < Duration::from_secs(3),
        "exited in {took:?}, past its 2 s drain timeout"
    );
    let log = early.log_text();
    assert!(
        log.contains("committed on release") && log.contains("worker stopped"),
        "{log}"
    );

    producing.await.unwrap().unwrap();
    until_fully_committed(&stack, &[&early, &late], Duration::from_secs(120)).await;
    let got = stack.receiver.message_ids("acme/hook");
    let all = ids(&events);
    let missing: Vec<_> = all.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "missing {} events, e.g. {missing:?}",
        all.difference(&got).count()
    );
}

/// A broker that holds the final commit (behind a rebalance, or because it is slow) cannot
/// keep a stopping worker past its grace period. Here every broker answer is delayed by 60 s
/// (librdkafka's request timeout) while the worker delivers: its commits go unconfirmed, and
/// the final one would wait out the whole minute. The worker must exit after its drain
/// timeout plus its session timeout (2 + 6 s) instead; a second worker then delivers whatever
/// was not confirmed, so nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_final_commit_gets_no_answer_still_exits() {
    let stack = Stack::start(Spec::one_hook(2, "delivery = { batch_max_events = 20 }")).await;
    // About 400 events/s: the stream is still going when the broker slows down.
    stack.receiver.delay("acme/hook", Duration::from_millis(50));
    let events = sample_events("wk_acme", "acme", 0..3_000);
    stack.produce_raw(records(&events)).await;
    let mut worker = stack.worker("worker");
    eventually(Duration::from_secs(60), "the worker to deliver", || {
        stack.receiver.stats("acme/hook").events >= 400
    })
    .await;

    let cluster = stack.broker.cluster();
    cluster
        .broker_round_trip_time(1, Duration::from_secs(60))
        .expect("slow broker");
    // Deliveries go on meanwhile, past what the broker confirmed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    let status = worker.stop("TERM", Duration::from_secs(40));
    let took = sent.elapsed();
    cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("broker back to normal");

    let log = worker.log_text();
    assert!(
        status.success(),
        "clean exit, got {status:?}\n{}",
        tail(&log, 20)
    );
    assert!(
        log.contains("did not finish in time"),
        "the worker says it exits without its final commit ({took:?}):\n{}",
        tail(&log, 20)
    );
    // Drain timeout and session timeout, plus the poll interval.
    assert!(
        took < Duration::from_secs(15),
        "exited {took:?} after SIGTERM\n{}",
        tail(&log, 20)
    );

    stack.receiver.delay("acme/hook", Duration::ZERO);
    let next = stack.worker("next");
    until_fully_committed(&stack, &[&next], Duration::from_secs(90)).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
}
