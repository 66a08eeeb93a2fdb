//! `redshift`: Segment's warehouse layout in Amazon Redshift, loaded from files staged in S3.
//!
//! Per batch (one source partition's range): the rows of each table are written as gzip CSV
//! files (an explicit column list, 50,000 rows per file) plus a manifest under
//! `staging.prefix/schema/table/load_id/`, then one transaction — `LOCK` on the schema's
//! ledger, DDL, `COPY staging_table (columns) FROM 's3://.../manifest.json' MANIFEST CSV GZIP
//! TIMEFORMAT 'auto' ACCEPTINVCHARS TRUNCATECOLUMNS EMPTYASNULL COMPUPDATE OFF STATUPDATE OFF`
//! with an IAM role or the staging keys, `DELETE ... USING` on `id`, `INSERT` of one row per
//! `id` (`ROW_NUMBER()`, Redshift has no `DISTINCT ON`), ledger rows, commit — see
//! `crate::warehouse::load`. The events are acknowledged after the commit.
//!
//! Staged files stay in the bucket (the ledger names them); expire them with a lifecycle rule.
//! An S3 outage fails the batch before or inside the transaction, which then rolls back; the
//! runtime retries it.
//!
//! Identifiers are at most 127 bytes here; text columns are `varchar(65535)` (longer values are
//! truncated by `TRUNCATECOLUMNS`), and `EMPTYASNULL` loads empty strings as NULL.

mod config;
mod service;

pub use config::RedshiftSettings;
pub use service::RedshiftConnector;
