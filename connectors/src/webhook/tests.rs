//! The webhook connector against a real HTTP server on loopback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes as Body;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;

use super::signature;
use crate::destination::{BatchLimits, BuildContext};
use crate::event::Event;
use crate::registry::Registry;

#[derive(Default)]
struct Seen {
    bodies: Vec<(HeaderMap, Body)>,
}

/// Starts a receiver answering `status` (with `Retry-After: 3` on 503) and recording requests.
async fn receiver(status: StatusCode) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    let app = axum::Router::new()
        // Moved for good, on this host and to another one (nothing listens on port 9).
        .route(
            "/moved",
            post(|| async { (StatusCode::PERMANENT_REDIRECT, [("location", "/hook")]) }),
        )
        .route(
            "/elsewhere",
            post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [("location", "http://127.0.0.1:9/hook")],
                )
            }),
        )
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: Body| {
                let state = state.clone();
                async move {
                    state.lock().unwrap().bodies.push((headers, body));
                    let mut h = HeaderMap::new();
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        h.insert("retry-after", "3".parse().unwrap());
                    }
                    (status, h, "{\"error\":\"nope\"}")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

fn build(url: &str, max_events: usize) -> Arc<dyn crate::Destination> {
    let ctx = BuildContext {
        customer: "acme".into(),
        destination: "hook".into(),
        batch: BatchLimits {
            max_events,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(50),
        },
        http: reqwest::Client::new(),
    };
    let settings =
        serde_json::json!({"url": url, "secret": "s3cret", "headers": {"x-api-key": "k"}});
    Registry::builtin()
        .build("webhook", settings, &ctx)
        .unwrap()
        .destination
}

fn events(n: usize) -> Vec<Arc<Event>> {
    events_with(n, "")
}

/// `n` tracks `m0`, `m1`, ... with `extra` (`,"key":value` pairs) after their user id.
fn events_with(n: usize, extra: &str) -> Vec<Arc<Event>> {
    (0..n)
        .map(|i| {
            let raw = format!(r#"{{"type":"track","event":"Bid on item","messageId":"m{i}","writeKey":"k","userId":"u"{extra}}}"#);
            Arc::new(Event::parse(Bytes::from(raw), 1 << 20).unwrap())
        })
        .collect()
}

/// Asserts that the request's signature header verifies against the body that arrived.
fn assert_signed(headers: &HeaderMap, body: &[u8]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = headers[signature::HEADER].to_str().unwrap();
    signature::verify(b"s3cret", header, body, now, Duration::from_secs(300)).unwrap();
}

#[tokio::test]
async fn delivers_a_signed_batch() {
    let (url, seen) = receiver(StatusCode::OK).await;
    build(&url, 100).deliver(&events(3)).await.unwrap();
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen.bodies[0];
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(headers["x-api-key"], "k");
    assert_eq!(headers["x-courier-batch-size"], "3");
    assert_signed(headers, body);
}

#[tokio::test]
async fn streams_a_large_batch_whole_with_its_length_and_signature() {
    let (url, seen) = receiver(StatusCode::OK).await;
    // ~1 KB each: the body goes out in several chunks.
    let note = format!(r#","properties":{{"note":"{}"}}"#, "x".repeat(1000));
    let batch = events_with(400, &note);
    build(&url, 1000).deliver(&batch).await.unwrap();
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen.bodies[0];
    assert!(body.len() > 400_000);
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    assert!(headers.get("transfer-encoding").is_none());
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["messageId"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..400).map(|i| format!("m{i}")).collect();
    assert_eq!(ids, expected);
    assert_signed(headers, body);
}

#[tokio::test]
async fn follows_a_redirect_on_its_host_with_the_whole_signed_body_and_no_other() {
    let (url, seen) = receiver(StatusCode::OK).await;
    let moved = url.replace("/hook", "/moved");
    build(&moved, 100).deliver(&events(3)).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.bodies.len(), 1);
        let (headers, body) = &seen.bodies[0];
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_signed(headers, body);
    }
    // To another host: not followed; the redirect is the answer, and it is permanent.
    let elsewhere = url.replace("/hook", "/elsewhere");
    let err = build(&elsewhere, 100)
        .deliver(&events(1))
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(307));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn one_event_per_request_sends_the_object() {
    let (url, seen) = receiver(StatusCode::OK).await;
    build(&url, 1).deliver(&events(1)).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&seen.lock().unwrap().bodies[0].1).unwrap();
    assert_eq!(v["messageId"], "m0");
}

#[tokio::test]
async fn classifies_failures() {
    let (url, _) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    let err = build(&url, 100).deliver(&events(1)).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

    let (url, _) = receiver(StatusCode::BAD_REQUEST).await;
    let err = build(&url, 100).deliver(&events(1)).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.status, Some(400));
    assert_eq!(err.response.as_deref(), Some("{\"error\":\"nope\"}"));

    // Nothing listens on port 9 of loopback: a transport error, retried.
    let err = build("http://127.0.0.1:9/hook", 100)
        .deliver(&events(1))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
