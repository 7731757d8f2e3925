//! One input's recipe for turning a line into an event: character decoding, the container parser,
//! multiline joining, JSON decoding, line filters, encoding, processors, topic and key.
//!
//! Owns nothing mutable; built once per input (each file's mutable part is its [`FileState`]).
//! Invariant: every line ends up in exactly one [`Event`], alone or joined with its neighbours by
//! the container or the multiline parser: a deliverable one, or a `deliver: false` one (empty line
//! under the JSON codec, another container stream, filtered, dropped by a processor, oversize,
//! missing format field) that still carries its end offset so the file's acknowledged offset
//! moves past it (no further than an open container piece). Skips are counted in [`Metrics`] and
//! logged once per file.

use crate::config::{
    Codec, GlobalFields, InputConfig, JsonCodecOptions, KafkaConfig, NdjsonConfig, Partitioning, ProcessorConfig,
};
use crate::decode::container::{ContainerParser, Pieces};
use crate::decode::encoding::TextEncoding;
use crate::decode::filter::LineFilter;
use crate::decode::multiline::{Multiline, MultilineRt};
use crate::decode::{Decoded, Decoder};
use crate::event::id::{input_seed, IdHead};
use crate::event::{lookup_path, AgentMeta, Event, EventTemplate, Format, LineCtx};
use crate::metrics::Metrics;
use crate::processors::{Processors, When};
use crate::tail::lines::Line;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

pub struct InputRt {
    pub config: InputConfig,
    pub encoding: TextEncoding,
    multiline: Option<MultilineRt>,
    /// The container parser, first of the input's parsers when configured.
    container: Option<ContainerParser>,
    decoder: Decoder,
    filter: LineFilter,
    template: EventTemplate,
    /// The input's processors (they see the event before `host`, `agent`, `ecs`).
    processors: Processors,
    /// The global processors (after those).
    global_processors: Processors,
    topic: TopicChoice,
    /// `topics` rules, tried before `topic` (they need the event map).
    rules: Vec<TopicRuleRt>,
    key: Option<Format>,
    /// `partition.hash.hash`: the fields whose values pick the partition (empty: not set).
    hash_fields: Vec<String>,
    /// `codec: format`: the record is this, rendered from the finished event.
    format: Option<Format>,
    max_message_bytes: usize,
    /// `codec.json.pretty` / `escape_html` (JSON codec only).
    json_options: JsonCodecOptions,
    /// The input's part of its events' ids ([`crate::event::id`]); `None` with `event_id: false`.
    id_seed: Option<u64>,
}

/// One compiled `topics` rule.
struct TopicRuleRt {
    topic: Format,
    mappings: std::collections::BTreeMap<String, String>,
    default: Option<String>,
    when: Option<When>,
}

impl TopicRuleRt {
    /// The topic this rule names for `event`, if its condition holds and it names one: the
    /// rendered `topic`, through `mappings` when set (else `default`).
    fn select(&self, event: &Map<String, Value>) -> Option<String> {
        if self.when.as_ref().is_some_and(|w| !w.holds(event)) {
            return None;
        }
        let t = self.topic.render(|p| lookup_path(event, p)).ok()?;
        let t = match (self.mappings.is_empty(), self.mappings.get(&t)) {
            (true, _) => t,
            (false, Some(m)) => m.clone(),
            (false, None) => self.default.clone()?,
        };
        (!t.is_empty()).then_some(t)
    }
}

enum TopicChoice {
    Static(Arc<str>),
    Dynamic(Format),
}

/// Which kinds of bad input a file has already been logged for.
#[derive(Debug, Default)]
pub struct Warned {
    truncated: bool,
    utf8: bool,
    encoding: bool,
    json: bool,
    container: bool,
    oversize: bool,
    format: bool,
    topic: bool,
    pub gzip: bool,
}

