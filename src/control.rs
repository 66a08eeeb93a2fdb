//! Live configuration: the customers' destinations follow their store while workers run.
//!
//! The store is the customer files in `customers_dir` (the default) or PostgreSQL tables
//! ([`crate::store`]). The control loop reloads when the store changed (file modification
//! times checked every `control.reload_interval_ms`; PostgreSQL notifications, with the same
//! interval as a fallback poll) and on SIGHUP:
//!
//! 1. load and validate every customer, then build every destination — any error rejects the
//!    whole change (logged, counted in `courier_config_reloads_total{result="rejected"}`, shown
//!    in `/status`) and the running table stays;
//! 2. swap in the new routing table at once (partition tasks route each message by one
//!    version). Instances whose kind, settings and delivery limits did not change carry on with
//!    their batches, connections and circuit state; removed, disabled or changed ones stop
//!    receiving and finish what they already hold, so events routed before the change are
//!    delivered (or dead-lettered) as usual.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use courier_connectors::Registry;
use tokio_util::sync::CancellationToken;

use crate::customers::{self, Customer};
use crate::deliver::Fallback;
use crate::destinations::{self, Instances};
use crate::route::RoutingTable;
use crate::settings::{Settings, StoreKind};
use crate::status::Status;
use crate::store::PostgresStore;

/// Where customers are read from.
enum Source {
    Files {
        dir: PathBuf,
        /// Names, modification times and sizes of the files last loaded.
        seen: Vec<(PathBuf, Option<SystemTime>, u64)>,
    },
    Postgres(PostgresStore),
}

/// The `*.toml` files of `dir` with their modification times and sizes.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .map(|e| {
                    let meta = e.metadata().ok();
                    (
                        e.path(),
                        meta.as_ref().and_then(|m| m.modified().ok()),
                        meta.map_or(0, |m| m.len()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The customers in the configured store, validated (for one-off commands such as replay).
pub async fn load_customers(settings: &Settings) -> anyhow::Result<Vec<Customer>> {
    match settings.control.store {
        StoreKind::Files => Ok(customers::load_dir(
            &settings.customers_dir,
            &settings.delivery,
            &customers::process_env,
        )?),
        StoreKind::Postgres => {
            let url = settings.control.postgres_url.clone().unwrap_or_default();
            PostgresStore::connect(&url)
                .await?
                .customers(&settings.delivery)
                .await
        }
    }
}

/// The live routing table and what it is built from.
pub struct Control {
    settings: Settings,
    registry: Registry,
    http: reqwest::Client,
    fallback: Fallback,
    instances: Instances,
    routes: Arc<ArcSwap<RoutingTable>>,
    status: Arc<Status>,
    source: Source,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("instances", &self.instances.len())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Loads the customers and builds the first routing table; any error stops the worker
    /// before it joins the group.
    pub async fn start(
        settings: Settings,
        fallback: Fallback,
        status: Arc<Status>,
    ) -> anyhow::Result<Control> {
        let source = match settings.control.store {
            StoreKind::Files => Source::Files {
                dir: settings.customers_dir.clone(),
                seen: Vec::new(),
            },
            StoreKind::Postgres => {
                let url = settings.control.postgres_url.clone().unwrap_or_default();
                Source::Postgres(PostgresStore::connect(&url).await?)
            }
        };
        let mut control = Control {
            registry: Registry::builtin(),
            http: destinations::http_client(),
            fallback,
            instances: Instances::default(),
            routes: Arc::new(ArcSwap::from_pointee(RoutingTable::new(Vec::new()))),
            status,
            source,
            settings,
        };
        let customers = control.apply().await?;
        tracing::info!(
            customers,
            destinations = control.instances.len(),
            "configuration loaded"
        );
        Ok(control)
    }

    /// The live routing table.
    pub fn routes(&self) -> Arc<ArcSwap<RoutingTable>> {
        self.routes.clone()
    }

    async fn load(&mut self) -> anyhow::Result<Vec<Customer>> {
        let defaults = &self.settings.delivery;
        let customers = match &mut self.source {
            Source::Files { dir, seen } => {
                *seen = fingerprint(dir);
                customers::load_dir(dir, defaults, &customers::process_env)?
            }
            Source::Postgres(store) => store.customers(defaults).await?,
        };
        // With no customers every event would be dead-lettered as an unknown write key: a
        // deployment mistake, not a configuration to run.
        anyhow::ensure!(
            !customers.is_empty(),
            "no customers in the store ({})",
            match &self.source {
                Source::Files { dir, .. } => format!("no *.toml files in {}", dir.display()),
                Source::Postgres(_) => "no rows in courier_customers".into(),
            }
        );
        Ok(customers)
    }

    /// Loads, validates, builds and swaps in a new table; returns the number of customers.
    async fn apply(&mut self) -> anyhow::Result<usize> {
        let customers = self.load().await?;
        let table = destinations::routing_table(
            &customers,
            &self.registry,
            &self.http,
            &self.fallback,
            &mut self.instances,
        )
        .context("a destination does not build")?;
        self.routes.store(Arc::new(table));
        Ok(customers.len())
    }

    /// Reloads, keeping the running table when the new configuration is invalid.
    pub async fn reload(&mut self, cause: &str) {
        match self.apply().await {
            Ok(customers) => {
                metrics::counter!("courier_config_reloads_total", "result" => "ok").increment(1);
                tracing::info!(
                    cause,
                    customers,
                    destinations = self.instances.len(),
                    "configuration reloaded"
                );
                self.status.record_reload(serde_json::json!({
                    "ok": true, "cause": cause, "customers": customers, "at_ms": crate::retry::now_millis(),
                }));
            }
            Err(err) => {
                metrics::counter!("courier_config_reloads_total", "result" => "rejected")
                    .increment(1);
                tracing::error!(
                    cause,
                    error = format!("{err:#}"),
                    "configuration change rejected; the running configuration stays"
                );
                self.status.record_reload(serde_json::json!({
                    "ok": false, "cause": cause, "error": format!("{err:#}"), "at_ms": crate::retry::now_millis(),
                }));
            }
        }
    }

    /// Whether the store changed since the last load.
    async fn changed(&mut self) -> bool {
        match &mut self.source {
            Source::Files { dir, seen } => fingerprint(dir) != *seen,
            Source::Postgres(store) => store.changed().await,
        }
    }

    /// Follows the store until `shutdown`: reloads on changes and on SIGHUP.
    pub async fn run(mut self, shutdown: CancellationToken) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGHUP; reloading on changes only");
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(
            self.settings.control.reload_interval_ms,
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    self.reload("SIGHUP").await;
                }
                () = async { match &mut self.source { Source::Postgres(store) => store.notified().await, Source::Files { .. } => std::future::pending().await } } => {
                    self.reload("notification").await;
                }
                _ = tick.tick() => {
                    if self.changed().await {
                        self.reload("store changed").await;
                    }
                }
            }
        }
    }
}
