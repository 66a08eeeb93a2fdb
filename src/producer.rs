//! The worker's one Kafka producer (dead letters and parked retries): librdkafka's producer,
//! each record's delivery report completing the future its sender awaits, and a thread of its
//! own serving the reports.
//!
//! It replaces rdkafka's `FutureProducer`, whose thread polls in 100 ms calls that each end in
//! a busy loop: the crate converts the time left to whole milliseconds, so the last fraction of
//! a millisecond of every call is spent in zero-timeout polls. That was ~0.9% of a core on an
//! idle worker, the larger part of its idle CPU, and ~2.4% of the route-only benchmark's
//! samples (bench/RESULTS.md). This thread polls for [`POLL_WAIT`], which leaves no such
//! fraction.
//!
//! Invariants:
//! - [`AckedProducer::send`] returns `Ok` only once the broker acknowledged the record (with
//!   the configuration's `acks`); a full local queue is waited out, never reported as a failure;
//! - the polling thread runs while any clone of the producer exists; the last one dropped
//!   stops it, then librdkafka's producer purges what is still queued or in flight, as
//!   rdkafka's own producers do when dropped. A send in progress borrows the producer, so only
//!   records whose sender stopped waiting (its message not done) can be purged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::oneshot;

use crate::kafka::POLL_WAIT;

/// How long a record waits before it is offered again to a full local queue.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// What a delivery report tells the record's sender.
type Report = Result<(), KafkaError>;

/// Completes each record's future with its delivery report.
struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Report>>;

    fn delivery(&self, result: &DeliveryResult<'_>, sender: Self::DeliveryOpaque) {
        // The sender may have stopped waiting (cancelled); the report then has no reader.
        let _ = sender.send(result.as_ref().map(|_| ()).map_err(|(err, _)| err.clone()));
    }
}

/// A Kafka producer whose [`send`](Self::send) resolves on the broker's acknowledgement.
/// Clones share one librdkafka producer and one polling thread.
#[derive(Clone)]
pub struct AckedProducer {
    shared: Arc<Shared>,
}

struct Shared {
    producer: Arc<BaseProducer<Reports>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AckedProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckedProducer").finish_non_exhaustive()
    }
}

impl AckedProducer {
    /// A producer with `config`, and its polling thread.
    pub fn new(config: &ClientConfig) -> Result<AckedProducer, KafkaError> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, Reports)?);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("courier-produce".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        producer.poll(POLL_WAIT);
                    }
                })
                .map_err(|err| {
                    KafkaError::ClientCreation(format!("starting the polling thread: {err}"))
                })?
        };
        Ok(AckedProducer {
            shared: Arc::new(Shared {
                producer,
                stop,
                poller: Some(poller),
            }),
        })
    }

    /// Produces one record to `topic` and waits for the broker's acknowledgement; the error is
    /// the delivery report's (or librdkafka's refusal to queue it, other than a full queue).
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let (report, delivered) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(report))
            .payload(payload)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match self.shared.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), again)) => {
                    record = again;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((err, _)) => return Err(err),
            }
        }
        // A report dropped unsent means the producer was torn down first.
        delivered.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(poller) = self.poller.take() {
            if poller.join().is_err() {
                tracing::error!("the producer's polling thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devstack::broker::LocalBroker;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header, Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};

    fn producer(broker: &LocalBroker) -> AckedProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("acks", "all");
        AckedProducer::new(&config).expect("producer")
    }

    /// Reads `count` records of partition 0 of `topic` from the start.
    fn read(broker: &LocalBroker, topic: &str, count: usize) -> Vec<(Vec<u8>, Vec<u8>, String)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("group.id", "producer-test")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("offset");
        consumer.assign(&tpl).expect("assign");
        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while records.len() < count && std::time::Instant::now() < deadline {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let header = m
                .headers()
                .and_then(|h| h.iter().next())
                .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                .unwrap_or_default();
            records.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                header,
            ));
        }
        records
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_resolves_once_the_broker_holds_the_record() {
        let broker = LocalBroker::start(&[("letters", 1)]).expect("broker");
        let producer = producer(&broker);
        for i in 0..3 {
            let headers = OwnedHeaders::new().insert(Header {
                key: "n",
                value: Some(&i.to_string()),
            });
            producer
                .send("letters", Some(b"k"), format!("p{i}").as_bytes(), headers)
                .await
                .expect("acknowledged");
        }
        drop(producer);
        let records = tokio::task::block_in_place(|| read(&broker, "letters", 3));
        let expected: Vec<_> = (0..3)
            .map(|i| (b"k".to_vec(), format!("p{i}").into_bytes(), i.to_string()))
            .collect();
        assert_eq!(records, expected);
    }

    #[tokio::test]
    async fn send_to_a_missing_topic_reports_the_broker_error() {
        let broker = LocalBroker::start(&[]).expect("broker");
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("allow.auto.create.topics", "false")
            .set("message.timeout.ms", "1000");
        let producer = AckedProducer::new(&config).expect("producer");
        let err = producer
            .send("absent", None, b"x", OwnedHeaders::new())
            .await
            .expect_err("no such topic");
        assert!(
            matches!(err, KafkaError::MessageProduction(_)),
            "unexpected error: {err}"
        );
    }
}
