//! Sends a batch to the webhook and classifies the answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::config::WebhookSettings;
use super::{request_builder, signature};
use crate::destination::{BuildContext, Destination};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::http;
use crate::registry::{ConnectorKind, SettingDoc};
use crate::secret::Secret;

/// A built `webhook` destination.
pub struct WebhookConnector {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    secret: Option<Secret>,
    timeout: Duration,
    single: bool,
}

impl std::fmt::Debug for WebhookConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConnector")
            .field("host", &self.url.host_str())
            .field("signed", &self.secret.is_some())
            .field("single", &self.single)
            .finish_non_exhaustive()
    }
}

impl ConnectorKind for WebhookConnector {
    const KIND: &'static str = "webhook";
    const DESCRIPTION: &'static str =
        "POSTs batches of events as JSON to a URL, optionally HMAC-signed";
    type Settings = WebhookSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        vec![
            SettingDoc {
                name: "url",
                type_name: "string",
                default: None,
                description: "URL every batch is POSTed to (http or https)",
            },
            SettingDoc {
                name: "headers",
                type_name: "table of strings",
                default: Some("{}"),
                description: "extra request headers; values are secrets",
            },
            SettingDoc {
                name: "secret",
                type_name: "string",
                default: Some("unset"),
                description: "HMAC-SHA256 key for the X-Courier-Signature header",
            },
            SettingDoc::TIMEOUT_MS,
        ]
    }

    fn build(
        settings: WebhookSettings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError> {
        let url = reqwest::Url::parse(settings.url.expose())
            .map_err(|e| ctx.invalid("url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ctx.invalid(
                "url",
                format!("scheme must be http or https, not {}", url.scheme()),
            ));
        }
        if settings.timeout_ms == 0 {
            return Err(ctx.invalid("timeout_ms", "must be above 0"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &settings.headers {
            let field = format!("headers.{name}");
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ctx.invalid(&field, e.to_string()))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|e| ctx.invalid(&field, e.to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Arc::new(WebhookConnector {
            client: ctx.http.clone(),
            url,
            headers,
            secret: settings.secret,
            timeout: Duration::from_millis(settings.timeout_ms),
            single: ctx.batch.max_events == 1,
        }))
    }
}

#[async_trait]
impl Destination for WebhookConnector {
    async fn deliver(&self, batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        let request = |url| {
            let body = request_builder::body(batch, self.single);
            let mut request = self
                .client
                .post(url)
                .headers(self.headers.clone())
                .header("X-Courier-Batch-Size", batch.len())
                .timeout(self.timeout);
            if let Some(secret) = &self.secret {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                request = request.header(
                    signature::HEADER,
                    signature::sign_pieces(secret.expose().as_bytes(), now, body.pieces()),
                );
            }
            request.body(body)
        };
        let answer = http::send_following("webhook", &self.url, request).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(answer.error("webhook"))
    }
}
