//! The config file as a tree of nodes that remember their line, before anything is typed.
//!
//! Owns the reading of the text the way libbeat reads a `filebeat.yml`:
//! - YAML (yaml-rust2's event parser) into [`Node`]s, each with the line it was written on;
//!   nesting deeper than [`MAX_DEPTH`] and documents larger than [`MAX_NODES`] (alias bombs) are
//!   refused, and a key written twice in one mapping is an error, as in Filebeat's YAML reader;
//! - dotted keys: `a.b.c: v` means `a: {b: {c: v}}` at every level, merged with nested maps
//!   written beside it, the later setting winning where both set the same leaf ([`expand_dots`]);
//! - `${NAME}` and `${NAME:default}` in values: another setting of the file by its dotted path,
//!   else the environment variable, else the default; a reference that resolves to nothing is an
//!   error naming it ([`expand_references`]). Expanded values are never logged.
//!
//! Invariant: a node moved or created by any of these steps keeps the line of the text it came
//! from, so an error found later, while typing or validating, points at what the user wrote.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of maps and lists accepted (Filebeat files need about 10).
pub const MAX_DEPTH: usize = 64;
/// Most nodes in one file, aliases expanded.
pub const MAX_NODES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the value (for a map or list: of its first entry).
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Written without quotes: typed by its content (`10` a number, `true` a boolean, `~` null).
    pub plain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    /// Line of the key.
    pub line: usize,
    pub node: Node,
}

/// A problem found in the text, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    pub line: usize,
    /// The dotted key path it concerns, if any.
    pub key: Option<String>,
    pub message: String,
}

impl Node {
    pub fn scalar(line: usize, text: impl Into<String>, plain: bool) -> Node {
        Node { line, value: Value::Scalar(Scalar { text: text.into(), plain }) }
    }

    pub fn map(line: usize, entries: Vec<Entry>) -> Node {
        Node { line, value: Value::Map(entries) }
    }

    pub fn as_map(&self) -> Option<&Vec<Entry>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A plain `~`, `null` or empty value.
    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }

    /// The entry `key` of a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|e| e.key == key).map(|e| &e.node)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?.iter_mut().find(|e| e.key == key).map(|e| &mut e.node)
    }

    /// Takes the entry `key` out of a map node.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let m = self.as_map_mut()?;
        let i = m.iter().position(|e| e.key == key)?;
        Some(m.remove(i))
    }

    /// The node at a key path such as `inputs[1].parsers[0].multiline`. Keys may contain dots,
    /// so at each level the longest key that matches wins.
    pub fn lookup(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        let mut rest = path;
        while !rest.is_empty() {
            let (next, used, _) = step(node, rest)?;
            node = next;
            rest = rest[used..].trim_start_matches('.');
        }
        Some(node)
    }

    /// Line of the key at `path` (of the nearest written parent when the key itself is not there).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut node = self;
        let mut rest = path;
        let mut line = None;
        while !rest.is_empty() {
            let Some((next, used, at)) = step(node, rest) else { break };
            node = next;
            line = Some(at);
            rest = rest[used..].trim_start_matches('.');
        }
        line
    }
}

/// One step of a key path: a `[n]` index into a list, or the longest matching key of a map.
/// Returns the node, the bytes of `path` used and the line of the key (or list item).
fn step<'a>(node: &'a Node, path: &str) -> Option<(&'a Node, usize, usize)> {
    if let Some(inner) = path.strip_prefix('[') {
        let end = inner.find(']')?;
        let i: usize = inner[..end].parse().ok()?;
        let Value::Seq(items) = &node.value else { return None };
        let item = items.get(i)?;
        return Some((item, end + 2, item.line));
    }
    let Value::Map(entries) = &node.value else { return None };
    entries
        .iter()
        .filter(|e| {
            path.starts_with(e.key.as_str())
                && matches!(path.as_bytes().get(e.key.len()), None | Some(b'.') | Some(b'['))
        })
        .max_by_key(|e| e.key.len())
        .map(|e| (&e.node, e.key.len(), e.line))
}

