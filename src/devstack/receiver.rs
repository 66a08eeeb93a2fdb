//! A real HTTP server standing in for customers' webhook endpoints.
//!
//! Every `POST /<path>` is one destination. The receiver records the events of each accepted
//! request (a JSON array or a single object), verifies `X-Courier-Signature` on paths that
//! have a secret (a bad signature is answered 401 and counted), and answers, after an optional delay, with the status a
//! test set for the path (no events are recorded for a non-2xx answer). `GET /_summary` returns
//! per-path counts as JSON. With an output directory it also appends each event as a line to
//! `<dir>/<path with / as _>.ndjson`.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use courier_connectors::webhook::signature;
use serde::{Deserialize, Serialize};

/// What one path has seen.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PathStats {
    /// Requests received, accepted or not.
    pub requests: u64,
    /// Requests refused for a missing or wrong signature.
    pub bad_signatures: u64,
    /// Events accepted.
    pub events: u64,
}

#[derive(Default)]
struct PathState {
    stats: PathStats,
    events: Vec<serde_json::Value>,
    status: Option<StatusCode>,
    secret: Option<Vec<u8>>,
    delay: Duration,
}

#[derive(Default)]
struct Shared {
    paths: Mutex<HashMap<String, PathState>>,
    out_dir: Option<PathBuf>,
}

/// A running receiver. It stops when the runtime it was started on stops.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Receiver {
    /// Starts listening on `listen` (`127.0.0.1:0` for any free port).
    pub async fn start(listen: &str, out_dir: Option<PathBuf>) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            paths: Mutex::default(),
            out_dir,
        });
        let app = axum::Router::new()
            .route("/_summary", get(summary))
            .route("/{*path}", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "receiver stopped");
            }
        });
        Ok(Receiver { addr, shared })
    }

    /// The URL of `path` (no leading slash) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn with<R>(&self, path: &str, f: impl FnOnce(&mut PathState) -> R) -> R {
        let mut paths = self.shared.paths.lock().unwrap_or_else(|e| e.into_inner());
        f(paths.entry(path.to_owned()).or_default())
    }

    /// Requires a valid signature made with `secret` on `path`.
    pub fn expect_signature(&self, path: &str, secret: &[u8]) {
        self.with(path, |p| p.secret = Some(secret.to_vec()));
    }

    /// Answers `status` on `path` from now on (`None`: accept with 200).
    pub fn answer(&self, path: &str, status: Option<u16>) {
        let status = status.map(|s| StatusCode::from_u16(s).expect("a valid status code"));
        self.with(path, |p| p.status = status);
    }

    /// Waits `delay` before answering each request on `path`, like a slow destination.
    pub fn delay(&self, path: &str, delay: Duration) {
        self.with(path, |p| p.delay = delay);
    }

    /// The events accepted on `path`, in arrival order.
    pub fn events(&self, path: &str) -> Vec<serde_json::Value> {
        self.with(path, |p| p.events.clone())
    }

    /// The distinct `messageId`s accepted on `path`.
    pub fn message_ids(&self, path: &str) -> HashSet<String> {
        self.with(path, |p| {
            p.events
                .iter()
                .filter_map(|e| e["messageId"].as_str().map(str::to_owned))
                .collect()
        })
    }

    /// The counters of `path`.
    pub fn stats(&self, path: &str) -> PathStats {
        self.with(path, |p| p.stats.clone())
    }
}

async fn summary(State(shared): State<Arc<Shared>>) -> Json<HashMap<String, PathStats>> {
    let paths = shared.paths.lock().unwrap_or_else(|e| e.into_inner());
    Json(
        paths
            .iter()
            .map(|(k, v)| (k.clone(), v.stats.clone()))
            .collect(),
    )
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let delay = shared
        .paths
        .lock()
        .map(|p| p.get(&path).map(|s| s.delay).unwrap_or_default())
        .unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut paths = shared.paths.lock().unwrap_or_else(|e| e.into_inner());
    let state = paths.entry(path.clone()).or_default();
    state.stats.requests += 1;
    if let Some(status) = state.status {
        if !status.is_success() {
            return (status, "{\"error\":\"configured failure\"}");
        }
    }
    if let Some(secret) = &state.secret {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = headers
            .get(signature::HEADER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if signature::verify(secret, header, &body, now, Duration::from_secs(300)).is_err() {
            state.stats.bad_signatures += 1;
            return (StatusCode::UNAUTHORIZED, "{\"error\":\"bad signature\"}");
        }
    }
    let events = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(object @ serde_json::Value::Object(_)) => vec![object],
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "{\"error\":\"body is not a json array or object\"}",
            )
        }
    };
    if let Some(dir) = &shared.out_dir {
        let file = dir.join(format!("{}.ndjson", path.replace('/', "_")));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| {
                let mut buf = Vec::new();
                for e in &events {
                    serde_json::to_writer(&mut buf, e)?;
                    buf.push(b'\n');
                }
                f.write_all(&buf)
            });
        if let Err(err) = written {
            tracing::error!(error = %err, file = %file.display(), "cannot write received events");
            return (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":\"storage\"}");
        }
    }
    state.stats.events += events.len() as u64;
    state.events.extend(events);
    (StatusCode::OK, "{\"ok\":true}")
}
