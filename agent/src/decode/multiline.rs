//! The multiline parser: joins consecutive lines of one file into one event (stack traces,
//! continued lines), as Filebeat's `multiline` parser does.
//!
//! [`MultilineRt`] is an input's compiled settings; [`Multiline`] is one file's pending event and
//! is owned by that file's reader state. Invariants:
//! - an emitted event's `offset` is its first line's and its `end_offset` its last line's, so the
//!   file's acknowledged offset only ever passes whole events: a pending event is never recorded
//!   half (left pending at shutdown, it is read again after restart);
//! - memory per file is bounded by `max_bytes` (the joined text) however many lines join: lines past
//!   `max_lines` are consumed (their offsets count) but not kept, and the event is flagged truncated.
//!
//! Pattern mode follows Filebeat's truth table: with `match: after` a line continues the event when
//! the line itself matches (`pattern` XOR `negate`); with `match: before` when the *previous* line
//! matched. `flush_pattern` ends an event at the line that matches it.

use crate::config::{MultilineConfig, MultilineKind, MultilineMatch};
use crate::tail::lines::Line;
use regex::bytes::Regex;
use std::time::{Duration, Instant};

/// An input's multiline settings, compiled once.
#[derive(Debug)]
pub struct MultilineRt {
    kind: MultilineKind,
    pattern: Option<Regex>,
    negate: bool,
    before: bool,
    flush: Option<Regex>,
    max_lines: u32,
    count: u32,
    separator: &'static [u8],
    pub timeout: Duration,
}

impl MultilineRt {
    pub fn new(cfg: &MultilineConfig) -> MultilineRt {
        MultilineRt {
            kind: cfg.kind,
            pattern: cfg.pattern.as_ref().map(|p| (**p).clone()),
            negate: cfg.negate,
            before: cfg.match_ == Some(MultilineMatch::Before),
            flush: cfg.flush_pattern.as_ref().map(|p| (**p).clone()),
            max_lines: cfg.max_lines.min(u32::MAX as usize) as u32,
            count: cfg.count_lines.unwrap_or(1).min(u32::MAX as usize) as u32,
            separator: if cfg.skip_newline { b"" } else { b"\n" },
            timeout: cfg.timeout.0,
        }
    }

    fn matches(&self, line: &[u8]) -> bool {
        self.pattern.as_ref().is_some_and(|p| p.is_match(line)) != self.negate
    }
}

/// One file's event being assembled.
#[derive(Debug, Default)]
pub struct Multiline {
    buf: Vec<u8>,
    lines: u32,
    offset: u64,
    end_offset: u64,
    truncated: bool,
    /// The last line added matched (`pattern` XOR `negate`).
    last_matched: bool,
    /// When the last line was added (the timeout counts from there).
    touched: Option<Instant>,
    /// The first line's stream and time (the container parser's), which the event keeps.
    container: Option<crate::decode::container::ContainerMeta>,
}

