//! The `slack` connector's settings.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Settings of a `slack` destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The incoming webhook URL (a secret: whoever has it can post).
    pub webhook_url: Secret,
    /// The event names that produce a message (track `event`, page/screen `name`).
    pub events: Vec<String>,
    /// The message text, with `{{field.path}}` placeholders.
    #[serde(default = "default_template")]
    pub template: String,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_template() -> String {
    "{{userId}} did {{event}}".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}
