//! `segment`: forwards events unchanged to a Segment-compatible collector (`POST /v1/batch`).
//!
//! The body is `{"batch": [...]}` with each event's original bytes; authentication is HTTP
//! basic with the write key as the user. Segment's limits are 500 KB per batch and 32 KB per
//! event: the runtime keeps batches under 480 KB, and an event over 32 KB is dead-lettered
//! without being sent. 429 and 5xx are retried; other 4xx dead-letter the batch.

mod config;
mod service;

pub use config::SegmentSettings;
pub use service::{SegmentConnector, MAX_EVENT_BYTES};
