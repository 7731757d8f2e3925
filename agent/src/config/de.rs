//! Typing the tree: a serde `Deserializer` over [`Node`]s that names the key and the line of
//! every error, and reports every error of a file in one run.
//!
//! Owns the reading of YAML values into the schema's types, the way libbeat's config library
//! does it: a plain (unquoted) value is typed by its content (`10` a number, `true`/`yes`/`on` a
//! boolean, `~` nothing), and a key that wants a string takes any value as written (`topic: 123`
//! is the topic "123"). Invariants:
//! - every error carries the dotted key path (`inputs[0].close.on_state_change.inactive`) and the
//!   line of what the user wrote;
//! - every error of a file is reported, each once: an unknown key or a value that cannot be
//!   typed stops a pass, and [`from_tree`] runs again without that key (up to [`MAX_PASSES`]
//!   passes; typing a config takes microseconds). A required key that is missing leaves out the
//!   map that lacks it.

use super::tree::{Entry, Node, Scalar, Value};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Most passes [`from_tree`] makes to find further errors after a bad value.
pub const MAX_PASSES: usize = 64;

/// An error found while typing the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    /// Dotted key path; empty for the file as a whole.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
    kind: Kind,
    located: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Unknown,
    /// A required key is missing (the key path names it).
    Missing,
}

impl DeError {
    fn at(mut self, key: &str, line: usize) -> Self {
        if !self.located {
            self.located = true;
            if self.key.is_empty() {
                self.key = key.to_string();
            } else {
                // A missing or unknown key reported by the map it belongs to.
                self.key = join(key, &self.key);
            }
            self.line = Some(line);
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { key: String::new(), line: None, message: msg.to_string(), kind: Kind::Value, located: false }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format!("unknown key `{field}`{}", one_of(field, expected)));
        e.kind = Kind::Unknown;
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format!("unknown `{variant}`{}", one_of(variant, expected)));
        e.kind = Kind::Unknown;
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = Self::custom(format!("required key `{field}` is missing"));
        e.kind = Kind::Missing;
        e.key = field.to_string();
        e
    }
}

/// A hint after an unknown name: the known name it is a typo of, or the short list of them.
fn one_of(got: &str, expected: &[&str]) -> String {
    let near =
        expected.iter().filter(|e| edit_distance(got, e) <= 2.min(e.len() / 3)).min_by_key(|e| edit_distance(got, e));
    match (near, expected.len()) {
        (Some(n), _) => format!("; did you mean `{n}`?"),
        (None, 1..=12) => format!(" (expected one of: {})", expected.join(", ")),
        _ => String::new(),
    }
}

/// Levenshtein distance, for typo hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

/// What one typing pass shares: the key paths left out after they failed in earlier passes.
struct Pass<'a> {
    skip: &'a HashSet<String>,
}

/// Types the tree as `T`, reporting every error, each found by running again without the keys
/// that failed before.
pub fn from_tree<T: DeserializeOwned>(root: &Node) -> Result<T, Vec<DeError>> {
    let mut skip = HashSet::new();
    let mut all: Vec<DeError> = Vec::new();
    for _ in 0..MAX_PASSES {
        let pass = Pass { skip: &skip };
        let result = T::deserialize(NodeDe { node: root, path: String::new(), pass: &pass });
        let fatal = match result {
            Ok(t) if all.is_empty() => return Ok(t),
            Ok(_) => return Err(all),
            Err(e) => e,
        };
        // A required key missing because its bad value was left out is no news.
        let consequence = fatal.kind == Kind::Missing && skip.contains(&fatal.key);
        if !consequence && !all.contains(&fatal) {
            all.push(fatal.clone());
        }
        // Go on without the bad value, or without the map that lacks a required key.
        let leave_out = match fatal.kind {
            Kind::Missing => parent_of(&fatal.key),
            _ => Some(fatal.key.clone()),
        };
        match leave_out {
            Some(p) if !p.is_empty() && !skip.contains(&p) => {
                skip.insert(p);
            }
            _ => break,
        }
    }
    Err(all)
}

