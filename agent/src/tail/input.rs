//! One input's recipe for turning a line into an event: decode, encode, pick topic and key.
//!
//! Owns nothing mutable; built once per input. Invariant: every line yields exactly one
//! [`Event`]: a deliverable one, or a `deliver: false` one (empty line under the JSON codec,
//! oversize event, missing format field) that still carries its end offset so the file's
//! acknowledged offset moves past it. Skips are counted in [`Metrics`] and logged once per file.

use crate::config::{Codec, InputConfig, KafkaConfig, NdjsonConfig};
use crate::decode::{Decoded, Decoder};
use crate::event::{AgentMeta, Event, EventTemplate, Format, LineCtx};
use crate::metrics::Metrics;
use crate::tail::lines::Line;
use std::sync::Arc;

pub struct InputRt {
    pub config: InputConfig,
    decoder: Decoder,
    template: EventTemplate,
    topic: TopicChoice,
    key: Option<Format>,
    max_message_bytes: usize,
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
    json: bool,
    oversize: bool,
    format: bool,
}

/// Per-file context the conversion needs.
pub struct FileCtx<'a> {
    pub slot: u32,
    pub path: &'a str,
    pub timestamp: &'a str,
    pub warned: &'a mut Warned,
}

impl InputRt {
    pub fn new(config: InputConfig, kafka: &KafkaConfig, agent: &AgentMeta) -> InputRt {
        let topic_fmt = Format::parse(&kafka.topic).expect("validated");
        let topic = match topic_fmt.as_static() {
            Some(t) => TopicChoice::Static(t.into()),
            None => TopicChoice::Dynamic(topic_fmt),
        };
        InputRt {
            decoder: Decoder::from_parsers(&config.parsers),
            template: EventTemplate::new(&config, kafka.codec, agent),
            topic,
            key: kafka.key.as_ref().map(|k| Format::parse(k).expect("validated")),
            max_message_bytes: kafka.max_message_bytes.0 as usize,
            config,
        }
    }

    fn ndjson(&self) -> Option<&NdjsonConfig> {
        match &self.decoder {
            Decoder::Ndjson(c) => Some(c),
            Decoder::Plain => None,
        }
    }

    /// Converts one line into an event. `scratch` is a reusable encoding buffer: the event's payload
    /// is copied out of it at its exact size, so queued memory is what the queue's budget counts.
    pub fn event(&self, line: &Line<'_>, f: &mut FileCtx<'_>, m: &Metrics, scratch: &mut Vec<u8>) -> Event {
        let skip = |slot| Event {
            slot,
            end_offset: line.end_offset,
            topic: "".into(),
            key: None,
            payload: Vec::new(),
            deliver: false,
        };
        Metrics::inc(&m.lines_read);
        if line.truncated {
            Metrics::inc(&m.lines_truncated);
            warn_once(&mut f.warned.truncated, f.path, line.offset, "line longer than max_bytes truncated");
        }
        if line.bytes.is_empty() && self.template.codec() == Codec::Json {
            Metrics::inc(&m.lines_skipped_empty);
            return skip(f.slot);
        }
        let out = self.decoder.decode(line.bytes);
        if out.invalid_utf8 {
            Metrics::inc(&m.lines_invalid_utf8);
            warn_once(&mut f.warned.utf8, f.path, line.offset, "invalid UTF-8 replaced by U+FFFD in the JSON event");
        }
        if let Decoded::Invalid { error, .. } = &out.decoded {
            Metrics::inc(&m.lines_invalid_json);
            if !f.warned.json {
                f.warned.json = true;
                tracing::warn!(path = f.path, offset = line.offset, %error, "invalid JSON line shipped with the raw line and an error (logged once per file)");
            }
        }
        let (topic, key) = match self.route(&out.decoded, f.path) {
            Ok(r) => r,
            Err(field) => {
                Metrics::inc(&m.events_dropped_format);
                if !f.warned.format {
                    f.warned.format = true;
                    tracing::error!(path = f.path, offset = line.offset, %field, "event dropped: topic or key names a field the event lacks (logged once per file)");
                }
                return skip(f.slot);
            }
        };
        let ctx = LineCtx {
            raw: line.bytes,
            offset: line.offset,
            path: f.path,
            truncated: line.truncated,
            timestamp: f.timestamp,
            ndjson: self.ndjson(),
        };
        let decoded = match (out.decoded, self.ndjson()) {
            // Without add_error_key the raw line is still shipped, as a plain message.
            (Decoded::Invalid { raw, .. }, Some(cfg)) if !cfg.add_error_key => Decoded::Plain(raw),
            (d, _) => d,
        };
        self.template.encode(&ctx, decoded, scratch);
        if scratch.len() > self.max_message_bytes {
            Metrics::inc(&m.events_dropped_oversize);
            if !f.warned.oversize {
                f.warned.oversize = true;
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
            payload: scratch.as_slice().to_vec(),
            deliver: true,
        }
    }

    fn route(&self, d: &Decoded<'_>, path: &str) -> Result<(Arc<str>, Option<Vec<u8>>), String> {
        let lookup = |p: &str| self.template.lookup(d, p, path);
        let topic = match &self.topic {
            TopicChoice::Static(t) => t.clone(),
            TopicChoice::Dynamic(f) => f.render(lookup)?.into(),
        };
        let key = match &self.key {
            Some(f) => Some(f.render(lookup)?.into_bytes()),
            None => None,
        };
        Ok((topic, key))
    }
}

fn warn_once(flag: &mut bool, path: &str, offset: u64, what: &str) {
    if !*flag {
        *flag = true;
        tracing::warn!(path, offset, "{what} (logged once per file; counted in metrics)");
    }
}
