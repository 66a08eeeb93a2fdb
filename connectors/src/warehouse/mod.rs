//! The warehouse layout shared by the `redshift` and `postgres` connectors: which tables and
//! columns a Segment event becomes, and how names from events are made safe.
//!
//! # Layout (Segment's warehouse schema, one schema per customer)
//! | event | rows |
//! |---|---|
//! | track | `tracks` (standard columns, `event`, `event_text`) and one row in the event's own table (standard columns and the properties) |
//! | identify | `identifies` (standard columns and the traits) and `users` (`id` = userId, the traits merged across identifies) |
//! | page / screen | `pages` / `screens` (standard columns, `name`, the properties) |
//! | group | `groups` (standard columns, `group_id`, the traits) |
//! | alias | `aliases` (standard columns, `previous_id`) |
//!
//! Standard columns: `id` (the `messageId`, the de-duplication key), `received_at` (when
//! Courier consumed it), `sent_at`, `timestamp`, `original_timestamp`, `user_id`,
//! `anonymous_id`, and `context` flattened into `context_*` columns. Nested objects flatten
//! with `_` (`properties.address.city` → `address_city`); arrays are stored as JSON text.
//!
//! # Names are untrusted
//! Event names and property keys come from customers' users. [`identifier::sanitize`] turns
//! each into lowercase ASCII letters, digits and `_`, bounded in length, never a reserved word;
//! [`identifier::quote`] quotes it for SQL anyway. Values never enter SQL text: they travel in
//! CSV load files and bound parameters.

pub mod csv;
pub mod identifier;
pub(crate) mod load;
pub mod plan;
pub(crate) mod pool;
pub mod rows;

pub use identifier::{quote, sanitize};
pub use load::LEDGER;
pub use rows::{rows, ColumnType, Dialect, Row, RowBuilder, Value};
