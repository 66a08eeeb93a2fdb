//! `mixpanel`: Mixpanel's Import API (`POST /import?strict=1`) and profile updates
//! (`POST /engage`).
//!
//! # Mapping
//! | Segment | Mixpanel |
//! |---|---|
//! | track | an event named after the track, with its `properties` |
//! | page / screen | an event `Viewed <name> Page` / `Viewed <name> Screen` |
//! | identify | a profile `$set` of the traits through `/engage` |
//! | group, alias | not sent (acknowledged) |
//!
//! Event properties: `distinct_id` ← `userId`, else `anonymousId`; `$user_id`, `$device_id`;
//! `time` ← `timestamp` in milliseconds; `$insert_id` ← `messageId` (Mixpanel de-duplicates on
//! it; an id longer than 36 characters or with other characters than letters, digits and `-`
//! is replaced by the first 32 hex digits of its SHA-256, the same on every redelivery);
//! `ip` ← `context.ip`.
//!
//! # Authentication
//! A service account (`service_account_username`, `service_account_secret`, with
//! `project_id`) or, without one, the project token as the basic-auth user. Profile updates
//! always carry the project token.
//!
//! # Limits and failures
//! At most 2,000 events and 10 MB per request (the runtime clamps batches). A 400 with
//! `failed_records` is a partial success: the named events are dead-lettered with Mixpanel's
//! field and message, the rest were imported. A profile update answered with `status: 0` is
//! dead-lettered with Mixpanel's error. 413 splits the batch; 429 and 5xx are retried; other
//! statuses (401, 403) dead-letter the batch.

mod config;
mod request_builder;
mod service;

pub use config::{MixpanelResidency, MixpanelSettings};
pub use service::MixpanelConnector;
