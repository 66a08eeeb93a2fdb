//! The `postgres` warehouse connector against a real PostgreSQL: one row per event in the
//! right tables, schema evolution, hostile names, and redelivery.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{records, sample_events, until_fully_committed, Spec, Stack};

/// The PostgreSQL the tests use (`scripts/setup.sh postgres` starts one on a fresh machine).
pub(crate) fn url() -> String {
    std::env::var("COURIER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub(crate) async fn connect() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup.sh postgres)");
    tokio::spawn(connection);
    client
}

/// A connection and an empty schema of this test process, named `courier_test_<pid><suffix>`.
pub(crate) async fn fresh_schema(suffix: &str) -> (tokio_postgres::Client, String) {
    let schema = format!("courier_test_{}{suffix}", std::process::id());
    let db = connect().await;
    drop_schema(&db, &schema).await;
    (db, schema)
}

pub(crate) async fn drop_schema(db: &tokio_postgres::Client, schema: &str) {
    db.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}

pub(crate) async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The two identifies of `merge-user` merged: later traits win, earlier ones stay.
async fn assert_merged_user(db: &tokio_postgres::Client, schema: &str) {
    let row = db
        .query_one(
            &format!("SELECT email, plan, company FROM {schema}.users WHERE id = 'merge-user'"),
            &[],
        )
        .await
        .unwrap();
    let merged: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        merged,
        ("m@example.com".into(), "pro".into(), "Acme".into())
    );
}

/// A stack whose one customer, acme (`wk_acme`), loads every event into `schema` at `url`.
async fn warehouse_stack(
    schema: &str,
    url: &str,
    delivery: &str,
    env: &'static [(&'static str, &'static str)],
) -> Stack {
    Stack::start(Spec {
        partitions: 2,
        dead_letter: true,
        retry: false,
        customers: vec![(
            "acme.toml",
            format!(
                "id = \"acme\"\nwrite_keys = [\"wk_acme\"]\n[destinations.warehouse]\nkind = \"postgres\"\nenabled = true\ndelivery = {{ {delivery} }}\n[destinations.warehouse.settings]\nurl = \"{url}\"\nschema = \"{schema}\"\n"
            ),
        )],
        env,
    })
    .await
}

