//! Courier: delivers Segment-spec analytics events from Kafka to each customer's enabled
//! destinations, committing offsets only after delivery.
//!
//! # Layout
//! The data path, in the order a message travels it:
//! - [`consumer`]: the group consumer; assignment, revocation, final commits, the poll thread;
//!   [`start`]: where a new partition without a committed offset starts.
//! - [`partition`]: one task per assigned partition: decode, route, fan out, track;
//!   `chunk`: its messages copied out of librdkafka a chunk (one allocation, one budget share)
//!   at a time.
//! - [`route`]: the routing table (write key → customer → enabled, filtered destinations).
//! - [`ack`]: the per-message acknowledgement shared by its destination copies.
//! - [`tracker`]: per-partition completion and the committable watermark;
//!   [`commits`]: one offset commit request per consumer for all of its partitions.
//! - [`budget`]: the bytes a consumer may hold undone across its partitions;
//!   [`pressure`]: a spent budget, or a draining partition, makes destinations send partial
//!   batches early.
//! - [`deliver`]: one task per destination instance: batch, send, retry, dead-letter.
//! - [`batch`], [`backoff`]: the pure pieces of delivery.
//! - [`ratelimit`], [`breaker`]: per destination instance rate limits and circuit breaker.
//! - [`deadletter`]: the dead-letter producer and its headers.
//! - [`retry`]: the retry topic: parking events of a failing destination, and their headers.
//! - [`producer`]: the one producer of both, resolving each send on the broker's acknowledgement.
//!
//! Around it:
//! - [`settings`], [`customers`]: configuration, layered and validated before any I/O.
//! - [`destinations`]: builds connector instances (from `courier-connectors`) and the table.
//! - [`control`], [`store`]: live configuration from customer files or PostgreSQL rows;
//!   [`edit`]: the `courier destinations` commands that change either store.
//! - [`kafka`]: librdkafka client configurations.
//! - [`worker`]: the `courier run` command.
//! - [`offsets`]: the `courier offsets show` and `reset` commands.
//! - [`replay`]: the `courier replay` command.
//! - [`telemetry`]: log output.
//! - [`status`], [`ops`]: what a worker knows about itself, and the HTTP server that shows it
//!   (`/healthz`, `/readyz`, `/metrics`, `/status`).
//! - [`devstack`]: the local stack for demos and tests (broker, receivers, contract servers,
//!   sample events).
//!
//! # The guarantee
//! A message's offset is committed only when every destination copy of it was delivered,
//! dead-lettered or parked on the retry topic (the last two acknowledged by the broker). Anything else (a crash, a revoke, a destination
//! that never recovers) leaves the committed offset below the message, so the group redelivers
//! it: at least once, never silently lost.

pub mod ack;
pub mod backoff;
pub mod batch;
pub mod breaker;
pub mod budget;
pub(crate) mod chunk;
pub mod commits;
pub mod consumer;
pub mod control;
pub mod customers;
pub mod deadletter;
pub mod deliver;
pub mod destinations;
pub mod devstack;
pub mod edit;
pub(crate) mod fetch;
pub mod kafka;
pub mod offsets;
pub mod ops;
pub mod partition;
pub mod pressure;
pub mod producer;
pub mod ratelimit;
pub mod replay;
pub mod retry;
pub mod route;
pub mod settings;
pub mod start;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tracker;
pub mod worker;
