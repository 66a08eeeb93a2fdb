//! Delivery: one task per destination instance that batches, sends, retries and
//! dead-letters.
//!
//! Partition tasks send [`EventCopy`]s into the instance's bounded queue (a full queue makes them
//! wait: backpressure, not unbounded buffering). The task groups copies with a [`Batcher`],
//! sends up to `concurrency` batches at once, and for each batch:
//! - on success settles every copy's acknowledgement;
//! - on a retryable failure waits ([`Backoff`], full jitter, `Retry-After` as a floor) and sends
//!   the same batch again, for as long as it takes; its messages hold their partitions'
//!   committed offsets meanwhile;
//! - on a permanent failure dead-letters every event of the batch with the destination's
//!   status and answer, and settles each copy once the broker acknowledged its dead letter.
//!
//! Batches of one instance may complete out of order (concurrency > 1); the offset tracker
//! commits in order regardless.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_connectors::{DeliveryError, Destination, Event};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::ack::MessageAck;
use crate::backoff::Backoff;
use crate::batch::Batcher;
use crate::deadletter::{DeadLetter, DeadLetters, DestinationTag, Origin, Stage};
use crate::settings::DeliverySettings;

/// One event on its way to one destination.
#[derive(Debug)]
pub struct EventCopy {
    /// The event.
    pub event: Arc<Event>,
    /// Where it was consumed (for dead letters).
    pub origin: Arc<Origin>,
    /// This copy's share of the message's acknowledgement.
    pub ack: MessageAck,
}

/// Who a destination instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DestinationId {
    /// The customer's id.
    pub customer: Arc<str>,
    /// The destination's name within the customer.
    pub name: Arc<str>,
    /// The connector kind.
    pub kind: Arc<str>,
}

impl DestinationId {
    fn tag(&self) -> DestinationTag<'_> {
        DestinationTag {
            customer: &self.customer,
            name: &self.name,
            kind: &self.kind,
        }
    }
}

/// The sending side of a destination instance's queue.
#[derive(Debug, Clone)]
pub struct DestinationHandle {
    /// Which instance this is.
    pub id: Arc<DestinationId>,
    /// Its queue.
    pub queue: mpsc::Sender<EventCopy>,
}

/// Starts the delivery task of one destination instance. It runs until every handle is dropped
/// and its queue is empty.
pub fn spawn(
    id: DestinationId,
    destination: Arc<dyn Destination>,
    settings: DeliverySettings,
    dead_letters: DeadLetters,
) -> DestinationHandle {
    let (queue, rx) = mpsc::channel(settings.queue_capacity);
    let id = Arc::new(id);
    let worker = Worker {
        id: id.clone(),
        destination,
        backoff: Backoff {
            initial: Duration::from_millis(settings.retry_initial_backoff_ms),
            max: Duration::from_millis(settings.retry_max_backoff_ms),
        },
        dead_letters,
    };
    tokio::spawn(Arc::new(worker).run(rx, settings));
    DestinationHandle { id, queue }
}

struct Worker {
    id: Arc<DestinationId>,
    destination: Arc<dyn Destination>,
    backoff: Backoff,
    dead_letters: DeadLetters,
}

impl Worker {
    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<EventCopy>, settings: DeliverySettings) {
        let mut batcher = Batcher::new(settings.batch_limits());
        let mut ready: VecDeque<Vec<EventCopy>> = VecDeque::new();
        let mut in_flight = FuturesUnordered::new();
        let mut closed = false;
        loop {
            while in_flight.len() < settings.concurrency {
                let Some(batch) = ready.pop_front() else {
                    break;
                };
                in_flight.push(self.clone().send(batch));
            }
            if closed && ready.is_empty() && in_flight.is_empty() {
                return;
            }
            let can_receive = !closed && ready.is_empty() && in_flight.len() < settings.concurrency;
            let deadline = batcher.deadline();
            tokio::select! {
                biased;
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() && ready.is_empty() => {
                    ready.extend(batcher.flush());
                }
                copy = rx.recv(), if can_receive => match copy {
                    Some(copy) => {
                        let size = copy.event.raw().len();
                        ready.extend(batcher.push(copy, size, Instant::now()));
                    }
                    None => {
                        closed = true;
                        ready.extend(batcher.flush());
                    }
                },
            }
        }
    }

    /// Delivers one batch: retries until it is delivered or permanently rejected.
    async fn send(self: Arc<Self>, batch: Vec<EventCopy>) {
        let events: Vec<Arc<Event>> = batch.iter().map(|c| c.event.clone()).collect();
        let kind: &str = &self.id.kind;
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let result = self.destination.deliver(&events).await;
            metrics::histogram!("courier_delivery_duration_seconds", "kind" => kind.to_owned())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    metrics::counter!("courier_events_delivered_total", "kind" => kind.to_owned())
                        .increment(batch.len() as u64);
                    metrics::histogram!("courier_batch_events", "kind" => kind.to_owned())
                        .record(batch.len() as f64);
                    batch.into_iter().for_each(|c| c.ack.settle());
                    return;
                }
                Err(err) if err.is_retryable() => {
                    let delay = self.backoff.delay(attempt, err.retry_after());
                    metrics::counter!("courier_delivery_retries_total", "kind" => kind.to_owned())
                        .increment(1);
                    tracing::warn!(
                        customer = &*self.id.customer,
                        destination = &*self.id.name,
                        kind,
                        events = batch.len(),
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        status = err.status,
                        error = %err,
                        "delivery failed; will retry"
                    );
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
                Err(err) => {
                    self.dead_letter(batch, &err).await;
                    return;
                }
            }
        }
    }

    async fn dead_letter(&self, batch: Vec<EventCopy>, err: &DeliveryError) {
        tracing::error!(
            customer = &*self.id.customer,
            destination = &*self.id.name,
            kind = &*self.id.kind,
            events = batch.len(),
            status = err.status,
            error = %err,
            "destination rejected the batch; dead-lettering it"
        );
        let reason = err.to_string();
        let sends = batch.into_iter().map(|copy| {
            let reason = &reason;
            async move {
                let letter = DeadLetter {
                    payload: copy.event.raw(),
                    origin: &copy.origin,
                    stage: Stage::Deliver,
                    reason,
                    destination: Some(self.id.tag()),
                    status: err.status,
                    response: err.response.as_deref(),
                };
                if self.dead_letters.send(&letter).await.is_ok() {
                    copy.ack.settle();
                }
            }
        });
        futures::future::join_all(sends).await;
    }
}
