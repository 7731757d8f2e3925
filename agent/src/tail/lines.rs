//! Splitting a file's byte stream into lines.
//!
//! Owns the carry-over of a partial line between reads. Invariants: a line is emitted only once its
//! LF has been read (a partial last line waits); a line never holds more than `max_bytes` bytes
//! (the rest up to the LF is discarded and the line flagged truncated), so memory per file is
//! bounded; every emitted line carries the file offset of its first byte and the offset just past
//! its LF, so offsets stay exact whatever was cut. In UTF-16 files a newline is a two-byte code
//! unit at an even offset: the caller feeds even-length chunks from even offsets, so a unit is
//! never split between two chunks.

use crate::config::LineTerminator;
use crate::decode::encoding::Newline;

/// One complete line, borrowed from the read buffer or the carry buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its terminator (CR removed too in `auto` mode).
    pub bytes: &'a [u8],
    /// Offset of the line's first byte.
    pub offset: u64,
    /// Offset just past the LF: where the next line starts.
    pub end_offset: u64,
    /// Bytes beyond `max_bytes` were discarded.
    pub truncated: bool,
    /// Lines joined into this one (1 unless the multiline parser joined several).
    pub lines: u32,
    /// The stream and time the container parser read from the line, if it ran.
    pub container: Option<crate::decode::container::ContainerMeta>,
}

#[derive(Debug)]
pub struct LineSplitter {
    carry: Vec<u8>,
    /// Offset of the first byte of the line being assembled.
    line_start: u64,
    /// Offset of the next byte to be fed.
    stream_pos: u64,
    /// The current line went past `max_bytes`; its remaining bytes are being skipped.
    overflow: bool,
    max_bytes: usize,
    terminator: LineTerminator,
    newline: Newline,
}

impl LineSplitter {
    pub fn new(start_offset: u64, max_bytes: usize, terminator: LineTerminator, newline: Newline) -> LineSplitter {
        LineSplitter {
            carry: Vec::new(),
            line_start: start_offset,
            stream_pos: start_offset,
            overflow: false,
            max_bytes,
            terminator,
            newline,
        }
    }

    /// Bytes per code unit: reads must hand over whole units (see the module doc).
    pub fn unit(&self) -> usize {
        match self.newline {
            Newline::Byte => 1,
            Newline::Utf16Le | Newline::Utf16Be => 2,
        }
    }

    /// The next newline at or after `from`: (index of its first byte, its length).
    fn find_newline(&self, chunk: &[u8], mut from: usize) -> Option<(usize, usize)> {
        loop {
            let lf = from + memchr::memchr(b'\n', &chunk[from..])?;
            let (start, zero_at) = match self.newline {
                Newline::Byte => return Some((lf, 1)),
                Newline::Utf16Le => (lf, lf + 1),
                Newline::Utf16Be => (lf.wrapping_sub(1), lf.wrapping_sub(1)),
            };
            // Chunks start at even offsets, so the unit's alignment is its index's.
            if start % 2 == 0 && chunk.get(zero_at) == Some(&0) {
                return Some((start, 2));
            }
            from = lf + 1;
        }
    }

    /// Offset where the partial line (if any) starts: everything before it has been emitted.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Offset of the next byte to read from the file.
    pub fn stream_pos(&self) -> u64 {
        self.stream_pos
    }

    /// Forgets any partial line and restarts at `offset` (after truncation).
    pub fn reset(&mut self, offset: u64) {
        self.carry = Vec::new();
        self.line_start = offset;
        self.stream_pos = offset;
        self.overflow = false;
    }

    /// Feeds the next bytes of the file (read at `stream_pos()`) and calls `emit` for each
    /// complete line.
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(Line<'_>)) {
        let mut pos = 0usize;
        while let Some((nl, nl_len)) = self.find_newline(chunk, pos) {
            let end_offset = self.stream_pos + (nl + nl_len) as u64;
            if self.carry.is_empty() && !self.overflow {
                // Fast path: the whole line is inside this chunk, emit it without copying.
                let whole = &chunk[pos..nl];
                let truncated = whole.len() > self.max_bytes;
                let bytes = self.strip_cr(&whole[..whole.len().min(self.max_bytes)], truncated);
                emit(Line { bytes, offset: self.line_start, end_offset, truncated, lines: 1, container: None });
            } else {
                self.append(&chunk[pos..nl]);
                let truncated = self.overflow;
                let bytes = self.strip_cr(&self.carry, truncated);
                emit(Line { bytes, offset: self.line_start, end_offset, truncated, lines: 1, container: None });
                self.carry.clear();
                self.overflow = false;
            }
            self.line_start = end_offset;
            pos = nl + nl_len;
        }
        self.append(&chunk[pos..]);
        self.stream_pos += chunk.len() as u64;
        if self.carry.capacity() > 4 * 1024 * 1024 && self.carry.is_empty() {
            // Give back the memory a single huge line needed.
            self.carry = Vec::new();
        }
    }

