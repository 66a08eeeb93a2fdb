//! Segment events → an HTTP V2 request body. No I/O.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::event::{Event, EventType};
use crate::mapping;

/// A request body and, for each event in it, its index in the batch.
pub(crate) struct Request {
    pub(crate) body: Value,
    pub(crate) batch_index: Vec<usize>,
}

/// Maps one event; `None` for events Amplitude has no call for (alias).
pub(crate) fn event(event: &Event) -> Option<Value> {
    let object = mapping::object(event);
    let mut out = Map::new();
    let event_type = match event.event_type() {
        EventType::Track => event.name().unwrap_or_default().to_owned(),
        EventType::Page | EventType::Screen => mapping::view_event_name(event)?,
        EventType::Identify | EventType::Group => "$identify".to_owned(),
        EventType::Alias => return None,
    };
    out.insert("event_type".into(), json!(event_type));
    if let Some(user) = mapping::string_field(&object, "userId") {
        out.insert("user_id".into(), json!(user));
    }
    if let Some(device) = mapping::string_field(&object, "anonymousId") {
        out.insert("device_id".into(), json!(device));
    }
    out.insert("insert_id".into(), json!(event.message_id()));
    if let Some(time) = mapping::event_time_millis(&object) {
        out.insert("time".into(), json!(time));
    }
    let context = mapping::object_field(&object, "context");
    if let Some(ip) = mapping::string_field(&context, "ip") {
        out.insert("ip".into(), json!(ip));
    }
    match event.event_type() {
        EventType::Identify => {
            out.insert(
                "user_properties".into(),
                json!({ "$set": mapping::object_field(&object, "traits") }),
            );
        }
        EventType::Group => {
            let group = mapping::string_field(&object, "groupId").unwrap_or_default();
            out.insert("groups".into(), json!({ "group": group }));
            out.insert(
                "group_properties".into(),
                json!({ "$set": mapping::object_field(&object, "traits") }),
            );
        }
        _ => {
            out.insert(
                "event_properties".into(),
                Value::Object(mapping::object_field(&object, "properties")),
            );
        }
    }
    Some(Value::Object(out))
}

/// The request for `batch`, or `None` when no event of it maps to Amplitude.
pub(crate) fn request(
    api_key: &str,
    min_id_length: Option<u32>,
    batch: &[Arc<Event>],
) -> Option<Request> {
    let mut events = Vec::with_capacity(batch.len());
    let mut batch_index = Vec::with_capacity(batch.len());
    for (i, e) in batch.iter().enumerate() {
        if let Some(mapped) = event(e) {
            events.push(mapped);
            batch_index.push(i);
        }
    }
    if events.is_empty() {
        return None;
    }
    let mut body = json!({ "api_key": api_key, "events": events });
    if let Some(n) = min_id_length {
        body["options"] = json!({ "min_id_length": n });
    }
    Some(Request { body, batch_index })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn parse(raw: &str) -> Event {
        Event::parse(Bytes::from(raw.to_owned()), 1 << 20).unwrap()
    }

    #[test]
    fn maps_segment_calls() {
        let track = parse(
            r#"{"type":"track","event":"Bid on item","messageId":"m1","writeKey":"k","userId":"u-123","anonymousId":"a-1","timestamp":"1970-01-01T00:00:01Z","context":{"ip":"203.0.113.7"},"properties":{"price":3}}"#,
        );
        assert_eq!(
            event(&track).unwrap(),
            json!({"event_type":"Bid on item","user_id":"u-123","device_id":"a-1","insert_id":"m1","time":1000,"ip":"203.0.113.7","event_properties":{"price":3}})
        );
        let page = parse(
            r#"{"type":"page","name":"Pricing","messageId":"m2","writeKey":"k","anonymousId":"a-1"}"#,
        );
        assert_eq!(event(&page).unwrap()["event_type"], "Viewed Pricing Page");
        let identify = parse(
            r#"{"type":"identify","messageId":"m3","writeKey":"k","userId":"u-1","traits":{"plan":"pro"}}"#,
        );
        let mapped = event(&identify).unwrap();
        assert_eq!(mapped["event_type"], "$identify");
        assert_eq!(mapped["user_properties"], json!({"$set":{"plan":"pro"}}));
        let alias = parse(
            r#"{"type":"alias","messageId":"m4","writeKey":"k","userId":"u-1","previousId":"a-1"}"#,
        );
        assert!(event(&alias).is_none());
    }

    #[test]
    fn request_keeps_batch_indexes_around_skipped_events() {
        let batch: Vec<Arc<Event>> = [
            r#"{"type":"alias","messageId":"m0","writeKey":"k","userId":"u-1"}"#,
            r#"{"type":"track","event":"E","messageId":"m1","writeKey":"k","userId":"u-1"}"#,
        ]
        .iter()
        .map(|r| Arc::new(parse(r)))
        .collect();
        let r = request("key", Some(1), &batch).unwrap();
        assert_eq!(r.batch_index, [1]);
        assert_eq!(r.body["options"]["min_id_length"], 1);
        assert_eq!(r.body["api_key"], "key");
    }
}
