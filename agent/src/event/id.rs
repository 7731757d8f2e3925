//! Event ids: the same line gets the same id every time it is sent, so a consumer can drop the
//! duplicates at-least-once delivery makes (a re-send after a crash, a retry, a spool replay).
//!
//! An id is 48 bits of a digest of the input's id and the file's first bytes, then the event's
//! start offset and its length in 48 bits each, in URL-safe base64 (24 characters):
//! the bytes before the event's end are already written when the event is read and never change
//! for that file, so `min(end, FINGERPRINT_MAX)` first bytes name the file as the event saw it.
//! It survives renames and rotation (no path or inode in it), a gzip archive of a file read
//! before gives its lines the ids they had, and a file that replaced another (inode reuse,
//! copytruncate) gives other ids as soon as its first bytes differ. Two lines of one file never
//! share an id (their offsets differ); lines of files whose first KiB and input are the same do
//! (the limit of any fingerprint). Because an id names the bytes `start..end` of its file
//! ([`Span`]), a consumer can remember what it wrote as ranges of offsets per file, which merge
//! as lines arrive, instead of one id per line (the FileStream sink does: `sink::dedup`).
//!
//! Ids of 16 characters (digest and start only) were sent before the end was added; they are
//! still read back (from an older spool) and sent as they were.
//!
//! Owns [`IdHead`], each file's first bytes as far as they were read, kept in the file's state.
//! Invariant: `IdHead` holds exactly the file's bytes `0..len` (it only grows by bytes read at
//! its end, or by a read from offset 0), so an id never depends on when the line was read.

use crate::fingerprint::FINGERPRINT_MAX;

/// Characters in an id (URL-safe base64 of 144 bits).
pub const ID_LEN: usize = 24;
/// Characters in an id sent before ids carried the event's end (96 bits).
pub const OLD_ID_LEN: usize = 16;

/// An event's id: 24 URL-safe base64 characters (16 for one read back from an older spool).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    chars: [u8; ID_LEN],
    len: u8,
}

impl EventId {
    pub fn as_str(&self) -> &str {
        // Only base64url characters are ever stored.
        std::str::from_utf8(self.as_bytes()).expect("ASCII")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.chars[..self.len as usize]
    }

