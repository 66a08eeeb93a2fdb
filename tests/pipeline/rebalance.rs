//! Two workers share the group: one joins late, the other leaves on SIGTERM mid-stream.
//! Nothing is lost and the leaving worker exits cleanly within its drain timeout.

use std::time::{Duration, Instant};

use courier::devstack::produce;

use crate::support::{
    eventually, ids, records, sample_events, until_fully_committed, Spec, Stack, TOPIC,
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
    early.signal("TERM");
    let status = early
        .wait(Duration::from_secs(10))
        .expect("the worker exits after SIGTERM");
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
