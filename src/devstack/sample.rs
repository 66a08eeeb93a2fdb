//! Sample Segment events, shaped like analytics.js output.

use serde_json::json;

const TRACK_NAMES: [&str; 6] = [
    "Bid on item",
    "Item Viewed",
    "Order Completed",
    "Signed Up",
    "Debug Ping",
    "Cart Updated",
];

/// A well-mixed hash of `n` (splitmix64), so any arithmetic subsequence of events still gets
/// every type and name.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `n`th sample event for `write_key`: a deterministic mix of tracks (80%), identifies
/// and pages, with a unique `messageId` of `<prefix>-<n>`.
pub fn event(write_key: &str, prefix: &str, n: u64) -> serde_json::Value {
    let h = mix(n);
    let user = format!("user-{}", h % 4_999);
    let message_id = format!("{prefix}-{n}");
    let context = json!({
        "library": { "name": "analytics.js", "version": "4.1.0" },
        "ip": "203.0.113.7",
        "page": { "path": "/items/42", "url": "https://shop.example/items/42" },
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"
    });
    let timestamp = "2026-11-29T10:00:00.000Z";
    match h % 10 {
        0 => json!({
            "type": "identify", "messageId": message_id, "writeKey": write_key,
            "userId": user, "timestamp": timestamp, "context": context,
            "traits": { "email": format!("{user}@example.com"), "plan": "pro", "logins": n % 13 }
        }),
        1 => json!({
            "type": "page", "messageId": message_id, "writeKey": write_key,
            "anonymousId": format!("anon-{}", (h >> 16) % 997), "name": "Pricing", "timestamp": timestamp,
            "context": context, "properties": { "path": "/pricing", "referrer": "https://search.example" }
        }),
        _ => json!({
            "type": "track", "messageId": message_id, "writeKey": write_key,
            "userId": user, "event": TRACK_NAMES[((h >> 8) % TRACK_NAMES.len() as u64) as usize],
            "timestamp": timestamp, "context": context,
            "properties": { "item_id": n % 1000, "price": (n % 500) as f64 + 0.99, "currency": "USD" }
        }),
    }
}

/// The name a sample event's `type` and name fields give it, for filter expectations.
pub fn name_of(event: &serde_json::Value) -> Option<&str> {
    event
        .get("event")
        .or_else(|| event.get("name"))
        .and_then(|v| v.as_str())
}
