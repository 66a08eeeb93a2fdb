//! Fan-out acknowledgement: one token per *run* of consumed messages, one share per
//! destination copy of any message in the run.
//!
//! A partition task opens a run ([`MessageAck::open`]) before routing the messages it polls in
//! one go, hands a [`share`](MessageAck::share) to every copy, and closes the run
//! ([`MessageAck::close`]) with its last offset. The run is *done*
//! when the run was closed and every share was [`settle`](MessageAck::settle)d (delivered or
//! dead-lettered) and dropped; the last share to go reports the run's last offset to its
//! partition task. One token per run instead of per message keeps the per-message path free of
//! an allocation, a channel send and two tracker operations.
//!
//! A share dropped without settling (a task cancelled by shutdown, a batch that could not be
//! dead-lettered) marks the whole run failed: it is never reported, so the partition's
//! committed offset stays below the run and every message of it is redelivered to the next
//! owner (a duplicate for the others, never a loss). Failure is the default; only an explicit
//! settle counts as success. A run that was never closed (the task was cancelled while routing
//! it) is never reported either.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

/// The run's offset before it is closed: never reported.
const OPEN: i64 = i64::MIN;

#[derive(Debug)]
struct Shared {
    /// The run's last offset once closed; [`OPEN`] before.
    last: AtomicI64,
    failed: AtomicBool,
    done: UnboundedSender<i64>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let last = self.last.load(Ordering::Acquire);
        if !self.failed.load(Ordering::Acquire) && last != OPEN {
            // The partition task may be gone (revoked): then nobody needs the offset.
            let _ = self.done.send(last);
        }
    }
}

/// One share of a run's acknowledgement.
#[derive(Debug)]
pub struct MessageAck {
    shared: Arc<Shared>,
    settled: bool,
}

impl MessageAck {
    /// The first share of a run of one message at `offset`, already closed; completion is
    /// reported on `done`.
    pub fn new(offset: i64, done: UnboundedSender<i64>) -> Self {
        let ack = Self::open(done);
        ack.shared.last.store(offset, Ordering::Release);
        ack
    }

    /// The first share of a run still being routed: nothing is reported until
    /// [`close`](Self::close).
    pub fn open(done: UnboundedSender<i64>) -> Self {
        MessageAck {
            shared: Arc::new(Shared {
                last: AtomicI64::new(OPEN),
                failed: AtomicBool::new(false),
                done,
            }),
            settled: false,
        }
    }

    /// Closes the run at `last` (its highest offset) and settles this first share.
    pub fn close(self, last: i64) {
        self.shared.last.store(last, Ordering::Release);
        self.settle();
    }

    /// Another share of the same run, for one more destination copy.
    pub fn share(&self) -> MessageAck {
        MessageAck {
            shared: self.shared.clone(),
            settled: false,
        }
    }

    /// This share is finished: delivered, or its dead-letter copy acknowledged by the broker.
    pub fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for MessageAck {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.failed.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;

    #[test]
    fn done_only_when_every_share_settles() {
        let (tx, mut rx) = unbounded_channel();
        let root = MessageAck::new(7, tx.clone());
        let a = root.share();
        let b = root.share();
        root.settle();
        a.settle();
        assert!(rx.try_recv().is_err(), "b is still out");
        b.settle();
        assert_eq!(rx.try_recv().unwrap(), 7);

        let root = MessageAck::new(8, tx);
        let a = root.share();
        root.settle();
        drop(a); // abandoned: never done
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_run_reports_its_last_offset_once_closed_and_settled() {
        let (tx, mut rx) = unbounded_channel();
        let root = MessageAck::open(tx.clone());
        let a = root.share();
        a.settle();
        assert!(rx.try_recv().is_err(), "open: the run may still grow");
        let b = root.share();
        root.close(12);
        assert!(rx.try_recv().is_err(), "b is still out");
        b.settle();
        assert_eq!(rx.try_recv().unwrap(), 12);

        // Never closed (cancelled mid-run): never reported, even with every share settled.
        let root = MessageAck::open(tx);
        root.share().settle();
        drop(root);
        assert!(rx.try_recv().is_err());
    }
}
