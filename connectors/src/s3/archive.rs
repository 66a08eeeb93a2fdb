//! The `s3` archive connector (see the module above).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smol_str::SmolStr;

use super::bucket::{Bucket, S3Location};
use crate::destination::{ApiLimits, Batching, BuildContext, Destination, SourceRange};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::gzip::gzip;
use crate::registry::{ConnectorKind, SettingDoc};

const SUFFIX: &str = ".ndjson.gz";

/// How long one listing of a directory serves the first batches of other partitions. At start
/// (or after a rebalance) every partition's first batch needs the objects already there; one
/// listing per directory instead of one per partition. Objects a partition's previous owner
/// wrote after the listing can only be missed if the partition changed hands within this
/// window, and then an earlier cut stays beside the new one (duplicates, never loss), as
/// with a write that outlives its owner's drain timeout.
const LISTING_REUSE: Duration = Duration::from_secs(2);

/// A directory whose listing held more keys than this (more than one page of
/// `ListObjectsV2`) is not listed whole again for an hour: a first batch there lists its own
/// partition's objects instead, one request. Listing a directory of tens of thousands of small
/// objects for every few first batches cost more than the writes.
const LARGE_DIRECTORY: usize = 1000;

/// How long a directory is remembered as large (its hour ends by then).
const LARGE_FOR: Duration = Duration::from_secs(3600);

/// A directory's keys as listed at a moment (none kept when it was large).
#[derive(Debug)]
struct Listing {
    at: Instant,
    keys: Arc<Vec<String>>,
    large: bool,
}

/// How an archive cuts its objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectLayout {
    /// One object per partition's offset range (`topic-partition-first-last`): a
    /// redelivered range replaces or skips what is there, so replays and crashes leave each
    /// event once (see the module doc for the limits).
    #[default]
    PerPartition,
    /// One object per batch of all partitions (`topic-batch-<hash of its ranges>`): fewer
    /// and larger objects when many customers share many partitions, but a batch redelivered
    /// after a crash or a replay is cut differently and archived again beside the first
    /// (at-least-once: duplicates, never loss).
    PerBatch,
}

/// The `s3` archive's settings: where objects go, and how they are cut.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ArchiveSettings {
    /// The bucket, prefix, endpoint and credentials.
    #[serde(flatten)]
    pub location: S3Location,
    /// How objects are cut (default `per_partition`).
    #[serde(default)]
    pub objects: ObjectLayout,
    /// Keys that neither of the above knows, refused at build: serde cannot combine
    /// `deny_unknown_fields` with `flatten`, so they are collected here instead.
    #[serde(flatten, skip_serializing)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// A built `s3` archive destination.
#[derive(Debug)]
pub struct S3Archive {
    bucket: Bucket,
    /// How objects are cut; `written`, `listings` and `list_lock` serve `PerPartition` only.
    objects: ObjectLayout,
    /// The last position this instance archived per source partition: a batch that starts
    /// after it continues this instance's own objects and cannot cover any of them, so the
    /// listing for covered objects is skipped.
    written: Mutex<HashMap<(SmolStr, i32), i64>>,
    /// Recent listings by directory, for first batches (see [`LISTING_REUSE`]), and the
    /// directories known to be large (see [`LARGE_DIRECTORY`]).
    listings: Mutex<HashMap<String, Listing>>,
    /// Held while a first batch looks for or takes a listing (see [`S3Archive::listing`]).
    list_lock: tokio::sync::Mutex<()>,
}

impl ConnectorKind for S3Archive {
    const KIND: &'static str = "s3";
    const DESCRIPTION: &'static str =
        "raw archive: gzip NDJSON objects per offset range in an S3-compatible bucket";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: None,
        // S3's single-object limit is far away; keep one object's gzip input in memory bounded.
        max_batch_bytes: Some(512 * 1024 * 1024),
        requests_per_second: None,
        events_per_second: None,
        max_concurrency: None,
        max_batch_age_ms: None,
    };
    type Settings = ArchiveSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        let mut doc = location_doc();
        doc.push(SettingDoc {
            name: "objects",
            type_name: "string",
            default: Some("\"per_partition\""),
            description: "per_partition (one object per partition range; replays replace it) or per_batch (one object per batch of all partitions; fewer objects, duplicates after a crash)",
        });
        doc
    }

    fn build(
        settings: ArchiveSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        if let Some(field) = settings.unknown.keys().next() {
            return Err(ctx.invalid(field, "unknown setting"));
        }
        settings.location.validate(ctx, "")?;
        Ok(Arc::new(S3Archive {
            bucket: Bucket::new(settings.location),
            objects: settings.objects,
            written: Default::default(),
            listings: Default::default(),
            list_lock: Default::default(),
        }))
    }
}

