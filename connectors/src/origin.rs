//! Where an event was read from: its position in one partition of a source log.
//!
//! The runtime gives every event it consumes its [`Origin`] when it validates it, so the event
//! and its position share one allocation (one `Arc<Event>` per consumed message); dead letters,
//! retries and by-source batches read the position back from the event. An event validated
//! alone (tests, a connector's own parsing) has the [`Origin::detached`] position.
//!
//! Invariant: an origin is fixed once the event holds it; the runtime never moves an event to
//! another position.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;

/// Where a consumed event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The source log (topic).
    pub topic: Arc<str>,
    /// The source partition.
    pub partition: i32,
    /// The message's position (offset) in the partition.
    pub offset: i64,
    /// The message's timestamp (milliseconds since the epoch; 0 when the log has none).
    pub timestamp_ms: i64,
    /// The message's key (normally the user id).
    pub key: Option<Bytes>,
}

/// The empty topic every detached origin shares (one allocation for the process).
static NO_TOPIC: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

impl Origin {
    /// The origin of an event that was not read from a log: empty topic, partition and offset
    /// -1, no timestamp and no key.
    pub fn detached() -> Origin {
        Origin {
            topic: NO_TOPIC.clone(),
            partition: -1,
            offset: -1,
            timestamp_ms: 0,
            key: None,
        }
    }
}
