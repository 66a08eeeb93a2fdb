//! Consumed messages copied out of librdkafka's buffers, a chunk at a time, each chunk holding
//! one share of the consumer's [`Budget`](crate::budget::Budget).
//!
//! A partition task copies the messages it takes from librdkafka in one call into [`Chunk`]s of
//! up to [`CHUNK_MESSAGES`] consecutive messages: one allocation per chunk (each message's
//! payload, then its key) and, once it has the budget's share for those bytes, one [`Held`]
//! chunk that hands out its messages in offset order. Every message's payload and key are
//! slices of the held chunk, which owns the share: the share comes back when the last slice of
//! the chunk's last message is dropped (delivered, dead-lettered or abandoned), so the budget
//! counts the bytes that are really held.
//!
//! One allocation and one share per chunk instead of per message: the per-message allocation,
//! its owner and the budget's shared counter (taken on the partition's thread, given back on
//! the destination's) cost ~8% of the route-only benchmark's CPU ("Chunked copy-out" in
//! `bench/RESULTS.md`). The price is granularity: a chunk's bytes are given back together, when its slowest message is
//! done, which is why chunks are small.
//!
//! Invariants: a chunk's share is exactly its bytes (at least one byte; see
//! [`Budget::try_take`](crate::budget::Budget::try_take)); its messages are consecutive
//! messages of one partition, handed out in offset order, each exactly once.

use std::ops::Range;

use bytes::Bytes;
use courier_connectors::MessageKey;
use rdkafka::message::OwnedHeaders;

use crate::budget::Share;
use crate::fetch::RawMessage;

/// Messages per chunk, at most: small enough that a chunk's bytes are not held long for one
/// slow message, large enough that its allocation and share cost little per message.
pub(crate) const CHUNK_MESSAGES: usize = 16;

/// Where one message of a chunk lies in the chunk's bytes.
#[derive(Debug)]
struct Slot {
    offset: i64,
    timestamp_ms: i64,
    payload: Range<usize>,
    /// The key follows the payload; `None` when the message has none.
    key_len: Option<usize>,
    /// Only kept in the retry flow, where they carry the retry state.
    headers: Option<OwnedHeaders>,
}

/// Messages copied out of librdkafka, waiting for their share of the budget.
#[derive(Debug)]
pub(crate) struct Chunk {
    data: Vec<u8>,
    slots: Vec<Slot>,
}

