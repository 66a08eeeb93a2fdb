//! One task per assigned partition: decode, route, fan out, track, commit.
//!
//! The task owns its partition's queue (split from the consumer, so partitions progress
//! independently) and its [`OffsetTracker`]. The messages it polls in one go form a *run* with
//! one [`MessageAck`] (see [`crate::ack`]); for each message it either dead-letters it (it
//! cannot decode, or its write key belongs to no customer) or sends one copy to each enabled
//! destination whose filter passes and that accepts the event, each copy holding a share of
//! the run's acknowledgement. The run is then closed and tracked by its last offset. On the
//! retry topic ([`Mode::Retry`]) it instead waits until the parked event is due and sends one
//! copy to the one destination its headers name; there every message is a run of its own, so
//! one event's wait never holds back the completion of the ones before it.
//!
//! Invariants:
//! - the committed offset is always the tracker's watermark: never past a message that is not
//!   done (a run is done only when every copy of every message in it is);
//! - the task publishes its watermark in its [`PartitionView`] after every completion and never
//!   commits itself: the consumer's committer ([`crate::commits`]) commits every partition's
//!   watermark in one request per `commit_interval_ms`, and soon after a task has caught up
//!   (everything it took is done), so an idle partition's committed offset is current;
//! - at most `max_in_flight_per_partition` messages are in flight; at the bound the partition is
//!   paused in librdkafka (no fetching) and resumed below half of it;
//! - every message in flight holds a share of the consumer's [`Budget`] in its bytes: messages
//!   are copied out of librdkafka in small chunks, each holding one share for its bytes, given
//!   back when the last copy, batch or dead letter holding any of them drops (see
//!   `chunk.rs`); a task that finds the budget spent keeps the chunk it polled, takes no
//!   other, and routes it once its share is free.
//!   It pauses the partition in librdkafka only once it has gone `PAUSE_AFTER_STARVING`
//!   without a share taken at once: a pause drops the partition's prefetched messages, which
//!   are fetched again on resume, and a budget that frees up within moments (a fast
//!   destination) would pay that refetch over and over;
//! - on cancellation (revoke or shutdown) the task stops taking messages, waits up to the drain
//!   timeout for in-flight ones (meanwhile destinations send their partial batches at once),
//!   and returns the final watermark for the caller to commit synchronously. Whatever is not
//!   done by then is redelivered to the next owner.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use courier_connectors::{Event, Rejected, SmolStr};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ack::MessageAck;
use crate::budget::Budget;
use crate::chunk::{Chunk, Held, Inbound, CHUNK_MESSAGES};
use crate::consumer::{CourierConsumer, CourierPartitionQueue};
use crate::deadletter::{DeadLetter, DeadLetters, Origin, Stage};
use crate::deliver::{DestinationHandle, EventCopy};
use crate::fetch::{BatchReader, RawMessage};
use crate::retry;
use crate::route::{RoutingTable, Target};
use crate::settings::ConsumerSettings;
use crate::status::PartitionView;
use crate::tracker::OffsetTracker;

/// Messages taken from the queue before the task yields to its other duties.
const POLL_BUDGET: usize = 256;

/// How long a partition may find the budget spent (no share taken at once since) before it is
/// paused in librdkafka. Shorter waits keep the partition's prefetched messages; a longer
/// one (destinations that are slow to give shares back) stops its fetching, so librdkafka's
/// buffers shrink while the bytes in flight are stuck. 250 ms: the webhook benchmark (W3)
/// drained ~25% faster than when pausing at once, and the 100-customer `mix` peaked no
/// higher (bench/RESULTS.md).
const PAUSE_AFTER_STARVING: Duration = Duration::from_millis(250);

/// Messages taken from librdkafka's queue in one call, at most. Taken messages are copied out
/// before they have a budget share, so a call takes no more than the budget has KiB free right
/// now (and at least one): a partition that finds the budget spent holds at most one call's
/// messages beyond it.
const FETCH_BATCH: usize = 256;

