//! The `postgres` connector: a small connection pool and failure classification.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::config::PostgresSettings;
use super::load::{load, Loaded};
use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::secret::Secret;
use crate::warehouse::sanitize;

/// A built `postgres` destination.
pub struct PostgresConnector {
    url: Secret,
    schema: String,
    pool: Mutex<Vec<Client>>,
    pool_size: usize,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConnector")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for PostgresConnector {
    const KIND: &'static str = "postgres";
    const DESCRIPTION: &'static str = "Segment's warehouse tables in PostgreSQL, one row per event";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: Some(20_000),
        max_batch_bytes: Some(64 * 1024 * 1024),
        requests_per_second: None,
        events_per_second: None,
    };
    type Settings = PostgresSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "url",
                type_name: "string",
                default: None,
                description: "connection URL, postgres://user:password@host/db (secret)",
            },
            SettingDoc {
                name: "schema",
                type_name: "string",
                default: Some("the customer id"),
                description: "schema of the customer's tables",
            },
            SettingDoc {
                name: "pool_size",
                type_name: "integer",
                default: Some("4"),
                description: "connections kept open",
            },
        ]
    }

    fn build(
        settings: PostgresSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        settings
            .url
            .expose()
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ctx.invalid("url", e.to_string()))?;
        let schema = sanitize(settings.schema.as_deref().unwrap_or(&ctx.customer), 63);
        Ok(Arc::new(PostgresConnector {
            url: settings.url,
            schema,
            pool: Mutex::new(Vec::new()),
            pool_size: settings.pool_size.max(1),
        }))
    }
}

/// Connection trouble, restarts, serialisation failures and resource limits pass; anything
/// else is a problem with the batch itself.
fn classify(err: &tokio_postgres::Error) -> DeliveryError {
    let message = format!("postgres: {err}");
    let Some(code) = err.code() else {
        return DeliveryError::retryable(message);
    };
    let class = &code.code()[..2];
    if matches!(class, "08" | "40" | "53" | "57" | "58") || code == &SqlState::LOCK_NOT_AVAILABLE {
        DeliveryError::retryable(message)
    } else {
        DeliveryError::permanent(message)
    }
}

impl PostgresConnector {
    async fn client(&self) -> Result<Client, DeliveryError> {
        if let Some(client) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            if !client.is_closed() {
                return Ok(client);
            }
        }
        let (client, connection) = tokio_postgres::connect(self.url.expose(), NoTls)
            .await
            .map_err(|e| DeliveryError::retryable(format!("postgres: cannot connect: {e}")))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "postgres connection closed");
            }
        });
        // "already exists, skipping" notices of every load would flood the logs.
        client
            .batch_execute("SET client_min_messages TO warning")
            .await
            .map_err(|e| classify(&e))?;
        Ok(client)
    }

    fn give_back(&self, client: Client) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.pool_size && !client.is_closed() {
            pool.push(client);
        }
    }
}

#[async_trait]
impl Destination for PostgresConnector {
    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        let mut client = self.client().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        match load(&mut client, &self.schema, batch, now).await {
            Ok(loaded) => {
                if loaded == Loaded::Skipped {
                    tracing::info!(schema = %self.schema, events = batch.len(), "batch already loaded; skipped");
                }
                self.give_back(client);
                Ok(())
            }
            // The transaction rolled back; the connection may be broken, so it is not reused.
            Err(err) => Err(classify(&err)),
        }
    }
}
