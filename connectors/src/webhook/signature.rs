//! The `X-Courier-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"`, keyed by the destination's secret.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "X-Courier-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac<'a>(secret: &[u8], timestamp: u64, body: impl IntoIterator<Item = &'a [u8]>) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    for piece in body {
        mac.update(piece);
    }
    mac
}

/// The header value for `body` signed at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    sign_pieces(secret, timestamp, [body])
}

/// [`sign`] for a body that is `pieces` one after another (a streamed body).
pub fn sign_pieces<'a>(
    secret: &[u8],
    timestamp: u64,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> String {
    let digest = mac(secret, timestamp, pieces).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<digits>,v1=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further than the tolerance from `now`.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// The HMAC does not match the body.
    #[error("signature does not match the body")]
    Mismatch,
}

/// Verifies a header value against `body`, with `now` in unix seconds and a replay tolerance.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut digest = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<u64>().ok(),
            Some(("v1", v)) => digest = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(digest)) = (timestamp, digest) else {
        return Err(VerifyError::Malformed);
    };
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    mac(secret, timestamp, [body])
        .verify_slice(&digest)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let h = sign(b"s3cret", 1_700_000_000, b"[{}]");
        assert!(h.starts_with("t=1700000000,v1="));
        let tol = Duration::from_secs(300);
        assert_eq!(verify(b"s3cret", &h, b"[{}]", 1_700_000_100, tol), Ok(()));
        assert_eq!(
            verify(b"s3cret", &h, b"[{ }]", 1_700_000_100, tol),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &h, b"[{}]", 1_700_000_100, tol),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", &h, b"[{}]", 1_700_001_000, tol),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"s3cret", "v1=zz", b"", 0, tol),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn matches_an_independent_computation() {
        // HMAC-SHA256(key="key", "1.body") computed with `printf 1.body | openssl dgst -sha256 -hmac key`.
        let h = sign(b"key", 1, b"body");
        assert_eq!(
            h,
            "t=1,v1=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }
}