/// `a.b[2].c` → `a.b[2]`; `a.b[2]` → `a.b`.
fn parent_of(path: &str) -> Option<String> {
    let cut = path.rfind(['.', '['])?;
    Some(path[..cut].to_string())
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    pass: &'a Pass<'a>,
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, key: &str) -> NodeDe<'a> {
        NodeDe { node, path: join(&self.path, key), pass: self.pass }
    }

    fn err(&self, message: impl Into<String>) -> DeError {
        de::Error::custom(message.into())
    }

    fn located<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.at(&self.path, self.node.line))
    }

    fn scalar(&self, what: &str) -> Result<&'a Scalar, DeError> {
        match &self.node.value {
            Value::Scalar(s) if !s.is_null() => Ok(s),
            Value::Scalar(_) => Err(self.err(format!("needs {what}, but has no value"))),
            Value::Seq(_) => Err(self.err(format!("needs {what}, not a list"))),
            Value::Map(_) => Err(self.err(format!("needs {what}, not a map"))),
        }
    }

    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let s = self.scalar(what)?;
        let t = s.text.trim();
        t.strip_prefix('+').unwrap_or(t).parse().map_err(|_| {
            let whole = t.strip_prefix('-').unwrap_or(t).bytes().all(|b| b.is_ascii_digit()) && !t.is_empty();
            if whole {
                self.err(format!("{t} is out of range for {what}"))
            } else {
                self.err(format!("needs {what}, not {:?}", s.text))
            }
        })
    }
}

/// YAML 1.1 booleans, as Filebeat's YAML reader takes them.
pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => Some(false),
        _ => None,
    }
}

fn looks_like_float(t: &str) -> bool {
    let b = t.strip_prefix(['-', '+']).unwrap_or(t);
    !b.is_empty()
        && b.bytes().next().is_some_and(|c| c.is_ascii_digit() || c == b'.')
        && b.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
        && b.bytes().any(|c| c.is_ascii_digit())
}