/// One file's decoding state, owned by its [`super::file::TailFile`].
#[derive(Debug, Default)]
pub struct FileState {
    pub warned: Warned,
    /// The multiline event being assembled (unused without a multiline parser).
    pub multiline: Multiline,
    /// The file's first bytes, for its events' ids.
    pub id_head: IdHead,
    /// The container parser's open pieces (unused without it).
    pub pieces: Pieces,
}

impl FileState {
    /// Whether lines wait to become an event: a multiline event or a container line's pieces.
    pub fn is_pending(&self) -> bool {
        self.multiline.is_pending() || self.pieces.is_open()
    }
}

/// Per-file context the conversion needs.
pub struct FileCtx<'a> {
    pub slot: u32,
    pub path: &'a str,
    /// The read time as `@timestamp` writes it, and in milliseconds since 1970.
    pub timestamp: &'a str,
    pub timestamp_ms: i64,
    pub now: Instant,
}

impl InputRt {
    pub fn new(
        config: InputConfig,
        kafka: &KafkaConfig,
        agent: &AgentMeta,
        global: &[ProcessorConfig],
        global_fields: &GlobalFields,
    ) -> InputRt {
        let topic_fmt = kafka.topic.clone();
        let topic = match topic_fmt.as_static() {
            Some(t) => TopicChoice::Static(t.into()),
            None => TopicChoice::Dynamic(topic_fmt),
        };
        InputRt {
            id_seed: kafka.event_id.then(|| input_seed(&config.id)),
            encoding: config.encoding.encoding(),
            multiline: config.multiline().map(MultilineRt::new),
            // An open piece waits as long as a multiline event would.
            container: config.container().map(|c| {
                let timeout = config.multiline().map_or(crate::config::DEFAULT_MULTILINE_TIMEOUT, |m| m.timeout).0;
                ContainerParser::new(c, timeout, config.input_type.is_log_input())
            }),
            decoder: Decoder::for_input(&config),
            filter: LineFilter::new(&config.include_lines, &config.exclude_lines),
            template: EventTemplate::new(&config, global_fields, kafka.codec, agent),
            processors: Processors::new(&config.processors),
            global_processors: Processors::new(global),
            topic,
            rules: kafka
                .topics
                .iter()
                .map(|r| TopicRuleRt {
                    topic: r.topic.clone(),
                    mappings: r.mappings.clone(),
                    default: r.default.clone(),
                    when: r.when.as_ref().map(When::new),
                })
                .collect(),
            key: kafka.key.clone(),
            hash_fields: match &kafka.partition {
                Partitioning::Hash(h) => h.hash.clone(),
                _ => Vec::new(),
            },
            format: match kafka.codec {
                Codec::Format => kafka.codec_format.clone(),
                _ => None,
            },
            max_message_bytes: kafka.max_message_bytes.0 as usize,
            json_options: match kafka.codec {
                Codec::Json => kafka.codec_json,
                _ => JsonCodecOptions::default(),
            },
            config,
        }
    }

    fn ndjson(&self) -> Option<&NdjsonConfig> {
        match &self.decoder {
            Decoder::Ndjson(c) => Some(c),
            Decoder::Plain => None,
        }
    }

