//! Processor settings: Filebeat's `add_fields`, `drop_fields`, `drop_event`, `add_tags`,
//! `add_labels`, `rename`, `copy_fields`, `truncate_fields`, `convert`, `decode_json_fields`,
//! `add_locale`, `add_host_metadata`, `dissect`, `fingerprint`, `add_id` and `timestamp`, each with an optional `when` condition (`equals`,
//! `contains`, `regexp`, `range`, `has_fields`, `and`, `or`, `not`).
//!
//! Owns the `processors:` schema (per input and global) and its validation. Invariant: every
//! regex in a condition compiles and every processor names what it acts on, so running one can
//! never fail.

use super::{invalid, Invalid};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Filebeat's default `add_fields.target`.
pub const DEFAULT_ADD_FIELDS_TARGET: &str = "fields";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ProcessorConfig {
    AddFields(AddFields),
    DropFields(DropFields),
    DropEvent(DropEvent),
    AddTags(AddTags),
    AddLabels(AddLabels),
    Rename(MoveFields),
    CopyFields(MoveFields),
    TruncateFields(TruncateFields),
    Convert(Convert),
    DecodeJsonFields(DecodeJsonFields),
    AddLocale(AddLocale),
    AddHostMetadata(AddHostMetadata),
    // Boxed: its many accepted API settings make it the largest variant by far.
    AddKubernetesMetadata(Box<AddKubernetesMetadata>),
    Dissect(Dissect),
    Fingerprint(Fingerprint),
    AddId(AddId),
    Timestamp(TimestampConfig),
}

fn d_true() -> bool {
    true
}

/// Filebeat's `add_tags`: appends to the list at `target` (`tags`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddTags {
    pub tags: Vec<String>,
    #[serde(default)]
    pub target: Option<String>,
    pub when: Option<Condition>,
}

/// Filebeat's `add_labels`: every leaf, flattened to a dotted name, as text under `labels`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddLabels {
    pub labels: BTreeMap<String, serde_json::Value>,
    pub when: Option<Condition>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FromTo {
    pub from: String,
    pub to: String,
}

/// Filebeat's `rename` and `copy_fields`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MoveFields {
    pub fields: Vec<FromTo>,
    #[serde(default)]
    pub ignore_missing: bool,
    /// On a failure the event is left as it was before this processor, with `error.message`.
    #[serde(default = "d_true")]
    pub fail_on_error: bool,
    pub when: Option<Condition>,
}

/// Filebeat's `truncate_fields`: one of `max_bytes` or `max_characters`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TruncateFields {
    pub fields: Vec<String>,
    #[serde(default)]
    pub max_bytes: Option<usize>,
    #[serde(default)]
    pub max_characters: Option<usize>,
    #[serde(default)]
    pub ignore_missing: bool,
    #[serde(default = "d_true")]
    pub fail_on_error: bool,
    pub when: Option<Condition>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConvertField {
    pub from: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<ConvertType>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConvertType {
    Integer,
    Long,
    Float,
    Double,
    String,
    Boolean,
    Ip,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConvertMode {
    #[default]
    Copy,
    Rename,
}

/// Filebeat's `convert`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Convert {
    pub fields: Vec<ConvertField>,
    #[serde(default)]
    pub ignore_missing: bool,
    #[serde(default = "d_true")]
    pub fail_on_error: bool,
    #[serde(default)]
    pub mode: ConvertMode,
    /// libbeat names the processor instance with it in its log; accepted, changes no event.
    #[serde(default)]
    pub tag: Option<String>,
    pub when: Option<Condition>,
}

/// Filebeat's `decode_json_fields`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecodeJsonFields {
    pub fields: Vec<String>,
    /// Where the decoded value goes: unset, in place; `""`, merged at the root; else this field.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub overwrite_keys: bool,
    #[serde(default)]
    pub add_error_key: bool,
    #[serde(default)]
    pub process_array: bool,
    #[serde(default = "d_max_depth")]
    pub max_depth: usize,
    #[serde(default)]
    pub expand_keys: bool,
    #[serde(default)]
    pub document_id: Option<String>,
    pub when: Option<Condition>,
}

fn d_max_depth() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LocaleFormat {
    #[default]
    Offset,
    Abbreviation,
}

/// Filebeat's `add_locale`: the machine's time zone in `event.timezone`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddLocale {
    #[serde(default)]
    pub format: LocaleFormat,
    pub when: Option<Condition>,
}

