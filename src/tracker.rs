//! The per-partition offset tracker: which consumed messages are done, and what may be
//! committed.
//!
//! The tracker follows *runs*: consecutive messages a partition task routed in one go and
//! acknowledges together ([`crate::ack`]), each known by its last offset and its number of
//! messages.
//!
//! Invariant: [`OffsetTracker::watermark`] is one past the highest offset `o` such that every
//! tracked run ending at or below `o` is done. A pending or failed run holds it back for as
//! long as it stays incomplete; nothing is ever committed past it. Runs must be tracked in
//! increasing order (as a partition delivers them); gaps (compacted offsets, transaction
//! markers) are fine.

use std::collections::VecDeque;

/// Completion state of one partition's in-flight messages.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// In-flight runs in offset order: last offset, messages, done.
    pending: VecDeque<(i64, usize, bool)>,
    /// Messages in `pending`.
    messages: usize,
    /// One past the last offset released from the front, once any was.
    watermark: Option<i64>,
}

impl OffsetTracker {
    /// A tracker with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking a run of `messages` consumed messages ending at `offset`. Offsets must
    /// increase.
    pub fn track(&mut self, offset: i64, messages: usize) {
        if let Some(&(last, _, _)) = self.pending.back() {
            assert!(offset > last, "offset {offset} tracked after {last}");
        }
        self.pending.push_back((offset, messages, false));
        self.messages += messages;
    }

    /// Marks the run ending at `offset` done; returns whether the watermark moved. Unknown
    /// offsets are ignored.
    pub fn complete(&mut self, offset: i64) -> bool {
        // Runs mostly finish in order: look at the front first.
        let i = match self.pending.front() {
            Some(&(o, _, _)) if o == offset => 0,
            _ => match self.pending.binary_search_by_key(&offset, |&(o, _, _)| o) {
                Ok(i) => i,
                Err(_) => return false,
            },
        };
        self.pending[i].2 = true;
        let mut moved = false;
        while let Some(&(o, messages, true)) = self.pending.front() {
            self.pending.pop_front();
            self.messages -= messages;
            self.watermark = Some(o + 1);
            moved = true;
        }
        moved
    }

    /// The offset to commit: every message below it is done. `None` until a message is done.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Messages consumed and not yet released (done ones behind a pending run included).
    pub fn in_flight(&self) -> usize {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn holds_at_the_first_incomplete() {
        let mut t = OffsetTracker::new();
        for o in [3, 4, 7, 8] {
            t.track(o, 1);
        }
        assert!(!t.complete(4));
        assert_eq!(t.watermark(), None);
        assert!(t.complete(3));
        assert_eq!(t.watermark(), Some(5));
        assert_eq!(t.in_flight(), 2);
        t.complete(8);
        assert_eq!(t.watermark(), Some(5));
        t.complete(7);
        assert_eq!(t.watermark(), Some(9));
        assert_eq!(t.in_flight(), 0);
    }

    proptest! {
        /// For any offsets (with gaps), any completion order and any subset left incomplete,
        /// the watermark never passes an incomplete message, and reaches the end when all are
        /// done.
        #[test]
        fn never_passes_an_incomplete_message(
            gaps in proptest::collection::vec(1i64..4, 1..200),
            order_seed in any::<u64>(),
            fail_mask in proptest::collection::vec(any::<bool>(), 200),
        ) {
            let offsets: Vec<i64> = gaps.iter().scan(0i64, |o, g| { *o += g; Some(*o) }).collect();
            let mut order: Vec<usize> = (0..offsets.len()).collect();
            // Deterministic shuffle from the seed.
            let mut s = order_seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut t = OffsetTracker::new();
            for &o in &offsets { t.track(o, 2); }
            let mut done = vec![false; offsets.len()];
            for &i in &order {
                if fail_mask[i] { continue; }
                t.complete(offsets[i]);
                done[i] = true;
                if let Some(w) = t.watermark() {
                    for (j, &o) in offsets.iter().enumerate() {
                        if o < w { prop_assert!(done[j], "watermark {w} passed incomplete {o}"); }
                    }
                }
            }
            // Now the failed ones recover.
            for &i in &order {
                if fail_mask[i] { t.complete(offsets[i]); }
            }
            prop_assert_eq!(t.watermark(), Some(offsets.last().unwrap() + 1));
            prop_assert_eq!(t.in_flight(), 0);
        }
    }
}
