//! `sinks`: FileStream sinks, each consuming Kafka topics into one local file (Kafka Connect's
//! FileStreamSink, done with fsync and rotation).
//!
//! Owns the sink schema and its validation. Invariants: two sinks never write the same file and
//! never share a consumer group (each sink's file position and group offsets move together); a
//! key of a sink's `librdkafka` map never sets a property a named setting sets.

use super::kafka::{Connection, SaslConfig, SslConfig};
use super::{invalid, HumanDuration, Invalid};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// How often a sink flushes, fsyncs its file and then commits its consumer offsets.
pub const DEFAULT_SINK_COMMIT_INTERVAL: HumanDuration = HumanDuration::from_secs(1);
pub const DEFAULT_SINK_CLIENT_ID: &str = "agent-sink";
/// Ranges of written lines (and other ids) a sink remembers by default. A file whose lines came
/// in order is one range; the limit is for gaps: lines of one file consumed through partitions
/// that are far apart (a backlog read one partition after another) or filtered out by the agent.
/// About 40 bytes each at most, so about 40 MB when every one is used.
pub const DEFAULT_SINK_DEDUP_WINDOW: usize = 1_000_000;

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name (the connector name in the Kafka Connect view).
    pub id: String,
    /// Topics to consume.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression of topic names, instead of `topics` (Kafka Connect's `topics.regex`).
    #[serde(default)]
    pub topics_pattern: Option<String>,
    /// The file lines are appended to (created if missing, mode 0640).
    pub file: PathBuf,
    pub hosts: Vec<String>,
    pub group_id: String,
    /// Where to start when the group has no committed offset (Filebeat's kafka input key).
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// What a record turns into in the file.
    #[serde(default)]
    pub format: SinkFormat,
    #[serde(default = "d_commit_interval")]
    pub commit_interval: HumanDuration,
    /// How many ranges of written lines the sink remembers, by the records' ids (the `_id` header
    /// every agent record carries, which names its bytes of its file), to drop a record sent
    /// again instead of writing it twice; as many other ids (another producer's `_id`) are
    /// remembered one by one. 0 turns it off. Each costs at most about 40 bytes of memory and 24
    /// bytes of the sink's journal.
    #[serde(default = "d_dedup_window")]
    pub dedup_window: usize,
    #[serde(default = "d_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub sasl: SaslConfig,
    #[serde(default)]
    pub ssl: SslConfig,
    /// Any other librdkafka consumer property, passed through as is.
    #[serde(default, deserialize_with = "super::dotted::flat_strings")]
    pub librdkafka: BTreeMap<String, String>,
}

