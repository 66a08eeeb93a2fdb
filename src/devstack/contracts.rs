//! Local servers that enforce the published contracts of the SaaS APIs Courier delivers to,
//! so connectors are tested against the rules they must follow, not against a stub that
//! accepts anything.
//!
//! One HTTP server hosts all four APIs:
//!
//! | API | route | enforces |
//! |---|---|---|
//! | Amplitude HTTP V2 | `POST /2/httpapi` | `api_key`; ≤ 2,000 events and ≤ 1 MB (413); per event `event_type`, `user_id` or `device_id`, id length ≥ `min_id_length` (default 5), integer `time`; a 400 naming `events_with_missing_fields` / `events_with_invalid_fields` rejects the whole request; `insert_id` de-duplication |
//! | Mixpanel Import | `POST /import?strict=1` | basic auth (service account with `project_id`, or project token); ≤ 2,000 records and ≤ 10 MB (413); per record `event`, integer `time` not over an hour ahead, `distinct_id`, `$insert_id` of ≤ 36 letters, digits or `-`; a 400 with `failed_records` imports the valid ones; `$insert_id` de-duplication |
//! | Mixpanel Engage | `POST /engage?verbose=1` | `$token` and `$distinct_id`; `{"status":0,"error":...}` otherwise |
//! | Slack incoming webhook | `POST /services/<path>` | a registered path (404 `no_service`), a non-empty `text` (400 `invalid_payload`), about one message per second with a burst of 3 (429 `rate_limited` with `Retry-After: 1`) |
//! | Segment | `POST /v1/batch` | basic auth with the write key (401); ≤ 500 KB per batch and ≤ 32 KB per event (400); a `type` on every event |
//!
//! Faults are injected per API with [`Contracts::fail_next`]: the next requests get a chosen
//! status, body and `Retry-After` (for 413, 429 and 5xx scenarios).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{json, Value};

/// The APIs a [`Contracts`] server hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// Amplitude HTTP V2.
    Amplitude,
    /// Mixpanel Import.
    MixpanelImport,
    /// Mixpanel Engage.
    MixpanelEngage,
    /// Slack incoming webhooks.
    Slack,
    /// Segment's batch endpoint.
    Segment,
}

/// The credentials the server accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Amplitude's API key.
    pub amplitude_api_key: String,
    /// Mixpanel's project token.
    pub mixpanel_token: String,
    /// Mixpanel's project id and service account (user, secret).
    pub mixpanel_service_account: (String, String, String),
    /// Slack webhook paths (after `/services/`).
    pub slack_paths: Vec<String>,
    /// Segment's write key.
    pub segment_write_key: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            amplitude_api_key: "amp-key".into(),
            mixpanel_token: "mp-token".into(),
            mixpanel_service_account: ("4242".into(), "courier.sa".into(), "mp-secret".into()),
            slack_paths: vec!["T000/B000/XXXX".into()],
            segment_write_key: "seg-write-key".into(),
        }
    }
}

/// An injected answer.
#[derive(Debug, Clone)]
struct Fault {
    status: StatusCode,
    body: String,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Recorded {
    amplitude: Vec<Value>,
    amplitude_ids: HashSet<String>,
    mixpanel: Vec<Value>,
    mixpanel_ids: HashSet<String>,
    profiles: Vec<Value>,
    slack: Vec<String>,
    segment: Vec<Value>,
    requests: HashMap<Api, u64>,
    faults: HashMap<Api, VecDeque<Fault>>,
    slack_sent: VecDeque<Instant>,
}

struct Shared {
    credentials: Credentials,
    recorded: Mutex<Recorded>,
}

/// A running contract server.
#[derive(Clone)]
pub struct Contracts {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Contracts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contracts")
            .field("addr", &self.addr)
            .finish()
    }
}

type Answer = (StatusCode, HeaderMap, String);

fn answer(status: StatusCode, body: Value) -> Answer {
    (status, HeaderMap::new(), body.to_string())
}

fn text(status: StatusCode, body: &str) -> Answer {
    (status, HeaderMap::new(), body.to_owned())
}