/// The documented settings of an [`S3Location`].
pub(crate) fn location_doc() -> Vec<SettingDoc> {
    vec![
        SettingDoc {
            name: "bucket",
            type_name: "string",
            default: None,
            description: "the bucket",
        },
        SettingDoc {
            name: "prefix",
            type_name: "string",
            default: Some("\"\""),
            description: "key prefix",
        },
        SettingDoc {
            name: "region",
            type_name: "string",
            default: Some("us-east-1"),
            description: "the bucket's region",
        },
        SettingDoc {
            name: "endpoint",
            type_name: "string",
            default: Some("AWS"),
            description: "S3-compatible endpoint URL",
        },
        SettingDoc {
            name: "path_style",
            type_name: "bool",
            default: Some("false"),
            description: "path-style addressing (most S3-compatible servers)",
        },
        SettingDoc {
            name: "access_key_id",
            type_name: "string",
            default: Some("AWS credential chain"),
            description: "static access key id",
        },
        SettingDoc {
            name: "secret_access_key",
            type_name: "string",
            default: Some("AWS credential chain"),
            description: "static secret access key (secret)",
        },
    ]
}

/// `YYYY-MM-DD/HH` (UTC) of a timestamp in milliseconds.
pub(crate) fn date_hour(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d/%H")
        .to_string()
}

