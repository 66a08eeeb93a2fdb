//! The `mixpanel` connector's settings.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Mixpanel's data residencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MixpanelResidency {
    /// `https://api.mixpanel.com`.
    #[default]
    Us,
    /// `https://api-eu.mixpanel.com`.
    Eu,
    /// `https://api-in.mixpanel.com`.
    In,
}

/// Settings of a `mixpanel` destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MixpanelSettings {
    /// The project token (profile updates; import authentication without a service account).
    pub project_token: Secret,
    /// The project id, required with a service account.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The service account's username.
    #[serde(default)]
    pub service_account_username: Option<String>,
    /// The service account's secret.
    #[serde(default)]
    pub service_account_secret: Option<Secret>,
    /// The project's data residency.
    #[serde(default)]
    pub residency: MixpanelResidency,
    /// A base URL replacing the residency's (a proxy, a test server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl MixpanelSettings {
    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        match (&self.endpoint, self.residency) {
            (Some(e), _) => e.trim_end_matches('/'),
            (None, MixpanelResidency::Us) => "https://api.mixpanel.com",
            (None, MixpanelResidency::Eu) => "https://api-eu.mixpanel.com",
            (None, MixpanelResidency::In) => "https://api-in.mixpanel.com",
        }
    }
}
