//! `output.kafka`: Filebeat's key names, resolved into librdkafka properties.
//!
//! Invariant: [`KafkaConfig::client_properties`] is the only place that turns settings into
//! librdkafka properties, and a key of the `librdkafka` pass-through map may not set a property
//! that a named setting already sets (validation refuses it). Secrets are never printed: `Debug`
//! masks them.

use super::{invalid, ByteSize, HumanDuration, Invalid};
use crate::event::Format;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// `-1` (all in-sync replicas), not Filebeat's 1: the idempotent producer, on by default, needs it.
pub const DEFAULT_REQUIRED_ACKS: i8 = -1;
/// librdkafka's idempotent producer keeps at most this many requests in flight per connection.
const IDEMPOTENT_MAX_IN_FLIGHT: u32 = 5;
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 4;
pub const DEFAULT_MAX_MESSAGE_BYTES: ByteSize = ByteSize(1_000_000);
pub const DEFAULT_BULK_MAX_SIZE: usize = 2048;
pub const DEFAULT_BULK_FLUSH_FREQUENCY: HumanDuration = HumanDuration::from_millis(10);
pub const DEFAULT_CLIENT_ID: &str = "agent";
pub const DEFAULT_TIMEOUT: HumanDuration = HumanDuration::from_secs(30);
pub const DEFAULT_BROKER_TIMEOUT: HumanDuration = HumanDuration::from_secs(10);
pub const DEFAULT_METADATA_REFRESH: HumanDuration = HumanDuration::from_secs(600);
pub const DEFAULT_BACKOFF_INIT: HumanDuration = HumanDuration::from_secs(1);
pub const DEFAULT_BACKOFF_MAX: HumanDuration = HumanDuration::from_secs(60);
pub const DEFAULT_GROUP_EVENTS: usize = 1;
/// librdkafka producer queue bounds set by the agent (overridable through `librdkafka`). Each
/// record held costs about 550 bytes beyond its payload (librdkafka's message, the `_id` header's
/// three allocations), so on short lines the message count, not the kilobytes, bounds the memory:
/// 8,192 records per producer (four batches of Filebeat's default `bulk_max_size`) ship a raw
/// catch-up as fast as 16,384 did, at 0.87x the CPU and 6.6 MB less peak RSS; 4,096 was 10-20 %
/// slower (README, "librdkafka's queue by records").
pub const DEFAULT_PRODUCER_QUEUE_MESSAGES: usize = 8_192;
pub const DEFAULT_PRODUCER_QUEUE_KBYTES: usize = 4_096;
/// `worker: 0` (the default) means one producer per core, up to this many.
pub const MAX_AUTO_WORKERS: usize = 4;

/// Properties the agent relies on for its guarantees; the pass-through map may not touch them.
const RESERVED_PROPERTIES: &[&str] = &["message.timeout.ms", "delivery.report.only.error", "enable.idempotence"];

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub hosts: Vec<String>,
    /// Topic, or a format string such as `logs-%{[fields.service]}`.
    pub topic: Format,
    /// Optional record key, a format string.
    #[serde(default)]
    pub key: Option<Format>,
    /// `round_robin: {...}`, `hash: {}` or `random: {}`, as in Filebeat.
    #[serde(default)]
    pub partition: Partitioning,
    #[serde(default = "d_acks")]
    pub required_acks: i8,
    /// librdkafka's idempotent producer (`enable.idempotence`): its own retries never write a
    /// record twice or out of order. Unset, it is on whenever `required_acks` is -1 (the
    /// default); see [`KafkaConfig::idempotent`].
    #[serde(default)]
    pub idempotent: Option<bool>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default = "d_level")]
    pub compression_level: i32,
    #[serde(default = "d_max_message_bytes")]
    pub max_message_bytes: ByteSize,
    #[serde(default = "d_bulk_max_size")]
    pub bulk_max_size: usize,
    /// Producer instances (Filebeat's `worker`); 0 picks one per CPU core, at most 4.
    #[serde(default)]
    pub worker: usize,
    #[serde(default = "d_bulk_flush_frequency")]
    pub bulk_flush_frequency: HumanDuration,
    #[serde(default = "d_client_id")]
    pub client_id: String,
    #[serde(default = "d_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "d_broker_timeout")]
    pub broker_timeout: HumanDuration,
    #[serde(default)]
    pub metadata: MetadataConfig,
    #[serde(default)]
    pub backoff: KafkaBackoff,
    #[serde(default)]
    pub codec: Codec,
    /// The format string of `codec: format` (Filebeat's `codec.format.string`).
    #[serde(default)]
    pub codec_format: Option<Format>,
    /// `codec: json`'s options (Filebeat's `codec.json.*`).
    #[serde(default)]
    pub codec_json: JsonCodecOptions,
    /// Filebeat's topic rules, tried in order before `topic`: the first whose `when` holds and
    /// whose `topic` renders (then through `mappings`, else `default`) names the event's topic.
    #[serde(default)]
    pub topics: Vec<TopicRule>,
    /// Record headers added to every record (Filebeat's `headers`; text values).
    #[serde(default)]
    pub headers: Vec<RecordHeader>,
    /// Each event's id: `@metadata._id` in JSON events and the `_id` record header with every
    /// codec ([`crate::event::id`]). On by default; `false` saves its cost (the README's
    /// benchmark gives it).
    #[serde(default = "super::d_true")]
    pub event_id: bool,
    /// Whether the id also goes in the `_id` record header (default true). `false` keeps it in
    /// `@metadata._id` only: about a third less CPU per GB with the raw codec, under a tenth with
    /// JSON events (librdkafka's per-record header costs that; the README's benchmark), for
    /// consumers that take the id from the event; the FileStream sink and raw-codec records then
    /// have no id to drop duplicates by.
    #[serde(default = "super::d_true")]
    pub event_id_header: bool,
    /// Kafka protocol version the brokers speak at least (Filebeat's `version`); below 0.10 the
    /// client cannot ask the broker, so librdkafka is told (`broker.version.fallback`).
    #[serde(default)]
    pub version: Option<String>,
    /// TCP keep-alive on broker connections when not 0 (Filebeat's `keep_alive`; librdkafka's
    /// `socket.keepalive.enable` leaves the interval to the operating system).
    #[serde(default)]
    pub keep_alive: HumanDuration,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub sasl: SaslConfig,
    #[serde(default)]
    pub ssl: SslConfig,
    /// Any other librdkafka property, passed through as is.
    #[serde(default, deserialize_with = "super::dotted::flat_strings")]
    pub librdkafka: BTreeMap<String, String>,
}

