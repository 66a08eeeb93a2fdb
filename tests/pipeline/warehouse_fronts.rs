//! The warehouse connectors at scale and through outages: `postgres` against PostgreSQL and
//! `redshift` against the Redshift front (S3 staging on a real S3 server, `COPY ... MANIFEST`),
//! side by side on the same events.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{records, sample_events, until_fully_committed, LocalS3, Spec, Stack};
use crate::tcp_proxy::TcpProxy;
use crate::warehouse::{check_once, count, drop_schema, fresh_schema, url};
use courier::devstack::redshift_front::RedshiftFront;

/// A dozen track event names.
const NAMES: [&str; 12] = [
    "Bid on item",
    "Item Viewed",
    "Order Completed",
    "Signed Up",
    "Cart Updated",
    "Checkout Started",
    "Coupon Applied",
    "Product Added",
    "Product Removed",
    "Search Performed",
    "Video Played",
    "Review Submitted",
];

/// Sample events whose tracks spread over the dozen names.
fn events(write_key: &str, prefix: &str, range: std::ops::Range<u64>) -> Vec<Value> {
    let start = range.start;
    let mut events = sample_events(write_key, prefix, range);
    for (i, e) in events.iter_mut().enumerate() {
        if e["type"] == "track" {
            e["event"] = json!(NAMES[(start as usize + i) % NAMES.len()]);
        }
    }
    events
}

/// A customer with a `postgres` destination into `<schema>_pg` and a `redshift` destination
/// into `<schema>_rs` through `front_url`, staging in `s3_endpoint`.
fn customer_file(
    id: &str,
    schema: &str,
    pg_url: &str,
    front_url: &str,
    s3_endpoint: &str,
    delivery: &str,
) -> String {
    format!(
        "id = \"{id}\"\nwrite_keys = [\"wk_{id}\"]\n\
         [destinations.pg]\nkind = \"postgres\"\nenabled = true\ndelivery = {{ {delivery} }}\n\
         [destinations.pg.settings]\nurl = \"{pg_url}\"\nschema = \"{schema}_pg\"\n\
         [destinations.rs]\nkind = \"redshift\"\nenabled = true\ndelivery = {{ {delivery} }}\n\
         [destinations.rs.settings]\nurl = \"{front_url}\"\nschema = \"{schema}_rs\"\n\
         [destinations.rs.settings.staging]\n{}",
        LocalS3::settings(s3_endpoint, "staging", "loads")
    )
}

