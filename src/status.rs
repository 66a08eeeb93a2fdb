//! What a running worker knows about itself, for `/readyz` and `/status`.
//!
//! Written by the consumers (assignment, per-partition committed offset, in-flight count and
//! lag), the worker (destinations built, draining) and the control loop (reloads); read by the
//! operations server. Every field is an atomic or behind a short lock: nothing on the
//! per-message path waits for a reader.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use serde_json::{json, Value};

use crate::partition::Mode;
use crate::route::RoutingTable;

/// Live counters of one assigned partition.
#[derive(Debug, Default)]
pub struct PartitionView {
    /// The last offset the broker confirmed (-1: none yet).
    pub confirmed: AtomicI64,
    /// The partition task's watermark, the offset to commit (-1: no message done yet).
    pub watermark: AtomicI64,
    /// Messages taken and not yet done.
    pub in_flight: AtomicUsize,
    /// Messages behind the log end, from librdkafka's statistics (-1: not known yet).
    pub lag: AtomicI64,
}

type Key = (Mode, Arc<str>, i32);

/// The worker's state.
#[derive(Debug, Default)]
pub struct Status {
    joined: AtomicBool,
    built: AtomicBool,
    draining: AtomicBool,
    partitions: Mutex<BTreeMap<Key, Arc<PartitionView>>>,
    routes: OnceLock<Arc<ArcSwap<RoutingTable>>>,
    last_reload: Mutex<Option<Value>>,
}

impl Status {
    /// A worker that has not built its destinations or joined its group yet.
    pub fn new() -> Arc<Status> {
        Arc::new(Status::default())
    }

    /// Every destination instance was built; `routes` is the live routing table.
    pub fn set_built(&self, routes: Arc<ArcSwap<RoutingTable>>) {
        let _ = self.routes.set(routes);
        self.built.store(true, Ordering::Release);
    }

    /// The main consumer received its first assignment (possibly empty).
    pub fn set_joined(&self) {
        self.joined.store(true, Ordering::Release);
    }

    /// Shutdown began: the worker is draining and no longer ready.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Ready to take traffic: built, joined, not draining.
    pub fn ready(&self) -> bool {
        self.built.load(Ordering::Acquire)
            && self.joined.load(Ordering::Acquire)
            && !self.draining.load(Ordering::Acquire)
    }

    /// Registers an assigned partition; its view is updated by the partition's task.
    pub fn assign(&self, mode: Mode, topic: Arc<str>, partition: i32, view: Arc<PartitionView>) {
        self.lock().insert((mode, topic, partition), view);
    }

    /// Forgets a released partition.
    pub fn release(&self, mode: Mode, topic: &Arc<str>, partition: i32) {
        self.lock().remove(&(mode, topic.clone(), partition));
    }

    /// The view of an assigned partition.
    pub fn partition(&self, mode: Mode, topic: &str, partition: i32) -> Option<Arc<PartitionView>> {
        self.lock()
            .get(&(mode, Arc::from(topic), partition))
            .cloned()
    }

    /// Records the outcome of a configuration reload.
    pub fn record_reload(&self, outcome: Value) {
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Arc<PartitionView>>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `/status` document.
    pub fn snapshot(&self) -> Value {
        let partitions: Vec<Value> = self
            .lock()
            .iter()
            .map(|((mode, topic, partition), view)| {
                let confirmed = view.confirmed.load(Ordering::Acquire);
                let lag = view.lag.load(Ordering::Relaxed);
                json!({
                    "flow": match mode { Mode::Main => "main", Mode::Retry => "retry" },
                    "topic": &**topic,
                    "partition": partition,
                    "committed": (confirmed >= 0).then_some(confirmed),
                    "in_flight": view.in_flight.load(Ordering::Relaxed),
                    "lag": (lag >= 0).then_some(lag),
                })
            })
            .collect();
        let destinations: Vec<Value> = self
            .routes
            .get()
            .map(|routes| {
                routes
                    .load()
                    .handles()
                    .map(|h| {
                        json!({
                            "customer": &*h.id.customer,
                            "name": &*h.id.name,
                            "kind": &*h.id.kind,
                            "queued": h.queue.max_capacity() - h.queue.capacity(),
                            "circuit": h.stats.circuit(),
                            "last_error": h.stats.last_error(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "ready": self.ready(),
            "joined": self.joined.load(Ordering::Acquire),
            "draining": self.draining.load(Ordering::Acquire),
            "partitions": partitions,
            "destinations": destinations,
            "last_reload": *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()),
        })
    }
}
