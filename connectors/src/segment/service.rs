//! Forwards a batch to `/v1/batch`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;

use super::config::SegmentSettings;
use crate::array_body::ArrayBody;
use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::{BuildError, DeliveryError, Others, RejectedEvent};
use crate::event::Event;
use crate::http;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::secret::Secret;

/// Segment's per-event limit.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;

/// A built `segment` destination.
pub struct SegmentConnector {
    client: reqwest::Client,
    url: reqwest::Url,
    write_key: Secret,
    timeout: Duration,
}

impl std::fmt::Debug for SegmentConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentConnector")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for SegmentConnector {
    const KIND: &'static str = "segment";
    const DESCRIPTION: &'static str = "forwards events unchanged to a Segment-compatible collector";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: None,
        max_batch_bytes: Some(480_000),
        requests_per_second: None,
        events_per_second: None,
        max_concurrency: None,
        max_batch_age_ms: None,
    };
    type Settings = SegmentSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "write_key",
                type_name: "string",
                default: None,
                description: "write key of the receiving source (secret)",
            },
            SettingDoc {
                name: "endpoint",
                type_name: "string",
                default: Some("https://api.segment.io"),
                description: "the collector's base URL",
            },
            SettingDoc::TIMEOUT_MS,
        ]
    }

    fn build(
        settings: SegmentSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        let url = format!("{}/v1/batch", settings.endpoint.trim_end_matches('/'));
        let url = reqwest::Url::parse(&url).map_err(|e| ctx.invalid("endpoint", e.to_string()))?;
        Ok(Arc::new(SegmentConnector {
            client: ctx.http.clone(),
            url,
            write_key: settings.write_key,
            timeout: Duration::from_millis(settings.timeout_ms),
        }))
    }
}

#[async_trait]
impl Destination for SegmentConnector {
    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        let oversized: Vec<RejectedEvent> = batch
            .iter()
            .enumerate()
            .filter(|(_, e)| e.raw().len() > MAX_EVENT_BYTES)
            .map(|(index, e)| RejectedEvent {
                index,
                reason: format!(
                    "event is {} bytes, over segment's {MAX_EVENT_BYTES} byte limit",
                    e.raw().len()
                ),
            })
            .collect();
        if !oversized.is_empty() {
            // Nothing was sent: the runtime dead-letters these and sends the others again.
            return Err(DeliveryError::rejected(
                "events over segment's size limit",
                oversized,
                Others::Resend,
            ));
        }
        let request = |url| {
            self.client
                .post(url)
                .basic_auth(self.write_key.expose(), Some(""))
                .header(CONTENT_TYPE, "application/json")
                .timeout(self.timeout)
                .body(ArrayBody::new(batch, b"{\"batch\":[", b"]}"))
        };
        let answer = http::send_following("segment", &self.url, request).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(answer.error("segment"))
    }
}
