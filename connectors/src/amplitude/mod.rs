//! `amplitude`: Amplitude's HTTP V2 API (`POST /2/httpapi`).
//!
//! # Mapping
//! | Segment | Amplitude |
//! |---|---|
//! | track | `event_type` = the event name, `event_properties` = `properties` |
//! | page / screen | `event_type` = `Viewed <name> Page` / `Viewed <name> Screen` |
//! | identify | `event_type` = `$identify`, `user_properties` = `{"$set": traits}` |
//! | group | `event_type` = `$identify`, `groups` = `{"group": groupId}`, `$set` of the group traits under `group_properties` |
//! | alias | not sent (HTTP V2 has no alias call); acknowledged |
//!
//! Every event: `user_id` ← `userId`, `device_id` ← `anonymousId`, `insert_id` ← `messageId`
//! (Amplitude de-duplicates on it for 7 days, so redelivery does not double count), `time` ←
//! `timestamp` in milliseconds, `ip` ← `context.ip`.
//!
//! # Limits and failures
//! At most 2,000 events and 1 MB per request (the runtime clamps batches); 1,000 events/s by
//! default. 400 naming events in `events_with_invalid_fields` / `events_with_missing_fields` /
//! `silenced_events`: those are dead-lettered with the field names, the rest is sent again;
//! another 400 rejects the batch. 413: the runtime splits the batch. 429 (throttled users or
//! devices): retried, after `Retry-After` or Amplitude's documented 30 s. 5xx: retried.

mod config;
mod request_builder;
mod service;

pub use config::{AmplitudeRegion, AmplitudeSettings};
pub use service::AmplitudeConnector;
