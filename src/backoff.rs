//! Retry delays: exponential backoff with full jitter, never shorter than `Retry-After`.
//!
//! Attempt `n` (0-based) waits a uniformly random time in `[0, min(max, initial · 2ⁿ)]`
//! ("full jitter", which spreads a fleet's retries so a recovering destination is not hit by
//! all of them at once). A destination's `Retry-After` is a floor, capped at
//! [`MAX_RETRY_AFTER`] so one odd header cannot park a batch for days.

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Backoff parameters of one destination instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Ceiling of every delay.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling of attempt `attempt`'s random delay.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = rand::rng().random_range(Duration::ZERO..=ceiling);
        jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(40), Duration::from_secs(5));
        for attempt in 0..10 {
            assert!(b.delay(attempt, None) <= b.ceiling(attempt));
            assert!(b.delay(attempt, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        }
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
    }
}
