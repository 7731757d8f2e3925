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

pub mod container;
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

    /// Any JSON value, a few levels deep.
    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC{0,10}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Bounded fuzzing of ndjson decoding (issue #14): a line holding an object (and anything
        /// after it, which Filebeat ignores too) decodes to that object.
        #[test]
        fn an_object_line_decodes_to_its_object(
            obj in proptest::collection::btree_map("\\PC{0,8}", json(), 0..5),
            tail in "( |\\{|x|\\]|1){0,4}",
        ) {
            let want: Map<String, Value> = obj.into_iter().collect();
            let mut line = serde_json::to_vec(&want).unwrap();
            line.extend_from_slice(tail.as_bytes());
            match ndjson().decode(&line).decoded {
                Decoded::Object(m) => proptest::prop_assert_eq!(m, want),
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }

        /// Any bytes decode to an object or to the line itself with an error (never dropped,
        /// never a panic, also in the Go-worded error).
        #[test]
        fn any_line_is_kept(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let out = ndjson().decode(&line);
            proptest::prop_assert_eq!(out.invalid_utf8, std::str::from_utf8(&line).is_err());
            match out.decoded {
                Decoded::Object(_) => {}
                Decoded::Invalid { raw, error } => {
                    proptest::prop_assert_eq!(raw, String::from_utf8_lossy(&line));
                    proptest::prop_assert!(!error.is_empty());
                }
                Decoded::Plain(_) => proptest::prop_assert!(false, "ndjson never yields a plain line"),
            }
        }
    }
}
