//! The circuit breaker of one destination instance.
//!
//! Closed: requests flow; consecutive retryable failures are counted and a success resets the
//! count. At the threshold the circuit opens: nothing is sent for the cool-down. Then it is
//! half-open: one probe request goes; its success closes the circuit, its failure opens it
//! again. While open or probing, callers wait in [`CircuitBreaker::acquire`]: their events stay
//! in flight (their offsets uncommitted), nothing is dropped.
//!
//! Only retryable failures count: a permanent rejection means the destination is up and said
//! no. State changes are logged with the destination and exported as
//! `courier_circuit_open{kind}` (1 open, 0.5 half-open, 0 closed; the most recent change of any
//! instance of that kind) and `courier_circuit_transitions_total{kind,state}`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// A circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
    changed: Notify,
    /// Names the instance in logs and metrics.
    label: (String, String, String),
}

/// What [`CircuitBreaker::acquire`] granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The circuit is closed.
    Normal,
    /// This request is the half-open probe.
    Probe,
}

impl CircuitBreaker {
    /// A closed breaker opening after `threshold` consecutive failures for `cooldown`;
    /// `customer`, `destination` and `kind` name it in logs and metrics.
    pub fn new(
        threshold: u32,
        cooldown: Duration,
        customer: &str,
        destination: &str,
        kind: &str,
    ) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
            changed: Notify::new(),
            label: (customer.to_owned(), destination.to_owned(), kind.to_owned()),
        }
    }

    /// `closed`, `open` or `half-open`, for `/status`.
    pub fn state_name(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) -> Permit {
        loop {
            let wait_until = {
                let mut state = self.lock();
                match *state {
                    State::Closed { .. } => return Permit::Normal,
                    State::HalfOpen { probing: false } => {
                        *state = State::HalfOpen { probing: true };
                        return Permit::Probe;
                    }
                    State::Open { until } if Instant::now() >= until => {
                        self.transition(&mut state, State::HalfOpen { probing: true });
                        return Permit::Probe;
                    }
                    State::Open { until } => Some(until),
                    State::HalfOpen { probing: true } => None,
                }
            };
            let notified = self.changed.notified();
            match wait_until {
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Records the outcome of a request sent under `permit`: `ok` is false only for a
    /// retryable failure.
    pub fn record(&self, permit: Permit, ok: bool) {
        let mut state = self.lock();
        match (*state, ok) {
            (State::Closed { failures }, false) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    let until = Instant::now() + self.cooldown;
                    self.transition(&mut state, State::Open { until });
                } else {
                    *state = State::Closed { failures };
                }
            }
            (State::Closed { .. }, true) => *state = State::Closed { failures: 0 },
            (State::HalfOpen { .. }, true) if permit == Permit::Probe => {
                self.transition(&mut state, State::Closed { failures: 0 });
            }
            (State::HalfOpen { .. }, false) if permit == Permit::Probe => {
                let until = Instant::now() + self.cooldown;
                self.transition(&mut state, State::Open { until });
            }
            // A request that started before the circuit opened: its outcome changes nothing.
            _ => {}
        }
    }

    fn transition(&self, state: &mut State, next: State) {
        *state = next;
        let (customer, destination, kind) = &self.label;
        let (name, gauge) = match next {
            State::Closed { .. } => ("closed", 0.0),
            State::Open { .. } => ("open", 1.0),
            State::HalfOpen { .. } => ("half-open", 0.5),
        };
        tracing::warn!(customer = %customer, destination = %destination, kind = %kind, state = name, "circuit breaker");
        metrics::gauge!("courier_circuit_open", "kind" => kind.clone()).set(gauge);
        metrics::counter!("courier_circuit_transitions_total", "kind" => kind.clone(), "state" => name).increment(1);
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_waits_probes_and_closes() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10), "c", "d", "k");
        for _ in 0..3 {
            let p = b.acquire().await;
            b.record(p, false);
        }
        let start = Instant::now();
        assert_eq!(
            b.acquire().await,
            Permit::Probe,
            "after the cool-down one probe goes"
        );
        assert!(start.elapsed() >= Duration::from_secs(10));

        // While the probe is out, others wait; its failure reopens the circuit.
        let waiting = tokio::time::timeout(Duration::from_secs(1), b.acquire()).await;
        assert!(waiting.is_err(), "no second request while probing");
        b.record(Permit::Probe, false);
        let start = Instant::now();
        let p = b.acquire().await;
        assert_eq!(p, Permit::Probe);
        assert!(start.elapsed() >= Duration::from_secs(9));
        b.record(p, true);
        assert_eq!(
            b.acquire().await,
            Permit::Normal,
            "a successful probe closes it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10), "c", "d", "k");
        for ok in [false, false, true, false, false] {
            let p = b.acquire().await;
            b.record(p, ok);
        }
        let p = tokio::time::timeout(Duration::from_millis(1), b.acquire())
            .await
            .unwrap();
        assert_eq!(p, Permit::Normal);
    }
}
