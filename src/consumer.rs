//! The group consumer: joining, assignment, revocation and the final commit.
//!
//! librdkafka calls rebalance callbacks from the thread that polls the consumer's main queue.
//! Courier polls it on a dedicated OS thread ([`run_poll_loop`]), never on the async runtime,
//! so a revocation may block there while partition tasks drain:
//!
//! - **Assign** (before librdkafka starts fetching): split each new partition's queue off the
//!   main queue and spawn its `PartitionTask` on the runtime; a partition the group has no
//!   committed offset for is handed to librdkafka with the start `auto.offset.reset` names
//!   (see [`crate::start`]), which spares a new group librdkafka's 100 ms reset backoff.
//! - **Revoke** (before librdkafka gives the partitions up): cancel the partitions' tasks, wait
//!   for them to drain (each bounded by the drain timeout), then commit their watermarks
//!   synchronously. Only then does the rebalance proceed, so the next owner starts exactly at
//!   the first message this worker had not finished.
//! - **Commits while running**: the consumer's `Committer` commits every running partition's
//!   watermark in one request per tick (see [`crate::commits`]).
//! - **Shutdown**: the same as revoking everything, then the consumer is closed, which leaves
//!   the group at once instead of waiting for the session timeout. Both are bounded (the
//!   drain timeout plus the session timeout): a final commit or a leave that a broker holds
//!   longer is abandoned, and the worker exits as if it had crashed after its drain.
//!
//! Invariant: every offset this module commits is a tracker watermark, so it is never past a
//! message that is not done. If the assignment was lost (the session expired), nothing is
//! committed: the partitions may already belong to another member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commits::{Committer, Pending};
use crate::partition::{Mode, PartitionEnv, PartitionTask};
use crate::status::PartitionView;

/// The worker's consumer.
pub type CourierConsumer = BaseConsumer<CourierContext>;
/// One partition's split queue.
pub type CourierPartitionQueue = PartitionQueue<CourierContext>;

type PartitionKey = (Arc<str>, i32);

/// The confirmed offset of a partition nothing was committed for yet.
pub(crate) const NOT_CONFIRMED: i64 = -1;

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Option<i64>>,
    /// The task's published watermark and the last offset the broker confirmed.
    view: Arc<PartitionView>,
}

/// Rebalance handling and the registry of running partition tasks.
pub struct CourierContext {
    consumer: OnceLock<Weak<CourierConsumer>>,
    runtime: Handle,
    env: Arc<PartitionEnv>,
    running: Mutex<HashMap<PartitionKey, Running>>,
    /// Where a new partition without a committed offset starts (`auto.offset.reset`), or
    /// `None` to leave that to librdkafka.
    uncommitted_start: Option<Offset>,
    /// Every commit of this consumer.
    pub(crate) committer: Committer,
}

impl std::fmt::Debug for CourierContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.running.lock().map(|r| r.len()).unwrap_or_default();
        f.debug_struct("CourierContext")
            .field("partitions", &running)
            .finish_non_exhaustive()
    }
}

impl CourierContext {
    /// A context whose partition tasks run on `runtime`, for a consumer whose
    /// `auto.offset.reset` is `offset_reset` (librdkafka's default, `largest`, when `None`).
    pub fn new(runtime: Handle, env: Arc<PartitionEnv>, offset_reset: Option<&str>) -> Self {
        CourierContext {
            consumer: OnceLock::new(),
            runtime,
            env,
            running: Mutex::new(HashMap::new()),
            uncommitted_start: crate::start::uncommitted_start(offset_reset.unwrap_or("largest")),
            committer: Committer::default(),
        }
    }

    /// Gives the context its consumer, which it needs to split partition queues. Call once,
    /// right after creating the consumer and before subscribing.
    pub fn bind(consumer: &Arc<CourierConsumer>) {
        let context = consumer.context();
        if context.consumer.set(Arc::downgrade(consumer)).is_ok() {
            let interval = Duration::from_millis(context.env.limits.commit_interval_ms);
            context
                .committer
                .start(&context.runtime, Arc::downgrade(consumer), interval);
        }
    }

