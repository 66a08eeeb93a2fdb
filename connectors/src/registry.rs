//! The connector registry: typed connector kinds behind one object-safe facade.
//!
//! A connector kind implements [`ConnectorKind`] with typed settings (`deny_unknown_fields`,
//! so a typo is an error, not a silently ignored option). The blanket [`ErasedKind`] impl turns
//! it into something the [`Registry`] can hold next to other kinds and build from untyped
//! settings. Every kind Courier ships is listed in [`Registry::builtin`], top to bottom.
//!
//! Building validates and prepares; it does no I/O, so `courier config check` can build every
//! destination to validate a configuration without touching the network.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::destination::{ApiLimits, BuildContext, Destination};
use crate::error::BuildError;

/// One documented setting of a connector kind, for `courier connectors list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDoc {
    /// The setting's key.
    pub name: &'static str,
    /// Its type, as written in TOML.
    pub type_name: &'static str,
    /// Its default, or `None` when it is required.
    pub default: Option<&'static str>,
    /// What it does.
    pub description: &'static str,
}

impl SettingDoc {
    /// The `timeout_ms` setting every HTTP connector has.
    pub const TIMEOUT_MS: SettingDoc = SettingDoc {
        name: "timeout_ms",
        type_name: "integer",
        default: Some("10000"),
        description: "per-request timeout in milliseconds",
    };
}

/// A kind of connector with typed settings.
pub trait ConnectorKind: 'static {
    /// The kind's name in configuration (`kind = "webhook"`).
    const KIND: &'static str;
    /// One line saying what the connector delivers to.
    const DESCRIPTION: &'static str;
    /// The destination API's published limits.
    const LIMITS: ApiLimits = ApiLimits::NONE;
    /// The connector's settings. Unknown fields must be rejected; secrets must be
    /// [`Secret`](crate::Secret)s so serialising the settings redacts them.
    type Settings: DeserializeOwned + Serialize;

    /// The settings, documented.
    fn settings_doc() -> Vec<SettingDoc>;

    /// Builds a destination instance from validated settings. No I/O.
    fn build(
        settings: Self::Settings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Destination>, BuildError>;
}

/// A built destination instance and its effective settings (defaults filled in, secrets
/// redacted), ready to print.
#[derive(Debug, Clone)]
pub struct Built {
    /// The destination instance.
    pub destination: Arc<dyn Destination>,
    /// The settings as the instance uses them, with secrets redacted.
    pub effective_settings: serde_json::Value,
}

/// The object-safe face of a [`ConnectorKind`].
pub trait ErasedKind: Send + Sync {
    /// The kind's name.
    fn kind(&self) -> &'static str;
    /// One line saying what the connector delivers to.
    fn description(&self) -> &'static str;
    /// The documented settings.
    fn settings_doc(&self) -> Vec<SettingDoc>;
    /// The destination API's published limits.
    fn limits(&self) -> ApiLimits;
    /// Deserialises `settings` and builds an instance.
    fn build(&self, settings: serde_json::Value, ctx: &BuildContext) -> Result<Built, BuildError>;
}

struct Typed<K>(PhantomData<fn() -> K>);

impl<K: ConnectorKind> ErasedKind for Typed<K> {
    fn kind(&self) -> &'static str {
        K::KIND
    }

    fn description(&self) -> &'static str {
        K::DESCRIPTION
    }

    fn settings_doc(&self) -> Vec<SettingDoc> {
        K::settings_doc()
    }

    fn limits(&self) -> ApiLimits {
        K::LIMITS
    }

    fn build(&self, settings: serde_json::Value, ctx: &BuildContext) -> Result<Built, BuildError> {
        let typed: K::Settings = serde_path_to_error::deserialize(settings).map_err(|e| {
            let field = e.path().to_string();
            BuildError::InvalidSetting {
                customer: ctx.customer.clone(),
                destination: ctx.destination.clone(),
                field: if field == "." { "(root)".into() } else { field },
                message: e.into_inner().to_string(),
            }
        })?;
        let effective_settings = serde_json::to_value(&typed)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        let destination = K::build(typed, ctx)?;
        Ok(Built {
            destination,
            effective_settings,
        })
    }
}

