//! One batch as one warehouse transaction, shared by the `postgres` and `redshift` connectors.
//!
//! Under a per-schema lock (PostgreSQL: an advisory lock; Redshift: `LOCK` on the ledger):
//!
//! 1. create the schema, the ledger and the tables the batch needs; add new columns (types are
//!    inferred and never changed; a misfitting value goes to `<column>_text`, see
//!    [`super::plan`]);
//! 2. skip the batch if the ledger already holds its load id (a hash of its message ids: the
//!    same events, however the batch was cut);
//! 3. per table: stage the rows as CSV in a temporary table — `COPY ... FROM STDIN` on
//!    PostgreSQL, or gzip CSV files plus a manifest written to S3 and `COPY ... FROM 's3://...'
//!    MANIFEST` on Redshift — then `DELETE` the table's rows with the staged ids and `INSERT` the
//!    staged rows keeping one per id (the latest `received_at`); `users` instead merges: the
//!    identifies of one user are folded in delivery order, staged non-NULL traits update the
//!    existing row and new ids are inserted. Every table's new columns are added before one
//!    statement batch creates all staging tables (`LIKE` copies the columns as they are then),
//!    and each table's merge (`DELETE` and `INSERT`, or `UPDATE` and `INSERT`) is one simple
//!    query whose counts come back in order: two round trips per table in the steady state;
//! 4. record one ledger row per table and source range (customer, table, topic, partition,
//!    first and last offset, file keys, rows from that range), commit. Only then are the events
//!    acknowledged.
//!
//! The schema's catalog (which tables exist, with which columns and types) is cached per
//! destination between loads ([`Catalog`]): a load reads the catalog only for tables it has
//! not seen, and the cache is updated after a commit and forgotten after any failure. Another
//! worker's concurrent DDL then shows as a failed statement (a duplicate or missing column or
//! table), which is retried with a fresh catalog.
//!
//! Identifiers are sanitised and quoted; values travel only in load files and bound parameters.
//! Any failure drops the transaction, which rolls everything back, staged files included in
//! effect (they are only named by the ledger after a commit).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::SinkExt;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, SimpleQueryMessage, Transaction};

use crate::destination::SourceRange;
use crate::error::DeliveryError;
use crate::event::Event;
use crate::gzip::gzip;
use crate::s3::Bucket;
use crate::warehouse::csv::write_rows;
use crate::warehouse::plan::{merge_by_id, plan};
use crate::warehouse::rows::{ColumnType, Dialect, Row, RowBuilder};
use crate::warehouse::{quote, sanitize};

/// The table identifies merge into instead of replacing rows.
const USERS: &str = "users";

/// The ledger table in every customer schema.
pub const LEDGER: &str = "courier_ledger";

/// Rows per staged load file (Redshift loads the files of a manifest in parallel).
const ROWS_PER_FILE: usize = 50_000;

/// How staged rows reach the staging table.
#[derive(Debug)]
pub(crate) enum Staging<'a> {
    /// `COPY ... FROM STDIN` over the connection.
    Stdin,
    /// Gzip CSV files and a manifest in S3, then `COPY ... FROM 's3://...' MANIFEST`.
    S3 {
        /// Where the files go.
        bucket: &'a Bucket,
        /// The `COPY` authorisation clause (`IAM_ROLE '...'` or `CREDENTIALS '...'`); secret.
        authorization: &'a str,
    },
}

/// Columns and their types, by table.
type Tables = HashMap<String, foldhash::HashMap<String, ColumnType>>;

/// What loads learned of one schema's tables, kept between loads of one destination. `None`
/// until a load committed (the schema and ledger may not exist yet).
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    tables: Mutex<Option<Tables>>,
}

impl Catalog {
    fn snapshot(&self) -> Option<Tables> {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn store(&self, tables: Tables) {
        *self.tables.lock().unwrap_or_else(|e| e.into_inner()) = Some(tables);
    }

    /// Forgets everything: the next load reads the catalog again.
    pub(crate) fn forget(&self) {
        *self.tables.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Where and how a batch loads.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    /// The customer, for the ledger.
    pub customer: &'a str,
    /// The customer's schema (sanitised).
    pub schema: &'a str,
    /// The SQL dialect.
    pub dialect: Dialect,
    /// How rows are staged.
    pub staging: Staging<'a>,
    /// The schema's cached catalog.
    pub catalog: &'a Catalog,
}

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// The rows were merged.
    Rows(usize),
    /// The ledger already held this batch.
    Skipped,
}

/// Why a load failed.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// The database refused or the connection failed.
    Sql(tokio_postgres::Error),
    /// Staging files in S3 failed (already classified).
    Stage(DeliveryError),
}

impl From<tokio_postgres::Error> for LoadError {
    fn from(err: tokio_postgres::Error) -> Self {
        LoadError::Sql(err)
    }
}

