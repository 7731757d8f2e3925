//! What Filebeat 8.x makes of an ndjson line, step for step, so the agent's event is Filebeat's.
//!
//! Owns the ndjson event's assembly. The steps are Filebeat's (libbeat `readjson.JSONParser`,
//! `jsontransform.WriteJSONKeys`, filestream's `eventFromMessage`, the publisher's null removal):
//! 1. the parser decides the line's *content* (the raw line when it is not an object; the
//!    `message_key`'s string when one is set; else nothing) and its *JSON fields* (the document,
//!    or `{error}` when it is not one and `add_error_key` is set);
//! 2. `document_id` moves a string out of the document into `@metadata._id`;
//! 3. without a `target` the document is written into the parser's fields: deep-merged without
//!    overwriting, or with `overwrite_keys` overwriting, where `@timestamp` (RFC 3339 or ISO 8601)
//!    becomes the event time, `@metadata` the metadata, and `type` must be a plain name; with a
//!    `target` the document goes under it;
//! 4. the event starts as `log.offset` and `log.file.path`, the parser's fields are deep-merged
//!    over it (a document's `log.level` joins them), and a non-empty content becomes `message`;
//! 5. null values in objects are dropped, and whole floats are written as Go writes them (`1`);
//!    the publisher's additions ([`super::EventTemplate`]) come after.
//!
//! Invariant: every step that Filebeat reports as an `error` field (with `add_error_key`) is
//! reported the same way, with Filebeat's wording.

use super::LineCtx;
use crate::config::NdjsonConfig;
use crate::decode::Decoded;
use serde_json::{Map, Value};

/// The parts of an ndjson event before the input's constant fields are added.
pub struct Assembled {
    pub fields: Map<String, Value>,
    /// The document's `@timestamp` (already in Filebeat's format), when it replaced the read time.
    pub timestamp: Option<String>,
    /// `@metadata` entries from the document (`document_id` → `_id`, `@metadata` itself).
    pub meta: Map<String, Value>,
}

fn json_error(message: String) -> Value {
    serde_json::json!({"message": message, "type": "json"})
}

/// The event of a `type: log` input's `json.*` line, which Filebeat's log input assembles its own
/// way (libbeat `readjson.MergeJSONFields`): the `message_key` is always written into the
/// document (an empty string when it had none), there is no top-level `message` unless decoding
/// failed without anything else to show, and with `keys_under_root` the document is written into
/// the event that already holds `log.offset` and `log.file.path` (so without `overwrite_keys` it
/// cannot replace them); otherwise it goes under `json` (the translated `target`).
pub fn assemble_log_input(line: &LineCtx<'_>, cfg: &NdjsonConfig, decoded: Decoded<'_>) -> Assembled {
    let (text, mut doc) = parse(cfg, decoded);
    let mut out = Assembled { fields: Map::new(), timestamp: None, meta: Map::new() };
    out.fields.insert("log".into(), log_field(line));
    if doc.is_empty() {
        out.fields.insert("message".into(), Value::String(text));
        return out;
    }
    if let Some(key) = &cfg.message_key {
        doc.insert(key.clone(), Value::String(text.clone()));
    }
    if doc.len() == 1 && doc.contains_key("error") {
        out.fields.insert("message".into(), Value::String(text));
    }
    take_document_id(cfg, &mut doc, &mut out.meta);
    if cfg.target.is_empty() {
        let mut fields = std::mem::take(&mut out.fields);
        write_json_keys(&mut fields, &mut out, doc, cfg);
        out.fields = fields;
    } else {
        out.fields.insert(cfg.target.clone(), Value::Object(doc));
    }
    out
}

/// Step 2: `document_id`'s string value leaves the document for `@metadata._id`; a value that is
/// not a string stays where it is, as in libbeat.
fn take_document_id(cfg: &NdjsonConfig, doc: &mut Map<String, Value>, meta: &mut Map<String, Value>) {
    let Some(key) = cfg.document_id.as_deref().filter(|k| !k.is_empty()) else { return };
    if let Some(id) = take_string(doc, key) {
        meta.insert("_id".into(), id);
    }
}

/// Takes the value at a dotted path out of the document if it is a string (a document id);
/// another value stays where it is.
pub fn take_string(doc: &mut Map<String, Value>, key: &str) -> Option<Value> {
    super::lookup_value(doc, key).is_some_and(Value::is_string).then(|| super::take_value(doc, key)).flatten()
}

/// `log.offset`, `log.file.path` and the flags of a joined or cut line.
fn log_field(line: &LineCtx<'_>) -> Value {
    let mut log = serde_json::json!({"offset": line.offset, "file": {"path": line.path}});
    // Filebeat's order: the cut is flagged while lines are joined, `multiline` after.
    let flags: Vec<&str> = [(line.truncated, "truncated"), (line.multiline, "multiline")]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
    if !flags.is_empty() {
        log["flags"] = serde_json::json!(flags);
    }
    log
}

