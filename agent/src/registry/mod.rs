//! The registry: per-file identity and acknowledged offset, on disk.
//!
//! Owns `<path.data>/registry/registry.json` and its flushing ([`Registry::flush_from`]: the
//! tracker's acknowledged offsets in, a write only when something changed). Invariants:
//! - a write is atomic: the new content goes to `registry.json.tmp`, is fsynced, renamed over
//!   `registry.json`, and the directory is fsynced, so a crash leaves either the old or the new
//!   file, never a torn one (a leftover `.tmp` is discarded at start-up, with a log line);
//! - an offset written here is always a contiguous acknowledged offset (it comes from
//!   [`crate::ack::AckTracker::watermarks`]);
//! - a registry that cannot be parsed stops start-up with an error naming the file; it is never
//!   silently reset. `--registry-recovery=beginning|end` is the operator's explicit way out.
//!
//! On-disk format (UTF-8 JSON, one object):
//! ```text
//! {"version":1,
//!  "entries":[{"input":"<input id>","path":"<last path seen>","dev":<u64>,"ino":<u64>,
//!              "fp_len":<bytes fingerprinted>,"fp_hash":<u64 FNV-1a of those bytes>,
//!              "offset":<u64 next byte to read>,"last_seen":<unix seconds>}, ...]}
//! ```
//! An entry is keyed by (input, dev, ino); entries not seen for `registry.clean_removed_after`
//! are dropped at the next write.
//!
//! Between two writes, progress goes to a journal, `registry.log` ([`Registry::note_progress`],
//! every `registry.progress_every`, 100 ms): one line per entry that changed, `<crc32 of the
//! JSON, 8 hex digits> <the entry as JSON>`, appended without fsync (a process crash keeps what
//! the kernel has). Each write of `registry.json` empties it. At start-up its whole lines are
//! applied over `registry.json` in order; the first line whose checksum fails (a torn tail) ends
//! the replay. Invariant: a journal line is an acknowledged offset like any other, so applying
//! any prefix of the journal, or none of it, never moves a file past a line Kafka has not
//! acknowledged: the journal only shortens what a `kill -9` re-sends.
//!
//! On a host where Filebeat ran, the first start reads Filebeat's registry instead ([`filebeat`]).

pub mod filebeat;

use crate::ack::{AckTracker, Watermark};
use crate::fingerprint::{FileId, Fingerprint};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

pub const FORMAT_VERSION: u32 = 1;
const FILE_NAME: &str = "registry.json";
const JOURNAL_NAME: &str = "registry.log";

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error(
        "registry {path} is corrupt ({reason}); fix or move it away, or start with --registry-recovery=beginning|end"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("registry {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// What to do when the registry cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Read every file from its first byte (duplicates what was already shipped).
    Beginning,
    /// Read every file from its current end (loses what was not yet shipped).
    End,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub input: String,
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub fp_len: u64,
    pub fp_hash: u64,
    pub offset: u64,
    pub last_seen: u64,
}

impl Entry {
    pub fn id(&self) -> FileId {
        FileId { dev: self.dev, ino: self.ino }
    }
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint { len: self.fp_len, hash: self.fp_hash }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    entries: Vec<Entry>,
}

pub type Key = (String, FileId);

#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    entries: HashMap<Key, Entry>,
    /// An identity, path or offset changed (or an entry came or went) since the last write.
    dirty: bool,
    /// When the file was last written (`last_seen` alone is refreshed on disk every
    /// [`LAST_SEEN_REFRESH`]).
    written_at: Option<std::time::Instant>,
    /// Entries whose identity, path or offset changed since they last reached the disk (the
    /// file or the journal).
    unjournaled: std::collections::HashSet<Key>,
    /// The journal, open for appending once something was noted.
    journal: Option<fs::File>,
    /// The last append failed (logged once until one works again).
    journal_failing: bool,
}

