//! Which records a sink has already written, known by their event id (the `_id` header the agent
//! puts on every record, [`crate::event::id`]): a record sent again (by an agent that crashed
//! before it recorded its progress, or consumed again by this sink after a crash between its
//! fsync and its offset commit) is recognised and not written twice.
//!
//! Owns the window of the last `window` ids written and its journal (16 bytes per id, appended as
//! records are taken, made durable with the sink's file at every commit). Invariants:
//! - an id enters the window when its record's line is taken into the pending lines, so the window
//!   never holds the id of a line that will not be written;
//! - the journal's durable length is recorded in the sink's state file after the journal is
//!   fsynced and together with the file's length ([`super::file::SinkFile::sync`]); at start-up
//!   the journal is cut back to that length, so the ids of lines cut off the file (written after
//!   the last commit) are forgotten with them and those records are written again;
//! - compaction (the journal rewritten to the last `window` ids, atomically) happens only after a
//!   commit, so everything it keeps is committed.
//!
//! The window is bounded: a record sent again more than `window` records after its first copy is
//! written again. Records without an `_id` header are always written.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes per id in the journal.
const ID_BYTES: u64 = 16;

/// An id as the window keeps it: the agent's 16-character ids as they are, any other `_id`
/// value by a 128-bit hash of it.
pub fn key(id: &[u8]) -> u128 {
    match <[u8; 16]>::try_from(id) {
        Ok(b) => u128::from_be_bytes(b),
        Err(_) => xxhash_rust::xxh3::xxh3_128(id),
    }
}

pub struct Seen {
    window: usize,
    set: HashSet<u128>,
    /// The ids of `set`, oldest first (the next to leave the window).
    order: VecDeque<u128>,
    journal: File,
    path: PathBuf,
    /// Ids taken since the last sync, not yet in the journal.
    unsynced: Vec<u8>,
    /// The journal's length (everything appended is synced at each [`Seen::sync`]).
    len: u64,
}

