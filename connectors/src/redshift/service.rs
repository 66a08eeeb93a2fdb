//! The `redshift` connector: settings to a load target staged in S3.

use std::sync::Arc;

use async_trait::async_trait;

use super::config::RedshiftSettings;
use crate::destination::{ApiLimits, Batching, BuildContext, Destination, SourceRange};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::postgres::connection_doc;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::s3::Bucket;
use crate::secret::Secret;
use crate::warehouse::load::{literal, Catalog, Staging, Target};
use crate::warehouse::pool::Pool;
use crate::warehouse::{sanitize, Dialect};

/// A built `redshift` destination.
pub struct RedshiftConnector {
    customer: String,
    schema: String,
    pool: std::sync::Arc<Pool>,
    catalog: Catalog,
    bucket: Bucket,
    /// `IAM_ROLE '...'` or `CREDENTIALS '...'`: secret.
    authorization: Secret,
}

impl std::fmt::Debug for RedshiftConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedshiftConnector")
            .field("schema", &self.schema)
            .field("bucket", &self.bucket.location().bucket)
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for RedshiftConnector {
    const KIND: &'static str = "redshift";
    const DESCRIPTION: &'static str =
        "Segment's warehouse tables in Redshift: gzip CSV staged in S3, then COPY";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: Some(200_000),
        max_batch_bytes: Some(256 * 1024 * 1024),
        requests_per_second: None,
        events_per_second: None,
        max_concurrency: Some(1),
        max_batch_age_ms: None,
    };
    type Settings = RedshiftSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        let mut doc = connection_doc();
        doc.extend([
            SettingDoc {
                name: "staging",
                type_name: "table",
                default: None,
                description: "S3 location for load files: the `s3` connector's settings",
            },
            SettingDoc {
                name: "iam_role",
                type_name: "string",
                default: Some("the staging keys"),
                description: "IAM role ARN that COPY assumes to read the staged files",
            },
        ]);
        doc
    }

    fn build(
        settings: RedshiftSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        settings
            .url
            .expose()
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ctx.invalid("url", e.to_string()))?;
        settings.staging.validate(ctx, "staging.")?;
        let authorization = match (
            &settings.iam_role,
            &settings.staging.access_key_id,
            &settings.staging.secret_access_key,
        ) {
            (Some(role), _, _) => format!("IAM_ROLE {}", literal(role)),
            (None, Some(id), Some(secret)) => format!(
                "CREDENTIALS {}",
                literal(&format!(
                    "aws_access_key_id={id};aws_secret_access_key={}",
                    secret.expose()
                ))
            ),
            _ => {
                return Err(ctx.invalid(
                    "iam_role",
                    "COPY needs an IAM role or the staging access keys",
                ))
            }
        };
        let schema = sanitize(
            settings.schema.as_deref().unwrap_or(&ctx.customer),
            Dialect::Redshift.max_identifier(),
        );
        Ok(Arc::new(RedshiftConnector {
            customer: ctx.customer.clone(),
            schema,
            pool: Pool::shared(settings.url, settings.pool_size),
            catalog: Catalog::default(),
            bucket: Bucket::new(settings.staging),
            authorization: Secret::new(authorization),
        }))
    }
}

#[async_trait]
impl Destination for RedshiftConnector {
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
            dialect: Dialect::Redshift,
            staging: Staging::S3 {
                bucket: &self.bucket,
                authorization: self.authorization.expose(),
            },
            catalog: &self.catalog,
        };
        self.pool.load(&target, batch, sources).await
    }
}