/// How stale `last_seen` may be on disk: far finer than `registry.clean_removed_after` (72 h)
/// compares it against, and an idle host writes its registry only this often.
pub const LAST_SEEN_REFRESH: Duration = Duration::from_secs(600);

/// What [`Registry::open`] found.
#[derive(Debug)]
pub struct Opened {
    pub registry: Registry,
    /// Set when the registry was corrupt and the operator chose how to start instead.
    pub recovered: Option<Recovery>,
}

impl Registry {
    /// Loads the registry under `dir` (created if missing).
    pub fn open(dir: &Path, recovery: Option<Recovery>) -> Result<Opened, RegistryError> {
        let io_err = |source| RegistryError::Io { path: dir.to_path_buf(), source };
        fs::create_dir_all(dir).map_err(io_err)?;
        let tmp = crate::durable::tmp_path(&dir.join(FILE_NAME));
        if tmp.exists() {
            tracing::warn!(path = %tmp.display(), "discarding a registry temp file left by an interrupted write");
            fs::remove_file(&tmp).map_err(io_err)?;
        }
        let path = dir.join(FILE_NAME);
        let mut registry = Registry {
            dir: dir.to_path_buf(),
            entries: HashMap::new(),
            dirty: false,
            written_at: None,
            unjournaled: Default::default(),
            journal: None,
            journal_failing: false,
        };
        match read(dir) {
            Ok(found) => {
                if found.torn > 0 {
                    tracing::warn!(journal = %dir.join(JOURNAL_NAME).display(), bytes = found.torn, "the registry journal ends in a torn line (a crash while it was written); the lines before it are used");
                }
                // Progress from the journal goes into the next write of the file.
                registry.dirty = found.journaled > 0;
                registry.entries = found.entries;
                Ok(Opened { registry, recovered: None })
            }
            Err(ReadError::Io(source)) => Err(RegistryError::Io { path, source }),
            Err(ReadError::Corrupt(reason)) => match recovery {
                Some(r) => {
                    tracing::error!(path = %path.display(), %reason, recovery = ?r, "registry is corrupt; starting over as the operator chose");
                    let _ = fs::remove_file(dir.join(JOURNAL_NAME));
                    Ok(Opened { registry, recovered: Some(r) })
                }
                None => Err(RegistryError::Corrupt { path, reason }),
            },
        }
    }

