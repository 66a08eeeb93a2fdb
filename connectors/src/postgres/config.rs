//! The `postgres` connector's settings.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Settings of a `postgres` destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// A libpq-style connection string or URL (`postgres://user:password@host:5432/db`).
    pub url: Secret,
    /// The schema the customer's tables live in (default: the customer id, sanitised).
    #[serde(default)]
    pub schema: Option<String>,
    /// Connections kept open for reuse.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    4
}
