//! Processors: change or drop an event after it is built and before it is routed and sent, as
//! Filebeat's processors do (`add_fields`, `drop_fields`, `drop_event`, `add_tags`, `add_labels`,
//! `rename`, `copy_fields`, `truncate_fields`, `convert`, `decode_json_fields`, `add_locale`,
//! `add_host_metadata`, `dissect`, `fingerprint`, `add_id`, `timestamp`), each with an optional `when` condition.
//!
//! Owns a compiled processor chain. Invariants: processors run in the order written, on one event
//! map; a dropped event still advances its file's offset (the caller ships it as a no-delivery
//! event and counts it); a processor that fails with `fail_on_error` (the default where Filebeat
//! has it) leaves the event as it was before it and sets `error.message`, as libbeat does, and the
//! chain goes on; running a chain never panics (regexes were checked when the config was loaded).
//! An input's chain runs before `host`, `agent` and `ecs` are added, the global chain after, as in
//! Filebeat's publisher (see `tail::input`).

mod dissect;
mod fields;
mod host;
mod ids;
mod kubernetes;
mod timestamp;

pub use dissect::Tokenizer;
pub use timestamp::{parse_value as parse_time, Layout, Zone};

use crate::config::{Condition, ProcessorConfig, RangeBounds};
use crate::event::lookup_value;
use regex::bytes::Regex;
use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub struct Processors {
    list: Vec<(fields::Step, Option<Cond>)>,
}

