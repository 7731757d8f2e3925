//! What each processor does to an event map, step by step as libbeat does it.
//!
//! Owns the compiled steps. Invariant: a step that fails with `fail_on_error` leaves the event as
//! it was before the step and puts libbeat's message in `error.message` (but `convert`, which
//! Filebeat 8.1.3 only logs); one without it, or a step Filebeat only logs a failure of
//! (`drop_fields`, `add_tags`, `decode_json_fields` without `add_error_key`), leaves what it could
//! do and goes on.

use super::host;
use crate::config::{
    AddFields, ConvertMode, ConvertType, DecodeJsonFields, FromTo, LocaleFormat, ProcessorConfig, TruncateFields,
};
use crate::event::{lookup_mut, lookup_value, ndjson, put_value as put, take_value};
use serde_json::{Map, Value};

#[derive(Debug)]
pub(super) enum Step {
    /// Deep-merged over the event (`add_fields`, `add_labels`, both already wrapped).
    Merge(Map<String, Value>),
    DropFields(Vec<String>),
    DropEvent,
    AddTags {
        target: String,
        tags: Vec<Value>,
    },
    Move {
        fields: Vec<FromTo>,
        copy: bool,
        ignore_missing: bool,
        fail_on_error: bool,
    },
    Truncate(TruncateFields),
    Convert(crate::config::Convert),
    DecodeJson(DecodeJsonFields),
    /// `add_locale`: `event.timezone`, read once.
    Locale(String),
    Dissect(Box<crate::config::Dissect>, Option<super::dissect::Trim>),
    /// `fingerprint`, with its field names sorted once.
    Fingerprint(crate::config::Fingerprint, Vec<String>),
    Timestamp(Box<crate::config::TimestampConfig>),
    /// `add_id`: the target field and the generator.
    AddId(String, super::ids::IdGen),
    /// `add_kubernetes_metadata`: the fields a log path names, in these directories.
    Kubernetes(Vec<String>),
    /// `add_host_metadata`: this machine's `host`, read once.
    Host {
        host: Map<String, Value>,
        replace: bool,
    },
}

pub(super) enum Outcome {
    Kept,
    Dropped,
}

impl Step {
    pub(super) fn new(p: &ProcessorConfig) -> Step {
        match p {
            ProcessorConfig::AddFields(a) => Step::Merge(wrap_fields(a)),
            ProcessorConfig::DropFields(d) => Step::DropFields(d.fields.clone()),
            ProcessorConfig::DropEvent(_) => Step::DropEvent,
            ProcessorConfig::AddTags(t) => Step::AddTags {
                target: t.target.clone().unwrap_or_else(|| "tags".into()),
                tags: t.tags.iter().map(|s| Value::String(s.clone())).collect(),
            },
            ProcessorConfig::AddLabels(l) => {
                let mut flat = Map::new();
                for (k, v) in &l.labels {
                    flatten_text(k.clone(), v, &mut flat);
                }
                let mut wrapped = Map::new();
                wrapped.insert("labels".into(), Value::Object(flat));
                Step::Merge(wrapped)
            }
            ProcessorConfig::Rename(m) | ProcessorConfig::CopyFields(m) => Step::Move {
                fields: m.fields.clone(),
                copy: matches!(p, ProcessorConfig::CopyFields(_)),
                ignore_missing: m.ignore_missing,
                fail_on_error: m.fail_on_error,
            },
            ProcessorConfig::TruncateFields(t) => Step::Truncate(t.clone()),
            ProcessorConfig::Convert(c) => Step::Convert(c.clone()),
            ProcessorConfig::DecodeJsonFields(d) => Step::DecodeJson(d.clone()),
            ProcessorConfig::AddLocale(l) => Step::Locale(host::time_zone(l.format == LocaleFormat::Abbreviation)),
            ProcessorConfig::Dissect(d) => Step::Dissect(Box::new(d.clone()), super::dissect::trimmer(d)),
            ProcessorConfig::Fingerprint(f) => {
                let mut sorted = f.fields.clone();
                sorted.sort();
                Step::Fingerprint(f.clone(), sorted)
            }
            ProcessorConfig::Timestamp(t) => Step::Timestamp(Box::new(t.clone())),
            ProcessorConfig::AddId(a) => Step::AddId(a.target_field.clone(), super::ids::IdGen::new()),
            ProcessorConfig::AddHostMetadata(h) => {
                Step::Host { host: host::fields(h.netinfo.enabled), replace: h.replace_fields }
            }
            ProcessorConfig::AddKubernetesMetadata(k) => Step::Kubernetes(k.log_dirs()),
        }
    }

