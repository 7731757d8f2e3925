//! Decoding one line into what the event will carry: the line itself (plain), or a JSON object
//! (ndjson), or the raw line with the reason it could not be decoded.
//!
//! Invariant: decoding never drops a line. Invalid UTF-8 is replaced (and reported to the caller so
//! it is counted); invalid JSON becomes [`Decoded::Invalid`], which the encoder still ships.
//!
//! The steps before and after it live in the submodules: [`encoding`] (file bytes to UTF-8),
//! [`multiline`] (lines joined into one event) and [`filter`] (include/exclude_lines);
//! [`gojson`] words a decoding failure as Filebeat does.
//!
//! An ndjson line is read as Filebeat's decoder reads it: the first JSON value of the line counts
//! (anything after it is ignored), and only an object is a document.

pub mod encoding;
pub mod filter;
pub mod gojson;
pub mod multiline;

use crate::config::{InputConfig, NdjsonConfig};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// How an input's lines are decoded; resolved once from its `parsers` list.
#[derive(Debug, Clone)]
pub enum Decoder {
    Plain,
    Ndjson(NdjsonConfig),
}

impl Decoder {
    pub fn for_input(input: &InputConfig) -> Decoder {
        match input.ndjson() {
            Some(cfg) => Decoder::Ndjson(cfg.clone()),
            None => Decoder::Plain,
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Decoded<'a> {
    /// A plain line, as text (invalid UTF-8 replaced by U+FFFD).
    Plain(Cow<'a, str>),
    /// A JSON line decoded into an object.
    Object(Map<String, Value>),
    /// A line that should have been JSON and is not.
    Invalid { raw: Cow<'a, str>, error: String },
}

/// Result of decoding one line.
pub struct DecodeOutcome<'a> {
    pub decoded: Decoded<'a>,
    /// The line was not valid UTF-8 (bytes were replaced).
    pub invalid_utf8: bool,
}

impl Decoder {
    /// The text include/exclude_lines look at: the line, or a JSON event's message
    /// (`message_key`'s value, else its `message` string).
    pub fn message<'d>(&self, decoded: &'d Decoded<'_>) -> Option<&'d str> {
        match (decoded, self) {
            (Decoded::Plain(s), _) | (Decoded::Invalid { raw: s, .. }, _) => Some(s),
            (Decoded::Object(m), Decoder::Ndjson(cfg)) => {
                m.get(cfg.message_key.as_deref().unwrap_or("message")).and_then(Value::as_str)
            }
            (Decoded::Object(_), Decoder::Plain) => None,
        }
    }

    pub fn decode<'a>(&self, line: &'a [u8]) -> DecodeOutcome<'a> {
        let (text, invalid_utf8) = match std::str::from_utf8(line) {
            Ok(s) => (Cow::Borrowed(s), false),
            Err(_) => (String::from_utf8_lossy(line), true),
        };
        let decoded = match self {
            Decoder::Plain => Decoded::Plain(text),
            Decoder::Ndjson(_) => match serde_json::Deserializer::from_str(&text).into_iter::<Value>().next() {
                Some(Ok(Value::Object(map))) => Decoded::Object(map),
                _ => {
                    let error = gojson::decode_error(line).unwrap_or_else(|| "not a JSON object".into());
                    Decoded::Invalid { raw: text, error }
                }
            },
        };
        DecodeOutcome { decoded, invalid_utf8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson() -> Decoder {
        Decoder::Ndjson(NdjsonConfig::default())
    }

    #[test]
    fn plain_lines_pass_through_and_invalid_utf8_is_flagged() {
        let out = Decoder::Plain.decode(b"hello");
        assert_eq!(out.decoded, Decoded::Plain(Cow::Borrowed("hello")));
        assert!(!out.invalid_utf8);
        let out = Decoder::Plain.decode(b"bad \xff byte");
        assert!(out.invalid_utf8);
        assert_eq!(out.decoded, Decoded::Plain(Cow::Owned("bad \u{fffd} byte".into())));
    }

    #[test]
    fn json_objects_decode() {
        match ndjson().decode(br#"{"level":"info","n":3}"#).decoded {
            Decoded::Object(m) => {
                assert_eq!(m["level"], "info");
                assert_eq!(m["n"], 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_json_and_non_objects_keep_the_raw_line() {
        match ndjson().decode(b"{not json").decoded {
            Decoded::Invalid { raw, error } => {
                assert_eq!(raw, "{not json");
                assert!(!error.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match ndjson().decode(b"[1,2]").decoded {
            Decoded::Invalid { error, .. } => assert!(error.contains("cannot unmarshal array"), "{error}"),
            other => panic!("{other:?}"),
        }
    }
}
