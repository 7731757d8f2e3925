//! Maps whose keys are dotted names, read back from libbeat's nesting.
//!
//! libbeat (and [`super::tree::expand_dots`]) reads `linger.ms: 5` as `linger: {ms: 5}` and
//! `equals: {log.level: error}` as `equals: {log: {level: error}}`. Where a key is a name rather
//! than a path into the settings (librdkafka properties, the fields a condition tests), these
//! deserializers join the nesting back into dotted keys, so both spellings mean the same.
//! Invariant: the result has only leaves (no map values), each under its full dotted name.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// A map of dotted names to values; nested maps are joined into their leaves' dotted names.
pub fn flat_values<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Value>, D::Error> {
    let nested = BTreeMap::<String, Value>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (k, v) in nested {
        flatten(k, v, &mut out);
    }
    Ok(out)
}

/// [`flat_values`] with every leaf as text (`5` is `"5"`, `true` is `"true"`).
pub fn flat_strings<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    flat_values(d)?
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(_) | Value::Bool(_) => Ok((k, v.to_string())),
            other => Err(serde::de::Error::custom(format!("{k} needs a single value, not {other}"))),
        })
        .collect()
}

/// [`flat_strings`] with every leaf compiled as a regex; an invalid one is an error naming its field.
pub fn flat_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, super::Pattern>, D::Error> {
    flat_strings(d)?
        .into_iter()
        .map(|(k, v)| {
            super::Pattern::new(&v).map(|p| (k.clone(), p)).map_err(|e| serde::de::Error::custom(format!("{k}: {e}")))
        })
        .collect()
}

fn flatten(prefix: String, v: Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                flatten(format!("{prefix}.{k}"), v, out);
            }
        }
        leaf => {
            out.insert(prefix, leaf);
        }
    }
}

/// A `range` condition: fields (dotted names, flattened back) to their bounds.
pub fn range_bounds<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, super::processors::RangeBounds>, D::Error> {
    let flat = flat_values(d)?;
    let mut out: BTreeMap<String, super::processors::RangeBounds> = BTreeMap::new();
    for (k, v) in flat {
        // `range: {http.status: {gte: 400}}` arrives as `http.status.gte`.
        let (field, bound) = k
            .rsplit_once('.')
            .ok_or_else(|| serde::de::Error::custom(format!("range {k} needs gt, gte, lt or lte")))?;
        let n = v.as_f64().ok_or_else(|| serde::de::Error::custom(format!("range bound {k} needs a number")))?;
        let b = out.entry(field.to_string()).or_default();
        match bound {
            "gt" => b.gt = Some(n),
            "gte" => b.gte = Some(n),
            "lt" => b.lt = Some(n),
            "lte" => b.lte = Some(n),
            other => return Err(serde::de::Error::custom(format!("range bound {other:?} is not gt, gte, lt or lte"))),
        }
    }
    Ok(out)
}
