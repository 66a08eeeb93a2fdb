//! The `s3` raw archive against a real S3 server: every event exactly once per offset range
//! after a SIGKILL and redelivery, and after a full replay; `per_batch` objects that span
//! partitions and lose nothing to a SIGKILL.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use courier_connectors::s3::Bucket;
use flate2::read::GzDecoder;

use crate::support::{
    records, sample_events, until_fully_committed, LocalS3, PartitionOffsets, Spec, Stack, Worker,
};

/// One archived object: its partition and range, and the messageIds in it.
#[derive(Debug)]
struct Object {
    key: String,
    partition: i32,
    first: i64,
    last: i64,
}

/// The complete objects under `raw/`, by their names.
async fn objects(bucket: &Bucket) -> Vec<Object> {
    let keys = bucket.list("raw/").await.expect("list the archive");
    keys.into_iter()
        .filter_map(|key| {
            let name = key.rsplit('/').next()?.strip_suffix(".ndjson.gz")?;
            let mut parts = name.rsplitn(3, '-');
            let last = parts.next()?.parse().ok()?;
            let first = parts.next()?.parse().ok()?;
            let partition = parts.next()?.rsplit('-').next()?.parse().ok()?;
            Some(Object {
                key: key.clone(),
                partition,
                first,
                last,
            })
        })
        .collect()
}

