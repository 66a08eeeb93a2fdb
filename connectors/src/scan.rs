//! The validating scan every consumed message takes: checks that a text is one JSON object and
//! reads the few top-level fields routing needs, in one pass, without building any value.
//!
//! It replaced a `serde_json` deserialisation of the same fields: `Event::parse` of a typical
//! 682-byte event took ~520 ns with it and ~365 ns with the scan
//! (`connectors/examples/parse_timing.rs`; bench/RESULTS.md). The scan looks at string bytes
//! sixteen at a time in a vector register (eight at a time in a word where fewer than sixteen
//! are left; the vector step took `Event::parse` from ~7,800 to ~6,500 instructions per event,
//! callgrind) and matches keys without serde's visitor layers.
//!
//! Invariants:
//! - it accepts exactly the objects `serde_json` accepts (RFC 8259: string escapes, no control
//!   characters in strings, the number grammar, no trailing commas or characters), nested up
//!   to [`MAX_DEPTH`] containers; a differential test (`scan_oracle.rs`) holds it to that;
//! - the input is already valid UTF-8 (a `&str`), so multi-byte characters need no checks;
//! - a wanted field is a string (or, for the two ids, a number) or `null`, which reads as
//!   absent; any other type, or a wanted key given twice, is an error;
//! - a value borrows from the text unless its JSON string has escapes: then it is unescaped
//!   (by `serde_json`, which also refuses lone surrogates) into an owned string;
//! - it never recurses (an explicit stack of open containers), so no input can overflow the
//!   thread's stack;
//! - [`Head::has_line_break`] is exact: JSON allows a line break (LF or CR) only as whitespace
//!   between tokens (in a string it must be escaped), and all such whitespace passes through
//!   one function that notes it.

use std::borrow::Cow;
use std::fmt;

/// Containers nested deeper than this are refused (`serde_json` builds values up to 128 deep;
/// forwarders send the bytes as they are, so the scan allows more).
pub(crate) const MAX_DEPTH: usize = 1024;

/// The top-level fields the scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// `type`
    Type,
    /// `messageId`
    MessageId,
    /// `writeKey`
    WriteKey,
    /// `userId` (a string or a number)
    UserId,
    /// `anonymousId` (a string or a number)
    AnonymousId,
    /// `event`
    Event,
    /// `name`
    Name,
}

impl Wanted {
    fn of(key: &str) -> Option<Wanted> {
        Some(match key {
            "type" => Wanted::Type,
            "messageId" => Wanted::MessageId,
            "writeKey" => Wanted::WriteKey,
            "userId" => Wanted::UserId,
            "anonymousId" => Wanted::AnonymousId,
            "event" => Wanted::Event,
            "name" => Wanted::Name,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Wanted::Type => "type",
            Wanted::MessageId => "messageId",
            Wanted::WriteKey => "writeKey",
            Wanted::UserId => "userId",
            Wanted::AnonymousId => "anonymousId",
            Wanted::Event => "event",
            Wanted::Name => "name",
        }
    }

    /// Segment ids are strings, but some libraries send numbers; both identify a user.
    fn takes_numbers(self) -> bool {
        matches!(self, Wanted::UserId | Wanted::AnonymousId)
    }
}

/// The wanted fields of one object; absent and `null` ones are `None`.
#[derive(Debug, Default)]
pub(crate) struct Head<'a> {
    values: [Option<Cow<'a, str>>; 7],
    seen: u8,
    line_break: bool,
}

impl<'a> Head<'a> {
    /// Whether the text holds a line feed or carriage return byte.
    pub(crate) fn has_line_break(&self) -> bool {
        self.line_break
    }

    /// Takes the value of `key`, if the object had one.
    pub(crate) fn take(&mut self, key: Wanted) -> Option<Cow<'a, str>> {
        self.values[key as usize].take()
    }
}

/// Why a text is not a JSON object: what was wrong and the byte offset where the scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
    what: Cow<'static, str>,
    at: usize,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

type Scan<T> = Result<T, ScanError>;

