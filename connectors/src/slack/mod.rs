//! `slack`: one message per matching event to a Slack incoming webhook.
//!
//! Only events whose name is listed in `events` are sent (others are acknowledged without a
//! message). The text comes from `template`, where `{{path}}` is replaced by that field of the
//! event (`{{userId}}`, `{{event}}`, `{{properties.plan}}`, `{{context.page.path}}`); a missing
//! field renders empty, and `&`, `<`, `>` in values are escaped as Slack requires.
//!
//! # Limits and failures
//! One event per request and one request per second by default (Slack's documented limit per
//! webhook). 429 is retried after its `Retry-After`; `invalid_payload`, `channel_not_found`,
//! `channel_is_archived`, `action_prohibited` (and any other 4xx) dead-letter the event; 5xx
//! is retried.

mod config;
mod service;
mod template;

pub use config::SlackSettings;
pub use service::SlackConnector;
pub use template::Template;
