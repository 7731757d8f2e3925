//! Events: what a decoded line becomes on the wire, and the `%{[field]}` format strings that pick
//! its topic and key.
//!
//! Owns the event shape. Invariants: the JSON codec always produces one valid JSON object per line
//! with Filebeat's field names (`@timestamp`, `message`, `log.offset`, `log.file.path`, `host.name`,
//! `input.type`, `agent.*`, `ecs.version`, `fields`, `tags`); the raw codec sends the line's bytes
//! unchanged. `log.offset` is the byte offset of the line's first byte, as in Filebeat. Global
//! `fields` and `tags` join the input's as Filebeat joins them (tags: the global ones first); the
//! ndjson path is [`ndjson`]'s, step for step Filebeat's.

pub mod gofmt;
pub mod id;
pub mod ndjson;

use crate::config::{Codec, GlobalFields, InputConfig, NdjsonConfig};
use crate::decode::Decoded;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub const ECS_VERSION: &str = "8.0.0";
pub const AGENT_TYPE: &str = "agent";
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One record ready for the output.
#[derive(Debug)]
pub struct Event {
    /// Ack-tracker slot of the file the line came from.
    pub slot: u32,
    /// Offset just past the line (its newline included): where reading resumes once acknowledged.
    pub end_offset: u64,
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    /// With `partition.hash.hash`: Filebeat's hash of the named fields (`None`: a field could not
    /// be hashed, and the record goes to a random partition, as Filebeat sends it).
    pub partition_hash: Option<u32>,
    pub payload: Vec<u8>,
    /// False for a line that produces no record (skipped or dropped, and counted): only its
    /// offset travels, so the file's acknowledged offset can move past it.
    pub deliver: bool,
    /// When its line was read (the read batch's clock), for the input's latency histogram.
    pub read_at: Instant,
    /// The same for every send of this line ([`id`]); `None` for an event with nothing to deliver.
    pub id: Option<id::EventId>,
    /// The record's timestamp, milliseconds since 1970 ([`record_time`]); `None`: the send time.
    pub timestamp: Option<i64>,
}

impl Event {
    /// Bytes this event holds in memory (for the byte-bounded queue): allocations as allocated,
    /// plus the struct itself.
    pub fn size(&self) -> usize {
        self.payload.capacity() + self.key.as_ref().map_or(0, Vec::capacity) + std::mem::size_of::<Event>()
    }
}

/// A parsed `%{[a.b]}` format string (topics, keys, `codec.format.string`), parsed while the
/// config is read and compared by its text.
#[derive(Debug, Clone)]
pub struct Format {
    raw: String,
    parts: Vec<Part>,
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Format::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("%{") {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_string()));
            }
            let end = rest[start..].find('}').ok_or_else(|| format!("unclosed %{{ in format string {s:?}"))?;
            let inner = rest[start + 2..start + end].trim();
            let field = inner
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .ok_or_else(|| format!("write fields as %{{[name]}} in format string {s:?}"))?;
            if field.is_empty() {
                return Err(format!("empty field name in format string {s:?}"));
            }
            parts.push(Part::Field(field.to_string()));
            rest = &rest[start + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Format { raw: s.to_string(), parts })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The text when the format has no field reference.
    pub fn as_static(&self) -> Option<String> {
        match self.parts.as_slice() {
            [] => Some(String::new()),
            [Part::Lit(s)] => Some(s.clone()),
            _ => None,
        }
    }

    /// Renders with `lookup`; `Err(field)` names the first field the event does not have.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Field(f) => out.push_str(&lookup(f).ok_or_else(|| f.clone())?),
            }
        }
        Ok(out)
    }
}

/// Looks a dotted path up in a JSON object as text (strings, numbers, booleans).
pub fn lookup_path(map: &Map<String, Value>, path: &str) -> Option<String> {
    lookup_value(map, path).and_then(value_text)
}