impl Multiline {
    /// Adds one line; `emit` receives every event this completes (zero, one or two).
    pub fn push(
        &mut self,
        rt: &MultilineRt,
        max_bytes: usize,
        line: &Line<'_>,
        now: Instant,
        emit: &mut dyn FnMut(Line<'_>),
    ) {
        match rt.kind {
            MultilineKind::Count => {
                self.add(rt, max_bytes, line, now);
                if self.lines >= rt.count {
                    self.flush(emit);
                }
            }
            MultilineKind::Pattern => {
                let matched = rt.matches(line.bytes);
                let continues = if rt.before { self.last_matched } else { matched };
                if self.is_pending() && !continues {
                    self.flush(emit);
                }
                self.add(rt, max_bytes, line, now);
                self.last_matched = matched;
                if rt.flush.as_ref().is_some_and(|f| f.is_match(line.bytes)) {
                    self.flush(emit);
                }
            }
            MultilineKind::WhilePattern => {
                let matched = rt.matches(line.bytes);
                if self.is_pending() && !(self.last_matched && matched) {
                    self.flush(emit);
                }
                self.add(rt, max_bytes, line, now);
                self.last_matched = matched;
                if !matched {
                    // A line outside the pattern stands alone: no reason to wait for the next one.
                    self.flush(emit);
                }
            }
        }
    }

    fn add(&mut self, rt: &MultilineRt, max_bytes: usize, line: &Line<'_>, now: Instant) {
        if self.lines == 0 {
            self.offset = line.offset;
            self.truncated = false;
            self.container = line.container;
        }
        self.end_offset = line.end_offset;
        self.touched = Some(now);
        self.truncated |= line.truncated;
        if self.lines >= rt.max_lines {
            self.truncated = true;
            return;
        }
        let sep = if self.lines == 0 { &b""[..] } else { rt.separator };
        let room = max_bytes.saturating_sub(self.buf.len());
        let wanted = sep.len() + line.bytes.len();
        if wanted > room {
            self.truncated = true;
        }
        let take = wanted.min(room);
        let joined = sep.iter().chain(line.bytes).take(take).copied();
        self.buf.extend(joined);
        self.lines += 1;
    }

    pub fn is_pending(&self) -> bool {
        self.touched.is_some()
    }

    /// Whether the pending event has waited `timeout` for another line.
    pub fn is_due(&self, rt: &MultilineRt, now: Instant) -> bool {
        self.touched.is_some_and(|t| now.saturating_duration_since(t) >= rt.timeout)
    }

    /// Emits the pending event, if any.
    pub fn flush(&mut self, emit: &mut dyn FnMut(Line<'_>)) {
        if self.touched.take().is_none() {
            return;
        }
        let lines = self.lines.max(1);
        emit(Line {
            bytes: &self.buf,
            offset: self.offset,
            end_offset: self.end_offset,
            truncated: self.truncated,
            lines,
            container: self.container,
        });
        self.buf.clear();
        self.lines = 0;
        self.last_matched = false;
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::new();
        }
    }

    /// Forgets the pending event (the file was truncated and is read again from 0).
    pub fn reset(&mut self) {
        *self = Multiline::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MultilineConfig;

    fn rt(yaml: &str) -> MultilineRt {
        let cfg: MultilineConfig = crate::config::from_yaml(yaml).unwrap();
        MultilineRt::new(&cfg)
    }

    /// Feeds `lines` (offsets as if each ended with LF) and returns (text, offset, end, lines, truncated).
    fn join(
        rt: &MultilineRt,
        max_bytes: usize,
        lines: &[&str],
        flush_at_end: bool,
    ) -> Vec<(String, u64, u64, u32, bool)> {
        let mut ml = Multiline::default();
        let mut out = Vec::new();
        let mut off = 0u64;
        let mut emit = |l: Line<'_>| {
            out.push((String::from_utf8(l.bytes.to_vec()).unwrap(), l.offset, l.end_offset, l.lines, l.truncated))
        };
        for text in lines {
            let end = off + text.len() as u64 + 1;
            let line = Line {
                bytes: text.as_bytes(),
                offset: off,
                end_offset: end,
                truncated: false,
                lines: 1,
                container: None,
            };
            ml.push(rt, max_bytes, &line, Instant::now(), &mut emit);
            off = end;
        }
        if flush_at_end {
            ml.flush(&mut emit);
        }
        out
    }

    #[test]
    fn java_stack_trace_joins_indented_lines_after_the_first() {
        let rt = rt("pattern: '^[[:space:]]+(at|\\.{3})[[:space:]]+\\b|^Caused by:'\nnegate: false\nmatch: after\n");
        let lines = ["Exception in thread main", "    at a.B(B.java:1)", "Caused by: x", "    ... 3 more", "next"];
        let got = join(&rt, 1000, &lines, false);
        let text = "Exception in thread main\n    at a.B(B.java:1)\nCaused by: x\n    ... 3 more";
        assert_eq!(got, vec![(text.to_string(), 0, text.len() as u64 + 1, 4, false)]);
    }

    #[test]
    fn negate_with_match_after_joins_until_the_next_start_line() {
        let rt = rt("pattern: '^\\['\nnegate: true\nmatch: after\n");
        let got = join(&rt, 1000, &["[1] a", "b", "c", "[2] d"], true);
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["[1] a\nb\nc", "[2] d"]);
        assert_eq!((got[1].1, got[1].2), (10, 16));
    }

