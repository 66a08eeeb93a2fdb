//! Each SaaS connector through a real worker against a server enforcing that API's contract:
//! what the API ingested, what was dead-lettered and why, and that every offset was committed
//! after 5xx, 429 with `Retry-After` and 413 answers.

use std::collections::HashSet;
use std::time::Duration;

use courier::devstack::contracts::{Api, Contracts, Credentials};
use courier::devstack::sample;
use serde_json::{json, Value};

use crate::support::{ids, records, sample_events, until_fully_committed, Spec, Stack};

async fn contracts() -> Contracts {
    Contracts::start("127.0.0.1:0", Credentials::default())
        .await
        .expect("contract server")
}

fn spec(destination: &str) -> Spec {
    Spec {
        partitions: 2,
        dead_letter: true,
        retry: false,
        customers: vec![(
            "acme.toml",
            format!("id = \"acme\"\nwrite_keys = [\"wk_acme\"]\n{destination}"),
        )],
        env: &[],
    }
}

fn track(message_id: &str, user: &str, extra: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"type":"track","event":"Order Completed","messageId":"{message_id}","writeKey":"wk_acme","userId":"{user}","timestamp":"2026-11-29T10:00:00Z","properties":{{"price":9.99}}{extra}}}"#
    ))
    .unwrap()
}

