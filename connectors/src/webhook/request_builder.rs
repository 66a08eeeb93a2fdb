//! Turns a batch into a request body. No I/O.

use std::sync::Arc;

use bytes::Bytes;

use crate::array_body::ArrayBody;
use crate::event::Event;

/// A webhook request's body.
#[derive(Debug)]
pub(crate) enum WebhookBody {
    /// One event's original bytes, sent as they are.
    Single(Bytes),
    /// A JSON array of the events' original bytes, streamed.
    Array(ArrayBody),
}

impl WebhookBody {
    /// The body's bytes in order, as slices (for the signature).
    pub(crate) fn pieces(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match self {
            WebhookBody::Single(raw) => Box::new(std::iter::once(&raw[..])),
            WebhookBody::Array(array) => Box::new(array.pieces()),
        }
    }
}

impl From<WebhookBody> for reqwest::Body {
    fn from(body: WebhookBody) -> reqwest::Body {
        match body {
            WebhookBody::Single(raw) => raw.into(),
            WebhookBody::Array(array) => array.into(),
        }
    }
}

/// The body for `batch`: the single event when `single` is set and the batch holds one
/// event, else a JSON array of the events' original bytes.
pub(crate) fn body(batch: &[Arc<Event>], single: bool) -> WebhookBody {
    if single && batch.len() == 1 {
        return WebhookBody::Single(batch[0].raw().clone());
    }
    WebhookBody::Array(ArrayBody::new(batch, b"[", b"]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Arc<Event> {
        let raw =
            format!(r#"{{"type":"identify","messageId":"{id}","writeKey":"k","userId":"u"}}"#);
        Arc::new(Event::parse(Bytes::from(raw), 1 << 20).unwrap())
    }

    fn bytes(body: &WebhookBody) -> Vec<u8> {
        body.pieces().flatten().copied().collect()
    }

    #[test]
    fn array_holds_the_original_events() {
        let batch = [event("a"), event("b")];
        let v: serde_json::Value = serde_json::from_slice(&bytes(&body(&batch, false))).unwrap();
        let ids: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["messageId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn single_mode_sends_the_object() {
        let batch = [event("a")];
        assert_eq!(bytes(&body(&batch, true)), batch[0].raw().to_vec());
    }
}
