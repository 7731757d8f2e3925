//! Filebeat's `timestamp` processor: a field's text parsed by Go time layouts
//! (`2006-01-02T15:04:05Z07:00`, `Jan _2 15:04:05`...) or as `UNIX` / `UNIX_MS` numbers, into
//! `@timestamp` or another field, in UTC with milliseconds.
//!
//! Owns the reading of Go layouts and of one value by them. Invariants: a layout is read as Go
//! 1.17's `time.Parse` reads it (Filebeat 8.1.3's Go): the same elements, a run of spaces in the
//! layout matching a run of spaces in the value, seconds taking an unasked-for fraction, the day
//! checked against its month, and no text left over; a time without a zone is in `timezone`
//! (UTC by default), a zone abbreviation the time zone does not use there counts as UTC, as Go
//! does, and a time without a year is in the current one. Parsing never panics on any input.

use crate::config::TimestampConfig;
use crate::event::{lookup_value, put_value};
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The `timestamp` processor on one event: the parsed time in `target_field`, or the event
/// unchanged when the field is missing or no layout reads it (Filebeat logs that at debug level).
pub(super) fn run(ev: &mut Map<String, Value>, t: &TimestampConfig) {
    let Some(v) = lookup_value(ev, &t.field) else { return };
    if let Ok(ts) = parse_value(&t.layouts, t.timezone.as_ref(), v) {
        put_value(ev, &t.target_field, Value::String(utc_millis(ts)));
    }
}

/// The first layout that reads `v`, or every layout's reason.
pub fn parse_value(layouts: &[Layout], zone: Option<&Zone>, v: &Value) -> Result<Timestamp, String> {
    let tz = zone.map_or(TimeZone::UTC, |z| z.tz.clone());
    let mut why = Vec::new();
    for layout in layouts {
        match layout.read(v, &tz) {
            Ok(ts) => return Ok(ts),
            Err(e) => why.push(e),
        }
    }
    Err(format!("failed parsing time field {v}: {}", why.join("; ")))
}

/// `2006-01-02T15:04:05.000Z`: how Filebeat writes a time (truncated to milliseconds).
fn utc_millis(ts: Timestamp) -> String {
    crate::event::rfc3339_millis(ts.into())
}

/// `timezone`: `Local`, an IANA name (`Europe/Berlin`, `EST`) or a fixed offset (`+05:30`,
/// `-0700`, `+07`), compared by its text.
#[derive(Debug, Clone)]
pub struct Zone {
    raw: String,
    tz: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Zone {
    pub fn parse(raw: &str) -> Result<Zone, String> {
        let tz = if raw == "Local" {
            TimeZone::system()
        } else if let Some(secs) = fixed_offset(raw) {
            TimeZone::fixed(Offset::from_seconds(secs).map_err(|e| format!("timezone {raw:?}: {e}"))?)
        } else {
            TimeZone::get(raw).map_err(|_| format!("unknown time zone {raw:?} (an IANA name, Local, or +hh:mm)"))?
        };
        Ok(Zone { raw: raw.to_string(), tz })
    }
}

/// `+hh:mm`, `+hhmm` or `+hh` (or `-`) in seconds.
fn fixed_offset(s: &str) -> Option<i32> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits.get(2..).filter(|m| !m.is_empty()).map_or(Some(0), |m| m.parse().ok())?;
    Some(sign * (h * 3600 + m * 60))
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Zone::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One element of a Go layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    LowerPm,
    /// `MST`
    Tz,
    /// `Z07:00` and friends: `Z` means UTC, else like the numeric ones.
    Iso {
        colon: bool,
        seconds: bool,
        short: bool,
    },
    /// `-07:00` and friends.
    Num {
        colon: bool,
        seconds: bool,
        short: bool,
    },
    /// `.000` (exactly that many digits) or `.999` (any, or none).
    Frac {
        digits: usize,
        exact: bool,
    },
}

/// A piece of a Go layout: literal text, or an element.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Text(String),
    Std(Std),
}

/// A `layouts` entry: `UNIX`, `UNIX_MS`, or a Go layout read into its elements.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    Unix,
    UnixMs,
    Go(Vec<Chunk>),
}

impl<'de> Deserialize<'de> for Layout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Layout::parse(&String::deserialize(d)?))
    }
}

const SHORT_MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

