//! `s3`: the raw archive. Each batch becomes one gzip NDJSON object — the events as sent, one
//! per line — in the customer's bucket, acknowledged once S3 confirmed the write.
//!
//! Keys are deterministic: `prefix/YYYY-MM-DD/HH/topic-partition-first-last.ndjson.gz`, the
//! date and hour (UTC) of the first event's log timestamp and the batch's [`SourceRange`]
//! (positions zero-padded to 20 digits). The runtime hands this connector batches of one
//! partition in order, one at a time, so after a crash the redelivered range starts where the
//! unfinished batch started, and batches cut by count or size cut the same ranges again: the
//! object is overwritten under the same key. When a redelivered batch is cut longer (an earlier
//! cut was made by age), the complete objects of that partition and hour it covers are deleted
//! after it is written. The listing for covered objects runs for a partition's first batch in
//! this process and for any batch starting at or before the last position this process
//! archived (a redelivery); a batch continuing past it is one request. First batches share
//! one listing of their directory (one listing at a time per destination, reused for two
//! seconds); a redelivery, or a first batch in a directory that held more than a page of keys,
//! lists only its partition's objects.
//!
//! Bodies are gzip at the fastest level, on a deflate state reused per thread; every request
//! attempt has a timeout (a server that never answers fails the attempt as retryable).
//!
//! Files roll with the destination's batch limits (`delivery.batch_max_events`,
//! `batch_max_bytes`, `batch_max_age_ms`); objects over 16 MiB are uploaded in 8 MiB parts.
//! Events redelivered from the retry topic (a subset of a range) get their own
//! `...-retry-<hash>` objects so they never replace a complete range.
//!
//! A redelivery may also start inside an archived range: offsets are committed per polled run
//! of messages, not per batch, and another destination of the same events may hold the
//! committed offset further back. The listing shows the object that reaches into the batch;
//! when the batch's positions are consecutive (one event per position: no filter skipped any,
//! no compaction), its head is that object's tail, so only the rest is written, as
//! `first-after-the-object`..`last` in the same directory, and a batch wholly inside an
//! object is not written again.
//!
//! Limits, where events are archived twice but never lost: such an overlap when the batch's
//! positions have gaps; an object another worker wrote past this process's last position while
//! it owned the partition in between, when this process then archives a longer range over it;
//! an object written by the partition's previous owner after the listing a first batch reused
//! (see `LISTING_REUSE`).
//!
//! With `objects = "per_batch"` ([`ObjectLayout::PerBatch`]) none of the above about ranges
//! applies: batches mix partitions (the runtime's `Sourced` batching, as for the warehouses)
//! and each is one object, `prefix/YYYY-MM-DD/HH/topic-batch-<hash>.ndjson.gz`, in the hour of
//! its earliest event, named by a hash of its source ranges so that the same batch sent again
//! overwrites its object. A batch cut differently after a crash, a rebalance or a replay is a
//! new object beside the first: at-least-once, duplicates but never loss. A customer whose
//! events spread over a topic of many partitions gets one object per batch instead of one per
//! partition it touched: in the benchmark's W2 (100 customers, 128 partitions) 48× fewer
//! objects and 7× less CPU per event (see `bench/RESULTS.md`).
//!
//! [`SourceRange`]: crate::SourceRange

mod archive;
mod bucket;

pub use archive::{ArchiveSettings, ObjectLayout, S3Archive};
pub use bucket::{Bucket, S3Location, MULTIPART_THRESHOLD, PART_SIZE};
