//! Gzip bodies with a deflate state reused per thread.
//!
//! A new deflate state is some 300 KB of zeroed tables and buffers; an archive writes one
//! small object per lane cut, so allocating and zeroing a state per object cost more than
//! compressing the events in it. [`gzip`] keeps one state per thread, resets it per body
//! (`deflateReset`: the hash table is cleared, nothing is allocated) and writes the gzip header
//! and trailer around the raw deflate stream itself (RFC 1952: fixed 10-byte header, CRC-32 and
//! length of the input at the end).
//!
//! Small writes (an archive writes each event and then its line break) are gathered into a
//! staging buffer of [`STAGE`] bytes and compressed a buffer at a time: every call into the
//! compressor and the CRC has a fixed cost, and two calls per event of ~700 bytes were ~1
//! million calls per 500,000 events.
//!
//! Invariant: the output is one complete gzip member at `Compression::fast()` (what
//! `GzEncoder` wrote before), whatever a previous body on the thread left behind; a body that
//! panics halfway leaves no state behind (the state is taken out while in use).

use std::cell::RefCell;
use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

/// The gzip header: magic, deflate, no flags, no modification time, no extra flags, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Bytes gathered before they are compressed.
const STAGE: usize = 64 * 1024;

/// A thread's reused compressor and staging buffer.
struct Reused {
    deflate: DeflateEncoder<Vec<u8>>,
    staged: Vec<u8>,
}

thread_local! {
    static ENCODER: RefCell<Option<Reused>> = const { RefCell::new(None) };
}

/// The input side of one gzip body being written.
pub(crate) struct Gzip {
    deflate: DeflateEncoder<Vec<u8>>,
    crc: Crc,
    staged: Vec<u8>,
}

impl Gzip {
    /// Adds `bytes` to the body.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if self.staged.len() + bytes.len() > STAGE {
            self.compress_staged();
        }
        if bytes.len() >= STAGE {
            self.compress(bytes);
        } else {
            self.staged.extend_from_slice(bytes);
        }
    }

    fn compress_staged(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        self.compress(&staged);
        self.staged = staged;
        self.staged.clear();
    }

    fn compress(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        // Writing into a Vec cannot fail.
        let _ = self.deflate.write_all(bytes);
    }
}

/// One gzip member of what `fill` writes; `capacity` is a guess of the compressed size.
pub(crate) fn gzip(capacity: usize, fill: impl FnOnce(&mut Gzip)) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity.max(64));
    out.extend_from_slice(&HEADER);
    let reused = ENCODER.with(|cell| cell.borrow_mut().take());
    let (deflate, mut staged) = match reused {
        Some(Reused {
            deflate: mut encoder,
            staged,
        }) => {
            // Resetting swaps in the new output and clears the state; what it returns is
            // the previous body's (empty) leftover.
            let _ = encoder.reset(out);
            (encoder, staged)
        }
        None => (
            DeflateEncoder::new(out, Compression::fast()),
            Vec::with_capacity(STAGE),
        ),
    };
    staged.clear();
    let mut body = Gzip {
        deflate,
        crc: Crc::new(),
        staged,
    };
    fill(&mut body);
    body.compress_staged();
    let Gzip {
        mut deflate,
        crc,
        staged,
    } = body;
    let _ = deflate.try_finish();
    let mut out = deflate.reset(Vec::new()).unwrap_or_default();
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    ENCODER.with(|cell| *cell.borrow_mut() = Some(Reused { deflate, staged }));
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn bodies_on_one_thread_are_each_complete() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let first = gzip(0, |gz| {
            gz.write(&big[..100_000]);
            gz.write(&big[100_000..]);
        });
        // Small writes staged and large ones around them, in their order.
        let mixed = gzip(0, |gz| {
            for chunk in big[..300_000].chunks(701) {
                gz.write(chunk);
            }
            gz.write(&big[300_000..700_000]);
            gz.write(&big[700_000..700_001]);
            gz.write(&big[700_001..]);
        });
        assert_eq!(gunzip(&mixed), big);
        let second = gzip(16, |gz| gz.write(b"{\"a\":1}\n"));
        let empty = gzip(0, |_| {});
        assert_eq!(gunzip(&first), big);
        assert_eq!(gunzip(&second), b"{\"a\":1}\n");
        assert_eq!(gunzip(&empty), b"");
        // The same input gives the same bytes from a reused state as from a new one.
        let fresh = std::thread::spawn(|| gzip(0, |gz| gz.write(b"{\"a\":1}\n")))
            .join()
            .expect("thread");
        assert_eq!(fresh, second);
    }
}
