//! The validated Segment event.
//!
//! An [`Event`] keeps the message's original JSON bytes untouched (connectors that forward
//! events send exactly what the source sent, with no re-serialisation) plus the few fields
//! that routing and filtering need, extracted in one borrowing pass over the JSON (the
//! validating scan of `scan.rs`, which also checks the whole text is one JSON object).
//!
//! Invariants of a constructed [`Event`]: the bytes are valid UTF-8 and one JSON object; `type`
//! is one of the six Segment types; `messageId` and `writeKey` are non-empty strings; there is
//! a `userId` or an `anonymousId`; a `track` has a non-empty `event` name.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::Deserialize;

use crate::origin::Origin;
use crate::scan::{self, Wanted};

/// The six Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// `analytics.track`: a user did something.
    Track,
    /// `analytics.identify`: who the user is, with traits.
    Identify,
    /// `analytics.page`: a web page view.
    Page,
    /// `analytics.screen`: a mobile screen view.
    Screen,
    /// `analytics.group`: the user belongs to a group or account.
    Group,
    /// `analytics.alias`: merges two user identities.
    Alias,
}

impl EventType {
    /// Every type, in the order Segment documents them.
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    /// The lowercase name used in events and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("unknown event type {s:?} (expected one of track, identify, page, screen, group, alias)")
            })
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why bytes are not a valid Segment event. Never retryable: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than the configured limit.
    #[error("payload is {size} bytes, over the {limit} byte limit")]
    TooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The message has no payload at all.
    #[error("message has no payload")]
    Empty,
    /// The payload is not UTF-8.
    #[error("payload is not valid utf-8 (first invalid byte at {at})")]
    InvalidUtf8 {
        /// Byte index of the first invalid sequence.
        at: usize,
    },
    /// The payload is not JSON, or its fields have the wrong JSON types.
    #[error("payload is not a valid segment event: {0}")]
    Json(String),
    /// The payload is JSON but its top level is not an object.
    #[error("payload is json but not an object (top level is {0})")]
    NotAnObject(&'static str),
    /// A required field is missing or empty.
    #[error("event has no {0}")]
    Missing(&'static str),
    /// `type` is not a Segment type.
    #[error("event type {0:?} is not one of track, identify, page, screen, group, alias")]
    UnknownType(String),
}

/// A payload [`Event::parse_at`] refused: its bytes and origin, kept for a dead letter.
#[derive(Debug)]
pub struct Rejected {
    /// The payload, exactly as it arrived.
    pub raw: Bytes,
    /// Where it was read from.
    pub origin: Origin,
    /// Why it is not a Segment event.
    pub reason: DecodeError,
}

/// A validated Segment event: the original bytes, the fields routing needs and where it was
/// read from.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    raw: Bytes,
    event_type: EventType,
    message_id: Field,
    write_key: Field,
    name: Option<Field>,
    line_break: bool,
    origin: Origin,
}

/// A string field of the event: where it sits in the raw bytes (no allocation, the common
/// case), or its unescaped text when the JSON string had escapes.
#[derive(Clone, PartialEq, Eq)]
enum Field {
    Span { start: u32, end: u32 },
    Owned(Box<str>),
}

impl Field {
    /// `value` as read from `text`: a span when it borrows from it.
    fn of(value: Cow<'_, str>, text: &str) -> Field {
        if let Cow::Borrowed(s) = &value {
            let start = (s.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
            let end = start.wrapping_add(s.len());
            if end <= text.len() {
                if let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) {
                    return Field::Span { start, end };
                }
            }
        }
        Field::Owned(value.into())
    }

    /// The field's bytes: UTF-8, as [`Field::get`] would check them again.
    fn bytes<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self {
            Field::Span { start, end } => &raw[*start as usize..*end as usize],
            Field::Owned(s) => s.as_bytes(),
        }
    }

    fn get<'a>(&'a self, raw: &'a [u8]) -> &'a str {
        match self {
            // The span was cut from the validated UTF-8 text at string boundaries.
            Field::Span { .. } => std::str::from_utf8(self.bytes(raw)).unwrap_or_default(),
            Field::Owned(s) => s,
        }
    }
}

/// The fields of a validated event, before it takes its bytes.
struct Fields {
    event_type: EventType,
    message_id: Field,
    write_key: Field,
    name: Option<Field>,
    line_break: bool,
}

impl Fields {
    fn into_event(self, raw: Bytes, origin: Origin) -> Event {
        Event {
            raw,
            origin,
            event_type: self.event_type,
            message_id: self.message_id,
            write_key: self.write_key,
            name: self.name,
            line_break: self.line_break,
        }
    }
}

/// `v` unless it is blank (empty or only whitespace, as `str::trim` sees it).
fn non_empty(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    // A value that starts with a printable ASCII byte has something left after any trim: the
    // common case, decided without walking the text's characters (`trim` was ~4% of
    // `Event::parse`'s instructions).
    v.filter(|s| matches!(s.as_bytes().first(), Some(b'!'..=b'~')) || !s.trim().is_empty())
}

