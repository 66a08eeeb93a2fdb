//! Times `Event::parse` on one typical 682-byte track event (the validation pass every consumed
//! message takes): `cargo run --release -p courier-connectors --example parse_timing`. A rough
//! single-thread figure in ns per event, for before/after comparisons on one machine; it
//! runs on the system allocator, not the worker's. An argument sets the number of events
//! (default 2,000,000): a small one suits `valgrind --tool=callgrind`, whose instruction counts
//! do not drift with the machine.

use bytes::Bytes;
use courier_connectors::Event;
fn main() {
    let raw = br#"{"type":"track","event":"Bid on item","messageId":"7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b","writeKey":"wk_bench_042","userId":"user-18231","anonymousId":"anon-77aa21","timestamp":"2026-11-29T11:00:00.000Z","context":{"ip":"10.1.2.3","library":{"name":"analytics.js","version":"4.1.0"},"page":{"path":"/items/42","url":"https://shop.example.com/items/42","referrer":"https://shop.example.com/"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},"properties":{"item_id":"sku-4412","price":129.5,"currency":"EUR","bid":120,"category":"Cameras","condition":"used","seller":"acme-store","auction_ends":"2026-12-01T18:00:00Z"}}"#;
    let bytes: Vec<Bytes> = (0..1000).map(|_| Bytes::copy_from_slice(raw)).collect();
    let n: usize = std::env::args()
        .nth(1)
        .map_or(2_000_000, |n| n.parse().expect("a number of events"));
    let t = std::time::Instant::now();
    let mut k = 0usize;
    for i in 0..n {
        let e = Event::parse(bytes[i % 1000].clone(), 1 << 20).unwrap();
        k += e.write_key().len();
    }
    let el = t.elapsed();
    println!(
        "{} bytes: {:.0} ns/event ({k})",
        raw.len(),
        el.as_nanos() as f64 / n as f64
    );
}