    /// Appends the entries that changed since they last reached the disk to the journal (no
    /// fsync; see the module docs). Call between two [`flush_from`](Self::flush_from)s, as
    /// often as `registry.progress_every`; an idle host appends nothing.
    pub fn note_progress(&mut self, tracker: &AckTracker, metrics: &Metrics, clean_removed_after: Duration) {
        self.update(&tracker.watermarks(), SystemTime::now(), clean_removed_after);
        if self.unjournaled.is_empty() {
            return;
        }
        let mut body = Vec::new();
        for key in &self.unjournaled {
            if let Some(e) = self.entries.get(key) {
                journal_line(e, &mut body);
            }
        }
        let path = self.dir.join(JOURNAL_NAME);
        let appended = match &mut self.journal {
            Some(f) => io::Write::write_all(f, &body),
            None => fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| io::Write::write_all(&mut f, &body).map(|()| f))
                .map(|f| self.journal = Some(f)),
        };
        match appended {
            Ok(()) => {
                self.unjournaled.clear();
                Metrics::inc(&metrics.registry_journal_appends);
                if std::mem::take(&mut self.journal_failing) {
                    tracing::info!(journal = %path.display(), "the registry journal can be appended to again");
                }
            }
            Err(e) => {
                // The next write of the file records the progress instead.
                self.journal = None;
                Metrics::inc(&metrics.registry_write_errors);
                if !std::mem::replace(&mut self.journal_failing, true) {
                    tracing::warn!(journal = %path.display(), error = %e, "cannot append to the registry journal; progress is written with the next registry write (logged once until it works again)");
                }
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// One flush: takes the files the reader forgot and the tracker's acknowledged offsets,
    /// and writes the file when something in it changed (an idle host does not rewrite and
    /// fsync an unchanged registry). A failed write is logged and counted; the next flush tries
    /// again with whatever is newer by then.
    pub fn flush_from(&mut self, tracker: &AckTracker, metrics: &Metrics, clean_removed_after: Duration) {
        self.forget(&tracker.take_forgotten());
        self.update(&tracker.watermarks(), SystemTime::now(), clean_removed_after);
        Metrics::set(&metrics.registry_entries, self.entries.len() as u64);
        if self.needs_write() {
            match self.write() {
                Ok(()) => Metrics::inc(&metrics.registry_writes),
                Err(e) => {
                    Metrics::inc(&metrics.registry_write_errors);
                    tracing::error!(error = %e, "registry write failed; offsets will be written at the next flush");
                }
            }
        }
    }

    pub fn entries(&self) -> &HashMap<Key, Entry> {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `registry.json` exists in `dir` (the agent has a registry of its own there).
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(FILE_NAME).exists()
    }

    /// Adds entries taken over from another tool's registry (replacing any with the same key).
    pub fn insert(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for e in entries {
            self.entries.insert((e.input.clone(), e.id()), e);
            self.dirty = true;
        }
    }

    /// Whether a write would record anything new: a change since the last write, or `last_seen`
    /// older on disk than [`LAST_SEEN_REFRESH`].
    pub fn needs_write(&self) -> bool {
        self.dirty || self.written_at.map_or(true, |t| t.elapsed() >= LAST_SEEN_REFRESH)
    }

    /// Removes entries of forgotten files (`clean_removed`, `clean_inactive`). Call before
    /// [`Registry::update`], so a file that is tracked again in the meantime keeps its entry.
    pub fn forget(&mut self, keys: &[Key]) {
        for k in keys {
            self.dirty |= self.entries.remove(k).is_some();
        }
    }

    /// Applies the current watermarks (marking their files as seen now) and drops entries not
    /// seen for `max_age`.
    pub fn update(&mut self, marks: &[Watermark], now: SystemTime, max_age: Duration) {
        let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        for m in marks {
            let key = (m.file.input.clone(), m.file.id);
            let e = Entry {
                input: m.file.input.clone(),
                path: m.file.path.clone(),
                dev: m.file.id.dev,
                ino: m.file.id.ino,
                fp_len: m.file.fingerprint.len,
                fp_hash: m.file.fingerprint.hash,
                offset: m.offset,
                last_seen: now_s,
            };
            let changed = self.entries.get(&key).map_or(true, |old| Entry { last_seen: now_s, ..old.clone() } != e);
            self.dirty |= changed;
            if changed {
                self.unjournaled.insert(key.clone());
            }
            self.entries.insert(key, e);
        }
        let cutoff = now_s.saturating_sub(max_age.as_secs());
        let before = self.entries.len();
        self.entries.retain(|_, e| e.last_seen >= cutoff);
        self.dirty |= self.entries.len() != before;
    }

    /// Writes the registry atomically (temp file, fsync, rename, directory fsync).
    pub fn write(&mut self) -> Result<(), RegistryError> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_by(|a, b| (&a.input, &a.path, a.ino).cmp(&(&b.input, &b.path, b.ino)));
        let body = serde_json::to_vec(&serde_json::json!({"version": FORMAT_VERSION, "entries": entries}))
            .expect("registry entries serialize");
        let path = self.path();
        crate::durable::write_atomically(&path, &body).map_err(|source| RegistryError::Io { path, source })?;
        self.dirty = false;
        self.written_at = Some(std::time::Instant::now());
        // Everything is in the file now: the journal starts again empty. Should this fail, its
        // lines are older than the file and applying them later only re-sends more.
        self.unjournaled.clear();
        let journal = self.dir.join(JOURNAL_NAME);
        match &self.journal {
            Some(f) => {
                let _ = f.set_len(0);
            }
            None if journal.exists() => {
                let _ = fs::OpenOptions::new().write(true).open(&journal).and_then(|f| f.set_len(0));
            }
            None => {}
        }
        Ok(())
    }
}

/// What the registry directory holds: `registry.json` with the journal applied.
#[derive(Debug, Default)]
pub struct Found {
    pub entries: HashMap<Key, Entry>,
    /// Journal lines applied.
    pub journaled: usize,
    /// Bytes at the journal's end that were not a whole, intact line (ignored).
    pub torn: usize,
}

#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Corrupt(String),
}

