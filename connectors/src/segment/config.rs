//! The `segment` connector's settings.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Settings of a `segment` destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSettings {
    /// The write key of the receiving source.
    pub write_key: Secret,
    /// The collector's base URL.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_endpoint() -> String {
    "https://api.segment.io".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}
