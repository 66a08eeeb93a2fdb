//! A broker outage mid-stream: the worker waits it out and loses nothing.

use std::time::Duration;

use crate::support::{eventually, ids, until_fully_committed, Spec, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_mid_stream_then_back_loses_nothing() {
    let stack = Stack::start(Spec::one_hook(2, "delivery = { batch_max_events = 20 }")).await;
    stack.receiver.delay("acme/hook", Duration::from_millis(20));
    let events = stack.produce_events("wk_acme", "acme", 0..5_000).await;
    let worker = stack.worker("worker");
    eventually(Duration::from_secs(60), "deliveries to start", || {
        stack.receiver.stats("acme/hook").events >= 500
    })
    .await;

    stack.broker.cluster().broker_down(1).expect("broker down");
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.broker.cluster().broker_up(1).expect("broker up");

    until_fully_committed(&stack, &[&worker], Duration::from_secs(120)).await;
    assert_eq!(stack.receiver.message_ids("acme/hook"), ids(&events));
    assert!(stack.dead_letters().is_empty());
    assert!(
        worker.log_text().contains("AllBrokersDown"),
        "the worker saw the outage"
    );
}