impl Event {
    /// Validates `raw` as one Segment event of at most `max_bytes` bytes, read from no log
    /// (its origin is [`Origin::detached`]).
    pub fn parse(raw: Bytes, max_bytes: usize) -> Result<Event, DecodeError> {
        let fields = Event::validate(&raw, max_bytes)?;
        Ok(fields.into_event(raw, Origin::detached()))
    }

    /// As [`Event::parse`], for an event read at `origin`; a rejected payload comes back with
    /// its origin and the reason (to be kept in a dead letter without a copy).
    pub fn parse_at(raw: Bytes, max_bytes: usize, origin: Origin) -> Result<Event, Box<Rejected>> {
        match Event::validate(&raw, max_bytes) {
            Ok(fields) => Ok(fields.into_event(raw, origin)),
            Err(reason) => Err(Box::new(Rejected {
                raw,
                origin,
                reason,
            })),
        }
    }

    fn validate(raw: &Bytes, max_bytes: usize) -> Result<Fields, DecodeError> {
        if raw.is_empty() {
            return Err(DecodeError::Empty);
        }
        if raw.len() > max_bytes {
            return Err(DecodeError::TooLarge {
                size: raw.len(),
                limit: max_bytes,
            });
        }
        let text = simdutf8::compat::from_utf8(raw).map_err(|e| DecodeError::InvalidUtf8 {
            at: e.valid_up_to(),
        })?;
        match text.trim_start().as_bytes().first() {
            Some(b'{') => {}
            Some(b'[') => return Err(DecodeError::NotAnObject("an array")),
            Some(b'"') => return Err(DecodeError::NotAnObject("a string")),
            Some(b'0'..=b'9' | b'-') => return Err(DecodeError::NotAnObject("a number")),
            Some(b't' | b'f' | b'n') if serde_json::from_str::<serde_json::Value>(text).is_ok() => {
                return Err(DecodeError::NotAnObject("a literal"))
            }
            _ => {}
        }
        let mut head = scan::head(text).map_err(|e| DecodeError::Json(e.to_string()))?;
        let type_name = non_empty(head.take(Wanted::Type)).ok_or(DecodeError::Missing("type"))?;
        let event_type: EventType = type_name
            .parse()
            .map_err(|_| DecodeError::UnknownType(type_name.to_string()))?;
        let message_id =
            non_empty(head.take(Wanted::MessageId)).ok_or(DecodeError::Missing("messageId"))?;
        let write_key =
            non_empty(head.take(Wanted::WriteKey)).ok_or(DecodeError::Missing("writeKey"))?;
        if non_empty(head.take(Wanted::UserId)).is_none()
            && non_empty(head.take(Wanted::AnonymousId)).is_none()
        {
            return Err(DecodeError::Missing("userId or anonymousId"));
        }
        let name = match event_type {
            EventType::Track => {
                let name = non_empty(head.take(Wanted::Event));
                Some(name.ok_or(DecodeError::Missing("event name (track)"))?)
            }
            EventType::Page | EventType::Screen => non_empty(head.take(Wanted::Name)),
            _ => None,
        };
        Ok(Fields {
            event_type,
            message_id: Field::of(message_id, text),
            write_key: Field::of(write_key, text),
            name: name.map(|name| Field::of(name, text)),
            line_break: head.has_line_break(),
        })
    }

