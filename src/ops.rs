//! The operations HTTP server: `/healthz`, `/readyz`, `/metrics`, `/status`.
//!
//! - `/healthz`: 200 while the process serves requests (liveness).
//! - `/readyz`: 200 once every destination instance is built and the worker joined its group,
//!   503 before that and while draining (readiness: take it out of rotation on SIGTERM).
//! - `/metrics`: every `courier_*` metric in the Prometheus text format, through the `metrics`
//!   facade and `metrics-exporter-prometheus`.
//! - `/status`: JSON — assigned partitions with committed offset, in-flight messages and lag,
//!   each destination instance's queue depth, circuit state and last error, the last
//!   configuration reload.
//!
//! The recorder is installed once per process, before anything records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::status::Status;

/// Histogram buckets of durations, in seconds.
const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 100.0, 1000.0,
    10000.0, 100000.0,
];

/// Histogram buckets of `courier_batch_events`, in events (the duration ladder put every
/// batch of 11 to 100 events in one bucket).
const BATCH_BUCKETS: [f64; 16] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0,
    50000.0, 100000.0,
];

/// Installs the Prometheus recorder for this process.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("courier_batch_events".into()), &BATCH_BUCKETS)?
        .install_recorder()?;
    Ok(handle)
}

#[derive(Clone)]
struct Ops {
    status: Arc<Status>,
    metrics: PrometheusHandle,
}

/// Serves the endpoints on `listen` until `stop` fires; returns the bound address once
/// listening.
pub async fn serve(
    listen: &str,
    status: Arc<Status>,
    metrics: PrometheusHandle,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (server.listen): {e}"))?;
    let addr = listener.local_addr()?;
    let upkeep = metrics.clone();
    let upkeep_stop = stop.clone();
    tokio::spawn(async move {
        // Drains histogram samples into their buckets.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                () = upkeep_stop.cancelled() => return,
            }
        }
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .with_state(Ops { status, metrics });
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(err) = server.await {
            tracing::error!(error = %err, "operations server failed");
        }
    });
    tracing::info!(listen = %addr, "operations server listening");
    Ok(addr)
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.status.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
}

async fn status_json(State(ops): State<Ops>) -> impl IntoResponse {
    Json(ops.status.snapshot())
}
