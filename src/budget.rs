//! The in-flight byte budget of one consumer: how many bytes of consumed messages may be
//! undone at once across all of its partitions.
//!
//! Per-partition limits alone let memory grow with the number of partitions a worker owns; the
//! budget bounds it for the worker. A partition task takes a message's share before routing it
//! and the share travels with the message's acknowledgement ([`crate::ack::MessageAck`]), so it
//! comes back when the message is done or abandoned. A task that finds the budget spent keeps
//! the message, pauses its partition and waits for a share; waiters are served in order.
//!
//! Invariant: a share is never larger than the whole budget (a message larger than the budget
//! takes all of it), so every message can eventually go.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget units are KiB.
const UNIT: usize = 1024;

/// A consumer's in-flight byte budget.
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    total: u32,
}

impl Budget {
    /// A budget of `bytes` (rounded up to whole KiB, at least one).
    pub fn new(bytes: usize) -> Budget {
        let total = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX >> 3);
        Budget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    fn units(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total)
    }

    /// The share of a message of `bytes`, if the budget has it now.
    pub fn try_take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .try_acquire_many_owned(self.units(bytes))
            .ok()
    }

    /// The share of a message of `bytes`, once the budget has it.
    pub async fn take(&self, bytes: usize) -> OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.permits
            .clone()
            .acquire_many_owned(self.units(bytes))
            .await
            .expect("the budget's semaphore is never closed")
    }

    /// Bytes not taken right now (for status and tests).
    pub fn available_bytes(&self) -> usize {
        self.permits.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_come_back_when_dropped_and_never_exceed_the_budget() {
        let budget = Budget::new(4 * UNIT);
        let a = budget.try_take(3 * UNIT).expect("fits");
        assert!(budget.try_take(2 * UNIT).is_none(), "only one KiB left");
        let b = budget.try_take(10).expect("a small message takes one unit");
        assert_eq!(budget.available_bytes(), 0);
        drop(a);
        drop(b);
        assert_eq!(budget.available_bytes(), 4 * UNIT);
        // Larger than the whole budget: takes all of it instead of waiting forever.
        let all = budget.take(100 * UNIT).await;
        assert_eq!(budget.available_bytes(), 0);
        drop(all);
        assert_eq!(budget.available_bytes(), 4 * UNIT);
    }
}
