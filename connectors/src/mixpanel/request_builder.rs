//! Segment events → Import and Engage request bodies. No I/O.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventType};
use crate::mapping;

/// The two requests of a batch, each with the batch index of every record in it.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    pub(crate) events: Vec<Value>,
    pub(crate) event_index: Vec<usize>,
    pub(crate) profiles: Vec<Value>,
    pub(crate) profile_index: Vec<usize>,
}

/// Mixpanel's `$insert_id`: the message id when it is at most 36 letters, digits and `-`,
/// else the first 32 hex digits of its SHA-256.
pub(crate) fn insert_id(message_id: &str) -> String {
    if message_id.len() <= 36
        && message_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return message_id.to_owned();
    }
    hex::encode(Sha256::digest(message_id.as_bytes()))[..32].to_owned()
}

fn import_event(event: &Event, object: &Map<String, Value>, name: String) -> Value {
    let mut props = mapping::object_field(object, "properties");
    let user = mapping::string_field(object, "userId");
    let device = mapping::string_field(object, "anonymousId");
    let distinct = user.clone().or_else(|| device.clone()).unwrap_or_default();
    props.insert("distinct_id".into(), json!(distinct));
    if let Some(user) = user {
        props.insert("$user_id".into(), json!(user));
    }
    if let Some(device) = device {
        props.insert("$device_id".into(), json!(device));
    }
    if let Some(time) = mapping::event_time_millis(object) {
        props.insert("time".into(), json!(time));
    }
    props.insert("$insert_id".into(), json!(insert_id(event.message_id())));
    if let Some(ip) = mapping::string_field(&mapping::object_field(object, "context"), "ip") {
        props.insert("ip".into(), json!(ip));
    }
    json!({ "event": name, "properties": props })
}

/// Splits `batch` into import events and profile updates.
pub(crate) fn requests(token: &str, batch: &[Arc<Event>]) -> Requests {
    let mut r = Requests::default();
    for (i, event) in batch.iter().enumerate() {
        let object = mapping::object(event);
        match event.event_type() {
            EventType::Track => {
                let name = event.name().unwrap_or_default().to_owned();
                r.events.push(import_event(event, &object, name));
                r.event_index.push(i);
            }
            EventType::Page | EventType::Screen => {
                let name = mapping::view_event_name(event).unwrap_or_default();
                r.events.push(import_event(event, &object, name));
                r.event_index.push(i);
            }
            EventType::Identify => {
                let distinct = mapping::string_field(&object, "userId")
                    .or_else(|| mapping::string_field(&object, "anonymousId"))
                    .unwrap_or_default();
                r.profiles.push(json!({
                    "$token": token,
                    "$distinct_id": distinct,
                    "$set": mapping::object_field(&object, "traits"),
                }));
                r.profile_index.push(i);
            }
            EventType::Group | EventType::Alias => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn parse(raw: &str) -> Arc<Event> {
        Arc::new(Event::parse(Bytes::from(raw.to_owned()), 1 << 20).unwrap())
    }

    #[test]
    fn maps_events_and_profiles() {
        let batch = [
            parse(
                r#"{"type":"track","event":"Signed Up","messageId":"m-1","writeKey":"k","userId":"u1","anonymousId":"a1","timestamp":"1970-01-01T00:00:01Z","properties":{"plan":"pro"}}"#,
            ),
            parse(
                r#"{"type":"identify","messageId":"m-2","writeKey":"k","userId":"u1","traits":{"email":"u1@example.com"}}"#,
            ),
            parse(r#"{"type":"alias","messageId":"m-3","writeKey":"k","userId":"u1"}"#),
            parse(
                r#"{"type":"screen","name":"Home","messageId":"m-4","writeKey":"k","anonymousId":"a1"}"#,
            ),
        ];
        let r = requests("tok", &batch);
        assert_eq!(r.event_index, [0, 3]);
        assert_eq!(r.profile_index, [1]);
        assert_eq!(
            r.events[0],
            json!({"event":"Signed Up","properties":{"plan":"pro","distinct_id":"u1","$user_id":"u1","$device_id":"a1","time":1000,"$insert_id":"m-1"}})
        );
        assert_eq!(r.events[1]["event"], "Viewed Home Screen");
        assert_eq!(r.events[1]["properties"]["distinct_id"], "a1");
        assert_eq!(
            r.profiles[0],
            json!({"$token":"tok","$distinct_id":"u1","$set":{"email":"u1@example.com"}})
        );
    }

    #[test]
    fn long_message_ids_become_stable_insert_ids() {
        let long = "x".repeat(60);
        let id = insert_id(&long);
        assert_eq!(id.len(), 32);
        assert_eq!(id, insert_id(&long));
        assert_eq!(insert_id("0b7a-ok"), "0b7a-ok");
    }
}
