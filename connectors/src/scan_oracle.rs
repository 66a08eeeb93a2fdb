//! The scan against the `serde_json` deserialisation it replaced, on many mutated events: both
//! must accept and refuse the same texts and read the same fields (test only).
//!
//! The oracle below is that deserialisation as it was: a struct of the seven wanted fields,
//! each borrowed when it can be, the two ids taking numbers too, everything else ignored.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::scan::{self, Wanted};

/// The fields as the old validation pass read them.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "text")]
    event_type: Option<Cow<'a, str>>,
    #[serde(rename = "messageId", borrow, default, deserialize_with = "text")]
    message_id: Option<Cow<'a, str>>,
    #[serde(rename = "writeKey", borrow, default, deserialize_with = "text")]
    write_key: Option<Cow<'a, str>>,
    #[serde(rename = "userId", borrow, default, deserialize_with = "id_value")]
    user_id: Option<Cow<'a, str>>,
    #[serde(rename = "anonymousId", borrow, default, deserialize_with = "id_value")]
    anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    name: Option<Cow<'a, str>>,
}

/// A JSON string as text that borrows from the input when it has no escapes (serde's own
/// `Cow<str>` always copies inside an `Option`: five allocations per event); with `numbers`, a
/// JSON number is taken as its text too (ids).
struct Text {
    numbers: bool,
}

impl Text {
    fn number<'de, E: serde::de::Error>(
        &self,
        text: String,
        unexpected: serde::de::Unexpected<'_>,
    ) -> Result<Cow<'de, str>, E> {
        if self.numbers {
            Ok(Cow::Owned(text))
        } else {
            Err(E::invalid_type(unexpected, self))
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.numbers {
            "a string or a number"
        } else {
            "a string"
        })
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.number(v.to_string(), serde::de::Unexpected::Signed(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.number(v.to_string(), serde::de::Unexpected::Unsigned(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.number(v.to_string(), serde::de::Unexpected::Float(v))
    }
}

/// `null` or a [`Text`].
struct OptionalText(Text);

impl<'de> serde::de::Visitor<'de> for OptionalText {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0.numbers {
            d.deserialize_any(self.0).map(Some)
        } else {
            d.deserialize_str(self.0).map(Some)
        }
    }
}

/// A string field, borrowed when it can be.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_option(OptionalText(Text { numbers: false }))
}

/// Segment ids are strings, but some libraries send numbers; both identify a user.
fn id_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_option(OptionalText(Text { numbers: true }))
}

/// The oracle's reading of `text`: the seven fields in [`Wanted`] order, or its error.
fn oracle(text: &str) -> Result<[Option<String>; 7], String> {
    let h: Head<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok([
        h.event_type,
        h.message_id,
        h.write_key,
        h.user_id,
        h.anonymous_id,
        h.event,
        h.name,
    ]
    .map(|v| v.map(Cow::into_owned)))
}

/// The scan's reading of `text`, in the same shape.
fn scanned(text: &str) -> Result<[Option<String>; 7], String> {
    let mut h = scan::head(text).map_err(|e| e.to_string())?;
    Ok([
        Wanted::Type,
        Wanted::MessageId,
        Wanted::WriteKey,
        Wanted::UserId,
        Wanted::AnonymousId,
        Wanted::Event,
        Wanted::Name,
    ]
    .map(|k| h.take(k).map(Cow::into_owned)))
}

/// A small deterministic generator (xorshift64*): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

const SEEDS: [&str; 5] = [
    r#"{"type":"track","event":"Bid on item","messageId":"7f1c2a9e-3b4d","writeKey":"wk_042","userId":"user-18231","anonymousId":"anon-77aa21","timestamp":"2026-11-29T11:00:00.000Z","context":{"ip":"10.1.2.3","library":{"name":"analytics.js","version":"4.1.0"},"page":{"path":"/items/42"}},"properties":{"item_id":"sku-4412","price":129.5,"bid":120,"tags":["a","b"],"seen":true,"gift":null}}"#,
    r#"{ "type" : "identify", "messageId" : "m-1", "writeKey" : "wk", "userId" : 42, "traits" : { "name" : "Zo\u00eb \"Z\"", "age" : -3.5e+2, "nested" : [ [ ], { }, [ 1, [ 2 ] ] ] } }"#,
    r#"{"type":"page","name":"Caf\u00e9 \u2603 é","messageId":"m\n2","writeKey":"k","anonymousId":"a","properties":{"path":"/\u00e9\/x","n":0,"f":0.25E-3,"s":"\ud83d\ude00"}}"#,
    r#"{"type":"screen","name":null,"messageId":"m3","writeKey":"k","userId":null,"anonymousId":1.5,"context":{"\u0074ype":"x","a\nb":[false,true,null,{"k":"v"}]}}"#,
    r#"{"type":"group","messageId":"m4","writeKey":"k","userId":"u","groupId":"g","traits":{"employees":120,"plan":"pro","tags":[]}}"#,
];

/// Bytes a mutation inserts: JSON's structure, escapes, number and literal parts, a control
/// character, whitespace and a letter.
const ALPHABET: &[u8] = b"{}[]\":,\\ 0123456789-+.eEtrufalsnu\t\n\x01x/";

fn mutate(seed: &str, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            2 if at < bytes.len() => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
            _ => {
                let end = (at + rng.below(12)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, piece);
            }
        }
    }
    bytes
}

#[test]
fn the_scan_reads_what_serde_json_read() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..40_000 {
        let seed = SEEDS[round % SEEDS.len()];
        let bytes = if round < SEEDS.len() {
            seed.as_bytes().to_vec()
        } else {
            mutate(seed, &mut rng)
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let (want, got) = (oracle(text), scanned(text));
        match (&want, &got) {
            (Ok(want), Ok(got)) => {
                accepted += 1;
                let breaks = text.bytes().any(|b| b == b'\n' || b == b'\r');
                assert_eq!(
                    scan::head(text).map(|h| h.has_line_break()),
                    Ok(breaks),
                    "line breaks of {text:?}"
                );
                for (k, (w, g)) in want.iter().zip(got).enumerate() {
                    // A number id reads as its text here and as serde's rendering there.
                    let numeric = (k == 3 || k == 4)
                        && g.as_deref().is_some_and(|g| g.parse::<f64>().is_ok());
                    assert!(
                        w == g || (numeric && w.is_some()),
                        "field {k} of {text}: {w:?} against {g:?}"
                    );
                }
            }
            (Err(_), Err(_)) => refused += 1,
            _ => panic!("for {text:?}\nserde_json: {want:?}\nscan: {got:?}"),
        }
    }
    // Both sides of the comparison were exercised, many times.
    assert!(
        accepted > 5_000 && refused > 5_000,
        "{accepted} accepted, {refused} refused"
    );
}