    /// Turns one line from the splitter into zero or more events, handed to `out` in file order:
    /// decoded from the input's encoding, then through the container parser (which may hold a
    /// piece, or skip another stream's line) and multiline (which may hold it, or complete an
    /// earlier event with it), then made an event.
    pub fn on_line(
        &self,
        line: &Line<'_>,
        st: &mut FileState,
        f: &FileCtx<'_>,
        m: &Metrics,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(Event),
    ) {
        Metrics::inc(&m.lines_read);
        let (text, bad) = self.encoding.decode(line.bytes, line.offset == 0);
        if bad {
            Metrics::inc(&m.lines_invalid_encoding);
            let what = "invalid bytes for the configured encoding replaced by U+FFFD";
            warn_once(&mut st.warned.encoding, f.path, line.offset, what);
        }
        let line = Line { bytes: &text, ..*line };
        let FileState { warned, multiline, id_head, pieces } = st;
        let max = self.config.max_bytes.0 as usize;
        let mut to_event = |l: &Line<'_>| out(self.event(l, warned, id_head, f, m, scratch));
        let mut next = |l: Line<'_>| self.join_lines(&l, multiline, f.now, &mut to_event);
        let Some(cp) = &self.container else { return next(line) };
        let mut other_stream = None;
        let parsed = cp.push(pieces, max, &line, f.now, &mut next, &mut |end| other_stream = Some(end));
        if let Err(why) = parsed {
            Metrics::inc(&m.lines_invalid_container);
            warn_once(
                &mut warned.container,
                f.path,
                line.offset,
                &format!("{why}; shipped as it is (counted in lines_invalid_container)"),
            );
        }
        if let Some(end_offset) = other_stream {
            Metrics::inc(&m.lines_other_stream);
            out(skipped(f, end_offset));
        }
    }

    /// Emits the file's open container pieces and its pending multiline event once their timeout
    /// passed (or `force`: the file is finished). Returns whether one was emitted.
    pub fn flush_pending(
        &self,
        st: &mut FileState,
        force: bool,
        f: &FileCtx<'_>,
        m: &Metrics,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(Event),
    ) -> bool {
        let FileState { warned, multiline, id_head, pieces } = st;
        let mut to_event = |l: &Line<'_>| out(self.event(l, warned, id_head, f, m, scratch));
        let mut emitted = false;
        // Open container pieces first: they go through multiline like any line.
        if let Some(cp) = &self.container {
            emitted |= cp.flush(pieces, force, f.now, &mut |l| self.join_lines(&l, multiline, f.now, &mut to_event));
        }
        let Some(rt) = &self.multiline else { return emitted };
        if !multiline.is_pending() || !(force || multiline.is_due(rt, f.now)) {
            return emitted;
        }
        multiline.flush(&mut |joined| to_event(&joined));
        true
    }