impl Chunk {
    /// Copies `messages` into chunks of up to `per_chunk` messages, appended to `out`.
    pub(crate) fn copy_out(
        messages: &[RawMessage<'_>],
        per_chunk: usize,
        out: &mut impl Extend<Chunk>,
    ) {
        out.extend(
            messages
                .chunks(per_chunk.max(1))
                .map(|part| Chunk::of(part, None)),
        );
    }

    /// One message alone, with its headers (the retry flow).
    pub(crate) fn single(m: &RawMessage<'_>, headers: Option<OwnedHeaders>) -> Chunk {
        Chunk::of(std::slice::from_ref(m), headers)
    }

    fn of(messages: &[RawMessage<'_>], mut headers: Option<OwnedHeaders>) -> Chunk {
        let len = messages
            .iter()
            .map(|m| m.payload.len() + m.key.map_or(0, <[u8]>::len))
            .sum();
        let mut data = Vec::with_capacity(len);
        let slots = messages
            .iter()
            .map(|m| {
                let start = data.len();
                data.extend_from_slice(m.payload);
                let payload = start..data.len();
                if let Some(key) = m.key {
                    data.extend_from_slice(key);
                }
                Slot {
                    offset: m.offset,
                    timestamp_ms: m.timestamp_ms,
                    payload,
                    key_len: m.key.map(<[u8]>::len),
                    headers: headers.take(),
                }
            })
            .collect();
        Chunk { data, slots }
    }

    /// The bytes its share must cover: every payload and key.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The chunk holding `share` for as long as any message of it lives.
    pub(crate) fn hold(self, share: Share) -> Held {
        Held {
            bytes: Bytes::from_owner(Owner {
                data: self.data,
                _share: share,
            }),
            slots: self.slots.into_iter(),
        }
    }
}

/// A chunk's bytes with its budget share.
struct Owner {
    data: Vec<u8>,
    _share: Share,
}

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// A chunk with its share, handing out its messages in offset order.
pub(crate) struct Held {
    bytes: Bytes,
    slots: std::vec::IntoIter<Slot>,
}

impl Held {
    /// Whether every message was handed out.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }
}

impl Iterator for Held {
    type Item = Inbound;

    fn next(&mut self) -> Option<Inbound> {
        let slot = self.slots.next()?;
        let end = slot.payload.end;
        Some(Inbound {
            offset: slot.offset,
            timestamp_ms: slot.timestamp_ms,
            key: slot
                .key_len
                .map(|len| MessageKey::slice_of(&self.bytes, end..end + len)),
            payload: self.bytes.slice(slot.payload),
            headers: slot.headers,
        })
    }
}

/// A message with its share of the budget (through its chunk), ready to route.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// Its offset.
    pub(crate) offset: i64,
    /// Its timestamp in milliseconds.
    pub(crate) timestamp_ms: i64,
    /// Its payload.
    pub(crate) payload: Bytes,
    /// Its key, if any.
    pub(crate) key: Option<MessageKey>,
    /// Only kept in the retry flow, where they carry the retry state.
    pub(crate) headers: Option<OwnedHeaders>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;

    fn raw<'a>(offset: i64, payload: &'a [u8], key: Option<&'a [u8]>) -> RawMessage<'a> {
        RawMessage {
            offset,
            timestamp_ms: 1000 + offset,
            payload,
            key,
        }
    }

    #[test]
    fn chunks_hand_out_every_message_in_order_and_give_the_share_back_with_the_last() {
        let payloads: Vec<Vec<u8>> = (0..40).map(|i| vec![b'a' + (i % 26) as u8; i]).collect();
        let messages: Vec<RawMessage<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| raw(i as i64, p, (i % 3 == 0).then_some(b"key".as_slice())))
            .collect();
        let mut chunks = Vec::new();
        Chunk::copy_out(&messages, CHUNK_MESSAGES, &mut chunks);
        assert_eq!(
            chunks.iter().map(|c| c.slots.len()).collect::<Vec<_>>(),
            [16, 16, 8]
        );

        let budget = Budget::new(1 << 20);
        let mut inbound = Vec::new();
        for chunk in chunks {
            let bytes = chunk.bytes();
            let share = budget.try_take(bytes).expect("room");
            inbound.extend(chunk.hold(share));
        }
        let taken: usize = payloads.iter().map(Vec::len).sum::<usize>() + 14 * 3;
        assert_eq!(budget.available_bytes(), (1 << 20) - taken);
        for (i, m) in inbound.iter().enumerate() {
            assert_eq!(m.offset, i as i64);
            assert_eq!(m.timestamp_ms, 1000 + i as i64);
            assert_eq!(&m.payload[..], &payloads[i][..]);
            assert_eq!(m.key.as_deref(), (i % 3 == 0).then_some(b"key".as_slice()));
        }

        // The last chunk's share comes back only when its last message is dropped.
        let last = inbound.split_off(39);
        drop(inbound.split_off(32));
        assert_eq!(
            budget.available_bytes(),
            (1 << 20) - taken,
            "message 39 still holds its chunk"
        );
        drop(last);
        let first_two: usize = payloads[..32].iter().map(Vec::len).sum::<usize>() + 11 * 3;
        assert_eq!(budget.available_bytes(), (1 << 20) - first_two);
        drop(inbound);
        assert_eq!(budget.available_bytes(), 1 << 20);
    }

    #[test]
    fn a_single_message_keeps_its_headers() {
        use rdkafka::message::{Header, Headers};
        let headers = OwnedHeaders::new().insert(Header {
            key: "attempt",
            value: Some("2"),
        });
        let chunk = Chunk::single(&raw(7, b"{}", None), Some(headers));
        let held = chunk.hold(Budget::new(10).try_take(2).expect("room"));
        let messages: Vec<Inbound> = held.collect();
        assert_eq!(messages.len(), 1);
        let got = messages[0].headers.as_ref().expect("headers kept");
        assert_eq!(got.get(0).key, "attempt");
        assert_eq!(messages[0].key, None);
    }
}
