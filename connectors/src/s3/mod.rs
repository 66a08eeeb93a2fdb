//! `s3`: the raw archive. Each batch becomes one gzip NDJSON object — the events as sent, one
//! per line — in the customer's bucket, acknowledged once S3 confirmed the write.
//!
//! Keys are deterministic: `prefix/YYYY-MM-DD/HH/topic-partition-first-last.ndjson.gz`, the
//! date and hour (UTC) of the first event's log timestamp and the batch's [`SourceRange`]
//! (positions zero-padded to 20 digits). The runtime hands this connector batches of one
//! partition in order, one at a time, so after a crash the redelivered range starts where the
//! unfinished batch started: its object is written under the same key, or — when the new batch
//! was cut at a different size or age — under a key with the same first position, and the
//! older sibling is then deleted. Either way each offset range is held once.
//!
//! Files roll with the destination's batch limits (`delivery.batch_max_events`,
//! `batch_max_bytes`, `batch_max_age_ms`); objects over 16 MiB are uploaded in 8 MiB parts.
//! Events redelivered from the retry topic (a subset of a range) get their own
//! `...-retry-<hash>` objects so they never replace a complete range.
//!
//! Limit: a redelivery can start inside an archived range only when another destination of the
//! same events held the committed offset further back at the moment of a crash; that range's
//! events are then archived twice (in the old object and in the new one), never lost.
//!
//! [`SourceRange`]: crate::SourceRange

mod archive;
mod bucket;

pub use archive::S3Archive;
pub use bucket::{Bucket, S3Location, MULTIPART_THRESHOLD, PART_SIZE};
