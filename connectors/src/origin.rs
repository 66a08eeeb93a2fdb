//! Where an event was read from: its position in one partition of a source log.
//!
//! The runtime gives every event it consumes its [`Origin`] when it validates it, so the event
//! and its position share one allocation (one `Arc<Event>` per consumed message); dead letters,
//! retries and by-source batches read the position back from the event. An event validated
//! alone (tests, a connector's own parsing) has the [`Origin::detached`] position.
//!
//! Invariant: an event's origin is set once, when the event is validated
//! ([`Event::parse_at`](crate::Event::parse_at)), and never changes: an event has no setter.

use std::fmt;
use std::ops::{Deref, Range};

use bytes::Bytes;
use smol_str::SmolStr;

/// Keys up to this many bytes are copied into the [`MessageKey`] itself.
const INLINE_KEY: usize = 23;

/// A message's key: its bytes copied inline when they are few (user ids usually are), else a
/// slice of shared bytes.
///
/// Inline, a key costs no reference count: a key sliced from the buffer its message was copied
/// into raised that buffer's shared count once per message on the consuming thread and lowered
/// it again on the delivering one, beside the payload's own count.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageKey(KeyBytes);

#[derive(Clone, PartialEq, Eq)]
enum KeyBytes {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Shared(Bytes),
}

impl MessageKey {
    /// The key at `range` of `buffer`: copied when short, else a slice sharing `buffer`.
    pub fn slice_of(buffer: &Bytes, range: Range<usize>) -> MessageKey {
        MessageKey::inline(&buffer[range.clone()])
            .unwrap_or_else(|| MessageKey(KeyBytes::Shared(buffer.slice(range))))
    }

    fn inline(key: &[u8]) -> Option<MessageKey> {
        let len = u8::try_from(key.len())
            .ok()
            .filter(|&n| usize::from(n) <= INLINE_KEY)?;
        let mut bytes = [0; INLINE_KEY];
        bytes[..key.len()].copy_from_slice(key);
        Some(MessageKey(KeyBytes::Inline { len, bytes }))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            KeyBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBytes::Shared(bytes) => bytes,
        }
    }
}

impl Deref for MessageKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for MessageKey {
    fn from(key: &[u8]) -> MessageKey {
        MessageKey::inline(key)
            .unwrap_or_else(|| MessageKey(KeyBytes::Shared(Bytes::copy_from_slice(key))))
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `Bytes` prints itself: a byte string.
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_bytes()), f)
    }
}

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
    pub key: Option<MessageKey>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_the_same_bytes_inline_or_shared() {
        let buffer = Bytes::from((0..=255u8).collect::<Vec<u8>>());
        for len in [0, 1, INLINE_KEY - 1, INLINE_KEY, INLINE_KEY + 1, 200] {
            let key = MessageKey::slice_of(&buffer, 10..10 + len);
            assert_eq!(key.as_bytes(), &buffer[10..10 + len]);
            assert_eq!(matches!(key.0, KeyBytes::Inline { .. }), len <= INLINE_KEY);
            assert_eq!(MessageKey::from(&buffer[10..10 + len]), key);
            assert_eq!(
                format!("{key:?}"),
                format!("{:?}", buffer.slice(10..10 + len))
            );
        }
    }
}
