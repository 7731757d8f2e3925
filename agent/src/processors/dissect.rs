//! Filebeat's `dissect` tokenizer: `%{key}` fields between literal delimiters, with the
//! `%{}` skip, `%{?key}`/`%{*key}` reference, `%{&key}` indirect and `%{+key/N}` append forms,
//! the `->` padding suffix and `|type` conversions.
//!
//! Owns a parsed tokenizer and the splitting of one string by it. Invariants: a [`Tokenizer`]
//! exists only once its pattern parsed and every indirect field has its reference, so splitting
//! never fails for a reason of the pattern; the rules are Filebeat 8.1.3's, checked against its
//! binary: the first delimiter must match at the start, each field ends at the next occurrence
//! of the following delimiter, the last field takes the rest when no delimiter follows it, and
//! values with a `|type` are converted (and then never trimmed), a value that does not convert
//! staying text.

use crate::config::{ConvertType as DataType, Dissect, TrimValues};
use crate::event::{lookup_value, put_value};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Filebeat's flag on an event whose field did not fit the tokenizer.
const PARSING_ERROR_FLAG: &str = "dissect_parsing_error";

/// The `dissect` processor on one event. A field that is missing or not text leaves the event
/// as it is; one that does not fit gets `log.flags: [dissect_parsing_error]`; a key that exists
/// already (without `overwrite_keys`) or cannot be set leaves the event as it is. Filebeat logs
/// those failures; the agent logs nothing per event, the event shows them.
pub(super) fn run(ev: &mut Map<String, Value>, d: &Dissect, trim: Option<&Trim>) {
    let Some(Value::String(text)) = lookup_value(ev, &d.field) else { return };
    let pairs = match d.tokenizer.dissect(text, trim) {
        Ok(pairs) => pairs,
        Err(_) => {
            super::fields::add_tags(ev, "log.flags", &[PARSING_ERROR_FLAG.into()]);
            return;
        }
    };
    let keyed: Vec<(String, Value)> = pairs
        .into_iter()
        .map(|(k, v)| (if d.target_prefix.is_empty() { k } else { format!("{}.{k}", d.target_prefix) }, v))
        .collect();
    // All keys are checked before any is set, so a refusal leaves the event as it was.
    if keyed.iter().any(|(k, _)| blocked(ev, k) || (!d.overwrite_keys && lookup_value(ev, k).is_some())) {
        return;
    }
    for (k, v) in keyed {
        put_value(ev, &k, v);
    }
}

/// Whether a dotted path runs through a value that is not an object (Filebeat cannot set it).
fn blocked(ev: &Map<String, Value>, path: &str) -> bool {
    path.match_indices('.').any(|(i, _)| lookup_value(ev, &path[..i]).is_some_and(|v| !v.is_object()))
}

/// The `trim_values` setting as a trimmer, or `None` for `none`.
pub(super) fn trimmer(d: &Dissect) -> Option<Trim> {
    let (left, right) = match d.trim_values {
        TrimValues::None => return None,
        TrimValues::Left => (true, false),
        TrimValues::Right => (false, true),
        TrimValues::All => (true, true),
    };
    Some(Trim { left, right, chars: d.trim_chars.chars().collect() })
}

/// A parsed `tokenizer`, compared by its text.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    raw: String,
    /// The text before the first field (may be empty); it must start the string.
    head: String,
    /// The fields in pattern order, each with the delimiter after it (`None` for the last field
    /// when the pattern ends with it).
    fields: Vec<Field>,
    /// Indices into `fields` in the order values are applied: by append ordinal, stable.
    order: Vec<usize>,
    typed: bool,
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `%{key}`
    Normal,
    /// `%{}`
    Skip,
    /// `%{?key}` and `%{*key}`: kept only for an indirect field to name its key.
    Reference,
    /// `%{&key}`: stored under the value of the reference `key`.
    Indirect,
    /// `%{+key}`: joined to what `key` already holds.
    Append,
}

#[derive(Debug, Clone)]
struct Field {
    kind: Kind,
    key: String,
    ordinal: u32,
    /// `->`: repeats of the delimiter after this field are skipped.
    greedy: bool,
    ty: Option<DataType>,
    /// The delimiter before this field: an appended value is joined with it (a space if empty).
    join: String,
    /// The delimiter after this field, if any.
    next: Option<String>,
}

