//! HTTP failure classification shared by every HTTP connector.
//!
//! The contract (from the design): 2xx is delivered; 408, 429 and 5xx are retryable, with
//! `Retry-After` (seconds or an HTTP date) honoured; 413 asks the runtime to split the batch;
//! every other status is permanent; a transport error (connect, timeout, reset) is retryable.
//! Response bodies are kept only as a short excerpt. Streamed request bodies follow 307 and
//! 308 redirects within their origin ([`send_following`]).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;

use crate::error::{DeliveryError, Failure};

/// At most this many bytes of a response body are kept with an error.
pub const RESPONSE_EXCERPT_BYTES: usize = 512;

/// A destination's answer, read in full.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as text (lossy for non-UTF-8).
    pub body: String,
}

impl Answer {
    /// The classification of a non-2xx answer (see [`status_error`]).
    pub fn error(&self, what: &str) -> DeliveryError {
        status_error(what, self.status, &self.headers, &self.body)
    }
}

/// Sends `request` and reads the answer; a transport error is retryable.
pub async fn send(what: &str, request: reqwest::RequestBuilder) -> Result<Answer, DeliveryError> {
    let response = request.send().await.map_err(|e| transport_error(what, e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| transport_error(what, e))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Redirects [`send_following`] follows at most (the client's own default).
const MAX_REDIRECTS: usize = 10;

/// Sends the request `build` makes for `url`, following 307 and 308 redirects. The client
/// cannot replay a streamed body, so it does not follow redirects for such a request; this
/// follows those that keep the method and body, up to `MAX_REDIRECTS`, building the request
/// again for each, and only within `url`'s origin (scheme, host and port), so credentials and
/// signatures never go to another host. Any other answer, a redirect elsewhere included, is
/// returned as it is.
pub async fn send_following(
    what: &str,
    url: &reqwest::Url,
    build: impl Fn(reqwest::Url) -> reqwest::RequestBuilder,
) -> Result<Answer, DeliveryError> {
    let mut url = url.clone();
    for _ in 0..MAX_REDIRECTS {
        let answer = send(what, build(url.clone())).await?;
        let keeps_body = matches!(
            answer.status,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        let next = keeps_body
            .then(|| answer.headers.get(LOCATION)?.to_str().ok())
            .flatten()
            .and_then(|location| url.join(location).ok())
            .filter(|next| next.origin() == url.origin());
        match next {
            Some(next) => url = next,
            None => return Ok(answer),
        }
    }
    send(what, build(url)).await
}

/// Whether a status is worth retrying.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Classifies a non-2xx answer. `what` names the destination API for the message.
pub fn status_error(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> DeliveryError {
    let failure = if status == StatusCode::PAYLOAD_TOO_LARGE {
        Failure::TooLarge
    } else if is_retryable_status(status) {
        Failure::Retryable {
            retry_after: retry_after(headers),
        }
    } else {
        Failure::Permanent
    };
    DeliveryError {
        failure,
        message: format!("{what} answered {status}"),
        status: Some(status.as_u16()),
        response: Some(excerpt(body)),
    }
}

/// Classifies an error of the HTTP client itself: always retryable (the request may not have
/// reached the destination, or its answer was lost).
pub fn transport_error(what: &str, err: reqwest::Error) -> DeliveryError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // A URL can be a credential (Slack webhooks, tokens in query strings): never print it.
    let err = err.without_url();
    let detail = error_chain(&err);
    DeliveryError::retryable(format!("{what} {kind}: {detail}"))
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Parses `Retry-After` as delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The first [`RESPONSE_EXCERPT_BYTES`] of a body, cut on a character boundary.
pub fn excerpt(body: &str) -> String {
    if body.len() <= RESPONSE_EXCERPT_BYTES {
        return body.to_owned();
    }
    let mut end = RESPONSE_EXCERPT_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let h = HeaderMap::new();
        for code in [408u16, 429, 500, 502, 503, 504] {
            let e = status_error("x", StatusCode::from_u16(code).unwrap(), &h, "");
            assert!(e.is_retryable(), "{code}");
        }
        assert_eq!(
            status_error("x", StatusCode::PAYLOAD_TOO_LARGE, &h, "").failure,
            Failure::TooLarge
        );
        for code in [400u16, 401, 403, 404, 410, 422] {
            let e = status_error("x", StatusCode::from_u16(code).unwrap(), &h, "no");
            assert!(!e.is_retryable(), "{code}");
            assert_eq!(e.status, Some(code));
            assert_eq!(e.response.as_deref(), Some("no"));
        }
    }

    #[test]
    fn reads_retry_after_in_both_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(30);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn excerpts_cut_on_char_boundaries() {
        let body = "é".repeat(400);
        let e = excerpt(&body);
        assert!(e.len() <= RESPONSE_EXCERPT_BYTES + '…'.len_utf8());
    }
}