async fn ids_in(db: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every event is one row in its standard table and, for tracks, in its event's table.
async fn check_tables(db: &tokio_postgres::Client, schema: &str, events: &[Value]) {
    check_once(db, schema, events, schema).await;
    let mut by_name: HashMap<&str, HashSet<String>> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "track") {
        by_name
            .entry(e["event"].as_str().unwrap())
            .or_default()
            .insert(e["messageId"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_name.len(), NAMES.len(), "every name was produced");
    for (name, expected) in by_name {
        let table = courier_connectors::warehouse::sanitize(name, 63);
        let ids = ids_in(db, &format!("SELECT id FROM {schema}.{table}")).await;
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "{schema}.{table}: one row per messageId"
        );
        assert_eq!(
            unique, expected,
            "{schema}.{table}: exactly the {name} events"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_events_load_into_postgres_and_the_redshift_front() {
    let s3 = LocalS3::start().await;
    let front = RedshiftFront::start(
        "127.0.0.1:0",
        "127.0.0.1:5432",
        LocalS3::location(&s3.server.endpoint(), "staging", ""),
    )
    .await
    .unwrap();
    let (db, base) = fresh_schema("_fronts").await;
    let customers = ["acme", "globex", "initech"];
    for c in customers {
        drop_schema(&db, &format!("{base}_{c}_pg")).await;
        drop_schema(&db, &format!("{base}_{c}_rs")).await;
    }
    // 50,000 events of ~750 bytes: 16 partitions keep each log well under the local broker's
    // ~5 MB per partition, so nothing is truncated before the worker reads it.
    let stack = Stack::start(Spec {
        partitions: 16,
        dead_letter: true,
        retry: false,
        customers: customers
            .iter()
            .map(|c| {
                (
                    Box::leak(format!("{c}.toml").into_boxed_str()) as &'static str,
                    customer_file(
                        c,
                        &format!("{base}_{c}"),
                        &url(),
                        &front.url(&url()),
                        &s3.server.endpoint(),
                        "batch_max_events = 2500",
                    ),
                )
            })
            .collect(),
        env: &[],
    })
    .await;
    // 50,000 events: 16,667 + 16,667 + 16,666, interleaved in the topic.
    let per: Vec<Vec<Value>> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| events(&format!("wk_{c}"), c, 0..(16_667 - (i as u64 / 2))))
        .collect();
    assert_eq!(per.iter().map(Vec::len).sum::<usize>(), 50_000);
    for chunk in 0..17 {
        let mut batch = Vec::new();
        for events in &per {
            batch.extend(events.iter().skip(chunk * 1_000).take(1_000).cloned());
        }
        stack.produce_raw(records(&batch)).await;
    }
    assert!(
        stack.offsets().iter().all(|p| p.log_start == 0),
        "the broker kept every event: {:?}",
        stack.offsets()
    );
    let worker = stack.worker("worker");
    until_fully_committed(&stack, &[&worker], Duration::from_secs(400)).await;

    // Later events bring a new property: a new column, NULL in the older rows.
    let newer: Vec<Value> = (0..30)
        .map(|i| json!({"type": "track", "event": "Signed Up", "messageId": format!("acme-new-{i}"), "writeKey": "wk_acme",
                        "userId": format!("user-{i}"), "properties": {"referral_code": format!("R{i}")}}))
        .collect();
    stack.produce_raw(records(&newer)).await;
    until_fully_committed(&stack, &[&worker], Duration::from_secs(120)).await;
    drop(worker);

    assert!(stack.dead_letters().is_empty(), "nothing dead-lettered");
    for (c, events) in customers.iter().zip(&per) {
        let all: Vec<Value> = if *c == "acme" {
            events.iter().chain(&newer).cloned().collect()
        } else {
            events.clone()
        };
        for dialect in ["pg", "rs"] {
            let schema = format!("{base}_{c}_{dialect}");
            check_tables(&db, &schema, &all).await;
            let ledger = count(
                &db,
                &format!("SELECT count(*) FROM {schema}.courier_ledger WHERE topic = 'events' AND last_offset >= first_offset AND customer = '{c}'"),
            )
            .await;
            assert!(ledger > 0, "{schema}: loads are in the ledger");
            // Loads mix partitions and record what each partition's range put in each table:
            // with no redelivery here, the ledger accounts for every tracks row exactly once.
            let ledgered = count(
                &db,
                &format!("SELECT coalesce(sum(events), 0)::bigint FROM {schema}.courier_ledger WHERE table_name = 'tracks'"),
            )
            .await;
            let tracks = count(&db, &format!("SELECT count(*) FROM {schema}.tracks")).await;
            assert_eq!(
                ledgered, tracks,
                "{schema}: ledger rows account for each tracks row"
            );
            let partitions = count(
                &db,
                &format!("SELECT count(DISTINCT \"partition\") FROM {schema}.courier_ledger"),
            )
            .await;
            assert!(
                partitions > 1,
                "{schema}: the ledger names each partition's range"
            );
        }
    }
    for dialect in ["pg", "rs"] {
        let schema = format!("{base}_acme_{dialect}");
        let signed_up = count(&db, &format!("SELECT count(*) FROM {schema}.signed_up")).await;
        let with_code = count(
            &db,
            &format!("SELECT count(*) FROM {schema}.signed_up WHERE referral_code IS NOT NULL"),
        )
        .await;
        assert_eq!(
            with_code, 30,
            "{schema}: the new column holds the new events' values"
        );
        assert!(signed_up > 30, "{schema}: older rows are NULL there");
    }
    // The Redshift loads went through manifests in S3.
    let staged = count(
        &db,
        &format!(
            "SELECT count(*) FROM {base}_acme_rs.courier_ledger WHERE files LIKE '%manifest.json%'"
        ),
    )
    .await;
    assert!(staged > 0, "redshift loads name their staged files");
    for c in customers {
        drop_schema(&db, &format!("{base}_{c}_pg")).await;
        drop_schema(&db, &format!("{base}_{c}_rs")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_and_database_outages_hold_offsets_and_a_replay_changes_nothing() {
    let s3 = LocalS3::start().await;
    let s3_proxy = TcpProxy::start(&s3.server.addr().to_string()).await;
    let pg_proxy = TcpProxy::start("127.0.0.1:5432").await;
    let front = RedshiftFront::start(
        "127.0.0.1:0",
        &format!("127.0.0.1:{}", pg_proxy.port),
        LocalS3::location(&s3.server.endpoint(), "staging", ""),
    )
    .await
    .unwrap();
    let (db, base) = fresh_schema("_s3outage").await;
    let schema = format!("{base}_acme");
    drop_schema(&db, &format!("{schema}_pg")).await;
    drop_schema(&db, &format!("{schema}_rs")).await;
    let stack = Stack::start(Spec {
        partitions: 2,
        dead_letter: true,
        retry: false,
        customers: vec![(
            "acme.toml",
            customer_file(
                "acme",
                &schema,
                &url(),
                &front.url(&url()),
                &format!("http://127.0.0.1:{}", s3_proxy.port),
                "batch_max_events = 100, concurrency = 1",
            ),
        )],
        env: &[],
    })
    .await;
    let events = events("wk_acme", "acme", 0..4_000);
    stack.produce_raw(records(&events)).await;
    let worker = stack.worker("worker");
    crate::support::eventually(Duration::from_secs(60), "the first loads", || {
        stack
            .offsets()
            .iter()
            .any(|p| p.committed.is_some_and(|c| c > 0))
    })
    .await;

    for (what, proxy) in [
        ("S3", &s3_proxy),
        ("the database behind the front", &pg_proxy),
    ] {
        proxy.set_up(false);
        stack.assert_offsets_hold(what).await;
        // Nothing half-loaded: every row in the Redshift schema belongs to a committed ledger
        // entry's events, so tracks never exceed what the ledger accounts for.
        let rows = count(&db, &format!("SELECT count(*) FROM {schema}_rs.tracks")).await;
        let ledgered = count(
            &db,
            &format!("SELECT coalesce(sum(events), 0)::bigint FROM {schema}_rs.courier_ledger WHERE table_name = 'tracks'"),
        )
        .await;
        assert!(
            rows <= ledgered,
            "{what}: {rows} track rows, {ledgered} in committed loads"
        );
        proxy.set_up(true);
    }
    until_fully_committed(&stack, &[&worker], Duration::from_secs(180)).await;
    drop(worker);
    assert!(
        stack.dead_letters().is_empty(),
        "outages are retried, never dead-lettered"
    );
    check_tables(&db, &format!("{schema}_pg"), &events).await;
    check_tables(&db, &format!("{schema}_rs"), &events).await;

    // Replaying the loaded ranges (another group from the start) leaves every event one row.
    stack.replay_all().await;
    check_tables(&db, &format!("{schema}_pg"), &events).await;
    check_tables(&db, &format!("{schema}_rs"), &events).await;
    drop_schema(&db, &format!("{schema}_pg")).await;
    drop_schema(&db, &format!("{schema}_rs")).await;
}