/// A short stable hash of the batch's message ids.
pub(crate) fn ids_hash(batch: &[Arc<Event>]) -> String {
    let mut hash = Sha256::new();
    for event in batch {
        hash.update(event.message_id().as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// The events as gzip NDJSON: each event's original bytes on one line. A line break can only
/// sit between JSON tokens (inside strings it is escaped), so breaks become spaces.
pub(crate) fn ndjson_gz(batch: &[Arc<Event>]) -> Vec<u8> {
    let raw: usize = batch.iter().map(|e| e.raw().len() + 1).sum();
    gzip(raw / 4, |gz| {
        let mut line = Vec::new();
        for event in batch {
            let bytes = event.raw();
            // Known from the validating scan: searching every event here was ~3% of W2's CPU
            // (a byte-at-a-time search was a sixth).
            if event.has_line_break() {
                line.clear();
                line.extend(
                    bytes
                        .iter()
                        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
                );
                gz.write(&line);
            } else {
                gz.write(bytes);
            }
            gz.write(b"\n");
        }
    })
}

impl S3Archive {
    /// The object key of a batch.
    fn key(&self, batch: &[Arc<Event>], source: Option<&SourceRange>) -> String {
        let location = self.bucket.location();
        match source {
            Some(range) => {
                let dir = date_hour(range.timestamp_ms);
                let retry = if range.complete {
                    String::new()
                } else {
                    format!("-retry-{}", ids_hash(batch))
                };
                location.key(&format!("{dir}/{}{retry}{SUFFIX}", range.name()))
            }
            None => {
                let now = Utc::now().timestamp_millis();
                location.key(&format!(
                    "{}/batch-{}{SUFFIX}",
                    date_hour(now),
                    ids_hash(batch)
                ))
            }
        }
    }

    /// The object key of a `per_batch` object: the hour of its earliest source and a hash of
    /// its ranges (and, when any range is a retry's subset, of its events' ids), so the same
    /// batch sent again overwrites its object.
    fn batch_key(&self, batch: &[Arc<Event>], sources: &[SourceRange]) -> String {
        let Some(earliest) = sources.iter().map(|r| r.timestamp_ms).min() else {
            return self.key(batch, None);
        };
        let mut hash = Sha256::new();
        for range in sources {
            hash.update(range.name().as_bytes());
            hash.update([u8::from(range.complete)]);
        }
        if sources.iter().any(|r| !r.complete) {
            hash.update(ids_hash(batch).as_bytes());
        }
        let topic = &sources[0].topic;
        let name = hex::encode(&hash.finalize()[..8]);
        self.bucket.location().key(&format!(
            "{}/{topic}-batch-{name}{SUFFIX}",
            date_hour(earliest)
        ))
    }

    /// Writes `events` as one gzip NDJSON object at `key`.
    async fn write(&self, key: &str, events: &[Arc<Event>]) -> Result<(), DeliveryError> {
        self.bucket
            .put(key, ndjson_gz(events), "application/gzip")
            .await
    }

    /// The key prefix `dir/topic-partition-` of a range's complete and retry objects.
    fn partition_prefix(dir: &str, range: &SourceRange) -> String {
        format!("{dir}{}-{}-", range.topic, range.partition)
    }

    /// The directory (with its trailing `/`) of a key.
    fn dir_of(key: &str) -> &str {
        key.rfind('/').map_or("", |end| &key[..=end])
    }

    /// How many leading events of a redelivered batch an existing complete object of the same
    /// partition and hour already holds: one whose range starts at or before this one's first
    /// position and reaches into it (the committed offset fell inside an archived range; an
    /// object of exactly this range counts: its events are all there already). Only
    /// for a batch whose positions are consecutive (one event per position, the usual case),
    /// where the count is exact; otherwise 0 and the overlap stays (duplicates, never loss).
    fn archived_head(keys: &[String], dir: &str, range: &SourceRange) -> usize {
        let consecutive = range.last - range.first + 1;
        if range.events as i64 != consecutive {
            return 0;
        }
        let partition = Self::partition_prefix(dir, range);
        let mut next = range.first;
        // Objects may follow each other (the previous owner wrote several past the committed
        // offset): skip through all of them.
        loop {
            // Keys sort by first position: candidates start at or before `next`.
            let end = format!("{partition}{next:020}-~");
            let to = keys.partition_point(|k| k.as_str() < end.as_str());
            let reach = keys[..to]
                .iter()
                .rev()
                .map_while(|other| other.strip_prefix(&partition))
                .filter_map(parse_range)
                .filter(|&(first, last)| first <= next && last >= next)
                .map(|(_, last)| last)
                .max();
            match reach {
                Some(last) if last < range.last => next = last + 1,
                Some(_) => return range.events,
                None => return (next - range.first) as usize,
            }
        }
    }

    /// The last position any complete object of the range's partition in `keys` (a listing
    /// of `dir`, or of the partition's own objects there) reaches. Until a batch passes it,
    /// a later batch may meet an object written before (by a previous owner, or before a
    /// replay) and must list and skip it, not count as this instance continuing its own.
    fn partition_reach(keys: &[String], dir: &str, range: &SourceRange) -> Option<i64> {
        let partition = Self::partition_prefix(dir, range);
        let from = keys.partition_point(|k| k.as_str() < partition.as_str());
        keys[from..]
            .iter()
            .map_while(|key| key.strip_prefix(&partition))
            .filter_map(parse_range)
            .map(|(_, last)| last)
            .max()
    }

    /// Deletes the other complete objects of the range's partition (in the same hour's
    /// directory) whose ranges lie within this one: earlier, shorter cuts of a redelivered
    /// range. Objects that reach past it are kept, so nothing is ever lost.
    async fn remove_covered(
        &self,
        key: &str,
        range: &SourceRange,
        keys: &[String],
    ) -> Result<(), DeliveryError> {
        let partition = Self::partition_prefix(Self::dir_of(key), range);
        // Keys sort by first position, so the search starts at this range's first.
        let start = format!("{partition}{:020}", range.first);
        let from = keys.partition_point(|k| k.as_str() < start.as_str());
        for other in &keys[from..] {
            let Some(name) = other.strip_prefix(&partition) else {
                break;
            };
            let Some((first, last)) = parse_range(name) else {
                continue;
            };
            if first > range.last {
                break;
            }
            if other != key && first >= range.first && last <= range.last {
                tracing::info!(replaced = %other, by = %key, "archive range rewritten; removing the earlier object");
                self.bucket.delete(other).await?;
            }
        }
        Ok(())
    }

    /// The keys in `dir` that a batch of `range` needs, in key order. A partition's `first`
    /// batch here takes a listing of the whole directory younger than [`LISTING_REUSE`] or
    /// makes one (shared with the other partitions' first batches), unless the directory is
    /// large; a redelivery, or a first batch in a large directory, lists the partition's own
    /// objects (`dir/topic-partition-`), which are all the batch looks at.
    async fn listing(
        &self,
        dir: &str,
        range: &SourceRange,
        first: bool,
    ) -> Result<Arc<Vec<String>>, DeliveryError> {
        if first {
            // One whole listing at a time: first batches arriving together wait for it and
            // reuse it instead of listing the directory once each.
            let _one = self.list_lock.lock().await;
            let known = {
                let listings = self.listings.lock().unwrap_or_else(|e| e.into_inner());
                listings
                    .get(dir)
                    .map(|l| (l.large, l.at.elapsed() < LISTING_REUSE, l.keys.clone()))
            };
            match known {
                Some((true, _, _)) => {}
                Some((false, true, keys)) => return Ok(keys),
                _ => return self.list_whole(dir).await,
            }
        }
        self.sorted_keys(&Self::partition_prefix(dir, range)).await
    }

    /// Lists the whole of `dir` and remembers the listing (or, when it is large, only that).
    async fn list_whole(&self, dir: &str) -> Result<Arc<Vec<String>>, DeliveryError> {
        let at = Instant::now();
        let keys = self.sorted_keys(dir).await?;
        let large = keys.len() > LARGE_DIRECTORY;
        let mut listings = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        listings.retain(|_, l| l.at.elapsed() < if l.large { LARGE_FOR } else { LISTING_REUSE });
        let kept = if large { Arc::default() } else { keys.clone() };
        listings.insert(
            dir.to_owned(),
            Listing {
                at,
                keys: kept,
                large,
            },
        );
        Ok(keys)
    }

    /// The keys that start with `prefix` and have no `/` after it, sorted.
    async fn sorted_keys(&self, prefix: &str) -> Result<Arc<Vec<String>>, DeliveryError> {
        let mut keys = self.bucket.list_in_directory(prefix).await?;
        keys.sort_unstable();
        Ok(Arc::new(keys))
    }
}

/// `first` and `last` of a complete object's name after its `topic-partition-` (`None` for
/// retried-event objects and foreign keys).
fn parse_range(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (first, last) = stem.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

#[async_trait]
impl Destination for S3Archive {
    fn batching(&self) -> Batching {
        match self.objects {
            ObjectLayout::PerPartition => Batching::PerPartition,
            ObjectLayout::PerBatch => Batching::Sourced,
        }
    }

    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        self.deliver_from(batch, &[]).await
    }

    async fn deliver_from(
        &self,
        batch: &[Arc<Event>],
        sources: &[SourceRange],
    ) -> Result<(), DeliveryError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.objects == ObjectLayout::PerBatch {
            return self.write(&self.batch_key(batch, sources), batch).await;
        }
        // Per-partition batching: one source range, or none outside the runtime.
        let source = sources.first();
        let Some(range) = source.filter(|r| r.complete) else {
            return self.write(&self.key(batch, source), batch).await;
        };
        let lane = (range.topic.clone(), range.partition);
        let last = self
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&lane)
            .copied();
        // A partition's first batch here, or a redelivery: the objects already there matter.
        // The first batch may use a recent listing of the directory (see `listing`).
        let redelivery = last.is_none_or(|last| range.first <= last);
        let mut key = self.key(batch, Some(range));
        let dir = Self::dir_of(&key).to_owned();
        let keys = if redelivery {
            self.listing(&dir, range, last.is_none()).await?
        } else {
            Arc::default()
        };
        let skip = Self::archived_head(&keys, &dir, range);
        let mut rest = range.clone();
        if skip > 0 {
            // The committed offset fell inside an archived range: its head is there already.
            rest.first += skip as i64;
            rest.events -= skip;
            tracing::info!(
                archived = skip,
                first = rest.first,
                "redelivered events already archived; writing the rest"
            );
            // `rest` keeps the batch's first timestamp: the directory stays the one where the
            // overlap was found.
            key = self.key(&batch[skip..], Some(&rest));
        }
        if rest.events > 0 {
            self.write(&key, &batch[skip..]).await?;
            if redelivery {
                self.remove_covered(&key, &rest, &keys).await?;
            }
        }
        // What is archived now reaches past this batch when any object of the partition
        // found there does: every batch up to its end then still lists, and skips or
        // replaces what is there, even one that starts right after this batch.
        let reached = Self::partition_reach(&keys, &dir, range);
        let archived = reached.map_or(range.last, |r| r.max(range.last));
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let entry = written.entry(lane).or_insert(archived);
        *entry = (*entry).max(archived);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use bytes::Bytes;
    use flate2::read::GzDecoder;

    use super::*;

    fn event(raw: &str) -> Arc<Event> {
        Arc::new(Event::parse(Bytes::from(raw.to_owned()), 1 << 20).expect("valid event"))
    }

    #[test]
    fn lines_are_the_original_events_with_breaks_flattened() {
        let a = r#"{"type":"track","event":"A","messageId":"m1","writeKey":"k","userId":"u"}"#;
        let b = "{\"type\":\"track\",\n\"event\":\"B\\nline\",\"messageId\":\"m2\",\"writeKey\":\"k\",\"userId\":\"u\"}";
        let gz = ndjson_gz(&[event(a), event(b)]);
        let mut text = String::new();
        GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .expect("gzip");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], a);
        let second: serde_json::Value = serde_json::from_str(lines[1]).expect("json line");
        assert_eq!(second["event"], "B\nline");
    }

    #[test]
    fn keys_follow_prefix_date_hour_and_range() {
        let archive = S3Archive {
            objects: ObjectLayout::PerPartition,
            written: Default::default(),
            listings: Default::default(),
            list_lock: Default::default(),
            bucket: Bucket::new(S3Location {
                bucket: "b".into(),
                prefix: "/raw/".into(),
                region: "us-east-1".into(),
                endpoint: None,
                path_style: true,
                access_key_id: None,
                secret_access_key: None,
            }),
        };
        let e =
            event(r#"{"type":"track","event":"A","messageId":"m1","writeKey":"k","userId":"u"}"#);
        let mut range = SourceRange {
            topic: "events".into(),
            partition: 3,
            first: 17,
            last: 42,
            timestamp_ms: 1_764_417_600_000, // 2025-11-29T12:00:00Z
            events: 1,
            complete: true,
        };
        assert_eq!(
            archive.key(std::slice::from_ref(&e), Some(&range)),
            "raw/2025-11-29/12/events-3-00000000000000000017-00000000000000000042.ndjson.gz"
        );
        range.complete = false;
        let retry = archive.key(&[e], Some(&range));
        assert!(retry.starts_with(
            "raw/2025-11-29/12/events-3-00000000000000000017-00000000000000000042-retry-"
        ));
    }

    #[test]
    fn a_redelivery_skips_the_head_an_object_already_holds() {
        let dir = "raw/2025-11-29/12/";
        let keys: Vec<String> = [(0, 99), (100, 199), (200, 249)]
            .iter()
            .map(|(f, l)| format!("{dir}events-1-{f:020}-{l:020}{SUFFIX}"))
            .chain([format!("{dir}events-10-{:020}-{:020}{SUFFIX}", 150, 400)])
            .collect();
        let range = |first: i64, last: i64, events: usize| SourceRange {
            topic: "events".into(),
            partition: 1,
            first,
            last,
            timestamp_ms: 0,
            events,
            complete: true,
        };
        let head = |r: &SourceRange| S3Archive::archived_head(&keys, dir, r);
        assert_eq!(
            head(&range(192, 391, 200)),
            58,
            "192..=249: in 100-199, then 200-249"
        );
        assert_eq!(
            head(&range(100, 199, 100)),
            100,
            "the same range: all there"
        );
        assert_eq!(head(&range(200, 220, 21)), 21, "inside 200-249");
        assert_eq!(head(&range(250, 300, 51)), 0, "past every object");
        assert_eq!(
            head(&range(50, 260, 211)),
            200,
            "through consecutive objects"
        );
        assert_eq!(
            head(&range(192, 220, 29)),
            29,
            "wholly archived, by objects reaching past it"
        );
        assert_eq!(
            head(&range(192, 391, 150)),
            0,
            "positions with gaps: not exact"
        );
        let mut other = range(192, 391, 200);
        other.partition = 2;
        assert_eq!(head(&other), 0, "another partition's objects do not count");
    }

    #[test]
    fn the_partition_reach_counts_every_object_of_the_partition() {
        let dir = "raw/2025-11-29/12/";
        let keys: Vec<String> = [(0, 99), (100, 199), (200, 249)]
            .iter()
            .map(|(f, l)| format!("{dir}events-1-{f:020}-{l:020}{SUFFIX}"))
            .chain([
                format!("{dir}events-1-{:020}-{:020}-retry-ab{SUFFIX}", 300, 900),
                format!("{dir}events-10-{:020}-{:020}{SUFFIX}", 150, 400),
            ])
            .collect();
        let mut range = SourceRange {
            topic: "events".into(),
            partition: 1,
            first: 0,
            last: 99,
            timestamp_ms: 0,
            events: 100,
            complete: true,
        };
        // A batch covered exactly by 0-99 still leaves 100-249 to look for: the next batch,
        // starting at 100, must not count as continuing this instance's own objects.
        assert_eq!(
            S3Archive::partition_reach(&keys, dir, &range),
            Some(249),
            "the furthest complete object of partition 1; retry objects and partition 10 aside"
        );
        range.partition = 2;
        assert_eq!(S3Archive::partition_reach(&keys, dir, &range), None);
    }

    #[test]
    fn object_names_parse_back_to_their_range() {
        assert_eq!(
            parse_range("00000000000000000017-00000000000000000042.ndjson.gz"),
            Some((17, 42))
        );
        assert_eq!(
            parse_range("00000000000000000017-00000000000000000042-retry-ab12.ndjson.gz"),
            None
        );
    }
}