/// Reads the registry under `dir` without changing anything there (also while an agent runs):
/// `registry.json`, then the journal's intact lines over it.
pub fn read(dir: &Path) -> Result<Found, ReadError> {
    let mut found = Found::default();
    match fs::read(dir.join(FILE_NAME)) {
        Ok(text) => {
            let entries = parse(&text).map_err(ReadError::Corrupt)?;
            found.entries = entries.into_iter().map(|e| ((e.input.clone(), e.id()), e)).collect();
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ReadError::Io(e)),
    }
    let journal = match fs::read(dir.join(JOURNAL_NAME)) {
        Ok(j) => j,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let mut rest = &journal[..];
    while !rest.is_empty() {
        let Some(entry) = journal_entry(rest) else { break };
        let (e, used) = entry;
        found.entries.insert((e.input.clone(), e.id()), e);
        found.journaled += 1;
        rest = &rest[used..];
    }
    found.torn = rest.len();
    Ok(found)
}

/// Appends `e` as one journal line.
fn journal_line(e: &Entry, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(e).expect("registry entry serializes");
    out.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

/// The entry of the journal line at the start of `text`, and the bytes it took; `None` when the
/// line is not whole or its checksum or JSON is wrong.
fn journal_entry(text: &[u8]) -> Option<(Entry, usize)> {
    let end = memchr::memchr(b'\n', text)?;
    let line = &text[..end];
    // The separator is checked too: the checksum covers only the JSON (the fuzz test found a
    // damaged separator read as intact).
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    Some((serde_json::from_slice(json).ok()?, end + 1))
}

fn parse(text: &[u8]) -> Result<Vec<Entry>, String> {
    let disk: OnDisk = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if disk.version != FORMAT_VERSION {
        return Err(format!("unsupported format version {} (this agent reads {FORMAT_VERSION})", disk.version));
    }
    Ok(disk.entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::SlotFile;

    fn mark(ino: u64, offset: u64) -> Watermark {
        Watermark {
            file: SlotFile {
                input: "in".into(),
                path: format!("/logs/{ino}.log").into(),
                id: FileId { dev: 7, ino },
                fingerprint: Fingerprint { len: 10, hash: 99 },
            },
            offset,
        }
    }

    #[test]
    fn round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        r.update(&[mark(1, 100), mark(2, 200)], SystemTime::now(), Duration::from_secs(60));
        r.write().unwrap();
        let again = Registry::open(dir.path(), None).unwrap().registry;
        assert_eq!(again.len(), 2);
        let e = &again.entries()[&("in".to_string(), FileId { dev: 7, ino: 2 })];
        assert_eq!(e.offset, 200);
        assert_eq!(e.fingerprint(), Fingerprint { len: 10, hash: 99 });
        assert!(!crate::durable::tmp_path(&dir.path().join(FILE_NAME)).exists());
    }

    #[test]
    fn leftover_temp_file_is_discarded_and_the_real_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        r.update(&[mark(1, 100)], SystemTime::now(), Duration::from_secs(60));
        r.write().unwrap();
        fs::write(crate::durable::tmp_path(&dir.path().join(FILE_NAME)), b"{\"version\":1,\"entr").unwrap();
        let again = Registry::open(dir.path(), None).unwrap().registry;
        assert_eq!(again.len(), 1);
        assert!(!crate::durable::tmp_path(&dir.path().join(FILE_NAME)).exists());
    }

    #[test]
    fn corrupt_registry_is_an_error_unless_recovery_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{garbage").unwrap();
        let err = Registry::open(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("registry.json"), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        let opened = Registry::open(dir.path(), Some(Recovery::End)).unwrap();
        assert_eq!(opened.recovered, Some(Recovery::End));
        assert!(opened.registry.is_empty());
    }

    #[test]
    fn entries_not_seen_for_too_long_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        r.update(&[mark(1, 1), mark(2, 2)], t0, Duration::from_secs(3600));
        // An hour and a bit later only file 2 is still seen.
        r.update(&[mark(2, 3)], t0 + Duration::from_secs(3700), Duration::from_secs(3600));
        assert_eq!(r.len(), 1);
        assert!(r.entries().contains_key(&("in".to_string(), FileId { dev: 7, ino: 2 })));
    }

    #[test]
    fn it_is_written_only_when_something_in_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        r.update(&[mark(1, 100)], t0, Duration::from_secs(3600));
        assert!(r.needs_write());
        r.write().unwrap();
        // The same offsets a second later: only last_seen moved, nothing to write.
        r.update(&[mark(1, 100)], t0 + Duration::from_secs(1), Duration::from_secs(3600));
        assert!(!r.needs_write());
        r.update(&[mark(1, 150)], t0 + Duration::from_secs(2), Duration::from_secs(3600));
        assert!(r.needs_write(), "an offset moved");
        r.write().unwrap();
        r.forget(&[("in".to_string(), FileId { dev: 7, ino: 1 })]);
        assert!(r.needs_write(), "an entry went");
        r.write().unwrap();
        r.written_at = Some(std::time::Instant::now() - LAST_SEEN_REFRESH);
        assert!(r.needs_write(), "last_seen is refreshed on disk every so often");
    }

    #[test]
    fn registry_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        r.write().unwrap();
        let mode = fs::metadata(r.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    fn tracked(tracker: &AckTracker, ino: u64) -> u32 {
        let file = mark(ino, 0).file;
        tracker.open(file, 0, None).unwrap()
    }

    fn offset_in(found: &Found, ino: u64) -> Option<u64> {
        found.entries.values().find(|e| e.ino == ino).map(|e| e.offset)
    }

    #[test]
    fn progress_noted_between_writes_is_read_back_and_a_write_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (tracker, metrics) = (AckTracker::default(), Metrics::default());
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        let slot = tracked(&tracker, 1);
        tracker.register(slot, 100, std::time::Instant::now(), None);
        tracker.delivered(slot, 100);
        r.flush_from(&tracker, &metrics, Duration::from_secs(3600));
        tracker.register(slot, 250, std::time::Instant::now(), None);
        tracker.delivered(slot, 250);
        r.note_progress(&tracker, &metrics, Duration::from_secs(3600));
        assert_eq!(Metrics::get(&metrics.registry_journal_appends), 1);
        r.note_progress(&tracker, &metrics, Duration::from_secs(3600));
        assert_eq!(Metrics::get(&metrics.registry_journal_appends), 1, "nothing new, nothing appended");
        // A kill -9 now: the file says 100, the journal 250.
        assert_eq!(offset_in(&read(dir.path()).unwrap(), 1), Some(250));
        let reopened = Registry::open(dir.path(), None).unwrap().registry;
        assert_eq!(reopened.entries()[&("in".to_string(), FileId { dev: 7, ino: 1 })].offset, 250);
        assert!(reopened.needs_write(), "the journal's progress goes into the next write");
        r.flush_from(&tracker, &metrics, Duration::from_secs(3600));
        assert_eq!(fs::metadata(dir.path().join(JOURNAL_NAME)).unwrap().len(), 0);
        assert_eq!(offset_in(&read(dir.path()).unwrap(), 1), Some(250));
    }

    #[test]
    fn a_torn_journal_line_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(dir.path(), None).unwrap().registry;
        r.update(&[mark(1, 100)], SystemTime::now(), Duration::from_secs(60));
        r.write().unwrap();
        let mut body = Vec::new();
        let e = |offset| Entry { offset, ..r.entries()[&("in".to_string(), FileId { dev: 7, ino: 1 })].clone() };
        journal_line(&e(200), &mut body);
        journal_line(&e(300), &mut body);
        let mut bad = Vec::new();
        journal_line(&e(900), &mut bad);
        bad[12] ^= 1; // a flipped byte: the checksum fails
        body.extend_from_slice(&bad);
        journal_line(&e(1000), &mut body);
        body.extend_from_slice(b"0badc0de {\"inp"); // torn
        fs::write(dir.path().join(JOURNAL_NAME), &body).unwrap();
        let found = read(dir.path()).unwrap();
        assert_eq!(offset_in(&found, 1), Some(300), "the replay stops at the damaged line");
        assert_eq!(found.journaled, 2);
        assert!(found.torn > 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Bounded fuzzing of the registry reader (issue #14): damage one byte of the journal, or
        /// cut it anywhere, and the replay applies exactly the lines before the first damaged or
        /// torn one, in order, never a damaged one, and never panics.
        #[test]
        fn journal_damage_ends_the_replay_at_the_damaged_line(
            lines in proptest::collection::vec((0u64..4, proptest::prelude::any::<u64>(), "\\PC{0,12}"), 1..10),
            at in 0usize..3000,
            flip in 1u8..=255,
            cut in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let entry = |ino: u64, offset: u64, path: &str| Entry {
                input: "in".into(), path: path.into(), dev: 7, ino, fp_len: 10, fp_hash: 99, offset, last_seen: 1,
            };
            let mut body = Vec::new();
            let mut spans = Vec::new();
            for (ino, offset, path) in &lines {
                let from = body.len();
                journal_line(&entry(*ino, *offset, path), &mut body);
                spans.push(from..body.len());
            }
            let at = at % body.len();
            let same_meaning = !cut && {
                // A checksum digit whose case flips still names the same checksum.
                let line_start = spans.iter().find(|s| s.contains(&at)).unwrap().start;
                let (was, now) = (body[at], body[at] ^ flip);
                at < line_start + 8 && was.is_ascii_hexdigit() && now.is_ascii_hexdigit() && was.eq_ignore_ascii_case(&now)
            };
            if cut { body.truncate(at) } else { body[at] ^= flip }
            fs::write(dir.path().join(JOURNAL_NAME), &body).unwrap();
            let found = read(dir.path()).unwrap();
            let applied = spans.iter().take_while(|s| if cut { s.end <= at } else { same_meaning || !s.contains(&at) }).count();
            let applied = if !cut && !same_meaning { applied.min(spans.iter().position(|s| s.contains(&at)).unwrap()) } else { applied };
            let mut want = HashMap::new();
            for (ino, offset, path) in &lines[..applied] {
                let e = entry(*ino, *offset, path);
                want.insert((e.input.clone(), e.id()), e);
            }
            proptest::prop_assert_eq!(found.journaled, applied);
            proptest::prop_assert_eq!(found.entries, want);
        }

        /// Any bytes in `registry.json` are read or refused as corrupt, never a panic.
        #[test]
        fn any_registry_file_is_read_or_refused(text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(FILE_NAME), &text).unwrap();
            match read(dir.path()) {
                Ok(_) | Err(ReadError::Corrupt(_)) => {}
                Err(ReadError::Io(e)) => proptest::prop_assert!(false, "{e}"),
            }
        }
    }
}