/// How often each messageId is archived; asserts that no two objects of a partition overlap.
async fn archived(bucket: &Bucket) -> HashMap<String, usize> {
    let mut objects = objects(bucket).await;
    objects.sort_by_key(|o| (o.partition, o.first));
    for pair in objects.windows(2) {
        assert!(
            pair[0].partition != pair[1].partition || pair[0].last < pair[1].first,
            "overlapping objects {} and {}",
            pair[0].key,
            pair[1].key
        );
    }
    let mut seen = HashMap::new();
    for object in &objects {
        for id in message_ids(bucket, &object.key).await {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// The messageIds of the events in the object at `key`, one JSON event per gzip NDJSON line.
async fn message_ids(bucket: &Bucket, key: &str) -> Vec<String> {
    let gz = bucket.get(key).await.expect("get an object");
    let mut text = String::new();
    GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gzip NDJSON");
    text.lines()
        .map(|line| {
            let event: serde_json::Value =
                serde_json::from_str(line).expect("one JSON event per line");
            event["messageId"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn assert_once(seen: &HashMap<String, usize>, produced: &[serde_json::Value], label: &str) {
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "{label}: archived more than once: {twice:?}"
    );
    assert_all(seen, produced, label);
}

/// Every produced event is archived (at least once), and nothing else is.
fn assert_all(seen: &HashMap<String, usize>, produced: &[serde_json::Value], label: &str) {
    for event in produced {
        let id = event["messageId"].as_str().unwrap();
        assert!(seen.contains_key(id), "{label}: {id} is not archived");
    }
    assert_eq!(
        seen.len(),
        produced.len(),
        "{label}: nothing else is archived"
    );
}

/// A stack whose one customer, acme, archives to `archive/raw/` with `delivery` (a TOML inline
/// table) and `layout` (extra settings lines), its workers started with `env`.
async fn archiving_stack(
    endpoint: &str,
    delivery: &str,
    layout: &str,
    env: &'static [(&'static str, &'static str)],
) -> Stack {
    Stack::start(Spec {
        partitions: 3,
        dead_letter: true,
        retry: false,
        customers: vec![(
            "acme.toml",
            format!(
                "id = \"acme\"\nwrite_keys = [\"wk_acme\"]\n[destinations.raw]\nkind = \"s3\"\nenabled = true\ndelivery = {delivery}\n[destinations.raw.settings]\n{layout}{}",
                LocalS3::settings(endpoint, "archive", "raw")
            ),
        )],
        env,
    })
    .await
}

/// Kills `first`, checks that it left offsets uncommitted, and lets a second worker finish.
async fn kill_and_finish(stack: &Stack, mut first: Worker) {
    first.signal("KILL");
    first.wait(Duration::from_secs(5)).expect("killed");
    assert!(
        stack.offsets().iter().any(|p| p.lag > 0),
        "the kill came before everything was committed"
    );
    let second = stack.worker("second");
    until_fully_committed(stack, &[&first, &second], Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_holds_each_event_once_after_a_crash_and_a_replay() {
    let s3 = LocalS3::start().await;
    let endpoint = s3.server.endpoint();
    let bucket = Bucket::new(LocalS3::location(&endpoint, "archive", ""));
    // Batches cut by count (the age limit is far away until the backlog's tail), offsets
    // committed every 2 s: objects written in between are redelivered after the kill. The
    // tail's partial batches wait 5 s, so no partition catches up (and commits at once)
    // before then.
    let stack = archiving_stack(
        &endpoint,
        "{ batch_max_events = 200, batch_max_age_ms = 5000, concurrency = 3 }",
        "",
        &[("COURIER__CONSUMER__COMMIT_INTERVAL_MS", "2000")],
    )
    .await;
    let events = sample_events("wk_acme", "acme", 0..6_000);
    stack.produce_raw(records(&events)).await;

    let first = stack.worker("first");
    // Kill when the archive holds a range whose offsets are not committed yet.
    let ahead = |objects: &[Object], offsets: &[PartitionOffsets]| {
        objects.iter().any(|o| {
            offsets
                .iter()
                .any(|p| p.partition == o.partition && p.committed.unwrap_or(0) <= o.first)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "never caught an object ahead of its commit"
        );
        let offsets = stack.offsets();
        let committed_some = offsets.iter().any(|p| p.committed.unwrap_or(0) > 0);
        if committed_some && ahead(&objects(&bucket).await, &offsets) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_and_finish(&stack, first).await;
    assert_once(&archived(&bucket).await, &events, "after the crash");

    // A replay of the whole topic by another group rewrites the same ranges.
    stack.replay_all().await;
    assert_once(&archived(&bucket).await, &events, "after the replay");
    assert!(stack.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_batch_objects_span_partitions_and_lose_nothing_to_a_crash() {
    let s3 = LocalS3::start().await;
    let endpoint = s3.server.endpoint();
    let bucket = Bucket::new(LocalS3::location(&endpoint, "archive", ""));
    // Batches cut at 1 MiB (~2,400 of these ~430-byte events, more than a partition's 2,000),
    // the last partial one by age (3 s); first commit tick at 5 s. The kill comes once the
    // first object is there, while the partial batch still waits: its partitions have copies
    // in flight, so they have not caught up and cannot have committed (a partition commits
    // before its tick only once everything it took is done).
    let stack = archiving_stack(
        &endpoint,
        "{ batch_max_events = 10000, batch_max_bytes = 1048576, batch_max_age_ms = 3000 }",
        "objects = \"per_batch\"\n",
        &[("COURIER__CONSUMER__COMMIT_INTERVAL_MS", "5000")],
    )
    .await;
    let events = sample_events("wk_acme", "acme", 0..6_000);
    stack.produce_raw(records(&events)).await;

    let first = stack.worker("first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while bucket.list("raw/").await.expect("list").is_empty() {
        assert!(Instant::now() < deadline, "no object within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_and_finish(&stack, first).await;

    let keys = bucket.list("raw/").await.expect("list");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut largest = 0;
    for key in &keys {
        let name = key.rsplit('/').next().unwrap();
        let hash = name
            .strip_prefix("events-batch-")
            .and_then(|n| n.strip_suffix(".ndjson.gz"))
            .unwrap_or_else(|| panic!("{key} is not a per-batch object"));
        assert!(
            hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        let ids = message_ids(&bucket, key).await;
        largest = largest.max(ids.len());
        for id in ids {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    assert_all(&seen, &events, "per batch, after the crash");
    let widest_partition = stack.offsets().iter().map(|p| p.log_end).max().unwrap();
    assert!(
        largest as i64 > widest_partition,
        "an object ({largest} events) holds more than any one partition ({widest_partition}): it spans partitions"
    );
    assert!(stack.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_the_threshold_upload_in_parts_and_read_back_whole() {
    let s3 = LocalS3::start().await;
    let bucket = Bucket::new(LocalS3::location(&s3.server.endpoint(), "archive", ""));
    // Incompressible bytes a little over the multipart threshold: three parts.
    let size = courier_connectors::s3::MULTIPART_THRESHOLD + 3 * 1024 * 1024;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let body: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    bucket
        .put("big/object.bin", body.clone(), "application/octet-stream")
        .await
        .expect("a multipart upload");
    assert_eq!(
        bucket.list("big/").await.unwrap(),
        vec!["big/object.bin".to_owned()]
    );
    let back = bucket.get("big/object.bin").await.unwrap();
    assert_eq!(back.len(), body.len());
    assert!(back == body, "the parts reassemble to the original bytes");
}
