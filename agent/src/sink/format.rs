//! Turns one consumed record value into the line a sink appends (see [`SinkFormat`]).
//!
//! Pure code over bytes. Invariant: every non-null record produces exactly one line ending in
//! `\n` (its content may hold newlines of its own, as Kafka Connect writes them); a value that is
//! not in the expected format is written as it is and reported, never dropped.

use crate::config::SinkFormat;
use serde_json::Value;

/// What [`append_line`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written as the format says.
    Line,
    /// Not in the format: its value was written as it is.
    Undecodable,
    /// A null value (tombstone): nothing written.
    Skipped,
}

/// Appends the line for a record with value `value` to `out`.
pub fn append_line(format: SinkFormat, value: Option<&[u8]>, out: &mut Vec<u8>) -> Appended {
    let Some(value) = value else {
        return Appended::Skipped;
    };
    let outcome = match format {
        SinkFormat::Value => {
            out.extend_from_slice(value);
            Appended::Line
        }
        SinkFormat::Message => match serde_json::from_slice::<Value>(value) {
            Ok(Value::Object(mut m)) => match m.remove("message") {
                Some(Value::String(s)) => push_text(out, &s),
                _ => push_raw(out, value),
            },
            _ => push_raw(out, value),
        },
        SinkFormat::ConnectJson => match serde_json::from_slice::<Value>(value) {
            // JsonConverter with schemas.enable=true accepts exactly this envelope.
            Ok(Value::Object(mut m)) if m.len() == 2 && m.contains_key("schema") => match m.remove("payload") {
                Some(Value::Null) => return Appended::Skipped,
                Some(p) => push_json(out, p),
                None => push_raw(out, value),
            },
            _ => push_raw(out, value),
        },
        SinkFormat::ConnectJsonSchemaless => match serde_json::from_slice::<Value>(value) {
            Ok(Value::Null) => return Appended::Skipped,
            Ok(v) => push_json(out, v),
            Err(_) => push_raw(out, value),
        },
    };
    out.push(b'\n');
    outcome
}

/// A JSON string is written as its text; any other JSON value as compact JSON.
fn push_json(out: &mut Vec<u8>, v: Value) -> Appended {
    match v {
        Value::String(s) => push_text(out, &s),
        other => {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &other);
            Appended::Line
        }
    }
}

fn push_text(out: &mut Vec<u8>, s: &str) -> Appended {
    out.extend_from_slice(s.as_bytes());
    Appended::Line
}

fn push_raw(out: &mut Vec<u8>, value: &[u8]) -> Appended {
    out.extend_from_slice(value);
    Appended::Undecodable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: SinkFormat, value: &[u8]) -> (String, Appended) {
        let mut out = Vec::new();
        let a = append_line(format, Some(value), &mut out);
        (String::from_utf8(out).unwrap(), a)
    }

    #[test]
    fn value_is_written_as_it_is() {
        assert_eq!(line(SinkFormat::Value, b"a {\"b\"} c"), ("a {\"b\"} c\n".into(), Appended::Line));
    }

    #[test]
    fn message_of_an_agent_event() {
        let ev = br#"{"@timestamp":"x","message":"hello \"you\"","log":{"offset":0}}"#;
        assert_eq!(line(SinkFormat::Message, ev), ("hello \"you\"\n".into(), Appended::Line));
        assert_eq!(line(SinkFormat::Message, b"not json"), ("not json\n".into(), Appended::Undecodable));
        assert_eq!(line(SinkFormat::Message, br#"{"msg":"x"}"#), ("{\"msg\":\"x\"}\n".into(), Appended::Undecodable));
    }

    #[test]
    fn connect_envelope_payload() {
        let env = br#"{"schema":{"type":"string","optional":false},"payload":"foo bar"}"#;
        assert_eq!(line(SinkFormat::ConnectJson, env), ("foo bar\n".into(), Appended::Line));
        let num = br#"{"schema":{"type":"int64","optional":false},"payload":42}"#;
        assert_eq!(line(SinkFormat::ConnectJson, num), ("42\n".into(), Appended::Line));
        // Without the envelope, JsonConverter (schemas.enable=true) would fail; we write it as is.
        assert_eq!(line(SinkFormat::ConnectJson, b"\"foo\""), ("\"foo\"\n".into(), Appended::Undecodable));
        let mut out = Vec::new();
        let null = br#"{"schema":{"type":"string","optional":true},"payload":null}"#;
        assert_eq!(append_line(SinkFormat::ConnectJson, Some(null), &mut out), Appended::Skipped);
        assert!(out.is_empty());
    }

    #[test]
    fn connect_schemaless_string_is_unquoted() {
        assert_eq!(line(SinkFormat::ConnectJsonSchemaless, b"\"a\\tb\""), ("a\tb\n".into(), Appended::Line));
        assert_eq!(line(SinkFormat::ConnectJsonSchemaless, br#"{"a":1}"#), ("{\"a\":1}\n".into(), Appended::Line));
        assert_eq!(line(SinkFormat::ConnectJsonSchemaless, b"{oops"), ("{oops\n".into(), Appended::Undecodable));
    }

    #[test]
    fn tombstones_are_skipped_in_every_format() {
        for f in [SinkFormat::Value, SinkFormat::Message, SinkFormat::ConnectJson, SinkFormat::ConnectJsonSchemaless] {
            let mut out = Vec::new();
            assert_eq!(append_line(f, None, &mut out), Appended::Skipped);
            assert!(out.is_empty());
        }
    }
}
