//! The PostgreSQL configuration store: customers and their destinations as rows, followed by
//! every worker with LISTEN/NOTIFY, so one update reaches the whole fleet.
//!
//! ```sql
//! courier_customers    (id text PRIMARY KEY, write_keys text[], updated_at timestamptz)
//! courier_destinations (customer text REFERENCES courier_customers ON DELETE CASCADE,
//!                       name text, kind text, enabled boolean, settings jsonb,
//!                       filter jsonb, delivery jsonb, updated_at timestamptz,
//!                       PRIMARY KEY (customer, name))
//! ```
//!
//! Statement triggers on both tables `NOTIFY courier_config`; a worker reloads on each
//! notification, and also whenever the tables' row count or latest `updated_at` changed (a
//! poll every `control.reload_interval_ms`, for notifications lost while reconnecting). A row
//! is validated exactly like a customer file (`settings`, `filter` and `delivery` take the same
//! keys); `${VAR}` references in settings are expanded from the worker's environment, so
//! secrets need not be stored in the table.

use std::path::PathBuf;
use std::task::Poll;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::customers::{self, Customer};
use crate::settings::DeliverySettings;

/// The notification channel.
pub const CHANNEL: &str = "courier_config";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS courier_customers (
    id text PRIMARY KEY,
    write_keys text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS courier_destinations (
    customer text NOT NULL REFERENCES courier_customers (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    settings jsonb NOT NULL DEFAULT '{}',
    filter jsonb,
    delivery jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer, name)
);
CREATE OR REPLACE FUNCTION courier_config_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('courier_config', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER courier_customers_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON courier_customers FOR EACH STATEMENT EXECUTE FUNCTION courier_config_notify();
CREATE OR REPLACE TRIGGER courier_destinations_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON courier_destinations FOR EACH STATEMENT EXECUTE FUNCTION courier_config_notify();
";

/// Connects to the store's database, with a task driving the connection and forwarding
/// notifications to the returned receiver.
async fn connect(url: &str) -> anyhow::Result<(Client, mpsc::UnboundedReceiver<()>)> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to the configuration store (control.postgres_url)")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| match connection.poll_message(cx) {
                Poll::Ready(message) => Poll::Ready(message),
                Poll::Pending => Poll::Pending,
            })
            .await
            {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    let _ = tx.send(());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "configuration store connection lost");
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute("SET client_min_messages TO warning")
        .await?;
    Ok((client, rx))
}

/// Creates the tables and triggers if they are missing (serialised by an advisory lock, so
/// workers starting together do not race).
pub async fn ensure_schema(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('courier_config_schema')); {SCHEMA} COMMIT;"
        ))
        .await
        .context("creating the configuration store's tables")
}

/// A connection that reads customers and hears about changes.
pub struct PostgresStore {
    url: String,
    client: Client,
    notifications: mpsc::UnboundedReceiver<()>,
    /// Row count and latest update of both tables at the last load.
    seen: Option<(i64, Option<i64>)>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates the tables if needed, and listens for changes.
    pub async fn connect(url: &str) -> anyhow::Result<PostgresStore> {
        let (client, notifications) = connect(url).await?;
        ensure_schema(&client).await?;
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(PostgresStore {
            url: url.to_owned(),
            client,
            notifications,
            seen: None,
        })
    }

    async fn reconnect_if_closed(&mut self) -> anyhow::Result<bool> {
        if !self.client.is_closed() {
            return Ok(false);
        }
        *self = PostgresStore::connect(&self.url).await?;
        Ok(true)
    }

