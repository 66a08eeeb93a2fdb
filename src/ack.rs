//! Fan-out acknowledgement: one token per consumed message, one share per destination copy.
//!
//! A message is *done* when every share was [`settle`](MessageAck::settle)d (delivered or
//! dead-lettered) and dropped. The last share to go reports the message's offset to its
//! partition task. A share dropped without settling (a task cancelled by shutdown, a batch
//! that could not be dead-lettered) marks the whole message failed: it is never reported, so
//! the partition's committed offset stays below it and the message is redelivered to the next
//! owner. Failure is the default; only an explicit settle counts as success.
//!
//! A message may also hold its share of the worker's in-flight budget ([`crate::budget`]),
//! given back when the last share goes, settled or not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::OwnedSemaphorePermit;

#[derive(Debug)]
struct Shared {
    offset: i64,
    failed: AtomicBool,
    done: UnboundedSender<i64>,
    /// Released when the message is finished with.
    _budget: Option<OwnedSemaphorePermit>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if !self.failed.load(Ordering::Acquire) {
            // The partition task may be gone (revoked): then nobody needs the offset.
            let _ = self.done.send(self.offset);
        }
    }
}

/// One share of a message's acknowledgement.
#[derive(Debug)]
pub struct MessageAck {
    shared: Arc<Shared>,
    settled: bool,
}

impl MessageAck {
    /// The first share of the message at `offset`; completion is reported on `done`.
    pub fn new(offset: i64, done: UnboundedSender<i64>) -> Self {
        Self::holding(offset, done, None)
    }

    /// The first share of a message that holds `budget` until its last share goes.
    pub fn holding(
        offset: i64,
        done: UnboundedSender<i64>,
        budget: Option<OwnedSemaphorePermit>,
    ) -> Self {
        MessageAck {
            shared: Arc::new(Shared {
                offset,
                failed: AtomicBool::new(false),
                done,
                _budget: budget,
            }),
            settled: false,
        }
    }

    /// Another share of the same message, for one more destination copy.
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
}
