//! Processor settings: Filebeat's `add_fields`, `drop_fields` and `drop_event`, each with an
//! optional `when` condition (`equals`, `contains`, `regexp`, `has_fields`, `and`, `or`, `not`).
//!
//! Owns the `processors:` schema (per input and global) and its validation. Invariant: every
//! regex in a condition compiles and every processor names what it acts on, so running one can
//! never fail.

use super::{invalid, Invalid};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Filebeat's default `add_fields.target`.
pub const DEFAULT_ADD_FIELDS_TARGET: &str = "fields";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ProcessorConfig {
    AddFields(AddFields),
    DropFields(DropFields),
    DropEvent(DropEvent),
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropFields {
    /// Dotted field names (`agent.ephemeral_id`).
    pub fields: Vec<String>,
    /// Filebeat logs an error for a missing field unless this is set; the agent just skips it.
    #[serde(default)]
    pub ignore_missing: bool,
    pub when: Option<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropEvent {
    /// Required: a `drop_event` without a condition would drop every event.
    pub when: Option<Condition>,
}

/// Filebeat's conditions. Field names are dotted paths into the event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Every field equals its value (strings, numbers, booleans).
    Equals(#[serde(deserialize_with = "super::dotted::flat_values")] BTreeMap<String, serde_json::Value>),
    /// Every field is a string containing its value.
    Contains(#[serde(deserialize_with = "super::dotted::flat_strings")] BTreeMap<String, String>),
    /// Every field is a string matching its regex.
    Regexp(#[serde(deserialize_with = "super::dotted::flat_strings")] BTreeMap<String, String>),
    HasFields(Vec<String>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl ProcessorConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), Invalid> {
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
        };
        match when {
            Some(c) => c.validate(&format!("{at}.{name}.when")),
            None => Ok(()),
        }
    }
}

impl Condition {
    fn validate(&self, at: &str) -> Result<(), Invalid> {
        match self {
            Condition::Regexp(m) => {
                for (field, r) in m {
                    super::input::compile(r).map_err(|e| invalid(format!("{at}.regexp.{field}"), e))?;
                }
                Ok(())
            }
            Condition::And(list) | Condition::Or(list) if list.is_empty() => {
                Err(invalid(at.to_string(), "an `and` or `or` needs at least one condition"))
            }
            Condition::And(list) | Condition::Or(list) => list.iter().try_for_each(|c| c.validate(at)),
            Condition::Not(c) => c.validate(at),
            Condition::Equals(m) if m.is_empty() => Err(invalid(format!("{at}.equals"), "names no field")),
            Condition::Equals(_) | Condition::Contains(_) | Condition::HasFields(_) => Ok(()),
        }
    }
}