/// Looks a dotted path up in a JSON object: `a.b.c` as nested keys, or a literal dotted key.
pub fn lookup_value<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let (head, tail) = path.split_once('.')?;
    match map.get(head)? {
        Value::Object(inner) => lookup_value(inner, tail),
        _ => None,
    }
}

/// [`lookup_value`], for changing the value in place.
pub fn lookup_mut<'a>(map: &'a mut Map<String, Value>, path: &str) -> Option<&'a mut Value> {
    if map.contains_key(path) {
        return map.get_mut(path);
    }
    let (head, tail) = path.split_once('.')?;
    match map.get_mut(head)? {
        Value::Object(inner) => lookup_mut(inner, tail),
        _ => None,
    }
}

/// Takes the value at a dotted path (or a literal dotted key) out of nested objects.
pub fn take_value(map: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(v) = map.remove(path) {
        return Some(v);
    }
    let (head, tail) = path.split_once('.')?;
    match map.get_mut(head)? {
        Value::Object(inner) => take_value(inner, tail),
        _ => None,
    }
}

/// Sets a dotted path, creating (or replacing non-object values with) objects on the way.
pub fn put_value(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_string(), value);
        }
        Some((head, tail)) => {
            let slot = map.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            put_value(slot.as_object_mut().expect("made an object"), tail, value);
        }
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
        other => Some(other.to_string()),
    }
}

/// Identity of this agent process, shared by all inputs.
#[derive(Debug, Clone)]
pub struct AgentMeta {
    pub host_name: String,
    pub agent_id: String,
    pub ephemeral_id: String,
}

/// Kafka Connect's JsonConverter envelope for a `Schema.STRING_SCHEMA` value, up to the payload.
pub const CONNECT_STRING_ENVELOPE_HEAD: &[u8] = br#"{"schema":{"type":"string","optional":false},"payload":"#;

/// Everything an input adds to each of its events, prepared once, in the parts Filebeat's
/// publisher adds in turn: `tags` (appended), `added` (`input` and the fields, overwriting), then
/// `builtin` (`host`, `agent`, `ecs`, only where the event has nothing yet), and `@metadata`.
#[derive(Debug)]
pub struct EventTemplate {
    codec: Codec,
    /// The constant part of every JSON event (`base` as JSON text without `@metadata`, each
    /// member with a leading comma, without the closing `}`), for the plain fast path.
    json_tail: String,
    /// `@metadata`'s constant members as JSON text (after the event's `_id`), for the fast path.
    meta_members: String,
    /// The same constant fields as a JSON object, for the plain path and format lookups.
    base: Map<String, Value>,
    tags: Vec<Value>,
    added: Map<String, Value>,
    builtin: Map<String, Value>,
    meta: Map<String, Value>,
    /// A `type: log` input, whose `json.*` lines Filebeat assembles differently from ndjson's.
    log_input: bool,
}

