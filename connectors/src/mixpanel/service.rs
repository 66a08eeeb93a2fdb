//! Sends a batch to Mixpanel and classifies the answers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::config::MixpanelSettings;
use super::request_builder::{self, Requests};
use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::{BuildError, DeliveryError, Others, RejectedEvent};
use crate::event::{Event, EventType};
use crate::http;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::secret::Secret;

/// A built `mixpanel` destination.
pub struct MixpanelConnector {
    client: reqwest::Client,
    import_url: String,
    engage_url: String,
    auth: (String, Option<Secret>),
    token: Secret,
    timeout: Duration,
}

impl std::fmt::Debug for MixpanelConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixpanelConnector")
            .field("import_url", &self.import_url)
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for MixpanelConnector {
    const KIND: &'static str = "mixpanel";
    const DESCRIPTION: &'static str =
        "Mixpanel Import API (track, page, screen) and profile updates (identify)";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: Some(2_000),
        max_batch_bytes: Some(10_000_000),
        requests_per_second: None,
        events_per_second: None,
        max_concurrency: None,
        max_batch_age_ms: None,
    };
    type Settings = MixpanelSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "project_token",
                type_name: "string",
                default: None,
                description: "the project token (secret)",
            },
            SettingDoc {
                name: "project_id",
                type_name: "string",
                default: Some("unset"),
                description: "the project id, required with a service account",
            },
            SettingDoc {
                name: "service_account_username",
                type_name: "string",
                default: Some("unset"),
                description: "service account user for /import",
            },
            SettingDoc {
                name: "service_account_secret",
                type_name: "string",
                default: Some("unset"),
                description: "service account secret (secret)",
            },
            SettingDoc {
                name: "residency",
                type_name: "us | eu | in",
                default: Some("us"),
                description: "the project's data residency",
            },
            SettingDoc {
                name: "endpoint",
                type_name: "string",
                default: Some("by residency"),
                description: "base URL replacing the residency's",
            },
            SettingDoc::TIMEOUT_MS,
        ]
    }

    fn build(
        settings: MixpanelSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        let base = settings.base_url().to_owned();
        reqwest::Url::parse(&base).map_err(|e| ctx.invalid("endpoint", e.to_string()))?;
        let (import_url, auth) = match (
            &settings.service_account_username,
            &settings.service_account_secret,
        ) {
            (Some(user), Some(secret)) => {
                let project = settings
                    .project_id
                    .as_deref()
                    .ok_or_else(|| ctx.invalid("project_id", "required with a service account"))?;
                (
                    format!("{base}/import?strict=1&project_id={project}"),
                    (user.clone(), Some(secret.clone())),
                )
            }
            (None, None) => (
                format!("{base}/import?strict=1"),
                (settings.project_token.expose().to_owned(), None),
            ),
            _ => {
                return Err(ctx.invalid(
                    "service_account_secret",
                    "set both service_account_username and service_account_secret, or neither",
                ))
            }
        };
        Ok(Arc::new(MixpanelConnector {
            client: ctx.http.clone(),
            import_url,
            engage_url: format!("{base}/engage?verbose=1"),
            auth,
            token: settings.project_token,
            timeout: Duration::from_millis(settings.timeout_ms),
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
struct ImportAnswer {
    #[serde(default)]
    failed_records: Vec<FailedRecord>,
}

#[derive(Debug, Deserialize)]
struct FailedRecord {
    index: usize,
    #[serde(default)]
    field: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Default, Deserialize)]
struct EngageAnswer {
    #[serde(default)]
    status: i64,
    #[serde(default)]
    error: Option<String>,
}

impl MixpanelConnector {
    /// Imports the events; returns the ones Mixpanel refused (the rest were imported).
    async fn import(&self, r: &Requests) -> Result<Vec<RejectedEvent>, DeliveryError> {
        if r.events.is_empty() {
            return Ok(Vec::new());
        }
        let request = self
            .client
            .post(&self.import_url)
            .basic_auth(&self.auth.0, self.auth.1.as_ref().map(|s| s.expose()))
            .timeout(self.timeout)
            .json(&r.events);
        let answer = http::send("mixpanel import", request).await?;
        if answer.status.is_success() {
            return Ok(Vec::new());
        }
        if answer.status == StatusCode::BAD_REQUEST {
            let parsed: ImportAnswer = serde_json::from_str(&answer.body).unwrap_or_default();
            let rejected: Vec<RejectedEvent> = parsed
                .failed_records
                .iter()
                .filter_map(|f| {
                    Some(RejectedEvent {
                        index: *r.event_index.get(f.index)?,
                        reason: format!("mixpanel rejected {}: {}", f.field, f.message),
                    })
                })
                .collect();
            if !rejected.is_empty() {
                return Ok(rejected);
            }
        }
        Err(answer.error("mixpanel import"))
    }

    /// Updates the profiles; returns them all as refused when Mixpanel says `status: 0`.
    async fn engage(&self, r: &Requests) -> Result<Vec<RejectedEvent>, DeliveryError> {
        if r.profiles.is_empty() {
            return Ok(Vec::new());
        }
        let request = self
            .client
            .post(&self.engage_url)
            .timeout(self.timeout)
            .json(&r.profiles);
        let answer = http::send("mixpanel engage", request).await?;
        if !answer.status.is_success() {
            return Err(answer.error("mixpanel engage"));
        }
        let parsed: EngageAnswer = serde_json::from_str(&answer.body).unwrap_or_default();
        if parsed.status == 1 {
            return Ok(Vec::new());
        }
        let why = parsed.error.unwrap_or_else(|| answer.body.clone());
        Ok(r.profile_index
            .iter()
            .map(|&index| RejectedEvent {
                index,
                reason: format!("mixpanel refused the profile update: {why}"),
            })
            .collect())
    }
}

#[async_trait]
impl Destination for MixpanelConnector {
    fn accepts(&self, event: &Event) -> bool {
        !matches!(event.event_type(), EventType::Group | EventType::Alias)
    }

    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        let requests = request_builder::requests(self.token.expose(), batch);
        // Imports first: a retry of the whole batch is safe ($insert_id de-duplicates, a
        // profile $set is idempotent).
        let mut rejected = self.import(&requests).await?;
        rejected.extend(self.engage(&requests).await?);
        if rejected.is_empty() {
            return Ok(());
        }
        Err(DeliveryError::rejected(
            format!(
                "mixpanel refused {} of {} events",
                rejected.len(),
                batch.len()
            ),
            rejected,
            Others::Delivered,
        )
        .with_response(400, String::new()))
    }
}