/// The connector kinds Courier can build, by name.
pub struct Registry {
    kinds: BTreeMap<&'static str, Box<dyn ErasedKind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry {
            kinds: BTreeMap::new(),
        }
    }

    /// Every connector kind Courier ships.
    pub fn builtin() -> Self {
        let mut registry = Registry::empty();
        registry.register::<crate::webhook::WebhookConnector>();
        registry.register::<crate::amplitude::AmplitudeConnector>();
        registry.register::<crate::mixpanel::MixpanelConnector>();
        registry.register::<crate::slack::SlackConnector>();
        registry.register::<crate::segment::SegmentConnector>();
        registry.register::<crate::s3::S3Archive>();
        registry.register::<crate::postgres::PostgresConnector>();
        registry.register::<crate::redshift::RedshiftConnector>();
        registry.register::<crate::blackhole::BlackholeConnector>();
        registry
    }

    /// Adds a connector kind (a later registration of the same name replaces the earlier one).
    pub fn register<K: ConnectorKind>(&mut self) {
        self.kinds
            .insert(K::KIND, Box::new(Typed::<K>(PhantomData)));
    }

    /// The registered kinds, sorted by name.
    pub fn kinds(&self) -> impl Iterator<Item = &dyn ErasedKind> {
        self.kinds.values().map(|k| k.as_ref())
    }

    /// The published limits of `kind` (none for an unknown kind).
    pub fn limits(&self, kind: &str) -> ApiLimits {
        self.kinds.get(kind).map(|k| k.limits()).unwrap_or_default()
    }

    /// Builds a destination of `kind` from untyped settings.
    pub fn build(
        &self,
        kind: &str,
        settings: serde_json::Value,
        ctx: &BuildContext,
    ) -> Result<Built, BuildError> {
        let Some(k) = self.kinds.get(kind) else {
            return Err(BuildError::UnknownKind {
                customer: ctx.customer.clone(),
                destination: ctx.destination.clone(),
                kind: kind.to_owned(),
                known: self.kinds.keys().copied().collect::<Vec<_>>().join(", "),
            });
        };
        k.build(settings, ctx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::destination::BatchLimits;

    fn ctx() -> BuildContext {
        BuildContext {
            customer: "acme".into(),
            destination: "hook".into(),
            batch: BatchLimits {
                max_events: 10,
                max_bytes: 1 << 20,
                max_age: Duration::from_millis(100),
            },
            http: reqwest::Client::new(),
        }
    }

    #[test]
    fn unknown_kind_lists_the_known_ones() {
        let err = Registry::builtin()
            .build("fax", serde_json::json!({}), &ctx())
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"fax\"") && msg.contains("webhook") && msg.contains("blackhole"),
            "{msg}"
        );
        assert!(
            msg.contains("\"acme\"") && msg.contains("\"hook\""),
            "{msg}"
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let err = Registry::builtin()
            .build(
                "webhook",
                serde_json::json!({"url": "http://x", "timeout_ms": "soon"}),
                &ctx(),
            )
            .unwrap_err();
        match err {
            BuildError::InvalidSetting { field, .. } => assert_eq!(field, "timeout_ms"),
            other => panic!("{other}"),
        }
        let err = Registry::builtin()
            .build(
                "webhook",
                serde_json::json!({"url": "http://x", "secrett": "s"}),
                &ctx(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("secrett"), "{err}");
    }

    #[test]
    fn archive_settings_take_the_layout_and_refuse_unknown_keys() {
        let registry = Registry::builtin();
        let ctx = ctx();
        let built = registry
            .build(
                "s3",
                serde_json::json!({"bucket": "b", "objects": "per_batch"}),
                &ctx,
            )
            .expect("per_batch builds");
        assert_eq!(built.destination.batching(), crate::Batching::Sourced);
        assert_eq!(built.effective_settings["objects"], "per_batch");
        assert_eq!(built.effective_settings["bucket"], "b");
        let default = registry
            .build("s3", serde_json::json!({"bucket": "b"}), &ctx)
            .expect("default builds");
        assert_eq!(
            default.destination.batching(),
            crate::Batching::PerPartition
        );
        let err = registry
            .build(
                "s3",
                serde_json::json!({"bucket": "b", "bukket": "c"}),
                &ctx,
            )
            .expect_err("a typo is refused");
        assert!(err.to_string().contains("bukket"), "{err}");
        let err = registry
            .build(
                "s3",
                serde_json::json!({"bucket": "b", "objects": "per_hour"}),
                &ctx,
            )
            .expect_err("an unknown layout is refused");
        assert!(err.to_string().contains("objects"), "{err}");
    }

    #[test]
    fn effective_settings_redact_secrets() {
        let built = Registry::builtin()
            .build(
                "webhook",
                serde_json::json!({"url": "http://x", "secret": "hunter2", "headers": {"x-api-key": "k1"}}),
                &ctx(),
            )
            .unwrap();
        let text = built.effective_settings.to_string();
        assert!(!text.contains("hunter2") && !text.contains("k1"), "{text}");
        assert!(text.contains("timeout_ms"), "{text}");
    }
}