/// The load id of a batch: a hash of its message ids, so only the same events are skipped as
/// already loaded.
pub(crate) fn load_id(batch: &[Arc<Event>]) -> String {
    let mut ids: Vec<&str> = batch.iter().map(|e| e.message_id()).collect();
    ids.sort_unstable();
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update([0]);
    }
    format!("load-{}", hex::encode(&hash.finalize()[..16]))
}

/// One table's rows of a batch, and how many of them each source contributed.
struct TableRows {
    rows: Vec<Row>,
    per_source: Vec<usize>,
}

/// One table of a load, planned, rendered and with its staging table named, ready to stage and
/// merge. Its rows are already load files: a row's cells take several times the bytes of its
/// CSV line, and the load holds its tables across many round trips.
struct Staged {
    table: Arc<str>,
    /// `schema.table`, quoted.
    qualified: String,
    /// The staging table's name, quoted.
    stage: String,
    /// The table's columns, in the order of the files' fields.
    columns: Vec<Arc<str>>,
    /// The load files (see [`render`]).
    files: Vec<Vec<u8>>,
    per_source: Vec<usize>,
}

/// The batch's rows by table (the batch is grouped by source, see
/// [`crate::Batching::Sourced`]; without sources, one unnamed source).
fn tables_of(
    batch: &[Arc<Event>],
    sources: &[SourceRange],
    received_at_ms: i64,
    dialect: Dialect,
) -> BTreeMap<Arc<str>, TableRows> {
    let spans: Vec<usize> = if sources.is_empty() {
        vec![batch.len()]
    } else {
        sources.iter().map(|s| s.events).collect()
    };
    let mut tables: BTreeMap<Arc<str>, TableRows> = BTreeMap::new();
    let builder = RowBuilder::new(received_at_ms, dialect);
    let mut events = batch.iter();
    for (i, span) in spans.iter().enumerate() {
        for event in events.by_ref().take(*span) {
            for row in builder.rows(event) {
                let table = tables
                    .entry(row.table.clone())
                    .or_insert_with(|| TableRows {
                        rows: Vec::new(),
                        per_source: vec![0; spans.len()],
                    });
                table.per_source[i] += 1;
                table.rows.push(row);
            }
        }
    }
    tables
}

fn column_type(data_type: &str) -> ColumnType {
    match data_type {
        "boolean" => ColumnType::Boolean,
        "bigint" | "integer" | "smallint" => ColumnType::BigInt,
        "double precision" | "real" | "numeric" => ColumnType::Double,
        "timestamp with time zone" | "timestamp without time zone" => ColumnType::Timestamp,
        _ => ColumnType::Text,
    }
}

