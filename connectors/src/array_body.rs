//! A request body that is a batch's original event bytes in a JSON array, streamed to the
//! connection in chunks instead of assembled whole.
//!
//! Assembled whole, a body is a second copy of its batch (the runtime holds the events until
//! the destination answers) that lives for the whole round trip: with 100 webhook
//! destinations sending four 350 KB batches at once, ~14 MB at the peak of the `mix`
//! benchmark (heap profile in `bench/RESULTS.md`). Streamed, a chunk of `CHUNK_BYTES` is
//! built when the connection asks for it and freed once written.
//!
//! Invariants: the bytes are `prefix`, the events' original bytes joined by commas, then
//! `suffix` (nothing is re-serialised); the body reports its exact length, so the request
//! carries `Content-Length` and never chunked transfer encoding; [`ArrayBody::pieces`] yields
//! the same bytes for signing. A streamed body cannot be replayed, so the client does not
//! follow redirects for it: connectors send it with
//! [`http::send_following`](crate::http::send_following), which does.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::event::Event;

/// A chunk is at least this long (or the rest of the body): large enough that the
/// connection's vectored writes take a body in a few system calls.
const CHUNK_BYTES: usize = 64 * 1024;

/// `prefix [e1,e2,...] suffix` over a batch's events, as an HTTP body.
#[derive(Debug)]
pub struct ArrayBody {
    events: Vec<Arc<Event>>,
    prefix: &'static [u8],
    suffix: &'static [u8],
    /// The next event to write.
    next: usize,
    /// Whether the prefix has been written.
    opened: bool,
    /// Bytes not written yet.
    remaining: usize,
}

impl ArrayBody {
    /// The body `prefix[e1,e2,...]suffix` over `events` (`prefix` and `suffix` include the
    /// brackets: `b"["` and `b"]"` for a bare array).
    pub fn new(events: &[Arc<Event>], prefix: &'static [u8], suffix: &'static [u8]) -> Self {
        let commas = events.len().saturating_sub(1);
        let raw: usize = events.iter().map(|e| e.raw().len()).sum();
        ArrayBody {
            events: events.to_vec(),
            prefix,
            suffix,
            next: 0,
            opened: false,
            remaining: prefix.len() + raw + commas + suffix.len(),
        }
    }

    /// Every byte of the body in order, as slices (for a signature over the body).
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let events = self.events.iter().enumerate().flat_map(|(i, e)| {
            let comma: &[u8] = if i > 0 { b"," } else { b"" };
            [comma, &e.raw()[..]]
        });
        std::iter::once(self.prefix)
            .chain(events)
            .chain(std::iter::once(self.suffix))
    }

    /// The next chunk: whole events from `next` until at least [`CHUNK_BYTES`], allocated at
    /// its exact size.
    fn chunk(&mut self) -> Bytes {
        let mut len = if self.opened { 0 } else { self.prefix.len() };
        let mut end = self.next;
        while end < self.events.len() && len < CHUNK_BYTES {
            len += usize::from(end > 0) + self.events[end].raw().len();
            end += 1;
        }
        let last = end == self.events.len();
        if last {
            len += self.suffix.len();
        }
        let mut out = Vec::with_capacity(len);
        if !self.opened {
            out.extend_from_slice(self.prefix);
            self.opened = true;
        }
        for i in self.next..end {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.events[i].raw());
        }
        if last {
            out.extend_from_slice(self.suffix);
            // The events are written: let them go with the rest of the batch.
            self.events = Vec::new();
            self.next = 0;
        } else {
            self.next = end;
        }
        self.remaining -= out.len();
        Bytes::from(out)
    }
}

impl Body for ArrayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(this.chunk()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining as u64)
    }
}

impl From<ArrayBody> for reqwest::Body {
    fn from(body: ArrayBody) -> reqwest::Body {
        reqwest::Body::wrap(body)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use http_body_util::BodyExt;

    use super::*;

    fn event(id: &str, pad: usize) -> Arc<Event> {
        let raw = format!(
            r#"{{"type":"track","event":"e","messageId":"{id}","writeKey":"k","userId":"u","properties":{{"p":"{}"}}}}"#,
            "x".repeat(pad)
        );
        Arc::new(Event::parse(Bytes::from(raw), 1 << 20).unwrap())
    }

    /// The streamed bytes, the chunk lengths, and the length the body announced.
    fn stream(body: ArrayBody) -> (Vec<u8>, Vec<usize>, u64) {
        let announced = body.size_hint().exact().unwrap();
        let mut body = Box::pin(body);
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        while let Some(frame) = block_on(body.frame()) {
            let data = frame.unwrap().into_data().unwrap();
            chunks.push(data.len());
            out.extend_from_slice(&data);
        }
        assert!(body.is_end_stream());
        (out, chunks, announced)
    }

    #[test]
    fn streams_the_same_bytes_as_the_assembled_array_in_bounded_chunks() {
        for (n, pad) in [(0, 0), (1, 10), (3, 10), (500, 700), (40, 20_000)] {
            let events: Vec<_> = (0..n).map(|i| event(&i.to_string(), pad)).collect();
            let raw: Vec<&[u8]> = events.iter().map(|e| &e.raw()[..]).collect();
            let whole = [&b"{\"batch\":["[..], &raw.join(&b","[..]), b"]}"].concat();

            let body = ArrayBody::new(&events, b"{\"batch\":[", b"]}");
            assert_eq!(body.size_hint().exact(), Some(whole.len() as u64));
            let signed: Vec<u8> = body.pieces().flatten().copied().collect();
            assert_eq!(signed, whole, "pieces of {n} events");
            let (streamed, chunks, announced) = stream(body);
            assert_eq!(streamed, whole, "stream of {n} events");
            assert_eq!(announced, whole.len() as u64);
            // Every chunk but the last holds at least CHUNK_BYTES, and at most one event more.
            let (last, full) = chunks.split_last().unwrap();
            assert!(*last > 0);
            for c in full {
                assert!(
                    (CHUNK_BYTES..CHUNK_BYTES + 21_000).contains(c),
                    "chunk of {c}"
                );
            }
        }
    }
}
