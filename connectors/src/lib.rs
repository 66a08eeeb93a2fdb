//! Courier's connectors: the destination API, the registry of connector kinds, and one module
//! per connector.
//!
//! # Layout
//! - [`event`]: the validated Segment event every connector receives (the original JSON bytes
//!   plus the few fields routing needs).
//! - [`destination`]: the [`Destination`] trait a connector implements to deliver one batch.
//! - [`error`]: [`DeliveryError`] (retryable or permanent, with an optional retry-after) and
//!   [`BuildError`] (settings that do not validate, naming customer, destination and field).
//! - [`registry`]: typed connector kinds ([`ConnectorKind`]) behind an object-safe facade, and
//!   the [`Registry`] that builds destination instances from settings.
//! - [`secret`]: a string that never prints.
//! - [`array_body`]: a batch's original bytes as a JSON array, streamed as a request body.
//! - `gzip`: gzip bodies with a deflate state reused per thread.
//! - [`http`]: the HTTP status classification shared by every HTTP connector.
//! - [`mapping`]: reading Segment fields, for connectors that translate events.
//! - [`warehouse`]: the warehouse layout (tables, columns, safe identifiers) for the
//!   warehouse connectors.
//! - [`webhook`], [`amplitude`], [`mixpanel`], [`slack`], [`segment`], [`s3`], [`postgres`], [`redshift`],
//!   [`blackhole`]: the connectors.
//!
//! # Invariants
//! This crate knows nothing of Kafka clients or acknowledgements; a batch may carry the
//! [`SourceRange`]s (log, partition, first and last position) its events came from, for
//! connectors that name or record their output by them (see [`Batching`]). A connector turns a batch
//! into requests and classifies failures; batching, retries, backoff, dead-lettering and
//! acknowledgement are the runtime's job, applied the same way to every connector.

pub mod amplitude;
pub mod array_body;
pub mod blackhole;
pub mod destination;
pub mod error;
pub mod event;
mod gzip;
pub mod http;
pub mod mapping;
pub mod mixpanel;
pub mod origin;
pub mod postgres;
pub mod redshift;
pub mod registry;
pub mod s3;
mod scan;
#[cfg(test)]
mod scan_oracle;
pub mod secret;
pub mod segment;
pub mod slack;
pub mod warehouse;
pub mod webhook;

pub use destination::{ApiLimits, BatchLimits, Batching, BuildContext, Destination, SourceRange};
pub use error::{BuildError, DeliveryError, Failure, Others, RejectedEvent};
pub use event::{DecodeError, Event, EventType, Rejected};
pub use origin::{MessageKey, Origin};
pub use registry::{ConnectorKind, Registry, SettingDoc};
pub use secret::Secret;
pub use smol_str::SmolStr;
