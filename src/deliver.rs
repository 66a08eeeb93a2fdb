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
//!   status and answer, and settles each copy once the broker acknowledged its dead letter;
//! - on a partial rejection dead-letters only the named events, then settles the others or
//!   sends them again, as the connector says;
//! - on "too large" splits the batch in halves and delivers each (a single event that is
//!   still too large is dead-lettered).
//!
//! With a retry topic configured, a batch still failing after its inline budget (or waiting
//! that long on an open circuit) has its events parked there (see [`crate::retry`]); events
//! that come from the retry topic are parked again at their first failure.
//!
//! Every request first passes the instance's circuit breaker (closed, or the half-open probe)
//! and rate limiter; while the circuit is open its batches wait, still in flight.
//!
//! A batch also leaves before it is full or old when the consumer's in-flight byte budget is
//! spent and this instance has room to send (fewer batches ready or in flight than its
//! concurrency): the oldest partial batches of at least `PRESSURE_CUT_BYTES` go at once; and
//! while a partition drains (revoke or shutdown) every partial batch goes at once, so the drain
//! does not wait for batch ages longer than its timeout (see [`crate::pressure`]).
//!
//! Batches of one instance may complete out of order (concurrency > 1); the offset tracker
//! commits in order regardless.
//!
//! How batches are cut is the destination's [`Batching`]:
//! - `Mixed` (HTTP APIs): one batcher, copies in arrival order;
//! - `Sourced` (the warehouses): one batcher, and before delivery each batch is grouped by
//!   source partition (each partition's copies keep their order) and passed with one
//!   [`SourceRange`] per partition, for the load's ledger;
//! - `PerPartition` (the archive): one batcher per source partition, at most one batch in
//!   flight per partition, so a batch is a run of one partition in offset order, and a
//!   redelivery after a crash starts where the last unfinished batch started.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_connectors::{
    Batching, DeliveryError, Destination, Event, Failure, Others, SmolStr, SourceRange,
};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::FutureExt;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::ack::MessageAck;
use crate::backoff::Backoff;
use crate::batch::Batcher;
use crate::breaker::{CircuitBreaker, Permit};
use crate::deadletter::{DeadLetter, DeadLetters, DestinationTag, Origin, Stage};
use crate::ratelimit::RateLimiter;
use crate::retry::{now_millis, Parking, RetryState};
use crate::settings::DeliverySettings;

/// Copies taken from the queue at once (one wake-up and one clock read for all of them).
const RECEIVE_MANY: usize = 256;

/// A partial batch smaller than this is not cut early under memory pressure: its request
/// would cost more than the bytes it gives back (an archive with thousands of lanes holds a
/// few KiB in each).
const PRESSURE_CUT_BYTES: usize = 64 * 1024;

/// One event on its way to one destination.
#[derive(Debug)]
pub struct EventCopy {
    /// The event, with where it was consumed (for dead letters and by-source batches); shared
    /// by the copies of one message.
    pub event: Arc<Event>,
    /// This copy's share of the message's acknowledgement.
    pub ack: MessageAck,
    /// Its retry state when it comes from the retry topic (`None` in the main flow).
    /// Boxed: the retry flow is rare, and the main flow's copies should stay small.
    pub retry: Option<Box<RetryState>>,
}

// A copy sits in a destination's queue, its receive buffer and its batch, for every
// destination of every message in flight (with 100 customers x 4 destinations, a receive
// buffer alone is 400 x 256 copies): keep it four words.
const _: () = assert!(std::mem::size_of::<EventCopy>() <= 32);

impl EventCopy {
    /// Where the event was consumed.
    pub fn origin(&self) -> &Origin {
        self.event.origin()
    }
}

/// Where events go that cannot be delivered now: the dead-letter topic, and the retry topic
/// when non-blocking retries are configured.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// The dead-letter producer.
    pub dead_letters: DeadLetters,
    /// The retry topic, if configured.
    pub parking: Option<Arc<Parking>>,
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