    pub(super) fn run(&self, ev: &mut Map<String, Value>) -> Outcome {
        match self {
            Step::Merge(fields) => ndjson::deep_update(ev, fields.clone(), true),
            Step::DropFields(fields) => {
                for f in fields.iter().filter(|f| !matches!(f.as_str(), "@timestamp" | "type")) {
                    take_value(ev, f);
                }
            }
            Step::DropEvent => return Outcome::Dropped,
            Step::AddTags { target, tags } => add_tags(ev, target, tags),
            Step::Move { fields, copy, ignore_missing, fail_on_error } => {
                let what = if *copy {
                    "Failed to copy fields in copy_fields processor"
                } else {
                    "Failed to rename fields in processor"
                };
                guarded(ev, *fail_on_error, what, |ev| {
                    fields.iter().try_for_each(|f| move_field(ev, f, *copy, *ignore_missing))
                });
            }
            Step::Truncate(t) => {
                guarded(ev, t.fail_on_error, "Failed to truncate fields", |ev| truncate(ev, t));
            }
            Step::Convert(c) => convert(ev, c),
            Step::DecodeJson(d) => decode_json(ev, d),
            Step::Dissect(d, trim) => super::dissect::run(ev, d, trim.as_ref()),
            // Deliberate: Filebeat 8.1.3 drops an event it cannot fingerprint (missing or
            // non-scalar field); the agent keeps it, unchanged but for `error.message`.
            Step::Fingerprint(f, sorted) => {
                if let Err(why) = super::ids::fingerprint(ev, f, sorted) {
                    put(ev, "error.message", Value::String(format!("failed to compute fingerprint: {why}")));
                }
            }
            Step::Timestamp(t) => super::timestamp::run(ev, t),
            Step::AddId(target, ids) => put(ev, target, Value::String(ids.next())),
            Step::Locale(tz) => put(ev, "event.timezone", Value::String(tz.clone())),
            Step::Kubernetes(dirs) => super::kubernetes::run(ev, dirs),
            Step::Host { host, replace } => {
                let mut wrapped = Map::new();
                wrapped.insert("host".into(), Value::Object(host.clone()));
                if *replace {
                    ev.remove("host");
                }
                ndjson::deep_update(ev, wrapped, *replace);
            }
        }
        Outcome::Kept
    }
}

/// libbeat's `AddTagsWithKey`: `tags` appended to the list at `target` (created when missing;
/// left alone when it is not a list). Used by `add_tags` and for flags such as `dissect`'s.
pub(super) fn add_tags(ev: &mut Map<String, Value>, target: &str, tags: &[Value]) {
    match lookup_mut(ev, target) {
        Some(Value::Array(have)) => have.extend(tags.iter().cloned()),
        Some(_) => {}
        None => put(ev, target, Value::Array(tags.to_vec())),
    }
}

/// `add_fields`: the fields under their target (a dotted path, or the root when empty).
fn wrap_fields(a: &AddFields) -> Map<String, Value> {
    let fields: Map<String, Value> = a.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if a.target.is_empty() {
        return fields;
    }
    let mut out = Map::new();
    put(&mut out, &a.target, Value::Object(fields));
    out
}

/// Runs `body`; when it fails and `fail_on_error`, the event goes back to how it was and carries
/// libbeat's `error.message` (`<what>: <reason>`); without it, the failure changes nothing more.
fn guarded(
    ev: &mut Map<String, Value>,
    fail_on_error: bool,
    what: &str,
    body: impl FnOnce(&mut Map<String, Value>) -> Result<(), String>,
) {
    let backup = fail_on_error.then(|| ev.clone());
    if let Err(reason) = body(ev) {
        if let Some(b) = backup {
            *ev = b;
            put(ev, "error.message", Value::String(format!("{what}: {reason}")));
        }
    }
}