    /// The original JSON bytes, exactly as they arrived.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Where the event was read from ([`Origin::detached`] when it was parsed alone).
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether the raw bytes hold a line feed or carriage return (JSON allows them only as
    /// whitespace between tokens): an event without one is one NDJSON line as it is.
    pub fn has_line_break(&self) -> bool {
        self.line_break
    }

    /// The Segment call type.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The event's `messageId`, unique per event and stable across redeliveries.
    pub fn message_id(&self) -> &str {
        self.message_id.get(&self.raw)
    }

    /// The source's write key, which selects the customer.
    pub fn write_key(&self) -> &str {
        self.write_key.get(&self.raw)
    }

    /// The write key's UTF-8 bytes, not checked again as [`Event::write_key`] checks them:
    /// routing looks every event's customer up by them.
    pub fn write_key_bytes(&self) -> &[u8] {
        self.write_key.bytes(&self.raw)
    }

    /// The event name: `event` for a track, `name` for a page or screen, else none.
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(|name| name.get(&self.raw))
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload can hold personal data and the write key is a credential: neither is
        // printed.
        f.debug_struct("Event")
            .field("type", &self.event_type)
            .field("message_id", &self.message_id())
            .field("name", &self.name())
            .field("bytes", &self.raw.len())
            .field("topic", &self.origin.topic)
            .field("partition", &self.origin.partition)
            .field("offset", &self.origin.offset)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::MessageKey;

    fn parse(s: &[u8]) -> Result<Event, DecodeError> {
        Event::parse(Bytes::copy_from_slice(s), 1024)
    }

    #[test]
    fn accepts_a_track_and_keeps_the_bytes() {
        let raw = br#"{"type":"track","event":"Bid on item","messageId":"m1","writeKey":"wk","userId":"u1","properties":{"price":3}}"#;
        let e = parse(raw).unwrap();
        assert_eq!(e.event_type(), EventType::Track);
        assert_eq!(e.name(), Some("Bid on item"));
        assert_eq!(e.message_id(), "m1");
        assert_eq!(e.write_key(), "wk");
        assert_eq!(&e.raw()[..], &raw[..]);
    }

    #[test]
    fn escaped_fields_read_unescaped() {
        let raw = br#"{"type":"page","name":"Caf\u00e9","messageId":"m\"1","writeKey":"wk","anonymousId":"a"}"#;
        let e = parse(raw).unwrap();
        assert_eq!(e.name(), Some("Caf\u{e9}"));
        assert_eq!(e.message_id(), "m\"1");
        assert_eq!(e.write_key(), "wk");
        assert!(matches!(e.message_id, Field::Owned(_)));
        assert_eq!(e.origin(), &Origin::detached());
        let at = Origin {
            topic: "events".into(),
            partition: 3,
            offset: 41,
            timestamp_ms: 7,
            key: Some(MessageKey::from(&b"u1"[..])),
        };
        let kept = Event::parse_at(Bytes::copy_from_slice(raw), 1024, at.clone()).unwrap();
        assert_eq!(kept.origin(), &at, "an event keeps where it was read");
        let rejected = Event::parse_at(Bytes::from_static(b"{}"), 10, at.clone()).unwrap_err();
        assert_eq!(&rejected.raw[..], b"{}", "a rejected payload comes back");
        assert_eq!(rejected.origin, at, "with its origin");
        assert_eq!(rejected.reason, DecodeError::Missing("type"));
    }

    #[test]
    fn unescaped_fields_are_spans_of_the_bytes() {
        let raw =
            br#"{"type":"track","event":"Bid","messageId":"m1","writeKey":"wk","userId":"u1"}"#;
        let e = parse(raw).unwrap();
        for field in [&e.message_id, &e.write_key, e.name.as_ref().unwrap()] {
            assert!(matches!(field, Field::Span { .. }), "a field was copied");
        }
    }

    #[test]
    fn fields_of_the_wrong_type_or_null_ids() {
        let number_id =
            br#"{"type":"track","event":"Bid","messageId":7,"writeKey":"wk","userId":"u"}"#;
        assert!(
            matches!(parse(number_id), Err(DecodeError::Json(m)) if m.contains("expected a string"))
        );
        let object_user = br#"{"type":"page","messageId":"m","writeKey":"k","userId":{"a":1}}"#;
        assert!(matches!(parse(object_user), Err(DecodeError::Json(_))));
        let null_user =
            br#"{"type":"page","messageId":"m","writeKey":"k","userId":null,"anonymousId":1.5}"#;
        assert!(
            parse(null_user).is_ok(),
            "a null id is absent, a number is an id"
        );
        let null_type = br#"{"type":null,"messageId":"m","writeKey":"k","userId":"u"}"#;
        assert_eq!(parse(null_type).unwrap_err(), DecodeError::Missing("type"));
    }

    #[test]
    fn rejects_bad_input_with_its_reason() {
        let cases: [(&[u8], DecodeError); 9] = [
            (b"", DecodeError::Empty),
            (b"not json", DecodeError::Json(String::new())),
            (b"[1,2]", DecodeError::NotAnObject("an array")),
            (b"\xff\xfe", DecodeError::InvalidUtf8 { at: 0 }),
            (
                br#"{"messageId":"m","writeKey":"k","userId":"u"}"#,
                DecodeError::Missing("type"),
            ),
            (
                br#"{"type":"click","messageId":"m","writeKey":"k","userId":"u"}"#,
                DecodeError::UnknownType("click".into()),
            ),
            (
                br#"{"type":"identify","writeKey":"k","userId":"u"}"#,
                DecodeError::Missing("messageId"),
            ),
            (
                br#"{"type":"identify","messageId":"m","userId":"u"}"#,
                DecodeError::Missing("writeKey"),
            ),
            (
                br#"{"type":"track","messageId":"m","writeKey":"k","userId":"u"}"#,
                DecodeError::Missing("event name (track)"),
            ),
        ];
        for (raw, want) in cases {
            let got = parse(raw).unwrap_err();
            match (&got, &want) {
                (DecodeError::Json(_), DecodeError::Json(_)) => {}
                _ => assert_eq!(got, want, "for {:?}", String::from_utf8_lossy(raw)),
            }
        }
    }

    #[test]
    fn enforces_the_size_limit_and_an_identity() {
        let big = format!(
            r#"{{"type":"identify","messageId":"m","writeKey":"k","userId":"u","traits":{{"x":"{}"}}}}"#,
            "a".repeat(2000)
        );
        assert!(matches!(
            parse(big.as_bytes()),
            Err(DecodeError::TooLarge { limit: 1024, .. })
        ));
        let anonymous = br#"{"type":"page","messageId":"m","writeKey":"k","anonymousId":42}"#;
        assert!(parse(anonymous).is_ok());
        let nobody = br#"{"type":"page","messageId":"m","writeKey":"k","userId":""}"#;
        assert_eq!(
            parse(nobody).unwrap_err(),
            DecodeError::Missing("userId or anonymousId")
        );
    }
}