    /// The running partitions whose published watermark the broker has not confirmed.
    pub(crate) fn unconfirmed_watermarks(&self) -> Vec<Pending> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .filter_map(|((topic, partition), r)| {
                let offset = r.view.watermark.load(Ordering::Acquire);
                (offset >= 0 && offset != r.view.confirmed.load(Ordering::Acquire)).then(|| {
                    Pending {
                        topic: topic.clone(),
                        partition: *partition,
                        offset,
                        view: r.view.clone(),
                    }
                })
            })
            .collect()
    }

    fn start(&self, tpl: &TopicPartitionList) {
        let Some(bound) = self.consumer.get() else {
            tracing::error!("assignment before the consumer was bound; ignoring it");
            return;
        };
        let Some(consumer) = bound.upgrade() else {
            // An assignment that completes while the consumer closes: nothing consumes it.
            tracing::info!("assignment while closing; ignoring it");
            return;
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for elem in tpl.elements() {
            let key: PartitionKey = (Arc::from(elem.topic()), elem.partition());
            if running.contains_key(&key) {
                continue;
            }
            let Some(queue) = consumer.split_partition_queue(elem.topic(), elem.partition()) else {
                tracing::error!(
                    topic = elem.topic(),
                    partition = elem.partition(),
                    "cannot split partition queue"
                );
                continue;
            };
            let cancel = CancellationToken::new();
            let view = Arc::new(PartitionView {
                confirmed: AtomicI64::new(NOT_CONFIRMED),
                watermark: AtomicI64::new(NOT_CONFIRMED),
                in_flight: AtomicUsize::new(0),
                lag: AtomicI64::new(-1),
            });
            self.env
                .status
                .assign(self.env.mode, key.0.clone(), key.1, view.clone());
            let task = PartitionTask::new(
                consumer.clone(),
                key.0.clone(),
                key.1,
                self.env.clone(),
                view.clone(),
                self.committer.nudge(),
            );
            let task = self.runtime.spawn(task.run(queue, cancel.clone()));
            running.insert(key, Running { cancel, task, view });
        }
        metrics::gauge!("courier_assigned_partitions").set(running.len() as f64);
    }

    /// Stops the given partitions' tasks, waits for their drain and commits their watermarks.
    fn stop(&self, consumer: &CourierConsumer, keys: Vec<PartitionKey>) {
        let stopping: Vec<(PartitionKey, Running)> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let stopping = keys
                .into_iter()
                .filter_map(|k| running.remove(&k).map(|r| (k, r)))
                .collect::<Vec<_>>();
            for ((topic, partition), _) in &stopping {
                self.env.status.release(self.env.mode, topic, *partition);
            }
            metrics::gauge!("courier_assigned_partitions").set(running.len() as f64);
            stopping
        };
        if stopping.is_empty() {
            return;
        }
        for (_, r) in &stopping {
            r.cancel.cancel();
        }
        let mut last = Vec::new();
        for ((topic, partition), r) in stopping {
            match self.runtime.block_on(r.task) {
                // The broker confirmed this watermark already: nothing to send.
                Ok(Some(offset)) if offset == r.view.confirmed.load(Ordering::Acquire) => {}
                Ok(Some(offset)) => last.push(Pending {
                    topic,
                    partition,
                    offset,
                    view: r.view,
                }),
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(topic = &*topic, partition, error = %err, "partition task failed; not committing it")
                }
            }
        }
        if last.is_empty() {
            return;
        }
        if consumer.assignment_lost() {
            tracing::warn!(
                "assignment lost; not committing revoked partitions (they will be redelivered)"
            );
            return;
        }
        // The stopped partitions left the running set above, so the committer's commit in
        // flight, if any, lands before this one and none after it includes them.
        let listed: Vec<(Arc<str>, i32, i64)> = last
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.offset))
            .collect();
        match self.committer.commit(consumer, || last) {
            Some(Ok(())) => {
                for (topic, partition, offset) in listed {
                    tracing::info!(topic = &*topic, partition, offset, "committed on release");
                }
            }
            Some(Err(err)) => {
                tracing::error!(error = %err, "final commit failed; the next owner will redeliver from the previous commit")
            }
            None => {}
        }
    }

    fn keys(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
        tpl.elements()
            .iter()
            .map(|e| (Arc::from(e.topic()), e.partition()))
            .collect()
    }
}

