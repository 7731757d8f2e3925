//! What a sink has already written, known by the record's event id (the `_id` header the agent
//! puts on every record, [`crate::event::id`]): a record sent again (by an agent that crashed
//! before it recorded its progress, or consumed again by this sink after a crash between its
//! fsync and its offset commit) is recognised and not written twice, however long after its
//! first copy it comes.
//!
//! An agent id names bytes `start..end` of one file ([`Span`]), so what was written is kept as
//! ranges of offsets per file: a file's lines merge into one range as they arrive, whatever the
//! order of the partitions they come through, and a record whose span lies inside a range is a
//! copy. Memory grows with the gaps, not with the lines: with lines that the agent filtered
//! out, or partitions consumed unevenly, a file holds more ranges for a while. Any other `_id`
//! (another producer's, or an older agent's 16-character id) is remembered as itself, in a window
//! of the last ones written.
//!
//! Owns the ranges, the window and their journal (24 bytes per entry, appended as records are
//! taken, made durable with the sink's file at every commit). Invariants:
//! - a span or an id enters when its record's line is taken into the pending lines, so nothing
//!   is remembered for a line that will not be written;
//! - the journal's durable length is recorded in the sink's state file after the journal is
//!   fsynced and together with the file's length ([`super::file::SinkFile::sync`]); at start-up
//!   the journal is cut back to that length, so what was remembered of lines cut off the file
//!   (written after the last commit) is forgotten with them and those records are written again;
//! - compaction (the journal rewritten to the merged ranges and the window, atomically) happens
//!   only after a commit, so everything it keeps is committed.
//!
//! Bounds: at most `limit` ranges (over all files) and `limit` other ids. Past them, the files
//! written to least recently are forgotten first (whole), and the oldest other ids; a copy of a
//! forgotten record is written again.

use crate::event::id::Span;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes per journal entry.
const ENTRY: usize = 24;
const TAG_RANGE: u8 = b'R';
const TAG_OTHER: u8 = b'K';

/// A record's `_id` as the sink knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    /// The agent's id: bytes of a file.
    Span(Span),
    /// Any other id, by a 128-bit hash of it.
    Other(u128),
}

impl Id {
    pub fn of(id: &[u8]) -> Id {
        match Span::of(id) {
            Some(span) => Id::Span(span),
            None => Id::Other(xxhash_rust::xxh3::xxh3_128(id)),
        }
    }

    fn encode(&self) -> [u8; ENTRY] {
        let mut e = [0u8; ENTRY];
        match self {
            Id::Span(s) => {
                e[0] = TAG_RANGE;
                for (i, v) in [s.file, s.start, s.end].into_iter().enumerate() {
                    e[1 + 6 * i..7 + 6 * i].copy_from_slice(&v.to_be_bytes()[2..]);
                }
            }
            Id::Other(k) => {
                e[0] = TAG_OTHER;
                e[1..17].copy_from_slice(&k.to_be_bytes());
            }
        }
        e
    }

    fn decode(e: &[u8]) -> Option<Id> {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b[2..].copy_from_slice(&e[1 + 6 * i..7 + 6 * i]);
            u64::from_be_bytes(b)
        };
        match e[0] {
            TAG_RANGE => Some(Id::Span(Span { file: word(0), start: word(1), end: word(2) })),
            TAG_OTHER => Some(Id::Other(u128::from_be_bytes(e[1..17].try_into().ok()?))),
            _ => None,
        }
    }
}

/// The written ranges of one file: start → end, disjoint and not touching (touching ones merge).
#[derive(Default)]
struct Ranges {
    map: BTreeMap<u64, u64>,
    /// When it was last written to (the [`Seen::clock`]), for forgetting the stalest file first.
    touched: u64,
}

impl Ranges {
    fn covers(&self, start: u64, end: u64) -> bool {
        self.map.range(..=start).next_back().is_some_and(|(_, &e)| end <= e)
    }