    /// An id read back (from the spool, a record header); `None` unless it has an id's form.
    pub fn from_bytes(b: &[u8]) -> Option<EventId> {
        if !(b.len() == ID_LEN || b.len() == OLD_ID_LEN) {
            return None;
        }
        if !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_') {
            return None;
        }
        let mut chars = [0u8; ID_LEN];
        chars[..b.len()].copy_from_slice(b);
        Some(EventId { chars, len: b.len() as u8 })
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a 24-character id names: bytes `start..end` of the file whose digest is `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 48 bits of the digest of the input's id and the file's first `min(end, 1 KiB)` bytes.
    pub file: u64,
    pub start: u64,
    pub end: u64,
}

impl Span {
    /// The span of an id of the agent's form (24 characters, a length above 0); `None`
    /// for anything else (an older 16-character id, another producer's `_id`).
    pub fn of(id: &[u8]) -> Option<Span> {
        if id.len() != ID_LEN {
            return None;
        }
        let mut raw = [0u8; 18];
        let n = data_encoding::BASE64URL_NOPAD.decode_mut(id, &mut raw).ok()?;
        (n == 18).then_some(())?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b[2..].copy_from_slice(&raw[i..i + 6]);
            u64::from_be_bytes(b)
        };
        let (start, len) = (word(6), word(12));
        (len > 0).then_some(Span { file: word(0), start, end: start + len })
    }
}

/// The seed of an input's ids (its id hashed once).
pub fn input_seed(input_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(input_id.as_bytes())
}

/// A file's first bytes, up to [`FINGERPRINT_MAX`], as far as they were read.
#[derive(Debug, Default)]
pub struct IdHead {
    bytes: Vec<u8>,
    /// The digest of all [`FINGERPRINT_MAX`] first bytes, once they are all here.
    full: Option<u64>,
}

impl IdHead {
    /// Whether the bytes before `pos` must be read before data at `pos` can be seen: a file
    /// resumed past its start (after a restart) has not shown its head yet.
    pub fn missing_before(&self, pos: u64) -> Option<usize> {
        let want = pos.min(FINGERPRINT_MAX) as usize;
        (self.bytes.len() < want).then_some(want)
    }

    /// Takes the file's first bytes read from offset 0 (replacing what was there).
    pub fn set_start(&mut self, start: &[u8]) {
        let n = start.len().min(FINGERPRINT_MAX as usize);
        self.bytes.clear();
        self.bytes.extend_from_slice(&start[..n]);
        self.full = None;
    }

    /// Sees bytes read at offset `at`: the part that extends the head is kept.
    pub fn see(&mut self, at: u64, data: &[u8]) {
        let len = self.bytes.len() as u64;
        if at > len || len >= FINGERPRINT_MAX {
            return;
        }
        let skip = (len - at) as usize;
        if skip >= data.len() {
            return;
        }
        let room = FINGERPRINT_MAX as usize - self.bytes.len();
        let take = (data.len() - skip).min(room);
        self.bytes.extend_from_slice(&data[skip..skip + take]);
    }

    /// The file's first bytes, as far as they were read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Forgets everything (the file is read again from 0 as a new one).
    pub fn reset(&mut self) {
        self.bytes.clear();
        self.full = None;
    }

    /// The id of the event of this file that starts at `start` and ends at `end`.
    pub fn id(&mut self, seed: u64, start: u64, end: u64) -> EventId {
        let k = (end.min(FINGERPRINT_MAX) as usize).min(self.bytes.len());
        let digest = if k == FINGERPRINT_MAX as usize {
            *self.full.get_or_insert_with(|| xxhash_rust::xxh3::xxh3_64_with_seed(&self.bytes, seed))
        } else {
            xxhash_rust::xxh3::xxh3_64_with_seed(&self.bytes[..k], seed)
        };
        // 48 bits of the head's digest, then the start offset and the length in 48 bits each
        // (files up to 256 TiB), big-endian: the first 8 characters stay the same for a file's
        // lines past its first KiB, the start counts up and the length's high bytes are zero, so
        // a batch of ids compresses (a hash of them all did not: gzip then cost a third of the
        // raw codec's throughput; the end instead of the length cost more than this does).
        let mut raw = [0u8; 18];
        raw[..6].copy_from_slice(&digest.to_be_bytes()[..6]);
        raw[6..12].copy_from_slice(&start.to_be_bytes()[2..]);
        raw[12..].copy_from_slice(&end.saturating_sub(start).to_be_bytes()[2..]);
        let mut chars = [0u8; ID_LEN];
        let n = data_encoding::BASE64URL_NOPAD.encode_mut_str(&raw, &mut chars);
        debug_assert_eq!(n.len(), ID_LEN);
        EventId { chars, len: ID_LEN as u8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of a file's lines, read in chunks of `chunk` bytes from offset `from` (the head
    /// read first when resuming, as the reader does).
    fn ids(content: &[u8], chunk: usize, from: usize) -> Vec<(u64, EventId)> {
        let seed = input_seed("app");
        let mut head = IdHead::default();
        if let Some(n) = head.missing_before(from as u64) {
            head.set_start(&content[..n]);
        }
        let mut out = Vec::new();
        let mut line_start = from;
        let mut pos = from;
        while pos < content.len() {
            let end = (pos + chunk).min(content.len());
            head.see(pos as u64, &content[pos..end]);
            for (i, &b) in content.iter().enumerate().take(end).skip(pos) {
                if b == b'\n' {
                    out.push((line_start as u64, head.id(seed, line_start as u64, i as u64 + 1)));
                    line_start = i + 1;
                }
            }
            pos = end;
        }
        out
    }

    fn file(lines: std::ops::Range<usize>) -> Vec<u8> {
        lines.flat_map(|i| format!("line number {i}\n").into_bytes()).collect()
    }

    #[test]
    fn the_same_line_gets_the_same_id_however_and_whenever_it_is_read() {
        let content = file(0..300);
        let whole = ids(&content, 1 << 20, 0);
        assert_eq!(whole.len(), 300);
        for chunk in [1, 7, 100, 1024, 4096] {
            assert_eq!(ids(&content, chunk, 0), whole, "chunk {chunk}");
        }
        // Resumed after a restart, in the first KiB and past it.
        for at in [0usize, 15, 630, 1500, 3000] {
            let line_start = content[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let resumed = ids(&content, 333, line_start);
            assert_eq!(resumed[..], whole[whole.len() - resumed.len()..], "resumed at {line_start}");
        }
        // Read while the file was still growing: the first lines' ids do not change.
        let early = ids(&file(0..3), 64, 0);
        assert_eq!(early[..], whole[..3]);
        let unique: std::collections::HashSet<_> = whole.iter().map(|(_, id)| *id).collect();
        assert_eq!(unique.len(), 300, "two lines of one file never share an id");
    }

    #[test]
    fn another_file_or_input_gives_other_ids() {
        let a = ids(&file(0..100), 4096, 0);
        let mut other = file(0..100);
        other[3] = b'X';
        let b = ids(&other, 4096, 0);
        assert!(a.iter().zip(&b).all(|(x, y)| x.1 != y.1), "another first line, other ids all through");
        let mut head = IdHead::default();
        head.set_start(&file(0..100));
        let seed = input_seed("web");
        assert_ne!(head.id(seed, 0, 16), a[0].1, "another input, another id");
        assert_eq!(a[0].1.as_str().len(), ID_LEN);
        assert!(EventId::from_bytes(a[0].1.as_bytes()).is_some());
        assert!(EventId::from_bytes(b"not an id!!!!!!!").is_none());
        let old = EventId::from_bytes(b"AbCdEfGhIjKlMn-_").expect("a 16-character id from an older spool");
        assert_eq!(old.as_str(), "AbCdEfGhIjKlMn-_");
    }

    #[test]
    fn an_id_names_its_file_and_the_bytes_of_its_event() {
        let content = file(0..200);
        let all = ids(&content, 4096, 0);
        let spans: Vec<Span> = all.iter().map(|(_, id)| Span::of(id.as_bytes()).expect("the agent's form")).collect();
        let mut start = 0;
        for s in &spans {
            assert_eq!(s.start, start, "each line's span starts where the one before ended");
            start = s.end;
        }
        assert_eq!(start, content.len() as u64);
        // Past the first KiB, every line names the same file.
        let late: std::collections::HashSet<u64> = spans.iter().filter(|s| s.end >= 1024).map(|s| s.file).collect();
        assert_eq!(late.len(), 1);
        assert_eq!(Span::of(b"AbCdEfGhIjKlMn-_"), None, "an older id has no end");
        assert_eq!(Span::of(b"some-other-producers-id!"), None);
    }
}