/// Escapes a value for a single-quoted SQL string literal (only for settings, never for event
/// data).
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Loads `batch` into the target schema in one transaction.
pub(crate) async fn load(
    client: &mut Client,
    target: &Target<'_>,
    batch: &[Arc<Event>],
    sources: &[SourceRange],
    received_at_ms: i64,
) -> Result<Loaded, LoadError> {
    let dialect = target.dialect;
    let s = quote(target.schema);
    let ledger = format!("{s}.{}", quote(LEDGER));
    let id = load_id(batch);
    let cached = target.catalog.snapshot();
    let tx = client.transaction().await?;
    if dialect == Dialect::Postgres {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&target.schema],
        )
        .await?;
    }
    if cached.is_none() {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {ledger} (load_id varchar(256) NOT NULL, table_name varchar(256) NOT NULL, customer varchar(256) NOT NULL, topic varchar(256), \"partition\" integer, first_offset bigint, last_offset bigint, files varchar(65535), events integer NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await?;
    }
    let mut catalog = cached.unwrap_or_default();
    if dialect == Dialect::Redshift {
        tx.batch_execute(&format!("LOCK {ledger}")).await?;
    }
    let seen = tx
        .query_opt(
            &format!("SELECT 1 FROM {ledger} WHERE load_id = $1 LIMIT 1"),
            &[&id],
        )
        .await?;
    if seen.is_some() {
        tx.commit().await?;
        return Ok(Loaded::Skipped);
    }
    let tables = tables_of(batch, sources, received_at_ms, dialect);
    // First every table's DDL, plan and load files, so that one round trip creates every
    // staging table (`LIKE` copies the columns as they are then, new ones included).
    let mut staged = Vec::with_capacity(tables.len());
    for (
        n,
        (
            table,
            TableRows {
                rows: table_rows,
                per_source,
            },
        ),
    ) in tables.into_iter().enumerate()
    {
        let t = format!("{s}.{}", quote(&table));
        if !catalog.contains_key(&*table) {
            tx.execute(
                &format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\"id\" {} NOT NULL, \"received_at\" timestamptz)",
                    ColumnType::Text.sql(dialect)
                ),
                &[],
            )
            .await?;
            let columns = tx
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2",
                    &[&target.schema, &&*table],
                )
                .await?
                .iter()
                .map(|r| (r.get::<_, String>(0), column_type(&r.get::<_, String>(1))))
                .collect();
            catalog.insert(table.to_string(), columns);
        }
        let existing = catalog.entry(table.to_string()).or_default();
        let table_rows = if &*table == USERS {
            merge_by_id(table_rows)
        } else {
            table_rows
        };
        let p = plan(&table, table_rows, existing, dialect);
        for (column, ty) in &p.new_columns {
            // The catalog was read under the lock (or cached, and then a concurrent change
            // fails this statement and the retry reads it again), so the column is new.
            existing.insert(column.to_string(), *ty);
            tx.execute(
                &format!(
                    "ALTER TABLE {t} ADD COLUMN {} {}",
                    quote(column),
                    ty.sql(dialect)
                ),
                &[],
            )
            .await?;
        }
        let stage = quote(&sanitize(
            &format!("courier_stage_{n}"),
            dialect.max_identifier(),
        ));
        let columns: Vec<Arc<str>> = p.columns.keys().cloned().collect();
        let files = render(&target.staging, &p.rows, &columns);
        staged.push(Staged {
            table,
            qualified: t,
            stage,
            columns,
            files,
            per_source,
        });
    }
    let on_commit = match dialect {
        Dialect::Postgres => " ON COMMIT DROP",
        Dialect::Redshift => "",
    };
    let create_stages: String = staged
        .iter()
        .map(|table| {
            format!(
                "CREATE TEMP TABLE {} (LIKE {}){on_commit};",
                table.stage, table.qualified
            )
        })
        .collect();
    if !create_stages.is_empty() {
        tx.batch_execute(&create_stages).await?;
    }
    let mut loaded = 0;
    let mut ledger_rows = Vec::with_capacity(staged.len());
    for Staged {
        table,
        qualified: t,
        stage,
        columns,
        files,
        per_source,
    } in staged
    {
        let users = &*table == USERS;
        let list = columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let files = stage_files(&tx, target, &id, &table, &stage, &list, files).await?;
        // One round trip merges the staged rows: its statements' counts come back in order.
        let merge = if users {
            // Users accumulate traits: staged non-NULL values update the row, new ids insert.
            let set = columns
                .iter()
                .filter(|c| &***c != "id")
                .map(|c| format!("{0} = COALESCE(s.{0}, t.{0})", quote(c)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "UPDATE {t} AS t SET {set} FROM {stage} AS s WHERE t.\"id\" = s.\"id\"; \
                 INSERT INTO {t} ({list}) SELECT {list} FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE t.\"id\" = s.\"id\");"
            )
        } else {
            let insert = match dialect {
                Dialect::Postgres => format!("INSERT INTO {t} ({list}) SELECT DISTINCT ON (\"id\") {list} FROM {stage} ORDER BY \"id\", \"received_at\" DESC"),
                Dialect::Redshift => format!("INSERT INTO {t} ({list}) SELECT {list} FROM (SELECT {list}, ROW_NUMBER() OVER (PARTITION BY \"id\" ORDER BY \"received_at\" DESC) AS courier_rank FROM {stage}) AS ranked WHERE courier_rank = 1"),
            };
            format!("DELETE FROM {t} USING {stage} AS s WHERE {t}.\"id\" = s.\"id\"; {insert};")
        };
        let drop = match dialect {
            Dialect::Postgres => String::new(),
            Dialect::Redshift => format!(" DROP TABLE {stage};"),
        };
        let counts: Vec<u64> = tx
            .simple_query(&format!("{merge}{drop}"))
            .await?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(n),
                _ => None,
            })
            .collect();
        // Users: updated + inserted; other tables: inserted (the second statement).
        let merged = if users {
            counts.iter().take(2).sum()
        } else {
            counts.get(1).copied().unwrap_or(0)
        };
        loaded += merged as usize;
        let files = files.join(",");
        for (i, rows) in per_source.iter().enumerate() {
            if *rows > 0 {
                let source = sources.get(i);
                ledger_rows.push(LedgerRow {
                    table: table.to_string(),
                    topic: source.map(|r| r.topic.to_string()),
                    partition: source.map(|r| r.partition),
                    first: source.map(|r| r.first),
                    last: source.map(|r| r.last),
                    files: files.clone(),
                    events: i32::try_from(*rows).unwrap_or(i32::MAX),
                });
            }
        }
    }
    record(&tx, &ledger, &id, target.customer, &ledger_rows).await?;
    tx.commit().await?;
    target.catalog.store(catalog);
    Ok(Loaded::Rows(loaded))
}

