//! Non-blocking retries: the retry topic.
//!
//! A destination that stays down must not hold every other destination of its partitions
//! behind it. So a batch that has been retried inline for `retry.inline_budget_ms` is
//! *parked*: each event is produced to the retry topic with headers naming its destination and
//! its retry state, and once the broker acknowledged that copy, the event counts as done for
//! the main flow (the main topic's offsets move on).
//!
//! A retry consumer (its own consumer group, the same commit-after-done rules) reads the retry
//! topic, waits until an event is due, and sends it to that one destination. A failure there
//! parks it again with the next attempt and a doubled delay (capped at `retry.max_delay_ms`);
//! an event still failing `retry.max_age_ms` after its first failure is dead-lettered. The
//! retry topic holds the only copy of a parked event, and its offsets move only after the
//! event was delivered, parked again or dead-lettered: nothing is lost.
//!
//! Headers of a parked event (payload and key are the original ones):
//!
//! | header | value |
//! |---|---|
//! | `courier.retry.customer`, `courier.retry.destination` | the one destination to retry |
//! | `courier.retry.attempt` | 1 for the first parking, then 2, 3, … |
//! | `courier.retry.not-before` | unix milliseconds before which it is not tried |
//! | `courier.retry.first-failed` | unix milliseconds of the first failure |
//! | `courier.retry.reason` | the last failure |
//! | `courier.source.topic` / `.partition` / `.offset` / `.timestamp` | the original position and its timestamp (ms) |
//!
//! One retry topic serves every delay, so a due event can wait behind one parked later with a
//! longer delay in the same partition; the delays grow slowly enough (doubling from
//! `initial_delay_ms`) that this only postpones, never loses.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::deadletter::{produce_acked, Origin};
use crate::deliver::DestinationId;
use crate::producer::AckedProducer;
use crate::settings::RetrySettings;

/// Where a parked event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    /// How often it was parked.
    pub attempt: u32,
    /// Unix milliseconds of its first failure.
    pub first_failed_ms: i64,
}

/// A parked event read back from the retry topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The customer's id.
    pub customer: String,
    /// The destination's name.
    pub destination: String,
    /// Its retry state.
    pub state: RetryState,
    /// Unix milliseconds before which it is not tried.
    pub not_before_ms: i64,
    /// Where the event was first consumed.
    pub origin: Origin,
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// The retry topic's producer and policy.
pub struct Parking {
    producer: AckedProducer,
    topic: String,
    settings: RetrySettings,
}

impl std::fmt::Debug for Parking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parking")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Parking {
    /// Parking on `topic` with `producer`.
    pub fn new(producer: AckedProducer, topic: String, settings: RetrySettings) -> Arc<Parking> {
        Arc::new(Parking {
            producer,
            topic,
            settings,
        })
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetrySettings {
        &self.settings
    }

    /// Parks one event and waits for the broker's acknowledgement.
    pub async fn park(
        &self,
        payload: &[u8],
        origin: &Origin,
        destination: &DestinationId,
        state: RetryState,
        reason: &str,
    ) {
        let not_before = now_millis() + self.settings.delay(state.attempt).as_millis() as i64;
        let headers = [
            ("courier.retry.customer", destination.customer.to_string()),
            ("courier.retry.destination", destination.name.to_string()),
            ("courier.retry.attempt", state.attempt.to_string()),
            ("courier.retry.not-before", not_before.to_string()),
            (
                "courier.retry.first-failed",
                state.first_failed_ms.to_string(),
            ),
            ("courier.retry.reason", reason.to_owned()),
            ("courier.source.topic", origin.topic.to_string()),
            ("courier.source.partition", origin.partition.to_string()),
            ("courier.source.offset", origin.offset.to_string()),
            ("courier.source.timestamp", origin.timestamp_ms.to_string()),
        ]
        .iter()
        .fold(OwnedHeaders::new_with_capacity(9), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        });
        produce_acked(
            &self.producer,
            &self.topic,
            origin.key.as_deref(),
            payload,
            headers,
        )
        .await;
        metrics::counter!("courier_events_parked_total", "kind" => destination.kind.to_string())
            .increment(1);
    }
}

impl RetrySettings {
    /// How long a batch is retried inline before its events are parked.
    pub fn inline_budget(&self) -> Duration {
        Duration::from_millis(self.inline_budget_ms)
    }

    /// The wait before attempt `attempt` (1-based) is tried.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u64
            .checked_shl(attempt.saturating_sub(1).min(40))
            .unwrap_or(u64::MAX);
        Duration::from_millis(
            self.initial_delay_ms
                .saturating_mul(factor)
                .min(self.max_delay_ms),
        )
    }

    /// The state an event moves to when it fails now, given its current one (`None`: it failed
    /// in the main flow); `None` when it is past the maximum age and must be dead-lettered.
    pub fn next_state(&self, current: Option<RetryState>, now_ms: i64) -> Option<RetryState> {
        let next = match current {
            None => RetryState {
                attempt: 1,
                first_failed_ms: now_ms,
            },
            Some(s) => RetryState {
                attempt: s.attempt.saturating_add(1),
                first_failed_ms: s.first_failed_ms,
            },
        };
        let age = now_ms.saturating_sub(next.first_failed_ms);
        (age < self.max_age_ms as i64).then_some(next)
    }
}

/// Reads a parked event's headers.
pub fn parse(
    headers: Option<&impl Headers>,
    key: Option<courier_connectors::MessageKey>,
) -> Result<Parked, String> {
    let get = |name: &str| -> Result<String, String> {
        headers
            .and_then(|h| h.iter().find(|x| x.key == name))
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| format!("retry record has no {name} header"))
    };
    let number = |name: &str| -> Result<i64, String> {
        get(name)?
            .parse()
            .map_err(|_| format!("retry record header {name} is not a number"))
    };
    Ok(Parked {
        customer: get("courier.retry.customer")?,
        destination: get("courier.retry.destination")?,
        state: RetryState {
            attempt: number("courier.retry.attempt")? as u32,
            first_failed_ms: number("courier.retry.first-failed")?,
        },
        not_before_ms: number("courier.retry.not-before")?,
        origin: Origin {
            topic: get("courier.source.topic")?.as_str().into(),
            partition: number("courier.source.partition")? as i32,
            offset: number("courier.source.offset")?,
            // Absent on events parked by earlier versions.
            timestamp_ms: number("courier.source.timestamp").unwrap_or(0),
            key,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetrySettings {
        RetrySettings {
            initial_delay_ms: 1_000,
            max_delay_ms: 5_000,
            max_age_ms: 60_000,
            ..RetrySettings::default()
        }
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let p = policy();
        let delays: Vec<u64> = (1..=5).map(|a| p.delay(a).as_millis() as u64).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    #[test]
    fn events_past_the_maximum_age_are_not_parked_again() {
        let p = policy();
        let first = p.next_state(None, 1_000).unwrap();
        assert_eq!(
            first,
            RetryState {
                attempt: 1,
                first_failed_ms: 1_000
            }
        );
        let again = p.next_state(Some(first), 30_000).unwrap();
        assert_eq!(
            again,
            RetryState {
                attempt: 2,
                first_failed_ms: 1_000
            }
        );
        assert_eq!(
            p.next_state(Some(again), 61_000),
            None,
            "a minute after the first failure: dead-letter"
        );
    }
}
