//! Sends a batch to Amplitude and classifies the answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::config::AmplitudeSettings;
use super::request_builder;
use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::{BuildError, DeliveryError, Others, RejectedEvent};
use crate::event::{Event, EventType};
use crate::http;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::secret::Secret;

/// Amplitude asks throttled senders to pause this long.
const THROTTLE_PAUSE: Duration = Duration::from_secs(30);

/// A built `amplitude` destination.
pub struct AmplitudeConnector {
    client: reqwest::Client,
    url: String,
    api_key: Secret,
    min_id_length: Option<u32>,
    timeout: Duration,
}

impl std::fmt::Debug for AmplitudeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmplitudeConnector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for AmplitudeConnector {
    const KIND: &'static str = "amplitude";
    const DESCRIPTION: &'static str =
        "Amplitude HTTP V2 API (track, page, screen, identify, group)";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: Some(2_000),
        max_batch_bytes: Some(1_000_000),
        requests_per_second: None,
        events_per_second: Some(1_000.0),
        max_concurrency: None,
        max_batch_age_ms: None,
    };
    type Settings = AmplitudeSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "api_key",
                type_name: "string",
                default: None,
                description: "the project's API key (secret)",
            },
            SettingDoc {
                name: "region",
                type_name: "us | eu",
                default: Some("us"),
                description: "the project's data center",
            },
            SettingDoc {
                name: "endpoint",
                type_name: "string",
                default: Some("by region"),
                description: "base URL replacing the region's",
            },
            SettingDoc {
                name: "min_id_length",
                type_name: "integer",
                default: Some("unset (5)"),
                description: "accept shorter user and device ids",
            },
            SettingDoc::TIMEOUT_MS,
        ]
    }

    fn build(
        settings: AmplitudeSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        let url = format!("{}/2/httpapi", settings.base_url());
        reqwest::Url::parse(&url).map_err(|e| ctx.invalid("endpoint", e.to_string()))?;
        Ok(Arc::new(AmplitudeConnector {
            client: ctx.http.clone(),
            url,
            api_key: settings.api_key,
            min_id_length: settings.min_id_length,
            timeout: Duration::from_millis(settings.timeout_ms),
        }))
    }
}

/// The parts of Amplitude's error answer that name events.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    events_with_invalid_fields: HashMap<String, Vec<usize>>,
    #[serde(default)]
    events_with_missing_fields: HashMap<String, Vec<usize>>,
    #[serde(default)]
    silenced_events: Vec<usize>,
}

impl ErrorBody {
    /// Reasons by index in the request.
    fn reasons(&self) -> BTreeMap<usize, Vec<String>> {
        let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (field, indexes) in &self.events_with_invalid_fields {
            for &i in indexes {
                out.entry(i)
                    .or_default()
                    .push(format!("invalid field {field}"));
            }
        }
        for (field, indexes) in &self.events_with_missing_fields {
            for &i in indexes {
                out.entry(i)
                    .or_default()
                    .push(format!("missing field {field}"));
            }
        }
        for &i in &self.silenced_events {
            out.entry(i).or_default().push("device is silenced".into());
        }
        out
    }
}

#[async_trait]
impl Destination for AmplitudeConnector {
    fn accepts(&self, event: &Event) -> bool {
        event.event_type() != EventType::Alias
    }

    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        let Some(request) =
            request_builder::request(self.api_key.expose(), self.min_id_length, batch)
        else {
            return Ok(());
        };
        let http_request = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .json(&request.body);
        let answer = http::send("amplitude", http_request).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        match answer.status {
            StatusCode::BAD_REQUEST => {
                let body: ErrorBody = serde_json::from_str(&answer.body).unwrap_or_default();
                let reasons = body.reasons();
                let rejected: Vec<RejectedEvent> = reasons
                    .into_iter()
                    .filter_map(|(i, why)| {
                        Some(RejectedEvent {
                            index: *request.batch_index.get(i)?,
                            reason: format!("amplitude rejected the event: {}", why.join(", ")),
                        })
                    })
                    .collect();
                if rejected.is_empty() {
                    return Err(answer.error("amplitude"));
                }
                let message = body
                    .error
                    .unwrap_or_else(|| "amplitude rejected events".into());
                Err(DeliveryError::rejected(message, rejected, Others::Resend)
                    .with_response(400, http::excerpt(&answer.body)))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let err = answer.error("amplitude");
                if err.retry_after().is_some() {
                    Err(err)
                } else {
                    Err(err.with_retry_after(THROTTLE_PAUSE))
                }
            }
            _ => Err(answer.error("amplitude")),
        }
    }
}