/// Scans `text`, which must be exactly one JSON object (whitespace around it allowed).
// Kept out of line, as is `skip`: inlined into `Event::parse`, the pass took ~515 ns, not ~365.
#[inline(never)]
pub(crate) fn head(text: &str) -> Scan<Head<'_>> {
    Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        line_break: false,
    }
    .head()
}

/// A JSON string's content, between its quotes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

/// Containers open in one [`Scanner::skip`], innermost last: whether each is an object. The
/// first 64 levels are bits of one word; deeper ones (rare) spill into a vector.
#[derive(Default)]
struct Nesting {
    low: u64,
    deep: Vec<bool>,
    depth: usize,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            let bit = 1 << self.depth;
            self.low = if object {
                self.low | bit
            } else {
                self.low & !bit
            };
        } else {
            self.deep.push(object);
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 {
            self.deep.pop();
        }
    }

    /// Whether the innermost open container is an object; `None` when none is open.
    fn top(&self) -> Option<bool> {
        let top = self.depth.checked_sub(1)?;
        Some(match self.deep.last() {
            Some(&object) if top >= 64 => object,
            _ => self.low & (1 << top) != 0,
        })
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Whether whitespace so far held a line break.
    line_break: bool,
}

/// The first byte at or after `at` that ends a run of plain string bytes: a quote, a backslash
/// or a control character (`bytes.len()` if none). Sixteen bytes at a time in one vector
/// register (SSE2 on every x86-64 CPU, NEON on aarch64, through `wide`'s safe API), then eight
/// at a time with the word trick of [`string_stop_words`].
#[inline]
fn string_stop(bytes: &[u8], mut at: usize) -> usize {
    use wide::u8x16;
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let control = u8x16::splat(0x1F);
    while let Some(chunk) = bytes.get(at..at + 16) {
        let x = u8x16::new(chunk.try_into().unwrap_or_default());
        // A byte of at most 0x1F is the only kind whose maximum with 0x1F is 0x1F.
        let hits = x.simd_eq(quote) | x.simd_eq(backslash) | x.max(control).simd_eq(control);
        let mask = hits.to_bitmask();
        if mask != 0 {
            return at + mask.trailing_zeros() as usize;
        }
        at += 16;
    }
    string_stop_words(bytes, at)
}

/// [`string_stop`] eight bytes at a time, with the classic "has a zero byte" bit trick on each
/// of the three tests; the last few bytes one at a time.
#[inline]
fn string_stop_words(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte below 0x20 borrows when 0x20 is taken from it; a byte of 0x80 or more has its
        // high bit set already, which `!x` masks out.
        let hits = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | x.wrapping_sub(ONES * 0x20) & !x)
            & HIGH;
        if hits != 0 {
            // The lowest flagged byte is exact; borrows only spill into higher ones.
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < bytes.len() && !matches!(bytes[at], b'"' | b'\\' | 0..=0x1F) {
        at += 1;
    }
    at
}

impl<'a> Scanner<'a> {
    fn fail<T>(&self, what: &'static str) -> Scan<T> {
        Err(ScanError {
            what: Cow::Borrowed(what),
            at: self.at,
        })
    }

    #[inline]
    fn peek(&self) -> u8 {
        self.bytes.get(self.at).copied().unwrap_or(0)
    }