impl Seen {
    /// Opens the journal at `path`, cuts it back to `committed` bytes (the length the sink's
    /// state recorded; 0 without a state), and loads its last `window` ids.
    pub fn open(path: &Path, committed: u64, window: usize) -> io::Result<Seen> {
        let named = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()));
        let mut journal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| named("cannot open the id journal", e))?;
        let mut len = journal.metadata().map_err(|e| named("cannot stat", e))?.len();
        // Whole ids only, and nothing past the last commit.
        let keep = (len.min(committed) / ID_BYTES) * ID_BYTES;
        if keep < len {
            journal.set_len(keep).and_then(|()| journal.sync_all()).map_err(|e| named("cannot truncate", e))?;
            len = keep;
        }
        let from = len.saturating_sub(window as u64 * ID_BYTES);
        let mut tail = Vec::with_capacity((len - from) as usize);
        journal
            .seek(SeekFrom::Start(from))
            .and_then(|_| journal.read_to_end(&mut tail))
            .map_err(|e| named("cannot read", e))?;
        let mut seen = Seen {
            window,
            set: HashSet::with_capacity(window.min(1 << 16)),
            order: VecDeque::new(),
            journal,
            path: path.to_path_buf(),
            unsynced: Vec::new(),
            len,
        };
        for chunk in tail.chunks_exact(ID_BYTES as usize) {
            seen.remember(u128::from_be_bytes(chunk.try_into().expect("16 bytes")));
        }
        Ok(seen)
    }

    /// Whether a record with this id was written (within the window).
    pub fn contains(&self, key: u128) -> bool {
        self.set.contains(&key)
    }

    /// Notes that the record with this id is being written.
    pub fn insert(&mut self, key: u128) {
        if self.window > 0 && self.remember(key) {
            self.unsynced.extend_from_slice(&key.to_be_bytes());
        }
    }

    fn remember(&mut self, key: u128) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.window {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Appends and fsyncs the ids taken since the last sync; returns the journal's durable
    /// length, for the sink's state. After an error nothing is lost: the ids stay to be
    /// appended at the next try (what reached the file past the recorded length is cut at start).
    pub fn sync(&mut self) -> io::Result<u64> {
        if !self.unsynced.is_empty() {
            let written = self.journal.write_all(&self.unsynced).and_then(|()| self.journal.sync_data());
            if let Err(e) = written {
                // A part written would shift every later id: cut back to whole, synced ids.
                let _ = self.journal.set_len(self.len);
                return Err(io::Error::new(e.kind(), format!("cannot write {}: {e}", self.path.display())));
            }
            self.len += self.unsynced.len() as u64;
            self.unsynced.clear();
        }
        Ok(self.len)
    }

    /// Whether the journal has grown to twice the window (time to [`compact`](Self::compact)).
    pub fn wants_compaction(&self) -> bool {
        self.unsynced.is_empty() && self.len > 2 * (self.window.max(1024) as u64) * ID_BYTES
    }

    /// Rewrites the journal to the ids of the window ([`crate::durable::write_atomically`]). Call
    /// right after a commit, so all it keeps is committed; returns the new length for the state.
    pub fn compact(&mut self) -> io::Result<u64> {
        let mut body = Vec::with_capacity(self.order.len() * ID_BYTES as usize);
        for k in &self.order {
            body.extend_from_slice(&k.to_be_bytes());
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

    fn id(n: u32) -> u128 {
        key(format!("AAAAAAAA{n:08}").as_bytes())
    }

    #[test]
    fn the_agents_ids_are_kept_as_they_are_and_others_hashed() {
        assert_eq!(key(b"AAAAAAAAAAAAAAAA"), u128::from_be_bytes(*b"AAAAAAAAAAAAAAAA"));
        assert_ne!(key(b"some-other-id"), key(b"some-other-iD"));
    }

    #[test]
    fn the_window_forgets_the_oldest_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Seen::open(&dir.path().join("s.ids"), 0, 3).unwrap();
        for n in 0..4 {
            s.insert(id(n));
        }
        assert!(!s.contains(id(0)), "the oldest left the window");
        assert!((1..4).all(|n| s.contains(id(n))));
        s.insert(id(2)); // already there: nothing new in the journal
        assert_eq!(s.sync().unwrap(), 4 * ID_BYTES, "every id taken is in the journal, once");
    }

    #[test]
    fn a_restart_knows_what_was_committed_and_forgets_what_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.ids");
        let mut s = Seen::open(&p, 0, 100).unwrap();
        (0..10).for_each(|n| s.insert(id(n)));
        let committed = s.sync().unwrap();
        // Written after the last commit, then a crash: the state still says `committed`.
        (10..15).for_each(|n| s.insert(id(n)));
        s.sync().unwrap();
        drop(s);
        let s = Seen::open(&p, committed, 100).unwrap();
        assert!((0..10).all(|n| s.contains(id(n))));
        assert!((10..15).all(|n| !s.contains(id(n))), "cut with the file's uncommitted lines");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), committed);
        let fresh = Seen::open(&p, 0, 100).unwrap();
        assert!(!fresh.contains(id(0)), "no state: nothing was committed");
    }

    #[test]
    fn compaction_keeps_the_window_and_a_restart_after_it_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.ids");
        let mut s = Seen::open(&p, 0, 1024).unwrap();
        (0..3000).for_each(|n| s.insert(id(n)));
        let len = s.sync().unwrap();
        assert!(s.wants_compaction(), "{len} bytes for a window of 1024");
        let len = s.compact().unwrap();
        assert_eq!(len, 1024 * ID_BYTES);
        s.insert(id(5000));
        let len = s.sync().unwrap();
        drop(s);
        let s = Seen::open(&p, len, 1024).unwrap();
        assert!(s.contains(id(5000)) && s.contains(id(2999)) && !s.contains(id(1976)));
    }

    #[test]
    fn a_window_of_zero_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Seen::open(&dir.path().join("s.ids"), 0, 0).unwrap();
        s.insert(id(1));
        assert!(!s.contains(id(1)));
        assert_eq!(s.sync().unwrap(), 0);
    }
}