fn d_acks() -> i8 {
    DEFAULT_REQUIRED_ACKS
}
fn d_level() -> i32 {
    DEFAULT_COMPRESSION_LEVEL
}
fn d_max_message_bytes() -> ByteSize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn d_bulk_max_size() -> usize {
    DEFAULT_BULK_MAX_SIZE
}
fn d_bulk_flush_frequency() -> HumanDuration {
    DEFAULT_BULK_FLUSH_FREQUENCY
}
fn d_client_id() -> String {
    DEFAULT_CLIENT_ID.to_string()
}
fn d_timeout() -> HumanDuration {
    DEFAULT_TIMEOUT
}
fn d_broker_timeout() -> HumanDuration {
    DEFAULT_BROKER_TIMEOUT
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("hosts", &self.hosts)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("required_acks", &self.required_acks)
            .field("idempotent", &self.idempotent())
            .field("compression", &self.compression)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "*****"))
            .finish_non_exhaustive()
    }
}

/// One `topics` rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// A topic, or a format string (`%{[fields.log_topic]}`).
    pub topic: Format,
    /// The rendered topic looked up here when set (Filebeat's `mappings`).
    #[serde(default, deserialize_with = "super::dotted::flat_strings")]
    pub mappings: BTreeMap<String, String>,
    /// The topic when `mappings` has no entry for the rendered one.
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub when: Option<super::Condition>,
}

/// One `headers` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordHeader {
    pub key: String,
    pub value: String,
}

/// How records are spread over the topic's partitions.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Partitioning {
    /// The agent picks partitions in turn from the topic's metadata.
    RoundRobin(RoundRobin),
    /// The partition is Filebeat's hash of the key (FNV-1a, `(hash & 0x7fffffff) % partitions`),
    /// so keyed events land where Filebeat put them; keyless records go to a random partition.
    Hash(HashPartitioning),
    /// librdkafka picks a random partition per record.
    Random(RandomPartitioning),
}

