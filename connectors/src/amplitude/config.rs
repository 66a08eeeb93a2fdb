//! The `amplitude` connector's settings.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Amplitude's data centers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AmplitudeRegion {
    /// `https://api2.amplitude.com`.
    #[default]
    Us,
    /// `https://api.eu.amplitude.com`.
    Eu,
}

/// Settings of an `amplitude` destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmplitudeSettings {
    /// The project's API key.
    pub api_key: Secret,
    /// The project's data center.
    #[serde(default)]
    pub region: AmplitudeRegion,
    /// A base URL replacing the region's (a proxy, a test server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `options.min_id_length`: accept user and device ids shorter than Amplitude's 5.
    #[serde(default)]
    pub min_id_length: Option<u32>,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl AmplitudeSettings {
    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        match (&self.endpoint, self.region) {
            (Some(e), _) => e.trim_end_matches('/'),
            (None, AmplitudeRegion::Us) => "https://api2.amplitude.com",
            (None, AmplitudeRegion::Eu) => "https://api.eu.amplitude.com",
        }
    }
}
