//! Input settings: which files an input reads, how their bytes become events (encoding,
//! compression, parsers, line filters, processors), and when files are closed and forgotten.
//!
//! Owns the `inputs[]` schema and its validation. Invariant: every combination Filebeat documents
//! as unsafe (`ignore_older` not above `close.on_state_change.inactive`, `clean_inactive` not above
//! `ignore_older + check_interval`, ...) is refused here with the key that is wrong, so the reader
//! never has to second-guess its settings.

use super::processors::ProcessorConfig;
use super::{invalid, ByteSize, HumanDuration, Invalid, Pattern, PatternSet};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Longest line kept; the rest of the line is discarded and the event flagged (Filebeat: 10 MiB).
pub const DEFAULT_MAX_BYTES: ByteSize = ByteSize::mib(10);
/// Fallback rescan of the globs when file notifications are missed.
pub const DEFAULT_CHECK_INTERVAL: HumanDuration = HumanDuration::from_secs(10);
/// An open file that produced nothing for this long is closed (reopened when it grows).
pub const DEFAULT_CLOSE_INACTIVE: HumanDuration = HumanDuration::from_secs(300);
/// First and longest wait between two reads of a file that is at its end.
pub const DEFAULT_BACKOFF_INIT: HumanDuration = HumanDuration::from_millis(100);
pub const DEFAULT_BACKOFF_MAX: HumanDuration = HumanDuration::from_secs(1);
/// Filebeat's multiline defaults: at most 500 lines per event, flushed after 5 s without a new line.
pub const DEFAULT_MULTILINE_MAX_LINES: usize = 500;
pub const DEFAULT_MULTILINE_TIMEOUT: HumanDuration = HumanDuration::from_secs(5);
/// `plain`: bytes are shipped as they are (Filebeat's default).
pub const DEFAULT_ENCODING: &str = "plain";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub id: String,
    /// `filestream` (the default) or `log`: Filebeat's 7.x input, whose settings
    /// [`super::filebeat`] maps onto filestream's; events carry it in `input.type`.
    #[serde(rename = "type", default)]
    pub input_type: InputType,
    #[serde(default = "super::d_true")]
    pub enabled: bool,
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude_files: Vec<Pattern>,
    /// Regexes: when set, only files whose path matches one of them are read (Filebeat's
    /// `prospector.scanner.include_files`).
    #[serde(default)]
    pub include_files: Vec<Pattern>,
    /// Whether a path that is a symbolic link is read (Filebeat's `prospector.scanner.symlinks`,
    /// off by default as there). The file it leads to is identified by its own device and inode,
    /// so a file reached by two paths is read once.
    #[serde(default)]
    pub symlinks: bool,
    /// Character encoding of the files: `plain`, `utf-8`, `utf-16le`, `utf-16be`, one of
    /// Filebeat's names (`windows1252`, `iso8859-1`, `cp437`, `koi8r`...) or a WHATWG label
    /// (`latin1`, `shift_jis`, `gbk`, ...), decoded as Filebeat decodes it. Events carry UTF-8.
    #[serde(default)]
    pub encoding: crate::decode::encoding::EncodingSetting,
    /// Whether files are gzip archives: `auto` (by `.gz` name or gzip magic), `gzip`, `none`.
    #[serde(default)]
    pub compression: FileCompression,
    /// Written as Filebeat does: `- ndjson: {...}` (a one-key map per parser).
    #[serde(default)]
    pub parsers: Vec<ParserConfig>,
    /// Regexes: when set, only events whose message matches one of them are shipped.
    #[serde(default)]
    pub include_lines: PatternSet,
    /// Regexes: events whose message matches one of them are not shipped (after include_lines).
    #[serde(default)]
    pub exclude_lines: PatternSet,
    #[serde(default)]
    pub processors: Vec<ProcessorConfig>,
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub fields_under_root: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "d_max_bytes", alias = "message_max_bytes")]
    pub max_bytes: ByteSize,
    #[serde(default)]
    pub line_terminator: LineTerminator,
    #[serde(default)]
    pub start_position: StartPosition,
    #[serde(default = "d_check_interval")]
    pub check_interval: HumanDuration,
    /// Files seen for the first time whose last change is older than this are read from their
    /// end (only lines written later are shipped). `0`: off.
    #[serde(default)]
    pub ignore_older: HumanDuration,
    /// The registry entry of a file nothing was read from for this long is removed. `0`: off.
    #[serde(default)]
    pub clean_inactive: HumanDuration,
    /// The registry entry of a file no longer found under the input's globs is removed once the
    /// file is finished (otherwise it stays for `registry.clean_removed_after`).
    #[serde(default = "super::d_true")]
    pub clean_removed: bool,
    /// Most files of this input open at once; `0`: no limit (only `queue.max_open_files`).
    #[serde(default)]
    pub harvester_limit: usize,
    /// Caps how fast this input reads (bytes and/or events per second); files wait on disk meanwhile.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub close: CloseConfig,
    #[serde(default)]
    pub backoff: BackoffConfig,
}

