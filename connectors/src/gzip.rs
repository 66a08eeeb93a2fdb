//! Gzip bodies with a deflate state reused per thread.
//!
//! A new deflate state is some 300 KB of zeroed tables and buffers; an archive writes one
//! small object per lane cut, so allocating and zeroing a state per object cost more than
//! compressing the events in it. [`gzip`] keeps one state per thread, resets it per body
//! (`deflateReset`: the hash table is cleared, nothing is allocated) and writes the gzip header
//! and trailer around the raw deflate stream itself (RFC 1952: fixed 10-byte header, CRC-32 and
//! length of the input at the end).
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

thread_local! {
    static ENCODER: RefCell<Option<DeflateEncoder<Vec<u8>>>> = const { RefCell::new(None) };
}

/// The input side of one gzip body being written.
pub(crate) struct Gzip {
    deflate: DeflateEncoder<Vec<u8>>,
    crc: Crc,
}

impl Gzip {
    /// Compresses `bytes` into the body.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
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
    let deflate = match reused {
        Some(mut encoder) => {
            // Resetting swaps in the new output and clears the state; what it returns is
            // the previous body's (empty) leftover.
            let _ = encoder.reset(out);
            encoder
        }
        None => DeflateEncoder::new(out, Compression::fast()),
    };
    let mut body = Gzip {
        deflate,
        crc: Crc::new(),
    };
    fill(&mut body);
    let Gzip { mut deflate, crc } = body;
    let _ = deflate.try_finish();
    let mut out = deflate.reset(Vec::new()).unwrap_or_default();
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    ENCODER.with(|cell| *cell.borrow_mut() = Some(deflate));
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