fn move_field(ev: &mut Map<String, Value>, f: &FromTo, copy: bool, ignore_missing: bool) -> Result<(), String> {
    if lookup_value(ev, &f.to).is_some() {
        return Err(format!("target field {} already exists, drop or rename this field first", f.to));
    }
    let value = match lookup_value(ev, &f.from) {
        Some(v) => v.clone(),
        None if ignore_missing => return Ok(()),
        None => return Err(format!("could not fetch value for key: {}, Error: key not found", f.from)),
    };
    if !copy {
        take_value(ev, &f.from);
    }
    put(ev, &f.to, value);
    Ok(())
}

fn truncate(ev: &mut Map<String, Value>, t: &TruncateFields) -> Result<(), String> {
    let mut any = false;
    for field in &t.fields {
        let s = match lookup_value(ev, field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("value cannot be truncated: {other}")),
            None if t.ignore_missing => continue,
            None => return Err(format!("could not fetch value for key: {field}, Error: key not found")),
        };
        let cut = match (t.max_bytes, t.max_characters) {
            (Some(n), _) if s.len() > n => {
                let mut end = n;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                Some(s[..end].to_string())
            }
            (_, Some(n)) if s.chars().count() > n => Some(s.chars().take(n).collect()),
            _ => None,
        };
        if let Some(c) = cut {
            put(ev, field, Value::String(c));
            any = true;
        }
    }
    if any {
        match lookup_mut(ev, "log.flags") {
            Some(Value::Array(flags)) if !flags.iter().any(|f| f == "truncated") => flags.push("truncated".into()),
            Some(_) => {}
            None => put(ev, "log.flags", serde_json::json!(["truncated"])),
        }
    }
    Ok(())
}

/// `convert`, as libbeat 8.1.3 runs it: every value is converted first, then written. With
/// `fail_on_error` (the default) a failure leaves the event as it was and adds no error field:
/// Filebeat's pipeline only logs the processor's error at debug level. Without it, a field that
/// fails is skipped and the others are written.
fn convert(ev: &mut Map<String, Value>, c: &crate::config::Convert) {
    let mut converted = Vec::with_capacity(c.fields.len());
    for f in &c.fields {
        let value = match lookup_value(ev, &f.from) {
            None if c.ignore_missing => None,
            None => Some(Err(format!("field [{}] is missing", f.from))),
            Some(v) => Some(match f.kind {
                Some(kind) => convert_value(v, kind).ok_or_else(|| format!("unable to convert value [{}]", show(v))),
                None => Ok(v.clone()),
            }),
        };
        match value {
            Some(Err(why)) if c.fail_on_error => {
                tracing::debug!(field = %f.from, "convert: {why}; the event is left as it was");
                return;
            }
            Some(Ok(v)) => converted.push(Some(v)),
            _ => converted.push(None),
        }
    }
    for (f, value) in c.fields.iter().zip(converted) {
        let Some(value) = value else { continue };
        match f.to.as_deref().filter(|to| !to.is_empty()) {
            Some(to) => {
                put(ev, to, value);
                // libbeat deletes `from` after writing `to`, even when they are the same field.
                if c.mode == ConvertMode::Rename {
                    take_value(ev, &f.from);
                }
            }
            None => put(ev, &f.from, value),
        }
    }
}

