//! `courier offsets show` and `courier offsets reset`: the group's committed offsets, log end
//! offsets and lag, and moving them.
//!
//! Reads with a consumer that carries the group id but never subscribes, so it neither joins
//! the group nor disturbs the running workers. A reset is planned first (printed), and only
//! executed while the group has no members: a running worker would commit its own positions
//! over it.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::kafka;
use crate::settings::Settings;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One partition's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionOffsets {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (`None`: never committed).
    pub committed: Option<i64>,
    /// The log start offset (older messages are gone).
    pub log_start: i64,
    /// The log end offset (the next offset to be written).
    pub log_end: i64,
    /// Messages not yet committed by the group.
    pub lag: i64,
}

/// Committed offsets of consumer group `group`, log start/end and lag for every partition of
/// `topics`.
pub fn show(
    settings: &Settings,
    group: &str,
    topics: &[String],
) -> anyhow::Result<Vec<PartitionOffsets>> {
    let consumer: BaseConsumer = kafka::observer_config(settings, group)
        .create()
        .context("creating the consumer")?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .with_context(|| format!("reading metadata of {topic}"))?;
        for t in metadata.topics() {
            if let Some(err) = t.error() {
                anyhow::bail!("topic {topic}: {:?}", err);
            }
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .context("reading committed offsets")?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (log_start, log_end) = consumer
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .with_context(|| format!("reading watermarks of {}/{}", e.topic(), e.partition()))?;
        let committed = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        let lag = log_end - committed.unwrap_or(log_start).max(log_start);
        out.push(PartitionOffsets {
            topic: e.topic().to_owned(),
            partition: e.partition(),
            committed,
            log_start,
            log_end,
            lag,
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// The offsets as an aligned table.
pub fn table(rows: &[PartitionOffsets]) -> String {
    let mut out = format!(
        "{:<24} {:>9} {:>12} {:>12} {:>12} {:>10}\n",
        "topic", "partition", "committed", "log_start", "log_end", "lag"
    );
    for r in rows {
        let committed = r.committed.map_or("-".to_string(), |c| c.to_string());
        out.push_str(&format!(
            "{:<24} {:>9} {:>12} {:>12} {:>12} {:>10}\n",
            r.topic, r.partition, committed, r.log_start, r.log_end, r.lag
        ));
    }
    out
}

/// Where `courier offsets reset` moves the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// This offset (clamped to the log's start and end).
    Offset(i64),
    /// The first offset whose timestamp is at or after this time (ms since the epoch); the log
    /// end when there is none.
    Time(i64),
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset now.
    pub from: Option<i64>,
    /// The offset to commit.
    pub to: i64,
}

/// The plan for resetting `group` on `topics` (only `partition` when given): no change yet.
pub fn plan_reset(
    settings: &Settings,
    group: &str,
    topics: &[String],
    to: ResetTo,
    partition: Option<i32>,
) -> anyhow::Result<Vec<Move>> {
    let rows = show(settings, group, topics)?;
    let rows: Vec<PartitionOffsets> = rows
        .into_iter()
        .filter(|r| partition.is_none_or(|p| p == r.partition))
        .collect();
    anyhow::ensure!(
        !rows.is_empty(),
        "no such partition {partition:?} in {topics:?}"
    );
    rows.into_iter()
        .map(|r| {
            let target = match to {
                ResetTo::Offset(o) => o.clamp(r.log_start, r.log_end),
                ResetTo::Earliest => r.log_start,
                ResetTo::Latest => r.log_end,
                ResetTo::Time(ms) => offset_for_time(settings, &r.topic, r.partition, ms)?,
            };
            Ok(Move {
                topic: r.topic,
                partition: r.partition,
                from: r.committed,
                to: target,
            })
        })
        .collect()
}

/// The first offset of `topic`/`partition` whose timestamp is at or after `ms` (ms since the
/// epoch); the log end when every message is older.
///
/// Asks the broker's time index first. A broker that has none (or answers "none" although
/// the last message is newer) gets a binary search over message timestamps instead, reading
/// one message per step; it assumes timestamps grow with offsets, as the time index does.
pub fn offset_for_time(
    settings: &Settings,
    topic: &str,
    partition: i32,
    ms: i64,
) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = kafka::observer_config(settings, "courier-cli-lookup")
        .set("enable.partition.eof", "true")
        .create()
        .context("creating the consumer")?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .with_context(|| format!("reading watermarks of {topic}/{partition}"))?;
    if low >= high {
        return Ok(high);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(ms))?;
    if let Ok(found) = consumer.offsets_for_times(tpl, TIMEOUT) {
        if let Some(Offset::Offset(o)) = found.find_partition(topic, partition).map(|e| e.offset())
        {
            return Ok(o);
        }
    }
    let timestamp_at = |offset: i64| -> anyhow::Result<i64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        consumer.assign(&tpl)?;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => return Ok(m.timestamp().to_millis().unwrap_or(0)),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(i64::MAX),
                Some(Err(err)) => return Err(err.into()),
                None => {}
            }
        }
        anyhow::bail!("no message at {topic}/{partition}@{offset} within {TIMEOUT:?}")
    };
    if timestamp_at(high - 1)? < ms {
        return Ok(high);
    }
    let (mut lo, mut hi) = (low, high - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if timestamp_at(mid)? >= ms {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// The members of `group` right now.
pub fn active_members(settings: &Settings, group: &str) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = kafka::observer_config(settings, group)
        .create()
        .context("creating the consumer")?;
    let groups = consumer
        .fetch_group_list(Some(group), TIMEOUT)
        .context("describing the group")?;
    Ok(groups
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(|g| g.members().len())
        .sum())
}

/// Commits `moves` for `group`; refuses while the group has members (they would overwrite
/// the reset with their own commits).
///
/// With a broker that lists groups, an empty group is checked first and the offsets are
/// committed from outside it. A broker that cannot list groups (or refuses commits from
/// non-members even for an empty group) is handled by joining the group: alone, this command
/// is assigned every partition and commits as the group's only member, then leaves; given only
/// some partitions, others are members, and it leaves without committing. That attempt costs
/// a running group one extra rebalance.
pub fn execute_reset(
    settings: &Settings,
    group: &str,
    topics: &[String],
    moves: &[Move],
) -> anyhow::Result<()> {
    let refuse = || {
        anyhow::anyhow!(
            "group {group} has active members; stop its workers before resetting offsets"
        )
    };
    let mut tpl = TopicPartitionList::new();
    for m in moves {
        tpl.add_partition_offset(&m.topic, m.partition, Offset::Offset(m.to))?;
    }
    match active_members(settings, group) {
        Ok(0) => {
            let consumer: BaseConsumer = kafka::observer_config(settings, group)
                .create()
                .context("creating the consumer")?;
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => return Ok(()),
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownMemberId)) => {}
                Err(err) => return Err(err).context("committing the new offsets"),
            }
        }
        Ok(_) => return Err(refuse()),
        Err(err) => tracing::debug!(error = %format!("{err:#}"), "cannot list group members"),
    }
    let partitions = show(settings, group, topics)?.len();
    let mut config = kafka::consumer_config(settings);
    config.set("group.id", group);
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).context("joining the group")?;
    let deadline = std::time::Instant::now()
        + Duration::from_millis(settings.kafka.session_timeout_ms)
        + TIMEOUT;
    let alone = loop {
        let _ = consumer.poll(Duration::from_millis(100));
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned == partitions {
            break true;
        }
        if (assigned > 0 && assigned < partitions) || std::time::Instant::now() > deadline {
            break false;
        }
    };
    if !alone {
        consumer.unsubscribe();
        return Err(refuse());
    }
    let result = consumer
        .commit(&tpl, CommitMode::Sync)
        .context("committing the new offsets");
    consumer.unsubscribe();
    drop(consumer);
    result
}

/// The plan as an aligned table.
pub fn plan_table(moves: &[Move]) -> String {
    let mut out = format!(
        "{:<24} {:>9} {:>12} {:>12}\n",
        "topic", "partition", "committed", "new"
    );
    for m in moves {
        let from = m.from.map_or("-".to_string(), |c| c.to_string());
        out.push_str(&format!(
            "{:<24} {:>9} {:>12} {:>12}\n",
            m.topic, m.partition, from, m.to
        ));
    }
    out
}