macro_rules! number_methods {
    ($($method:ident => $visit:ident: $ty:ty, $what:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
                let n = self.number::<$ty>($what);
                self.located(n.and_then(|n| v.$visit(n)))
            }
        )*
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar(s) if s.is_null() => v.visit_unit(),
            Value::Scalar(s) if !s.plain => v.visit_str(&s.text),
            Value::Scalar(s) => {
                let t = s.text.as_str();
                if let Some(b) = parse_bool(t).filter(|_| t.len() > 1) {
                    v.visit_bool(b)
                } else if let Ok(n) = t.parse::<i64>() {
                    v.visit_i64(n)
                } else if let Ok(n) = t.parse::<u64>() {
                    v.visit_u64(n)
                } else if let Some(f) = looks_like_float(t).then(|| t.parse::<f64>().ok()).flatten() {
                    v.visit_f64(f)
                } else {
                    v.visit_str(t)
                }
            }
            Value::Seq(items) => v.visit_seq(SeqDe { de: &self, items, i: 0 }),
            Value::Map(entries) => v.visit_map(MapDe { de: &self, entries, i: 0 }),
        };
        self.located(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = self.scalar("true or false").and_then(|s| {
            parse_bool(s.text.trim()).ok_or_else(|| self.err(format!("needs true or false, not {:?}", s.text)))
        });
        self.located(r.and_then(|b| v.visit_bool(b)))
    }

    number_methods! {
        deserialize_i8 => visit_i8: i8, "a small whole number";
        deserialize_i16 => visit_i16: i16, "a whole number";
        deserialize_i32 => visit_i32: i32, "a whole number";
        deserialize_i64 => visit_i64: i64, "a whole number";
        deserialize_u8 => visit_u8: u8, "a small whole number";
        deserialize_u16 => visit_u16: u16, "a whole number";
        deserialize_u32 => visit_u32: u32, "a whole number";
        deserialize_u64 => visit_u64: u64, "a whole number";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = self.scalar("a text value").and_then(|s| v.visit_str(&s.text));
        self.located(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = self.scalar("a text value").and_then(|s| v.visit_bytes(s.text.as_bytes()));
        self.located(r)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            self.located(v.visit_none())
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = if self.node.is_null() { v.visit_unit() } else { Err(self.err("takes no value")) };
        self.located(r)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Seq(items) => v.visit_seq(SeqDe { de: &self, items, i: 0 }),
            Value::Scalar(s) if s.is_null() => v.visit_seq(SeqDe { de: &self, items: &[], i: 0 }),
            // A single value where a list goes is a list of it, as libbeat's config reads it
            // (`paths: /var/log/app.log`, `tags: web`, `layouts: '2006-01-02'`).
            Value::Scalar(_) => v.visit_seq(SeqDe { de: &self, items: std::slice::from_ref(self.node), i: 0 }),
            _ => Err(self.err("needs a list")),
        };
        self.located(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Map(entries) => v.visit_map(MapDe { de: &self, entries, i: 0 }),
            // `add_host_metadata: ~` and an empty `ssl:` are maps with nothing set.
            Value::Scalar(s) if s.is_null() => v.visit_map(MapDe { de: &self, entries: &[], i: 0 }),
            Value::Seq(_) => Err(self.err("needs a map of settings, not a list")),
            Value::Scalar(s) => Err(self.err(format!("needs a map of settings, not {:?}", s.text))),
        };
        self.located(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    /// A closed set is written as its name (`codec: json`) or as a map with one key, the name,
    /// holding its settings (`- ndjson: {target: ""}`), as Filebeat writes parsers and processors.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar(s) if !s.is_null() => v.visit_enum(s.text.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => {
                let e = &entries[0];
                // A kind that does not exist is the enum's error (the whole entry goes), not its key's.
                let (path, line) = (self.path.clone(), self.node.line);
                v.visit_enum(EnumDe { de: self.child(&e.node, &e.key), name: &e.key, path, line })
            }
            Value::Map(entries) => {
                let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
                Err(self.err(format!("needs exactly one of its kinds as the only key, found {}", keys.join(", "))))
            }
            _ => Err(self.err("needs the name of a kind, or a map with that name as its only key")),
        };
        self.located(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct SeqDe<'a, 'b> {
    de: &'b NodeDe<'a>,
    items: &'a [Node],
    i: usize,
}

impl<'de, 'a, 'b> de::SeqAccess<'de> for SeqDe<'a, 'b> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        while self.i < self.items.len() {
            let i = self.i;
            self.i += 1;
            let child = self.de.child(&self.items[i], &format!("[{i}]"));
            if self.de.pass.skip.contains(&child.path) {
                continue;
            }
            let (path, line) = (child.path.clone(), child.node.line);
            return seed.deserialize(child).map(Some).map_err(|e| e.at(&path, line));
        }
        Ok(None)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.i)
    }
}

struct MapDe<'a, 'b> {
    de: &'b NodeDe<'a>,
    entries: &'a [Entry],
    i: usize,
}

impl<'de, 'a, 'b> de::MapAccess<'de> for MapDe<'a, 'b> {
    type Error = DeError;

    /// Keys that failed in an earlier pass are left out.
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        while self.i < self.entries.len() {
            let e = &self.entries[self.i];
            let path = join(&self.de.path, &e.key);
            if self.de.pass.skip.contains(&path) {
                self.i += 1;
                continue;
            }
            let key_de: de::value::StrDeserializer<'_, DeError> = e.key.as_str().into_deserializer();
            return seed.deserialize(key_de).map(Some).map_err(|err| err.at(&path, e.line));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let e = &self.entries[self.i];
        self.i += 1;
        let child = self.de.child(&e.node, &e.key);
        let (path, line) = (child.path.clone(), child.node.line);
        seed.deserialize(child).map_err(|err| err.at(&path, line))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.i)
    }
}

struct EnumDe<'a> {
    de: NodeDe<'a>,
    name: &'a str,
    /// Where the enum is written: an unknown kind is reported there.
    path: String,
    line: usize,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, NodeDe<'a>), DeError> {
        let name: de::value::StrDeserializer<'_, DeError> = self.name.into_deserializer();
        let v = seed.deserialize(name).map_err(|e| e.at(&self.path, self.line))?;
        Ok((v, self.de))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for NodeDe<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.node.is_null() {
            Ok(())
        } else {
            Err(self.err("takes no settings").at(&self.path, self.node.line))
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let (path, line) = (self.path.clone(), self.node.line);
        seed.deserialize(self).map_err(|e| e.at(&path, line))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, v)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, v)
    }
}