/// What every partition task shares.
#[derive(Debug)]
pub struct PartitionEnv {
    /// The current routing table.
    pub routes: Arc<ArcSwap<RoutingTable>>,
    /// The dead-letter producer.
    pub dead_letters: DeadLetters,
    /// Limits and timings.
    pub limits: ConsumerSettings,
    /// The bytes all partitions of this consumer may hold undone.
    pub budget: Budget,
    /// Which topic the tasks serve.
    pub mode: Mode,
    /// Where the tasks report assignment, commits and in-flight counts.
    pub status: Arc<crate::status::Status>,
}

/// A message of the retry flow, alone in its chunk with its headers (they carry the retry
/// state).
fn retry_chunk(m: &rdkafka::message::BorrowedMessage<'_>) -> Chunk {
    let raw = RawMessage {
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        payload: m.payload().unwrap_or_default(),
        key: m.key(),
    };
    Chunk::single(&raw, m.headers().map(|h| h.detach()))
}

/// Which topic a partition task serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// The main topics: route each event to its customer's destinations.
    Main,
    /// The retry topic: send each parked event to its one destination when due.
    Retry,
}

/// Sends a copy to a destination's queue; false when cancelled first. A stopped destination
/// (its task gone) leaves the copy unsettled: the message is held, never dropped.
async fn send(handle: &DestinationHandle, copy: EventCopy, cancel: &CancellationToken) -> bool {
    // Fast path: room in the queue (the common case) needs no waiting machinery.
    let copy = match handle.queue.try_send(copy) {
        Ok(()) => return true,
        Err(TrySendError::Full(copy) | TrySendError::Closed(copy)) => copy,
    };
    let offset = copy.origin().offset;
    tokio::select! {
        biased;
        // The unsent copy and the root share drop unsettled: the message is not done.
        () = cancel.cancelled() => false,
        sent = handle.queue.send(copy) => {
            if sent.is_err() {
                tracing::error!(
                    customer = &*handle.id.customer,
                    destination = &*handle.id.name,
                    offset,
                    "destination is stopped; holding the message"
                );
            }
            true
        }
    }
}

/// Sends `event`'s copy, with a share of `ack`, to `target`; false when cancelled first.
async fn send_event(
    target: &Target,
    event: Arc<Event>,
    ack: &MessageAck,
    cancel: &CancellationToken,
) -> bool {
    let copy = EventCopy {
        event,
        ack: ack.share(),
        retry: None,
    };
    send(&target.handle, copy, cancel).await
}

/// The run being routed: its first share, last offset and size.
struct Run {
    root: MessageAck,
    last: i64,
    messages: usize,
    bytes: usize,
}

impl Run {
    fn open(done: &UnboundedSender<i64>) -> Run {
        Run {
            root: MessageAck::open(done.clone()),
            last: -1,
            messages: 0,
            bytes: 0,
        }
    }

    /// Counts `msg` into the run.
    fn add(&mut self, msg: &Inbound) {
        self.last = msg.offset;
        self.messages += 1;
        self.bytes += msg.payload.len();
    }
}

/// The state of one partition's task.
pub(crate) struct PartitionTask {
    consumer: Arc<CourierConsumer>,
    /// The topic, as each message's origin holds it (inline when short: no shared count).
    topic: SmolStr,
    partition: i32,
    env: Arc<PartitionEnv>,
    tracker: OffsetTracker,
    /// Where the task publishes its watermark and in-flight count; the committer records the
    /// confirmed offset there (a watermark that differs is committed again on the next tick,
    /// so a commit that failed during a rebalance is retried even when the watermark no longer
    /// moves).
    view: Arc<PartitionView>,
    /// Asks the consumer's committer to commit now.
    commit_now: Arc<Notify>,
    paused: bool,
    /// Since when the task has found the budget spent: set by a share not there at once,
    /// cleared by a share taken at once (a share that came after a wait does not end it).
    starved_since: Option<Instant>,
    /// A chunk of polled messages waiting for its share of the budget.
    waiting: Option<Chunk>,
    /// Chunks taken from the queue and not given their share yet.
    fetched: VecDeque<Chunk>,
    /// The chunk being routed, with its share.
    current: Option<Held>,
    /// The batch reader of the main flow (`None` in the retry flow, which reads headers).
    reader: Option<BatchReader>,
    /// Metric handles, resolved once (a labelled lookup per message would cost more than the
    /// increment).
    meters: Meters,
}