impl EventTemplate {
    pub fn new(input: &InputConfig, global: &GlobalFields, codec: Codec, agent: &AgentMeta) -> EventTemplate {
        let meta = object(serde_json::json!({"beat": AGENT_TYPE, "type": "_doc", "version": AGENT_VERSION}));
        let mut added = object(serde_json::json!({"input": {"type": input.input_type.name()}}));
        // Global fields first, then the input's over them, each at the root or under `fields`.
        for (fields, under_root) in
            [(&global.fields, global.fields_under_root), (&input.fields, input.fields_under_root)]
        {
            let fields: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if under_root {
                ndjson::deep_update(&mut added, fields, true);
            } else if !fields.is_empty() {
                ndjson::deep_update(&mut added, object(serde_json::json!({ "fields": fields })), true);
            }
        }
        let tags: Vec<Value> = global.tags.iter().chain(&input.tags).map(|t| Value::String(t.clone())).collect();
        let builtin = object(serde_json::json!({
            "host": {"name": agent.host_name},
            "agent": {
                "type": AGENT_TYPE, "name": agent.host_name, "version": AGENT_VERSION,
                "id": agent.agent_id, "ephemeral_id": agent.ephemeral_id,
            },
            "ecs": {"version": ECS_VERSION},
        }));
        let mut base = Map::new();
        base.insert("@metadata".into(), Value::Object(meta.clone()));
        if !tags.is_empty() {
            base.insert("tags".into(), Value::Array(tags.clone()));
        }
        ndjson::deep_update(&mut base, added.clone(), true);
        ndjson::deep_update(&mut base, builtin.clone(), false);
        let mut json_tail = String::new();
        for (k, v) in base.iter().filter(|(k, _)| *k != "@metadata") {
            let _ = write!(json_tail, ",{}:{}", Value::String(k.clone()), v);
        }
        let meta_members =
            meta.iter().map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v)).collect::<Vec<_>>().join(",");
        let log_input = input.input_type.is_log_input();
        EventTemplate { codec, json_tail, meta_members, base, tags, added, builtin, meta, log_input }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Whether this codec's records carry the event's time ([`record_time`]): all but Kafka
    /// Connect's, as Connect's FileStreamSource sets none (the producer stamps the send time).
    pub fn stamps_records(&self) -> bool {
        !matches!(self.codec, Codec::ConnectJson | Codec::ConnectJsonSchemaless)
    }

    /// Looks up a field of an event built from this template (for topic and key formats).
    pub fn lookup(&self, decoded: &Decoded<'_>, path: &str, file: &str) -> Option<String> {
        match (path, decoded) {
            ("message", Decoded::Plain(s)) | ("message", Decoded::Invalid { raw: s, .. }) => Some(s.to_string()),
            ("log.file.path", _) => Some(file.to_string()),
            (_, Decoded::Object(m)) => lookup_path(m, path).or_else(|| lookup_path(&self.base, path)),
            _ => lookup_path(&self.base, path),
        }
    }

    /// Encodes one line's event into `out` (cleared first); returns its record timestamp (see
    /// [`record_time`] and [`Self::stamps_records`]; for the raw codec the line's time).
    pub fn encode(&self, line: &LineCtx<'_>, decoded: Decoded<'_>, out: &mut Vec<u8>) -> Option<i64> {
        out.clear();
        if self.encode_line(line, &decoded, out) {
            return self.stamps_records().then_some(line.timestamp_ms);
        }
        match decoded {
            // The format codec renders from the whole event (see `tail::input`).
            decoded if line.ndjson.is_some() => self.encode_ndjson(line, decoded, out),
            Decoded::Plain(msg) => self.encode_plain(line, &msg, None, out),
            Decoded::Invalid { raw, error } => self.encode_plain(line, &raw, Some(&error), out),
            d @ Decoded::Object(_) => self.encode_ndjson(line, d, out),
        }
    }

    /// For the codecs whose record is made from the line alone (raw, Kafka Connect's), appends
    /// the record to `out` and returns true; false for those made from the event (JSON, format),
    /// whose record processors and the event's fields shape.
    pub fn encode_line(&self, line: &LineCtx<'_>, decoded: &Decoded<'_>, out: &mut Vec<u8>) -> bool {
        match self.codec {
            Codec::Json | Codec::Format => return false,
            Codec::Raw => out.extend_from_slice(line.raw),
            Codec::ConnectJson | Codec::ConnectJsonSchemaless => {
                let text = match decoded {
                    Decoded::Plain(msg) | Decoded::Invalid { raw: msg, .. } => msg.clone(),
                    Decoded::Object(_) => String::from_utf8_lossy(line.raw),
                };
                if self.codec == Codec::ConnectJson {
                    out.extend_from_slice(CONNECT_STRING_ENVELOPE_HEAD);
                    write_json_str(out, &text);
                    out.push(b'}');
                } else {
                    write_json_str(out, &text);
                }
            }
        }
        true
    }

    /// The fast path: plain lines are written as JSON text directly, without building a tree.
    fn encode_plain(&self, line: &LineCtx<'_>, message: &str, error: Option<&str>, out: &mut Vec<u8>) -> Option<i64> {
        out.extend_from_slice(b"{\"@timestamp\":\"");
        out.extend_from_slice(line.timestamp.as_bytes());
        out.push(b'"');
        if !self.omits_message(line, message) {
            out.extend_from_slice(b",\"message\":");
            write_json_str(out, message);
        }
        if let Some(stream) = line.stream {
            out.extend_from_slice(b",\"stream\":\"");
            out.extend_from_slice(stream.as_bytes());
            out.push(b'"');
        }
        let _ = write!(VecWriter(out), ",\"log\":{{\"offset\":{},\"file\":{{\"path\":", line.offset);
        write_json_str(out, line.path);
        out.push(b'}');
        match (line.multiline, line.truncated) {
            (false, false) => {}
            (false, true) => out.extend_from_slice(b",\"flags\":[\"truncated\"]"),
            (true, false) => out.extend_from_slice(b",\"flags\":[\"multiline\"]"),
            // Filebeat's order: the cut is flagged while lines are joined, `multiline` after.
            (true, true) => out.extend_from_slice(b",\"flags\":[\"truncated\",\"multiline\"]"),
        }
        out.push(b'}');
        if let Some(err) = error {
            out.extend_from_slice(b",\"error\":{\"type\":\"json\",\"message\":");
            write_json_str(out, err);
            out.push(b'}');
        }
        out.extend_from_slice(b",\"@metadata\":{");
        if let Some(id) = &line.id {
            out.extend_from_slice(b"\"_id\":\"");
            out.extend_from_slice(id.as_str().as_bytes());
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(self.meta_members.as_bytes());
        out.push(b'}');
        out.extend_from_slice(self.json_tail.as_bytes());
        out.push(b'}');
        Some(line.timestamp_ms)
    }

    /// An ndjson line's event: [`EventTemplate::event_map`] and the builtins, written once.
    fn encode_ndjson(&self, line: &LineCtx<'_>, decoded: Decoded<'_>, out: &mut Vec<u8>) -> Option<i64> {
        let mut ev = self.event_map(line, decoded);
        self.add_builtin(&mut ev);
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &ev);
        // A document's own `@timestamp` may have replaced the line's.
        record_time(&ev)
    }

    /// The event as a map, up to where an input's processors see it in Filebeat: the line's
    /// fields (for ndjson, [`ndjson::assemble`]), nulls dropped, then tags, the input's fields and
    /// `@metadata`; not yet `host`, `agent` and `ecs` ([`EventTemplate::add_builtin`]).
    pub fn event_map(&self, line: &LineCtx<'_>, decoded: Decoded<'_>) -> Map<String, Value> {
        let a = match (line.ndjson, decoded) {
            (Some(cfg), d) if self.log_input => ndjson::assemble_log_input(line, cfg, d),
            (Some(cfg), d) => ndjson::assemble(line, cfg, d),
            (None, Decoded::Object(obj)) => ndjson::assemble(line, &NdjsonConfig::default(), Decoded::Object(obj)),
            (None, Decoded::Plain(msg)) => ndjson::assemble_plain(line, &msg, None),
            (None, Decoded::Invalid { raw, error }) => ndjson::assemble_plain(line, &raw, Some(&error)),
        };
        let mut fields = a.fields;
        if fields.get("message").and_then(Value::as_str).is_some_and(|m| self.omits_message(line, m)) {
            fields.remove("message");
        }
        if let Some(stream) = line.stream {
            // The container parser's field, under what a decoded document put there.
            fields.entry("stream").or_insert_with(|| Value::String(stream.into()));
        }
        let mut ev = Value::Object(fields);
        ndjson::normalize(&mut ev);
        let Value::Object(mut ev) = ev else { unreachable!("an object stays an object") };
        if !self.tags.is_empty() {
            match ev.get_mut("tags") {
                Some(Value::Array(have)) => have.extend(self.tags.iter().cloned()),
                _ => {
                    ev.insert("tags".into(), Value::Array(self.tags.clone()));
                }
            }
        }
        ndjson::deep_update(&mut ev, self.added.clone(), true);
        let mut meta = self.meta.clone();
        // The line's id; a document's own (`document_id`) and `add_id`/`fingerprint` win over it.
        if let Some(id) = &line.id {
            meta.insert("_id".into(), Value::String(id.as_str().to_string()));
        }
        ndjson::deep_update(&mut meta, a.meta, true);
        ev.insert("@metadata".into(), Value::Object(meta));
        let ts = a.timestamp.unwrap_or_else(|| line.timestamp.to_string());
        ev.insert("@timestamp".into(), Value::String(ts));
        ev
    }

    /// Filebeat 8.1.3's filestream leaves `message` out of a container line with no text (its
    /// log input, behind the `container` input, keeps it empty).
    fn omits_message(&self, line: &LineCtx<'_>, message: &str) -> bool {
        message.is_empty() && line.stream.is_some() && !self.log_input
    }

    /// `host`, `agent` and `ecs`, where the event has nothing yet (Filebeat adds them after an
    /// input's processors and never over what is there).
    pub fn add_builtin(&self, ev: &mut Map<String, Value>) {
        ndjson::deep_update(ev, self.builtin.clone(), false);
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Per-line facts the encoder needs besides the decoded content.
#[derive(Clone, Copy)]
pub struct LineCtx<'a> {
    pub raw: &'a [u8],
    pub offset: u64,
    pub path: &'a str,
    pub truncated: bool,
    /// Several lines joined by the multiline parser (`log.flags: [multiline]`, as Filebeat).
    pub multiline: bool,
    /// The event's time as `@timestamp` writes it (the read time, or a container line's own)...
    pub timestamp: &'a str,
    /// ...and in milliseconds since 1970, for the record's timestamp.
    pub timestamp_ms: i64,
    pub ndjson: Option<&'a NdjsonConfig>,
    /// The event's id (`@metadata._id`).
    pub id: Option<id::EventId>,
    /// The container stream the line came from (`stream`), when the container parser read it.
    pub stream: Option<&'static str>,
}