/// Filebeat's `add_host_metadata`: this machine's `host.*` (no network lookups).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddHostMetadata {
    /// `host.ip` and `host.mac` of the interfaces (Filebeat 8's default: on).
    #[serde(default)]
    pub netinfo: NetInfo,
    /// Replace a `host` the event already has (the default), or only fill what is missing.
    #[serde(default = "d_true")]
    pub replace_fields: bool,
    /// Accepted: the agent reads the host's facts once at start.
    #[serde(default)]
    pub cache: Option<serde_json::Value>,
    pub when: Option<Condition>,
}

impl Default for AddHostMetadata {
    fn default() -> Self {
        Self { netinfo: NetInfo::default(), replace_fields: true, cache: None, when: None }
    }
}

/// Filebeat's `add_kubernetes_metadata`, as far as a log file's path tells. The agent never calls
/// the Kubernetes API, so of what Filebeat adds it gives what the `logs_path` matcher reads from
/// the path: pod, namespace, container name and container id (`/var/log/containers/...`), or pod
/// uid (`/var/log/pods/...`). The settings for the API are accepted and change nothing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddKubernetesMetadata {
    /// The `logs_path` matchers: their directories (default `/var/log/containers/`).
    #[serde(default)]
    pub matchers: Vec<KubernetesMatcher>,
    #[serde(default)]
    pub host: Option<serde_json::Value>,
    #[serde(default)]
    pub node: Option<serde_json::Value>,
    #[serde(default)]
    pub kube_config: Option<serde_json::Value>,
    #[serde(default)]
    pub kube_client_options: Option<serde_json::Value>,
    #[serde(default)]
    pub in_cluster: Option<serde_json::Value>,
    #[serde(default)]
    pub namespace: Option<serde_json::Value>,
    #[serde(default)]
    pub scope: Option<serde_json::Value>,
    #[serde(default)]
    pub default_indexers: Option<serde_json::Value>,
    #[serde(default)]
    pub default_matchers: Option<serde_json::Value>,
    #[serde(default)]
    pub indexers: Option<serde_json::Value>,
    #[serde(default)]
    pub add_resource_metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub labels: Option<serde_json::Value>,
    #[serde(default)]
    pub annotations: Option<serde_json::Value>,
    #[serde(default)]
    pub include_labels: Option<serde_json::Value>,
    #[serde(default)]
    pub exclude_labels: Option<serde_json::Value>,
    #[serde(default)]
    pub include_annotations: Option<serde_json::Value>,
    #[serde(default)]
    pub sync_period: Option<serde_json::Value>,
    #[serde(default)]
    pub cleanup_timeout: Option<serde_json::Value>,
    pub when: Option<Condition>,
}

/// One of `add_kubernetes_metadata`'s matchers; only `logs_path` reads anything here.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesMatcher {
    #[serde(default)]
    pub logs_path: Option<LogsPathMatcher>,
    #[serde(default)]
    pub fields: Option<serde_json::Value>,
    #[serde(default)]
    pub field_format: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsPathMatcher {
    #[serde(default)]
    pub logs_path: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
}