impl Tokenizer {
    pub fn parse(raw: &str) -> Result<Tokenizer, String> {
        let mut head = None;
        let mut fields: Vec<Field> = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find("%{") {
            let Some(close) = rest[open + 2..].find('}') else { break };
            let delimiter = rest[..open].to_string();
            let key = &rest[open + 2..open + 2 + close];
            match fields.last_mut() {
                Some(prev) => prev.next = Some(delimiter.clone()),
                None => head = Some(delimiter.clone()),
            }
            fields.push(field(key, delimiter)?);
            rest = &rest[open + 3 + close..];
        }
        let Some(head) = head else {
            return Err(format!("invalid dissect tokenizer {raw:?}: it has no %{{key}} field"));
        };
        if !rest.is_empty() {
            fields.last_mut().expect("one field at least").next = Some(rest.to_string());
        }
        for f in fields.iter().filter(|f| f.kind == Kind::Indirect) {
            if !fields.iter().any(|r| r.kind == Kind::Reference && r.key == f.key) {
                return Err(format!("missing reference for key '{}' in dissect tokenizer {raw:?}", f.key));
            }
        }
        let mut order: Vec<usize> = (0..fields.len()).collect();
        order.sort_by_key(|&i| fields[i].ordinal);
        let typed = fields.iter().any(|f| f.ty.is_some());
        Ok(Tokenizer { raw: raw.to_string(), head, fields, order, typed })
    }