impl Layout {
    /// Any text is a layout (its unknown parts are literal text), as in Go.
    pub fn parse(raw: &str) -> Layout {
        match raw {
            "UNIX" => return Layout::Unix,
            "UNIX_MS" => return Layout::UnixMs,
            _ => {}
        }
        let mut chunks = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            let (text, std, after) = next_std(rest);
            if !text.is_empty() {
                chunks.push(Chunk::Text(text.to_string()));
            }
            match std {
                Some(s) => chunks.push(Chunk::Std(s)),
                None => break,
            }
            rest = after;
        }
        Layout::Go(chunks)
    }

    fn read(&self, v: &Value, tz: &TimeZone) -> Result<Timestamp, String> {
        let nanos_of = |secs: f64, scale: f64| -> Result<Timestamp, String> {
            // As Go: the float scaled to nanoseconds and truncated.
            let n = secs * scale;
            if !n.is_finite() || n.abs() >= i64::MAX as f64 {
                return Err("time out of range".into());
            }
            Timestamp::from_nanosecond(n as i64 as i128).map_err(|e| e.to_string())
        };
        match self {
            Layout::Unix | Layout::UnixMs => {
                let ms = matches!(self, Layout::UnixMs);
                let int = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.parse::<i64>().ok(),
                    _ => None,
                };
                if let Some(i) = int {
                    let ts = if ms { Timestamp::from_millisecond(i) } else { Timestamp::from_second(i) };
                    return ts.map_err(|e| e.to_string());
                }
                let float = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.parse::<f64>().ok(),
                    _ => None,
                };
                match float {
                    Some(f) => nanos_of(f, if ms { 1e6 } else { 1e9 }),
                    None => Err("could not parse time field as int or float".into()),
                }
            }
            Layout::Go(chunks) => match v {
                Value::String(s) => parse_go(chunks, s, tz),
                other => Err(format!("unexpected type for time field: {other}")),
            },
        }
    }
}

/// Go's `nextStdChunk`: the literal text before the first element, the element, and the rest.
fn next_std(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let lower_after = |i: usize| b.get(i).is_some_and(u8::is_ascii_lowercase);
    let cut = |i: usize, len: usize, std: Std| (&layout[..i], Some(std), &layout[i + len..]);
    for i in 0..b.len() {
        match b[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    return cut(i, 7, Std::LongMonth);
                }
                if !lower_after(i + 3) {
                    return cut(i, 3, Std::Month);
                }
            }
            b'M' if at(i, "Mon") || at(i, "MST") => {
                if at(i, "Monday") {
                    return cut(i, 6, Std::LongWeekDay);
                }
                if at(i, "Mon") && !lower_after(i + 3) {
                    return cut(i, 3, Std::WeekDay);
                }
                if at(i, "MST") {
                    return cut(i, 3, Std::Tz);
                }
            }
            b'0' if b.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => {
                let std = [Std::ZeroMonth, Std::ZeroDay, Std::ZeroHour12, Std::ZeroMinute, Std::ZeroSecond, Std::Year]
                    [usize::from(b[i + 1] - b'1')];
                return cut(i, 2, std);
            }
            b'1' => return if at(i, "15") { cut(i, 2, Std::Hour) } else { cut(i, 1, Std::NumMonth) },
            b'2' => return if at(i, "2006") { cut(i, 4, Std::LongYear) } else { cut(i, 1, Std::Day) },
            b'_' if at(i, "_2") => {
                // `_2006` is a literal `_` and the year.
                if at(i + 1, "2006") {
                    return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                }
                return cut(i, 2, Std::UnderDay);
            }
            b'3' => return cut(i, 1, Std::Hour12),
            b'4' => return cut(i, 1, Std::Minute),
            b'5' => return cut(i, 1, Std::Second),
            b'P' if at(i, "PM") => return cut(i, 2, Std::Pm),
            b'p' if at(i, "pm") => return cut(i, 2, Std::LowerPm),
            b'-' | b'Z' => {
                let (c, iso) = (b[i] as char, b[i] == b'Z');
                let forms = [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ];
                for (form, colon, seconds, short) in forms {
                    if at(i, &format!("{c}{form}")) {
                        let std =
                            if iso { Std::Iso { colon, seconds, short } } else { Std::Num { colon, seconds, short } };
                        return cut(i, 1 + form.len(), std);
                    }
                }
            }
            b'.' | b',' if b.get(i + 1).is_some_and(|c| *c == b'0' || *c == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while b.get(j) == Some(&ch) {
                    j += 1;
                }
                if !b.get(j).is_some_and(u8::is_ascii_digit) {
                    return cut(i, j - i, Std::Frac { digits: j - i - 1, exact: ch == b'0' });
                }
            }
            _ => {}
        }
    }
    (layout, None, "")
}