impl ClientContext for CourierContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): the consumer lag of each
    /// assigned partition, as a gauge and in `/status`.
    fn stats(&self, statistics: Statistics) {
        let flow = match self.env.mode {
            Mode::Main => "main",
            Mode::Retry => "retry",
        };
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                let Some(view) = self.env.status.partition(self.env.mode, topic, *partition) else {
                    continue;
                };
                view.lag.store(p.consumer_lag, Ordering::Relaxed);
                metrics::gauge!("courier_consumer_lag_messages", "flow" => flow, "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for CourierContext {
    /// rdkafka's own rebalance handling (pre-rebalance, then the assign or unassign call of
    /// the group's protocol), with the assignment's start offsets resolved first.
    fn rebalance(
        &self,
        consumer: &CourierConsumer,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let unassign = || {
            if cooperative {
                consumer.incremental_unassign(tpl)
            } else {
                consumer.unassign()
            }
        };
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Assign(tpl));
                if let Some(start) = self.uncommitted_start {
                    let set = crate::start::resolve(consumer, tpl, start);
                    tracing::debug!(partitions = set, offset = ?start, "starting partitions without a committed offset");
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(tpl));
                unassign()
            }
            other => {
                let code = RDKafkaErrorCode::from(other);
                self.pre_rebalance(consumer, &Rebalance::Error(KafkaError::Rebalance(code)));
                unassign()
            }
        };
        if let Err(err) = result {
            tracing::error!(error = %err, "applying the rebalance failed");
        }
    }

    fn pre_rebalance(&self, consumer: &CourierConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if self.env.mode == Mode::Main {
                    self.env.status.set_joined();
                }
                tracing::info!(partitions = ?Self::keys(tpl).iter().map(|(t, p)| format!("{t}/{p}")).collect::<Vec<_>>(), "assigned");
                self.start(tpl);
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = ?Self::keys(tpl).iter().map(|(t, p)| format!("{t}/{p}")).collect::<Vec<_>>(), "revoked");
                self.stop(consumer, Self::keys(tpl));
            }
            Rebalance::Error(err) => tracing::error!(error = %err, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(err) = &result {
            tracing::warn!(error = %err, partitions = offsets.count(), "offset commit failed; the next commit retries it");
        }
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for e in offsets.elements() {
            let (Ok(()), Offset::Offset(offset)) = (e.error(), e.offset()) else {
                continue;
            };
            if let Some(r) = running.get(&(Arc::from(e.topic()), e.partition())) {
                r.view.confirmed.store(offset, Ordering::Release);
            }
        }
    }
}

/// Serves the consumer's main queue (rebalances, errors, commit results) until `shutdown`,
/// then drains and commits every partition and closes the consumer (leaving the group),
/// waiting at most `timeout` for those. Blocking: run it on its own thread.
///
/// The bound is there because a broker may hold the final commit, or the leaving, for a long
/// time: requests on the group coordinator's connection wait behind a JoinGroup that the
/// broker holds until the rebalance completes (up to the rebalance timeout, librdkafka's
/// `max.poll.interval.ms`: 5 minutes by default), and an unresponsive broker answers nothing
/// before `socket.timeout.ms`. Past the bound the worker exits as if it had crashed after
/// its drain: at least once still holds, because only confirmed commits count, and the
/// unfinished work goes on in the background until the process ends.
pub fn run_poll_loop(
    consumer: Arc<CourierConsumer>,
    shutdown: CancellationToken,
    timeout: Duration,
) {
    while !shutdown.is_cancelled() {
        match consumer.poll(crate::kafka::POLL_WAIT) {
            None => {}
            Some(Ok(m)) => {
                // Partition queues are split before assignment, so this means a bug; the
                // message is not tracked, so it is left to redelivery.
                metrics::counter!("courier_unexpected_main_queue_messages_total").increment(1);
                tracing::error!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "message on the main queue"
                );
            }
            Some(Err(err)) => tracing::warn!(error = %err, "consumer error"),
        }
    }
    tracing::info!("shutting down: draining partitions");
    let (finished_tx, finished_rx) = std::sync::mpsc::channel();
    let finishing = std::thread::Builder::new()
        .name("courier-finish".into())
        .spawn(move || {
            finish(consumer);
            let _ = finished_tx.send(());
        });
    if let Err(err) = finishing {
        // The closure was dropped unrun, and the consumer with it: closed, not committed.
        tracing::error!(error = %err, "cannot start the finishing thread; exiting without the final commits");
    } else if finished_rx.recv_timeout(timeout).is_err() {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "the final commits and leaving the group did not finish in time; exiting without them: the next owner starts from the last confirmed commit, and the group reassigns the partitions after the session timeout"
        );
    }
}

/// Drains and commits every running partition, stops the committer, and drops the last
/// reference to `consumer` (the committer task, which held it while committing, has ended),
/// which closes it and leaves the group.
fn finish(consumer: Arc<CourierConsumer>) {
    let context = consumer.context();
    let all: Vec<PartitionKey> = context
        .running
        .lock()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    context.stop(&consumer, all);
    context.committer.stop(&context.runtime);
    drop(consumer);
    tracing::info!("consumer closed");
}