struct VecWriter<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `N` bytes from the kernel's random source (ids, UUIDs); should it fail, the clock and the
/// process id, which still tell processes apart.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let fallback = (t ^ u128::from(std::process::id()) << 64).to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = fallback[i % fallback.len()];
        }
    }
    b
}

/// RFC 3339 UTC timestamp with milliseconds, as Filebeat writes `@timestamp`.
/// Times before 1970 too (a `timestamp` processor's value); milliseconds are cut toward 1970.
pub fn rfc3339_millis(t: SystemTime) -> String {
    rfc3339_from_millis(unix_millis(t))
}

/// Milliseconds since 1970 (negative before), cut toward 1970.
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

/// The Kafka record timestamp of a finished event: its `@timestamp`, as Filebeat sets each
/// record's (Kafka 0.10 and later). `None` (the producer then uses the send time) when the event
/// has no time Kafka takes: none, not a time, or before 1970 (brokers refuse negative timestamps).
pub fn record_time(ev: &Map<String, Value>) -> Option<i64> {
    ev.get("@timestamp").and_then(Value::as_str).and_then(ndjson::parse_timestamp_millis)
}

/// [`rfc3339_millis`] of a time in milliseconds since the epoch.
pub fn rfc3339_from_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    let milli = ms.rem_euclid(1000);
    format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{milli:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's civil-from-days algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::borrow::Cow;
    use std::time::Duration;

    fn input(extra: &str) -> InputConfig {
        let text =
            format!("inputs:\n  - id: web\n    paths: [/x]\n{extra}output:\n  kafka:\n    hosts: [h]\n    topic: t\n");
        Config::from_str_at(&text, std::path::Path::new("a.yml")).unwrap().inputs.remove(0)
    }

    impl EventTemplate {
        fn new_for_test(input: &InputConfig, codec: Codec, agent: &AgentMeta) -> EventTemplate {
            EventTemplate::new(input, &GlobalFields::default(), codec, agent)
        }
    }

    fn agent() -> AgentMeta {
        AgentMeta { host_name: "web-1".into(), agent_id: "id-1".into(), ephemeral_id: "eph-1".into() }
    }

    fn ctx<'a>(raw: &'a [u8], ndjson: Option<&'a NdjsonConfig>) -> LineCtx<'a> {
        LineCtx {
            raw,
            offset: 42,
            path: "/var/log/a \"b\".log",
            truncated: false,
            multiline: false,
            timestamp: "2026-01-02T03:04:05.006Z",
            timestamp_ms: 1_767_323_045_006,
            ndjson,
            id: None,
            stream: None,
        }
    }

    #[test]
    fn plain_json_event_has_filebeat_fields() {
        let t = EventTemplate::new_for_test(&input("    fields: {env: prod}\n    tags: [a]\n"), Codec::Json, &agent());
        let mut out = Vec::new();
        t.encode(&ctx(b"x", None), Decoded::Plain(Cow::Borrowed("he said \"hi\"\t\u{1}")), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["@timestamp"], "2026-01-02T03:04:05.006Z");
        assert_eq!(v["message"], "he said \"hi\"\t\u{1}");
        assert_eq!(v["log"]["offset"], 42);
        assert_eq!(v["log"]["file"]["path"], "/var/log/a \"b\".log");
        assert_eq!(v["host"]["name"], "web-1");
        assert_eq!(v["input"]["type"], "filestream");
        assert_eq!(v["agent"]["id"], "id-1");
        assert_eq!(v["ecs"]["version"], ECS_VERSION);
        assert_eq!(v["fields"]["env"], "prod");
        assert_eq!(v["tags"][0], "a");
    }

    #[test]
    fn the_events_id_is_in_metadata_on_the_fast_path_and_the_map_path() {
        let t = EventTemplate::new_for_test(&input(""), Codec::Json, &agent());
        let mut head = id::IdHead::default();
        head.set_start(b"x\n");
        let the_id = head.id(id::input_seed("web"), 0, 2);
        let mut c = ctx(b"x", None);
        c.id = Some(the_id);
        let mut out = Vec::new();
        t.encode(&c, Decoded::Plain(Cow::Borrowed("m")), &mut out);
        let fast: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(fast["@metadata"]["_id"], the_id.as_str());
        assert_eq!(fast["@metadata"]["type"], "_doc");
        let map = t.event_map(&c, Decoded::Plain(Cow::Borrowed("m")));
        assert_eq!(map["@metadata"]["_id"], the_id.as_str());
        // Without an id (nothing to deliver), no `_id`.
        out.clear();
        t.encode(&ctx(b"x", None), Decoded::Plain(Cow::Borrowed("m")), &mut out);
        let none: Value = serde_json::from_slice(&out).unwrap();
        assert!(none["@metadata"].get("_id").is_none() && none["@metadata"]["beat"] == AGENT_TYPE, "{none}");
    }

    #[test]
    fn fields_under_root_and_truncation_flag() {
        let t = EventTemplate::new_for_test(
            &input("    fields: {env: prod}\n    fields_under_root: true\n"),
            Codec::Json,
            &agent(),
        );
        let mut out = Vec::new();
        let mut c = ctx(b"x", None);
        c.truncated = true;
        t.encode(&c, Decoded::Plain(Cow::Borrowed("m")), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["env"], "prod");
        assert_eq!(v["log"]["flags"], serde_json::json!(["truncated"]));
        // A joined multiline event is flagged on both paths (plain and ndjson).
        c.multiline = true;
        t.encode(&c, Decoded::Plain(Cow::Borrowed("m")), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["log"]["flags"], serde_json::json!(["truncated", "multiline"]));
        let nd = NdjsonConfig::default();
        let mut c = ctx(b"{}", Some(&nd));
        c.multiline = true;
        t.encode(&c, Decoded::Object(Map::new()), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["log"]["flags"], serde_json::json!(["multiline"]));
    }

    #[test]
    fn raw_codec_sends_bytes_unchanged() {
        let t = EventTemplate::new_for_test(&input(""), Codec::Raw, &agent());
        let mut out = Vec::new();
        t.encode(&ctx(b"\xffraw line", None), Decoded::Plain(Cow::Borrowed("ignored")), &mut out);
        assert_eq!(out, b"\xffraw line");
    }

    #[test]
    fn ndjson_merges_at_root_or_under_target() {
        let t = EventTemplate::new_for_test(&input(""), Codec::Json, &agent());
        let obj = |s: &str| match serde_json::from_str(s).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        let root = NdjsonConfig { message_key: Some("msg".into()), ..NdjsonConfig::default() };
        t.encode(&ctx(b"", Some(&root)), Decoded::Object(obj(r#"{"msg":"hi","host":"x","lvl":1}"#)), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "hi");
        assert_eq!(v["lvl"], 1);
        // Filebeat's builtins (host, agent, ecs) never overwrite what the document brought.
        assert_eq!(v["host"], "x");
        assert_eq!(v["agent"]["type"], AGENT_TYPE);

        // Without overwrite_keys a document's `log` joins log.offset and log.file.path (the
        // document is decoded before they are set); with it, too.
        for over in [false, true] {
            let cfg = NdjsonConfig { overwrite_keys: over, ..NdjsonConfig::default() };
            let doc = r#"{"log":{"level":"warn"},"message":"m","n":null,"o":{"p":null,"q":1.0}}"#;
            t.encode(&ctx(b"", Some(&cfg)), Decoded::Object(obj(doc)), &mut out);
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["log"]["level"], "warn");
            assert_eq!(
                (v["log"]["offset"].as_u64(), v["log"]["file"]["path"].as_str()),
                (Some(42), Some("/var/log/a \"b\".log"))
            );
            assert_eq!(v["message"], "m");
            assert!(v.get("n").is_none(), "nulls are dropped");
            assert_eq!(v["o"].to_string(), r#"{"q":1}"#, "whole floats as Go writes them");
        }

        let target = NdjsonConfig { target: "json".into(), ..NdjsonConfig::default() };
        t.encode(&ctx(b"", Some(&target)), Decoded::Object(obj(r#"{"a":1}"#)), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["json"]["a"], 1);
    }

    #[test]
    fn invalid_json_event_carries_raw_line_and_error_only_with_add_error_key() {
        let t = EventTemplate::new_for_test(&input(""), Codec::Json, &agent());
        let mut out = Vec::new();
        let invalid = || Decoded::Invalid { raw: Cow::Borrowed("{oops"), error: "unexpected EOF".into() };
        let with = NdjsonConfig { add_error_key: true, ..NdjsonConfig::default() };
        t.encode(&ctx(b"{oops", Some(&with)), invalid(), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "{oops");
        assert_eq!(v["error"]["type"], "json");
        assert_eq!(v["error"]["message"], "Error decoding JSON: unexpected EOF");
        let without = NdjsonConfig { add_error_key: false, target: "doc".into(), ..NdjsonConfig::default() };
        t.encode(&ctx(b"{oops", Some(&without)), invalid(), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "{oops");
        assert!(v.get("error").is_none() && v.get("doc").is_none(), "{v}");
    }

    #[test]
    fn document_id_timestamp_and_message_key_follow_filebeat() {
        let t = EventTemplate::new_for_test(&input(""), Codec::Json, &agent());
        let mut out = Vec::new();
        let cfg = NdjsonConfig {
            overwrite_keys: true,
            document_id: Some("meta.id".into()),
            message_key: Some("msg".into()),
            ..NdjsonConfig::default()
        };
        let doc = r#"{"meta":{"id":"abc"},"msg":"hello","@timestamp":"2026-01-02T05:04:05+02:00","type":"_x"}"#;
        let obj = match serde_json::from_str(doc).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        t.encode(&ctx(b"", Some(&cfg)), Decoded::Object(obj), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["@metadata"]["_id"], "abc");
        assert!(v["meta"].get("id").is_none());
        assert_eq!(v["message"], "hello");
        assert_eq!(v["@timestamp"], "2026-01-02T03:04:05.000Z");
        assert!(v.get("type").is_none(), "a type starting with _ is refused");
        assert_eq!(v["@metadata"]["type"], "_doc");
    }

    #[test]
    fn format_strings_render_fields() {
        let f = Format::parse("logs-%{[fields.svc]}-%{[level]}").unwrap();
        assert_eq!(f.as_static(), None);
        let m = match serde_json::json!({"fields": {"svc": "api"}, "level": "warn"}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        assert_eq!(f.render(|p| lookup_path(&m, p)).unwrap(), "logs-api-warn");
        assert_eq!(Format::parse("%{[nope]}").unwrap().render(|p| lookup_path(&m, p)), Err("nope".into()));
        assert_eq!(Format::parse("plain").unwrap().as_static().as_deref(), Some("plain"));
        assert!(Format::parse("x-%{fields.a}").is_err());
        assert!(Format::parse("x-%{[a]").is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}

/// Property tests (issue #14's bounded fuzzing of event encoding): the fast path that writes a
/// plain line's event as text and the map path processors use give the same event.
#[cfg(test)]
mod props {
    use super::*;
    use crate::config::Config;
    use std::borrow::Cow;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        #[test]
        fn the_fast_path_and_the_map_path_write_the_same_event(
            message in "\\PC*|[\\x00-\\x1f\"\\\\]{0,20}",
            path in "\\PC{0,30}",
            error in proptest::option::of("\\PC{0,20}"),
            offset in proptest::prelude::any::<u64>(),
            truncated in proptest::prelude::any::<bool>(),
            multiline in proptest::prelude::any::<bool>(),
            tags in proptest::prelude::any::<bool>(),
            stream in proptest::prelude::any::<Option<bool>>(),
        ) {
            let extra = if tags { "    tags: [a, b]\n    fields: {env: \"x\\ny\"}\n" } else { "" };
            let text = format!("inputs:\n  - id: web\n    paths: [/x]\n{extra}output:\n  kafka:\n    hosts: [h]\n    topic: t\n");
            let input = Config::from_str_at(&text, std::path::Path::new("a.yml")).unwrap().inputs.remove(0);
            let agent = AgentMeta { host_name: "h\u{1}".into(), agent_id: "a".into(), ephemeral_id: "e".into() };
            let t = EventTemplate::new(&input, &GlobalFields::default(), Codec::Json, &agent);
            let line = LineCtx {
                raw: message.as_bytes(),
                offset,
                path: &path,
                truncated,
                multiline,
                timestamp: "2026-01-02T03:04:05.006Z",
                timestamp_ms: 1_767_323_045_006,
                ndjson: None,
                id: None,
                stream: stream.map(|out| if out { "stdout" } else { "stderr" }),
            };
            let decoded = || match &error {
                None => Decoded::Plain(Cow::Borrowed(message.as_str())),
                Some(e) => Decoded::Invalid { raw: Cow::Borrowed(message.as_str()), error: e.clone() },
            };
            let mut fast = Vec::new();
            t.encode(&line, decoded(), &mut fast);
            let fast: Value = serde_json::from_slice(&fast).expect("the fast path writes JSON");
            let mut map = t.event_map(&line, decoded());
            t.add_builtin(&mut map);
            proptest::prop_assert_eq!(&fast, &Value::Object(map));
            // An empty container line has no `message` (Filebeat's filestream leaves it out).
            let kept = !(message.is_empty() && stream.is_some());
            proptest::prop_assert_eq!(fast["message"].as_str(), kept.then_some(message.as_str()));
            proptest::prop_assert_eq!(fast["log"]["file"]["path"].as_str(), Some(path.as_str()));
        }
    }
}