/// What an instance reports about itself in `/status`.
#[derive(Debug)]
pub struct DestinationStats {
    breaker: Arc<CircuitBreaker>,
    last_error: std::sync::Mutex<Option<serde_json::Value>>,
}

impl DestinationStats {
    /// The circuit breaker's state.
    pub fn circuit(&self) -> &'static str {
        self.breaker.state_name()
    }

    /// The last delivery error and when it happened, if any.
    pub fn last_error(&self) -> Option<serde_json::Value> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record_error(&self, err: &DeliveryError) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(serde_json::json!({
            "error": err.to_string(),
            "status": err.status,
            "at_ms": now_millis(),
        }));
    }
}

/// The sending side of a destination instance's queue.
#[derive(Debug, Clone)]
pub struct DestinationHandle {
    /// Which instance this is.
    pub id: Arc<DestinationId>,
    /// Its circuit state and last error.
    pub stats: Arc<DestinationStats>,
    /// The connector instance, for [`Destination::accepts`].
    pub destination: Arc<dyn Destination>,
    /// Its queue.
    pub queue: mpsc::Sender<EventCopy>,
}

/// Starts the delivery task of one destination instance. It runs until every handle is dropped
/// and its queue is empty.
pub fn spawn(
    id: DestinationId,
    destination: Arc<dyn Destination>,
    settings: DeliverySettings,
    fallback: Fallback,
) -> DestinationHandle {
    let (queue, rx) = mpsc::channel(settings.queue_capacity);
    let id = Arc::new(id);
    let breaker = Arc::new(CircuitBreaker::new(
        settings.circuit_failure_threshold,
        Duration::from_millis(settings.circuit_cooldown_ms),
        &id.customer,
        &id.name,
        &id.kind,
    ));
    let stats = Arc::new(DestinationStats {
        breaker: breaker.clone(),
        last_error: std::sync::Mutex::new(None),
    });
    let worker = Worker {
        meters: Meters::new(&id.kind),
        limiter: RateLimiter::new(settings.requests_per_second, settings.events_per_second),
        breaker,
        stats: stats.clone(),
        id: id.clone(),
        destination,
        backoff: Backoff {
            initial: Duration::from_millis(settings.retry_initial_backoff_ms),
            max: Duration::from_millis(settings.retry_max_backoff_ms),
        },
        fallback,
    };
    let destination = worker.destination.clone();
    tokio::spawn(Arc::new(worker).run(rx, settings));
    DestinationHandle {
        id,
        stats,
        destination,
        queue,
    }
}

/// What batches are grouped by: nothing, or the source partition for by-partition
/// destinations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lane {
    Any,
    Partition(SmolStr, i32),
}

impl Lane {
    fn of(origin: &Origin) -> Lane {
        Lane::Partition(origin.topic.clone(), origin.partition)
    }

    /// Whether a copy from `origin` belongs to this lane (as [`Lane::of`] would say, without
    /// building one).
    fn holds(&self, origin: &Origin) -> bool {
        match self {
            Lane::Any => false,
            Lane::Partition(topic, partition) => {
                *partition == origin.partition && **topic == *origin.topic
            }
        }
    }
}

/// Under memory pressure: moves the oldest partial batches of at least [`PRESSURE_CUT_BYTES`]
/// on lanes without a batch in flight, at most `room` of them, to `ready`; returns the largest
/// partial batch left.
fn cut_partial(
    batchers: &mut HashMap<Lane, Batcher<EventCopy>>,
    busy: &HashSet<Lane>,
    ready: &mut VecDeque<(Lane, Vec<EventCopy>)>,
    room: usize,
) -> usize {
    let mut partial: Vec<(Instant, &Lane)> = batchers
        .iter()
        .filter(|(lane, b)| !busy.contains(*lane) && b.bytes() >= PRESSURE_CUT_BYTES)
        .filter_map(|(lane, batcher)| batcher.deadline().map(|d| (d, lane)))
        .collect();
    partial.sort_unstable_by_key(|(deadline, _)| *deadline);
    let oldest: Vec<Lane> = partial
        .into_iter()
        .take(room)
        .map(|(_, lane)| lane.clone())
        .collect();
    for lane in oldest {
        if let Some(batch) = batchers.get_mut(&lane).and_then(Batcher::flush) {
            ready.push_back((lane, batch));
        }
    }
    batchers.retain(|_, b| b.deadline().is_some());
    batchers.values().map(Batcher::bytes).max().unwrap_or(0)
}