    /// A line past the container parser: joined with its neighbours when the input has a
    /// multiline parser (which may hold it), else handed to `to_event` as it is.
    fn join_lines(&self, l: &Line<'_>, multiline: &mut Multiline, now: Instant, to_event: &mut dyn FnMut(&Line<'_>)) {
        match &self.multiline {
            None => to_event(l),
            Some(rt) => multiline.push(rt, self.config.max_bytes.0 as usize, l, now, &mut |joined| to_event(&joined)),
        }
    }

    /// Converts one line (or joined multiline event) into an event. `scratch` is a reusable
    /// encoding buffer: the payload is copied out of it at its exact size, so queued memory is what
    /// the queue's budget counts.
    fn event(
        &self,
        line: &Line<'_>,
        warned: &mut Warned,
        id_head: &mut IdHead,
        f: &FileCtx<'_>,
        m: &Metrics,
        scratch: &mut Vec<u8>,
    ) -> Event {
        let skip = |_slot| skipped(f, line.end_offset);
        if line.lines > 1 {
            Metrics::inc(&m.multiline_events);
        }
        if line.truncated {
            Metrics::inc(&m.lines_truncated);
            warn_once(
                &mut warned.truncated,
                f.path,
                line.offset,
                "line longer than max_bytes (or max_lines) truncated",
            );
        }
        // An empty container line is an event (its stream is a field), as in Filebeat.
        if line.bytes.is_empty() && line.container.is_none() && self.template.codec() == Codec::Json {
            Metrics::inc(&m.lines_skipped_empty);
            return skip(f.slot);
        }
        let out = self.decoder.decode(line.bytes);
        if out.invalid_utf8 {
            Metrics::inc(&m.lines_invalid_utf8);
            let what = match self.template.codec() {
                Codec::Raw => "invalid UTF-8: the raw codec sends the bytes unchanged (counted in lines_invalid_utf8)",
                _ => "invalid UTF-8 replaced by U+FFFD in the event",
            };
            warn_once(&mut warned.utf8, f.path, line.offset, what);
        }
        if let Decoded::Invalid { error, .. } = &out.decoded {
            Metrics::inc(&m.lines_invalid_json);
            if !warned.json {
                warned.json = true;
                tracing::warn!(path = f.path, offset = line.offset, %error, "invalid JSON line shipped as its text (with error.* under add_error_key; logged once per file)");
            }
        }
        if !self.filter.is_empty() && !self.filter.keep(self.decoder.message(&out.decoded).map(str::as_bytes)) {
            Metrics::inc(&m.lines_filtered);
            return skip(f.slot);
        }
        // Processors, topic rules, the format codec, field hashing and indented JSON work on the
        // event map; without them the fast path writes the event's JSON directly.
        let with_map = !(self.processors.is_empty()
            && self.global_processors.is_empty()
            && self.rules.is_empty()
            && self.format.is_none()
            && self.hash_fields.is_empty()
            && !self.json_options.pretty);
        let mut route = None;
        let mut partition_hash = None;
        let record_time;
        if !with_map {
            route = Some(self.route(|p| self.template.lookup(&out.decoded, p, f.path)));
        }
        let id = self.id_seed.map(|seed| id_head.id(seed, line.offset, line.end_offset));
        // A container line's time is the event's (Filebeat's container parser sets it).
        let container_time = line.container.map(|c| crate::event::rfc3339_from_millis(c.time_ms));
        let ctx = LineCtx {
            raw: line.bytes,
            offset: line.offset,
            path: f.path,
            truncated: line.truncated,
            multiline: line.lines > 1,
            timestamp: container_time.as_deref().unwrap_or(f.timestamp),
            timestamp_ms: line.container.map_or(f.timestamp_ms, |c| c.time_ms),
            ndjson: self.ndjson(),
            id,
            stream: line.container.map(|c| c.stream.as_str()),
        };
        if with_map {
            // One event map through Filebeat's stages: the input's processors, the builtins, the
            // global processors; topic and key formats see what they left.
            // Raw and Kafka Connect's codecs send the line itself; the event map then only
            // decides whether it is sent and where.
            scratch.clear();
            let line_record = self.template.encode_line(&ctx, &out.decoded, scratch);
            let mut ev = self.template.event_map(&ctx, out.decoded);
            let kept = self.processors.apply(&mut ev) && {
                self.template.add_builtin(&mut ev);
                self.global_processors.apply(&mut ev)
            };
            if !kept {
                Metrics::inc(&m.events_dropped_processor);
                return skip(f.slot);
            }
            if !self.hash_fields.is_empty() {
                partition_hash = crate::output::partition::hash_fields(&ev, &self.hash_fields).ok();
            }
            // The finished event's time (processors may have set it), as Filebeat sends it.
            record_time = self.template.stamps_records().then(|| crate::event::record_time(&ev)).flatten();
            let routed = self.route_event(&ev);
            route = Some(match (&self.format, routed) {
                // `codec: format`: the record is the format rendered from the finished event.
                (Some(format), Ok(r)) => format
                    .render(|p| lookup_path(&ev, p))
                    .map(|text| {
                        scratch.extend_from_slice(text.as_bytes());
                        r
                    })
                    .map_err(Unroutable::MissingField),
                (None, Ok(r)) => {
                    if !line_record {
                        self.json_options.write(scratch, &ev);
                    }
                    Ok(r)
                }
                (_, Err(why)) => Err(why),
            });
        } else {
            record_time = self.template.encode(&ctx, out.decoded, scratch);
        }
        let (topic, key) = match route.expect("set on both paths") {
            Ok(r) => r,
            Err(Unroutable::MissingField(field)) => {
                Metrics::inc(&m.events_dropped_format);
                if !warned.format {
                    warned.format = true;
                    tracing::error!(path = f.path, offset = line.offset, %field, "event dropped: its topic, key or codec format names a field the event lacks (logged once per file)");
                }
                return skip(f.slot);
            }
            Err(Unroutable::BadTopic(error)) => {
                Metrics::inc(&m.events_dropped_topic);
                if !warned.topic {
                    warned.topic = true;
                    tracing::error!(path = f.path, offset = line.offset, %error, "event dropped: the topic made from it is a name Kafka refuses (logged once per file)");
                }
                return skip(f.slot);
            }
        };
        if scratch.len() > self.max_message_bytes {
            Metrics::inc(&m.events_dropped_oversize);
            if !warned.oversize {
                warned.oversize = true;
                tracing::error!(
                    path = f.path,
                    offset = line.offset,
                    bytes = scratch.len(),
                    max = self.max_message_bytes,
                    "event larger than max_message_bytes dropped (logged once per file)"
                );
            }
            return skip(f.slot);
        }
        Event {
            slot: f.slot,
            end_offset: line.end_offset,
            topic,
            key,
            partition_hash,
            payload: scratch.as_slice().to_vec(),
            deliver: true,
            read_at: f.now,
            id,
            timestamp: record_time,
        }
    }

    /// The topic and key of a finished event: the first `topics` rule that names a topic, else
    /// `topic`; a key or topic naming a field the event lacks is `Err(field)`.
    fn route_event(&self, ev: &Map<String, Value>) -> Result<(Arc<str>, Option<Vec<u8>>), Unroutable> {
        let lookup = |p: &str| lookup_path(ev, p);
        let key = self.key.as_ref().map(|f| f.render(lookup).map(String::into_bytes)).transpose()?;
        let topic: Arc<str> = match self.rules.iter().find_map(|r| r.select(ev)) {
            Some(t) => checked_topic(t)?.into(),
            None => match &self.topic {
                TopicChoice::Static(t) => t.clone(),
                TopicChoice::Dynamic(f) => checked_topic(f.render(lookup)?)?.into(),
            },
        };
        Ok((topic, key))
    }

    fn route(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<(Arc<str>, Option<Vec<u8>>), Unroutable> {
        let topic = match &self.topic {
            TopicChoice::Static(t) => t.clone(),
            TopicChoice::Dynamic(f) => checked_topic(f.render(&lookup)?)?.into(),
        };
        let key = match &self.key {
            Some(f) => Some(f.render(&lookup)?.into_bytes()),
            None => None,
        };
        Ok((topic, key))
    }
}