/// The dead letters for `destination`, as (messageId, reason).
fn dead_letters(stack: &Stack, destination: &str) -> Vec<(String, String)> {
    stack
        .dead_letters()
        .iter()
        .filter(|r| r.header("courier.destination") == Some(destination))
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            (
                v["messageId"].as_str().unwrap().to_owned(),
                r.header("courier.reason").unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplitude_partial_rejection_413_429_and_5xx() {
    let api = contracts().await;
    let stack = Stack::start(spec(&format!(
        "[destinations.amp]\nkind = \"amplitude\"\nenabled = true\ndelivery = {{ batch_max_events = 50 }}\n[destinations.amp.settings]\napi_key = \"amp-key\"\nendpoint = \"{}\"\n",
        api.base_url()
    )))
    .await;
    api.fail_next(
        Api::Amplitude,
        1,
        503,
        r#"{"code":503,"error":"Service Unavailable"}"#,
        None,
    );
    api.fail_next(
        Api::Amplitude,
        1,
        429,
        r#"{"code":429,"error":"Too many requests for some devices and users","eps_threshold":30}"#,
        Some(1),
    );
    api.fail_next(
        Api::Amplitude,
        1,
        413,
        r#"{"code":413,"error":"Payload too large"}"#,
        None,
    );
    let good = sample_events("wk_acme", "acme", 0..600);
    let bad: Vec<Value> = (0..3)
        .map(|i| track(&format!("short-{i}"), "ab", ""))
        .collect();
    stack.produce_raw(records(&good[..300])).await;
    stack.produce_raw(records(&bad)).await;
    stack.produce_raw(records(&good[300..])).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;

    let ingested: HashSet<String> = api
        .amplitude_events()
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ingested,
        ids(&good),
        "every valid event ingested once, none of the invalid ones"
    );
    let letters = dead_letters(&stack, "amp");
    assert_eq!(
        letters
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<HashSet<_>>(),
        ids(&bad)
    );
    for (_, reason) in &letters {
        assert!(reason.contains("invalid field user_id"), "{reason}");
    }
    assert!(
        api.requests(Api::Amplitude) >= 15,
        "faults were answered and retried"
    );
    let identify = api
        .amplitude_events()
        .into_iter()
        .find(|e| e["event_type"] == "$identify")
        .expect("an identify");
    assert!(identify["user_properties"]["$set"]["email"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixpanel_failed_records_profiles_and_retries() {
    let api = contracts().await;
    let (project, user, secret) = Credentials::default().mixpanel_service_account;
    let stack = Stack::start(spec(&format!(
        "[destinations.mp]\nkind = \"mixpanel\"\nenabled = true\ndelivery = {{ batch_max_events = 100 }}\n[destinations.mp.settings]\nproject_token = \"mp-token\"\nproject_id = \"{project}\"\nservice_account_username = \"{user}\"\nservice_account_secret = \"{secret}\"\nendpoint = \"{}\"\n",
        api.base_url()
    )))
    .await;
    api.fail_next(
        Api::MixpanelImport,
        1,
        500,
        r#"{"code":500,"error":"internal error","status":"Internal Server Error"}"#,
        None,
    );
    api.fail_next(
        Api::MixpanelImport,
        1,
        429,
        r#"{"code":429,"error":"too many requests","status":"Too Many Requests"}"#,
        Some(1),
    );
    api.fail_next(
        Api::MixpanelImport,
        1,
        413,
        r#"{"code":413,"error":"request exceeds 2000 records","status":"Payload Too Large"}"#,
        None,
    );
    let good = sample_events("wk_acme", "acme", 0..400);
    let future: Vec<Value> = (0..2)
        .map(|i| {
            let mut e = track(&format!("future-{i}"), "user-1", "");
            e["timestamp"] = json!("2099-01-01T00:00:00Z");
            e
        })
        .collect();
    stack.produce_raw(records(&good[..200])).await;
    stack.produce_raw(records(&future)).await;
    stack.produce_raw(records(&good[200..])).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;

    let expected_events: HashSet<String> = ids(&good
        .iter()
        .filter(|e| e["type"] != "identify")
        .cloned()
        .collect::<Vec<_>>());
    let imported: HashSet<String> = api
        .mixpanel_events()
        .iter()
        .map(|e| e["properties"]["$insert_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(imported, expected_events);
    let identified: HashSet<String> = good
        .iter()
        .filter(|e| e["type"] == "identify")
        .map(|e| e["userId"].as_str().unwrap().to_owned())
        .collect();
    let profiles: HashSet<String> = api
        .mixpanel_profiles()
        .iter()
        .map(|p| p["$distinct_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        profiles, identified,
        "every identify became a profile update"
    );
    let letters = dead_letters(&stack, "mp");
    assert_eq!(
        letters
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<HashSet<_>>(),
        ids(&future)
    );
    for (_, reason) in &letters {
        assert!(reason.contains("properties.time"), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_templates_listed_events_and_dead_letters_an_archived_channel() {
    let api = contracts().await;
    let stack = Stack::start(spec(&format!(
        "[destinations.alerts]\nkind = \"slack\"\nenabled = true\n[destinations.alerts.settings]\nwebhook_url = \"{}/services/T000/B000/XXXX\"\nevents = [\"Order Completed\"]\ntemplate = \"{{{{userId}}}} completed an order of {{{{properties.price}}}}\"\n",
        api.base_url()
    )))
    .await;
    api.fail_next(Api::Slack, 1, 429, "rate_limited", Some(1));
    api.fail_next(Api::Slack, 1, 410, "channel_is_archived", None);
    let orders: Vec<Value> = (0..6)
        .map(|i| track(&format!("order-{i}"), &format!("user-{i}"), ""))
        .collect();
    let others = sample_events("wk_acme", "acme", 0..40)
        .into_iter()
        .filter(|e| sample::name_of(e) != Some("Order Completed"))
        .collect::<Vec<_>>();
    stack.produce_raw(records(&others)).await;
    // One partition key so the orders arrive in order.
    stack
        .produce_raw(
            orders
                .iter()
                .map(|e| (Some(b"one".to_vec()), serde_json::to_vec(e).unwrap()))
                .collect(),
        )
        .await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;

    let letters = dead_letters(&stack, "alerts");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (archived, reason) = &letters[0];
    assert!(reason.contains("channel_is_archived"), "{reason}");
    // Requests overlap (concurrency), so which order met the archived channel varies.
    let mut expected: Vec<String> = (0..6)
        .filter(|i| format!("order-{i}") != *archived)
        .map(|i| format!("user-{i} completed an order of 9.99"))
        .collect();
    let mut got = api.slack_messages();
    expected.sort();
    got.sort();
    assert_eq!(
        got, expected,
        "one message per listed event, nothing for the others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_forwards_unchanged_and_dead_letters_oversized_events() {
    let api = contracts().await;
    let stack = Stack::start(Spec {
        env: &[("COURIER__CONSUMER__MAX_MESSAGE_BYTES", "100000")],
        ..spec(&format!(
            "[destinations.fwd]\nkind = \"segment\"\nenabled = true\n[destinations.fwd.settings]\nwrite_key = \"seg-write-key\"\nendpoint = \"{}\"\n",
            api.base_url()
        ))
    })
    .await;
    api.fail_next(Api::Segment, 1, 502, "bad gateway", None);
    api.fail_next(Api::Segment, 1, 429, r#"{"success":false}"#, Some(1));
    let good = sample_events("wk_acme", "acme", 0..300);
    let big = track(
        "big-1",
        "user-1",
        &format!(r#","context":{{"blob":"{}"}}"#, "x".repeat(40_000)),
    );
    stack.produce_raw(records(&good[..150])).await;
    stack.produce_raw(records(std::slice::from_ref(&big))).await;
    stack.produce_raw(records(&good[150..])).await;
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(90)).await;

    let forwarded = api.segment_events();
    let forwarded_ids: HashSet<String> = forwarded
        .iter()
        .map(|e| e["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(forwarded_ids, ids(&good));
    let first = forwarded
        .iter()
        .find(|e| e["messageId"] == good[0]["messageId"])
        .unwrap();
    assert_eq!(first, &good[0], "forwarded unchanged");
    let letters = dead_letters(&stack, "fwd");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].0, "big-1");
    assert!(
        letters[0].1.contains("32768 byte limit"),
        "{}",
        letters[0].1
    );
}

/// Wrong credentials are refused by each API and classified as permanent: the events are
/// dead-lettered with the status, never retried forever.
#[tokio::test]
async fn wrong_credentials_are_permanent_failures() {
    use courier_connectors::{BatchLimits, BuildContext, Event, Registry};

    let api = contracts().await;
    let base = api.base_url();
    let ctx = BuildContext {
        customer: "acme".into(),
        destination: "d".into(),
        batch: BatchLimits {
            max_events: 10,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(10),
        },
        http: reqwest::Client::new(),
    };
    let event = std::sync::Arc::new(
        Event::parse(
            bytes::Bytes::from(track("m-1", "user-1", "").to_string()),
            1 << 20,
        )
        .unwrap(),
    );
    let cases = [
        (
            "amplitude",
            json!({"api_key": "wrong", "endpoint": base}),
            400,
        ),
        (
            "mixpanel",
            json!({"project_token": "wrong", "endpoint": base}),
            401,
        ),
        (
            "segment",
            json!({"write_key": "wrong", "endpoint": base}),
            401,
        ),
        (
            "slack",
            json!({"webhook_url": format!("{base}/services/T0/B0/nope"), "events": ["Order Completed"]}),
            404,
        ),
    ];
    for (kind, settings, status) in cases {
        let destination = Registry::builtin()
            .build(kind, settings, &ctx)
            .unwrap()
            .destination;
        let err = destination
            .deliver(std::slice::from_ref(&event))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{kind}: {err}");
        assert_eq!(err.status, Some(status), "{kind}: {err}");
    }
}