    #[test]
    fn match_before_joins_continued_lines_to_the_next_one() {
        let rt = rt("pattern: '\\\\$'\nnegate: false\nmatch: before\n");
        let got = join(&rt, 1000, &["a \\", "b \\", "c", "d"], true);
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["a \\\nb \\\nc", "d"]);
    }

    #[test]
    fn max_lines_and_max_bytes_cut_but_consume_every_line() {
        let cut = rt("pattern: '^ '\nmatch: after\nmax_lines: 3\n");
        let got = join(&cut, 1000, &["s", " 1", " 2", " 3", " 4", "t"], false);
        assert_eq!(got, vec![("s\n 1\n 2".into(), 0, 14, 3, true)]);
        let rt2 = rt("pattern: '^ '\nmatch: after\n");
        let got = join(&rt2, 5, &["abc", " def"], true);
        assert_eq!(got, vec![("abc\n ".into(), 0, 9, 2, true)]);
    }

    #[test]
    fn count_and_while_pattern_and_flush_pattern() {
        let count = rt("type: count\ncount_lines: 2\nskip_newline: true\n");
        let got = join(&count, 100, &["a", "b", "c"], true);
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["ab", "c"]);
        let wp = rt("type: while_pattern\npattern: '^-'\n");
        let got = join(&wp, 100, &["-a", "-b", "x", "-c"], true);
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["-a\n-b", "x", "-c"]);
        let fp = rt("pattern: '^BEGIN'\nnegate: true\nmatch: after\nflush_pattern: '^END'\n");
        let got = join(&fp, 100, &["BEGIN", "x", "END", "after"], false);
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["BEGIN\nx\nEND"]);
    }

    #[test]
    fn timeout_makes_a_pending_event_due() {
        let rt = rt("pattern: '^ '\nmatch: after\ntimeout: 1s\n");
        let mut ml = Multiline::default();
        let t0 = Instant::now();
        let line = Line { bytes: b"x", offset: 0, end_offset: 2, truncated: false, lines: 1, container: None };
        ml.push(&rt, 100, &line, t0, &mut |_| panic!("nothing completes yet"));
        assert!(!ml.is_due(&rt, t0 + Duration::from_millis(500)));
        assert!(ml.is_due(&rt, t0 + Duration::from_secs(1)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Bounded fuzzing of the multiline parser (issue #14): whatever the mode and limits, the
        /// events cover the lines end to end with no gap or overlap (so the file's acknowledged
        /// offset only passes whole events), and each holds its lines joined, cut only where it
        /// says it was truncated and never beyond `max_bytes`.
        #[test]
        fn events_cover_every_line_once_and_hold_them_joined(
            lines in proptest::collection::vec("[ab\\[ \\\\]{0,8}", 0..30),
            mode in 0usize..4,
            negate in proptest::prelude::any::<bool>(),
            before in proptest::prelude::any::<bool>(),
            flush_pattern in proptest::prelude::any::<bool>(),
            count in 1usize..5,
            max_lines in 1usize..8,
            skip_newline in proptest::prelude::any::<bool>(),
            max_bytes in 1usize..60,
        ) {
            let kind = match mode {
                0 | 1 => format!(
                    "pattern: '^a'\nnegate: {negate}\nmatch: {}\n{}",
                    if before { "before" } else { "after" },
                    if flush_pattern && mode == 1 { "flush_pattern: 'b$'\n" } else { "" }
                ),
                2 => format!("type: count\ncount_lines: {count}\n"),
                _ => format!("type: while_pattern\npattern: '^a'\nnegate: {negate}\n"),
            };
            let rt = rt(&format!("{kind}max_lines: {max_lines}\nskip_newline: {skip_newline}\n"));
            let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
            let got = join(&rt, max_bytes, &texts, true);
            let mut starts = Vec::new();
            let mut off = 0u64;
            for t in &texts {
                starts.push(off);
                off += t.len() as u64 + 1;
            }
            let sep = if skip_newline { "" } else { "\n" };
            let mut at = 0u64;
            for (text, offset, end, n, truncated) in &got {
                proptest::prop_assert_eq!(*offset, at, "events are contiguous");
                proptest::prop_assert!(end > offset);
                let covered: Vec<&str> =
                    starts.iter().zip(&texts).filter(|(s, _)| **s >= *offset && **s < *end).map(|(_, t)| *t).collect();
                proptest::prop_assert!(!covered.is_empty());
                let joined = covered.join(sep);
                proptest::prop_assert!(text.len() <= max_bytes);
                proptest::prop_assert!(joined.starts_with(text.as_str()), "{:?} is not a prefix of {:?}", text, joined);
                if !truncated {
                    proptest::prop_assert_eq!(text, &joined);
                    proptest::prop_assert_eq!(*n as usize, covered.len());
                } else {
                    proptest::prop_assert!(*n as usize <= covered.len().min(max_lines));
                }
                if mode == 2 && (*end < off) {
                    proptest::prop_assert_eq!(covered.len(), count, "count mode: full groups but the last");
                }
                at = *end;
            }
            proptest::prop_assert_eq!(at, off, "every line is in an event");
        }
    }
}