/// Why an event cannot be sent anywhere; each is counted and logged on its own.
enum Unroutable {
    /// The topic, key or codec format names this field, which the event lacks.
    MissingField(String),
    /// The topic made from the event is a name Kafka refuses on every try (the reason).
    BadTopic(String),
}

impl From<String> for Unroutable {
    fn from(field: String) -> Self {
        Unroutable::MissingField(field)
    }
}

/// A topic made from an event, if Kafka would accept its name. A static topic was checked when
/// the config was read; one rendered per event is checked here, so a line that names a topic
/// Kafka refuses is dropped and counted once, not sent and refused (see the output's policy).
fn checked_topic(topic: String) -> Result<String, Unroutable> {
    crate::config::check_topic_name(&topic).map_err(Unroutable::BadTopic)?;
    Ok(topic)
}

/// An event that is not shipped but moves the file's acknowledged offset to `end_offset`.
fn skipped(f: &FileCtx<'_>, end_offset: u64) -> Event {
    Event {
        slot: f.slot,
        end_offset,
        topic: "".into(),
        key: None,
        partition_hash: None,
        payload: Vec::new(),
        deliver: false,
        read_at: f.now,
        id: None,
        timestamp: None,
    }
}

fn warn_once(flag: &mut bool, path: &str, offset: u64, what: &str) {
    if !*flag {
        *flag = true;
        tracing::warn!(path, offset, "{what} (logged once per file; counted in metrics)");
    }
}
