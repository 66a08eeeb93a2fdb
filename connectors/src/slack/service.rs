//! Posts one message per matching event.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::config::SlackSettings;
use super::template::Template;
use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::http;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::secret::Secret;

/// Slack's answers that no retry can fix.
const PERMANENT_ERRORS: [&str; 4] = [
    "invalid_payload",
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
];

/// A built `slack` destination.
pub struct SlackConnector {
    client: reqwest::Client,
    url: Secret,
    events: HashSet<String>,
    template: Template,
    timeout: Duration,
}

impl std::fmt::Debug for SlackConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConnector")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for SlackConnector {
    const KIND: &'static str = "slack";
    const DESCRIPTION: &'static str =
        "a Slack incoming webhook: one templated message per listed event";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_events: Some(1),
        max_batch_bytes: None,
        requests_per_second: Some(1.0),
        events_per_second: None,
        max_concurrency: Some(1),
        max_batch_age_ms: None,
    };
    type Settings = SlackSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "webhook_url",
                type_name: "string",
                default: None,
                description: "the incoming webhook URL (secret)",
            },
            SettingDoc {
                name: "events",
                type_name: "list of strings",
                default: None,
                description: "event names that produce a message",
            },
            SettingDoc {
                name: "template",
                type_name: "string",
                default: Some("{{userId}} did {{event}}"),
                description: "message text with {{field.path}} placeholders",
            },
            SettingDoc::TIMEOUT_MS,
        ]
    }

    fn build(
        settings: SlackSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        reqwest::Url::parse(settings.webhook_url.expose())
            .map_err(|e| ctx.invalid("webhook_url", e.to_string()))?;
        if settings.events.is_empty() {
            return Err(ctx.invalid("events", "list at least one event name"));
        }
        let template =
            Template::parse(&settings.template).map_err(|e| ctx.invalid("template", e))?;
        Ok(Arc::new(SlackConnector {
            client: ctx.http.clone(),
            url: settings.webhook_url,
            events: settings.events.into_iter().collect(),
            template,
            timeout: Duration::from_millis(settings.timeout_ms),
        }))
    }
}

#[async_trait]
impl Destination for SlackConnector {
    fn accepts(&self, event: &Event) -> bool {
        event.name().is_some_and(|n| self.events.contains(n))
    }

    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        for event in batch.iter().filter(|e| self.accepts(e)) {
            let value: serde_json::Value = serde_json::from_slice(event.raw()).unwrap_or_default();
            let body = json!({ "text": self.template.render(&value) });
            let request = self
                .client
                .post(self.url.expose())
                .timeout(self.timeout)
                .json(&body);
            let answer = http::send("slack", request).await?;
            if answer.status.is_success() {
                continue;
            }
            let err = answer.error("slack");
            if PERMANENT_ERRORS.contains(&answer.body.trim()) {
                return Err(DeliveryError::permanent(format!(
                    "slack answered {}",
                    answer.body.trim()
                ))
                .with_response(answer.status.as_u16(), http::excerpt(&answer.body)));
            }
            return Err(err);
        }
        Ok(())
    }
}
