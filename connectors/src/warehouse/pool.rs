//! Connections to a PostgreSQL-protocol warehouse (PostgreSQL itself, or Redshift), kept for
//! reuse, and the classification of their failures.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::load::{load, LoadError, Loaded, Target};
use crate::destination::SourceRange;
use crate::error::DeliveryError;
use crate::event::Event;
use crate::secret::Secret;

/// A small pool of connections to one database.
pub(crate) struct Pool {
    url: Secret,
    clients: Mutex<Vec<Client>>,
    size: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool that keeps up to `size` idle connections to `url` (validated by the caller).
    pub(crate) fn new(url: Secret, size: usize) -> Pool {
        Pool {
            url,
            clients: Mutex::new(Vec::new()),
            size: size.max(1),
        }
    }

    async fn client(&self) -> Result<Client, DeliveryError> {
        if let Some(client) = self.clients.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            if !client.is_closed() {
                return Ok(client);
            }
        }
        let (client, connection) = tokio_postgres::connect(self.url.expose(), NoTls)
            .await
            .map_err(|e| DeliveryError::retryable(format!("warehouse: cannot connect: {e}")))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "warehouse connection closed");
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
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() < self.size && !client.is_closed() {
            clients.push(client);
        }
    }

    /// Loads one batch into `target` (see [`super::load`]).
    pub(crate) async fn load(
        &self,
        target: &Target<'_>,
        batch: &[Arc<Event>],
        source: Option<&SourceRange>,
    ) -> Result<(), DeliveryError> {
        let mut client = self.client().await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        match load(&mut client, target, batch, source, now).await {
            Ok(loaded) => {
                if loaded == Loaded::Skipped {
                    tracing::info!(schema = %target.schema, events = batch.len(), "batch already loaded; skipped");
                }
                self.give_back(client);
                Ok(())
            }
            // The transaction rolled back; the connection may be broken, so it is not reused.
            Err(LoadError::Sql(err)) => Err(classify(&err)),
            Err(LoadError::Stage(err)) => Err(err),
        }
    }
}

/// Connection trouble, restarts, serialisation failures, resource limits and concurrent DDL
/// races (two workers creating the same schema or table: the loser's retry finds it) pass;
/// anything else is a problem with the batch itself.
pub(crate) fn classify(err: &tokio_postgres::Error) -> DeliveryError {
    let message = format!("warehouse: {err}");
    let Some(code) = err.code() else {
        return DeliveryError::retryable(message);
    };
    let class = &code.code()[..2];
    let race = [
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_SCHEMA,
        SqlState::UNIQUE_VIOLATION,
    ]
    .contains(code);
    if matches!(class, "08" | "40" | "53" | "57" | "58")
        || code == &SqlState::LOCK_NOT_AVAILABLE
        || race
    {
        DeliveryError::retryable(message)
    } else {
        DeliveryError::permanent(message)
    }
}