struct Meters {
    consumed: metrics::Counter,
    consumed_bytes: metrics::Counter,
    budget_waits: metrics::Counter,
    in_flight: metrics::Gauge,
}

impl PartitionTask {
    pub(crate) fn new(
        consumer: Arc<CourierConsumer>,
        topic: Arc<str>,
        partition: i32,
        env: Arc<PartitionEnv>,
        view: Arc<PartitionView>,
        commit_now: Arc<Notify>,
    ) -> Self {
        let labels = [
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ];
        let meters = Meters {
            consumed: metrics::counter!("courier_consumed_messages_total"),
            consumed_bytes: metrics::counter!("courier_consumed_bytes_total"),
            budget_waits: metrics::counter!("courier_budget_waits_total"),
            in_flight: metrics::gauge!("courier_partition_in_flight_messages", &labels),
        };
        let reader = match env.mode {
            Mode::Main => BatchReader::new(&consumer, &topic, partition),
            Mode::Retry => None,
        };
        PartitionTask {
            consumer,
            topic: SmolStr::from(&*topic),
            partition,
            env,
            tracker: OffsetTracker::new(),
            view,
            commit_now,
            paused: false,
            starved_since: None,
            waiting: None,
            fetched: VecDeque::new(),
            current: None,
            reader,
            meters,
        }
    }