/// Ledger rows per statement (nine parameters each, well under the protocol's 65,535).
const LEDGER_ROWS_PER_INSERT: usize = 500;

/// One ledger row: what one source range put into one table in this load.
struct LedgerRow {
    table: String,
    topic: Option<String>,
    partition: Option<i32>,
    first: Option<i64>,
    last: Option<i64>,
    files: String,
    events: i32,
}

/// Inserts the ledger rows of load `id`, many per statement.
async fn record(
    tx: &Transaction<'_>,
    ledger: &str,
    id: &str,
    customer: &str,
    rows: &[LedgerRow],
) -> Result<(), tokio_postgres::Error> {
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    for chunk in rows.chunks(LEDGER_ROWS_PER_INSERT) {
        let mut values = Vec::with_capacity(chunk.len());
        let mut params: Vec<Param<'_>> = Vec::with_capacity(chunk.len() * 9);
        for (i, row) in chunk.iter().enumerate() {
            let placeholders: Vec<String> = (1..=9).map(|k| format!("${}", i * 9 + k)).collect();
            values.push(format!("({})", placeholders.join(", ")));
            params.extend([
                &id as Param<'_>,
                &row.table,
                &customer,
                &row.topic,
                &row.partition,
                &row.first,
                &row.last,
                &row.files,
                &row.events,
            ]);
        }
        tx.execute(
            &format!("INSERT INTO {ledger} (load_id, table_name, customer, topic, \"partition\", first_offset, last_offset, files, events) VALUES {}", values.join(", ")),
            &params,
        )
        .await?;
    }
    Ok(())
}

/// A table's rows as load files: one CSV for `COPY ... FROM STDIN`, or gzip CSV files of
/// [`ROWS_PER_FILE`] rows each for S3.
fn render(staging: &Staging<'_>, rows: &[Row], columns: &[Arc<str>]) -> Vec<Vec<u8>> {
    match staging {
        Staging::Stdin => {
            let mut csv = Vec::new();
            write_rows(rows, columns, &mut csv);
            vec![csv]
        }
        Staging::S3 { .. } => rows
            .chunks(ROWS_PER_FILE)
            .map(|chunk| {
                let mut csv = Vec::new();
                write_rows(chunk, columns, &mut csv);
                gzip(csv.len() / 4, |gz| gz.write(&csv))
            })
            .collect(),
    }
}

/// Fills the staging table from the table's load `files` (see [`render`]); returns the staged
/// file keys (none for STDIN).
async fn stage_files(
    tx: &Transaction<'_>,
    target: &Target<'_>,
    load_id: &str,
    table: &str,
    stage: &str,
    list: &str,
    files: Vec<Vec<u8>>,
) -> Result<Vec<String>, LoadError> {
    match &target.staging {
        Staging::Stdin => {
            let sink = tx
                .copy_in(&format!(
                    "COPY {stage} ({list}) FROM STDIN WITH (FORMAT csv)"
                ))
                .await?;
            futures::pin_mut!(sink);
            for csv in files {
                sink.send(bytes::Bytes::from(csv)).await?;
            }
            sink.finish().await?;
            Ok(Vec::new())
        }
        Staging::S3 {
            bucket,
            authorization,
        } => {
            let dir = bucket
                .location()
                .key(&format!("{}/{table}/{load_id}", target.schema));
            let bucket_name = &bucket.location().bucket;
            let mut keys = Vec::new();
            let mut entries = Vec::new();
            for (i, body) in files.into_iter().enumerate() {
                let key = format!("{dir}/part-{i:05}.csv.gz");
                let length = body.len();
                bucket
                    .put(&key, body, "application/gzip")
                    .await
                    .map_err(LoadError::Stage)?;
                entries.push(serde_json::json!({
                    "url": format!("s3://{bucket_name}/{key}"),
                    "mandatory": true,
                    "meta": { "content_length": length },
                }));
                keys.push(key);
            }
            let manifest = format!("{dir}/manifest.json");
            let body =
                serde_json::to_vec(&serde_json::json!({ "entries": entries })).unwrap_or_default();
            bucket
                .put(&manifest, body, "application/json")
                .await
                .map_err(LoadError::Stage)?;
            // Never logged: the authorisation clause may hold keys.
            let copy = format!(
                "COPY {stage} ({list}) FROM {url} {authorization} MANIFEST CSV GZIP TIMEFORMAT 'auto' ACCEPTINVCHARS TRUNCATECOLUMNS EMPTYASNULL COMPUPDATE OFF STATUPDATE OFF REGION {region}",
                url = literal(&format!("s3://{bucket_name}/{manifest}")),
                region = literal(&bucket.location().region),
            );
            tx.batch_execute(&copy).await?;
            keys.push(manifest);
            Ok(keys)
        }
    }
}
