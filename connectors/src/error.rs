//! Errors of the connector API.
//!
//! [`DeliveryError`] is what a connector answers when a batch was not delivered; its
//! [`Failure`] class decides what the runtime does next: retry with backoff (honouring
//! `retry_after`) or dead-letter the batch with `status` and `response` attached.
//! [`BuildError`] is a destination whose settings do not validate; it always names the customer,
//! the destination and the offending field.

use std::time::Duration;

/// How a failed delivery should be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Trying the same batch again later may succeed: network errors, timeouts, 408, 429, 5xx.
    Retryable {
        /// The destination asked to wait this long before the next try (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The destination rejected the batch and will reject it again: dead-letter it.
    Permanent,
    /// The destination refused some events for good: dead-letter those; the others were
    /// accepted or must be sent again, as `others` says.
    Rejected {
        /// The refused events, by index in the batch, with the destination's reason.
        events: Vec<RejectedEvent>,
        /// What became of the other events of the batch.
        others: Others,
    },
    /// The request was too large: split the batch and send the halves (a single event that
    /// is still too large is dead-lettered).
    TooLarge,
}

/// One event a destination refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEvent {
    /// Its index in the batch given to [`Destination::deliver`](crate::Destination::deliver).
    pub index: usize,
    /// Why, in the destination's words.
    pub reason: String,
}

/// The fate of the events a partial rejection did not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Others {
    /// The destination accepted them.
    Delivered,
    /// The destination dropped the whole request: send them again.
    Resend,
}

/// A batch that was not delivered, with everything an operator needs to see why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Retry or dead-letter.
    pub failure: Failure,
    /// One lowercase line saying what failed.
    pub message: String,
    /// The destination's status code, when it answered at all.
    pub status: Option<u16>,
    /// An excerpt of the destination's answer, kept with dead-lettered events.
    pub response: Option<String>,
}

impl DeliveryError {
    /// A failure that may succeed when tried again.
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError {
            failure: Failure::Retryable { retry_after: None },
            message: message.into(),
            status: None,
            response: None,
        }
    }

    /// A failure that will happen again for the same batch.
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            failure: Failure::Permanent,
            message: message.into(),
            status: None,
            response: None,
        }
    }

    /// Some events refused for good (see [`Failure::Rejected`]).
    pub fn rejected(
        message: impl Into<String>,
        events: Vec<RejectedEvent>,
        others: Others,
    ) -> Self {
        DeliveryError {
            failure: Failure::Rejected { events, others },
            message: message.into(),
            status: None,
            response: None,
        }
    }

    /// The request was too large (see [`Failure::TooLarge`]).
    pub fn too_large(message: impl Into<String>) -> Self {
        DeliveryError {
            failure: Failure::TooLarge,
            message: message.into(),
            status: None,
            response: None,
        }
    }

    /// Overrides the wait before the next try of a retryable failure.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Failure::Retryable { retry_after } = &mut self.failure {
            *retry_after = Some(wait);
        }
        self
    }

    /// Attaches the destination's status code and an excerpt of its answer.
    pub fn with_response(mut self, status: u16, response: impl Into<String>) -> Self {
        self.status = Some(status);
        self.response = Some(response.into());
        self
    }

    /// Whether the runtime should try the batch again.
    pub fn is_retryable(&self) -> bool {
        matches!(self.failure, Failure::Retryable { .. })
    }

    /// The wait the destination asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.failure {
            Failure::Retryable { retry_after } => retry_after,
            _ => None,
        }
    }
}

/// A destination that cannot be built from its settings. Configuration errors are permanent:
/// the configuration must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The destination names a connector kind the registry does not have.
    #[error("customer {customer:?}, destination {destination:?}: unknown connector kind {kind:?} (known kinds: {known})")]
    UnknownKind {
        /// The customer's id.
        customer: String,
        /// The destination's name.
        destination: String,
        /// The kind that was asked for.
        kind: String,
        /// The registered kinds, comma-separated.
        known: String,
    },
    /// A setting is missing, unknown or has an invalid value.
    #[error("customer {customer:?}, destination {destination:?}: settings.{field}: {message}")]
    InvalidSetting {
        /// The customer's id.
        customer: String,
        /// The destination's name.
        destination: String,
        /// The path of the field inside the destination's settings.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}
