//! `blackhole`: accepts every batch at once and sends nothing anywhere.
//!
//! For dry runs of a routing configuration and for measuring the pipeline without a
//! destination's cost. Events "delivered" here are acknowledged and their offsets committed.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::destination::{BuildContext, Destination};
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