    async fn version(&self) -> anyhow::Result<(i64, Option<i64>)> {
        let row = self
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM courier_customers) + (SELECT count(*) FROM courier_destinations),
                        (SELECT (extract(epoch FROM greatest(
                            (SELECT max(updated_at) FROM courier_customers),
                            (SELECT max(updated_at) FROM courier_destinations))) * 1000000)::bigint)",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Every customer with its destinations, validated.
    pub async fn customers(
        &mut self,
        defaults: &DeliverySettings,
    ) -> anyhow::Result<Vec<Customer>> {
        self.reconnect_if_closed().await?;
        self.seen = Some(self.version().await?);
        let rows = self
            .client
            .query(
                "SELECT c.id, c.write_keys, d.name, d.kind, d.enabled, d.settings, d.filter, d.delivery
                 FROM courier_customers c LEFT JOIN courier_destinations d ON d.customer = c.id
                 ORDER BY c.id, d.name",
                &[],
            )
            .await
            .context("reading courier_customers and courier_destinations")?;
        let mut tables: Vec<(String, toml::Table)> = Vec::new();
        for row in rows {
            let id: String = row.get(0);
            if tables.last().is_none_or(|(last, _)| *last != id) {
                let mut table = toml::Table::new();
                table.insert("id".into(), toml::Value::String(id.clone()));
                let keys: Vec<String> = row.get(1);
                table.insert(
                    "write_keys".into(),
                    toml::Value::Array(keys.into_iter().map(toml::Value::String).collect()),
                );
                table.insert(
                    "destinations".into(),
                    toml::Value::Table(toml::Table::new()),
                );
                tables.push((id.clone(), table));
            }
            let Some(name) = row.get::<_, Option<String>>(2) else {
                continue;
            };
            let mut destination = toml::Table::new();
            destination.insert("kind".into(), toml::Value::String(row.get(3)));
            destination.insert("enabled".into(), toml::Value::Boolean(row.get(4)));
            for (i, key) in [(5, "settings"), (6, "filter"), (7, "delivery")] {
                if let Some(json) = row.get::<_, Option<serde_json::Value>>(i) {
                    let value = to_toml(json).with_context(|| {
                        format!("courier_destinations {id}/{name}: {key} is not a JSON object")
                    })?;
                    destination.insert(key.into(), value);
                }
            }
            if let Some((_, table)) = tables.last_mut() {
                if let Some(toml::Value::Table(destinations)) = table.get_mut("destinations") {
                    destinations.insert(name, toml::Value::Table(destination));
                }
            }
        }
        let customers = tables
            .into_iter()
            .map(|(id, table)| {
                let origin = PathBuf::from(format!("postgres:courier_customers/{id}"));
                customers::from_table(table, &origin, defaults, &customers::process_env)
            })
            .collect::<Result<Vec<_>, _>>()?;
        customers::check_unique(&customers)?;
        Ok(customers)
    }

    /// Whether the tables changed since the last load (also true after a reconnect, when
    /// notifications may have been missed).
    pub async fn changed(&mut self) -> bool {
        match self.reconnect_if_closed().await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "configuration store unreachable; keeping the running configuration");
                return false;
            }
        }
        match self.version().await {
            Ok(version) => self.seen != Some(version),
            Err(err) => {
                tracing::warn!(error = %err, "cannot poll the configuration store");
                false
            }
        }
    }

    /// Waits for a change notification (several queued ones count once).
    pub async fn notified(&mut self) {
        if self.notifications.recv().await.is_none() {
            // The connection is gone: the poll reconnects; until then, wait for it.
            std::future::pending::<()>().await;
        }
        while self.notifications.try_recv().is_ok() {}
    }
}

/// A JSON object as a TOML value (nulls dropped: TOML has none).
fn to_toml(json: serde_json::Value) -> anyhow::Result<toml::Value> {
    fn strip(value: serde_json::Value) -> Option<serde_json::Value> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Array(items) => Some(serde_json::Value::Array(
                items.into_iter().filter_map(strip).collect(),
            )),
            serde_json::Value::Object(map) => Some(serde_json::Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| strip(v).map(|v| (k, v)))
                    .collect(),
            )),
            other => Some(other),
        }
    }
    anyhow::ensure!(json.is_object(), "not an object");
    let json = strip(json).unwrap_or_default();
    Ok(toml::Value::try_from(json)?)
}