impl Default for Partitioning {
    fn default() -> Self {
        Partitioning::RoundRobin(RoundRobin::default())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoundRobin {
    /// Only use partitions whose leader broker is currently up.
    #[serde(default)]
    pub reachable_only: bool,
    /// Consecutive events sent to one partition before moving to the next.
    #[serde(default = "d_group_events")]
    pub group_events: usize,
}
impl Default for RoundRobin {
    fn default() -> Self {
        Self { reachable_only: false, group_events: DEFAULT_GROUP_EVENTS }
    }
}
fn d_group_events() -> usize {
    DEFAULT_GROUP_EVENTS
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HashPartitioning {
    /// Event fields whose values pick the partition instead of the key (Filebeat's `hash.hash`:
    /// FNV-1a of the values in order, as Filebeat hashes them).
    #[serde(default)]
    pub hash: Vec<String>,
    /// Filebeat's `hash.random`: a keyless record, or one whose hash fields are missing, goes to
    /// a random partition. `false` is accepted and logged: Filebeat then drops an event whose
    /// fields cannot be hashed; the agent sends it to a random partition.
    #[serde(default)]
    pub random: Option<bool>,
    /// Accepted; a keyed record must go to its partition, so nothing is skipped for it.
    #[serde(default)]
    pub reachable_only: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RandomPartitioning {
    /// Filebeat's `group_events` (1): only 1 is supported.
    #[serde(default = "d_group_events")]
    pub group_events: usize,
    #[serde(default)]
    pub reachable_only: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn librdkafka_name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// What a record's value is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Filebeat-compatible JSON document.
    #[default]
    Json,
    /// The line's bytes, unchanged (what Kafka Connect's FileStream source sends with
    /// StringConverter).
    Raw,
    /// The line as Kafka Connect's JsonConverter writes a string with `schemas.enable=true`:
    /// `{"schema":{"type":"string","optional":false},"payload":"<line>"}`.
    ConnectJson,
    /// The line as Kafka Connect's JsonConverter writes a string with `schemas.enable=false`: a
    /// JSON string.
    ConnectJsonSchemaless,
    /// The record is `codec_format` rendered from the event (Filebeat's `codec.format.string`,
    /// e.g. `'%{[@timestamp]} %{[message]}'`); an event lacking a field it names is dropped and
    /// counted, as Filebeat drops it.
    Format,
}

/// Filebeat's `codec.json` options (its `escape_html` is accepted by the Filebeat reader and
/// changes nothing, as in Filebeat 8.1.3's Kafka output, which writes `<`, `>` and `&` as they are).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JsonCodecOptions {
    /// Indented JSON (two spaces), one line per field, as Filebeat's `pretty: true`.
    #[serde(default)]
    pub pretty: bool,
}

impl JsonCodecOptions {
    /// Writes an event as these options want it: compact, or indented with `pretty`.
    pub fn write(self, out: &mut Vec<u8>, event: &impl serde::Serialize) {
        let written =
            if self.pretty { serde_json::to_writer_pretty(out, event) } else { serde_json::to_writer(out, event) };
        written.expect("writing a JSON value into a Vec");
    }
}

impl Codec {
    /// Whether events are built with their fields (processors need them).
    pub fn has_fields(self) -> bool {
        matches!(self, Codec::Json | Codec::Format)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    #[serde(default = "d_metadata_refresh")]
    pub refresh_frequency: HumanDuration,
}
impl Default for MetadataConfig {
    fn default() -> Self {
        Self { refresh_frequency: d_metadata_refresh() }
    }
}
fn d_metadata_refresh() -> HumanDuration {
    DEFAULT_METADATA_REFRESH
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaBackoff {
    #[serde(default = "d_backoff_init")]
    pub init: HumanDuration,
    #[serde(default = "d_backoff_max")]
    pub max: HumanDuration,
}
impl Default for KafkaBackoff {
    fn default() -> Self {
        Self { init: d_backoff_init(), max: d_backoff_max() }
    }
}
fn d_backoff_init() -> HumanDuration {
    DEFAULT_BACKOFF_INIT
}
fn d_backoff_max() -> HumanDuration {
    DEFAULT_BACKOFF_MAX
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; PLAIN when `username` is set and this is not.
    #[serde(default)]
    pub mechanism: Option<String>,
}

#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SslConfig {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub certificate_authorities: Vec<String>,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_passphrase: Option<String>,
    /// `full` (default) and `strict`: the certificate chain and the host name are checked;
    /// `certificate`: the chain only; `none`: nothing (Filebeat's modes).
    #[serde(default)]
    pub verification_mode: Option<String>,
    /// Filebeat's cipher suite names (Go's), each mapped to OpenSSL's for librdkafka's
    /// `ssl.cipher.suites`. Like Go, they restrict TLS 1.2 and older: the TLS 1.3 names are
    /// accepted and TLS 1.3 keeps OpenSSL's suites.
    #[serde(default)]
    pub cipher_suites: Vec<CipherSuite>,
    /// Filebeat's TLS versions: the lowest and the highest listed bound the handshake, as in
    /// Filebeat. librdkafka has no such setting, so the agent sets OpenSSL's own bounds for the
    /// whole process ([`crate::tls_versions`]): every TLS client must give the same list.
    #[serde(default)]
    pub supported_protocols: Vec<TlsVersion>,
}

/// A TLS version as Filebeat names it in `ssl.supported_protocols`, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl TlsVersion {
    /// The name OpenSSL's `MinProtocol` / `MaxProtocol` take.
    pub fn openssl(self) -> &'static str {
        match self {
            TlsVersion::V1_0 => "TLSv1",
            TlsVersion::V1_1 => "TLSv1.1",
            TlsVersion::V1_2 => "TLSv1.2",
            TlsVersion::V1_3 => "TLSv1.3",
        }
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match name.as_str() {
            // libbeat's names (`TLSv1` is its alias for 1.0).
            "TLSv1" | "TLSv1.0" => Ok(TlsVersion::V1_0),
            "TLSv1.1" => Ok(TlsVersion::V1_1),
            "TLSv1.2" => Ok(TlsVersion::V1_2),
            "TLSv1.3" => Ok(TlsVersion::V1_3),
            "SSLv3" => Err(serde::de::Error::custom("SSLv3 is not supported: OpenSSL 3 has no SSLv3")),
            _ => Err(serde::de::Error::custom(format!(
                "invalid TLS version '{name}' (one of TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3)"
            ))),
        }
    }
}

/// One of Filebeat's `ssl.cipher_suites` names, with the OpenSSL name it stands for (`None` for
/// the TLS 1.3 suites, which neither Go nor librdkafka lets a client choose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherSuite {
    pub name: String,
    pub openssl: Option<&'static str>,
}

/// libbeat's names (its `tlsCipherSuites` table, typo `POLY1205` included) and OpenSSL's.
const CIPHER_SUITES: &[(&str, Option<&str>)] = &[
    ("ECDHE-ECDSA-AES-128-CBC-SHA", Some("ECDHE-ECDSA-AES128-SHA")),
    ("ECDHE-ECDSA-AES-128-CBC-SHA256", Some("ECDHE-ECDSA-AES128-SHA256")),
    ("ECDHE-ECDSA-AES-128-GCM-SHA256", Some("ECDHE-ECDSA-AES128-GCM-SHA256")),
    ("ECDHE-ECDSA-AES-256-CBC-SHA", Some("ECDHE-ECDSA-AES256-SHA")),
    ("ECDHE-ECDSA-AES-256-GCM-SHA384", Some("ECDHE-ECDSA-AES256-GCM-SHA384")),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", Some("ECDHE-ECDSA-CHACHA20-POLY1305")),
    ("ECDHE-ECDSA-RC4-128-SHA", Some("ECDHE-ECDSA-RC4-SHA")),
    ("ECDHE-RSA-3DES-CBC3-SHA", Some("ECDHE-RSA-DES-CBC3-SHA")),
    ("ECDHE-RSA-AES-128-CBC-SHA", Some("ECDHE-RSA-AES128-SHA")),
    ("ECDHE-RSA-AES-128-CBC-SHA256", Some("ECDHE-RSA-AES128-SHA256")),
    ("ECDHE-RSA-AES-128-GCM-SHA256", Some("ECDHE-RSA-AES128-GCM-SHA256")),
    ("ECDHE-RSA-AES-256-CBC-SHA", Some("ECDHE-RSA-AES256-SHA")),
    ("ECDHE-RSA-AES-256-GCM-SHA384", Some("ECDHE-RSA-AES256-GCM-SHA384")),
    ("ECDHE-RSA-CHACHA20-POLY1205", Some("ECDHE-RSA-CHACHA20-POLY1305")),
    ("ECDHE-RSA-RC4-128-SHA", Some("ECDHE-RSA-RC4-SHA")),
    ("RSA-RC4-128-SHA", Some("RC4-SHA")),
    ("RSA-3DES-CBC3-SHA", Some("DES-CBC3-SHA")),
    ("RSA-AES-128-CBC-SHA", Some("AES128-SHA")),
    ("RSA-AES-128-CBC-SHA256", Some("AES128-SHA256")),
    ("RSA-AES-128-GCM-SHA256", Some("AES128-GCM-SHA256")),
    ("RSA-AES-256-CBC-SHA", Some("AES256-SHA")),
    ("RSA-AES-256-GCM-SHA384", Some("AES256-GCM-SHA384")),
    ("TLS-AES-128-GCM-SHA256", None),
    ("TLS-AES-256-GCM-SHA384", None),
    ("TLS-CHACHA20-POLY1305-SHA256", None),
];

impl<'de> Deserialize<'de> for CipherSuite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match CIPHER_SUITES.iter().find(|(n, _)| *n == name) {
            Some((_, openssl)) => Ok(CipherSuite { name, openssl: *openssl }),
            None => {
                let known: Vec<&str> = CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
                Err(serde::de::Error::custom(format!(
                    "invalid tls cipher suite '{name}' (one of {})",
                    known.join(", ")
                )))
            }
        }
    }
}