impl Contracts {
    /// Starts the server on `listen` (`127.0.0.1:0` for any free port).
    pub async fn start(listen: &str, credentials: Credentials) -> anyhow::Result<Contracts> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            credentials,
            recorded: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/2/httpapi", post(amplitude))
            .route("/import", post(mixpanel_import))
            .route("/engage", post(mixpanel_engage))
            .route("/services/{*path}", post(slack))
            .route("/v1/batch", post(segment))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "contract server stopped");
            }
        });
        Ok(Contracts { addr, shared })
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Recorded) -> R) -> R {
        f(&mut self
            .shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// Answers the next `count` requests to `api` with `status` and `body` (and `Retry-After`).
    pub fn fail_next(
        &self,
        api: Api,
        count: usize,
        status: u16,
        body: &str,
        retry_after: Option<u64>,
    ) {
        let fault = Fault {
            status: StatusCode::from_u16(status).expect("a valid status"),
            body: body.to_owned(),
            retry_after,
        };
        self.with(|r| {
            r.faults
                .entry(api)
                .or_default()
                .extend(std::iter::repeat_n(fault, count))
        });
    }

    /// Requests received by `api`, accepted or not.
    pub fn requests(&self, api: Api) -> u64 {
        self.with(|r| r.requests.get(&api).copied().unwrap_or_default())
    }

    /// Events Amplitude ingested (de-duplicated by `insert_id`).
    pub fn amplitude_events(&self) -> Vec<Value> {
        self.with(|r| r.amplitude.clone())
    }

    /// Events Mixpanel imported (de-duplicated by `$insert_id`).
    pub fn mixpanel_events(&self) -> Vec<Value> {
        self.with(|r| r.mixpanel.clone())
    }

    /// Profile updates Mixpanel accepted.
    pub fn mixpanel_profiles(&self) -> Vec<Value> {
        self.with(|r| r.profiles.clone())
    }

    /// Slack message texts, in arrival order.
    pub fn slack_messages(&self) -> Vec<String> {
        self.with(|r| r.slack.clone())
    }

    /// Events Segment accepted, in arrival order.
    pub fn segment_events(&self) -> Vec<Value> {
        self.with(|r| r.segment.clone())
    }
}

/// Counts the request and returns an injected fault, if one is queued.
fn injected(shared: &Shared, api: Api) -> Option<Answer> {
    let mut r = shared.recorded.lock().unwrap_or_else(|e| e.into_inner());
    *r.requests.entry(api).or_default() += 1;
    let fault = r.faults.get_mut(&api)?.pop_front()?;
    let mut headers = HeaderMap::new();
    if let Some(secs) = fault.retry_after {
        headers.insert("retry-after", HeaderValue::from(secs));
    }
    Some((fault.status, headers, fault.body))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn respond(a: Answer) -> Response {
    a.into_response()
}

async fn amplitude(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(fault) = injected(&shared, Api::Amplitude) {
        return respond(fault);
    }
    if body.len() > 1_000_000 {
        return respond(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"code": 413, "error": "Payload too large"}),
        ));
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "Invalid JSON request body"}),
        ));
    };
    if request["api_key"].as_str() != Some(shared.credentials.amplitude_api_key.as_str()) {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "Invalid API key", "missing_field": null}),
        ));
    }
    let Some(events) = request["events"].as_array() else {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "Request missing required field", "missing_field": "events"}),
        ));
    };
    if events.len() > 2_000 {
        return respond(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"code": 413, "error": "Payload too large"}),
        ));
    }
    let min_id = request["options"]["min_id_length"].as_u64().unwrap_or(5) as usize;
    let mut missing: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut invalid: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if e["event_type"].as_str().is_none_or(str::is_empty) {
            missing.entry("event_type").or_default().push(i);
        }
        let user = e["user_id"].as_str();
        let device = e["device_id"].as_str();
        if user.is_none() && device.is_none() {
            missing.entry("user_id").or_default().push(i);
        }
        if user.is_some_and(|u| u.len() < min_id) {
            invalid.entry("user_id").or_default().push(i);
        }
        if device.is_some_and(|d| d.len() < min_id) {
            invalid.entry("device_id").or_default().push(i);
        }
        if !e["time"].is_null() && !e["time"].is_i64() {
            invalid.entry("time").or_default().push(i);
        }
    }
    if !missing.is_empty() || !invalid.is_empty() {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "Request has events with invalid or missing fields", "events_with_missing_fields": missing, "events_with_invalid_fields": invalid}),
        ));
    }
    let mut r = shared.recorded.lock().unwrap_or_else(|e| e.into_inner());
    for e in events {
        let id = e["insert_id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() || r.amplitude_ids.insert(id) {
            r.amplitude.push(e.clone());
        }
    }
    respond(answer(
        StatusCode::OK,
        json!({"code": 200, "events_ingested": events.len(), "payload_size_bytes": body.len(), "server_upload_time": now_millis()}),
    ))
}