    /// Emits the partial last line (bytes after the last LF) as a line of its own, for a file that
    /// can no longer grow (deleted, or renamed away and inactive). Returns whether there was one.
    pub fn finish(&mut self, emit: impl FnOnce(Line<'_>)) -> bool {
        if self.stream_pos == self.line_start {
            return false;
        }
        let truncated = self.overflow;
        let bytes = self.strip_cr(&self.carry, truncated);
        emit(Line {
            bytes,
            offset: self.line_start,
            end_offset: self.stream_pos,
            truncated,
            lines: 1,
            container: None,
        });
        self.carry.clear();
        self.overflow = false;
        self.line_start = self.stream_pos;
        true
    }

    /// Removes the CR of a CRLF ending in `auto` mode (not when the line was cut: its end is gone).
    fn strip_cr<'b>(&self, bytes: &'b [u8], truncated: bool) -> &'b [u8] {
        if self.terminator != LineTerminator::Auto || truncated {
            return bytes;
        }
        let cr: &[u8] = match self.newline {
            Newline::Byte => b"\r",
            Newline::Utf16Le => b"\r\0",
            Newline::Utf16Be => b"\0\r",
        };
        bytes.strip_suffix(cr).unwrap_or(bytes)
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = self.max_bytes - self.carry.len();
        if bytes.len() > room {
            self.overflow = true;
        }
        self.carry.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Got = Vec<(Vec<u8>, u64, u64, bool)>;

    fn run(s: &mut LineSplitter, chunks: &[&[u8]]) -> Got {
        let mut got = Vec::new();
        for c in chunks {
            s.feed(c, |l| got.push((l.bytes.to_vec(), l.offset, l.end_offset, l.truncated)));
        }
        got
    }

    #[test]
    fn complete_lines_with_offsets() {
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Byte);
        let got = run(&mut s, &[b"ab\ncde\n"]);
        assert_eq!(got, vec![(b"ab".to_vec(), 0, 3, false), (b"cde".to_vec(), 3, 7, false)]);
        assert_eq!(s.line_start(), 7);
    }

    #[test]
    fn partial_line_waits_for_its_newline() {
        let mut s = LineSplitter::new(10, 100, LineTerminator::Auto, Newline::Byte);
        assert!(run(&mut s, &[b"hel"]).is_empty());
        assert_eq!(s.line_start(), 10);
        assert_eq!(s.stream_pos(), 13);
        let got = run(&mut s, &[b"lo", b"\nx"]);
        assert_eq!(got, vec![(b"hello".to_vec(), 10, 16, false)]);
        assert_eq!(s.line_start(), 16);
    }

    #[test]
    fn crlf_is_stripped_in_auto_and_kept_in_line_feed_mode() {
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Byte);
        assert_eq!(run(&mut s, &[b"a\r\n"])[0].0, b"a");
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Byte);
        assert_eq!(run(&mut s, &[b"a\r", b"\n"])[0], (b"a".to_vec(), 0, 3, false));
        let mut s = LineSplitter::new(0, 100, LineTerminator::LineFeed, Newline::Byte);
        assert_eq!(run(&mut s, &[b"a\r\n"])[0].0, b"a\r");
    }

    #[test]
    fn long_lines_are_truncated_but_offsets_stay_exact() {
        let mut s = LineSplitter::new(0, 4, LineTerminator::Auto, Newline::Byte);
        let got = run(&mut s, &[b"0123456789\nok\n"]);
        assert_eq!(got, vec![(b"0123".to_vec(), 0, 11, true), (b"ok".to_vec(), 11, 14, false)]);
        // Across chunks, the carry never grows past max_bytes.
        let mut s = LineSplitter::new(0, 4, LineTerminator::Auto, Newline::Byte);
        let got = run(&mut s, &[b"01", b"2345", b"6789", b"\nz\n"]);
        assert_eq!(got, vec![(b"0123".to_vec(), 0, 11, true), (b"z".to_vec(), 11, 13, false)]);
        assert!(s.carry.capacity() < 64);
    }

    #[test]
    fn ten_megabyte_line_is_cut_to_max_bytes() {
        let max = 1024 * 1024;
        let mut s = LineSplitter::new(0, max, LineTerminator::Auto, Newline::Byte);
        let big = vec![b'x'; 10 * 1024 * 1024];
        let mut got = Vec::new();
        for c in big.chunks(64 * 1024) {
            s.feed(c, |l| got.push((l.bytes.len(), l.end_offset, l.truncated)));
        }
        s.feed(b"\n", |l| got.push((l.bytes.len(), l.end_offset, l.truncated)));
        assert_eq!(got, vec![(max, 10 * 1024 * 1024 + 1, true)]);
    }

    #[test]
    fn invalid_utf8_and_binary_bytes_pass_through_untouched() {
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Byte);
        let got = run(&mut s, &[b"\xff\x00\xfe\n"]);
        assert_eq!(got[0].0, b"\xff\x00\xfe");
    }

    #[test]
    fn finish_emits_the_partial_last_line_once() {
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Byte);
        run(&mut s, &[b"a\nlast"]);
        let mut got = Vec::new();
        assert!(s.finish(|l| got.push((l.bytes.to_vec(), l.offset, l.end_offset))));
        assert_eq!(got, vec![(b"last".to_vec(), 2, 6)]);
        assert!(!s.finish(|_| panic!("nothing left")));
    }

    #[test]
    fn empty_lines_are_lines() {
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Byte);
        let got = run(&mut s, &[b"\n\n"]);
        assert_eq!(got, vec![(vec![], 0, 1, false), (vec![], 1, 2, false)]);
    }

    #[test]
    fn utf16_lines_split_on_aligned_newline_units_only() {
        // "a\u{0a00}b\n" in UTF-16LE: the code unit 0A 0A holds an LF byte that is not a newline.
        let le: &[u8] = b"a\0\n\x0ab\0\r\0\n\0z\0\n\0";
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Utf16Le);
        let got = run(&mut s, &[&le[..4], &le[4..10], &le[10..]]);
        assert_eq!(got, vec![(b"a\0\n\x0ab\0".to_vec(), 0, 10, false), (b"z\0".to_vec(), 10, 14, false)]);
        // Big endian: 00 0A at an even offset; "\u{0a00}" is 0A 00 there and is not a newline.
        let be: &[u8] = b"\x0a\0\0a\0\n";
        let mut s = LineSplitter::new(0, 100, LineTerminator::Auto, Newline::Utf16Be);
        assert_eq!(run(&mut s, &[be]), vec![(b"\x0a\0\0a".to_vec(), 0, 6, false)]);
    }
}

