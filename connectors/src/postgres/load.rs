//! One batch as one transaction (see the module above).

use std::collections::HashMap;
use std::sync::Arc;

use futures::SinkExt;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::event::Event;
use crate::warehouse::csv::write_rows;
use crate::warehouse::plan::{by_table, merge_by_id, plan};
use crate::warehouse::rows::{rows, ColumnType, Dialect};
use crate::warehouse::{quote, sanitize};

/// The table identifies merge into instead of replacing rows.
const USERS: &str = "users";

/// The ledger table in every customer schema.
pub(crate) const LEDGER: &str = "courier_loads";

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// The rows were merged.
    Rows(usize),
    /// The ledger already held this batch.
    Skipped,
}

/// The load id of a batch: the same events give the same id.
pub(crate) fn load_id(batch: &[Arc<Event>]) -> String {
    let mut ids: Vec<&str> = batch.iter().map(|e| e.message_id()).collect();
    ids.sort_unstable();
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
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

/// Loads `batch` into `schema` in one transaction.
pub(crate) async fn load(
    client: &mut Client,
    schema: &str,
    batch: &[Arc<Event>],
    received_at_ms: i64,
) -> Result<Loaded, tokio_postgres::Error> {
    let dialect = Dialect::Postgres;
    let s = quote(schema);
    let id = load_id(batch);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.{ledger} (load_id text PRIMARY KEY, events integer NOT NULL, tables text NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now());",
        ledger = quote(LEDGER)
    ))
    .await?;
    let seen = tx
        .query_opt(
            &format!("SELECT 1 FROM {s}.{} WHERE load_id = $1", quote(LEDGER)),
            &[&id],
        )
        .await?;
    if seen.is_some() {
        tx.commit().await?;
        return Ok(Loaded::Skipped);
    }
    let tables = by_table(batch.iter().flat_map(|e| rows(e, received_at_ms, dialect)));
    let mut loaded = 0;
    let names: Vec<String> = tables.keys().cloned().collect();
    for (n, (table, table_rows)) in tables.into_iter().enumerate() {
        let t = format!("{s}.{}", quote(&table));
        tx.execute(&format!("CREATE TABLE IF NOT EXISTS {t} (\"id\" text NOT NULL, \"received_at\" timestamptz)"), &[])
            .await?;
        let existing: HashMap<String, ColumnType> = tx
            .query(
                // The table's columns and declared types, from the catalog.
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 JOIN pg_class c ON a.attrelid = c.oid JOIN pg_namespace n ON c.relnamespace = n.oid \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema, &table],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, String>(0), column_type(&r.get::<_, String>(1))))
            .collect();
        let table_rows = if table == USERS {
            merge_by_id(table_rows)
        } else {
            table_rows
        };
        let p = plan(&table, table_rows, &existing, dialect);
        for (column, ty) in &p.new_columns {
            tx.execute(
                &format!(
                    "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {}",
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
        tx.execute(
            &format!("CREATE TEMP TABLE {stage} (LIKE {t}) ON COMMIT DROP"),
            &[],
        )
        .await?;
        let columns: Vec<String> = p.columns.keys().cloned().collect();
        let list = columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut csv = Vec::new();
        write_rows(&p.rows, &columns, &mut csv);
        let sink = tx
            .copy_in(&format!(
                "COPY {stage} ({list}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await?;
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(csv)).await?;
        sink.finish().await?;
        loaded += if table == USERS {
            // Users accumulate traits: staged non-NULL values update the row, new ids insert.
            let set = columns
                .iter()
                .filter(|c| c.as_str() != "id")
                .map(|c| format!("{0} = COALESCE(s.{0}, t.{0})", quote(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let updated = tx
                .execute(
                    &format!(
                        "UPDATE {t} AS t SET {set} FROM {stage} AS s WHERE t.\"id\" = s.\"id\""
                    ),
                    &[],
                )
                .await?;
            let inserted = tx
                .execute(
                    &format!("INSERT INTO {t} ({list}) SELECT {list} FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE t.\"id\" = s.\"id\")"),
                    &[],
                )
                .await?;
            (updated + inserted) as usize
        } else {
            tx.execute(
                &format!("DELETE FROM {t} AS t USING {stage} AS s WHERE t.\"id\" = s.\"id\""),
                &[],
            )
            .await?;
            tx.execute(
                &format!("INSERT INTO {t} ({list}) SELECT DISTINCT ON (\"id\") {list} FROM {stage} ORDER BY \"id\", \"received_at\" DESC"),
                &[],
            )
            .await? as usize
        };
    }
    let events = i32::try_from(batch.len()).unwrap_or(i32::MAX);
    tx.execute(
        &format!(
            "INSERT INTO {s}.{} (load_id, events, tables) VALUES ($1, $2, $3)",
            quote(LEDGER)
        ),
        &[&id, &events, &names.join(",")],
    )
    .await?;
    tx.commit().await?;
    Ok(Loaded::Rows(loaded))
}