/// Go's `skip`: the layout's literal text at the start of the value, a run of spaces matching a
/// run of spaces.
fn skip<'v>(mut value: &'v str, mut text: &str) -> Option<&'v str> {
    while let Some(c) = text.chars().next() {
        if c == ' ' {
            if value.chars().next().is_some_and(|v| v != ' ') {
                return None;
            }
            text = text.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        value = value.strip_prefix(c)?;
        text = &text[c.len_utf8()..];
    }
    Some(value)
}

/// One or two digits (exactly two when `fixed`), as Go's `getnum`.
fn num(value: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = value.as_bytes();
    let d = |i: usize| b.get(i).filter(|c| c.is_ascii_digit()).map(|c| i64::from(c - b'0'));
    let first = d(0)?;
    match d(1) {
        Some(second) => Some((first * 10 + second, &value[2..])),
        None if fixed => None,
        None => Some((first, &value[1..])),
    }
}

/// A name from `names` at the start of the value, any ASCII case: its index and the rest.
fn lookup<'v>(names: &[&str], value: &'v str) -> Option<(usize, &'v str)> {
    names.iter().enumerate().find_map(|(i, n)| {
        let head = value.get(..n.len())?;
        head.eq_ignore_ascii_case(n).then(|| (i, &value[n.len()..]))
    })
}

/// `.123` or `,123` (the first `len` bytes of `value`) as nanoseconds, digits past nine ignored.
fn nanos(value: &str, len: usize) -> Option<i64> {
    if !value.starts_with(['.', ',']) {
        return None;
    }
    let digits = value.get(1..len.min(10))?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(n * 10i64.pow(9 - digits.len() as u32))
}

/// The length of a zone abbreviation at the start of the value (Go's `parseTimeZone`).
fn zone_name_len(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if value.starts_with("ChST") || value.starts_with("MeST") {
        return Some(4);
    }
    if let Some(rest) = value.strip_prefix("GMT") {
        return Some(3 + signed_offset_len(rest));
    }
    if b[0] == b'+' || b[0] == b'-' {
        return Some(signed_offset_len(value)).filter(|n| *n > 0);
    }
    let upper = b.iter().take(6).take_while(|c| c.is_ascii_uppercase()).count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || value.starts_with("WITA") => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}

/// `+3`, `-10`: a sign and up to 23 hours (Go's `parseSignedOffset`), or 0.
fn signed_offset_len(value: &str) -> usize {
    if !value.starts_with(['+', '-']) {
        return 0;
    }
    let digits = value[1..].bytes().take_while(u8::is_ascii_digit).count();
    let hours: Option<u32> = value[1..1 + digits].parse().ok();
    match hours {
        Some(h) if digits > 0 && h <= 23 => 1 + digits,
        _ => 0,
    }
}