impl AddKubernetesMetadata {
    /// The directories whose files it reads fields from (Filebeat's default matcher's when none
    /// is given).
    pub fn log_dirs(&self) -> Vec<String> {
        let dirs: Vec<String> = self
            .matchers
            .iter()
            .filter_map(|m| m.logs_path.as_ref())
            .map(|l| l.logs_path.clone().unwrap_or_else(|| "/var/log/containers/".into()))
            .collect();
        if dirs.is_empty() {
            vec!["/var/log/containers/".into(), "/var/log/pods/".into()]
        } else {
            dirs
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetInfo {
    #[serde(default = "d_true")]
    pub enabled: bool,
}

impl Default for NetInfo {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Filebeat's `dissect`: splits a text field by a tokenizer into fields under `target_prefix`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dissect {
    /// Parsed while the config is read: a bad pattern is an error at its key and line.
    pub tokenizer: crate::processors::Tokenizer,
    #[serde(default = "d_message")]
    pub field: String,
    #[serde(default = "d_dissect")]
    pub target_prefix: String,
    /// Filebeat 8.1.3 still flags a line that does not fit (`log.flags`); this only quiets the log.
    #[serde(default)]
    pub ignore_failure: bool,
    #[serde(default)]
    pub overwrite_keys: bool,
    #[serde(default)]
    pub trim_values: TrimValues,
    #[serde(default = "d_space")]
    pub trim_chars: String,
    pub when: Option<Condition>,
}

fn d_message() -> String {
    "message".into()
}

fn d_dissect() -> String {
    "dissect".into()
}

fn d_space() -> String {
    " ".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrimValues {
    #[default]
    None,
    Left,
    Right,
    All,
}

/// Filebeat's `fingerprint`: a hash of the named fields (sorted by name) in `target_field`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    pub fields: Vec<String>,
    #[serde(default = "d_fingerprint")]
    pub target_field: String,
    #[serde(default)]
    pub method: FingerprintMethod,
    #[serde(default)]
    pub encoding: FingerprintEncoding,
    #[serde(default)]
    pub ignore_missing: bool,
    pub when: Option<Condition>,
}

fn d_fingerprint() -> String {
    "fingerprint".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintMethod {
    Md5,
    Sha1,
    #[default]
    Sha256,
    Sha384,
    Sha512,
    Xxhash,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintEncoding {
    #[default]
    Hex,
    Base32,
    Base64,
}

/// Filebeat's `add_id`: a unique id per event, in `@metadata._id` by default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddId {
    #[serde(default = "d_id_target")]
    pub target_field: String,
    /// Filebeat has one type, `elasticsearch` (time-based, 20 characters).
    #[serde(default, rename = "type")]
    pub kind: IdType,
    pub when: Option<Condition>,
}

fn d_id_target() -> String {
    "@metadata._id".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    #[default]
    Elasticsearch,
}

/// Filebeat's `timestamp`: a field's time, read by Go layouts, into `target_field`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    pub field: String,
    #[serde(default = "d_at_timestamp")]
    pub target_field: String,
    /// Go layouts (`2006-01-02T15:04:05Z07:00`), `UNIX` or `UNIX_MS`, tried in order.
    pub layouts: Vec<crate::processors::Layout>,
    /// Where a time without a zone is (UTC when unset); an unknown name is refused at load.
    #[serde(default)]
    pub timezone: Option<crate::processors::Zone>,
    /// Accepted: a missing field or a value no layout reads leaves the event as it is, either way.
    #[serde(default)]
    pub ignore_missing: bool,
    #[serde(default)]
    pub ignore_failure: bool,
    /// Example times that must parse when the config is loaded.
    #[serde(default)]
    pub test: Vec<String>,
    pub when: Option<Condition>,
}

fn d_at_timestamp() -> String {
    "@timestamp".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddFields {
    /// Where the fields go: a field name (default `fields`) or `""` for the event root.
    #[serde(default = "d_target")]
    pub target: String,
    pub fields: BTreeMap<String, serde_json::Value>,
    pub when: Option<Condition>,
}

fn d_target() -> String {
    DEFAULT_ADD_FIELDS_TARGET.to_string()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropFields {
    /// Dotted field names (`agent.ephemeral_id`).
    pub fields: Vec<String>,
    /// Filebeat logs an error for a missing field unless this is set; the agent just skips it.
    #[serde(default)]
    pub ignore_missing: bool,
    pub when: Option<Condition>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropEvent {
    /// Required: a `drop_event` without a condition would drop every event.
    pub when: Option<Condition>,
}

/// Filebeat's conditions. Field names are dotted paths into the event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Every field equals its value (strings, numbers, booleans).
    Equals(#[serde(deserialize_with = "super::dotted::flat_values")] BTreeMap<String, serde_json::Value>),
    /// Every field is a string containing its value.
    Contains(#[serde(deserialize_with = "super::dotted::flat_strings")] BTreeMap<String, String>),
    /// Every field is a string matching its regex (compiled while the config is read).
    Regexp(#[serde(deserialize_with = "super::dotted::flat_patterns")] BTreeMap<String, super::Pattern>),
    HasFields(Vec<String>),
    /// Every field is a number within its bounds (`gt`, `gte`, `lt`, `lte`).
    Range(#[serde(deserialize_with = "super::dotted::range_bounds")] BTreeMap<String, RangeBounds>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RangeBounds {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl ProcessorConfig {
    /// The processor's name (its key in the config) and its condition.
    pub fn name_and_when(&self) -> (&'static str, &Option<Condition>) {
        match self {
            ProcessorConfig::AddFields(p) => ("add_fields", &p.when),
            ProcessorConfig::DropFields(p) => ("drop_fields", &p.when),
            ProcessorConfig::DropEvent(p) => ("drop_event", &p.when),
            ProcessorConfig::AddTags(p) => ("add_tags", &p.when),
            ProcessorConfig::AddLabels(p) => ("add_labels", &p.when),
            ProcessorConfig::Rename(p) => ("rename", &p.when),
            ProcessorConfig::CopyFields(p) => ("copy_fields", &p.when),
            ProcessorConfig::TruncateFields(p) => ("truncate_fields", &p.when),
            ProcessorConfig::Convert(p) => ("convert", &p.when),
            ProcessorConfig::DecodeJsonFields(p) => ("decode_json_fields", &p.when),
            ProcessorConfig::AddLocale(p) => ("add_locale", &p.when),
            ProcessorConfig::AddHostMetadata(p) => ("add_host_metadata", &p.when),
            ProcessorConfig::AddKubernetesMetadata(p) => ("add_kubernetes_metadata", &p.when),
            ProcessorConfig::Dissect(p) => ("dissect", &p.when),
            ProcessorConfig::Fingerprint(p) => ("fingerprint", &p.when),
            ProcessorConfig::AddId(p) => ("add_id", &p.when),
            ProcessorConfig::Timestamp(p) => ("timestamp", &p.when),
        }
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), Invalid> {
        if let ProcessorConfig::TruncateFields(t) = self {
            if t.max_bytes.is_some() == t.max_characters.is_some() {
                return Err(invalid(format!("{at}.truncate_fields"), "set one of max_bytes or max_characters"));
            }
        }
        if let ProcessorConfig::Fingerprint(f) = self {
            if f.fields.is_empty() {
                return Err(invalid(format!("{at}.fingerprint.fields"), "names no field"));
            }
        }
        if let ProcessorConfig::Timestamp(t) = self {
            if t.layouts.is_empty() {
                return Err(invalid(format!("{at}.timestamp.layouts"), "names no layout"));
            }
            for (j, example) in t.test.iter().enumerate() {
                let value = serde_json::Value::String(example.clone());
                crate::processors::parse_time(&t.layouts, t.timezone.as_ref(), &value)
                    .map_err(|e| invalid(format!("{at}.timestamp.test[{j}]"), e))?;
            }
        }
        if let ProcessorConfig::Convert(c) = self {
            if let Some(j) = c.fields.iter().position(|f| f.kind.is_none() && f.to.is_none()) {
                return Err(invalid(format!("{at}.convert.fields[{j}]"), "needs a type or a to"));
            }
        }
        let (name, when) = self.name_and_when();
        let (when, name) = match self {
            ProcessorConfig::AddFields(a) => {
                if a.fields.is_empty() {
                    return Err(invalid(format!("{at}.add_fields.fields"), "names no field"));
                }
                (&a.when, "add_fields")
            }
            ProcessorConfig::DropFields(d) => {
                if d.fields.is_empty() {
                    return Err(invalid(format!("{at}.drop_fields.fields"), "names no field"));
                }
                (&d.when, "drop_fields")
            }
            ProcessorConfig::DropEvent(d) => {
                if d.when.is_none() {
                    return Err(invalid(
                        format!("{at}.drop_event"),
                        "needs a `when` condition (without one every event would be dropped)",
                    ));
                }
                (&d.when, "drop_event")
            }
            _ => (when, name),
        };
        match when {
            Some(c) => c.validate(&format!("{at}.{name}.when")),
            None => Ok(()),
        }
    }
}

impl Condition {
    pub(crate) fn validate(&self, at: &str) -> Result<(), Invalid> {
        match self {
            Condition::Regexp(_) => Ok(()),
            Condition::And(list) | Condition::Or(list) if list.is_empty() => {
                Err(invalid(at.to_string(), "an `and` or `or` needs at least one condition"))
            }
            Condition::And(list) | Condition::Or(list) => list.iter().try_for_each(|c| c.validate(at)),
            Condition::Not(c) => c.validate(at),
            Condition::Equals(m) if m.is_empty() => Err(invalid(format!("{at}.equals"), "names no field")),
            Condition::Range(m) if m.is_empty() => Err(invalid(format!("{at}.range"), "names no field")),
            Condition::Range(_) => Ok(()),
            Condition::Equals(_) | Condition::Contains(_) | Condition::HasFields(_) => Ok(()),
        }
    }
}
