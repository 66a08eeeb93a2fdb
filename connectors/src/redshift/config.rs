//! The `redshift` connector's settings.

use serde::{Deserialize, Serialize};

use crate::s3::S3Location;
use crate::secret::Secret;

/// Settings of a `redshift` destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftSettings {
    /// The cluster's connection URL (`postgres://user:password@cluster:5439/db`).
    pub url: Secret,
    /// The schema the customer's tables live in (default: the customer id, sanitised).
    #[serde(default)]
    pub schema: Option<String>,
    /// Connections kept open for reuse.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Where load files are staged.
    pub staging: S3Location,
    /// The IAM role `COPY` assumes to read the staged files (default: the staging keys).
    #[serde(default)]
    pub iam_role: Option<String>,
}

fn default_pool_size() -> usize {
    2
}
