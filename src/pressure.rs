//! The process-wide signals that make delivery cut partial batches before they are full or
//! old: memory pressure (a partition waiting for a share of the in-flight byte budget) and
//! draining (a partition stopping on revoke or shutdown).
//!
//! Without the pressure signal, the budget and the batchers could hold each other up: every
//! destination keeps a partial batch until it is full or old, and when those partial batches
//! together hold the whole budget, consumption stops until the batch age cuts them (100
//! destinations × 500 events of ~700 bytes is more than a 16 MiB budget: the backlog drained
//! at a third of its rate). With the signal, a destination that has room to send (fewer
//! batches ready or in flight than its concurrency) sends its oldest partial batches at once,
//! so held bytes turn into deliveries and shares come back. A busy destination keeps filling
//! its batches: cutting them smaller would only add requests to a queue that is already the
//! bottleneck.
//!
//! Pressure is a level (some waiter is waiting now, [`Pressure::is_on`]) and an edge (a
//! signal when a waiter starts waiting, [`Pressure::signalled`]): a delivery task looks at the
//! level before it sleeps, after taking its listener, so a signal is never missed in between.
//!
//! Draining is a level and an edge too ([`Pressure::drain`], [`Pressure::is_draining`],
//! [`Pressure::drained`]). While a partition drains, every destination sends all its partial
//! batches at once, whatever their size: the drain waits for in-flight messages only up to its
//! timeout, and a batch whose age is longer would otherwise be abandoned and redelivered to
//! the next owner (a duplicate for the destination). Partitions that keep running meanwhile
//! get smaller batches for as long as the drain lasts.
//!
//! Invariants: signalling never blocks and costs one clock read and, at most once per
//! [`MIN_INTERVAL`], one wake-up of the listening delivery tasks; cutting early only changes
//! batch sizes, never what is delivered or acknowledged.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Signals closer together than this are one: a saturated budget is released and retaken
/// message by message, and each retry would otherwise wake every listening destination.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The pressure and drain signals (one per process: see [`pressure`]).
#[derive(Debug)]
pub struct Pressure {
    origin: Instant,
    /// Signals closer together than this many microseconds are one.
    min_interval_us: u64,
    /// Microseconds after `origin` of the last signal that woke the listeners.
    last_us: AtomicU64,
    /// Budget waiters right now: pressure is on while there is any.
    waiting: AtomicUsize,
    notify: Notify,
    /// Partitions draining right now.
    draining: AtomicUsize,
    drain_notify: Notify,
}

impl Pressure {
    fn new(min_interval: Duration) -> Pressure {
        Pressure {
            origin: Instant::now(),
            min_interval_us: min_interval.as_micros() as u64,
            last_us: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            notify: Notify::new(),
            draining: AtomicUsize::new(0),
            drain_notify: Notify::new(),
        }
    }

    /// Pressure is on until the returned guard drops: a waiter for a budget share holds one
    /// while it waits. Entering also signals.
    pub fn enter(&self) -> Held<'_> {
        let held = Held::enter(&self.waiting);
        self.signal();
        held
    }

    /// Whether some waiter for a budget share is waiting now.
    pub fn is_on(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Asks every listening destination with room to send to cut its partial batches now.
    fn signal(&self) {
        let now = self.origin.elapsed().as_micros() as u64;
        let last = self.last_us.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.min_interval_us {
            return;
        }
        if self
            .last_us
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.notify.notify_waiters();
        }
    }

    /// Resolves at the next signal; registered as soon as it is created (before it is
    /// polled).
    pub fn signalled(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Draining is on until the returned guard drops: a partition holds one while it waits for
    /// its in-flight messages. Entering wakes every listening destination (not rate-limited:
    /// it happens once per partition stop).
    pub fn drain(&self) -> Held<'_> {
        let held = Held::enter(&self.draining);
        self.drain_notify.notify_waiters();
        held
    }

    /// Whether some partition is draining now.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst) > 0
    }

    /// Resolves when a partition starts draining; registered as soon as it is created.
    pub fn drained(&self) -> Notified<'_> {
        self.drain_notify.notified()
    }
}

/// One count held up for as long as the guard lives (a waiter, a draining partition).
#[derive(Debug)]
pub struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    /// Counts one more in `count` until dropped.
    pub fn enter(count: &'a AtomicUsize) -> Held<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Held(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The process's pressure signal. One for the process because the budgets of its consumers
/// (main and retry topics) share the same destinations.
pub fn pressure() -> &'static Pressure {
    static PRESSURE: OnceLock<Pressure> = OnceLock::new();
    PRESSURE.get_or_init(|| Pressure::new(MIN_INTERVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wakes(pressure: &Pressure) -> bool {
        let listener = pressure.signalled();
        pressure.signal();
        tokio::time::timeout(Duration::from_millis(200), listener)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_signal_wakes_a_listener_created_before_it() {
        let pressure = Pressure::new(Duration::ZERO);
        assert!(wakes(&pressure).await);
        assert!(
            wakes(&pressure).await,
            "every signal past the interval wakes"
        );
    }

    #[tokio::test]
    async fn pressure_is_on_while_a_waiter_holds_it() {
        let pressure = Pressure::new(Duration::from_secs(3600));
        assert!(!pressure.is_on());
        let listener = pressure.signalled();
        let a = pressure.enter();
        let b = pressure.enter();
        tokio::time::timeout(Duration::from_millis(200), listener)
            .await
            .expect("entering signals");
        drop(a);
        assert!(pressure.is_on(), "one waiter is left");
        drop(b);
        assert!(!pressure.is_on());
    }

    #[tokio::test]
    async fn draining_wakes_at_once_and_is_on_while_held() {
        let pressure = Pressure::new(Duration::from_secs(3600));
        let listener = pressure.drained();
        let held = pressure.drain();
        tokio::time::timeout(Duration::from_millis(200), listener)
            .await
            .expect("a drain wakes its listeners");
        assert!(pressure.is_draining());
        assert!(!pressure.is_on(), "draining is not memory pressure");
        let again = pressure.drained();
        let second = pressure.drain();
        tokio::time::timeout(Duration::from_millis(200), again)
            .await
            .expect("every drain wakes, however close");
        drop((held, second));
        assert!(!pressure.is_draining());
    }

    #[tokio::test]
    async fn signals_within_the_interval_are_one() {
        let pressure = Pressure::new(Duration::from_secs(3600));
        assert!(wakes(&pressure).await, "the first signal wakes");
        assert!(
            !wakes(&pressure).await,
            "the next one within the hour does not"
        );
    }
}
