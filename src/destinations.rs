//! Building destination instances from customers, and the routing table from them.
//!
//! Every destination is built, enabled or not, so a configuration that would fail when a
//! destination is switched on fails now instead. Only enabled destinations get a delivery
//! task and a place in the routing table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use courier_connectors::registry::Built;
use courier_connectors::{BuildContext, BuildError, Registry};

use crate::customers::{Customer, DestinationConfig};
use crate::deliver::{self, DestinationHandle, DestinationId, Fallback};
use crate::route::{CustomerRoute, RoutingTable, Target};
use crate::settings::DeliverySettings;

/// The HTTP client shared by every HTTP connector of a worker.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("courier/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("the http client builds with static settings")
}

/// A destination that does not build, with the customer file it is defined in.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", file.display())]
pub struct DestinationError {
    /// The customer file.
    pub file: PathBuf,
    /// What is wrong, naming the customer, destination and field.
    pub error: Box<BuildError>,
}

/// Builds one destination of `customer` (validation only; no I/O), with its delivery settings
/// brought within the connector's published limits.
fn build(
    customer: &Customer,
    d: &DestinationConfig,
    registry: &Registry,
    http: &reqwest::Client,
) -> Result<(Built, DeliverySettings), DestinationError> {
    let delivery = d.delivery.within(registry.limits(&d.kind));
    let ctx = BuildContext {
        customer: customer.id.clone(),
        destination: d.name.clone(),
        batch: delivery.batch_limits(),
        http: http.clone(),
    };
    let built = registry
        .build(&d.kind, d.settings.clone(), &ctx)
        .map_err(|error| DestinationError {
            file: customer.file.clone(),
            error: Box::new(error),
        })?;
    Ok((built, delivery))
}

/// Validates every destination and returns the effective configuration (secrets redacted).
pub fn effective(
    customers: &[Customer],
    registry: &Registry,
) -> Result<serde_json::Value, DestinationError> {
    let http = http_client();
    let mut out = serde_json::Map::new();
    for customer in customers {
        let mut destinations = serde_json::Map::new();
        for d in &customer.destinations {
            let (built, delivery) = build(customer, d, registry, &http)?;
            destinations.insert(
                d.name.clone(),
                serde_json::json!({
                    "kind": d.kind,
                    "enabled": d.enabled,
                    "filter": d.filter.describe(),
                    "delivery": delivery,
                    "settings": built.effective_settings,
                }),
            );
        }
        out.insert(
            customer.id.clone(),
            serde_json::json!({
                "file": customer.file.display().to_string(),
                "write_keys": customer.write_keys.len(),
                "destinations": destinations,
            }),
        );
    }
    Ok(serde_json::Value::Object(out))
}

/// The running destination instances, by what they were built from, so a reload keeps an
/// instance whose kind, settings and delivery limits did not change (its batches, connections,
/// rate limiter and circuit breaker go on) and starts new ones only for what changed.
#[derive(Debug, Default)]
pub struct Instances {
    running: HashMap<InstanceKey, DestinationHandle>,
}

/// What makes two destination instances the same: who owns it and everything it was built
/// from (filters and `enabled` are routing matters, not the instance's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InstanceKey {
    customer: String,
    name: String,
    kind: String,
    /// The settings (secrets expanded) and the effective delivery limits, as JSON text.
    built_from: String,
}

impl Instances {
    /// How many instances run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

/// Builds every destination (all must build, or nothing changes), reuses the running instances
/// that did not change, starts a delivery task for each new enabled one, and returns the
/// routing table that sends to them. Instances no longer used are dropped from `instances`;
/// their tasks finish what they hold once the old table is gone.
pub fn routing_table(
    customers: &[Customer],
    registry: &Registry,
    http: &reqwest::Client,
    fallback: &Fallback,
    instances: &mut Instances,
) -> Result<RoutingTable, DestinationError> {
    // Validate everything before starting anything.
    let mut built = Vec::with_capacity(customers.len());
    for customer in customers {
        let mut destinations = Vec::new();
        for d in &customer.destinations {
            let (instance, delivery) = build(customer, d, registry, http)?;
            destinations.push((d, instance, delivery));
        }
        built.push((customer, destinations));
    }
    let mut next = HashMap::new();
    let mut routes = Vec::with_capacity(customers.len());
    for (customer, destinations) in built {
        let id: Arc<str> = Arc::from(customer.id.as_str());
        let mut targets = Vec::new();
        for (d, instance, delivery) in destinations {
            if !d.enabled {
                tracing::debug!(
                    customer = &*customer.id,
                    destination = &*d.name,
                    kind = &*d.kind,
                    "destination disabled"
                );
                continue;
            }
            let key = InstanceKey {
                customer: customer.id.clone(),
                name: d.name.clone(),
                kind: d.kind.clone(),
                built_from: serde_json::json!([d.settings, delivery]).to_string(),
            };
            let handle = match instances.running.get(&key) {
                Some(handle) => handle.clone(),
                None => {
                    tracing::info!(
                        customer = &*customer.id,
                        destination = &*d.name,
                        kind = &*d.kind,
                        "destination started"
                    );
                    let destination_id = DestinationId {
                        customer: id.clone(),
                        name: Arc::from(d.name.as_str()),
                        kind: Arc::from(d.kind.as_str()),
                    };
                    deliver::spawn(
                        destination_id,
                        instance.destination,
                        delivery,
                        fallback.clone(),
                    )
                }
            };
            next.insert(key, handle.clone());
            targets.push(Target {
                filter: d.filter.clone(),
                handle,
            });
        }
        routes.push((customer.write_keys.clone(), CustomerRoute { id, targets }));
    }
    for key in instances.running.keys().filter(|k| !next.contains_key(*k)) {
        tracing::info!(
            customer = &*key.customer,
            destination = &*key.name,
            kind = &*key.kind,
            "destination stopped (disabled, removed or changed); it finishes what it holds"
        );
    }
    instances.running = next;
    Ok(RoutingTable::new(routes))
}