/// Go's `time.ParseInLocation(layout, value, tz)`, then the current year for a year-less time.
fn parse_go(chunks: &[Chunk], value: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let bad = |what: &str| format!("cannot parse {value:?}: {what}");
    let (mut year, mut month, mut day) = (0i64, 1i64, 1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let (mut pm, mut am) = (false, false);
    let mut offset: Option<i64> = None;
    let mut utc = false;
    let mut zone_name: Option<&str> = None;
    let mut has_year = false;
    let mut v = value;
    for (k, chunk) in chunks.iter().enumerate() {
        let std = match chunk {
            Chunk::Text(t) => {
                v = skip(v, t).ok_or_else(|| bad(&format!("expected {t:?}")))?;
                continue;
            }
            Chunk::Std(s) => *s,
        };
        let range = |n: i64, lo: i64, hi: i64, what: &str| {
            if (lo..=hi).contains(&n) {
                Ok(n)
            } else {
                Err(bad(&format!("{what} out of range")))
            }
        };
        let elem = || bad(&format!("{std:?} expected"));
        match std {
            Std::LongYear => {
                let digits = v.get(..4).filter(|d| d.as_bytes()[0].is_ascii_digit()).ok_or_else(elem)?;
                year = digits.parse().map_err(|_| elem())?;
                v = &v[4..];
                has_year = true;
            }
            Std::Year => {
                let digits = v.get(..2).ok_or_else(elem)?;
                let y: i64 = digits.parse().map_err(|_| elem())?;
                year = if y >= 69 { y + 1900 } else { y + 2000 };
                v = &v[2..];
                has_year = true;
            }
            Std::Month | Std::LongMonth => {
                let names: &[&str] = if std == Std::Month { &SHORT_MONTHS } else { &LONG_MONTHS };
                let (i, rest) = lookup(names, v).ok_or_else(elem)?;
                month = i as i64 + 1;
                v = rest;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, rest) = num(v, std == Std::ZeroMonth).ok_or_else(elem)?;
                month = range(n, 1, 12, "month")?;
                v = rest;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let names: &[&str] = if std == Std::WeekDay { &SHORT_DAYS } else { &LONG_DAYS };
                v = lookup(names, v).ok_or_else(elem)?.1;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay {
                    v = v.strip_prefix(' ').unwrap_or(v);
                }
                let (n, rest) = num(v, std == Std::ZeroDay).ok_or_else(elem)?;
                day = range(n, 0, 31, "day")?;
                v = rest;
            }
            Std::Hour => {
                let (n, rest) = num(v, false).ok_or_else(elem)?;
                hour = range(n, 0, 23, "hour")?;
                v = rest;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (n, rest) = num(v, std == Std::ZeroHour12).ok_or_else(elem)?;
                hour = range(n, 0, 12, "hour")?;
                v = rest;
            }
            Std::Minute | Std::ZeroMinute => {
                let (n, rest) = num(v, std == Std::ZeroMinute).ok_or_else(elem)?;
                min = range(n, 0, 59, "minute")?;
                v = rest;
            }
            Std::Second | Std::ZeroSecond => {
                let (n, rest) = num(v, std == Std::ZeroSecond).ok_or_else(elem)?;
                sec = range(n, 0, 59, "second")?;
                v = rest;
                // A fraction the layout does not ask for is read here, as Go does.
                let b = v.as_bytes();
                let next_std = chunks[k + 1..].iter().find_map(|c| match c {
                    Chunk::Std(s) => Some(*s),
                    Chunk::Text(_) => None,
                });
                let frac_next = matches!(next_std, Some(Std::Frac { .. }));
                if b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit() && !frac_next {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = nanos(v, n).ok_or_else(elem)?;
                    v = &v[n..];
                }
            }
            Std::Pm | Std::LowerPm => {
                let p = v.get(..2).ok_or_else(elem)?;
                let (am_text, pm_text) = if std == Std::Pm { ("AM", "PM") } else { ("am", "pm") };
                if p == pm_text {
                    pm = true;
                } else if p == am_text {
                    am = true;
                } else {
                    return Err(elem());
                }
                v = &v[2..];
            }
            Std::Tz => {
                if let Some(rest) = v.strip_prefix("UTC") {
                    utc = true;
                    v = rest;
                } else {
                    let n = zone_name_len(v).ok_or_else(elem)?;
                    zone_name = Some(&v[..n]);
                    v = &v[n..];
                }
            }
            Std::Iso { colon, seconds, short } | Std::Num { colon, seconds, short } => {
                let iso = matches!(std, Std::Iso { .. });
                if iso && !seconds && v.starts_with('Z') {
                    utc = true;
                    v = &v[1..];
                    continue;
                }
                let b = v.as_bytes();
                // Only ASCII is sliced below, so a multi-byte character can never be cut.
                let has = |n: usize| b.len() >= n && b[..n].is_ascii();
                let (h, m, s, len) = match (colon, seconds, short) {
                    (true, false, _) if has(6) && b[3] == b':' => (&v[1..3], &v[4..6], "00", 6),
                    (false, false, true) if has(3) => (&v[1..3], "00", "00", 3),
                    (true, true, _) if has(9) && b[3] == b':' && b[6] == b':' => (&v[1..3], &v[4..6], &v[7..9], 9),
                    (false, true, _) if has(7) => (&v[1..3], &v[3..5], &v[5..7], 7),
                    (false, false, false) if has(5) => (&v[1..3], &v[3..5], "00", 5),
                    _ => return Err(elem()),
                };
                let part = |p: &str| p.parse::<i64>().map_err(|_| elem());
                let secs = (part(h)? * 60 + part(m)?) * 60 + part(s)?;
                offset = Some(match b[0] {
                    b'+' => secs,
                    b'-' => -secs,
                    _ => return Err(elem()),
                });
                v = &v[len..];
            }
            Std::Frac { digits, exact: true } => {
                let len = 1 + digits;
                if v.len() < len {
                    return Err(elem());
                }
                nsec = nanos(v, len).ok_or_else(elem)?;
                v = &v[len..];
            }
            Std::Frac { exact: false, .. } => {
                let b = v.as_bytes();
                if b.len() < 2 || !(b[0] == b'.' || b[0] == b',') || !b[1].is_ascii_digit() {
                    continue;
                }
                let n = 1 + b[1..].iter().take(9).take_while(|c| c.is_ascii_digit()).count();
                nsec = nanos(v, n).ok_or_else(elem)?;
                v = &v[n..];
            }
        }
    }
    if !v.is_empty() {
        return Err(bad(&format!("extra text {v:?}")));
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    // The day is checked against its month in the year read (year 0, a leap year, when none).
    let civil = |y: i64, month: i64, day: i64| -> Result<DateTime, String> {
        let date = jiff::civil::Date::new(y as i16, month as i8, day as i8).map_err(|_| bad("day out of range"))?;
        let time =
            jiff::civil::Time::new(hour as i8, min as i8, sec as i8, nsec as i32).map_err(|e| bad(&e.to_string()))?;
        Ok(date.to_datetime(time))
    };
    if !(0..=9999).contains(&year) {
        return Err(bad("year out of range"));
    }
    let mut dt = civil(year, month, day)?;
    let zone_of_value: TimeZone = if utc {
        TimeZone::UTC
    } else if let Some(secs) = offset {
        TimeZone::fixed(Offset::from_seconds(secs as i32).map_err(|e| bad(&e.to_string()))?)
    } else if let Some(name) = zone_name {
        // As Go's `lookupName`: the time zone itself when it uses the abbreviation at that
        // time; else the offset the abbreviation has in it at another time (CEST in winter);
        // else none, and the clock reading counts as UTC.
        let in_tz = tz.to_ambiguous_timestamp(dt).compatible().map_err(|e| bad(&e.to_string()))?;
        if tz.to_offset_info(in_tz).abbreviation() == name {
            tz.clone()
        } else {
            let near = tz.preceding(in_tz).take(8).chain(tz.following(in_tz).take(8));
            near.filter(|t| t.abbreviation() == name)
                .map(|t| TimeZone::fixed(t.offset()))
                .next()
                .unwrap_or(TimeZone::UTC)
        }
    } else {
        tz.clone()
    };
    if !has_year {
        // Filebeat: a time without a year is in the current year (in the value's zone); a
        // 29 February then becomes 1 March outside leap years, as Go's AddDate makes it.
        let now = i64::from(zone_of_value.to_datetime(Timestamp::now()).year());
        dt = civil(now, month, day).or_else(|_| civil(now, 3, 1))?;
    }
    zone_of_value.to_ambiguous_timestamp(dt).compatible().map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(layout: &str, value: Value, zone: Option<&str>) -> Result<String, String> {
        let zone = zone.map(|z| Zone::parse(z).unwrap());
        parse_value(&[Layout::parse(layout)], zone.as_ref(), &value).map(utc_millis)
    }

    /// Cases whose results were read from Filebeat 8.1.3's output for the same layout and value.
    #[test]
    fn reads_values_as_filebeat_does() {
        let cases = [
            ("2006-01-02T15:04:05Z07:00", json!("2026-11-26T10:00:01.123456Z"), None, "2026-11-26T10:00:01.123Z"),
            ("2006-01-02 15:04:05.999", json!("2026-11-26 10:00:01,5"), None, "2026-11-26T10:00:01.500Z"),
            ("02/Jan/2006:15:04:05 -0700", json!("26/Nov/2026:10:00:01 +0100"), None, "2026-11-26T09:00:01.000Z"),
            ("Mon, 02 Jan 2006 15:04:05 MST", json!("Thu, 26 Nov 2026 10:00:01 PST"), None, "2026-11-26T10:00:01.000Z"),
            ("01/02/2006 3:04:05 PM", json!("11/26/2026 3:04:05 PM"), None, "2026-11-26T15:04:05.000Z"),
            ("UNIX", json!(1_700_000_000), None, "2023-11-14T22:13:20.000Z"),
            ("UNIX", json!(1_700_000_000.5), None, "2023-11-14T22:13:20.500Z"),
            ("UNIX", json!("1700000000.25"), None, "2023-11-14T22:13:20.249Z"),
            ("UNIX_MS", json!(1_700_000_000_123i64), None, "2023-11-14T22:13:20.123Z"),
            ("2006-01-02 15:04:05", json!("2026-07-01 12:00:00"), Some("America/New_York"), "2026-07-01T16:00:00.000Z"),
            ("2006-01-02 15:04:05", json!("2026-07-01 12:00:00"), Some("Europe/Berlin"), "2026-07-01T10:00:00.000Z"),
            ("2006-01-02 15:04:05", json!("2026-07-01 12:00:00"), Some("+05:30"), "2026-07-01T06:30:00.000Z"),
            ("2006-01-02 15:04:05", json!("2026-07-01 12:00:00"), Some("+0530"), "2026-07-01T06:30:00.000Z"),
            ("2006-01-02 15:04:05", json!("2026-07-01 12:00:00"), Some("-07"), "2026-07-01T19:00:00.000Z"),
            ("2006-01-02 15:04:05", json!("2026-07-01 12:00:00"), Some("EST"), "2026-07-01T17:00:00.000Z"),
            // An abbreviation not in use at that time still has its offset (Go's lookupName).
            (
                "Monday, 02-Jan-06 15:04:05 MST",
                json!("Thursday, 26-Nov-26 10:00:01 CEST"),
                Some("Europe/Berlin"),
                "2026-11-26T08:00:01.000Z",
            ),
        ];
        for (layout, value, zone, want) in cases {
            assert_eq!(at(layout, value.clone(), zone).as_deref(), Ok(want), "{layout} {value}");
        }
        let year = TimeZone::UTC.to_datetime(Timestamp::now()).year();
        assert_eq!(at("Jan _2 15:04:05", json!("Nov  6 10:00:01"), None), Ok(format!("{year}-11-06T10:00:01.000Z")));
    }

    /// Written by the same formatter as `@timestamp`, which handles times before 1970 too.
    #[test]
    fn times_before_1970_are_written_in_utc_milliseconds() {
        let got = at("2006-01-02 15:04:05.000", json!("1969-07-20 20:17:40.250"), None);
        assert_eq!(got.as_deref(), Ok("1969-07-20T20:17:40.250Z"));
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        for (layout, value) in [
            ("2006-01-02 15:04:05", json!("garbage")),
            ("2006-01-02 15:04:05", json!("2026-02-30 10:00:00")),
            ("2006-01-02", json!("2026-13-01")),
            ("2006-01-02", json!("2026-01-01 extra")),
            ("2006-01-02", json!(20260101)),
            ("UNIX", json!(true)),
            ("2006-01-02 15:04:05 MST", json!("2026-07-01 12:00:00")),
        ] {
            assert!(at(layout, value.clone(), None).is_err(), "{layout} {value}");
        }
    }

    #[test]
    fn unknown_time_zones_are_refused() {
        assert!(Zone::parse("Mars/Base").is_err() && Zone::parse("UTC+5").is_err());
        assert!(Zone::parse("Local").is_ok() && Zone::parse("Asia/Kolkata").is_ok());
    }

    /// Values of every layout element with each character replaced in turn (by multi-byte
    /// characters, signs, digits) or cut short are parsed or refused, never a panic (a cut
    /// multi-byte character would be one).
    #[test]
    fn any_value_is_parsed_or_refused_without_panicking() {
        let cases = [
            ("2006-01-02T15:04:05.999999999Z07:00", "2026-11-26T10:00:01.123456789+05:30"),
            ("Mon Jan _2 15:04:05 MST 2006", "Thu Nov  6 10:00:01 CEST 2026"),
            ("02/Jan/2006:15:04:05 -0700", "26/Nov/2026:10:00:01 +0100"),
            ("3:04:05PM -07:00:00 Z070000", "3:04:05PM -07:00:00 +053000"),
            ("January 2, 06 15:04:05.000 -07 Z07", "November 6, 26 10:00:01.120 -07 Z"),
            ("Monday 2006,999 MST", "Thursday 2026,5 GMT+3"),
        ];
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        for (layout, sample) in cases {
            let layout = Layout::parse(layout);
            let chars: Vec<char> = sample.chars().collect();
            assert!(layout.read(&Value::String(sample.into()), &tz).is_ok(), "{sample}");
            for i in 0..chars.len() {
                for r in ["é", "中", "\u{1F600}", "+", "-", "0", ":", ""] {
                    let mut v: String = chars[..i].iter().collect();
                    v.push_str(r);
                    v.extend(&chars[i + 1..]);
                    let _ = layout.read(&Value::String(v), &tz);
                }
                let _ = layout.read(&Value::String(chars[..i].iter().collect()), &tz);
            }
        }
    }
}
