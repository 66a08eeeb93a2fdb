//! `postgres`: Segment's warehouse layout in a PostgreSQL database, one row per event.
//!
//! Each batch (events of any partitions, with the range each partition contributed, see
//! [`crate::Batching::Sourced`]) is one transaction under a per-schema advisory lock, loaded with `COPY ... FROM STDIN`; the steps,
//! the merge by `messageId` and the `courier_ledger` table are
//! `crate::warehouse::load`'s, shared with `redshift`.
//!
//! So a redelivered event replaces its row instead of adding one: every `messageId` is one
//! row per table, however often it is delivered. Identifiers from events are sanitised and
//! quoted; values only travel in the CSV stream.
//!
//! Failures: connection losses, restarts (SQLSTATE classes 08, 57), serialisation failures
//! and deadlocks (40), resource limits (53, 58) and concurrent-DDL races are retried; any other
//! SQL error dead-letters the batch with the error. The transaction rolls back on any failure,
//! so nothing is ever half-loaded.
//!
//! Not yet: TLS connections. A replayed old identify re-applies its traits over newer ones
//! (delivery order decides, not event time).

mod config;
mod service;

pub use config::PostgresSettings;
pub(crate) use service::connection_doc;
pub use service::PostgresConnector;
