//! Offset commits: one request per consumer for all of its partitions.
//!
//! Partition tasks never commit. Each publishes its tracker's watermark in its
//! [`PartitionView`], and the consumer's committer commits the watermarks of all running
//! partitions that the broker has not confirmed yet, in one synchronous `OffsetCommit` on the
//! blocking pool. It does so every `commit_interval_ms`, and soon after a partition that has
//! caught up asks for it (`Committer::nudge`): such commits are `nudged_gap` apart at
//! least, so partitions that catch up together, or a trickle of events that catches up after
//! every one, share requests. A worker with 128 partitions thus sends one request per interval
//! instead of 128 (plus at most one per gap when partitions catch up), and holds at most one
//! blocking thread in a commit instead of one per partition.
//!
//! Invariants:
//! - only watermarks are committed, so never an offset past a message that is not done;
//! - one commit at a time per consumer: every commit, the committer's and the final one of a
//!   released partition, runs under one lock, and the committer reads which partitions are
//!   running under that lock. A partition is removed from the running set before its final
//!   commit, so no commit that started earlier can land after that one with an older
//!   watermark, and none that starts later includes the partition;
//! - a failed commit is simply made again: the watermark still differs from the confirmed
//!   offset at the next tick.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::consumer::CourierConsumer;
use crate::status::PartitionView;

/// The least time between two commits asked for by partitions that caught up: a tenth of the
/// commit interval, and at most 100 ms.
pub(crate) fn nudged_gap(interval: Duration) -> Duration {
    (interval / 10).min(Duration::from_millis(100))
}

/// One partition's offset to commit, with the view whose confirmed offset it sets.
pub(crate) struct Pending {
    /// The topic.
    pub(crate) topic: Arc<str>,
    /// The partition.
    pub(crate) partition: i32,
    /// The watermark to commit.
    pub(crate) offset: i64,
    /// Where the confirmed offset is kept.
    pub(crate) view: Arc<PartitionView>,
}

/// The commits of one consumer.
#[derive(Debug, Default)]
pub(crate) struct Committer {
    /// Held across every commit of the consumer (see the invariants).
    one_at_a_time: Mutex<()>,
    /// Asks for a commit now.
    nudge: Arc<Notify>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    /// What a partition task notifies when it has caught up and its watermark should be
    /// committed now rather than at the next tick.
    pub(crate) fn nudge(&self) -> Arc<Notify> {
        self.nudge.clone()
    }

    /// Starts the committer task on `runtime`: every `interval`, and when nudged, it commits
    /// the running partitions' watermarks that differ from their confirmed offsets.
    pub(crate) fn start(
        &self,
        runtime: &Handle,
        consumer: Weak<CourierConsumer>,
        interval: Duration,
    ) {
        let nudge = self.nudge.clone();
        let cancel = self.cancel.clone();
        let gap = nudged_gap(interval);
        let task = runtime.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                    () = nudge.notified() => {
                        // Whatever else catches up meanwhile goes in the same request.
                        let wait = gap.saturating_sub(last.elapsed());
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                last = Instant::now();
                let Some(consumer) = consumer.upgrade() else {
                    return;
                };
                let committed = tokio::task::spawn_blocking(move || {
                    let context = consumer.context();
                    let result = context
                        .committer
                        .commit(&consumer, || context.unconfirmed_watermarks());
                    if let Some(Err(err)) = result {
                        tracing::warn!(error = %err, "commit failed; retrying on the next tick");
                    }
                })
                .await;
                if let Err(err) = committed {
                    tracing::error!(error = %err, "the commit task failed");
                }
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Stops the committer task and waits for its commit in flight, if any. Blocking: call it
    /// from the poll thread, after the final commits and before the consumer is closed.
    pub(crate) fn stop(&self, runtime: &Handle) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = runtime.block_on(task);
        }
    }

    /// Commits what `pending` returns (called under the commit lock) in one synchronous
    /// request and records the confirmed offsets; `None` when there was nothing to commit.
    /// Blocking; the caller logs a failure.
    pub(crate) fn commit(
        &self,
        consumer: &CourierConsumer,
        pending: impl FnOnce() -> Vec<Pending>,
    ) -> Option<KafkaResult<()>> {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let pending = pending();
        let mut tpl = TopicPartitionList::with_capacity(pending.len());
        for p in &pending {
            if let Err(err) =
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset))
            {
                tracing::error!(topic = &*p.topic, partition = p.partition, error = %err, "cannot list an offset to commit");
            }
        }
        if tpl.count() == 0 {
            return None;
        }
        let started = std::time::Instant::now();
        let result = consumer.commit(&tpl, CommitMode::Sync);
        let outcome = match &result {
            Ok(()) => {
                for p in &pending {
                    p.view.confirmed.store(p.offset, Ordering::Release);
                }
                metrics::histogram!("courier_commit_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                "ok"
            }
            Err(_) => "error",
        };
        metrics::counter!("courier_offset_commit_requests_total", "result" => outcome).increment(1);
        metrics::counter!("courier_offset_commit_partitions_total", "result" => outcome)
            .increment(tpl.count() as u64);
        Some(result)
    }
}
