//! The dead-letter topic: where messages go that no retry can deliver.
//!
//! A dead letter carries the original message bytes and key unchanged, with headers that say
//! where it came from and why it failed:
//!
//! | header | value |
//! |---|---|
//! | `courier.stage` | `decode`, `route` or `deliver` |
//! | `courier.reason` | one lowercase line |
//! | `courier.source.topic` / `.partition` / `.offset` | the original position |
//! | `courier.customer`, `courier.destination`, `courier.destination.kind` | for `deliver` |
//! | `courier.status`, `courier.response` | the destination's status and answer excerpt |
//!
//! Invariant: [`DeadLetters::send`] returns `Ok` only after the broker acknowledged the copy
//! (idempotent producer, `acks=all`); it retries broker errors with backoff for as long as it
//! takes. With no topic configured it returns [`NotConfigured`] at once and the caller must
//! hold the message (leave its acknowledgement unsettled), never drop it.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};

use crate::backoff::Backoff;
use crate::producer::AckedProducer;

/// Where a consumed message came from (the connectors' type: an event carries its own).
pub use courier_connectors::Origin;

/// The step at which a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not a valid Segment event.
    Decode,
    /// A valid event whose write key belongs to no customer.
    Route,
    /// A destination rejected it permanently.
    Deliver,
}

impl Stage {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Route => "route",
            Stage::Deliver => "deliver",
        }
    }
}

/// The destination a dead letter was meant for.
#[derive(Debug, Clone, Copy)]
pub struct DestinationTag<'a> {
    /// The customer's id.
    pub customer: &'a str,
    /// The destination's name.
    pub name: &'a str,
    /// The connector kind.
    pub kind: &'a str,
}

/// One message to dead-letter.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The original message bytes.
    pub payload: &'a [u8],
    /// Where it was consumed.
    pub origin: &'a Origin,
    /// Where it failed.
    pub stage: Stage,
    /// Why, in one line.
    pub reason: &'a str,
    /// The destination, for delivery failures.
    pub destination: Option<DestinationTag<'a>>,
    /// The destination's status code, when it answered.
    pub status: Option<u16>,
    /// An excerpt of the destination's answer.
    pub response: Option<&'a str>,
}

impl DeadLetter<'_> {
    fn headers(&self) -> OwnedHeaders {
        let partition = self.origin.partition.to_string();
        let offset = self.origin.offset.to_string();
        let mut h = OwnedHeaders::new_with_capacity(10)
            .insert(header("courier.stage", self.stage.as_str()))
            .insert(header("courier.reason", self.reason))
            .insert(header("courier.source.topic", &self.origin.topic))
            .insert(header("courier.source.partition", &partition))
            .insert(header("courier.source.offset", &offset));
        if let Some(d) = self.destination {
            h = h
                .insert(header("courier.customer", d.customer))
                .insert(header("courier.destination", d.name))
                .insert(header("courier.destination.kind", d.kind));
        }
        if let Some(status) = self.status {
            h = h.insert(header("courier.status", &status.to_string()));
        }
        if let Some(response) = self.response {
            h = h.insert(header("courier.response", response));
        }
        h
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// No dead-letter topic is configured: the caller must hold the message.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no dead-letter topic is configured: the message is held and its partition's offset will not move past it")]
pub struct NotConfigured;

/// The dead-letter producer, shared by every partition and destination.
#[derive(Clone)]
pub struct DeadLetters {
    inner: Option<Arc<Inner>>,
    tally: Option<Arc<Tally>>,
}

/// Dead letters acknowledged by the broker, per `customer/destination` (`-` for letters of
/// no destination), for the summary of `courier replay`.
#[derive(Debug, Default)]
pub struct Tally(std::sync::Mutex<std::collections::BTreeMap<String, u64>>);

impl Tally {
    /// The counts so far.
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Inner {
    producer: AckedProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.inner.as_ref().map(|i| &i.topic))
            .finish()
    }
}

impl DeadLetters {
    /// Dead letters produced to `topic` with `producer`.
    pub fn new(producer: AckedProducer, topic: String) -> Self {
        DeadLetters {
            inner: Some(Arc::new(Inner { producer, topic })),
            tally: None,
        }
    }

    /// The same producer, also counting what it dead-letters in the returned tally.
    pub fn tallied(&self) -> (DeadLetters, Arc<Tally>) {
        let tally = Arc::new(Tally::default());
        (
            DeadLetters {
                inner: self.inner.clone(),
                tally: Some(tally.clone()),
            },
            tally,
        )
    }

    /// No dead-letter topic: every [`send`](Self::send) answers [`NotConfigured`].
    pub fn disabled() -> Self {
        DeadLetters {
            inner: None,
            tally: None,
        }
    }

    /// Produces `letter` and waits for the broker's acknowledgement, retrying broker errors.
    pub async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), NotConfigured> {
        let Some(inner) = &self.inner else {
            tracing::error!(
                stage = letter.stage.as_str(),
                reason = letter.reason,
                topic = &*letter.origin.topic,
                partition = letter.origin.partition,
                offset = letter.origin.offset,
                "message cannot be delivered and no dead-letter topic is configured; holding its partition"
            );
            metrics::counter!("courier_dead_letters_held_total", "stage" => letter.stage.as_str())
                .increment(1);
            return Err(NotConfigured);
        };
        produce_acked(
            &inner.producer,
            &inner.topic,
            letter.origin.key.as_deref(),
            letter.payload,
            letter.headers(),
        )
        .await;
        let kind = letter.destination.map_or("none", |d| d.kind).to_owned();
        metrics::counter!("courier_dead_letters_total", "stage" => letter.stage.as_str(), "kind" => kind)
            .increment(1);
        if let Some(tally) = &self.tally {
            let key = letter
                .destination
                .map_or("-".to_owned(), |d| format!("{}/{}", d.customer, d.name));
            *tally
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_insert(0) += 1;
        }
        tracing::warn!(
            stage = letter.stage.as_str(),
            reason = letter.reason,
            topic = &*letter.origin.topic,
            partition = letter.origin.partition,
            offset = letter.origin.offset,
            customer = letter.destination.map(|d| d.customer),
            destination = letter.destination.map(|d| d.name),
            status = letter.status,
            "dead-lettered"
        );
        Ok(())
    }
}

/// Produces one record and waits until the broker acknowledged it, retrying broker errors with
/// backoff for as long as it takes (the caller's message stays not done meanwhile).
pub async fn produce_acked(
    producer: &AckedProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: OwnedHeaders,
) {
    let backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(30),
    };
    let mut attempt = 0;
    loop {
        match producer.send(topic, key, payload, headers.clone()).await {
            Ok(()) => return,
            Err(err) => {
                let delay = backoff.delay(attempt, None);
                tracing::error!(topic, error = %err, attempt, delay_ms = delay.as_millis() as u64, "produce failed; retrying");
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}