/// A plain line's fields as Filebeat's filestream makes them (`message`, `log.*`, and the
/// decoding error of an ndjson line shipped as plain text).
pub fn assemble_plain(line: &LineCtx<'_>, message: &str, error: Option<&str>) -> Assembled {
    let mut out = Assembled { fields: Map::new(), timestamp: None, meta: Map::new() };
    out.fields.insert("log".into(), log_field(line));
    out.fields.insert("message".into(), Value::String(message.to_string()));
    if let Some(e) = error {
        out.fields.insert("error".into(), json_error(e.to_string()));
    }
    out
}

/// Steps 1 to 4 for one decoded line.
pub fn assemble(line: &LineCtx<'_>, cfg: &NdjsonConfig, decoded: Decoded<'_>) -> Assembled {
    let (content, mut doc) = parse(cfg, decoded);
    let mut parser_fields = Map::new();
    let mut out = Assembled { fields: Map::new(), timestamp: None, meta: Map::new() };
    if !doc.is_empty() {
        if let (Some(key), false) = (&cfg.message_key, content.is_empty()) {
            doc.insert(key.clone(), Value::String(content.clone()));
        }
        if doc.len() == 1 && doc.contains_key("error") {
            parser_fields.insert("message".into(), Value::String(content.clone()));
        }
        take_document_id(cfg, &mut doc, &mut out.meta);
        if cfg.target.is_empty() {
            write_json_keys(&mut parser_fields, &mut out, doc, cfg);
        } else {
            parser_fields.insert(cfg.target.clone(), Value::Object(doc));
        }
    }
    out.fields.insert("log".into(), log_field(line));
    deep_update(&mut out.fields, parser_fields, true);
    if !content.is_empty() {
        out.fields.insert("message".into(), Value::String(content));
    }
    out
}

/// Step 1: the content and the JSON fields of a line.
fn parse(cfg: &NdjsonConfig, decoded: Decoded<'_>) -> (String, Map<String, Value>) {
    match decoded {
        Decoded::Invalid { raw, error } => {
            let mut doc = Map::new();
            if cfg.add_error_key {
                doc.insert("error".into(), json_error(format!("Error decoding JSON: {error}")));
            }
            (raw.into_owned(), doc)
        }
        Decoded::Object(mut doc) => {
            let Some(key) = &cfg.message_key else { return (String::new(), doc) };
            let problem = match doc.get(key) {
                Some(Value::String(s)) => return (s.clone(), doc),
                Some(_) => format!("Value of key '{key}' is not a string"),
                None => format!("Key '{key}' not found"),
            };
            if cfg.add_error_key {
                doc.insert("error".into(), json_error(problem));
            }
            (String::new(), doc)
        }
        Decoded::Plain(text) => (text.into_owned(), Map::new()),
    }
}

/// Step 3 without a target (libbeat's `WriteJSONKeys`).
fn write_json_keys(
    fields: &mut Map<String, Value>,
    out: &mut Assembled,
    mut doc: Map<String, Value>,
    cfg: &NdjsonConfig,
) {
    let error = |fields: &mut Map<String, Value>, message: String| {
        if cfg.add_error_key {
            fields.insert("error".into(), json_error(message));
        }
    };
    if cfg.expand_keys {
        if let Err(e) = expand_keys(&mut doc) {
            error(fields, e);
            return;
        }
    }
    if !cfg.overwrite_keys {
        doc.remove("@timestamp");
        doc.remove("@metadata");
        deep_update(fields, doc, false);
        return;
    }
    if let Some(v) = doc.remove("@timestamp") {
        match v.as_str().map(|s| (s, parse_timestamp(s))) {
            Some((_, Some(ts))) => out.timestamp = Some(ts),
            Some((s, None)) => error(fields, format!("@timestamp not overwritten (parse error on {s})")),
            None => error(fields, "@timestamp not overwritten (not string)".into()),
        }
    }
    match doc.remove("@metadata") {
        Some(Value::Object(m)) => deep_update(&mut out.meta, m, true),
        Some(_) => error(fields, "failed to update @metadata".into()),
        None => {}
    }
    if let Some(v) = doc.remove("type") {
        match v.as_str() {
            Some(s) if !s.is_empty() && !s.starts_with('_') => {
                fields.insert("type".into(), v);
            }
            Some(s) => error(fields, format!("type not overwritten (invalid value [{s}])")),
            None => error(fields, "type not overwritten (not string)".into()),
        }
    }
    deep_update(fields, doc, true);
}

