//! The in-flight byte budget of one consumer: how many bytes of consumed messages may be
//! undone at once across all of its partitions.
//!
//! Per-partition limits alone let memory grow with the number of partitions a worker owns; the
//! budget bounds it for the worker. A partition task takes the share of a chunk of consumed
//! messages (up to 16 while most of the budget is free, one each otherwise) before routing
//! them, and the share travels with their bytes (see `chunk.rs`), so it comes back when the
//! last copy, batch or dead letter holding any of them is dropped: delivered, dead-lettered or
//! abandoned. A task that finds the budget spent keeps the chunk and waits for a share
//! (pausing its partition in librdkafka only if the wait goes on: see [`crate::partition`]);
//! every release wakes the waiters, which try again. A waiter also raises the process's
//! [`pressure`](crate::pressure) signal, so destinations with room to send cut the partial
//! batches that hold the budget instead of waiting for their age.
//!
//! The budget counts a message's own bytes (payload and key), exactly: the structures around
//! them (copies, batches, request state) are not counted, which is why the default is set by
//! measuring a whole worker's memory (`bench/RESULTS.md`).
//!
//! Invariant: a share is never larger than the whole budget (a chunk larger than the budget
//! takes all of it), so every message can eventually go.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug)]
struct Inner {
    /// Bytes not taken.
    available: AtomicUsize,
    /// Tasks waiting in [`Budget::take`]: a release wakes them only when there are any.
    waiting: AtomicUsize,
    released: Notify,
    total: usize,
}

/// A consumer's in-flight byte budget.
///
/// An atomic counter rather than a semaphore: a share goes back with every message, and a
/// release here is one atomic addition (a semaphore takes its waiter list's lock each time).
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

/// A taken share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Share {
    inner: Arc<Inner>,
    bytes: usize,
}

impl Drop for Share {
    fn drop(&mut self) {
        self.inner.available.fetch_add(self.bytes, Ordering::SeqCst);
        if self.inner.waiting.load(Ordering::SeqCst) > 0 {
            self.inner.released.notify_waiters();
        }
    }
}

impl Budget {
    /// A budget of `bytes` (at least one).
    pub fn new(bytes: usize) -> Budget {
        let total = bytes.max(1);
        Budget {
            inner: Arc::new(Inner {
                available: AtomicUsize::new(total),
                waiting: AtomicUsize::new(0),
                released: Notify::new(),
                total,
            }),
        }
    }

    /// The share of a message of `bytes`, if the budget has it now: at least one byte (an
    /// empty message is still in flight) and at most the whole budget.
    pub fn try_take(&self, bytes: usize) -> Option<Share> {
        let bytes = bytes.clamp(1, self.inner.total);
        self.inner
            .available
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |available| {
                available.checked_sub(bytes)
            })
            .ok()
            .map(|_| Share {
                inner: self.inner.clone(),
                bytes,
            })
    }

    /// The share of a message of `bytes`, once the budget has it.
    pub async fn take(&self, bytes: usize) -> Share {
        loop {
            if let Some(share) = self.try_take(bytes) {
                return share;
            }
            let released = self.inner.released.notified();
            tokio::pin!(released);
            // Registered before counting as waiting: a release after the count is seen, and
            // its wake-up reaches this waiter.
            released.as_mut().enable();
            // Counted until this iteration ends, also when the caller drops the wait.
            let _waiting = crate::pressure::Held::enter(&self.inner.waiting);
            if let Some(share) = self.try_take(bytes) {
                return share;
            }
            let _pressing = crate::pressure::pressure().enter();
            released.await;
        }
    }

    /// Bytes not taken right now.
    pub fn available_bytes(&self) -> usize {
        self.inner.available.load(Ordering::SeqCst)
    }

    /// The whole budget in bytes.
    pub fn total_bytes(&self) -> usize {
        self.inner.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    #[tokio::test]
    async fn shares_come_back_when_dropped_and_never_exceed_the_budget() {
        let budget = Budget::new(4 * KIB);
        let a = budget.try_take(3 * KIB).expect("fits");
        assert!(budget.try_take(KIB + 1).is_none(), "only one KiB left");
        let b = budget
            .try_take(700)
            .expect("a 700-byte message takes 700 bytes");
        assert_eq!(budget.available_bytes(), KIB - 700);
        let c = budget.try_take(0).expect("an empty message takes one byte");
        assert_eq!(budget.available_bytes(), KIB - 701);
        drop(a);
        drop(b);
        drop(c);
        assert_eq!(budget.available_bytes(), 4 * KIB);
        // Larger than the whole budget: takes all of it instead of waiting forever.
        let all = budget.take(100 * KIB).await;
        assert_eq!(budget.available_bytes(), 0);
        drop(all);
        assert_eq!(budget.available_bytes(), 4 * KIB);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_gets_its_share_when_others_are_released() {
        let budget = Budget::new(8 * KIB);
        for _ in 0..200 {
            let held: Vec<Share> = (0..8).filter_map(|_| budget.try_take(KIB)).collect();
            assert_eq!(budget.available_bytes(), 0);
            let waiter = tokio::spawn({
                let budget = budget.clone();
                async move { budget.take(3 * KIB).await }
            });
            tokio::task::yield_now().await;
            drop(held);
            let share = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("the waiter was woken")
                .expect("the waiter ran");
            assert_eq!(budget.available_bytes(), 5 * KIB);
            drop(share);
        }
        assert_eq!(budget.available_bytes(), 8 * KIB);
    }
}