/// Adds `copy` to `lane`'s batcher, moving a batch it fills to `ready`; returns the batcher's
/// partial bytes.
fn push(
    batcher: &mut Batcher<EventCopy>,
    copy: EventCopy,
    now: Instant,
    lane: &Lane,
    ready: &mut VecDeque<(Lane, Vec<EventCopy>)>,
) -> usize {
    let size = copy.event.raw().len();
    for full in batcher.push(copy, size, now) {
        ready.push_back((lane.clone(), full));
    }
    batcher.bytes()
}

/// Moves every partial batch to `ready` (the queue closed, or a partition is draining).
fn flush_all(
    batchers: &mut HashMap<Lane, Batcher<EventCopy>>,
    ready: &mut VecDeque<(Lane, Vec<EventCopy>)>,
) {
    for (lane, mut batcher) in batchers.drain() {
        ready.extend(batcher.flush().map(|b| (lane.clone(), b)));
    }
}

/// Groups a batch by source partition, each partition's copies in their order, partitions in
/// order of first appearance.
fn group_by_source(batch: Vec<EventCopy>) -> Vec<EventCopy> {
    let mut groups: Vec<Vec<EventCopy>> = Vec::new();
    let mut index: HashMap<(SmolStr, i32), usize> = HashMap::new();
    let total = batch.len();
    for copy in batch {
        let key = (copy.origin().topic.clone(), copy.origin().partition);
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(copy);
    }
    let mut grouped = Vec::with_capacity(total);
    groups.into_iter().for_each(|g| grouped.extend(g));
    grouped
}

/// The source ranges of a batch grouped by source (see [`group_by_source`]): one per run of
/// copies from one partition.
fn source_ranges(batch: &[EventCopy]) -> Vec<SourceRange> {
    let mut ranges: Vec<SourceRange> = Vec::new();
    for copy in batch {
        let origin = copy.origin();
        match ranges.last_mut() {
            Some(r) if r.partition == origin.partition && r.topic == origin.topic => {
                r.first = r.first.min(origin.offset);
                r.last = r.last.max(origin.offset);
                r.events += 1;
                r.complete &= copy.retry.is_none();
            }
            _ => ranges.push(SourceRange {
                topic: origin.topic.clone(),
                partition: origin.partition,
                first: origin.offset,
                last: origin.offset,
                timestamp_ms: origin.timestamp_ms,
                events: 1,
                complete: copy.retry.is_none(),
            }),
        }
    }
    ranges
}

/// The instance's metric handles, labelled by kind once.
struct Meters {
    delivered: metrics::Counter,
    retries: metrics::Counter,
    batch_events: metrics::Histogram,
    duration: metrics::Histogram,
}

impl Meters {
    fn new(kind: &str) -> Meters {
        let kind = kind.to_owned();
        Meters {
            delivered: metrics::counter!("courier_events_delivered_total", "kind" => kind.clone()),
            retries: metrics::counter!("courier_delivery_retries_total", "kind" => kind.clone()),
            batch_events: metrics::histogram!("courier_batch_events", "kind" => kind.clone()),
            duration: metrics::histogram!("courier_delivery_duration_seconds", "kind" => kind),
        }
    }
}

struct Worker {
    meters: Meters,
    id: Arc<DestinationId>,
    limiter: RateLimiter,
    breaker: Arc<CircuitBreaker>,
    stats: Arc<DestinationStats>,
    destination: Arc<dyn Destination>,
    backoff: Backoff,
    fallback: Fallback,
}

