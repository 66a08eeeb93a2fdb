//! The [`Destination`] trait: what a connector implements to deliver one batch.
//!
//! A destination instance is one customer's configured destination (say acme's "product
//! webhook"). The runtime calls [`Destination::deliver`] with batches it assembled under the
//! instance's [`BatchLimits`], possibly several at once (bounded by the instance's
//! concurrency), and retries or dead-letters according to the returned error. A connector must
//! therefore be safe to call concurrently and must not retry on its own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use smol_str::SmolStr;

use crate::error::{BuildError, DeliveryError};
use crate::event::Event;

/// One configured destination, ready to deliver batches.
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    /// Whether this destination has anything to do with `event` at all (a Slack destination
    /// only posts listed events; an API without an alias call skips aliases). Events it does
    /// not accept are never queued for it; they count as done for it at once.
    fn accepts(&self, _event: &Event) -> bool {
        true
    }

    /// Delivers every event of `batch`, or reports why not. `Ok` means the destination has
    /// accepted all of them; the runtime then acknowledges them.
    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError>;

    /// How the runtime cuts this destination's batches (see [`Batching`]).
    fn batching(&self) -> Batching {
        Batching::Mixed
    }

    /// Delivers a batch together with where its events came from: for [`Batching::Mixed`]
    /// destinations `sources` is empty; otherwise the batch is grouped by source, and
    /// `sources[i]` describes the next `sources[i].events` events of the batch (for
    /// [`Batching::PerPartition`] there is exactly one). The default ignores the sources.
    async fn deliver_from(
        &self,
        batch: &[Arc<Event>],
        sources: &[SourceRange],
    ) -> Result<(), DeliveryError> {
        let _ = sources;
        self.deliver(batch).await
    }
}

/// How the runtime cuts a destination's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Batches mix partitions in arrival order; no sources are passed (HTTP APIs).
    Mixed,
    /// Batches mix partitions, grouped by partition in the batch (each partition's events in
    /// position order), with one [`SourceRange`] per partition: loads that record what they
    /// hold (the warehouses' ledger) without cutting per partition.
    Sourced,
    /// Each batch is one source partition's run in position order, at most one in flight per
    /// partition, with its [`SourceRange`]: output named by the range it holds (the archive's
    /// objects), so a redelivery after a crash starts where an unfinished batch started.
    PerPartition,
}

/// Where events of a batch came from: positions `first..=last` of one partition of a source log
/// (the topic). Connectors use it to name or record what they write, so a redelivered range
/// lands on the same name instead of beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRange {
    /// The source log's name.
    pub topic: SmolStr,
    /// The partition.
    pub partition: i32,
    /// The first event's position.
    pub first: i64,
    /// The last event's position.
    pub last: i64,
    /// The first event's timestamp in the log (milliseconds since the epoch), for date/hour
    /// prefixes.
    pub timestamp_ms: i64,
    /// How many of the batch's events (consecutive, after those of the sources before this
    /// one) came from this range.
    pub events: usize,
    /// `true` when the batch holds every event of this destination in `first..=last` (the
    /// main flow); `false` for redeliveries of single events picked from that range (retried
    /// events), whose name must not replace a complete range's.
    pub complete: bool,
}

impl SourceRange {
    /// `topic-partition-first-last`, positions zero-padded to 20 digits so names sort by
    /// position.
    pub fn name(&self) -> String {
        format!(
            "{}-{}-{:020}-{:020}",
            self.topic, self.partition, self.first, self.last
        )
    }
}

/// The limits the runtime batches under, for one destination instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BatchLimits {
    /// At most this many events per batch.
    pub max_events: usize,
    /// At most this many bytes of event JSON per batch (a single larger event goes alone).
    pub max_bytes: usize,
    /// A batch is sent when its oldest event has waited this long, full or not.
    #[serde(with = "millis")]
    pub max_age: Duration,
}

mod millis {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// What a destination API allows, by its published contract. The runtime clamps each
/// destination's batch limits to these and uses the rates as default rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ApiLimits {
    /// Events per request at most.
    pub max_batch_events: Option<usize>,
    /// Bytes of event JSON per request at most (approximate: the request's own encoding may
    /// differ; a 413 makes the runtime split the batch).
    pub max_batch_bytes: Option<usize>,
    /// Default requests per second per destination instance.
    pub requests_per_second: Option<f64>,
    /// Default events per second per destination instance.
    pub events_per_second: Option<f64>,
    /// Batches in flight at once per destination instance, at most (an API that must see
    /// events in order, or loads that serialise on a lock anyway).
    pub max_concurrency: Option<usize>,
    /// Milliseconds a batch may wait for more events, at most (a destination with no cost per
    /// request gains nothing from waiting, and its events would only hold memory meanwhile).
    pub max_batch_age_ms: Option<u64>,
}

impl ApiLimits {
    /// No published limits.
    pub const NONE: ApiLimits = ApiLimits {
        max_batch_events: None,
        max_batch_bytes: None,
        requests_per_second: None,
        events_per_second: None,
        max_concurrency: None,
        max_batch_age_ms: None,
    };
}

/// What a connector knows about the instance it builds.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The customer's id, for error messages and logs.
    pub customer: String,
    /// The destination's name within the customer, for error messages and logs.
    pub destination: String,
    /// The batch limits the runtime will apply (a connector may shape its requests by them).
    pub batch: BatchLimits,
    /// A shared HTTP client (connection pool, TLS roots) for HTTP connectors.
    pub http: reqwest::Client,
}

impl BuildContext {
    /// A settings error on `field` of this destination.
    pub fn invalid(&self, field: &str, message: impl Into<String>) -> BuildError {
        BuildError::InvalidSetting {
            customer: self.customer.clone(),
            destination: self.destination.clone(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}