impl fmt::Debug for SslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SslConfig")
            .field("enabled", &self.enabled)
            .field("certificate_authorities", &self.certificate_authorities)
            .field("key_passphrase", &self.key_passphrase.as_ref().map(|_| "*****"))
            .finish_non_exhaustive()
    }
}

impl SslConfig {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.certificate_authorities.is_empty() || self.certificate.is_some())
    }

    /// The lowest and highest TLS version allowed, when TLS is on and `supported_protocols` set.
    pub fn tls_range(&self) -> Option<(TlsVersion, TlsVersion)> {
        let versions = &self.supported_protocols;
        (self.is_enabled() && !versions.is_empty())
            .then(|| (*versions.iter().min().unwrap(), *versions.iter().max().unwrap()))
    }
}

impl KafkaConfig {
    /// Producer instances to run.
    pub fn workers(&self) -> usize {
        match self.worker {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_AUTO_WORKERS),
            n => n,
        }
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let k = |s: &str| format!("output.kafka.{s}");
        if self.worker > 64 {
            return Err(invalid(k("worker"), "must be at most 64"));
        }
        if self.topic.as_str().trim().is_empty() {
            return Err(invalid(k("topic"), "must not be empty"));
        }
        for (i, rule) in self.topics.iter().enumerate() {
            let at = k(&format!("topics[{i}]"));
            if let Some(w) = &rule.when {
                w.validate(&format!("{at}.when"))?;
            }
        }
        if let Some(name) = self.topic.as_static() {
            check_topic_name(&name).map_err(|e| invalid(k("topic"), e))?;
        }
        match (self.codec, &self.codec_format) {
            (Codec::Format, None) => {
                return Err(invalid(k("codec"), "format needs codec_format (codec.format.string)"))
            }
            (Codec::Format, Some(_)) => {}
            (_, Some(_)) => return Err(invalid(k("codec_format"), "only applies to codec: format")),
            _ => {}
        }
        match (self.codec, self.codec_json) {
            (Codec::Json, _) => {}
            (_, o) if o != JsonCodecOptions::default() => {
                return Err(invalid(k("codec_json"), "only applies to codec: json"))
            }
            _ => {}
        }
        if let Some(v) = &self.version {
            parse_version(v)
                .ok_or_else(|| invalid(k("version"), format!("{v:?} is not a Kafka version such as 2.1.0")))?;
        }
        if ![0, 1, -1].contains(&self.required_acks) {
            return Err(invalid(k("required_acks"), "must be 0, 1 or -1"));
        }
        self.validate_idempotence()?;
        self.validate_compression_level()?;
        self.validate_ranges()?;
        match &self.partition {
            Partitioning::RoundRobin(rr) if rr.group_events == 0 => {
                return Err(invalid(k("partition.round_robin.group_events"), "must be at least 1"))
            }
            Partitioning::Random(r) if r.group_events != 1 => {
                return Err(invalid(k("partition.random.group_events"), "only 1 is supported"))
            }
            _ => {}
        }
        self.connection().validate("output.kafka.")?;
        self.validate_pass_through()
    }

    /// Each setting that becomes a librdkafka property is within that property's range, so a
    /// value that passes `test config` never stops the agent at start (or wraps around).
    fn validate_ranges(&self) -> Result<(), Invalid> {
        let ms = |d: HumanDuration| d.0.as_millis();
        let checks: [(&str, u128, u128, u128); 8] = [
            ("timeout", ms(self.timeout), 10, 300_000),
            ("broker_timeout", ms(self.broker_timeout), 1, 900_000),
            ("metadata.refresh_frequency", ms(self.metadata.refresh_frequency), 0, 3_600_000),
            ("backoff.init", ms(self.backoff.init), 1, 300_000),
            ("backoff.max", ms(self.backoff.max), 1, 300_000),
            ("bulk_flush_frequency", ms(self.bulk_flush_frequency), 0, 900_000),
            ("bulk_max_size", self.bulk_max_size as u128, 1, 1_000_000),
            ("max_message_bytes", u128::from(self.max_message_bytes.0), 1000, 1_000_000_000),
        ];
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                let unit = if key.starts_with("bulk_max") || key.starts_with("max_message") { "" } else { " ms" };
                return Err(invalid(
                    format!("output.kafka.{key}"),
                    format!("must be between {min}{unit} and {max}{unit} (librdkafka's range), not {value}{unit}"),
                ));
            }
        }
        if self.backoff.init > self.backoff.max {
            return Err(invalid("output.kafka.backoff.init", "must not be greater than backoff.max"));
        }
        Ok(())
    }

    /// librdkafka refuses to start an idempotent producer with fewer acks than all, or with more
    /// than five requests in flight per connection: both are refused here, naming the key.
    fn validate_idempotence(&self) -> Result<(), Invalid> {
        if !self.idempotent() {
            return Ok(());
        }
        if self.required_acks != -1 {
            return Err(invalid(
                "output.kafka.idempotent",
                format!(
                    "needs required_acks: -1 (not {}); set idempotent: false to send with fewer acks",
                    self.required_acks
                ),
            ));
        }
        for key in ["max.in.flight.requests.per.connection", "max.in.flight"] {
            if let Some(v) = self.librdkafka.get(key) {
                if v.parse::<u32>().map_or(true, |n| n > IDEMPOTENT_MAX_IN_FLIGHT) {
                    return Err(invalid(
                        format!("output.kafka.librdkafka.{key}"),
                        format!("must be at most {IDEMPOTENT_MAX_IN_FLIGHT} with the idempotent producer (not {v}); set output.kafka.idempotent: false to raise it"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the producer is idempotent: `idempotent` when set, else whenever `required_acks`
    /// is -1 (so a Filebeat file that asks for `required_acks: 1` gets a plain producer, as
    /// Filebeat has, rather than an error).
    pub fn idempotent(&self) -> bool {
        self.idempotent.unwrap_or(self.required_acks == -1)
    }

    fn validate_compression_level(&self) -> Result<(), Invalid> {
        let range = match self.compression {
            Compression::Gzip => -1..=9,
            Compression::Lz4 => 0..=12,
            Compression::Zstd => -1..=22,
            Compression::None | Compression::Snappy => -1..=0,
        };
        // Filebeat's default level (4) only applies to gzip; other codecs take their own default.
        if self.compression != Compression::Gzip && self.compression_level == DEFAULT_COMPRESSION_LEVEL {
            return Ok(());
        }
        if !range.contains(&self.compression_level) {
            return Err(invalid(
                "output.kafka.compression_level",
                format!("must be in {}..={} for {:?}", range.start(), range.end(), self.compression),
            ));
        }
        Ok(())
    }

    fn validate_pass_through(&self) -> Result<(), Invalid> {
        let named = self.named_properties();
        for key in self.librdkafka.keys() {
            let at = format!("output.kafka.librdkafka.{key}");
            if RESERVED_PROPERTIES.contains(&key.as_str()) {
                return Err(invalid(at, "is managed by the agent for its delivery guarantees"));
            }
            if named.contains_key(key) {
                return Err(invalid(at, "conflicts with a named setting of output.kafka that sets the same property"));
            }
        }
        Ok(())
    }

    /// librdkafka properties for the producer: the agent's defaults, the named settings, then the
    /// pass-through map (which may override the defaults, not the named settings).
    pub fn client_properties(&self) -> BTreeMap<String, String> {
        let mut p = self.default_properties();
        p.extend(self.named_properties());
        for (k, v) in &self.librdkafka {
            p.insert(k.clone(), v.clone());
        }
        // Retriable errors are retried for as long as it takes: the files on disk are the buffer.
        p.insert("message.timeout.ms".into(), "0".into());
        p
    }

    /// librdkafka's own buffering defaults (100,000 messages, 1 GB) would hold far more than the
    /// agent needs: the files on disk are the buffer. These bound its memory; four full
    /// `bulk_max_size` batches per producer stay in flight, so the next batches fill while one is
    /// compressed and sent.
    fn default_properties(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let messages = (self.bulk_max_size * 4).max(DEFAULT_PRODUCER_QUEUE_MESSAGES);
        p.insert("queue.buffering.max.messages".into(), messages.to_string());
        p.insert("queue.buffering.max.kbytes".into(), DEFAULT_PRODUCER_QUEUE_KBYTES.to_string());
        p
    }

    fn named_properties(&self) -> BTreeMap<String, String> {
        let ms = |d: HumanDuration| d.0.as_millis().to_string();
        let mut p = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            p.insert(k.to_string(), v);
        };
        set("acks", self.required_acks.to_string());
        set("enable.idempotence", self.idempotent().to_string());
        set("compression.codec", self.compression.librdkafka_name().into());
        if self.compression != Compression::None
            && (self.compression == Compression::Gzip || self.compression_level != DEFAULT_COMPRESSION_LEVEL)
        {
            set("compression.level", self.compression_level.to_string());
        }
        set("message.max.bytes", (self.max_message_bytes.0 + 1024).max(1_000_000).to_string());
        set("batch.num.messages", self.bulk_max_size.to_string());
        set("linger.ms", ms(self.bulk_flush_frequency));
        set("socket.timeout.ms", ms(self.timeout));
        set("request.timeout.ms", ms(self.broker_timeout));
        set("topic.metadata.refresh.interval.ms", ms(self.metadata.refresh_frequency));
        set("retry.backoff.ms", ms(self.backoff.init));
        set("retry.backoff.max.ms", ms(self.backoff.max));
        set(
            "partitioner",
            match self.partition {
                Partitioning::Hash(_) => "murmur2_random",
                _ => "random",
            }
            .into(),
        );
        if let Some(v) = self.version.as_deref().and_then(parse_version) {
            if v < (0, 10) {
                p.insert("api.version.request".into(), "false".into());
                p.insert("broker.version.fallback".into(), self.version.clone().unwrap_or_default());
            }
        }
        if !self.keep_alive.is_off() {
            p.insert("socket.keepalive.enable".into(), "true".into());
        }
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

/// A name Kafka accepts for a topic: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`. A record for
/// any other name is refused by the broker on every try, which is no outage to wait out.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("a topic name has 1 to 249 characters ({:?} has {})", name, name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a topic name Kafka accepts"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{name:?} is not a topic name Kafka accepts: {c:?} is outside [a-zA-Z0-9._-]"));
    }
    Ok(())
}

/// A Kafka version's major and minor numbers (`2.1.0` → (2, 1); `0.8.2.0` → (0, 8)).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    parts.all(|p| p.parse::<u32>().is_ok()).then_some((major, minor))
}

/// How a Kafka client reaches and logs in to the brokers: the settings the output and every sink
/// share, borrowed from either config. Their serde schemas each declare these keys, because
/// `serde(flatten)` would lose `deny_unknown_fields` and with it the "unknown key" errors; this
/// one view validates them and turns them into librdkafka properties for both.
pub struct Connection<'a> {
    pub hosts: &'a [String],
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub sasl: &'a SaslConfig,
    pub ssl: &'a SslConfig,
}

impl Connection<'_> {
    /// Checks the settings; `prefix` is the client's key with its dot (`output.kafka.`, `sinks[0].`).
    pub(super) fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        let k = |s: &str| format!("{prefix}{s}");
        if self.hosts.is_empty() {
            return Err(invalid(k("hosts"), "needs at least one broker address"));
        }
        if let Some(m) = &self.sasl.mechanism {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                return Err(invalid(k("sasl.mechanism"), "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"));
            }
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(invalid(k("password"), "username and password must be set together"));
        }
        if let Some(v) = &self.ssl.verification_mode {
            if !["full", "strict", "certificate", "none"].contains(&v.as_str()) {
                return Err(invalid(k("ssl.verification_mode"), "must be full, strict, certificate or none"));
            }
        }
        if self.ssl.certificate_authorities.len() > 1 {
            return Err(invalid(
                k("ssl.certificate_authorities"),
                "give one CA bundle file (concatenate the certificates)",
            ));
        }
        Ok(())
    }

    /// librdkafka's properties for the brokers, the client id, TLS and SASL.
    pub(super) fn properties(&self, p: &mut BTreeMap<String, String>) {
        p.insert("bootstrap.servers".into(), self.hosts.join(","));
        p.insert("client.id".into(), self.client_id.into());
        let (with_sasl, with_ssl) = (self.username.is_some(), self.ssl.is_enabled());
        let protocol = match (with_sasl, with_ssl) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        p.insert("security.protocol".into(), protocol.into());
        if let (Some(user), Some(pass)) = (self.username, self.password) {
            p.insert("sasl.mechanism".into(), self.sasl.mechanism.clone().unwrap_or_else(|| "PLAIN".into()));
            p.insert("sasl.username".into(), user.into());
            p.insert("sasl.password".into(), pass.into());
        }
        let ssl = self.ssl;
        if with_ssl {
            if let Some(ca) = ssl.certificate_authorities.first() {
                p.insert("ssl.ca.location".into(), ca.clone());
            }
            if let Some(c) = &ssl.certificate {
                p.insert("ssl.certificate.location".into(), c.clone());
            }
            if let Some(k) = &ssl.key {
                p.insert("ssl.key.location".into(), k.clone());
            }
            if let Some(k) = &ssl.key_passphrase {
                p.insert("ssl.key.password".into(), k.clone());
            }
            // full and strict check the chain and the host name; certificate only the chain.
            let mode = ssl.verification_mode.as_deref().unwrap_or("full");
            p.insert("enable.ssl.certificate.verification".into(), (mode != "none").to_string());
            let hostname = if matches!(mode, "full" | "strict") { "https" } else { "none" };
            p.insert("ssl.endpoint.identification.algorithm".into(), hostname.into());
            let suites: Vec<&str> = ssl.cipher_suites.iter().filter_map(|c| c.openssl).collect();
            if !suites.is_empty() {
                p.insert("ssl.cipher.suites".into(), suites.join(":"));
            }
        }
    }
}

