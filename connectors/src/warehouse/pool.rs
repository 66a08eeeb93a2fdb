//! Connections to a PostgreSQL-protocol warehouse (PostgreSQL itself, or Redshift), kept for
//! reuse, and the classification of their failures.
//!
//! One pool per database URL per process: every destination instance that loads into the same
//! database (many customers, one schema each) shares it, so a worker opens at most `pool_size`
//! connections to a database however many customers load there (the largest `pool_size` of
//! those destinations applies). Loads wait for a free connection. Connections carry no
//! per-customer state: schemas are named in every statement and staging tables are dropped
//! with their transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
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
    size: Mutex<usize>,
    /// One permit per connection that may be open.
    gate: tokio::sync::Semaphore,
}

/// The pools of this process, by URL.
fn pools() -> &'static Mutex<HashMap<String, Weak<Pool>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Weak<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(Mutex::default)
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// The process's pool for `url` (validated by the caller), allowing at least `size`
    /// connections.
    pub(crate) fn shared(url: Secret, size: usize) -> Arc<Pool> {
        let size = size.max(1);
        let mut pools = pools().lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|_, p| p.strong_count() > 0);
        if let Some(pool) = pools.get(url.expose()).and_then(Weak::upgrade) {
            let mut current = pool.size.lock().unwrap_or_else(|e| e.into_inner());
            if size > *current {
                pool.gate.add_permits(size - *current);
                *current = size;
            }
            drop(current);
            return pool;
        }
        let pool = Arc::new(Pool {
            url: url.clone(),
            clients: Mutex::new(Vec::new()),
            size: Mutex::new(size),
            gate: tokio::sync::Semaphore::new(size),
        });
        pools.insert(url.expose().to_owned(), Arc::downgrade(&pool));
        pool
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
        let size = *self.size.lock().unwrap_or_else(|e| e.into_inner());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() < size && !client.is_closed() {
            clients.push(client);
        }
    }

    /// Loads one batch into `target` (see [`super::load`]).
    pub(crate) async fn load(
        &self,
        target: &Target<'_>,
        batch: &[Arc<Event>],
        sources: &[SourceRange],
    ) -> Result<(), DeliveryError> {
        // Held for the whole load: at most `size` connections are open at once.
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|_| DeliveryError::retryable("warehouse: pool closed"))?;
        let mut client = self.client().await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        match load(&mut client, target, batch, sources, now).await {
            Ok(loaded) => {
                if loaded == Loaded::Skipped {
                    tracing::info!(schema = %target.schema, events = batch.len(), "batch already loaded; skipped");
                }
                self.give_back(client);
                Ok(())
            }
            // The transaction rolled back; the connection may be broken, so it is not reused,
            // and the cached catalog may be what failed it (another worker's DDL).
            Err(err) => {
                target.catalog.forget();
                match err {
                    LoadError::Sql(err) => Err(classify(&err)),
                    LoadError::Stage(err) => Err(err),
                }
            }
        }
    }
}

/// Connection trouble, restarts, serialisation failures, resource limits and concurrent DDL
/// races (two workers creating the same schema, table or column: the loser's retry finds it;
/// a table or column missing that the cached catalog held: the retry reads it again) pass;
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
        SqlState::DUPLICATE_COLUMN,
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_COLUMN,
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
