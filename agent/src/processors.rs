//! Processors: change or drop an event after it is built and before it is routed and sent
//! (`add_fields`, `drop_fields`, `drop_event`, each with an optional `when` condition).
//!
//! Owns an input's compiled processor chain (its own processors, then the global ones).
//! Invariants: processors run in the order written; a dropped event still advances its file's
//! offset (the caller ships it as a no-delivery event and counts it); running a chain never fails
//! (regexes were checked when the config was loaded). They work on the JSON event as a tree, so
//! only inputs that configure processors pay for building one.

use crate::config::{compile, Condition, ProcessorConfig};
use crate::event::lookup_value;
use regex::bytes::Regex;
use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub struct Processors {
    list: Vec<(Step, Option<Cond>)>,
}

#[derive(Debug)]
enum Step {
    AddFields { target: String, fields: Map<String, Value> },
    DropFields { fields: Vec<String> },
    DropEvent,
}

#[derive(Debug)]
enum Cond {
    Equals(Vec<(String, Value)>),
    Contains(Vec<(String, String)>),
    Regexp(Vec<(String, Regex)>),
    HasFields(Vec<String>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Processors {
    pub fn new(input: &[ProcessorConfig], global: &[ProcessorConfig]) -> Processors {
        let list = input.iter().chain(global).map(step).collect();
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
            match step {
                Step::AddFields { target, fields } => {
                    for (k, v) in fields {
                        let path = if target.is_empty() { k.clone() } else { format!("{target}.{k}") };
                        put(event, &path, v.clone());
                    }
                }
                Step::DropFields { fields } => {
                    for f in fields {
                        remove(event, f);
                    }
                }
                Step::DropEvent => return false,
            }
        }
        true
    }
}

fn step(p: &ProcessorConfig) -> (Step, Option<Cond>) {
    match p {
        ProcessorConfig::AddFields(a) => (
            Step::AddFields { target: a.target.clone(), fields: a.fields.clone().into_iter().collect() },
            a.when.as_ref().map(cond),
        ),
        ProcessorConfig::DropFields(d) => (Step::DropFields { fields: d.fields.clone() }, d.when.as_ref().map(cond)),
        ProcessorConfig::DropEvent(d) => (Step::DropEvent, d.when.as_ref().map(cond)),
    }
}

fn cond(c: &Condition) -> Cond {
    match c {
        Condition::Equals(m) => Cond::Equals(m.clone().into_iter().collect()),
        Condition::Contains(m) => Cond::Contains(m.clone().into_iter().collect()),
        Condition::Regexp(m) => {
            Cond::Regexp(m.iter().map(|(k, r)| (k.clone(), compile(r).expect("validated"))).collect())
        }
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
            Cond::HasFields(fields) => fields.iter().all(|f| lookup_value(ev, f).is_some()),
            Cond::And(l) => l.iter().all(|c| c.holds(ev)),
            Cond::Or(l) => l.iter().any(|c| c.holds(ev)),
            Cond::Not(c) => !c.holds(ev),
        }
    }
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

fn remove(map: &mut Map<String, Value>, path: &str) -> bool {
    if map.remove(path).is_some() {
        return true;
    }
    match path.split_once('.') {
        Some((head, tail)) => match map.get_mut(head) {
            Some(Value::Object(inner)) => remove(inner, tail),
            _ => false,
        },
        None => false,
    }
}

/// Sets a dotted path, creating (or replacing non-object values with) objects on the way.
fn put(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_string(), value);
        }
        Some((head, tail)) => {
            let slot = map.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            put(slot.as_object_mut().expect("made an object"), tail, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(yaml: &str) -> Processors {
        let list: Vec<ProcessorConfig> = crate::config::from_yaml(yaml).unwrap();
        Processors::new(&list, &[])
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
        ];
        for (when, kept) in cases {
            let p = chain(&format!("- drop_event:\n    when:\n      {when}\n"));
            assert_eq!(p.apply(&mut event()), kept, "{when}");
        }
    }

    #[test]
    fn a_condition_on_add_fields_is_honoured() {
        let p = chain("- add_fields:\n    when: {equals: {http.code: 500}}\n    fields: {alert: true}\n");
        let mut ev = event();
        assert!(p.apply(&mut ev));
        assert!(!ev.contains_key("fields"));
    }
}