#[derive(Debug)]
enum Cond {
    Equals(Vec<(String, Value)>),
    Contains(Vec<(String, String)>),
    Regexp(Vec<(String, Regex)>),
    Range(Vec<(String, RangeBounds)>),
    HasFields(Vec<String>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Processors {
    pub fn new(list: &[ProcessorConfig]) -> Processors {
        let list = list.iter().map(|p| (fields::Step::new(p), p.name_and_when().1.as_ref().map(cond))).collect();
        Processors { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Runs the chain over `event`; `false` when a `drop_event` dropped it.
    pub fn apply(&self, event: &mut Map<String, Value>) -> bool {
        for (step, when) in &self.list {
            if when.as_ref().is_some_and(|c| !c.holds(event)) {
                continue;
            }
            match step.run(event) {
                fields::Outcome::Kept => {}
                fields::Outcome::Dropped => return false,
            }
        }
        true
    }
}

/// A compiled `when` condition, for the output's `topics` rules too.
#[derive(Debug)]
pub struct When(Cond);

impl When {
    pub fn new(c: &Condition) -> When {
        When(cond(c))
    }

    /// Whether the condition holds for `event`.
    pub fn holds(&self, event: &Map<String, Value>) -> bool {
        self.0.holds(event)
    }
}

fn cond(c: &Condition) -> Cond {
    match c {
        Condition::Equals(m) => Cond::Equals(m.clone().into_iter().collect()),
        Condition::Contains(m) => Cond::Contains(m.clone().into_iter().collect()),
        Condition::Regexp(m) => Cond::Regexp(m.iter().map(|(k, r)| (k.clone(), (**r).clone())).collect()),
        Condition::Range(m) => Cond::Range(m.clone().into_iter().collect()),
        Condition::HasFields(f) => Cond::HasFields(f.clone()),
        Condition::And(l) => Cond::And(l.iter().map(cond).collect()),
        Condition::Or(l) => Cond::Or(l.iter().map(cond).collect()),
        Condition::Not(c) => Cond::Not(Box::new(cond(c))),
    }
}

impl Cond {
    fn holds(&self, ev: &Map<String, Value>) -> bool {
        match self {
            Cond::Equals(pairs) => pairs.iter().all(|(f, want)| lookup_value(ev, f).is_some_and(|v| same(v, want))),
            Cond::Contains(pairs) => {
                pairs.iter().all(|(f, s)| strings(lookup_value(ev, f)).iter().any(|v| v.contains(s.as_str())))
            }
            Cond::Regexp(pairs) => {
                pairs.iter().all(|(f, r)| strings(lookup_value(ev, f)).iter().any(|v| r.is_match(v.as_bytes())))
            }
            Cond::Range(pairs) => {
                pairs.iter().all(|(f, b)| lookup_value(ev, f).and_then(number).is_some_and(|n| within(n, b)))
            }
            Cond::HasFields(fields) => fields.iter().all(|f| lookup_value(ev, f).is_some()),
            Cond::And(l) => l.iter().all(|c| c.holds(ev)),
            Cond::Or(l) => l.iter().any(|c| c.holds(ev)),
            Cond::Not(c) => !c.holds(ev),
        }
    }
}

/// A number, or a string holding one (libbeat's `range` reads both).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn within(n: f64, b: &RangeBounds) -> bool {
    b.gt.map_or(true, |x| n > x)
        && b.gte.map_or(true, |x| n >= x)
        && b.lt.map_or(true, |x| n < x)
        && b.lte.map_or(true, |x| n <= x)
}

/// Equality as Filebeat's `equals` sees it: numbers by value (200 equals 200.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The string values of a field: the string itself, or the strings of an array.
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(yaml: &str) -> Processors {
        let list: Vec<ProcessorConfig> = crate::config::from_yaml(yaml).unwrap();
        Processors::new(&list)
    }

    fn event() -> Map<String, Value> {
        json!({"message": "GET /health 200", "http": {"code": 200}, "agent": {"id": "a", "ephemeral_id": "e"}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn add_fields_under_a_target_or_the_root() {
        let p = chain(
            "- add_fields:\n    fields: {team: web}\n- add_fields:\n    target: ''\n    fields: {env.name: prod}\n",
        );
        let mut ev = event();
        assert!(p.apply(&mut ev));
        assert_eq!(ev["fields"]["team"], "web");
        assert_eq!(ev["env"]["name"], "prod");
    }

    #[test]
    fn drop_fields_by_dotted_path_and_missing_ones_are_skipped() {
        let p = chain("- drop_fields:\n    fields: [agent.ephemeral_id, nothing.here]\n    ignore_missing: true\n");
        let mut ev = event();
        assert!(p.apply(&mut ev));
        assert_eq!(ev["agent"], json!({"id": "a"}));
    }

    #[test]
    fn drop_event_when_conditions_hold() {
        let cases = [
            ("equals: {http.code: 200}", false),
            ("equals: {http.code: 500}", true),
            ("contains: {message: health}", false),
            ("regexp: {message: '^POST'}", true),
            ("has_fields: [http.code]", false),
            ("not: {has_fields: [http.code]}", true),
            ("and: [{equals: {http.code: 200}}, {contains: {message: GET}}]", false),
            ("or: [{equals: {http.code: 500}}, {contains: {message: POST}}]", true),
            ("range: {http.code: {gte: 200, lt: 300}}", false),
            ("range.http.code.gte: 400", true),
        ];
        for (when, kept) in cases {
            let p = chain(&format!("- drop_event:\n    when:\n      {when}\n"));
            assert_eq!(p.apply(&mut event()), kept, "{when}");
        }
    }

    /// What Filebeat 8.1.3 made of these lines with `decode_json_fields` (target `""`,
    /// `document_id: meta.id`), read from its file output: a nested string id moves to
    /// `@metadata._id` and leaves `meta` empty; a line without it keeps its fields and gets no id.
    #[test]
    fn decode_json_fields_document_id_as_filebeat_does() {
        let p = chain("- decode_json_fields:\n    fields: [message]\n    target: ''\n    document_id: meta.id\n");
        let mut nested = json!({"message": r#"{"meta":{"id":"nested"},"msg":"dotted"}"#}).as_object().unwrap().clone();
        assert!(p.apply(&mut nested));
        assert_eq!(nested["@metadata"]["_id"], "nested");
        assert_eq!(nested["meta"], json!({}));
        assert_eq!(nested["msg"], "dotted");

        let mut plain = json!({"message": r#"{"id":42,"msg":"num"}"#}).as_object().unwrap().clone();
        assert!(p.apply(&mut plain));
        assert!(!plain.contains_key("@metadata"));
        assert_eq!(plain["id"], 42);
    }

    #[test]
    fn a_condition_on_add_fields_is_honoured() {
        let p = chain("- add_fields:\n    when: {equals: {http.code: 500}}\n    fields: {alert: true}\n");
        let mut ev = event();
        assert!(p.apply(&mut ev));
        assert!(!ev.contains_key("fields"));
    }
}