/// Property tests: any file content, fed in any chunking, splits exactly as a one-pass model
/// splits it (issue #14's bounded fuzzing of the line splitter).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The model: lines found in the whole content at once, with the splitter's rules.
    fn model(
        content: &[u8],
        start: u64,
        max: usize,
        term: LineTerminator,
        nl: Newline,
    ) -> Vec<(Vec<u8>, u64, u64, bool)> {
        type IsNewline = fn(&[u8], usize) -> bool;
        let (unit, newline_at): (usize, IsNewline) = match nl {
            Newline::Byte => (1, |c, i| c[i] == b'\n'),
            Newline::Utf16Le => (2, |c, i| c[i] == b'\n' && c[i + 1] == 0),
            Newline::Utf16Be => (2, |c, i| c[i] == 0 && c[i + 1] == b'\n'),
        };
        let cr: &[u8] = match nl {
            Newline::Byte => b"\r",
            Newline::Utf16Le => b"\r\0",
            Newline::Utf16Be => b"\0\r",
        };
        let mut out = Vec::new();
        let (mut from, mut i) = (0usize, 0usize);
        let mut emit = |from: usize, to: usize, end: usize| {
            let whole = &content[from..to];
            let truncated = whole.len() > max;
            let mut bytes = &whole[..whole.len().min(max)];
            if term == LineTerminator::Auto && !truncated {
                bytes = bytes.strip_suffix(cr).unwrap_or(bytes);
            }
            out.push((bytes.to_vec(), start + from as u64, start + end as u64, truncated));
        };
        while i + unit <= content.len() {
            if newline_at(content, i) {
                emit(from, i, i + unit);
                from = i + unit;
            }
            i += unit;
        }
        if from < content.len() {
            emit(from, content.len(), content.len());
        }
        out
    }

    fn newline() -> impl Strategy<Value = Newline> {
        prop_oneof![Just(Newline::Byte), Just(Newline::Utf16Le), Just(Newline::Utf16Be)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_chunking_splits_as_the_model(
            content in proptest::collection::vec(prop_oneof![4 => any::<u8>(), 2 => Just(b'\n'), 1 => Just(b'\r'), 2 => Just(0u8)], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..12),
            max in 1usize..40,
            auto in any::<bool>(),
            nl in newline(),
            start in 0u64..1000,
        ) {
            let term = if auto { LineTerminator::Auto } else { LineTerminator::LineFeed };
            let unit = if nl == Newline::Byte { 1 } else { 2 };
            // Whole code units, fed from even offsets (the reader's contract).
            let content = &content[..content.len() / unit * unit];
            let start = start / 2 * 2;
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(content.len()) / unit * unit).collect();
            cuts.push(0);
            cuts.push(content.len());
            cuts.sort_unstable();
            let mut s = LineSplitter::new(start, max, term, nl);
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                prop_assert_eq!(s.stream_pos(), start + w[0] as u64);
                s.feed(&content[w[0]..w[1]], |l| got.push((l.bytes.to_vec(), l.offset, l.end_offset, l.truncated)));
            }
            s.finish(|l| got.push((l.bytes.to_vec(), l.offset, l.end_offset, l.truncated)));
            prop_assert_eq!(got, model(content, start, max, term, nl));
            prop_assert_eq!(s.line_start(), start + content.len() as u64);
        }
    }
}
