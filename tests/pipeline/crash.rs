//! SIGKILL mid-stream loses nothing: every produced event reaches every enabled destination.

use std::time::Duration;

use courier::devstack::produce;

use crate::support::{
    customer, eventually, ids, records, sample_events, until_fully_committed, Spec, Stack, TOPIC,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_delivers_every_event() {
    let acme = customer(
        "acme",
        "wk_acme",
        &[
            ("big", "acme/big", ""),
            (
                "small",
                "acme/small",
                "delivery = { batch_max_events = 25, concurrency = 8 }",
            ),
        ],
    );
    let stack = Stack::start(Spec {
        partitions: 4,
        dead_letter: true,
        retry: false,
        customers: vec![("acme.toml", acme)],
        env: &[],
    })
    .await;
    let events = sample_events("wk_acme", "acme", 0..20_000);
    stack.produce_raw(records(&events[..8_000])).await;
    let mut first = stack.worker("first");

    // Keep producing while the worker runs, and kill it in the middle.
    let producer = stack.producer();
    let rest = records(&events[8_000..]);
    let producing = tokio::spawn(async move { produce::produce_all(&producer, TOPIC, rest).await });
    eventually(Duration::from_secs(60), "deliveries to start", || {
        stack.receiver.stats("acme/small").events >= 3_000
    })
    .await;
    first.signal("KILL");
    first
        .wait(Duration::from_secs(5))
        .expect("the worker dies on SIGKILL");
    let delivered_before_kill = stack.receiver.message_ids("acme/small").len();
    producing.await.unwrap().unwrap();
    assert!(
        delivered_before_kill < events.len(),
        "the kill happened mid-stream"
    );

    let second = stack.worker("second");
    until_fully_committed(&stack, &[&first, &second], Duration::from_secs(120)).await;
    let all = ids(&events);
    for path in ["acme/big", "acme/small"] {
        let got = stack.receiver.message_ids(path);
        let missing: Vec<_> = all.difference(&got).take(5).collect();
        assert!(
            missing.is_empty(),
            "{path} is missing {} events, e.g. {missing:?}",
            all.len() - got.len().min(all.len())
        );
    }
}
