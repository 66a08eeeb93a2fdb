//! A destination down for a long time does not hold its partitions: other customers keep
//! receiving, the main topic's offsets keep moving, the broken destination's events wait on
//! the retry topic and arrive once it recovers.

use std::time::{Duration, Instant};

use courier::devstack::produce;

use crate::support::{
    customer, eventually, ids, payload_ids, records, sample_events, until_fully_committed, Spec,
    Stack, RETRY_TOPIC,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_down_for_long_does_not_hold_the_others() {
    let stack = Stack::start(Spec {
        partitions: 2,
        dead_letter: true,
        retry: true,
        customers: vec![
            (
                "acme.toml",
                customer("acme", "wk_acme", &[("hook", "acme/hook", "")]),
            ),
            (
                "globex.toml",
                customer("globex", "wk_globex", &[("hook", "globex/hook", "")]),
            ),
        ],
        env: &[],
    })
    .await;
    stack.receiver.answer("acme/hook", Some(503));
    let acme = sample_events("wk_acme", "acme", 0..1_000);
    let globex = sample_events("wk_globex", "globex", 0..1_000);
    // Interleaved on the same partitions (keyed by the same user ids).
    for (a, g) in acme.chunks(100).zip(globex.chunks(100)) {
        stack.produce_raw(records(a)).await;
        stack.produce_raw(records(g)).await;
    }
    let started = Instant::now();
    let worker = stack.worker("worker");

    // Globex's events arrive, and the main topic is committed to its end, while acme is down.
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    assert_eq!(stack.receiver.message_ids("globex/hook"), ids(&globex));
    assert!(
        stack.receiver.message_ids("acme/hook").is_empty(),
        "acme is still down"
    );
    eprintln!(
        "main topic committed {:?} after the worker started",
        started.elapsed()
    );

    // Acme's events wait on the retry topic, with their destination in the headers.
    let parked =
        produce::read_topic(&stack.brokers(), RETRY_TOPIC, Duration::from_secs(20)).unwrap();
    let parked_ids = payload_ids(&parked);
    assert_eq!(
        parked_ids,
        ids(&acme),
        "every acme event is parked, no globex event is"
    );
    assert!(parked
        .iter()
        .all(|r| r.header("courier.retry.customer") == Some("acme")
            && r.header("courier.retry.destination") == Some("hook")));

    // Acme recovers: its events arrive from the retry topic, whose offsets then reach the end.
    stack.receiver.answer("acme/hook", None);
    eventually(
        Duration::from_secs(90),
        "acme's parked events to arrive",
        || stack.receiver.message_ids("acme/hook") == ids(&acme),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the retry group to commit the retry topic",
        || stack.retry_offsets().iter().all(|p| p.lag == 0),
    )
    .await;
    assert!(stack.dead_letters().is_empty(), "nothing was dead-lettered");
    let _ = worker;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_parked_after_the_inline_budget_even_with_the_circuit_closed() {
    let stack = Stack::start(Spec {
        partitions: 1,
        dead_letter: true,
        retry: true,
        customers: vec![(
            "acme.toml",
            customer("acme", "wk_acme", &[("hook", "acme/hook", "")]),
        )],
        // The circuit never opens: only the inline budget can park.
        env: &[("COURIER__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "1000000")],
    })
    .await;
    stack.receiver.answer("acme/hook", Some(503));
    let events = stack.produce_events("wk_acme", "acme", 0..50).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;
    let parked =
        produce::read_topic(&stack.brokers(), RETRY_TOPIC, Duration::from_secs(20)).unwrap();
    let parked_ids = payload_ids(&parked);
    assert_eq!(parked_ids, ids(&events));
    assert!(
        !worker.log_text().contains("\"state\":\"open\""),
        "the circuit stayed closed"
    );
}