/// A value as text, as Go's `%v` prints what libbeat holds: a string as it is, a float in Go's
/// form, an array as `[a b c]` with its members the same way (a null member as `<nil>`), an
/// object as JSON (an event's objects are `MapStr`s, whose `String()` is JSON). Checked against
/// Filebeat 8.1.3's `convert`. Not covered: objects `decode_json_fields` made, which Go holds as
/// plain maps and prints as `map[k:v]`; the agent prints them as JSON too.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // Go's `%v` of a float64.
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            crate::event::gofmt::float(n.as_f64().unwrap_or_default(), 21, false)
        }
        Value::Array(a) => {
            let member = |m: &Value| if m.is_null() { "<nil>".to_string() } else { show(m) };
            format!("[{}]", a.iter().map(member).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

/// One value converted as libbeat's `convert` does (Go's `strconv` on strings, Go's numeric
/// conversions on numbers); `None` where it fails.
fn convert_value(v: &Value, kind: ConvertType) -> Option<Value> {
    match (kind, v) {
        (ConvertType::String, Value::Null) => None,
        (ConvertType::String, v) => Some(Value::String(show(v))),
        (ConvertType::Long, Value::String(s)) => go_parse_int(s, 64).map(Value::from),
        (ConvertType::Integer, Value::String(s)) => go_parse_int(s, 32).map(Value::from),
        // Go's int64(f) and int32(x) truncate and wrap.
        (ConvertType::Long, Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(Value::from),
        (ConvertType::Integer, Value::Number(n)) => {
            n.as_i64().map(|i| i as i32).or_else(|| n.as_f64().map(|f| f as i32)).map(Value::from)
        }
        (ConvertType::Float | ConvertType::Double, Value::String(s)) => s.parse::<f64>().ok().map(Value::from),
        (ConvertType::Float | ConvertType::Double, Value::Number(n)) => n.as_f64().map(Value::from),
        (ConvertType::Boolean, Value::String(s)) => crate::event::gofmt::parse_bool(s).map(Value::Bool),
        (ConvertType::Boolean, Value::Bool(b)) => Some(Value::Bool(*b)),
        // A valid address is kept as written (Go's net.ParseIP only checks it).
        (ConvertType::Ip, Value::String(s)) => s.parse::<std::net::IpAddr>().is_ok().then(|| v.clone()),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, base, bits)` as libbeat calls it: base 10, or base 16 after a
/// `0x`/`0X` prefix (with an optional sign); no spaces; out of range fails.
fn go_parse_int(s: &str, bits: u32) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && !hex.starts_with(['+', '-']) => i128::from_str_radix(hex, 16).ok()?,
        _ if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse::<i128>().ok()?,
        _ => return None,
    };
    let value = if negative { -magnitude } else { magnitude };
    let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
    (min..=max).contains(&value).then_some(value as i64)
}

/// `decode_json_fields`: each field holding JSON text gets the decoded value (in place, under
/// `target`, or merged at the root); text that does not decode is left as it is, as Filebeat
/// leaves it (with `add_error_key`, `error.message` says so).
fn decode_json(ev: &mut Map<String, Value>, d: &DecodeJsonFields) {
    for field in &d.fields {
        let Some(Value::String(text)) = lookup_value(ev, field).cloned() else { continue };
        let decoded = match first_json_value(&text) {
            Ok(v) if v.is_object() || (d.process_array && v.is_array()) => {
                decode_nested(v, d.max_depth.saturating_sub(1))
            }
            Ok(_) => continue,
            Err(why) => {
                if d.add_error_key {
                    // libbeat 8.1.3's error object for this processor: the field and its text.
                    put(ev, "error.message", Value::String(format!("parsing input as JSON: {why}")));
                    put(ev, "error.field", Value::String(field.clone()));
                    put(ev, "error.data", Value::String(text.clone()));
                }
                continue;
            }
        };
        match d.target.as_deref() {
            None => put(ev, field, decoded),
            Some("") => match decoded {
                Value::Object(mut m) => {
                    if let Some(id) = d.document_id.as_deref().and_then(|key| ndjson::take_string(&mut m, key)) {
                        put(ev, "@metadata._id", id);
                    }
                    ndjson::deep_update(ev, m, d.overwrite_keys)
                }
                other => put(ev, field, other),
            },
            Some(target) => put(ev, target, decoded),
        }
    }
}

/// The JSON value `text` starts with, as Go's `json.Decoder` reads it for libbeat: anything but
/// blanks after it is "multiple json elements found", unless it starts with `]` or `}` (the
/// decoder's `More()` says no more elements then); errors in Go's words.
fn first_json_value(text: &str) -> Result<Value, String> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(v)) => v,
        _ => return Err(crate::decode::gojson::decode_error(text.as_bytes()).unwrap_or_default()),
    };
    let rest = text[values.byte_offset()..].trim_start_matches([' ', '\t', '\n', '\r']);
    if rest.is_empty() || rest.starts_with([']', '}']) {
        Ok(value)
    } else {
        Err("multiple json elements found".into())
    }
}

/// JSON text inside a decoded value, decoded too while `depth` lasts (`max_depth`).
fn decode_nested(v: Value, depth: usize) -> Value {
    if depth == 0 {
        return v;
    }
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, decode_nested(v, depth))).collect()),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => decode_nested(inner, depth - 1),
            _ => Value::String(s),
        },
        other => other,
    }
}

/// Every leaf under its dotted name (arrays by index), as text: `add_labels`'s flattening.
fn flatten_text(prefix: String, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| flatten_text(format!("{prefix}.{k}"), v, out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| flatten_text(format!("{prefix}.{i}"), v, out)),
        other => {
            out.insert(prefix, Value::String(show(other)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_parse_as_go_parses_them() {
        assert_eq!(go_parse_int("+5", 32), Some(5));
        assert_eq!(go_parse_int("-0X10", 32), Some(-16));
        assert_eq!(go_parse_int("0x7fffffff", 32), Some(i32::MAX as i64));
        assert_eq!(go_parse_int("2147483648", 32), None, "out of range for 32 bits");
        assert_eq!(go_parse_int("2147483648", 64), Some(2147483648));
        for bad in [" 7", "7 ", "3.5", "", "-", "0x", "0x-1", "1_000", "٣"] {
            assert_eq!(go_parse_int(bad, 64), None, "{bad:?}");
        }
    }

    #[test]
    fn values_convert_as_libbeat_converts_them() {
        use ConvertType::*;
        let c = |kind, v: Value| convert_value(&v, kind);
        assert_eq!(c(Integer, json!(5000000000i64)), Some(json!(705032704)), "Go's int32() wraps");
        assert_eq!(c(Long, json!(-2.5)), Some(json!(-2)), "and truncates floats");
        assert_eq!(c(Boolean, json!(1)), None, "a number is no boolean");
        assert_eq!(c(Boolean, json!("T")), Some(json!(true)));
        assert_eq!(c(Ip, json!("::0001")), Some(json!("::0001")), "kept as written");
        assert_eq!(c(Ip, json!("300.1.1.1")), None);
        assert_eq!(c(String, json!(1e21)), Some(json!("1e+21")));
        assert_eq!(c(String, Value::Null), None);
        // Go's %v of a slice; an object (a MapStr) as JSON, inside one too (Filebeat 8.1.3).
        assert_eq!(
            c(String, json!([1, "x", 2.5, true, null, [1, 2], 1e21, {"k": "v"}])),
            Some(json!(r#"[1 x 2.5 true <nil> [1 2] 1e+21 {"k":"v"}]"#))
        );
        assert_eq!(c(String, json!([])), Some(json!("[]")));
        assert_eq!(c(String, json!({"k": "v", "n": [1]})), Some(json!(r#"{"k":"v","n":[1]}"#)));
    }

    #[test]
    fn a_failed_conversion_leaves_the_event_as_it_was_unless_told_otherwise() {
        let cfg = |fail_on_error: bool| crate::config::Convert {
            fields: serde_json::from_value(json!([
                {"from": "a", "to": "a_int", "type": "integer"},
                {"from": "b", "to": "b_int", "type": "integer"}
            ]))
            .unwrap(),
            ignore_missing: false,
            fail_on_error,
            mode: ConvertMode::Copy,
            tag: None,
            when: None,
        };
        let event = || json!({"a": "1", "b": "x"}).as_object().unwrap().clone();
        let mut ev = event();
        convert(&mut ev, &cfg(true));
        assert_eq!(ev, event(), "no field written, no error field (Filebeat 8.1.3 only logs it)");
        convert(&mut ev, &cfg(false));
        assert_eq!(Value::Object(ev), json!({"a": "1", "b": "x", "a_int": 1}), "the failed field is skipped");
    }

    #[test]
    fn json_text_with_more_after_its_value_is_an_error_as_in_go() {
        assert_eq!(first_json_value(" {\"a\":1}\n"), Ok(json!({"a": 1})));
        assert_eq!(first_json_value("{\"a\":1}}"), Ok(json!({"a": 1})), "Go's More() stops at a closing brace");
        assert_eq!(first_json_value("true 7"), Err("multiple json elements found".into()));
        assert!(first_json_value("{broken").unwrap_err().contains("invalid character 'b'"));
    }
}
