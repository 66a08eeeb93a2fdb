//! Times a warehouse load's CPU work without the database: rows for a batch of 10,000 typical
//! events (track, identify and page, as the benchmark backlog mixes them), the plan of each
//! table and its CSV, and how much the resident set grows while the first batch's rows are
//! built (what they hold, as the process sees it). `cargo run --release -p courier-connectors --example rows_timing`. Rough
//! single-thread figures for before/after comparisons on one machine, on the worker's allocator
//! (mimalloc).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use courier_connectors::warehouse::csv::write_rows;
use courier_connectors::warehouse::plan::{merge_by_id, plan};
use courier_connectors::warehouse::{ColumnType, Dialect, RowBuilder};
use courier_connectors::Event;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The resident set of this process in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .unwrap_or(0)
        * 1024
}

const TRACK: &str = r#"{"type":"track","event":"Bid on item","messageId":"m-{n}","writeKey":"wk_bench_042","userId":"user-{n}","anonymousId":"anon-77aa21","timestamp":"2026-11-29T11:00:00.000Z","context":{"ip":"10.1.2.3","library":{"name":"analytics.js","version":"4.1.0"},"page":{"path":"/items/42","url":"https://shop.example.com/items/42","referrer":"https://shop.example.com/"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},"properties":{"item_id":"sku-4412","price":129.5,"currency":"EUR","bid":120,"category":"Cameras","condition":"used","seller":"acme-store","auction_ends":"2026-12-01T18:00:00Z"}}"#;
const IDENTIFY: &str = r#"{"type":"identify","messageId":"m-{n}","writeKey":"wk_bench_042","userId":"user-{n}","timestamp":"2026-11-29T11:00:00.000Z","context":{"ip":"10.1.2.3","library":{"name":"analytics.js","version":"4.1.0"}},"traits":{"email":"user@example.com","plan":"pro","name":"Ada","logins":42,"created_at":"2025-01-02T03:04:05Z"}}"#;
const PAGE: &str = r#"{"type":"page","name":"Product","messageId":"m-{n}","writeKey":"wk_bench_042","anonymousId":"anon-77aa21","timestamp":"2026-11-29T11:00:00.000Z","context":{"ip":"10.1.2.3","library":{"name":"analytics.js","version":"4.1.0"}},"properties":{"path":"/products/42","title":"Running shoes","referrer":"https://search.example/"}}"#;

fn main() {
    let batch: Vec<Event> = (0..10_000)
        .map(|n| {
            let template = [TRACK, TRACK, IDENTIFY, PAGE][n % 4];
            let raw = template.replace("{n}", &n.to_string());
            Event::parse(Bytes::from(raw), 1 << 20).expect("valid event")
        })
        .collect();
    let existing: HashMap<String, ColumnType> = HashMap::new();
    let rounds = 20;
    let (mut build, mut rest, mut held, mut csv_bytes) = (0u128, 0u128, 0usize, 0usize);
    for round in 0..rounds {
        let before = rss();
        let t = std::time::Instant::now();
        let builder = RowBuilder::new(1_764_000_000_000, Dialect::Postgres);
        let mut tables = BTreeMap::new();
        for event in &batch {
            for row in builder.rows(event) {
                tables
                    .entry(row.table.clone())
                    .or_insert_with(Vec::new)
                    .push(row);
            }
        }
        build += t.elapsed().as_nanos();
        if round == 0 {
            // Later rounds reuse what the allocator kept from the first.
            held = rss().saturating_sub(before);
        }
        let t = std::time::Instant::now();
        csv_bytes = 0;
        for (table, rows) in tables {
            let rows = if &*table == "users" {
                merge_by_id(rows)
            } else {
                rows
            };
            let p = plan(&table, rows, &existing, Dialect::Postgres);
            let columns: Vec<_> = p.columns.keys().cloned().collect();
            let mut out = Vec::new();
            write_rows(&p.rows, &columns, &mut out);
            csv_bytes += out.len();
        }
        rest += t.elapsed().as_nanos();
    }
    let per_event = |ns: u128| ns as f64 / (rounds * batch.len()) as f64;
    println!(
        "rows {:.0} ns/event, plan and CSV {:.0} ns/event; resident set +{} bytes/event while a batch's rows are built; {csv_bytes} CSV bytes",
        per_event(build),
        per_event(rest),
        held / batch.len()
    );
}