/// Merges `from` into `into` key by key, objects recursively; other values replace what is
/// there only when `overwrite` (libbeat's `DeepUpdate` and `DeepUpdateNoOverwrite`).
pub fn deep_update(into: &mut Map<String, Value>, from: Map<String, Value>, overwrite: bool) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => deep_update(a, b, overwrite),
            (Some(_), v) if overwrite => {
                into.insert(k, v);
            }
            (Some(_), _) => {}
            (None, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// `expand_keys`: `{"a.b": 1}` becomes `{"a": {"b": 1}}`, recursively; a key that is both a
/// value and a prefix of another is an error, as in libbeat.
fn expand_keys(map: &mut Map<String, Value>) -> Result<(), String> {
    let mut out = Map::new();
    for (k, mut v) in std::mem::take(map) {
        if let Value::Object(inner) = &mut v {
            expand_keys(inner)?;
        }
        let mut parts = k.split('.').rev();
        let last = parts.next().unwrap_or_default().to_string();
        let mut nested = Map::new();
        nested.insert(last, v);
        for p in parts {
            let mut m = Map::new();
            m.insert(p.to_string(), Value::Object(nested));
            nested = m;
        }
        merge_strict(&mut out, nested)
            .map_err(|key| format!("cannot expand {k:?}: {key:?} is both a value and an object"))?;
    }
    *map = out;
    Ok(())
}

fn merge_strict(into: &mut Map<String, Value>, from: Map<String, Value>) -> Result<(), String> {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge_strict(a, b)?,
            (Some(_), _) => return Err(k),
            (None, v) => {
                into.insert(k, v);
            }
        }
    }
    Ok(())
}

/// Step 5: what the publisher drops and how Go writes numbers. Null values in objects go (arrays
/// keep theirs); floats without a fractional part become integers, as Go prints them (`1`, not
/// `1.0`).
pub fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(normalize);
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    *v = Value::from(f as i64);
                }
            }
        }
        _ => {}
    }
}

/// A document's `@timestamp` as Filebeat accepts it (RFC 3339, or ISO 8601 with `+hhmm`), in
/// Filebeat's own format (UTC, milliseconds).
pub fn parse_timestamp(s: &str) -> Option<String> {
    parse_timestamp_millis(s).map(super::rfc3339_from_millis)
}

/// [`parse_timestamp`] as milliseconds since 1970 (`None` before 1970, which it does not take).
pub fn parse_timestamp_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i).filter(|f| !f.is_empty())?;
        nanos = format!("{frac:0<9}")[..9].parse().ok()?;
    }
    let offset_s: i64 = match &s[i..] {
        "Z" | "z" => 0,
        tz => {
            let sign = match tz.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = tz[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 3600 + digits[2..].parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    // Milliseconds are cut, as Filebeat cuts them when it writes the time.
    (secs >= 0).then(|| secs * 1000 + (nanos / 1_000_000) as i64)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_in_rfc3339_and_iso8601_become_utc_millis() {
        assert_eq!(parse_timestamp("2026-11-25T21:58:07Z").as_deref(), Some("2026-11-25T21:58:07.000Z"));
        assert_eq!(parse_timestamp("2026-11-25T23:58:07.123456+02:00").as_deref(), Some("2026-11-25T21:58:07.123Z"));
        assert_eq!(parse_timestamp("2026-11-25T21:58:07.5-0130").as_deref(), Some("2026-11-25T23:28:07.500Z"));
        assert_eq!(parse_timestamp("2026-11-25 21:58:07"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn normalizing_drops_nulls_in_objects_and_writes_whole_floats_as_integers() {
        let mut v = json!({"a": null, "b": {"c": null, "d": 1.0, "e": 1.5}, "f": [null, 2.0]});
        normalize(&mut v);
        assert_eq!(v.to_string(), r#"{"b":{"d":1,"e":1.5},"f":[null,2]}"#);
    }

    #[test]
    fn document_id_moves_only_a_string() {
        let cfg = NdjsonConfig { document_id: Some("id".into()), ..NdjsonConfig::default() };
        for (doc, id, left) in
            [(json!({"id": "a1"}), Some("a1"), json!({})), (json!({"id": 7}), None, json!({"id": 7}))]
        {
            let (mut doc, mut meta) = (doc.as_object().unwrap().clone(), Map::new());
            take_document_id(&cfg, &mut doc, &mut meta);
            assert_eq!(meta.get("_id").and_then(Value::as_str), id);
            assert_eq!(Value::Object(doc), left);
        }
    }

    #[test]
    fn expand_keys_nests_dotted_names_and_refuses_collisions() {
        let mut m = json!({"a.b": 1, "a.c": {"d.e": 2}}).as_object().unwrap().clone();
        expand_keys(&mut m).unwrap();
        assert_eq!(Value::Object(m), json!({"a": {"b": 1, "c": {"d": {"e": 2}}}}));
        let mut m = json!({"a": 1, "a.b": 2}).as_object().unwrap().clone();
        assert!(expand_keys(&mut m).is_err());
    }
}
