//! The `webhook` connector's settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Settings of a `webhook` destination (`[destinations.<name>.settings]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The URL every batch is POSTed to (`http` or `https`).
    pub url: Secret,
    /// Extra request headers, such as an API key. Values are treated as secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Shared secret for the `X-Courier-Signature` HMAC-SHA256 header; unsigned when unset.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}