/// Property names whose values must never be logged.
pub fn is_secret_property(name: &str) -> bool {
    name.contains("password") || name.contains("secret")
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn kafka(extra: &str) -> Result<Config, String> {
        let text = format!("output:\n  kafka:\n    hosts: [h:9092]\n    topic: t\n{extra}");
        Config::from_str_at(&text, Path::new("a.yml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_output_and_a_sink_reach_and_log_in_to_kafka_alike() {
        let conn = "    client_id: c\n    username: u\n    password: p\n    sasl.mechanism: SCRAM-SHA-512\n    ssl.certificate_authorities: [/ca.pem]\n    ssl.verification_mode: certificate\n";
        let sink = format!(
            "sinks:\n  - id: s\n    topics: [t]\n    file: /tmp/s.out\n    hosts: [h:9092]\n    group_id: g\n{conn}"
        );
        let c = kafka(&format!("{conn}{sink}")).unwrap();
        let (out, sink) = (c.kafka().unwrap().client_properties(), c.sinks[0].client_properties());
        let keys = ["bootstrap.servers", "client.id", "security.protocol", "sasl.mechanism", "sasl.username"];
        let keys = keys.iter().chain(&["ssl.ca.location", "ssl.endpoint.identification.algorithm"]);
        for k in keys {
            assert_eq!(out.get(*k), sink.get(*k), "{k}");
        }
        assert_eq!((out["security.protocol"].as_str(), out["client.id"].as_str()), ("sasl_ssl", "c"));
        // One check, each client's key named.
        let half = "    username: u\n";
        assert!(kafka(half).unwrap_err().contains("output.kafka.password"));
        let sink = format!(
            "sinks:\n  - id: s\n    topics: [t]\n    file: /tmp/s.out\n    hosts: [h:9092]\n    group_id: g\n{half}"
        );
        assert!(kafka(&sink).unwrap_err().contains("sinks[0].password"));
    }

    #[test]
    fn supported_protocols_bound_tls_from_the_lowest_to_the_highest_listed() {
        use super::TlsVersion::*;
        let range = |extra: &str| kafka(extra).unwrap().tls_range();
        let tls = "    ssl.certificate_authorities: [/ca.pem]\n";
        assert_eq!(range(&format!("{tls}    ssl.supported_protocols: [TLSv1.3, TLSv1.1]\n")), Some((V1_1, V1_3)));
        assert_eq!(range(&format!("{tls}    ssl.supported_protocols: [TLSv1, TLSv1.2]\n")), Some((V1_0, V1_2)));
        assert_eq!(range(tls), None, "OpenSSL's own bounds");
        assert_eq!(range("    ssl.supported_protocols: [TLSv1.2]\n"), None, "no TLS, nothing to bound");
        let err = kafka(&format!("{tls}    ssl.supported_protocols: [SSLv3]\n")).unwrap_err();
        assert!(
            err.contains("output.kafka.ssl.supported_protocols") && err.contains("SSLv3 is not supported"),
            "{err}"
        );
        // Applied to the whole process: a sink with TLS must list the same versions.
        let sink = |protocols: &str| {
            format!("{tls}    ssl.supported_protocols: [TLSv1.2]\nsinks:\n  - id: s\n    topics: [t]\n    file: /tmp/s.out\n    hosts: [h:9092]\n    group_id: g\n    ssl.certificate_authorities: [/ca.pem]\n{protocols}")
        };
        assert!(kafka(&sink("    ssl.supported_protocols: [TLSv1.2]\n")).is_ok());
        let err = kafka(&sink("    ssl.supported_protocols: [TLSv1.3]\n")).unwrap_err();
        assert!(err.contains("sinks[0].ssl.supported_protocols") && err.contains("whole process"), "{err}");
        assert!(kafka(&sink("")).unwrap_err().contains("sinks[0].ssl.supported_protocols"));
    }

    #[test]
    fn idempotence_follows_required_acks_unless_set() {
        let props = |extra: &str| kafka(extra).unwrap().kafka().unwrap().client_properties();
        let p = props("");
        assert_eq!((p["acks"].as_str(), p["enable.idempotence"].as_str()), ("-1", "true"));
        // A Filebeat file asking for fewer acks gets the plain producer it had under Filebeat.
        let p = props("    required_acks: 1\n");
        assert_eq!((p["acks"].as_str(), p["enable.idempotence"].as_str()), ("1", "false"));
        assert_eq!(props("    idempotent: false\n")["enable.idempotence"], "false");
        let err = kafka("    required_acks: 0\n    idempotent: true\n").unwrap_err();
        assert!(err.contains("output.kafka.idempotent") && err.contains("line 6"), "{err}");
        let err = kafka("    librdkafka:\n      max.in.flight: \"20\"\n").unwrap_err();
        assert!(err.contains("output.kafka.librdkafka.max.in.flight") && err.contains("at most 5"), "{err}");
        let p = props("    idempotent: false\n    librdkafka:\n      max.in.flight: \"20\"\n");
        assert_eq!(p["max.in.flight"], "20");
        let err = kafka("    librdkafka:\n      enable.idempotence: \"false\"\n").unwrap_err();
        assert!(err.contains("output.kafka.librdkafka.enable.idempotence"), "{err}");
    }

    #[test]
    fn librdkafka_holds_four_batches_per_producer_and_the_pass_through_overrides_it() {
        let messages = |extra: &str| {
            kafka(extra).unwrap().kafka().unwrap().client_properties()["queue.buffering.max.messages"].clone()
        };
        assert_eq!(messages(""), "8192");
        assert_eq!(messages("    bulk_max_size: 4096\n"), "16384");
        assert_eq!(messages("    bulk_max_size: 50\n"), "8192");
        assert_eq!(messages("    librdkafka:\n      queue.buffering.max.messages: \"1000\"\n"), "1000");
    }

    #[test]
    fn pass_through_conflicting_with_named_setting_is_refused() {
        let err = kafka("    librdkafka:\n      acks: \"all\"\n").unwrap_err();
        assert!(err.contains("output.kafka.librdkafka.acks"), "{err}");
        assert!(err.contains("line 6"), "{err}");
        let ok = kafka("    librdkafka:\n      queue.buffering.max.kbytes: \"2048\"\n").unwrap();
        assert_eq!(ok.kafka().unwrap().client_properties()["queue.buffering.max.kbytes"], "2048");
    }

    #[test]
    fn sasl_and_ssl_resolve_to_librdkafka_properties_and_mask_secrets() {
        let c = kafka("    username: u\n    password: hunter2\n    sasl:\n      mechanism: SCRAM-SHA-512\n    ssl:\n      certificate_authorities: [/ca.pem]\n").unwrap();
        let p = c.kafka().unwrap().client_properties();
        assert_eq!(p["security.protocol"], "sasl_ssl");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["ssl.ca.location"], "/ca.pem");
        assert!(!format!("{:?}", c.kafka().unwrap()).contains("hunter2"));
    }

    #[test]
    fn settings_outside_librdkafkas_ranges_are_refused_with_their_key() {
        let err = kafka("    timeout: 100000d\n").unwrap_err();
        assert!(err.contains("output.kafka.timeout (line 5)") && err.contains("10 years"), "{err}");
        let err = kafka("    timeout: 3000d\n").unwrap_err();
        assert!(err.contains("output.kafka.timeout (line 5): must be between 10 ms and 300000 ms"), "{err}");
        let err = kafka("    bulk_max_size: 4611686018427387904\n").unwrap_err();
        assert!(err.contains("output.kafka.bulk_max_size (line 5)"), "{err}");
        let err = kafka("    bulk_max_size: 99999999999999999999999\n").unwrap_err();
        assert!(err.contains("output.kafka.bulk_max_size (line 5)") && err.contains("out of range"), "{err}");
        assert!(kafka("    backoff.init: 2s\n    backoff.max: 1s\n").unwrap_err().contains("backoff.init"));
        assert!(kafka("    timeout: 90s\n    bulk_max_size: 4096\n").is_ok());
    }

    /// Filebeat's cipher suite names become OpenSSL's, which librdkafka's OpenSSL accepts (the
    /// SSL context is built when the client is: a list OpenSSL cannot use fails there).
    #[test]
    fn cipher_suites_map_onto_openssl_names_librdkafka_accepts() {
        let props = |extra: &str| kafka(extra).unwrap().kafka().unwrap().client_properties();
        let p = props(
            "    ssl.certificate_authorities: [/ca.pem]\n    ssl.cipher_suites: [ECDHE-RSA-AES-128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1205, RSA-AES-256-CBC-SHA, TLS-AES-128-GCM-SHA256]\n",
        );
        assert_eq!(p["ssl.cipher.suites"], "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:AES256-SHA");
        let tls13_only =
            props("    ssl.certificate_authorities: [/ca.pem]\n    ssl.cipher_suites: [TLS-AES-256-GCM-SHA384]\n");
        assert!(!tls13_only.contains_key("ssl.cipher.suites"));
        assert!(kafka("    ssl.cipher_suites: [AES128-SHA]\n")
            .unwrap_err()
            .contains("invalid tls cipher suite 'AES128-SHA'"));
        let client = |suites: &str| {
            let mut c = rdkafka::ClientConfig::new();
            c.set("bootstrap.servers", "127.0.0.1:1").set("security.protocol", "ssl").set("ssl.cipher.suites", suites);
            c.create::<rdkafka::producer::BaseProducer>().map(|_| ()).map_err(|e| e.to_string())
        };
        // Every suite but RC4 and 3DES, which OpenSSL 3 leaves out of its default build.
        for (name, openssl) in super::CIPHER_SUITES.iter().filter(|(n, _)| !n.contains("RC4") && !n.contains("3DES")) {
            if let Some(o) = openssl {
                assert_eq!(client(o), Ok(()), "{name} as {o}");
            }
        }
        assert!(client("NOT-A-SUITE").is_err(), "the check can fail");
    }

    #[test]
    fn json_codec_pretty_indents_the_same_document() {
        use super::JsonCodecOptions;
        let record = br#"{"message":"<b>a & b</b>","n":{"k":1}}"#;
        let event: serde_json::Value = serde_json::from_slice(record).unwrap();
        let mut r = Vec::new();
        JsonCodecOptions { pretty: true }.write(&mut r, &event);
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "{\n  \"message\": \"<b>a & b</b>\",\n  \"n\": {\n    \"k\": 1\n  }\n}"
        );
        let mut r = Vec::new();
        JsonCodecOptions::default().write(&mut r, &event);
        assert_eq!(r, record);
        assert!(kafka("    codec: raw\n    codec_json: {pretty: true}\n").unwrap_err().contains("codec_json"));
    }

    #[test]
    fn verification_modes_version_and_keep_alive_map_onto_librdkafka() {
        let props = |extra: &str| kafka(extra).unwrap().kafka().unwrap().client_properties();
        let p = props("    ssl.certificate_authorities: [/ca.pem]\n    ssl.verification_mode: certificate\n");
        assert_eq!(
            (p["enable.ssl.certificate.verification"].as_str(), p["ssl.endpoint.identification.algorithm"].as_str()),
            ("true", "none")
        );
        let p = props("    ssl.certificate_authorities: [/ca.pem]\n    ssl.verification_mode: strict\n");
        assert_eq!(p["ssl.endpoint.identification.algorithm"], "https");
        let p = props("    ssl.certificate_authorities: [/ca.pem]\n    ssl.verification_mode: none\n");
        assert_eq!(p["enable.ssl.certificate.verification"], "false");
        assert!(kafka("    ssl.verification_mode: sometimes\n").unwrap_err().contains("ssl.verification_mode"));
        let p = props("    version: 0.8.2.0\n    keep_alive: 30s\n");
        assert_eq!((p["api.version.request"].as_str(), p["broker.version.fallback"].as_str()), ("false", "0.8.2.0"));
        assert_eq!(p["socket.keepalive.enable"], "true");
        assert!(!props("    version: 2.1.0\n").contains_key("api.version.request"));
        assert!(kafka("    version: latest\n").unwrap_err().contains("output.kafka.version (line 5)"));
    }

    #[test]
    fn topic_names_kafka_would_refuse_are_refused_when_static() {
        let topic = |t: &str| kafka("").map(|_| ()).and_then(|_| kafka_topic(t));
        assert!(topic("logs.app-1_x").is_ok());
        for bad in ["my topic!", ".", "..", &"x".repeat(250)] {
            let err = topic(bad).unwrap_err();
            assert!(err.contains("output.kafka.topic (line 4)"), "{bad}: {err}");
        }
        assert!(topic("logs-%{[fields.app]}").is_ok(), "a format is checked per event by the broker");
    }

    fn kafka_topic(topic: &str) -> Result<(), String> {
        let text = format!("output:\n  kafka:\n    hosts: [h:9092]\n    topic: '{topic}'\n");
        Config::from_str_at(&text, Path::new("a.yml")).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn acks_and_levels_are_checked() {
        assert!(kafka("    required_acks: 2\n").unwrap_err().contains("required_acks"));
        assert!(kafka("    compression_level: 12\n").unwrap_err().contains("compression_level"));
        assert!(kafka("    compression: lz4\n").is_ok());
        let c = kafka("    compression: none\n").unwrap();
        assert!(!c.kafka().unwrap().client_properties().contains_key("compression.level"));
    }
}