    /// Adds `start..end`, merging it with the ranges it touches; returns the change in the number
    /// of ranges (1, 0, or less when it closes gaps).
    fn add(&mut self, mut start: u64, mut end: u64) -> isize {
        let mut removed = 0isize;
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.map.remove(&s);
                removed += 1;
            }
        }
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            end = end.max(e);
            self.map.remove(&s);
            removed += 1;
        }
        self.map.insert(start, end);
        1 - removed
    }
}

pub struct Seen {
    limit: usize,
    files: HashMap<u64, Ranges>,
    /// `touched` → file, to find the stalest file.
    by_touch: BTreeMap<u64, u64>,
    ranges: usize,
    clock: u64,
    others: HashSet<u128>,
    /// The other ids, oldest first (the next to be forgotten).
    order: VecDeque<u128>,
    journal: File,
    path: PathBuf,
    /// Entries taken since the last sync, not yet in the journal.
    unsynced: Vec<u8>,
    /// The journal's length (everything appended is synced at each [`Seen::sync`]).
    len: u64,
}

impl Seen {
    /// Opens the journal at `path`, cuts it back to `committed` bytes (the length the sink's
    /// state recorded; 0 without a state), and loads it. `limit` 0 remembers nothing.
    pub fn open(path: &Path, committed: u64, limit: usize) -> io::Result<Seen> {
        let named = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()));
        let mut journal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| named("cannot open the id journal", e))?;
        let mut len = journal.metadata().map_err(|e| named("cannot stat", e))?.len();
        // Whole entries only, and nothing past the last commit.
        let keep = (len.min(committed) / ENTRY as u64) * ENTRY as u64;
        if keep < len {
            journal.set_len(keep).and_then(|()| journal.sync_all()).map_err(|e| named("cannot truncate", e))?;
            len = keep;
        }
        let mut all = Vec::with_capacity(len as usize);
        journal
            .seek(SeekFrom::Start(0))
            .and_then(|_| journal.read_to_end(&mut all))
            .map_err(|e| named("cannot read", e))?;
        let mut seen = Seen {
            limit,
            files: HashMap::new(),
            by_touch: BTreeMap::new(),
            ranges: 0,
            clock: 0,
            others: HashSet::new(),
            order: VecDeque::new(),
            journal,
            path: path.to_path_buf(),
            unsynced: Vec::new(),
            len,
        };
        if limit > 0 {
            for id in all.chunks_exact(ENTRY).filter_map(Id::decode) {
                seen.remember(id);
            }
        }
        Ok(seen)
    }

    /// Whether a record with this id was written (and not forgotten since).
    pub fn contains(&self, id: &Id) -> bool {
        match id {
            Id::Span(s) => self.files.get(&s.file).is_some_and(|r| r.covers(s.start, s.end)),
            Id::Other(k) => self.others.contains(k),
        }
    }

    /// Notes that the record with this id is being written.
    pub fn insert(&mut self, id: Id) {
        if self.limit > 0 && self.remember(id) {
            self.unsynced.extend_from_slice(&id.encode());
        }
    }

    /// Takes an id in; false when it was known already.
    fn remember(&mut self, id: Id) -> bool {
        match id {
            Id::Span(s) => {
                if self.contains(&id) {
                    return false;
                }
                self.clock += 1;
                let r = self.files.entry(s.file).or_default();
                self.by_touch.remove(&r.touched);
                r.touched = self.clock;
                self.by_touch.insert(self.clock, s.file);
                self.ranges = (self.ranges as isize + r.add(s.start, s.end)) as usize;
                self.forget_stalest(s.file);
                true
            }
            Id::Other(k) => {
                if !self.others.insert(k) {
                    return false;
                }
                self.order.push_back(k);
                if self.order.len() > self.limit {
                    if let Some(old) = self.order.pop_front() {
                        self.others.remove(&old);
                    }
                }
                true
            }
        }
    }

    /// Over the limit of ranges: forgets the files written to least recently; if `current`
    /// alone is over it, its lowest ranges (its oldest lines).
    fn forget_stalest(&mut self, current: u64) {
        while self.ranges > self.limit {
            let (&touched, &file) = self.by_touch.iter().next().expect("ranges exist");
            if file != current {
                self.by_touch.remove(&touched);
                let r = self.files.remove(&file).expect("indexed");
                self.ranges -= r.map.len();
                continue;
            }
            let r = self.files.get_mut(&current).expect("current");
            if r.map.len() <= 1 {
                return;
            }
            r.map.pop_first();
            self.ranges -= 1;
        }
    }

    /// Appends and fsyncs the entries taken since the last sync; returns the journal's durable
    /// length, for the sink's state. After an error nothing is lost: the entries stay to be
    /// appended at the next try (what reached the file past the recorded length is cut at start).
    pub fn sync(&mut self) -> io::Result<u64> {
        if !self.unsynced.is_empty() {
            let written = self.journal.write_all(&self.unsynced).and_then(|()| self.journal.sync_data());
            if let Err(e) = written {
                // A part written would shift every later entry: cut back to whole, synced ones.
                let _ = self.journal.set_len(self.len);
                return Err(io::Error::new(e.kind(), format!("cannot write {}: {e}", self.path.display())));
            }
            self.len += self.unsynced.len() as u64;
            self.unsynced.clear();
        }
        Ok(self.len)
    }

    /// Entries a compacted journal would hold.
    fn entries(&self) -> usize {
        self.ranges + self.order.len()
    }

    /// Whether the journal has grown to twice what it would hold compacted (and past 1,024
    /// entries): time to [`compact`](Self::compact).
    pub fn wants_compaction(&self) -> bool {
        self.unsynced.is_empty() && self.len > 2 * (self.entries().max(1024) * ENTRY) as u64
    }

    /// Rewrites the journal to the merged ranges and the window of other ids
    /// ([`crate::durable::write_atomically`]). Call right after a commit, so all it keeps is
    /// committed; returns the new length for the state.
    pub fn compact(&mut self) -> io::Result<u64> {
        let mut body = Vec::with_capacity(self.entries() * ENTRY);
        // The stalest file first, so a load that goes over the limit forgets what this would.
        for file in self.by_touch.values() {
            for (&start, &end) in &self.files[file].map {
                body.extend_from_slice(&Id::Span(Span { file: *file, start, end }).encode());
            }
        }
        for k in &self.order {
            body.extend_from_slice(&Id::Other(*k).encode());
        }
        crate::durable::write_atomically(&self.path, &body)?;
        self.journal = OpenOptions::new().read(true).append(true).open(&self.path)?;
        self.len = body.len() as u64;
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(n: u32) -> Id {
        Id::of(format!("other-{n}").as_bytes())
    }

    fn span(file: u64, start: u64, end: u64) -> Id {
        Id::Span(Span { file, start, end })
    }

    /// Line `i` of file `f`: 10 bytes at `10 * i`.
    fn line(f: u64, i: u64) -> Id {
        span(f, 10 * i, 10 * i + 10)
    }

    #[test]
    fn the_agents_ids_are_spans_and_others_are_hashed() {
        let mut head = crate::event::id::IdHead::default();
        head.set_start(b"0123456789\n");
        let id = head.id(crate::event::id::input_seed("i"), 0, 11);
        assert!(matches!(Id::of(id.as_bytes()), Id::Span(Span { start: 0, end: 11, .. })));
        assert!(matches!(Id::of(b"AbCdEfGhIjKlMn-_"), Id::Other(_)), "an older agent's id");
        assert_ne!(Id::of(b"some-other-id"), Id::of(b"some-other-iD"));
    }

    #[test]
    fn a_file_written_in_any_order_is_one_range_and_every_copy_is_known() {
        let dir = tempfile::tempdir().unwrap();
        // A limit above the gaps the first partition leaves (1,000 lines of 3,000).
        let mut s = Seen::open(&dir.path().join("s.seen"), 0, 1000).unwrap();
        // Three partitions consumed one after the other: every third line, then the rest.
        for p in 0..3 {
            for i in (p..3000).step_by(3) {
                assert!(!s.contains(&line(7, i)), "line {i} is new");
                s.insert(line(7, i));
            }
        }
        assert_eq!(s.ranges, 1, "the lines merged into one range");
        assert!((0..3000).all(|i| s.contains(&line(7, i))), "a copy of any line, however old, is known");
        assert!(!s.contains(&line(7, 3000)) && !s.contains(&line(8, 0)));
        // A multiline event cut differently when sent again lies inside what was written.
        assert!(s.contains(&span(7, 15, 45)));
    }

    #[test]
    fn past_the_limit_the_stalest_file_is_forgotten_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Seen::open(&dir.path().join("s.seen"), 0, 4).unwrap();
        // Gaps (lines filtered out by the agent): each line is a range of its own.
        for f in 1..=2 {
            s.insert(line(f, 0));
            s.insert(line(f, 2));
        }
        s.insert(line(1, 4)); // file 1 written to last; file 2 is the stalest
        assert!(!s.contains(&line(2, 0)) && !s.contains(&line(2, 2)), "file 2 forgotten whole");
        assert!([0, 2, 4].iter().all(|&i| s.contains(&line(1, i))));
        // One file alone over the limit: its oldest lines go.
        for i in [6, 8] {
            s.insert(line(1, i));
        }
        assert!(!s.contains(&line(1, 0)) && s.contains(&line(1, 8)));
        assert_eq!(s.ranges, 4);
        for n in 0..5 {
            s.insert(other(n));
        }
        assert!(!s.contains(&other(0)) && (1..5).all(|n| s.contains(&other(n))), "a window of other ids");
    }

    #[test]
    fn a_restart_knows_what_was_committed_and_forgets_what_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.seen");
        let mut s = Seen::open(&p, 0, 100).unwrap();
        (0..10).for_each(|i| s.insert(line(1, i)));
        s.insert(other(1));
        let committed = s.sync().unwrap();
        // Written after the last commit, then a crash: the state still says `committed`.
        (10..15).for_each(|i| s.insert(line(1, i)));
        s.insert(other(2));
        s.sync().unwrap();
        drop(s);
        let s = Seen::open(&p, committed, 100).unwrap();
        assert!((0..10).all(|i| s.contains(&line(1, i))) && s.contains(&other(1)));
        assert!((10..15).all(|i| !s.contains(&line(1, i))), "cut with the file's uncommitted lines");
        assert!(!s.contains(&other(2)));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), committed);
        let fresh = Seen::open(&p, 0, 100).unwrap();
        assert!(!fresh.contains(&line(1, 0)), "no state: nothing was committed");
    }

    #[test]
    fn compaction_keeps_the_ranges_and_a_restart_after_it_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.seen");
        let mut s = Seen::open(&p, 0, 1024).unwrap();
        (0..3000).for_each(|i| s.insert(line(1, i)));
        s.insert(other(9));
        let len = s.sync().unwrap();
        assert!(s.wants_compaction(), "{len} bytes for two entries");
        let len = s.compact().unwrap();
        assert_eq!(len, 2 * ENTRY as u64, "one range and one other id");
        s.insert(line(1, 5000));
        let len = s.sync().unwrap();
        drop(s);
        let s = Seen::open(&p, len, 1024).unwrap();
        assert!(s.contains(&line(1, 2999)) && s.contains(&line(1, 5000)) && s.contains(&other(9)));
        assert!(!s.contains(&line(1, 4000)));
    }

    #[test]
    fn a_limit_of_zero_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Seen::open(&dir.path().join("s.seen"), 0, 0).unwrap();
        s.insert(line(1, 1));
        s.insert(other(1));
        assert!(!s.contains(&line(1, 1)) && !s.contains(&other(1)));
        assert_eq!(s.sync().unwrap(), 0);
    }
}
