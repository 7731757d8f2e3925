//! Value types used in the configuration: human durations (`5m`, `250ms`) and byte sizes
//! (`10MiB`, `1000000`). Each parses from YAML strings (and byte sizes from integers too), so a
//! Filebeat user can write what they wrote there.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written the way Filebeat writes them: `10s`, `5m`, `250ms`, `1h 30m` (or `0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    /// `0` means "off" for the options that Filebeat disables that way.
    pub fn is_off(&self) -> bool {
        self.0.is_zero()
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 250ms, 10s or 5m (a bare number is seconds)")
            }
            // A bare number is seconds, as libbeat reads it (`scan_frequency: 10`, `backoff: 0.5`).
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<HumanDuration, E> {
                Duration::try_from_secs_f64(n)
                    .ok()
                    .filter(|d| *d <= MAX_DURATION)
                    .map(HumanDuration)
                    .ok_or_else(|| E::custom(format!("invalid duration {n}: not between 0 and 10 years")))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                self.visit_f64(n as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                self.visit_f64(n as f64)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                let d = humantime::parse_duration(s.trim())
                    .map_err(|e| E::custom(format!("invalid duration {s:?} ({e}); write e.g. 250ms, 10s, 5m")))?;
                if d > MAX_DURATION {
                    return Err(E::custom(format!("duration {s:?} is longer than 10 years")));
                }
                Ok(HumanDuration(d))
            }
        }
        d.deserialize_any(V)
    }
}

/// Longest duration accepted anywhere: durations become librdkafka milliseconds (an `i32` for
/// some properties) and timer deadlines, and none of them means anything past this.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A byte count: a plain integer or a number with a unit (`KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }
}

/// Parses `"10MiB"`, `"1 GB"`, `"512"`.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid byte size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => return Err(format!("invalid byte size unit {other:?} in {s:?}; use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("byte size {s:?} is too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 1048576, 512KiB or 10MiB")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n).map(ByteSize).map_err(|_| E::custom(format!("a byte size cannot be negative ({n})")))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!("{n} is not a whole number of bytes")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_byte_size(s).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_and_without_units() {
        assert_eq!(parse_byte_size("512").unwrap(), 512);
        assert_eq!(parse_byte_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_byte_size("1 GB").unwrap(), 1_000_000_000);
        assert!(parse_byte_size("12 parsecs").is_err());
        assert!(parse_byte_size("").is_err());
    }

    #[test]
    fn durations_parse_like_filebeat() {
        let d: HumanDuration = crate::config::from_yaml("250ms").unwrap();
        assert_eq!(d.0, Duration::from_millis(250));
        let d: HumanDuration = crate::config::from_yaml("5m").unwrap();
        assert_eq!(d.0, Duration::from_secs(300));
        assert!(crate::config::from_yaml::<HumanDuration>("soon").is_err());
        // A bare number is seconds, as libbeat reads it (Filebeat 8.1.3 refuses `clean_inactive:
        // 19` next to `ignore_older: 10s` and `scan_frequency: 10s`, and takes 21).
        assert!(crate::config::from_yaml::<HumanDuration>("0").unwrap().is_off());
        assert_eq!(crate::config::from_yaml::<HumanDuration>("30").unwrap().0, Duration::from_secs(30));
        assert_eq!(crate::config::from_yaml::<HumanDuration>("0.5").unwrap().0, Duration::from_millis(500));
        assert!(crate::config::from_yaml::<HumanDuration>("-1").is_err());
        let err = crate::config::from_yaml::<HumanDuration>("{a: 1}").unwrap_err();
        assert!(err.contains("expected a duration such as"), "{err}");
        let err = crate::config::from_yaml::<ByteSize>("-1").unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
        let err = crate::config::from_yaml::<ByteSize>("[1]").unwrap_err();
        assert!(err.contains("expected a byte size"), "{err}");
        let err = crate::config::from_yaml::<HumanDuration>("100000d").unwrap_err().to_string();
        assert!(err.contains("10 years"), "{err}");
    }
}

/// A regex from the config, compiled while the config is read (over bytes, as every filter in
/// the agent runs it) and compared by its text.
#[derive(Clone, Debug)]
pub struct Pattern(regex::bytes::Regex);

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        regex::bytes::Regex::new(pattern).map(Pattern).map_err(|e| format!("invalid regex {pattern:?}: {e}"))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Pattern {
    type Target = regex::bytes::Regex;
    fn deref(&self) -> &regex::bytes::Regex {
        &self.0
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Pattern::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A list of regexes matched together (`include_lines`, `exclude_lines`): one set, built while
/// the config is read (each regex is checked on its own first, so an error names its index).
#[derive(Clone, Debug, Default)]
pub struct PatternSet(Option<regex::bytes::RegexSet>);

impl PatternSet {
    pub fn new<S: AsRef<str>>(list: &[S]) -> Result<PatternSet, String> {
        if list.is_empty() {
            return Ok(PatternSet(None));
        }
        regex::bytes::RegexSet::new(list.iter().map(AsRef::as_ref))
            .map(|s| PatternSet(Some(s)))
            .map_err(|e| format!("invalid regexes: {e}"))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `None` when the list is empty (nothing to match).
    pub fn set(&self) -> Option<&regex::bytes::RegexSet> {
        self.0.as_ref()
    }
}

impl PartialEq for PatternSet {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().map(|s| s.patterns()) == other.0.as_ref().map(|s| s.patterns())
    }
}

impl<'de> Deserialize<'de> for PatternSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Pattern>::deserialize(d)?;
        PatternSet::new(&list.iter().map(Pattern::as_str).collect::<Vec<_>>()).map_err(serde::de::Error::custom)
    }
}

/// A file mode as Filebeat's `permissions` takes it: `0644` (octal, YAML 1.1's reading of a
/// leading 0), `0o644`, or a plain number (`420`); at most `0o777`.
pub fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    // Read as the text written, so `0644` keeps its leading 0.
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let t = text.trim();
    let parsed = match t.strip_prefix("0o").or_else(|| t.strip_prefix('0').filter(|r| !r.is_empty())) {
        Some(octal) => u32::from_str_radix(octal, 8).ok(),
        None => t.parse::<u32>().ok(),
    };
    parsed
        .filter(|m| *m <= 0o777)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid file mode {t:?}: write it as 0600 or 0644")))
}
