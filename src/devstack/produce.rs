//! Producing records to the local broker and reading topics back.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A producer tuned for loading test data quickly, with `acks=all`.
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "10")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .context("creating the producer")
}

/// Produces every `(key, payload)` to `topic` (partitioned by key) and waits until the broker
/// acknowledged all of them. Returns how many were produced.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
) -> anyhow::Result<usize> {
    let mut pending = Vec::new();
    for (key, payload) in records {
        let mut record = FutureRecord::to(topic).payload(&payload);
        if let Some(key) = &key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((err, back)) => {
                    if pending.len() > 10_000 {
                        for d in pending.drain(..) {
                            d.await
                                .context("producer dropped")?
                                .map_err(|(e, _)| e)
                                .context("produce failed")?;
                        }
                    } else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    tracing::debug!(error = %err, "producer queue full; waiting");
                    record = back;
                }
            }
        }
    }
    let count = pending.len();
    for result in futures::future::join_all(pending).await {
        result
            .context("producer dropped")?
            .map_err(|(e, _)| e)
            .context("produce failed")?;
    }
    Ok(count)
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its headers, in order.
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads every record of every partition of `topic`, from the log start to the current end,
/// without joining any group.
pub fn read_topic(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "courier-devstack-reader")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the reader")?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = std::collections::HashMap::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
                remaining.insert(p.id(), high);
            }
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "timed out reading {topic}");
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
        });
        if remaining
            .get(&m.partition())
            .is_some_and(|&end| m.offset() + 1 >= end)
        {
            remaining.remove(&m.partition());
        }
    }
    Ok(out)
}