fn mixpanel_authorized(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> bool {
    let Some((user, pass)) = basic_auth(headers) else {
        return false;
    };
    let (project, sa_user, sa_secret) = &shared.credentials.mixpanel_service_account;
    (user == *sa_user && pass == *sa_secret && query.get("project_id") == Some(project))
        || (user == shared.credentials.mixpanel_token && pass.is_empty())
}

fn valid_insert_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 36 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

async fn mixpanel_import(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = injected(&shared, Api::MixpanelImport) {
        return respond(fault);
    }
    if !mixpanel_authorized(&shared, &headers, &query) {
        return respond(answer(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}),
        ));
    }
    if query.get("strict").map(String::as_str) != Some("1") {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "this contract server requires strict=1", "status": "Bad Request"}),
        ));
    }
    if body.len() > 10_000_000 {
        return respond(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"code": 413, "error": "request exceeds 10MB", "status": "Payload Too Large"}),
        ));
    }
    let Ok(Value::Array(records)) = serde_json::from_slice::<Value>(&body) else {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "unable to parse JSON array", "status": "Bad Request"}),
        ));
    };
    if records.len() > 2_000 {
        return respond(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"code": 413, "error": "request exceeds 2000 records", "status": "Payload Too Large"}),
        ));
    }
    let horizon = now_millis() + 3_600_000;
    let mut failed = Vec::new();
    let mut r = shared.recorded.lock().unwrap_or_else(|e| e.into_inner());
    let mut imported = 0;
    for (i, rec) in records.iter().enumerate() {
        let props = &rec["properties"];
        let insert_id = props["$insert_id"].as_str().unwrap_or_default();
        let problem = if rec["event"].as_str().is_none_or(str::is_empty) {
            Some(("event", "'event' must be a non-empty string"))
        } else if !props["time"].is_i64() {
            Some(("properties.time", "'properties.time' is invalid: must be specified as seconds or milliseconds since epoch"))
        } else if props["time"].as_i64().unwrap_or_default() > horizon {
            Some((
                "properties.time",
                "'properties.time' is invalid: must not be more than one hour in the future",
            ))
        } else if !props["distinct_id"].is_string() {
            Some((
                "properties.distinct_id",
                "'properties.distinct_id' must be a string",
            ))
        } else if !valid_insert_id(insert_id) {
            Some((
                "properties.$insert_id",
                "'properties.$insert_id' must be 36 or fewer alphanumeric characters or -",
            ))
        } else {
            None
        };
        match problem {
            Some((field, message)) => failed.push(
                json!({"index": i, "$insert_id": insert_id, "field": field, "message": message}),
            ),
            None => {
                imported += 1;
                if r.mixpanel_ids.insert(insert_id.to_owned()) {
                    r.mixpanel.push(rec.clone());
                }
            }
        }
    }
    if failed.is_empty() {
        return respond(answer(
            StatusCode::OK,
            json!({"code": 200, "num_records_imported": imported, "status": "OK"}),
        ));
    }
    respond(answer(
        StatusCode::BAD_REQUEST,
        json!({"code": 400, "error": "some data points in the request failed validation", "failed_records": failed, "num_records_imported": imported, "status": "Bad Request"}),
    ))
}

async fn mixpanel_engage(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(fault) = injected(&shared, Api::MixpanelEngage) {
        return respond(fault);
    }
    let Ok(Value::Array(updates)) = serde_json::from_slice::<Value>(&body) else {
        return respond(answer(
            StatusCode::OK,
            json!({"status": 0, "error": "data, missing or empty"}),
        ));
    };
    for u in &updates {
        if u["$token"].as_str() != Some(shared.credentials.mixpanel_token.as_str()) {
            return respond(answer(
                StatusCode::OK,
                json!({"status": 0, "error": "$token, invalid"}),
            ));
        }
        if u["$distinct_id"].as_str().is_none_or(str::is_empty) {
            return respond(answer(
                StatusCode::OK,
                json!({"status": 0, "error": "$distinct_id, missing or empty"}),
            ));
        }
    }
    shared
        .recorded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .profiles
        .extend(updates);
    respond(answer(StatusCode::OK, json!({"status": 1, "error": null})))
}

async fn slack(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(fault) = injected(&shared, Api::Slack) {
        return respond(fault);
    }
    if !shared.credentials.slack_paths.contains(&path) {
        return respond(text(StatusCode::NOT_FOUND, "no_service"));
    }
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_owned));
    let Some(message) = message.filter(|m| !m.is_empty()) else {
        return respond(text(StatusCode::BAD_REQUEST, "invalid_payload"));
    };
    let mut r = shared.recorded.lock().unwrap_or_else(|e| e.into_inner());
    // About one message per second, with a short burst: count the last second.
    let now = Instant::now();
    while r
        .slack_sent
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
    {
        r.slack_sent.pop_front();
    }
    if r.slack_sent.len() >= 3 {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("1"));
        return respond((
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            "rate_limited".into(),
        ));
    }
    r.slack_sent.push_back(now);
    r.slack.push(message);
    respond(text(StatusCode::OK, "ok"))
}

async fn segment(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(fault) = injected(&shared, Api::Segment) {
        return respond(fault);
    }
    if basic_auth(&headers).map(|(user, _)| user)
        != Some(shared.credentials.segment_write_key.clone())
    {
        return respond(answer(
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "message": "invalid write key"}),
        ));
    }
    if body.len() > 500 * 1024 {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "message": "batch exceeds 500KB"}),
        ));
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "message": "invalid JSON"}),
        ));
    };
    let Some(batch) = request["batch"].as_array() else {
        return respond(answer(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "message": "missing batch"}),
        ));
    };
    for e in batch {
        if e.to_string().len() > 32 * 1024 {
            return respond(answer(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "message": "event exceeds 32KB"}),
            ));
        }
        if !e["type"].is_string() {
            return respond(answer(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "message": "event missing type"}),
            ));
        }
    }
    shared
        .recorded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .segment
        .extend(batch.iter().cloned());
    respond(answer(StatusCode::OK, json!({"success": true})))
}