fn d_max_bytes() -> ByteSize {
    DEFAULT_MAX_BYTES
}
fn d_check_interval() -> HumanDuration {
    DEFAULT_CHECK_INTERVAL
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    #[default]
    Filestream,
    Log,
    /// Filebeat's `container` input: the log input with a `container` parser.
    Container,
}

impl InputType {
    /// The name events carry in `input.type`.
    pub fn name(self) -> &'static str {
        match self {
            InputType::Filestream => "filestream",
            InputType::Log => "log",
            InputType::Container => "container",
        }
    }

    /// Filebeat runs it with its log input (events, registry keys).
    pub fn is_log_input(self) -> bool {
        matches!(self, InputType::Log | InputType::Container)
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LineTerminator {
    /// LF ends a line; a CR right before it is removed too (CRLF files).
    #[default]
    Auto,
    /// LF ends a line; a CR before it is kept as part of the line.
    LineFeed,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// Files with no registry entry are read from their first byte.
    #[default]
    Beginning,
    /// Files already present at start-up with no registry entry are read from their end;
    /// files that appear later are still read from their first byte.
    End,
}

/// Filebeat 9.3's `compression` (there `""` means plain); the agent detects archives by default,
/// since shipping compressed bytes as lines is never what anyone wants.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileCompression {
    /// A file is read as gzip when its name ends in `.gz` or it starts with the gzip magic bytes.
    #[default]
    Auto,
    Gzip,
    #[serde(alias = "")]
    None,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ParserConfig {
    Multiline(MultilineConfig),
    Ndjson(NdjsonConfig),
    Container(ContainerConfig),
}

/// Filebeat's `container` parser: container runtimes' log files (Docker's json-file, CRI).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Which stream's lines become events (`all`, the default, `stdout` or `stderr`).
    #[serde(default)]
    pub stream: ContainerStream,
    /// `auto` (each line tells), `docker` (json-file) or `cri`.
    #[serde(default)]
    pub format: ContainerFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStream {
    #[default]
    All,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContainerFormat {
    #[default]
    Auto,
    Docker,
    Cri,
}

/// Filebeat's `ndjson` parser options.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NdjsonConfig {
    /// Where the decoded object goes: `""` (the event root, the default) or a field name.
    #[serde(default)]
    pub target: String,
    /// Decoded keys replace the agent's own fields (`@timestamp`, `message`, ...) on conflict.
    #[serde(default)]
    pub overwrite_keys: bool,
    /// An invalid line's event carries `error.message`/`error.type` besides the raw line (off by
    /// default, as in Filebeat: the line is shipped as `message` either way, and counted).
    #[serde(default)]
    pub add_error_key: bool,
    /// The decoded key whose value becomes `message`.
    #[serde(default)]
    pub message_key: Option<String>,
    /// Dotted keys of the document become nested objects (`{"a.b":1}` → `{"a":{"b":1}}`).
    #[serde(default)]
    pub expand_keys: bool,
    /// Only stops Filebeat from logging each decoding error; the agent counts them instead.
    #[serde(default)]
    pub ignore_decoding_error: bool,
    /// A key of the document whose string value becomes `@metadata._id` (and leaves the document).
    #[serde(default)]
    pub document_id: Option<String>,
}

/// Filebeat's `multiline` parser options.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    #[serde(rename = "type", default)]
    pub kind: MultilineKind,
    pub pattern: Option<Pattern>,
    #[serde(default)]
    pub negate: bool,
    #[serde(rename = "match")]
    pub match_: Option<MultilineMatch>,
    /// A line matching this ends the event (it is its last line).
    pub flush_pattern: Option<Pattern>,
    #[serde(default = "d_max_lines")]
    pub max_lines: usize,
    #[serde(default = "d_multiline_timeout")]
    pub timeout: HumanDuration,
    /// `type: count`: lines per event.
    pub count_lines: Option<usize>,
    /// Join the lines without a newline between them.
    #[serde(default)]
    pub skip_newline: bool,
}

