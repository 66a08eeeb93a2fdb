//! The batcher: groups copies for one destination instance under its batch limits.
//!
//! Pure bookkeeping, no I/O and no clock reads beyond the caller's `now`. Invariants: a batch
//! never holds more than `max_events` items; it exceeds `max_bytes` only when a single item
//! is larger than the limit on its own (that item then goes alone); a non-empty batch has a
//! deadline `max_age` after its first item arrived.

use std::time::Instant;

use courier_connectors::BatchLimits;

/// Batches items of known size.
#[derive(Debug)]
pub struct Batcher<T> {
    limits: BatchLimits,
    items: Vec<T>,
    bytes: usize,
    deadline: Option<Instant>,
}

impl<T> Batcher<T> {
    /// An empty batcher.
    pub fn new(limits: BatchLimits) -> Self {
        Batcher {
            limits,
            items: Vec::new(),
            bytes: 0,
            deadline: None,
        }
    }

    /// Adds an item of `size` bytes; returns the batches that became ready (zero, one or two).
    pub fn push(&mut self, item: T, size: usize, now: Instant) -> Vec<Vec<T>> {
        let mut ready = Vec::new();
        if !self.items.is_empty() && self.bytes + size > self.limits.max_bytes {
            ready.extend(self.flush());
        }
        if self.items.is_empty() {
            self.deadline = Some(now + self.limits.max_age);
        }
        self.items.push(item);
        self.bytes += size;
        if self.items.len() >= self.limits.max_events || self.bytes >= self.limits.max_bytes {
            ready.extend(self.flush());
        }
        ready
    }

    /// The bytes of the current batch.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the current batch must leave, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Takes the current batch, if any.
    pub fn flush(&mut self) -> Option<Vec<T>> {
        if self.items.is_empty() {
            return None;
        }
        self.bytes = 0;
        self.deadline = None;
        Some(std::mem::take(&mut self.items))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(max_events: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_events,
            max_bytes,
            max_age: Duration::from_millis(100),
        }
    }

    #[test]
    fn respects_event_and_byte_limits() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(3, 100));
        assert!(b.push(1, 10, now).is_empty());
        assert_eq!(b.deadline(), Some(now + Duration::from_millis(100)));
        assert!(b.push(2, 10, now).is_empty());
        assert_eq!(b.push(3, 10, now), vec![vec![1, 2, 3]]);
        assert_eq!(b.deadline(), None);

        assert!(b.push(4, 60, now).is_empty());
        assert_eq!(b.push(5, 60, now), vec![vec![4]], "5 would pass max_bytes");
        assert_eq!(
            b.push(6, 500, now),
            vec![vec![5], vec![6]],
            "an oversized item goes alone"
        );
        assert_eq!(b.flush(), None);
    }
}
