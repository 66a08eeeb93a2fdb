//! Benchmark pieces (`bench/run.sh`): a realistic backlog, the raw-consumer ceiling, and a
//! counting webhook receiver.
//!
//! - [`event`]: Segment events of 0.5–1 KB — tracks (70%), identifies, pages — for 100
//!   customers whose traffic follows a Zipf law (customer `k` gets a share ∝ 1/k), with eight
//!   track names of different property shapes. Deterministic in `n`.
//! - [`ceiling`]: the fastest anything can drain the topic here: one librdkafka consumer that
//!   only counts messages and bytes (no decode, no routing, no commits).
//! - [`Counter`]: an HTTP server that counts the events POSTed to it and, for events carrying
//!   `properties.bench_sent_ms`, records the latency from that stamp to receipt.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Customers in the backlog.
pub const CUSTOMERS: usize = 100;

const NAMES: [&str; 8] = [
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Search Performed",
    "Video Played",
    "Signed Up",
    "Coupon Applied",
];

fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The write key of customer `k` (0-based).
pub fn write_key(k: usize) -> String {
    format!("wk_bench_{k:03}")
}

/// The customer of the `n`th event: Zipf over [`CUSTOMERS`] ranks.
fn customer(n: u64) -> usize {
    let harmonic: f64 = (1..=CUSTOMERS).map(|k| 1.0 / k as f64).sum();
    let u = (mix(n ^ 0x5eed) >> 11) as f64 / (1u64 << 53) as f64 * harmonic;
    let mut acc = 0.0;
    for k in 1..=CUSTOMERS {
        acc += 1.0 / k as f64;
        if u < acc {
            return k - 1;
        }
    }
    CUSTOMERS - 1
}

/// The `n`th backlog event; `sent_ms` stamps `properties.bench_sent_ms` for latency runs.
pub fn event(n: u64, sent_ms: Option<u64>) -> serde_json::Value {
    let h = mix(n);
    let k = customer(n);
    let user = format!("user-{}-{}", k, h % 20_011);
    let context = json!({
        "library": { "name": "analytics.js", "version": "4.1.0" },
        "ip": format!("203.0.113.{}", h % 250),
        "locale": "en-US",
        "page": { "path": "/products/42", "referrer": "https://search.example/?q=shoes", "title": "Running shoes", "url": "https://shop.example/products/42" },
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "campaign": { "name": "winter", "source": "newsletter", "medium": "email" }
    });
    let common = |kind: &str| {
        json!({
            "type": kind,
            "messageId": format!("bench-{n}"),
            "writeKey": write_key(k),
            "userId": user,
            "anonymousId": format!("anon-{:x}", h & 0xffff_ffff),
            "timestamp": "2026-11-29T10:00:00.000Z",
            "sentAt": "2026-11-29T10:00:00.120Z",
            "context": context,
        })
    };
    let mut event = match h % 10 {
        0 | 1 => {
            let mut e = common("identify");
            let plan = ["free", "pro", "team"][(h % 3) as usize];
            e["traits"] = json!({ "email": format!("{user}@example.com"), "plan": plan,
                                  "logins": h % 97, "company": { "name": "Initech", "employees": h % 5000 } });
            e
        }
        2 => {
            let mut e = common("page");
            e["name"] = json!("Product");
            e["properties"] = json!({ "path": "/products/42", "title": "Running shoes", "referrer": "https://search.example/" });
            e
        }
        _ => {
            let mut e = common("track");
            let name = NAMES[((h >> 8) % NAMES.len() as u64) as usize];
            e["event"] = json!(name);
            e["properties"] = match name {
                "Order Completed" => {
                    json!({ "order_id": format!("o-{n}"), "total": (h % 50_000) as f64 / 100.0, "currency": "USD",
                                             "products": [{ "sku": "s-1", "price": 19.99, "quantity": 1 }, { "sku": "s-2", "price": 5.0, "quantity": 3 }] })
                }
                "Search Performed" => json!({ "query": "trail running shoes", "results": h % 200 }),
                "Video Played" => {
                    json!({ "video_id": format!("v{}", h % 999), "position": h % 3600, "quality": "1080p", "muted": h % 2 == 0 })
                }
                _ => {
                    json!({ "product_id": format!("p-{}", h % 10_000), "price": (h % 20_000) as f64 / 100.0, "category": "shoes", "brand": "Acme" })
                }
            };
            e
        }
    };
    if let Some(ms) = sent_ms {
        if !event["properties"].is_object() {
            event["properties"] = json!({});
        }
        event["properties"]["bench_sent_ms"] = json!(ms);
    }
    event
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// This process's CPU seconds (user + system) and peak RSS in MB, from `/proc/self`.
pub fn self_usage() -> (f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit(')').next()?.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0;
    (cpu, rss)
}

/// What the ceiling consumer measured.
#[derive(Debug, Serialize)]
pub struct CeilingReport {
    /// Messages read.
    pub messages: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Seconds from start to the last message.
    pub seconds: f64,
    /// CPU seconds of this process.
    pub cpu_seconds: f64,
    /// CPU seconds of this process from the assignment to the last message: its drain alone,
    /// without creating the consumer and reading the partitions' metadata.
    pub drain_cpu_seconds: f64,
    /// Peak RSS in MB.
    pub peak_rss_mb: f64,
}

/// Reads every partition of `topic` from the start to its current end, counting.
pub fn ceiling(brokers: &str, topic: &str, group: &str) -> anyhow::Result<CeilingReport> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the consumer")?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0u64;
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        remaining += (high - low) as u64;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let (cpu_at_start, _) = self_usage();
    let (mut messages, mut bytes) = (0u64, 0u64);
    while messages < remaining {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                messages += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(err)) => anyhow::bail!("consume error: {err}"),
            None => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_seconds, peak_rss_mb) = self_usage();
    Ok(CeilingReport {
        messages,
        bytes,
        seconds,
        cpu_seconds,
        drain_cpu_seconds: cpu_seconds - cpu_at_start,
        peak_rss_mb,
    })
}

