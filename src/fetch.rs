//! Reading one partition's fetched messages in batches, through librdkafka's batch API.
//!
//! `PartitionQueue::poll` hands out one message per call, and every call reads the clock
//! several times (the crate's deadline, librdkafka's poll-interval bookkeeping) and takes the
//! queue's lock: on a backlog that was a tenth of the routing CPU. A [`BatchReader`] holds its
//! own reference to the same partition queue (`rd_kafka_queue_get_partition`, which the split
//! queue also uses) and takes up to a batch of messages in one `rd_kafka_consume_batch_queue`
//! call without waiting. The queue's non-empty callback, set on the split queue, still wakes
//! the partition task.
//!
//! Invariants: every message taken is destroyed before [`BatchReader::read`] returns (the
//! caller copies what it keeps); the reader holds the consumer, so its queue reference is
//! released before the consumer can be destroyed.
//!
//! The workspace denies unsafe code; this module is the one exception (FFI to librdkafka's batch
//! API, which the rdkafka crate does not wrap for partition queues).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::consumer::CourierConsumer;

/// One message as librdkafka holds it, valid during the callback of [`BatchReader::read`].
#[derive(Debug)]
pub(crate) struct RawMessage<'a> {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp in milliseconds (0 when the broker has none).
    pub timestamp_ms: i64,
    /// Its payload (empty when it has none).
    pub payload: &'a [u8],
    /// Its key, if any.
    pub key: Option<&'a [u8]>,
}

/// A batch reader of one partition's queue.
pub(crate) struct BatchReader {
    queue: NonNull<rd::rd_kafka_queue_t>,
    taken: Vec<*mut rd::rd_kafka_message_t>,
    /// Keeps the client alive while the queue reference is held.
    _consumer: Arc<CourierConsumer>,
}

// SAFETY: librdkafka's queues and messages may be used from any thread; the raw pointers are
// only touched through `&mut self`, so a shared reference can do nothing with them.
unsafe impl Send for BatchReader {}
// SAFETY: as above.
unsafe impl Sync for BatchReader {}

impl BatchReader {
    /// A reader of `topic`/`partition` on `consumer`, which must have it assigned; `None` if
    /// librdkafka has no queue for it.
    pub(crate) fn new(
        consumer: &Arc<CourierConsumer>,
        topic: &str,
        partition: i32,
    ) -> Option<BatchReader> {
        use rdkafka::consumer::Consumer;
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `consumer` lives; the returned reference is
        // ours to destroy.
        let queue = unsafe {
            rd::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        };
        Some(BatchReader {
            queue: NonNull::new(queue)?,
            taken: Vec::new(),
            _consumer: consumer.clone(),
        })
    }

    /// Takes up to `max` messages that are already fetched, without waiting: passes the consume
    /// errors among them to `error`, then the messages, in offset order, to `messages` at once
    /// (so the caller can size one copy for all of them). Returns what `messages` returns.
    pub(crate) fn read<R>(
        &mut self,
        max: usize,
        mut error: impl FnMut(KafkaError),
        messages: impl FnOnce(&[RawMessage<'_>]) -> R,
    ) -> R {
        self.taken.clear();
        self.taken.reserve(max);
        // SAFETY: the buffer has room for `max` pointers; librdkafka fills the first `n`.
        unsafe {
            let n = rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                self.taken.as_mut_ptr(),
                max,
            );
            let n = usize::try_from(n).unwrap_or(0).min(max);
            self.taken.set_len(n);
        }
        let mut good = Vec::with_capacity(self.taken.len());
        for &message in &self.taken {
            // SAFETY: librdkafka returned a valid message, destroyed only below, after the
            // last use of the slices borrowed from it.
            unsafe {
                let m = &*message;
                if m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    error(KafkaError::MessageConsumption(RDKafkaErrorCode::from(
                        m.err,
                    )));
                } else {
                    let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                    let timestamp = rd::rd_kafka_message_timestamp(message, &mut kind);
                    good.push(RawMessage {
                        offset: m.offset,
                        timestamp_ms: timestamp.max(0),
                        payload: bytes_at(m.payload, m.len).unwrap_or_default(),
                        key: bytes_at(m.key, m.key_len),
                    });
                }
            }
        }
        let result = messages(&good);
        drop(good);
        for &message in &self.taken {
            // SAFETY: taken above and not used since; destroyed once.
            unsafe { rd::rd_kafka_message_destroy(message) };
        }
        self.taken.clear();
        result
    }
}

/// The bytes at `ptr`, or `None` for a null pointer.
///
/// # Safety
/// `ptr` must be null or point to `len` readable bytes that outlive the returned slice.
unsafe fn bytes_at<'a>(ptr: *const std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: as the caller promised.
        Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
    }
}

impl Drop for BatchReader {
    fn drop(&mut self) {
        // SAFETY: our own reference, released once; the consumer is still alive (we hold it).
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}