impl Worker {
    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<EventCopy>, settings: DeliverySettings) {
        let by_partition = self.destination.batching() == Batching::PerPartition;
        let limits = settings.batch_limits();
        let mut batchers: HashMap<Lane, Batcher<EventCopy>> = HashMap::new();
        let mut ready: VecDeque<(Lane, Vec<EventCopy>)> = VecDeque::new();
        // Lanes with a batch in flight (by-partition destinations send one per lane at a time).
        let mut busy: HashSet<Lane> = HashSet::new();
        let mut in_flight = FuturesUnordered::new();
        let mut inbox = Vec::with_capacity(RECEIVE_MANY);
        let mut closed = false;
        let pressure = crate::pressure::pressure();
        // The listeners and the batch timer live across turns of the loop, each renewed only
        // once it fired (the timer: reset when the oldest deadline moves). Made anew every turn,
        // each registered with its `Notify` (one lock shared by every instance) or the timer
        // wheel and left it again, on every wake-up of every instance ("Listeners and timer
        // kept across turns" in `bench/RESULTS.md`). A listener is always taken before the
        // level it stands for is read: a change after the read signals it.
        let signalled = pressure.signalled();
        tokio::pin!(signalled);
        let drained = pressure.drained();
        tokio::pin!(drained);
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        // At least the largest partial batch's bytes (exact after a cut under pressure): a
        // signal is only worth looking at when some batch may be large enough to cut.
        let mut largest = 0;
        loop {
            while in_flight.len() < settings.concurrency {
                let Some(i) = ready.iter().position(|(lane, _)| !busy.contains(lane)) else {
                    break;
                };
                let Some((lane, batch)) = ready.remove(i) else {
                    break;
                };
                if by_partition {
                    busy.insert(lane.clone());
                }
                let sent = self.clone().send(batch);
                in_flight.push(async move {
                    sent.await;
                    lane
                });
            }
            if closed && ready.is_empty() && in_flight.is_empty() {
                return;
            }
            if pressure.is_draining() && !batchers.is_empty() {
                flush_all(&mut batchers, &mut ready);
                largest = 0;
                continue;
            }
            let may_cut = largest >= PRESSURE_CUT_BYTES
                && ready.is_empty()
                && in_flight.len() < settings.concurrency;
            if may_cut && pressure.is_on() {
                let room = settings.concurrency - in_flight.len();
                largest = cut_partial(&mut batchers, &busy, &mut ready, room);
                if !ready.is_empty() {
                    continue;
                }
            }
            let can_receive = !closed && ready.len() < settings.concurrency.max(1);
            let deadline = batchers.values().filter_map(Batcher::deadline).min();
            if let Some(at) = deadline.filter(|&at| armed != Some(at)) {
                timer.as_mut().reset(at.into());
                armed = Some(at);
            }
            tokio::select! {
                biased;
                Some(lane) = in_flight.next(), if !in_flight.is_empty() => {
                    busy.remove(&lane);
                }
                () = &mut timer, if deadline.is_some() && ready.is_empty() => {
                    armed = None;
                    let now = Instant::now();
                    for (lane, batcher) in &mut batchers {
                        if batcher.deadline().is_some_and(|d| d <= now) {
                            ready.extend(batcher.flush().map(|b| (lane.clone(), b)));
                        }
                    }
                    batchers.retain(|_, b| b.deadline().is_some());
                }
                // Pressure came on, or a partition started draining: the levels are looked
                // at above.
                () = &mut signalled, if may_cut => signalled.set(pressure.signalled()),
                () = &mut drained, if !batchers.is_empty() => drained.set(pressure.drained()),
                received = rx.recv_many(&mut inbox, RECEIVE_MANY), if can_receive => {
                    if received == 0 {
                        // Every sender is gone and the queue is empty.
                        closed = true;
                        flush_all(&mut batchers, &mut ready);
                        continue;
                    }
                    // One clock read per chunk: the copies arrived together.
                    let now = Instant::now();
                    if by_partition {
                        // Copies come in runs from one partition: one lookup per run.
                        let mut copies = inbox.drain(..).peekable();
                        while let Some(first) = copies.next() {
                            let lane = Lane::of(first.origin());
                            let batcher = batchers
                                .entry(lane.clone())
                                .or_insert_with(|| Batcher::new(limits));
                            largest = largest.max(push(batcher, first, now, &lane, &mut ready));
                            while let Some(copy) = copies.next_if(|c| lane.holds(c.origin())) {
                                largest =
                                    largest.max(push(batcher, copy, now, &lane, &mut ready));
                            }
                        }
                    } else {
                        // One lane: looked up once per receive, not per copy.
                        let batcher = batchers
                            .entry(Lane::Any)
                            .or_insert_with(|| Batcher::new(limits));
                        for copy in inbox.drain(..) {
                            largest = largest.max(push(batcher, copy, now, &Lane::Any, &mut ready));
                        }
                    }
                }
            }
        }
    }

    /// Delivers one batch: retries until every event is delivered or dead-lettered.
    fn send(self: Arc<Self>, mut batch: Vec<EventCopy>) -> BoxFuture<'static, ()> {
        async move {
            let kind: &str = &self.id.kind;
            let batching = self.destination.batching();
            if batching == Batching::Sourced {
                batch = group_by_source(batch);
            }
            let mut attempt: u32 = 0;
            let started = Instant::now();
            while !batch.is_empty() {
                let events: Vec<Arc<Event>> = batch.iter().map(|c| c.event.clone()).collect();
                let Some(permit) = self.permit(started, &batch).await else {
                    let err =
                        DeliveryError::retryable("circuit open: the destination keeps failing");
                    self.park(batch, &err).await;
                    return;
                };
                self.limiter.acquire(events.len()).await;
                let sent_at = Instant::now();
                let result = if batching == Batching::Mixed {
                    self.destination.deliver(&events).await
                } else {
                    let sources = source_ranges(&batch);
                    self.destination.deliver_from(&events, &sources).await
                };
                let retryable = matches!(&result, Err(e) if e.is_retryable());
                self.breaker.record(permit, !retryable);
                self.meters.duration.record(sent_at.elapsed().as_secs_f64());
                let err = match result {
                    Ok(()) => {
                        self.settle(batch);
                        return;
                    }
                    Err(err) => err,
                };
                self.stats.record_error(&err);
                match &err.failure {
                    Failure::Retryable { .. } => {
                        if let Some(parking) = &self.fallback.parking {
                            // Events past their inline budget (and retried ones, whose cadence
                            // is the retry topic's) are parked; the rest keep retrying here.
                            let spent = started.elapsed() >= parking.policy().inline_budget();
                            let (park, keep): (Vec<_>, Vec<_>) =
                                batch.into_iter().partition(|c| spent || c.retry.is_some());
                            self.park(park, &err).await;
                            batch = keep;
                            if batch.is_empty() {
                                return;
                            }
                        }
                        let delay = self.backoff.delay(attempt, err.retry_after());
                        self.meters.retries.increment(1);
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
                    Failure::TooLarge if batch.len() > 1 => {
                        // Halve until the destination takes it; each half keeps its own retries.
                        let tail = batch.split_off(batch.len() / 2);
                        tracing::info!(
                            kind,
                            events = batch.len() + tail.len(),
                            "request too large; splitting the batch"
                        );
                        self.clone().send(batch).await;
                        self.send(tail).await;
                        return;
                    }
                    Failure::Permanent | Failure::TooLarge => {
                        let reason = err.to_string();
                        let letters = batch.into_iter().map(|c| (c, reason.clone())).collect();
                        self.dead_letter(letters, &err).await;
                        return;
                    }
                    Failure::Rejected {
                        events: rejected,
                        others,
                    } => {
                        let mut reasons: HashMap<usize, &str> = rejected
                            .iter()
                            .map(|r| (r.index, r.reason.as_str()))
                            .collect();
                        let mut letters = Vec::with_capacity(rejected.len());
                        let mut rest = Vec::with_capacity(batch.len());
                        for (i, copy) in batch.into_iter().enumerate() {
                            match reasons.remove(&i) {
                                Some(reason) => letters.push((copy, reason.to_owned())),
                                None => rest.push(copy),
                            }
                        }
                        self.dead_letter(letters, &err).await;
                        match others {
                            Others::Delivered => {
                                self.settle(rest);
                                return;
                            }
                            Others::Resend => batch = rest,
                        }
                    }
                }
            }
        }
        .boxed()
    }

    /// Waits for the circuit breaker, but with a retry topic no longer than the batch's inline
    /// budget (none for retried events); `None` when the wait ran out.
    async fn permit(&self, started: Instant, batch: &[EventCopy]) -> Option<Permit> {
        let Some(parking) = &self.fallback.parking else {
            return Some(self.breaker.acquire().await);
        };
        let left = if batch.iter().any(|c| c.retry.is_some()) {
            Duration::ZERO
        } else {
            parking
                .policy()
                .inline_budget()
                .saturating_sub(started.elapsed())
        };
        tokio::time::timeout(left, self.breaker.acquire())
            .await
            .ok()
    }

    /// Parks copies on the retry topic (settling each once the broker has it); copies past
    /// the maximum age are dead-lettered instead.
    async fn park(&self, copies: Vec<EventCopy>, err: &DeliveryError) {
        let Some(parking) = &self.fallback.parking else {
            return;
        };
        if copies.is_empty() {
            return;
        }
        let now = now_millis();
        let reason = err.to_string();
        let mut expired = Vec::new();
        let mut parked = Vec::new();
        for copy in copies {
            match parking
                .policy()
                .next_state(copy.retry.as_deref().copied(), now)
            {
                Some(state) => parked.push((copy, state)),
                None => {
                    let attempts = copy.retry.as_ref().map_or(0, |r| r.attempt);
                    expired.push((
                        copy,
                        format!("gave up after {attempts} parked attempts: {reason}"),
                    ));
                }
            }
        }
        tracing::warn!(
            customer = &*self.id.customer,
            destination = &*self.id.name,
            kind = &*self.id.kind,
            events = parked.len(),
            error = %err,
            "destination still failing; parking events on the retry topic"
        );
        let sends = parked.into_iter().map(|(copy, state)| {
            let reason = &reason;
            async move {
                parking
                    .park(copy.event.raw(), copy.origin(), &self.id, state, reason)
                    .await;
                copy.ack.settle();
            }
        });
        futures::future::join_all(sends).await;
        self.dead_letter(expired, err).await;
    }

    fn settle(&self, batch: Vec<EventCopy>) {
        self.meters.delivered.increment(batch.len() as u64);
        self.meters.batch_events.record(batch.len() as f64);
        batch.into_iter().for_each(|c| c.ack.settle());
    }

    /// Dead-letters each copy with its reason; settles each once the broker has it.
    async fn dead_letter(&self, letters: Vec<(EventCopy, String)>, err: &DeliveryError) {
        if letters.is_empty() {
            return;
        }
        tracing::error!(
            customer = &*self.id.customer,
            destination = &*self.id.name,
            kind = &*self.id.kind,
            events = letters.len(),
            status = err.status,
            error = %err,
            "destination rejected events; dead-lettering them"
        );
        let sends = letters.into_iter().map(|(copy, reason)| async move {
            let letter = DeadLetter {
                payload: copy.event.raw(),
                origin: copy.origin(),
                stage: Stage::Deliver,
                reason: &reason,
                destination: Some(self.id.tag()),
                status: err.status,
                response: err.response.as_deref(),
            };
            if self.fallback.dead_letters.send(&letter).await.is_ok() {
                copy.ack.settle();
            }
        });
        futures::future::join_all(sends).await;
    }
}
