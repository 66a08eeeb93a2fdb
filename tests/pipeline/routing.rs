//! Each customer's events reach exactly its enabled destinations; filters hold; signatures
//! verify.

use std::collections::HashSet;
use std::time::Duration;

use courier::devstack::sample;

use crate::support::{customer, ids, until_fully_committed, Spec, Stack, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_each_customers_events_to_exactly_its_enabled_destinations() {
    let mut acme = customer("acme", "wk_acme", &[("all", "acme/all", "")]);
    acme.push_str("\n[destinations.off]\nkind = \"webhook\"\nenabled = false\n[destinations.off.settings]\nurl = \"{receiver}/acme/off\"\n");
    let globex = customer(
        "globex",
        "wk_globex",
        &[
            ("tracks", "globex/tracks", "filter = { types = [\"track\"], allow_events = [\"Order Completed\", \"Signed Up\"] }"),
            ("no_pings", "globex/no_pings", "filter = { deny_events = [\"Debug Ping\"] }\ndelivery = { batch_max_events = 1 }"),
        ],
    );
    let stack = Stack::start(Spec {
        partitions: 4,
        dead_letter: true,
        retry: false,
        customers: vec![("acme.toml", acme), ("globex.toml", globex)],
        env: &[],
    })
    .await;
    for path in ["acme/all", "globex/tracks", "globex/no_pings"] {
        stack.receiver.expect_signature(path, SECRET.as_bytes());
    }
    let acme_events = stack.produce_events("wk_acme", "acme", 0..1500).await;
    let globex_events = stack.produce_events("wk_globex", "globex", 0..1500).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;

    let tracks: HashSet<String> = ids(&globex_events
        .iter()
        .filter(|e| {
            e["type"] == "track"
                && matches!(sample::name_of(e), Some("Order Completed" | "Signed Up"))
        })
        .cloned()
        .collect::<Vec<_>>());
    let no_pings: HashSet<String> = ids(&globex_events
        .iter()
        .filter(|e| sample::name_of(e) != Some("Debug Ping"))
        .cloned()
        .collect::<Vec<_>>());
    assert!(
        !tracks.is_empty() && tracks.len() < globex_events.len(),
        "the filter must select a strict subset"
    );
    assert!(
        no_pings.len() < globex_events.len(),
        "the sample has debug pings to drop"
    );

    assert_eq!(stack.receiver.message_ids("acme/all"), ids(&acme_events));
    assert_eq!(stack.receiver.message_ids("globex/tracks"), tracks);
    assert_eq!(stack.receiver.message_ids("globex/no_pings"), no_pings);
    assert_eq!(
        stack.receiver.stats("acme/off").requests,
        0,
        "a disabled destination receives nothing"
    );

    // Signed destinations: every request carried a valid signature.
    for path in ["acme/all", "globex/tracks", "globex/no_pings"] {
        let stats = stack.receiver.stats(path);
        assert!(stats.requests > 0, "{path} received requests");
        assert_eq!(stats.bad_signatures, 0, "{path}: every signature verifies");
    }
    // batch_max_events = 1 sends one event per request.
    let one_by_one = stack.receiver.stats("globex/no_pings");
    assert_eq!(one_by_one.requests, one_by_one.events);
    assert!(stack.dead_letters().is_empty(), "nothing was dead-lettered");
}