fn d_commit_interval() -> HumanDuration {
    DEFAULT_SINK_COMMIT_INTERVAL
}
fn d_client_id() -> String {
    DEFAULT_SINK_CLIENT_ID.to_string()
}
fn d_dedup_window() -> usize {
    DEFAULT_SINK_DEDUP_WINDOW
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("id", &self.id)
            .field("topics", &self.topics)
            .field("topics_pattern", &self.topics_pattern)
            .field("file", &self.file)
            .field("group_id", &self.group_id)
            .field("password", &self.password.as_ref().map(|_| "*****"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InitialOffset {
    /// The oldest record still in the topic (Filebeat's and Kafka Connect's default).
    #[default]
    #[serde(alias = "oldest")]
    Earliest,
    /// Only records produced after the group first joined.
    #[serde(alias = "newest")]
    Latest,
}

/// How a record's value becomes a line of the file. Each record ends with one `\n`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// The value's bytes as they are (Kafka Connect's StringConverter).
    #[default]
    Value,
    /// The `message` field of a JSON event written by this agent (or Filebeat); other values are
    /// written as they are and counted.
    Message,
    /// Kafka Connect's JsonConverter envelope `{"schema":..,"payload":..}` (`schemas.enable=true`):
    /// the payload is written.
    ConnectJson,
    /// Kafka Connect's JsonConverter without schemas (`schemas.enable=false`): the value is a JSON
    /// value, and a JSON string is written unquoted.
    ConnectJsonSchemaless,
}

const RESERVED_CONSUMER_PROPERTIES: &[&str] = &["enable.auto.commit", "enable.auto.offset.store", "group.id"];

impl SinkConfig {
    pub(super) fn validate(&self, i: usize) -> Result<(), Invalid> {
        let k = |s: &str| format!("sinks[{i}].{s}");
        // The id names the sink's state file.
        if self.id.is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(invalid(k("id"), "must be letters, digits, '.', '_' or '-'"));
        }
        match (self.topics.is_empty(), &self.topics_pattern) {
            (true, None) => return Err(invalid(k("topics"), "give the topics to consume (or topics_pattern)")),
            (false, Some(_)) => return Err(invalid(k("topics_pattern"), "give either topics or topics_pattern")),
            (_, Some(p)) => {
                regex::Regex::new(p).map_err(|e| invalid(k("topics_pattern"), format!("invalid regex: {e}")))?;
            }
            (false, None) => {}
        }
        for (t, name) in self.topics.iter().enumerate() {
            super::kafka::check_topic_name(name).map_err(|e| invalid(k(&format!("topics[{t}]")), e))?;
        }
        if let Some(t) = self.topics.iter().position(|t| t.trim().is_empty()) {
            return Err(invalid(k(&format!("topics[{t}]")), "must not be empty"));
        }
        if self.file.as_os_str().is_empty() {
            return Err(invalid(k("file"), "must not be empty (stdout is not supported)"));
        }
        if self.group_id.trim().is_empty() {
            return Err(invalid(k("group_id"), "must not be empty"));
        }
        if self.commit_interval.is_off() {
            return Err(invalid(k("commit_interval"), "must be greater than 0"));
        }
        self.connection().validate(&k(""))?;
        // As for the output: the pass-through map may not silently undo a named setting.
        let named = self.named_properties();
        for key in self.librdkafka.keys() {
            let at = k(&format!("librdkafka.{key}"));
            if RESERVED_CONSUMER_PROPERTIES.contains(&key.as_str()) {
                return Err(invalid(at, "is managed by the agent for its guarantees"));
            }
            if named.contains_key(key) {
                return Err(invalid(at, "conflicts with a named setting of the sink that sets the same property"));
            }
        }
        Ok(())
    }

    /// The subscription: topic names, or one `^regex` as librdkafka expects patterns.
    pub fn subscription(&self) -> Vec<String> {
        match &self.topics_pattern {
            Some(p) if p.starts_with('^') => vec![p.clone()],
            Some(p) => vec![format!("^{p}")],
            None => self.topics.clone(),
        }
    }

    /// librdkafka consumer properties: the agent's defaults, the named settings, then the
    /// pass-through map (which may override the defaults, not the named settings). Offsets are
    /// committed by the sink only, after fsync.
    pub fn client_properties(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        // Patterns pick up topics created later within this interval.
        p.insert("topic.metadata.refresh.interval.ms".into(), "10000".into());
        p.extend(self.named_properties());
        p.extend(self.librdkafka.iter().map(|(k, v)| (k.clone(), v.clone())));
        p
    }

    fn named_properties(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        p.insert("group.id".into(), self.group_id.clone());
        p.insert("enable.auto.commit".into(), "false".into());
        p.insert("enable.auto.offset.store".into(), "false".into());
        let reset = match self.initial_offset {
            InitialOffset::Earliest => "earliest",
            InitialOffset::Latest => "latest",
        };
        p.insert("auto.offset.reset".into(), reset.into());
        self.connection().properties(&mut p);
        p
    }

    /// The brokers, client id, TLS and SASL settings, as every Kafka client of the agent has them.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            hosts: &self.hosts,
            client_id: &self.client_id,
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            sasl: &self.sasl,
            ssl: &self.ssl,
        }
    }
}