/// Every event is one row in its tables; the later property is a column NULL in older rows.
async fn check(db: &tokio_postgres::Client, schema: &str, all: &[Value], label: &str) {
    check_once(db, schema, all, label).await;
    let signed_up = all.iter().filter(|e| e["event"] == "Signed Up").count() as i64;
    let users: std::collections::HashSet<&str> = all
        .iter()
        .filter(|e| e["type"] == "identify")
        .filter_map(|e| e["userId"].as_str())
        .collect();
    assert_eq!(
        count(db, &format!("SELECT count(*) FROM {schema}.users")).await,
        users.len() as i64,
        "{label}: one users row per identified user"
    );
    assert_eq!(
        count(db, &format!("SELECT count(*) FROM {schema}.signed_up")).await,
        signed_up,
        "{label}"
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT count(*) FROM {schema}.signed_up WHERE referral_code IS NOT NULL")
        )
        .await,
        50
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT count(*) FROM {schema}.signed_up WHERE referral_code IS NULL")
        )
        .await,
        signed_up - 50,
        "{label}: older rows have NULL in the new column"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_one_row_per_event_evolves_the_schema_and_survives_redelivery() {
    let (db, schema) = fresh_schema("").await;
    let tables_elsewhere = "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT LIKE 'courier_test_%' AND table_schema NOT LIKE 'pg_%'";
    let before = count(&db, tables_elsewhere).await;

    let stack = warehouse_stack(&schema, &url(), "batch_max_events = 300", &[]).await;
    let older = sample_events("wk_acme", "acme", 0..1_500);
    let hostile: Vec<Value> = [
        "\"; DROP TABLE tracks; --",
        "select",
        &"x".repeat(300),
        "Ünïcödé événement",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| {
        json!({
            "type": "track", "event": name, "messageId": format!("hostile-{i}"), "writeKey": "wk_acme", "userId": "u1",
            "properties": {"it's": 1, "a;b": "x", "\"quoted\"": true, "from": "reserved", "ключ": "unicode", &"k".repeat(300): 2}
        })
    })
    .collect();
    let newer: Vec<Value> = (0..50)
        .map(|i| {
            json!({"type": "track", "event": "Signed Up", "messageId": format!("new-{i}"), "writeKey": "wk_acme",
                   "userId": format!("user-{i}"), "properties": {"referral_code": format!("R{i}")}})
        })
        .collect();
    // Two identifies of one user, apart in the stream: their traits merge in `users`.
    let first_identify = json!({"type": "identify", "messageId": "merge-1", "writeKey": "wk_acme", "userId": "merge-user",
                                "traits": {"email": "m@example.com", "plan": "free"}});
    let second_identify = json!({"type": "identify", "messageId": "merge-2", "writeKey": "wk_acme", "userId": "merge-user",
                                 "traits": {"plan": "pro", "company": "Acme"}});
    let older: Vec<Value> = older.into_iter().chain([first_identify]).collect();
    let newer: Vec<Value> = newer.into_iter().chain([second_identify]).collect();
    stack.produce_raw(records(&older)).await;
    stack.produce_raw(records(&hostile)).await;
    stack.produce_raw(records(&newer)).await;
    let first = stack.worker("first");
    until_fully_committed(&stack, &[&first], Duration::from_secs(120)).await;
    drop(first);

    let all: Vec<Value> = older
        .iter()
        .chain(&hostile)
        .chain(&newer)
        .cloned()
        .collect();
    check(&db, &schema, &all, "first load").await;
    assert_merged_user(&db, &schema).await;

    // Hostile names became sanitised tables and columns; nothing outside the schema changed.
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM {schema}.drop_table_tracks")
        )
        .await,
        1
    );
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM {schema}.select_")).await,
        1
    );
    let columns: Vec<String> = db
        .query("SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'drop_table_tracks'", &[&schema])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for expected in ["it_s", "a_b", "quoted", "from_"] {
        assert!(
            columns.iter().any(|c| c == expected),
            "{expected} in {columns:?}"
        );
    }
    assert!(columns.iter().all(|c| c.len() <= 63));
    assert_eq!(
        count(&db, tables_elsewhere).await,
        before,
        "no table outside the customer schema changed"
    );

    // Redelivery: a new group replays the whole topic into the same tables.
    stack.replay_all().await;
    check(&db, &schema, &all, "after redelivery").await;
    assert_merged_user(&db, &schema).await;
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_load_leaves_every_event_once() {
    let (db, schema) = fresh_schema("_outage").await;
    let proxy = crate::tcp_proxy::TcpProxy::start("127.0.0.1:5432").await;
    let through_proxy = url().replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let stack = warehouse_stack(
        &schema,
        &through_proxy,
        "batch_max_events = 100, concurrency = 1",
        &[],
    )
    .await;
    let events = sample_events("wk_acme", "acme", 0..3_000);
    stack.produce_raw(records(&events)).await;
    let worker = stack.worker("worker");
    let tracks = format!("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name = 'tracks'");
    crate::support::eventually(Duration::from_secs(60), "the first loads", || {
        stack
            .offsets()
            .iter()
            .any(|p| p.committed.is_some_and(|c| c > 0))
    })
    .await;
    assert_eq!(count(&db, &tracks).await, 1);

    // The database goes away mid-stream: no offset moves while it is gone.
    proxy.set_up(false);
    stack.assert_offsets_hold("the database").await;

    proxy.set_up(true);
    until_fully_committed(&stack, &[&worker], Duration::from_secs(120)).await;
    check_once(&db, &schema, &events, "after recovery").await;
    assert!(
        stack.dead_letters().is_empty(),
        "an outage is retried, never dead-lettered"
    );
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_load_commit_and_offset_commit_leaves_every_event_once() {
    let (db, schema) = fresh_schema("_kill").await;
    // Offsets are committed only every 2 s: loads committed in between are redelivered.
    let stack = warehouse_stack(
        &schema,
        &url(),
        "batch_max_events = 200",
        &[("COURIER__CONSUMER__COMMIT_INTERVAL_MS", "2000")],
    )
    .await;
    let events = sample_events("wk_acme", "acme", 0..6_000);
    stack.produce_raw(records(&events)).await;
    // Which offsets hold track events, to compare loaded rows with committed offsets.
    let produced = courier::devstack::produce::read_topic(
        &stack.brokers(),
        crate::support::TOPIC,
        Duration::from_secs(20),
    )
    .unwrap();
    let tracks_below = |committed: &[crate::support::PartitionOffsets]| -> i64 {
        produced
            .iter()
            .filter(|r| {
                let below = committed.iter().any(|p| {
                    p.partition == r.partition && p.committed.is_some_and(|c| r.offset < c)
                });
                below && serde_json::from_slice::<Value>(&r.payload).unwrap()["type"] == "track"
            })
            .count() as i64
    };
    let mut first = stack.worker("first");
    let exists = format!(
        "SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename = 'tracks'"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Kill right when the warehouse holds rows whose offsets are not committed yet.
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never caught a load ahead of its commit"
        );
        if count(&db, &exists).await == 1 {
            let committed = stack.offsets();
            let rows = count(&db, &format!("SELECT count(*) FROM {schema}.tracks")).await;
            if rows > 300 && rows > tracks_below(&committed) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.signal("KILL");
    first.wait(Duration::from_secs(5)).expect("killed");
    let committed: i64 = stack
        .offsets()
        .iter()
        .map(|p| p.committed.unwrap_or(0))
        .sum();
    assert!(
        committed < events.len() as i64,
        "the kill came before everything was committed"
    );

    let second = stack.worker("second");
    until_fully_committed(&stack, &[&first, &second], Duration::from_secs(120)).await;
    check_once(&db, &schema, &events, "after recovery").await;
    drop_schema(&db, &schema).await;
}

/// Every event of `events` is exactly one row in its standard table.
pub(crate) async fn check_once(
    db: &tokio_postgres::Client,
    schema: &str,
    events: &[Value],
    label: &str,
) {
    for (table, kind) in [
        ("tracks", "track"),
        ("identifies", "identify"),
        ("pages", "page"),
    ] {
        let expected = events.iter().filter(|e| e["type"] == kind).count() as i64;
        let rows = count(db, &format!("SELECT count(*) FROM {schema}.{table}")).await;
        let ids = count(
            db,
            &format!("SELECT count(DISTINCT id) FROM {schema}.{table}"),
        )
        .await;
        assert_eq!(
            (rows, ids),
            (expected, expected),
            "{label}: {table} holds each event once"
        );
    }
}