impl Scalar {
    pub fn is_null(&self) -> bool {
        self.plain && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
}

/// Parses YAML text into a tree; an empty file is an empty map.
pub fn parse(text: &str) -> Result<Node, TreeError> {
    let root = parse_value(text)?;
    match &root.value {
        Value::Map(_) => Ok(root),
        _ if root.is_null() => Ok(Node::map(1, Vec::new())),
        _ => Err(TreeError { line: root.line, key: None, message: "the file must be a map of settings".into() }),
    }
}

/// Parses YAML text holding any value (a map, a list or a scalar).
pub fn parse_value(text: &str) -> Result<Node, TreeError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Events are pulled one by one so that a refused file stops being parsed at once.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| TreeError {
            line: e.marker().line(),
            key: None,
            message: format!("invalid YAML: {}", e.info()),
        })?;
        let end = ev == Event::StreamEnd;
        b.on_event(ev, mark);
        if let Some(err) = b.error.take() {
            return Err(err);
        }
        if end {
            break;
        }
    }
    Ok(b.root.unwrap_or(Node::scalar(1, "", true)))
}

/// A list or map being built, with its anchor and (for a map) the key waiting for its value.
enum Open {
    Seq { anchor: usize, line: usize, items: Vec<Node> },
    Map { anchor: usize, line: usize, entries: Vec<Entry>, key: Option<(String, usize)> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    error: Option<TreeError>,
    documents: usize,
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(TreeError { line, key: None, message: message.into() });
        }
    }

    /// Adds a finished node to what is open (or makes it the root).
    fn push(&mut self, node: Node, anchor: usize) {
        self.nodes += count(&node);
        if self.nodes > MAX_NODES {
            self.fail(node.line, format!("more than {MAX_NODES} values (aliases expanded); refusing the file"));
            return;
        }
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let line = node.line;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                Some((k, key_line)) => {
                    if let Some(prev) = entries.iter().find(|e| e.key == k) {
                        let msg =
                            format!("key {k:?} is written twice in the same map (lines {} and {key_line})", prev.line);
                        self.fail(key_line, msg);
                        return;
                    }
                    entries.push(Entry { key: k, line: key_line, node });
                }
                None => match node.value {
                    Value::Scalar(s) => *key = Some((s.text, line)),
                    _ => self.fail(line, "a key must be a plain value, not a list or a map"),
                },
            },
        }
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Scalar(_) => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|e| 1 + count(&e.node)).sum::<usize>(),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(line, "more than one YAML document (`---`) in the file");
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.push(Node::scalar(line, text, plain), anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.push(Node { line, ..node }, 0),
                None => self.fail(line, "alias to an unknown anchor"),
            },
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, format!("nested deeper than {MAX_DEPTH} levels"));
                    return;
                }
                self.stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Open::Seq { anchor, line, items: Vec::new() }
                } else {
                    Open::Map { anchor, line, entries: Vec::new(), key: None }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq { anchor, line, items }) => {
                        (Node { line: items.first().map_or(line, |n| n.line), value: Value::Seq(items) }, anchor)
                    }
                    Some(Open::Map { anchor, line, entries, .. }) => {
                        (Node { line: entries.first().map_or(line, |e| e.line), value: Value::Map(entries) }, anchor)
                    }
                    None => return,
                };
                self.push(node, anchor);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// libbeat's dotted keys: every key `a.b.c` of every map becomes nested maps, merged with what is
/// written beside it; where two settings set the same leaf the later one wins, as libbeat merges.
pub fn expand_dots(node: &mut Node) {
    match &mut node.value {
        Value::Scalar(_) => {}
        Value::Seq(items) => items.iter_mut().for_each(expand_dots),
        Value::Map(entries) => {
            let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
            for mut e in std::mem::take(entries) {
                expand_dots(&mut e.node);
                let nested = nest(e);
                merge_entry(&mut out, nested);
            }
            *entries = out;
        }
    }
}

