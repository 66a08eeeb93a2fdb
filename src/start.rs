//! Where a newly assigned partition that has no committed offset starts.
//!
//! librdkafka looks up a new partition's committed offset itself; when the group has none, it
//! applies `auto.offset.reset` only after a fixed 100 ms (`rd_kafka_offset_reset` backs off
//! whenever it resets because of an error, and "no committed offset" counts as one). Every
//! partition of a new group pays that wait before its first fetch. [`resolve`] looks the
//! committed offsets up before the assignment is handed to librdkafka and gives each
//! partition that has none the logical start `auto.offset.reset` names, which librdkafka
//! starts at once.
//!
//! Invariants:
//! - only partitions the group has no committed offset for are changed, and only to where
//!   librdkafka's reset would have started them; a partition with a committed offset is left
//!   to librdkafka, which starts it there (with its leader epoch), as before;
//! - a lookup that fails or times out changes nothing: librdkafka then looks up and resets
//!   every partition itself, 100 ms later.

use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

/// How long the assignment waits for the committed offsets before leaving the lookup to
/// librdkafka.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The logical start librdkafka's `auto.offset.reset` `policy` resets a partition without a
/// committed offset to (librdkafka reads the value without regard to case), or `None` for
/// `error` or a value it does not know (then the partition is left to librdkafka).
pub fn uncommitted_start(policy: &str) -> Option<Offset> {
    match policy.to_ascii_lowercase().as_str() {
        "smallest" | "earliest" | "beginning" => Some(Offset::Beginning),
        "largest" | "latest" | "end" => Some(Offset::End),
        _ => None,
    }
}

/// Sets every partition of `assignment` that has no start yet and no committed offset in the
/// group to `start` (see [`uncommitted_start`]). Blocks for one OffsetFetch round trip, at
/// most 5 s; returns how many partitions it set.
pub fn resolve<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    assignment: &mut TopicPartitionList,
    start: Offset,
) -> usize {
    let mut unset = TopicPartitionList::with_capacity(assignment.count());
    for e in assignment.elements() {
        if e.offset() == Offset::Invalid {
            unset.add_partition(e.topic(), e.partition());
        }
    }
    if unset.count() == 0 {
        return 0;
    }
    let committed = match consumer.committed_offsets(unset, LOOKUP_TIMEOUT) {
        Ok(committed) => committed,
        Err(err) => {
            tracing::warn!(error = %err, "cannot look up committed offsets at assignment; librdkafka looks them up itself");
            return 0;
        }
    };
    let mut set = 0;
    for e in committed.elements() {
        if e.error().is_ok()
            && e.offset() == Offset::Invalid
            && assignment
                .set_partition_offset(e.topic(), e.partition(), start)
                .is_ok()
        {
            set += 1;
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_librdkafkas_reset_policy_maps_to_its_start() {
        for policy in ["smallest", "earliest", "beginning"] {
            assert_eq!(
                uncommitted_start(policy),
                Some(Offset::Beginning),
                "{policy}"
            );
        }
        for policy in ["largest", "latest", "end"] {
            assert_eq!(uncommitted_start(policy), Some(Offset::End), "{policy}");
        }
        assert_eq!(uncommitted_start("Earliest"), Some(Offset::Beginning));
        assert_eq!(uncommitted_start("error"), None);
        assert_eq!(uncommitted_start("none"), None);
    }
}