    /// Runs until `cancel`, then drains; returns the watermark to commit, if any message was
    /// done.
    pub(crate) async fn run(
        mut self,
        mut queue: CourierPartitionQueue,
        cancel: CancellationToken,
    ) -> Option<i64> {
        let wake = Arc::new(Notify::new());
        let waker = wake.clone();
        queue.set_nonempty_callback(move || waker.notify_one());
        let (done_tx, mut done_rx) = unbounded_channel();
        tracing::info!(
            topic = &*self.topic,
            partition = self.partition,
            "partition started"
        );
        'run: loop {
            let mut budget = POLL_BUDGET;
            let mut run: Option<Run> = None;
            while !self.paused && budget > 0 && self.waiting.is_none() {
                let Some(inbound) = self.next(&queue, budget) else {
                    break;
                };
                budget -= 1;
                let open = run.get_or_insert_with(|| Run::open(&done_tx));
                open.add(&inbound);
                let routed = open.messages;
                // A run never closed (cancelled mid-way) is never reported: not done.
                if !self.dispatch(inbound, &open.root, &cancel).await {
                    break 'run;
                }
                if self.env.mode == Mode::Retry {
                    self.close(run.take());
                }
                if self.tracker.in_flight() + routed >= self.env.limits.max_in_flight_per_partition
                {
                    self.set_paused(true);
                }
            }
            self.close(run);
            let more = budget == 0 && self.waiting.is_none();
            let wanted = self.waiting.as_ref().map_or(0, Chunk::bytes);
            let pause_at = self.starved_since.map(|since| since + PAUSE_AFTER_STARVING);
            let budget_free = self.env.budget.clone();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(offset) = done_rx.recv() => self.complete(offset, &mut done_rx),
                share = budget_free.take(wanted), if self.waiting.is_some() => {
                    // Routed by the loop above, from the next turn on.
                    self.current = self.waiting.take().map(|chunk| chunk.hold(share));
                    if self.paused
                        && self.tracker.in_flight() < self.env.limits.max_in_flight_per_partition
                    {
                        self.set_paused(false);
                    }
                }
                () = tokio::time::sleep_until(pause_at.unwrap_or_else(Instant::now).into()),
                    if self.waiting.is_some() && !self.paused =>
                {
                    self.set_paused(true);
                }
                () = tokio::task::yield_now(), if more => {}
                () = wake.notified(), if !self.paused => {}
            }
        }
        {
            // Destinations send their partial batches now instead of at their age.
            let _draining = crate::pressure::pressure().drain();
            self.drain(&mut done_rx).await;
        }
        // librdkafka keeps a partition's pause across revoke and re-assignment: leave none
        // behind, or this worker would never fetch the partition again if it came back.
        if self.paused {
            self.set_paused(false);
        }
        tracing::info!(
            topic = &*self.topic,
            partition = self.partition,
            watermark = self.tracker.watermark(),
            abandoned = self.tracker.in_flight(),
            "partition stopped"
        );
        self.tracker.watermark()
    }

    /// The next message to route, with its share of the budget: from the chunk being routed,
    /// else from the next chunk taken, else from a new batch of up to `max` (and
    /// [`FETCH_BATCH`], and the budget's free KiB; main flow) or one message polled alone with
    /// its headers (retry flow). `None` when nothing is fetched, or when the next chunk's share
    /// is not there (the chunk then waits in `waiting`).
    fn next(&mut self, queue: &CourierPartitionQueue, max: usize) -> Option<Inbound> {
        loop {
            if let Some(held) = &mut self.current {
                let inbound = held.next();
                if held.is_empty() {
                    self.current = None;
                }
                if inbound.is_some() {
                    return inbound;
                }
            }
            let chunk = match self.fetched.pop_front() {
                Some(chunk) => chunk,
                None => self.fetch(queue, max)?,
            };
            let Some(share) = self.env.budget.try_take(chunk.bytes()) else {
                self.starve(chunk);
                return None;
            };
            self.starved_since = None;
            self.current = Some(chunk.hold(share));
        }
    }

    /// Takes what librdkafka has fetched (see [`Self::next`]) and returns its first chunk.
    fn fetch(&mut self, queue: &CourierPartitionQueue, max: usize) -> Option<Chunk> {
        let (topic, partition) = (&self.topic, self.partition);
        let consume_error = |err: KafkaError| {
            tracing::warn!(topic = &**topic, partition, error = %err, "consume error");
        };
        match &mut self.reader {
            Some(reader) => {
                // No more messages than the budget has KiB free: they wait unshared.
                let budget = &self.env.budget;
                let available = budget.available_bytes();
                let max = max.min(FETCH_BATCH).min((available / 1024).max(1));
                // Chunks only while most of the budget is free: under pressure a chunk's bytes
                // would wait for its slowest message.
                let per_chunk = if available >= budget.total_bytes() / 4 * 3 {
                    CHUNK_MESSAGES
                } else {
                    1
                };
                let fetched = &mut self.fetched;
                reader.read(max, consume_error, |messages| {
                    Chunk::copy_out(messages, per_chunk, fetched);
                });
                self.fetched.pop_front()
            }
            None => loop {
                match queue.poll(Duration::ZERO)? {
                    Ok(m) => return Some(retry_chunk(&m)),
                    Err(err) => consume_error(err),
                }
            },
        }
    }

    /// Closes and tracks a routed run; its acknowledgement reports it once every copy is
    /// settled.
    fn close(&mut self, run: Option<Run>) {
        let Some(run) = run else {
            return;
        };
        self.meters.consumed.increment(run.messages as u64);
        self.meters.consumed_bytes.increment(run.bytes as u64);
        self.tracker.track(run.last, run.messages);
        run.root.close(run.last);
    }

    /// Routes one message of the run `ack` is the first share of; returns false when
    /// cancelled mid-way (the run stays not done).
    async fn dispatch(&self, msg: Inbound, ack: &MessageAck, cancel: &CancellationToken) -> bool {
        let origin = Origin {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: msg.offset,
            timestamp_ms: msg.timestamp_ms,
            key: msg.key.clone(),
        };
        match self.env.mode {
            Mode::Main => self.route(msg.payload, origin, ack, cancel).await,
            Mode::Retry => self.retry(msg, origin, ack, cancel).await,
        }
    }

    /// Main flow: one copy to each of the customer's enabled destinations that wants it.
    async fn route(
        &self,
        payload: Bytes,
        origin: Origin,
        ack: &MessageAck,
        cancel: &CancellationToken,
    ) -> bool {
        let max_bytes = self.env.limits.max_message_bytes;
        let event = match Event::parse_at(payload, max_bytes, origin) {
            Ok(event) => event,
            Err(rejected) => {
                self.dead_letter_undecodable(*rejected, ack);
                return true;
            }
        };
        let customer = self
            .env
            .routes
            .load()
            .customer(event.write_key_bytes())
            .cloned();
        let Some(customer) = customer else {
            let reason = "unknown write key".into();
            self.dead_letter(
                event.raw().clone(),
                event.origin().clone(),
                Stage::Route,
                reason,
                ack,
            );
            return true;
        };
        let event = Arc::new(event);
        // Each wanting destination's copy is sent once the next one is known, so the last copy
        // takes the message's own reference: with one destination (the common case) no count
        // is raised here only to be lowered at the end of this call.
        let mut pending: Option<&Target> = None;
        for target in &customer.targets {
            if !(target.filter.accepts(&event) && target.handle.destination.accepts(&event)) {
                continue;
            }
            if let Some(earlier) = pending.replace(target) {
                if !send_event(earlier, event.clone(), ack, cancel).await {
                    return false;
                }
            }
        }
        match pending {
            Some(last) => send_event(last, event, ack, cancel).await,
            None => true,
        }
    }

    /// Retry flow: wait until the parked event is due, then one copy to its one destination.
    async fn retry(
        &self,
        msg: Inbound,
        here: Origin,
        ack: &MessageAck,
        cancel: &CancellationToken,
    ) -> bool {
        let parked = match retry::parse(msg.headers.as_ref(), msg.key) {
            Ok(parked) => parked,
            Err(reason) => {
                self.dead_letter(msg.payload, here, Stage::Decode, reason, ack);
                return true;
            }
        };
        let origin = parked.origin.clone();
        let wait = parked.not_before_ms - retry::now_millis();
        if wait > 0 {
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
        let handle = self
            .env
            .routes
            .load()
            .destination(&parked.customer, &parked.destination)
            .cloned();
        let Some(handle) = handle else {
            let reason = format!(
                "destination {}/{} is no longer enabled; the parked event cannot be retried",
                parked.customer, parked.destination
            );
            self.dead_letter(msg.payload, origin, Stage::Route, reason, ack);
            return true;
        };
        let event = match Event::parse_at(msg.payload, usize::MAX, origin) {
            Ok(event) => Arc::new(event),
            Err(rejected) => {
                self.dead_letter_undecodable(*rejected, ack);
                return true;
            }
        };
        let copy = EventCopy {
            event,
            ack: ack.share(),
            retry: Some(Box::new(parked.state)),
        };
        send(&handle, copy, cancel).await
    }

    /// Dead-letters a payload that is not a Segment event, with its reason.
    fn dead_letter_undecodable(&self, rejected: Rejected, ack: &MessageAck) {
        let Rejected {
            raw,
            origin,
            reason,
        } = rejected;
        self.dead_letter(raw, origin, Stage::Decode, reason.to_string(), ack);
    }

    /// Dead-letters one message of the run `ack` is the first share of, in the background.
    fn dead_letter(
        &self,
        payload: Bytes,
        origin: Origin,
        stage: Stage,
        reason: String,
        ack: &MessageAck,
    ) {
        let dead_letters = self.env.dead_letters.clone();
        let ack = ack.share();
        tokio::spawn(async move {
            let letter = DeadLetter {
                payload: &payload,
                origin: &origin,
                stage,
                reason: &reason,
                destination: None,
                status: None,
                response: None,
            };
            if dead_letters.send(&letter).await.is_ok() {
                ack.settle();
            }
        });
    }

    fn complete(&mut self, offset: i64, done_rx: &mut UnboundedReceiver<i64>) {
        self.tracker.complete(offset);
        while let Ok(offset) = done_rx.try_recv() {
            self.tracker.complete(offset);
        }
        let watermark = self.tracker.watermark();
        if let Some(offset) = watermark {
            self.view.watermark.store(offset, Ordering::Release);
        }
        let in_flight = self.tracker.in_flight();
        self.view.in_flight.store(in_flight, Ordering::Relaxed);
        self.meters.in_flight.set(in_flight as f64);
        if self.paused
            && self.waiting.is_none()
            && self.tracker.in_flight() <= self.env.limits.max_in_flight_per_partition / 2
        {
            self.set_paused(false);
        }
        // Caught up (everything taken is done): ask for a commit now instead of at the next
        // tick, so an idle partition's committed offset (and its lag) is current, and the end
        // of a burst does not wait up to a commit interval. The committer spaces such commits
        // and lets partitions that catch up together share one.
        let caught_up = in_flight == 0
            && self.waiting.is_none()
            && self.fetched.is_empty()
            && self.current.is_none();
        if caught_up && watermark.is_some_and(|w| w != self.view.confirmed.load(Ordering::Acquire))
        {
            self.commit_now.notify_one();
        }
    }

    /// Keeps `chunk` until the budget has its share; pauses the partition if the task has
    /// been starved of shares for [`PAUSE_AFTER_STARVING`] already (else the run loop pauses
    /// it when that time comes, if the share has not come first).
    fn starve(&mut self, chunk: Chunk) {
        self.meters.budget_waits.increment(1);
        tracing::debug!(
            topic = &*self.topic,
            partition = self.partition,
            bytes = chunk.bytes(),
            "budget spent; waiting for a share"
        );
        self.waiting = Some(chunk);
        let now = Instant::now();
        let since = *self.starved_since.get_or_insert(now);
        if now.duration_since(since) >= PAUSE_AFTER_STARVING {
            self.set_paused(true);
        }
    }

    fn set_paused(&mut self, paused: bool) {
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition(&self.topic, self.partition);
        let result = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match result {
            Ok(()) => {
                self.paused = paused;
                tracing::debug!(
                    topic = &*self.topic,
                    partition = self.partition,
                    paused,
                    in_flight = self.tracker.in_flight(),
                    "backpressure"
                );
            }
            // Not pausing only means librdkafka keeps its bounded prefetch; we still stop polling.
            Err(err) => {
                self.paused = paused;
                tracing::warn!(topic = &*self.topic, partition = self.partition, error = %err, "pause/resume failed");
            }
        }
    }

    /// Waits for in-flight messages until none is left or the drain timeout passes.
    async fn drain(&mut self, done_rx: &mut UnboundedReceiver<i64>) {
        let deadline = Instant::now() + Duration::from_millis(self.env.limits.drain_timeout_ms);
        while self.tracker.in_flight() > 0 {
            tokio::select! {
                Some(offset) = done_rx.recv() => self.complete(offset, done_rx),
                () = tokio::time::sleep_until(deadline.into()) => {
                    tracing::warn!(
                        topic = &*self.topic,
                        partition = self.partition,
                        in_flight = self.tracker.in_flight(),
                        "drain timeout; messages not done will be redelivered to the next owner"
                    );
                    return;
                }
            }
        }
    }
}