/// `a.b.c: v` as `a: {b: {c: v}}` (keys of one segment stay as they are).
fn nest(e: Entry) -> Entry {
    let parts: Vec<&str> = e.key.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return e;
    }
    let mut node = e.node;
    for p in parts[1..].iter().rev() {
        node = Node::map(e.line, vec![Entry { key: (*p).to_string(), line: e.line, node }]);
    }
    Entry { key: parts[0].to_string(), line: e.line, node }
}

/// Adds an entry to a map, merging maps key by key; anything else replaces what was there.
pub fn merge_entry(entries: &mut Vec<Entry>, e: Entry) {
    let Some(existing) = entries.iter_mut().find(|x| x.key == e.key) else {
        entries.push(e);
        return;
    };
    match (&mut existing.node.value, e.node.value) {
        (Value::Map(into), Value::Map(from)) => {
            for f in from {
                merge_entry(into, f);
            }
        }
        (_, value) => {
            existing.line = e.line;
            existing.node = Node { line: e.node.line, value };
        }
    }
}

/// Expands `${NAME}` / `${NAME:default}` in every value: a setting of the file by its dotted path
/// first, then the environment variable `NAME`, then the default. `env` looks variables up (the
/// process environment in production). Every reference that resolves to nothing is reported.
pub fn expand_references(root: &mut Node, env: &dyn Fn(&str) -> Option<String>) -> Vec<TreeError> {
    let snapshot = root.clone();
    let mut errors = Vec::new();
    expand_in(root, &snapshot, env, "", &mut errors);
    errors
}

