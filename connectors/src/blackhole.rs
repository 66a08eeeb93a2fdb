//! `blackhole`: accepts every batch at once and sends nothing anywhere.
//!
//! For dry runs of a routing configuration and for measuring the pipeline without a
//! destination's cost. Events "delivered" here are acknowledged and their offsets committed.
//! A batch waits at most 1 ms for more events whatever `batch_max_age_ms` says: with no cost
//! per request there is nothing to gain from waiting, and the waiting events would hold their
//! memory and keep their offsets uncommitted meanwhile.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::{BuildError, DeliveryError};
use crate::event::Event;
use crate::registry::{ConnectorKind, SettingDoc};

/// Settings of a `blackhole` destination: none.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSettings {}

/// A destination that accepts everything.
#[derive(Debug, Default)]
pub struct BlackholeConnector;

impl ConnectorKind for BlackholeConnector {
    const KIND: &'static str = "blackhole";
    const DESCRIPTION: &'static str =
        "accepts every event and sends nothing (dry runs, benchmarks)";
    const LIMITS: ApiLimits = ApiLimits {
        max_batch_age_ms: Some(1),
        ..ApiLimits::NONE
    };
    type Settings = BlackholeSettings;

    fn settings_doc() -> Vec<SettingDoc> {
        Vec::new()
    }

    fn build(_: BlackholeSettings, _: &BuildContext) -> Result<Arc<dyn Destination>, BuildError> {
        Ok(Arc::new(BlackholeConnector))
    }
}

#[async_trait]
impl Destination for BlackholeConnector {
    async fn deliver(&self, _batch: &[Arc<Event>]) -> Result<(), DeliveryError> {
        Ok(())
    }
}
