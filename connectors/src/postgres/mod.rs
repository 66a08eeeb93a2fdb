//! `postgres`: Segment's warehouse layout in a PostgreSQL database, one row per event.
//!
//! Each batch is one transaction, serialised per customer schema by an advisory lock:
//!
//! 1. create the schema, the load ledger and the tables the batch needs; add new columns
//!    (types are inferred and never changed; a misfitting value goes to `<column>_text`, see
//!    [`crate::warehouse::plan`]);
//! 2. skip the batch if the ledger already holds its load id (a hash of its message ids);
//! 3. per table: `COPY` the rows as CSV into a temporary staging table, `DELETE` the table's
//!    rows with the staged ids, `INSERT` the staged rows keeping one per id (the latest
//!    `received_at`); `users` instead merges: identifies of one user are folded in delivery
//!    order, then staged non-NULL traits update the existing row and new ids are inserted;
//! 4. record the load in `courier_loads`, commit. Only then are the events acknowledged.
//!
//! So a redelivered event replaces its row instead of adding one: every `messageId` is one
//! row per table, however often it is delivered. Identifiers from events are sanitised and
//! quoted; values only travel in the CSV stream.
//!
//! Failures: connection losses, restarts (SQLSTATE classes 08, 57), serialisation failures
//! and deadlocks (40), resource limits (53, 58) are retried; any other SQL error dead-letters
//! the batch with the error. The transaction rolls back on any failure, so nothing is ever
//! half-loaded.
//!
//! Not yet: staging the load file in S3 first (the `redshift` connector's path), TLS
//! connections. A replayed old identify re-applies its traits over newer ones (delivery order
//! decides, not event time).

mod config;
mod load;
mod service;

pub use config::PostgresSettings;
pub use service::PostgresConnector;
