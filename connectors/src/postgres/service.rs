//! The `postgres` connector: settings to a load target.

use std::sync::Arc;

use async_trait::async_trait;

use super::config::PostgresSettings;
use crate::destination::{ApiLimits, Batching, BuildContext, Destination, SourceRange};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::warehouse::load::{Catalog, Staging, Target};
use crate::warehouse::pool::Pool;
use crate::warehouse::{sanitize, Dialect};

/// A built `postgres` destination.
#[derive(Debug)]
pub struct PostgresConnector {
    customer: String,
    schema: String,
    pool: std::sync::Arc<Pool>,
    catalog: Catalog,
}

/// The `url`, `schema` and `pool_size` settings every warehouse connector has.
pub(crate) fn connection_doc() -> Vec<SettingDoc> {
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
            description: "connections to the database, shared by every destination with the same url (the largest applies)",
        },
    ]
}

impl ConnectorKind for PostgresConnector {
    const KIND: &'static str = "postgres";
    const DESCRIPTION: &'static str = "Segment's warehouse tables in PostgreSQL, one row per event";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: Some(20_000),
        max_batch_bytes: Some(64 * 1024 * 1024),
        requests_per_second: None,
        events_per_second: None,
        max_concurrency: Some(1),
        max_batch_age_ms: None,
    };
    type Settings = PostgresSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        connection_doc()
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
            customer: ctx.customer.clone(),
            schema,
            pool: Pool::shared(settings.url, settings.pool_size),
            catalog: Catalog::default(),
        }))
    }
}

#[async_trait]
impl Destination for PostgresConnector {
    fn batching(&self) -> Batching {
        Batching::Sourced
    }

    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        self.deliver_from(batch, &[]).await
    }

    async fn deliver_from(
        &self,
        batch: &[Arc<Event>],
        sources: &[SourceRange],
    ) -> Result<(), DeliveryError> {
        let target = Target {
            customer: &self.customer,
            schema: &self.schema,
            dialect: Dialect::Postgres,
            staging: Staging::Stdin,
            catalog: &self.catalog,
        };
        self.pool.load(&target, batch, sources).await
    }
}