    #[inline]
    fn whitespace(&mut self) {
        // Most calls find no whitespace: that test stays one pattern (matching line breaks
        // as an arm of their own cost ~2% more instructions per event; callgrind).
        if self.peek() > b' ' {
            return;
        }
        while let Some(&byte @ (b' ' | b'\n' | b'\r' | b'\t')) = self.bytes.get(self.at) {
            self.line_break |= matches!(byte, b'\n' | b'\r');
            self.at += 1;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8, what: &'static str) -> Scan<()> {
        self.whitespace();
        if self.peek() != byte {
            return self.fail(what);
        }
        self.at += 1;
        Ok(())
    }

    /// The rest of a string whose opening quote was just read.
    #[inline(always)]
    fn string(&mut self) -> Scan<Span> {
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at = string_stop(self.bytes, self.at);
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Span {
                        start,
                        end: self.at - 1,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.at += 1;
                    match self.peek() {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.at + 1..self.at + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.fail("invalid \\u escape");
                            }
                            self.at += 5;
                        }
                        _ => return self.fail("invalid escape"),
                    }
                }
                Some(_) => return self.fail("control character in a string"),
                None => return self.fail("unterminated string"),
            }
        }
    }

    /// An object's key and its colon.
    #[inline(always)]
    fn key(&mut self) -> Scan<Span> {
        self.expect(b'"', "expected a key")?;
        let key = self.string()?;
        self.expect(b':', "expected `:`")?;
        Ok(key)
    }

    fn digits(&mut self) -> usize {
        let from = self.at;
        while self.peek().is_ascii_digit() {
            self.at += 1;
        }
        self.at - from
    }

    fn number(&mut self) -> Scan<()> {
        if self.peek() == b'-' {
            self.at += 1;
        }
        match self.peek() {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return self.fail("invalid number"),
        }
        if self.peek() == b'.' {
            self.at += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if matches!(self.peek(), b'e' | b'E') {
            self.at += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if !self.bytes[self.at..].starts_with(word) {
            return self.fail("expected a value");
        }
        self.at += word.len();
        Ok(())
    }

    /// One value of the top-level object, and everything nested in it.
    #[inline(never)]
    fn skip(&mut self) -> Scan<()> {
        let mut open = Nesting::default();
        loop {
            self.whitespace();
            let mut complete = match self.peek() {
                b'"' => {
                    self.at += 1;
                    self.string()?;
                    true
                }
                opening @ (b'{' | b'[') => {
                    let object = opening == b'{';
                    self.at += 1;
                    // The top-level object is one level already.
                    if open.depth + 2 > MAX_DEPTH {
                        return self.fail("nested too deep");
                    }
                    self.whitespace();
                    if self.peek() == if object { b'}' } else { b']' } {
                        self.at += 1;
                        true
                    } else {
                        open.push(object);
                        if object {
                            self.key()?;
                        }
                        false
                    }
                }
                b't' => self.literal(b"true").map(|()| true)?,
                b'f' => self.literal(b"false").map(|()| true)?,
                b'n' => self.literal(b"null").map(|()| true)?,
                b'-' | b'0'..=b'9' => self.number().map(|()| true)?,
                _ => return self.fail("expected a value"),
            };
            // A complete value: close what it completes, up to the next one expected.
            while complete {
                let Some(object) = open.top() else {
                    return Ok(());
                };
                self.whitespace();
                match self.peek() {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.key()?;
                        }
                        complete = false;
                    }
                    b'}' if object => {
                        self.at += 1;
                        open.pop();
                    }
                    b']' if !object => {
                        self.at += 1;
                        open.pop();
                    }
                    _ if object => return self.fail("expected `,` or `}`"),
                    _ => return self.fail("expected `,` or `]`"),
                }
            }
        }
    }

    /// The text of a string: borrowed, or unescaped when it has escapes.
    fn text_of(&self, span: Span) -> Scan<Cow<'a, str>> {
        if !span.escaped {
            return Ok(Cow::Borrowed(&self.text[span.start..span.end]));
        }
        // With its quotes: a JSON string. The rare path, so `serde_json` unescapes it.
        serde_json::from_str(&self.text[span.start - 1..=span.end])
            .map(Cow::Owned)
            .map_err(|e| ScanError {
                what: Cow::Owned(e.to_string()),
                at: span.start,
            })
    }

    /// A wanted field's value: a string, a number where the key takes one, or `null`.
    fn wanted(&mut self, key: Wanted) -> Scan<Option<Cow<'a, str>>> {
        self.whitespace();
        let start = self.at;
        match self.peek() {
            b'"' => {
                self.at += 1;
                let span = self.string()?;
                self.text_of(span).map(Some)
            }
            b'n' => self.literal(b"null").map(|()| None),
            b'-' | b'0'..=b'9' if key.takes_numbers() => {
                self.number()?;
                Ok(Some(Cow::Borrowed(&self.text[start..self.at])))
            }
            _ => Err(ScanError {
                what: Cow::Owned(format!(
                    "invalid type for `{}`: expected a string{}",
                    key.name(),
                    if key.takes_numbers() {
                        " or a number"
                    } else {
                        ""
                    }
                )),
                at: start,
            }),
        }
    }

    fn head(mut self) -> Scan<Head<'a>> {
        let mut head = Head::default();
        self.expect(b'{', "expected an object")?;
        self.whitespace();
        if self.peek() == b'}' {
            self.at += 1;
        } else {
            loop {
                let span = self.key()?;
                let key = if span.escaped {
                    Wanted::of(&self.text_of(span)?)
                } else {
                    Wanted::of(&self.text[span.start..span.end])
                };
                match key {
                    None => self.skip()?,
                    Some(key) => {
                        let bit = 1 << key as u8;
                        if head.seen & bit != 0 {
                            return Err(ScanError {
                                what: Cow::Owned(format!("duplicate field `{}`", key.name())),
                                at: span.start,
                            });
                        }
                        head.seen |= bit;
                        head.values[key as usize] = self.wanted(key)?;
                    }
                }
                self.whitespace();
                match self.peek() {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return self.fail("expected `,` or `}`"),
                }
            }
        }
        self.whitespace();
        if self.at != self.bytes.len() {
            return self.fail("trailing characters");
        }
        head.line_break = self.line_break;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> bool {
        head(text).is_ok()
    }

    #[test]
    fn reads_the_wanted_fields_and_borrows_them() {
        let text =
            r#" { "type" : "track", "x": [1, {"y": null}], "userId": 42, "event": "B\u00e9" } "#;
        let mut h = head(text).unwrap();
        assert!(matches!(h.take(Wanted::Type), Some(Cow::Borrowed("track"))));
        assert!(matches!(h.take(Wanted::UserId), Some(Cow::Borrowed("42"))));
        assert_eq!(h.take(Wanted::Event).as_deref(), Some("B\u{e9}"));
        assert_eq!(h.take(Wanted::Name), None);
    }

    #[test]
    fn finds_the_stop_byte_in_every_position() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1F] {
                let mut bytes = vec![b'a'; len];
                bytes.push(stop);
                bytes.extend_from_slice(b"\"\\\x01");
                assert_eq!(string_stop(&bytes, 0), len, "stop {stop:#x} after {len}");
                assert_eq!(
                    string_stop_words(&bytes, 0),
                    len,
                    "stop {stop:#x} after {len}"
                );
            }
            // High bytes (UTF-8) and 0x20, 0x7F are plain.
            let plain: Vec<u8> = (0..len).map(|i| [0x20, 0x7F, 0xC3, 0xA9][i % 4]).collect();
            assert_eq!(string_stop(&plain, 0), len);
            assert_eq!(string_stop_words(&plain, 0), len);
        }
    }

    #[test]
    fn refuses_what_json_refuses() {
        for bad in [
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":"open}"#,
            r#"{"a":{}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{"a":{"b":1,"c"}}"#,
            r#"{'a':1}"#,
            r#"{"type":1}"#,
            r#"{"type":"a","type":"b"}"#,
            r#"{"userId":true}"#,
        ] {
            assert!(!ok(bad), "accepted {bad}");
        }
        for good in [
            "{}",
            " {\n\t\"a\" : [ ] , \"b\":{ } }\r\n",
            r#"{"a":-0.5e+10,"b":[true,false,null],"c":"\"\\\/\b\f\n\r\t\u00FF"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"userId":-1.5E3,"type":null}"#,
        ] {
            assert!(ok(good), "refused {good}");
        }
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(ok(&deep(MAX_DEPTH - 1)));
        let err = head(&deep(MAX_DEPTH)).unwrap_err();
        assert_eq!(err.what, "nested too deep");
        assert!(head(&deep(100_000)).is_err());
    }
}