fn d_max_lines() -> usize {
    DEFAULT_MULTILINE_MAX_LINES
}
fn d_multiline_timeout() -> HumanDuration {
    DEFAULT_MULTILINE_TIMEOUT
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MultilineKind {
    /// Lines join the previous (`match: after`) or next (`before`) line by `pattern` and `negate`.
    #[default]
    Pattern,
    /// Every `count_lines` lines form one event.
    Count,
    /// Consecutive lines that match (or, negated, do not match) form one event.
    WhilePattern,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MultilineMatch {
    After,
    Before,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloseConfig {
    #[serde(default)]
    pub on_state_change: CloseOnStateChange,
    /// Close a file as soon as it is read to its end (Filebeat's `close.reader.on_eof`); it is
    /// opened again when it grows.
    #[serde(default)]
    pub on_eof: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloseOnStateChange {
    #[serde(default = "d_close_inactive")]
    pub inactive: HumanDuration,
    /// Stop reading a file as soon as it is renamed (what was not read yet is not shipped).
    #[serde(default)]
    pub renamed: bool,
    /// Stop reading a file as soon as it is deleted (what was not read yet is not shipped).
    #[serde(default)]
    pub removed: bool,
}
impl Default for CloseOnStateChange {
    fn default() -> Self {
        Self { inactive: d_close_inactive(), renamed: false, removed: false }
    }
}
fn d_close_inactive() -> HumanDuration {
    DEFAULT_CLOSE_INACTIVE
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    #[serde(default = "d_backoff_init")]
    pub init: HumanDuration,
    #[serde(default = "d_backoff_max")]
    pub max: HumanDuration,
}
impl Default for BackoffConfig {
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

impl InputConfig {
    /// The multiline parser, if configured.
    pub fn multiline(&self) -> Option<&MultilineConfig> {
        self.parsers.iter().find_map(|p| match p {
            ParserConfig::Multiline(m) => Some(m),
            _ => None,
        })
    }

    /// The container parser, if configured (always the first parser).
    pub fn container(&self) -> Option<&ContainerConfig> {
        self.parsers.iter().find_map(|p| match p {
            ParserConfig::Container(c) => Some(c),
            _ => None,
        })
    }

    /// The ndjson parser, if configured.
    pub fn ndjson(&self) -> Option<&NdjsonConfig> {
        self.parsers.iter().find_map(|p| match p {
            ParserConfig::Ndjson(n) => Some(n),
            _ => None,
        })
    }

    /// Checks `inputs[i]`; errors name the key under `inputs[i].`.
    pub(crate) fn validate(&self, i: usize) -> Result<(), Invalid> {
        let at = |k: &str| format!("inputs[{i}].{k}");
        if self.id.trim().is_empty() {
            return Err(invalid(at("id"), "must not be empty"));
        }
        if self.paths.is_empty() {
            return Err(invalid(at("paths"), "needs at least one glob"));
        }
        for (j, p) in self.paths.iter().enumerate() {
            glob::Pattern::new(p)
                .map_err(|e| invalid(at(&format!("paths[{j}]")), format!("invalid glob {p:?}: {e}")))?;
        }
        if self.max_bytes.0 == 0 {
            return Err(invalid(at("max_bytes"), "must be greater than 0"));
        }
        self.validate_parsers(i)?;
        for (j, p) in self.processors.iter().enumerate() {
            p.validate(&at(&format!("processors[{j}]")))?;
        }
        if let Some(r) = &self.rate_limit {
            r.validate(&at("rate_limit"))?;
        }
        if self.backoff.init > self.backoff.max {
            return Err(invalid(at("backoff.init"), "must not be greater than backoff.max"));
        }
        if self.check_interval.0.is_zero() {
            return Err(invalid(at("check_interval"), "must be greater than 0"));
        }
        self.validate_lifecycle(i)
    }

    fn validate_parsers(&self, i: usize) -> Result<(), Invalid> {
        let at = |j: usize, k: &str| format!("inputs[{i}].parsers[{j}].{k}");
        let mut seen_ndjson = false;
        let mut seen_multiline = false;
        for (j, p) in self.parsers.iter().enumerate() {
            match p {
                ParserConfig::Ndjson(_) => {
                    if seen_ndjson {
                        return Err(invalid(format!("inputs[{i}].parsers[{j}]"), "ndjson is listed twice"));
                    }
                    seen_ndjson = true;
                }
                ParserConfig::Multiline(m) => {
                    if seen_multiline {
                        return Err(invalid(format!("inputs[{i}].parsers[{j}]"), "multiline is listed twice"));
                    }
                    if seen_ndjson {
                        return Err(invalid(
                            format!("inputs[{i}].parsers[{j}]"),
                            "multiline after ndjson is not supported: list multiline first (lines are joined, then decoded)",
                        ));
                    }
                    seen_multiline = true;
                    m.validate(&|k| at(j, &format!("multiline.{k}")))?;
                }
                // It reads the runtime's line format: what the others parse is its content.
                ParserConfig::Container(_) if j > 0 => {
                    return Err(invalid(format!("inputs[{i}].parsers[{j}]"), "container must be the first parser"));
                }
                ParserConfig::Container(_) => {}
            }
        }
        Ok(())
    }

    /// The close / ignore / clean options and the interactions Filebeat documents.
    fn validate_lifecycle(&self, i: usize) -> Result<(), Invalid> {
        let at = |k: &str| format!("inputs[{i}].{k}");
        let inactive = self.close.on_state_change.inactive;
        if inactive.is_off() {
            return Err(invalid(at("close.on_state_change.inactive"), "must be greater than 0"));
        }
        if !self.ignore_older.is_off() && self.ignore_older <= inactive {
            return Err(invalid(
                at("ignore_older"),
                format!(
                    "must be greater than close.on_state_change.inactive ({inactive}), or a file could be closed and ignored while it is still written"
                ),
            ));
        }
        if !self.clean_inactive.is_off() {
            if self.ignore_older.is_off() {
                return Err(invalid(
                    at("clean_inactive"),
                    "needs ignore_older: without it a cleaned file that is still there is read again from its start",
                ));
            }
            let floor = self.ignore_older.0 + self.check_interval.0;
            if self.clean_inactive.0 <= floor {
                return Err(invalid(
                    at("clean_inactive"),
                    format!(
                        "must be greater than ignore_older + check_interval ({}), or a file could be forgotten while it is still found and be read again",
                        HumanDuration(floor)
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl MultilineConfig {
    fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
        match self.kind {
            MultilineKind::Pattern | MultilineKind::WhilePattern if self.pattern.is_none() => {
                return Err(invalid(at("pattern"), "is required for this multiline type"));
            }
            MultilineKind::Pattern if self.match_.is_none() => {
                return Err(invalid(at("match"), "is required: after or before"));
            }
            MultilineKind::Count if self.count_lines.unwrap_or(0) == 0 => {
                return Err(invalid(at("count_lines"), "is required for type count and must be at least 1"));
            }
            _ => {}
        }
        if self.max_lines == 0 {
            return Err(invalid(at("max_lines"), "must be at least 1"));
        }
        if self.timeout.is_off() {
            return Err(invalid(at("timeout"), "must be greater than 0"));
        }
        Ok(())
    }
}

/// `rate_limit`: reading slows down to these rates (nothing is dropped, unlike Filebeat's
/// `rate_limit` processor); lines wait in their files.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub bytes_per_second: Option<ByteSize>,
    #[serde(default)]
    pub events_per_second: Option<u32>,
}

impl RateLimitConfig {
    fn validate(&self, at: &str) -> Result<(), Invalid> {
        if self.bytes_per_second.is_none() && self.events_per_second.is_none() {
            return Err(invalid(at, "set bytes_per_second, events_per_second, or both"));
        }
        if let Some(b) = self.bytes_per_second {
            if b.0 == 0 || b.0 > u64::from(u32::MAX) {
                return Err(invalid(format!("{at}.bytes_per_second"), "must be between 1 and 4GiB"));
            }
        }
        if self.events_per_second == Some(0) {
            return Err(invalid(format!("{at}.events_per_second"), "must be at least 1"));
        }
        Ok(())
    }
}
