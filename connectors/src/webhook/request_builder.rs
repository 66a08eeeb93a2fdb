//! Turns a batch into a request body. No I/O.

use std::sync::Arc;

use crate::event::{write_json_array, Event};

/// The JSON body for `batch`: the single event when `single` is set and the batch holds one
/// event, else a JSON array of the events' original bytes.
pub(crate) fn body(batch: &[Arc<Event>], single: bool) -> Vec<u8> {
    if single && batch.len() == 1 {
        return batch[0].raw().to_vec();
    }
    let mut out = Vec::new();
    write_json_array(batch, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn event(id: &str) -> Arc<Event> {
        let raw =
            format!(r#"{{"type":"identify","messageId":"{id}","writeKey":"k","userId":"u"}}"#);
        Arc::new(Event::parse(Bytes::from(raw), 1 << 20).unwrap())
    }

    #[test]
    fn array_holds_the_original_events() {
        let batch = [event("a"), event("b")];
        let v: serde_json::Value = serde_json::from_slice(&body(&batch, false)).unwrap();
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
        assert_eq!(body(&batch, true), batch[0].raw().to_vec());
    }
}
