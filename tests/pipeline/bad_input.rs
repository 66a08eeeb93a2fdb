//! Bad input is dead-lettered with its reason while the good events around it are delivered;
//! a destination's 400 dead-letters its batch with the status.

use std::time::Duration;

use crate::support::{
    customer, ids, payload_ids, records, sample_events, until_fully_committed, Spec, Stack,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_rejections_land_in_the_dead_letter_topic() {
    let acme = customer(
        "acme",
        "wk_acme",
        &[("hook", "acme/hook", ""), ("strict", "acme/strict", "")],
    );
    let stack = Stack::start(Spec {
        partitions: 1,
        dead_letter: true,
        retry: false,
        customers: vec![("acme.toml", acme)],
        env: &[],
    })
    .await;
    stack.receiver.answer("acme/strict", Some(400));

    let before = sample_events("wk_acme", "acme", 0..50);
    let after = sample_events("wk_acme", "acme", 50..100);
    let oversized = format!(
        r#"{{"type":"track","event":"Big","messageId":"big-1","writeKey":"wk_acme","userId":"u","properties":{{"blob":"{}"}}}}"#,
        "x".repeat(5_000)
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("payload is not a valid segment event", b"this is not json".to_vec()),
        ("payload is json but not an object (top level is an array)", br#"[{"type":"track"}]"#.to_vec()),
        ("event has no type", br#"{"messageId":"bad-3","writeKey":"wk_acme","userId":"u"}"#.to_vec()),
        ("unknown write key", br#"{"type":"track","event":"E","messageId":"bad-4","writeKey":"wk_nobody","userId":"u"}"#.to_vec()),
        ("payload is not valid utf-8", b"{\"type\":\"track\",\"event\":\"\xff\xfe\"}".to_vec()),
        ("over the 4096 byte limit", oversized.into_bytes()),
    ];
    stack.produce_raw(records(&before)).await;
    stack
        .produce_raw(
            bad.iter()
                .map(|(_, p)| (Some(b"k".to_vec()), p.clone()))
                .collect(),
        )
        .await;
    stack.produce_raw(records(&after)).await;

    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(60)).await;

    let mut good = ids(&before);
    good.extend(ids(&after));
    assert_eq!(
        stack.receiver.message_ids("acme/hook"),
        good,
        "good events around bad input are delivered"
    );

    let letters = stack.dead_letters();
    let input: Vec<_> = letters
        .iter()
        .filter(|r| r.header("courier.stage") != Some("deliver"))
        .collect();
    assert_eq!(input.len(), bad.len(), "one dead letter per bad message");
    for (reason, payload) in &bad {
        let letter = input
            .iter()
            .find(|r| &r.payload == payload)
            .unwrap_or_else(|| panic!("no dead letter keeps the payload of {reason:?}"));
        let got = letter.header("courier.reason").unwrap();
        assert!(got.contains(reason), "reason {got:?} should say {reason:?}");
        assert_eq!(
            letter.header("courier.source.topic"),
            Some(crate::support::TOPIC)
        );
        assert_eq!(letter.header("courier.source.partition"), Some("0"));
        let offset: i64 = letter
            .header("courier.source.offset")
            .unwrap()
            .parse()
            .unwrap();
        assert!((50..56).contains(&offset), "original offset {offset}");
        assert_eq!(letter.key.as_deref(), Some(&b"k"[..]));
    }

    let rejected: Vec<_> = letters
        .iter()
        .filter(|r| r.header("courier.stage") == Some("deliver"))
        .cloned()
        .collect();
    let rejected_ids = payload_ids(&rejected);
    assert_eq!(
        rejected_ids, good,
        "every event the strict destination refused is dead-lettered"
    );
    for r in &rejected {
        assert_eq!(r.header("courier.status"), Some("400"));
        assert_eq!(r.header("courier.customer"), Some("acme"));
        assert_eq!(r.header("courier.destination"), Some("strict"));
        assert_eq!(r.header("courier.destination.kind"), Some("webhook"));
        assert!(r
            .header("courier.response")
            .unwrap()
            .contains("configured failure"));
    }
    assert_eq!(stack.receiver.stats("acme/strict").events, 0);
}
