//! Rate limits per destination instance: requests per second and events per second.
//!
//! Each limit is a token bucket refilled at its rate and holding at most one second of it
//! (so short bursts pass and the long-run rate holds). A request for more tokens than the
//! bucket holds is let through once the bucket is full and leaves it in debt, so a batch larger
//! than one second of events is delayed in proportion instead of blocked forever. Waiting is a
//! timer, never a spin; callers wait in line behind a lock, one at a time.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// One token bucket.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let capacity = rate.max(1.0);
        Bucket {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    async fn take(&self, n: f64) {
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            let (tokens, last) = *state;
            let tokens =
                (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.capacity);
            let needed = n.min(self.capacity);
            if tokens >= needed {
                *state = (tokens - n, now);
                return;
            }
            *state = (tokens, now);
            tokio::time::sleep(Duration::from_secs_f64((needed - tokens) / self.rate)).await;
        }
    }
}

/// The rate limits of one destination instance.
#[derive(Debug, Default)]
pub struct RateLimiter {
    requests: Option<Bucket>,
    events: Option<Bucket>,
}

impl RateLimiter {
    /// Limits of `requests_per_second` and `events_per_second` (`None`: unlimited).
    pub fn new(requests_per_second: Option<f64>, events_per_second: Option<f64>) -> RateLimiter {
        RateLimiter {
            requests: requests_per_second.map(Bucket::new),
            events: events_per_second.map(Bucket::new),
        }
    }

    /// Waits until one request of `events` events may be sent.
    pub async fn acquire(&self, events: usize) {
        if let Some(b) = &self.requests {
            b.take(1.0).await;
        }
        if let Some(b) = &self.events {
            b.take(events as f64).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_after_a_burst() {
        let limiter = RateLimiter::new(Some(10.0), None);
        let start = tokio::time::Instant::now();
        for _ in 0..30 {
            limiter.acquire(1).await;
        }
        // 10 pass at once (one second of burst), the next 20 at 10/s.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1_900) && elapsed <= Duration::from_millis(2_100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn large_requests_go_into_debt() {
        let limiter = RateLimiter::new(None, Some(100.0));
        let start = tokio::time::Instant::now();
        limiter.acquire(500).await; // passes on a full bucket, leaves 400 of debt
        limiter.acquire(1).await; // waits for the debt: about 4 s
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(3_900) && elapsed <= Duration::from_millis(4_200),
            "{elapsed:?}"
        );
    }
}