    /// The keys and values `s` splits into, or why it does not split.
    pub fn dissect(&self, s: &str, trim: Option<&Trim>) -> Result<Vec<(String, Value)>, String> {
        if s.is_empty() {
            return Err("unable to dissect an empty string".into());
        }
        if !s.starts_with(self.head.as_str()) {
            return Err(format!("could not find beginning delimiter: `{}` in remaining: `{s}`", self.head));
        }
        let mut spans = vec![(0usize, 0usize); self.fields.len()];
        let mut offset = self.head.len();
        let mut i = 0;
        while let Some(next) = self.fields.get(i).and_then(|f| f.next.as_deref()) {
            let start = offset;
            let end = find(s, next, offset).ok_or_else(|| {
                format!("could not find delimiter: `{next}` in remaining: `{}`, (offset: {offset})", &s[offset..])
            })?;
            offset = end;
            if self.fields[i].greedy {
                while !next.is_empty() && find(s, next, offset + 1) == Some(offset + 1) {
                    offset += 1;
                }
            }
            spans[i] = (start, end);
            offset += next.len();
            i += 1;
        }
        if offset < s.len() && i < self.fields.len() {
            spans[i] = (offset, s.len());
        }
        // Trimming is skipped when the pattern converts types, as in Filebeat 8.1.3.
        if let (Some(t), false) = (trim, self.typed) {
            for span in &mut spans {
                *span = t.apply(s, *span);
            }
        }
        let mut values: HashMap<String, String> = HashMap::new();
        for &j in &self.order {
            let f = &self.fields[j];
            let v = &s[spans[j].0..spans[j].1];
            match f.kind {
                Kind::Normal | Kind::Reference => {
                    values.insert(f.key.clone(), v.to_string());
                }
                Kind::Skip => {}
                Kind::Indirect => {
                    if let Some(name) = values.get(&f.key).cloned() {
                        values.insert(name, v.to_string());
                    }
                }
                Kind::Append => {
                    let joined = match values.get(&f.key) {
                        Some(have) => format!("{have}{}{v}", if f.join.is_empty() { " " } else { &f.join }),
                        None => v.to_string(),
                    };
                    values.insert(f.key.clone(), joined);
                }
            }
        }
        // The key each typed field's value ended under (an indirect one's is its reference's value).
        let mut types: HashMap<String, DataType> = HashMap::new();
        for f in self.fields.iter().filter(|f| matches!(f.kind, Kind::Normal | Kind::Indirect | Kind::Append)) {
            if let Some(ty) = f.ty {
                let key = match f.kind {
                    Kind::Indirect => {
                        let r = self.fields.iter().position(|r| r.kind == Kind::Reference && r.key == f.key);
                        r.map_or(f.key.clone(), |r| s[spans[r].0..spans[r].1].to_string())
                    }
                    _ => f.key.clone(),
                };
                types.insert(key, ty);
            }
        }
        for r in self.fields.iter().filter(|f| f.kind == Kind::Reference) {
            values.remove(&r.key);
        }
        let mut out: Vec<(String, Value)> = values
            .into_iter()
            .map(|(k, v)| {
                let value = match types.get(&k) {
                    Some(ty) => convert(*ty, &v).unwrap_or(Value::String(v)),
                    None => Value::String(v),
                };
                (k, value)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// `trim_values` with its `trim_chars`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trim {
    pub left: bool,
    pub right: bool,
    pub chars: Vec<char>,
}

impl Trim {
    fn apply(&self, s: &str, (mut start, mut end): (usize, usize)) -> (usize, usize) {
        if self.left {
            let kept = s[start..end].trim_start_matches(self.chars.as_slice());
            start = end - kept.len();
        }
        if self.right {
            let kept = s[start..end].trim_end_matches(self.chars.as_slice());
            end = start + kept.len();
        }
        (start, end)
    }
}

/// Where `needle` next occurs in `s` at or after `from`.
fn find(s: &str, needle: &str, from: usize) -> Option<usize> {
    s.get(from..)?.find(needle).map(|i| i + from)
}

fn field(raw: &str, before: String) -> Result<Field, String> {
    let mut f =
        Field { kind: Kind::Normal, key: String::new(), ordinal: 0, greedy: false, ty: None, join: before, next: None };
    if raw.is_empty() {
        f.kind = Kind::Skip;
        return Ok(f);
    }
    let mut key = raw;
    if let Some((k, ty)) = key.rsplit_once('|') {
        if ty.is_empty() {
            return Err(format!("missing data type in dissect key %{{{raw}}}"));
        }
        f.ty = Some(match ty {
            "integer" => DataType::Integer,
            "long" => DataType::Long,
            "float" => DataType::Float,
            "double" => DataType::Double,
            "string" => DataType::String,
            "boolean" => DataType::Boolean,
            "ip" => DataType::Ip,
            other => {
                return Err(format!(
                    "invalid data type {other:?} in dissect key %{{{raw}}} (integer, long, float, double, string, boolean or ip)"
                ))
            }
        });
        key = k;
    }
    if let Some(k) = key.strip_suffix("->") {
        f.greedy = true;
        key = k;
    }
    if let Some((k, n)) = key.rsplit_once('/') {
        if let Ok(n) = n.parse::<u32>() {
            f.ordinal = n;
            key = k;
        }
    }
    if key.starts_with("&+") || key.starts_with("+&") {
        return Err(format!("dissect key %{{{raw}}} mixes the append (+) and indirect (&) prefixes"));
    }
    let (kind, name) = match key.chars().next() {
        Some('?') | Some('*') => (Kind::Reference, &key[1..]),
        Some('+') => (Kind::Append, &key[1..]),
        Some('&') => (Kind::Indirect, &key[1..]),
        _ => (Kind::Normal, key),
    };
    f.kind = kind;
    f.key = name.to_string();
    Ok(f)
}

/// A `|type` conversion as Filebeat does it (trailing spaces ignored); `None` when the value
/// does not convert.
fn convert(ty: DataType, v: &str) -> Option<Value> {
    let t = v.trim_end_matches(' ');
    // Go's strconv.ParseInt: base 10 with an optional sign, or hexadecimal after `0x`.
    let int = |bits: u32| -> Option<i64> {
        let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                i128::from_str_radix(hex, 16).ok()?
            }
            Some(_) => return None,
            None => t.parse::<i128>().ok()?,
        };
        let limit = 1i128 << (bits - 1);
        (n >= -limit && n < limit).then_some(n as i64)
    };
    match ty {
        DataType::String => Some(Value::String(t.to_string())),
        DataType::Integer => int(32).map(Value::from),
        DataType::Long => int(64).map(Value::from),
        // A float32, written as Go writes one (its shortest text, not the widened double's).
        DataType::Float => {
            let f = t.parse::<f32>().ok().filter(|f| f.is_finite())?;
            f.to_string().parse::<f64>().ok().map(Value::from)
        }
        DataType::Double => t.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from),
        DataType::Boolean => crate::event::gofmt::parse_bool(t).map(Value::Bool),
        DataType::Ip => t.parse::<std::net::IpAddr>().is_ok().then(|| Value::String(t.to_string())),
    }
}

