//! `courier offsets show`: the group's committed offsets, log end offsets and lag.
//!
//! Reads with a consumer that carries the group id but never subscribes, so it neither joins
//! the group nor disturbs the running workers.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
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