fn expand_in(
    node: &mut Node,
    root: &Node,
    env: &dyn Fn(&str) -> Option<String>,
    path: &str,
    errors: &mut Vec<TreeError>,
) {
    let line = node.line;
    match &mut node.value {
        Value::Scalar(s) => {
            if s.text.contains("${") {
                match expand_text(&s.text, root, env, 0) {
                    Ok(t) => s.text = t,
                    Err(message) => errors.push(TreeError { line, key: Some(path.to_string()), message }),
                }
            }
        }
        Value::Seq(items) => {
            for (i, n) in items.iter_mut().enumerate() {
                expand_in(n, root, env, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Map(entries) => {
            for e in entries.iter_mut() {
                let p = if path.is_empty() { e.key.clone() } else { format!("{path}.{}", e.key) };
                expand_in(&mut e.node, root, env, &p, errors);
            }
        }
    }
}

/// How deep references may refer to references.
const MAX_REFERENCE_DEPTH: usize = 16;

/// Expands the references in one text against `root` and `env` (see [`expand_references`]).
pub fn expand_str(text: &str, root: &Node, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_text(text, root, env, 0)
}

fn expand_text(text: &str, root: &Node, env: &dyn Fn(&str) -> Option<String>, depth: usize) -> Result<String, String> {
    if depth > MAX_REFERENCE_DEPTH {
        return Err(format!("references nested deeper than {MAX_REFERENCE_DEPTH} (a reference to itself?)"));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let body_start = start + 2;
        let Some(len) = closing_brace(&rest[body_start..]) else {
            return Err(format!("unclosed reference in {text:?}"));
        };
        let body = &rest[body_start..body_start + len];
        let (name, default) = match body.split_once(':') {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (body.trim(), None),
        };
        let from_file = match root.lookup(name).map(|n| &n.value) {
            Some(Value::Scalar(s)) if !name.is_empty() => Some(s.text.clone()),
            _ => None,
        };
        let value = match (from_file, env(name), default) {
            (Some(v), _, _) | (None, Some(v), _) => v,
            (None, None, Some(d)) => d.to_string(),
            (None, None, None) => {
                return Err(format!("${{{name}}} is neither a setting of this file nor an environment variable, and has no default (write ${{{name}:default}})"))
            }
        };
        out.push_str(&expand_text(&value, root, env, depth + 1)?);
        rest = &rest[body_start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of a reference's body up to its closing brace, counting nested `${...}` in defaults.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Node {
        let mut n = parse(text).unwrap();
        expand_dots(&mut n);
        n
    }

    fn text_at<'a>(n: &'a Node, path: &str) -> &'a str {
        &n.lookup(path).unwrap().as_scalar().unwrap().text
    }

    #[test]
    fn dotted_keys_nest_and_merge_with_nested_maps_at_every_level() {
        let n = tree("output.kafka.hosts: [a]\noutput:\n  kafka:\n    topic: t\n    ssl.enabled: true\ninputs:\n  - id: x\n    close.on_state_change.inactive: 1s\n");
        let kafka = n.get("output").unwrap().get("kafka").unwrap();
        assert_eq!(
            kafka.as_map().unwrap().iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["hosts", "topic", "ssl"]
        );
        assert_eq!(text_at(&n, "output.kafka.ssl.enabled"), "true");
        assert_eq!(text_at(&n, "inputs[0].close.on_state_change.inactive"), "1s");
        // Lines stay where the user wrote them.
        assert_eq!(n.line_of("output.kafka.hosts"), Some(1));
        assert_eq!(n.line_of("output.kafka.ssl.enabled"), Some(5));
        assert_eq!(n.line_of("inputs[0].close.on_state_change.inactive"), Some(8));
        assert_eq!(n.line_of("inputs[0].nothing"), Some(7), "a missing key points at its parent");
    }

    #[test]
    fn the_later_setting_of_a_leaf_wins() {
        let n = tree("a:\n  b: 1\na.b: 2\n");
        assert_eq!(text_at(&n, "a.b"), "2");
    }

    #[test]
    fn a_key_written_twice_in_one_map_is_an_error_with_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("lines 1 and 3"), "{}", err.message);
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let err = parse(&format!("a: {deep}\n")).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{}", err.message);
        // Refused at once, however deep the rest goes (40,000 levels took 7 s to parse before).
        let t = std::time::Instant::now();
        let err = parse(&format!("a: {}\n", "[".repeat(40_000))).unwrap_err();
        assert!(err.message.contains("nested deeper") || err.message.contains("recursion limit"), "{}", err.message);
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
        // An alias bomb: each level doubles.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text).unwrap_err().message.contains("values"));
    }

    #[test]
    fn invalid_yaml_names_its_line() {
        let err = parse("a: 1\nb: [unclosed\nc: 2\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn references_resolve_to_settings_then_environment_then_default() {
        let env = |k: &str| (k == "KAFKA_HOST").then(|| "kafka:9092".to_string());
        let mut n = tree("path.data: /srv/data\na: ${path.data}/x\nb: ${KAFKA_HOST}\nc: ${NOPE:fallback}\nd: \"${NOPE:}\"\ne: pre-${KAFKA_HOST}-${NOPE:${KAFKA_HOST}}\n");
        assert!(expand_references(&mut n, &env).is_empty());
        assert_eq!(text_at(&n, "a"), "/srv/data/x");
        assert_eq!(text_at(&n, "b"), "kafka:9092");
        assert_eq!(text_at(&n, "c"), "fallback");
        assert_eq!(text_at(&n, "d"), "");
        assert_eq!(text_at(&n, "e"), "pre-kafka:9092-kafka:9092");
    }

    #[test]
    fn an_unset_reference_is_an_error_naming_it_and_its_key() {
        let mut n = tree("output:\n  kafka:\n    password: ${KAFKA_PASSWORD}\n");
        let errs = expand_references(&mut n, &|_| None);
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].key.as_deref()), (3, Some("output.kafka.password")));
        assert!(errs[0].message.contains("${KAFKA_PASSWORD}"), "{}", errs[0].message);
        let mut n = tree("a: ${a}\n");
        assert!(expand_references(&mut n, &|_| None)[0].message.contains("deeper"));
    }
}