impl<'de> Deserialize<'de> for Tokenizer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Tokenizer::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split(pattern: &str, s: &str) -> Result<Value, String> {
        let t = Tokenizer::parse(pattern)?;
        Ok(Value::Object(t.dissect(s, None)?.into_iter().collect()))
    }

    /// Cases whose results were read from Filebeat 8.1.3's output for the same pattern and line.
    #[test]
    fn splits_as_filebeat_does() {
        let cases = [
            (
                "%{date} %{time} %{level->} [%{thread}] %{msg}",
                "2026-11-26 10:00:02 WARN     [worker-1] slow request",
                json!({"date": "2026-11-26", "time": "10:00:02", "level": "WARN    ", "thread": "worker-1", "msg": "slow request"}),
            ),
            ("%{a->} %{b}", "x    y", json!({"a": "x", "b": "y"})),
            ("%{a} %{b}", "x    y", json!({"a": "x", "b": "   y"})),
            ("%{a} %{b}.", "x y.z", json!({"a": "x", "b": "y"})),
            ("%{?k} %{&k}", "key1 val1", json!({"key1": "val1"})),
            ("%{*p} %{&p} %{q}", "v1 v2 v3", json!({"v1": "v2", "q": "v3"})),
            ("%{+x/2} %{+x/1} %{} %{y}", "a b c d", json!({"x": "b a", "y": "d"})),
            ("%{} %{path}", "GET /a 200", json!({"path": "/a 200"})),
            (
                "%{name} %{age|integer} %{ok|boolean} %{f|float} %{ip|ip}",
                "john 30 true 1.5 10.0.0.1",
                json!({"name": "john", "age": 30, "ok": true, "f": 1.5, "ip": "10.0.0.1"}),
            ),
            ("%{a|integer} %{b|long}", "abc 12", json!({"a": "abc", "b": 12})),
            ("%{?m} %{&m} %{code|long}", "GET /a 200", json!({"GET": "/a", "code": 200})),
            ("id:%{n|integer}|%{s}", "id:  12  |x", json!({"n": "  12  ", "s": "x"})),
        ];
        for (pattern, line, want) in cases {
            assert_eq!(split(pattern, line).unwrap(), want, "{pattern} on {line:?}");
        }
    }

    #[test]
    fn a_line_that_does_not_fit_is_an_error() {
        assert!(split("%{a} %{b}", "k=v").is_err());
        assert!(split("nope:%{n}|%{s}", "id:1|x").is_err());
        assert!(split("%{a}", "").is_err());
    }

    #[test]
    fn trimming_follows_trim_values_and_trim_chars() {
        let t = Tokenizer::parse("%{a}|%{b}").unwrap();
        let run = |left, right, chars: &str| {
            let trim = Trim { left, right, chars: chars.chars().collect() };
            Value::Object(t.dissect("  ab  |  cd  ", Some(&trim)).unwrap().into_iter().collect())
        };
        assert_eq!(run(true, false, " "), json!({"a": "ab  ", "b": "cd  "}));
        assert_eq!(run(false, true, " "), json!({"a": "  ab", "b": "  cd"}));
        assert_eq!(run(true, true, " a"), json!({"a": "b", "b": "cd"}));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (pattern, why) in [
            ("abc", "no %{key}"),
            ("", "no %{key}"),
            ("%{+a} %{&b}", "missing reference for key 'b'"),
            ("%{a|nope}", "invalid data type"),
            ("%{a|}", "missing data type"),
            ("%{&+a} %{?a}", "mixes"),
        ] {
            let e = Tokenizer::parse(pattern).unwrap_err();
            assert!(e.contains(why), "{pattern}: {e}");
        }
        assert!(Tokenizer::parse("%{a}%{b}").is_ok() && Tokenizer::parse("%{*a} %{b}").is_ok());
    }

    /// Lines with each character replaced in turn (by multi-byte characters, delimiters) or cut
    /// short split or fail, never panic, with and without trimming and greedy padding.
    #[test]
    fn any_line_splits_or_fails_without_panicking() {
        let t = Tokenizer::parse("[%{ts}] %{level->} %{?k}=%{&k} %{+m/2} %{+m/1}|%{n|integer}").unwrap();
        let sample: Vec<char> = "[2026-11-26] INFO   key=val a b|42".chars().collect();
        let trim = Trim { left: true, right: true, chars: vec![' ', 'é'] };
        assert!(t.dissect(&sample.iter().collect::<String>(), None).is_ok());
        for i in 0..sample.len() {
            for r in ["é", "中", "\u{1F600}", " ", "|", "=", "]", ""] {
                let mut v: String = sample[..i].iter().collect();
                v.push_str(r);
                v.extend(&sample[i + 1..]);
                let _ = t.dissect(&v, None);
                let _ = t.dissect(&v, Some(&trim));
            }
        }
    }
}