#[derive(Default)]
struct Counts {
    events: u64,
    requests: u64,
    latencies_ms: Vec<u64>,
}

/// A counting webhook receiver.
#[derive(Clone)]
pub struct Counter {
    addr: SocketAddr,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter").field("addr", &self.addr).finish()
    }
}

/// The stamp of a latency event, as the producer writes it.
const STAMP: &[u8] = b"\"bench_sent_ms\"";

/// Counts the events of a body (a JSON array of objects, or one object) and reads their
/// `bench_sent_ms` stamps in one pass over the bytes, without building values: the receiver
/// only counts, and parsing every event took as much CPU as the subject spent routing it.
/// `None` when the brackets do not balance or a string is not closed.
fn scan(body: &[u8]) -> Option<(u64, Vec<u64>)> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let event_depth = if body[start] == b'[' { 2 } else { 1 };
    let (mut depth, mut events) = (0usize, 0u64);
    let (mut in_string, mut escaped) = (false, false);
    for &b in &body[start..] {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth == event_depth && b == b'{' {
                    events += 1;
                }
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    if in_string || depth != 0 || events == 0 {
        return None;
    }
    let stamps = memchr::memmem::find_iter(body, STAMP)
        .filter_map(|at| {
            // `"bench_sent_ms": 123` from serialisers that space their output.
            let rest = &body[at + STAMP.len()..];
            let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
            let value = rest.get(colon..)?.strip_prefix(b":")?;
            let digits = &value[value.iter().position(|b| !b.is_ascii_whitespace())?..];
            let end = digits
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(digits.len());
            std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
        })
        .collect();
    Some((events, stamps))
}

/// What the counter has seen (`GET /_count`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CountReport {
    /// Events accepted.
    pub events: u64,
    /// Requests accepted.
    pub requests: u64,
    /// Stamped events seen.
    pub stamped: usize,
    /// Median latency of stamped events, ms.
    pub p50_ms: Option<u64>,
    /// 99th percentile latency of stamped events, ms.
    pub p99_ms: Option<u64>,
}

impl Counter {
    /// Listens on `listen`: `POST /<anything>` counts, `GET /_count` reports, `POST /_reset`
    /// starts over.
    pub async fn start(listen: &str) -> anyhow::Result<Counter> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let counts: Arc<Mutex<Counts>> = Arc::default();
        let app = axum::Router::new()
            .route("/_count", get(report))
            .route("/_reset", post(reset))
            .route("/{*path}", post(count))
            .with_state(counts);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Counter { addr })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn count(State(counts): State<Arc<Mutex<Counts>>>, body: Bytes) -> axum::http::StatusCode {
    let now = now_ms();
    let Some((events, stamps)) = scan(&body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
    c.requests += 1;
    c.events += events;
    c.latencies_ms
        .extend(stamps.into_iter().map(|sent| now.saturating_sub(sent)));
    axum::http::StatusCode::OK
}

async fn report(State(counts): State<Arc<Mutex<Counts>>>) -> Json<CountReport> {
    let c = counts.lock().unwrap_or_else(|e| e.into_inner());
    let mut sorted = c.latencies_ms.clone();
    sorted.sort_unstable();
    let quantile = |q: f64| {
        (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
    };
    Json(CountReport {
        events: c.events,
        requests: c.requests,
        stamped: sorted.len(),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
    })
}

async fn reset(State(counts): State<Arc<Mutex<Counts>>>) {
    *counts.lock().unwrap_or_else(|e| e.into_inner()) = Counts::default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_counts_events_and_reads_stamps_without_parsing() {
        let a = event(1, Some(1_700));
        let b = event(2, None);
        let c = event(3, Some(1_900));
        let array = serde_json::to_vec(&json!([a, b, c])).unwrap();
        let (events, mut stamps) = scan(&array).expect("an array of events");
        stamps.sort_unstable();
        assert_eq!((events, stamps), (3, vec![1_700, 1_900]));
        let one = serde_json::to_vec(&b).unwrap();
        assert_eq!(scan(&one), Some((1, vec![])));
        let spaced = br#"[{"properties": {"bench_sent_ms" : 42}}]"#;
        assert_eq!(scan(spaced), Some((1, vec![42])));
        let tricky = br#"[{"a":"}{[\"]"},{"b":[{"c":1}]}]"#;
        assert_eq!(
            scan(tricky),
            Some((2, vec![])),
            "brackets in strings do not count"
        );
        for bad in [&b"[{"[..], b"[{\"a\":\"x}]", b"", b"[]", b"}{"] {
            assert_eq!(scan(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn events_are_half_to_one_kilobyte_and_customers_skewed() {
        let mut per_customer = vec![0u32; CUSTOMERS];
        for n in 0..20_000 {
            let e = event(n, None);
            let size = serde_json::to_vec(&e).unwrap().len();
            assert!(
                (500..=1024).contains(&size),
                "event {n} is {size} bytes: {e}"
            );
            per_customer[customer(n)] += 1;
        }
        assert!(per_customer[0] > 10 * per_customer[50], "{per_customer:?}");
        assert!(per_customer.iter().all(|&c| c > 0));
    }
}
