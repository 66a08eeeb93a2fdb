//! `webhook`: POSTs batches of events, as sent by the source, to any HTTPS endpoint.
//!
//! # Requests
//! - `POST <url>` with `Content-Type: application/json` and the configured `headers`.
//! - Body: a JSON array of the events, each byte for byte as the source sent it. When the
//!   destination's `batch_max_events` is 1, the body is the single event object instead.
//! - `X-Courier-Batch-Size: <n>` says how many events the body holds.
//!
//! # Signature
//! With `secret` set, every request carries
//!
//! ```text
//! X-Courier-Signature: t=<unix seconds>,v1=<hex(HMAC-SHA256(secret, "<t>.<body>"))>
//! ```
//!
//! A receiver recomputes the HMAC over the decimal timestamp, one `.` and the raw body bytes,
//! compares it in constant time to `v1`, and rejects timestamps too far from its clock (to stop
//! replays). [`signature::verify`] does exactly that.
//!
//! # Failures
//! 2xx is delivered. 408, 429, 5xx and transport errors are retried by the runtime (honouring
//! `Retry-After`); any other status is permanent and the batch is dead-lettered with the
//! status and an excerpt of the answer.

mod config;
mod request_builder;
mod service;
pub mod signature;

#[cfg(test)]
mod tests;

pub use config::WebhookSettings;
pub use service::WebhookConnector;
