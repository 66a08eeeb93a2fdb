//! Where an event was read from: its position in one partition of a source log.
//!
//! The runtime gives every event it consumes its [`Origin`] when it validates it, so the event
//! and its position share one allocation (one `Arc<Event>` per consumed message); dead letters,
//! retries and by-source batches read the position back from the event. An event validated
//! alone (tests, a connector's own parsing) has the [`Origin::detached`] position.
//!
//! Invariant: an event's origin is set once, when the event is validated
//! ([`Event::parse_at`](crate::Event::parse_at)), and never changes: an event has no setter.

use bytes::Bytes;
use smol_str::SmolStr;

/// Where a consumed event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The source log (topic). Inline when short (up to 23 bytes, as topic names usually
    /// are): copying an origin then touches no shared reference count, which every
    /// partition's messages would otherwise contend for.
    pub topic: SmolStr,
    /// The source partition.
    pub partition: i32,
    /// The message's position (offset) in the partition.
    pub offset: i64,
    /// The message's timestamp (milliseconds since the epoch; 0 when the log has none).
    pub timestamp_ms: i64,
    /// The message's key (normally the user id).
    pub key: Option<Bytes>,
}

impl Origin {
    /// The origin of an event that was not read from a log: empty topic, partition and offset
    /// -1, no timestamp and no key.
    pub fn detached() -> Origin {
        Origin {
            topic: SmolStr::default(),
            partition: -1,
            offset: -1,
            timestamp_ms: 0,
            key: None,
        }
    }
}
