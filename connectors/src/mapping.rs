//! Reading Segment fields for connectors that translate events into another API's shape.
//!
//! [`Event`] keeps the original bytes; translating connectors parse them once
//! per delivery attempt into a [`serde_json::Value`] and read fields from it here.

use chrono::DateTime;
use serde_json::{Map, Value};

use crate::event::{Event, EventType};

/// The event's JSON object (the bytes were validated as an object when the event was built).
pub fn object(event: &Event) -> Map<String, Value> {
    match serde_json::from_slice(event.raw()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Milliseconds since the epoch of an ISO-8601 / RFC 3339 timestamp field.
pub fn timestamp_millis(value: Option<&Value>) -> Option<i64> {
    let text = value?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The event's own time: `timestamp`, else `originalTimestamp`, else `sentAt`.
pub fn event_time_millis(object: &Map<String, Value>) -> Option<i64> {
    ["timestamp", "originalTimestamp", "sentAt"]
        .iter()
        .find_map(|k| timestamp_millis(object.get(*k)))
}

/// A string field, or a number rendered as a string.
pub fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An object field, or an empty object.
pub fn object_field(object: &Map<String, Value>, key: &str) -> Map<String, Value> {
    match object.get(key) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

/// The name analytics tools give a page or screen view: `Viewed <name> Page`, or
/// `Loaded a Page` / `Loaded a Screen` without a name. `None` for other types.
pub fn view_event_name(event: &Event) -> Option<String> {
    let kind = match event.event_type() {
        EventType::Page => "Page",
        EventType::Screen => "Screen",
        _ => return None,
    };
    Some(match event.name() {
        Some(name) => format!("Viewed {name} {kind}"),
        None => format!("Loaded a {kind}"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_timestamps() {
        assert_eq!(
            timestamp_millis(Some(&json!("1970-01-01T00:00:01.500Z"))),
            Some(1500)
        );
        assert_eq!(
            timestamp_millis(Some(&json!("2026-11-29T10:00:00+01:00"))),
            Some(1_795_942_800_000)
        );
        assert_eq!(timestamp_millis(Some(&json!("yesterday"))), None);
        let obj = json!({"sentAt": "1970-01-01T00:00:02Z"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(event_time_millis(&obj), Some(2000));
    }
}
