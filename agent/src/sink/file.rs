//! A sink's output file and the small state file that makes it crash-safe.
//!
//! Owns the open descriptor (append mode) and the committed length. The state file
//! `<path.data>/sinks/<id>.json` records, after every fsync, the file's identity (device, inode),
//! its length at that moment and the durable length of the sink's id journal
//! ([`super::dedup`]): `{"dev":..,"ino":..,"len":..,"seen":..}`, written atomically. (States
//! written before ids carried their event's end named the older journal's length `ids`; it is
//! ignored, and the new journal starts from nothing.)
//!
//! Invariants:
//! - the state is written only after the bytes it covers are fsynced, and the consumer offsets
//!   are committed only after the state (see `sink::Sink::commit`). So at start-up, bytes past the
//!   recorded length of the same file were never committed: they are cut off and consumed again.
//!   This is what keeps a record torn by `kill -9` out of the file, and what keeps duplicates out
//!   of it unless the crash falls between the state write and the offset commit;
//! - a file replaced under its path (rename rotation, deletion) is reopened, never written
//!   through a stale descriptor after the rotation is noticed; a file truncated in place
//!   (copytruncate) is simply appended to (append mode writes at the new end).

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    dev: u64,
    ino: u64,
    len: u64,
    /// The id journal's length at this commit (absent in states written before it existed).
    #[serde(default, rename = "seen")]
    ids: u64,
}

pub struct SinkFile {
    path: PathBuf,
    state_path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    /// The length recorded in the state file: everything before it is fsynced.
    committed_len: u64,
    /// The id journal's length recorded in the state file.
    committed_ids: u64,
}

/// What opening found.
pub struct Opened {
    pub file: SinkFile,
    /// Bytes past the last commit that were cut off (consumed again).
    pub cut: u64,
    /// The id journal's length at the last commit (0 without a state): the journal is cut to it.
    pub ids: u64,
}

impl SinkFile {
    /// Opens `path` for appending (creating it), and cuts what was written after the last commit
    /// when it is still the same file.
    pub fn open(path: &Path, state_path: &Path) -> io::Result<Opened> {
        let (file, dev, ino, size) = open_append(path)?;
        let state = read_state(state_path)?;
        // The ids written stay written when the file was rotated away: kept whatever its identity.
        let ids = state.map_or(0, |s| s.ids);
        let mut cut = 0;
        let mut len = size;
        if let Some(s) = state.filter(|s| s.dev == dev && s.ino == ino && s.len < size) {
            file.set_len(s.len).and_then(|()| file.sync_all()).map_err(|e| named(path, "cannot truncate", e))?;
            cut = size - s.len;
            len = s.len;
        }
        let mut f = SinkFile {
            path: path.to_path_buf(),
            state_path: state_path.to_path_buf(),
            file,
            dev,
            ino,
            committed_len: len,
            committed_ids: ids,
        };
        f.write_state(len)?;
        Ok(Opened { file: f, cut, ids })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` (not yet durable). After an error, everything since the last
    /// [`sync`](Self::sync) is cut back off, so the caller writes it all again on retry.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).map_err(|e| {
            self.rollback();
            named(&self.path, "cannot write", e)
        })
    }

    /// Makes every appended byte durable and records the file's length in the state file, with
    /// `ids`, the id journal's length (already durable). After an error, the bytes since the last
    /// sync are cut off as in [`append`](Self::append).
    pub fn sync(&mut self, ids: u64) -> io::Result<()> {
        self.committed_ids = ids;
        let synced =
            self.file.sync_data().and_then(|()| self.file.metadata()).map_err(|e| named(&self.path, "cannot fsync", e));
        match synced {
            Ok(meta) => self.write_state(meta.len()),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Cuts the file back to its last sync (what was appended since is written again).
    pub fn rollback(&self) {
        if self.file.metadata().is_ok_and(|m| m.len() > self.committed_len) {
            let _ = self.file.set_len(self.committed_len);
        }
    }

    /// True when the path no longer names the open file (renamed away, deleted, replaced).
    pub fn replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != (self.dev, self.ino),
            Err(_) => true,
        }
    }

    /// Opens the path again (a new file when it was rotated away), after making what was
    /// appended to the old descriptor durable.
    pub fn reopen(&mut self) -> io::Result<()> {
        // What went to the old file since the last sync must be durable before offsets move on.
        self.file.sync_data().map_err(|e| named(&self.path, "cannot fsync the rotated file", e))?;
        let (file, dev, ino, size) = open_append(&self.path)?;
        (self.file, self.dev, self.ino) = (file, dev, ino);
        self.write_state(size)
    }

    /// Records a new id journal length with the committed file length (after a compaction).
    pub fn record_ids(&mut self, ids: u64) -> io::Result<()> {
        self.committed_ids = ids;
        self.write_state(self.committed_len)
    }

    fn write_state(&mut self, len: u64) -> io::Result<()> {
        let s = State { dev: self.dev, ino: self.ino, len, ids: self.committed_ids };
        let body = serde_json::to_vec(&s).expect("sink state serializes");
        crate::durable::write_atomically(&self.state_path, &body)?;
        self.committed_len = len;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64, u64, u64)> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| named(path, "cannot open for appending", e))?;
    let m = file.metadata().map_err(|e| named(path, "cannot stat", e))?;
    if !m.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a regular file", path.display())));
    }
    Ok((file, m.dev(), m.ino(), m.len()))
}

fn read_state(path: &Path) -> io::Result<Option<State>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: corrupt sink state ({e}); remove it to start over", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(named(path, "cannot read", e)),
    }
}

fn named(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("out.txt"), dir.join("out.state"))
    }

    #[test]
    fn bytes_after_the_last_commit_are_cut_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (p, st) = paths(dir.path());
        let mut f = SinkFile::open(&p, &st).unwrap().file;
        f.append(b"one\ntwo\n").unwrap();
        f.sync(0).unwrap();
        // A crash after a write that was never synced and committed: a torn record at the end.
        f.append(b"thr").unwrap();
        drop(f);
        let opened = SinkFile::open(&p, &st).unwrap();
        assert_eq!(opened.cut, 3);
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn another_file_at_the_path_is_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (p, st) = paths(dir.path());
        let mut f = SinkFile::open(&p, &st).unwrap().file;
        f.append(b"a\n").unwrap();
        f.sync(0).unwrap();
        drop(f);
        std::fs::rename(&p, dir.path().join("out.txt.1")).unwrap();
        std::fs::write(&p, b"someone else's longer content\n").unwrap();
        let opened = SinkFile::open(&p, &st).unwrap();
        assert_eq!(opened.cut, 0);
        assert_eq!(std::fs::read(&p).unwrap(), b"someone else's longer content\n");
    }

    #[test]
    fn rename_is_noticed_and_reopen_writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let (p, st) = paths(dir.path());
        let mut f = SinkFile::open(&p, &st).unwrap().file;
        f.append(b"old\n").unwrap();
        f.sync(0).unwrap();
        assert!(!f.replaced());
        std::fs::rename(&p, dir.path().join("out.txt.1")).unwrap();
        assert!(f.replaced());
        f.reopen().unwrap();
        f.append(b"new\n").unwrap();
        f.sync(0).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new\n");
        assert_eq!(std::fs::read(dir.path().join("out.txt.1")).unwrap(), b"old\n");
    }

    #[test]
    fn copytruncate_keeps_appending_at_the_new_end() {
        let dir = tempfile::tempdir().unwrap();
        let (p, st) = paths(dir.path());
        let mut f = SinkFile::open(&p, &st).unwrap().file;
        f.append(b"before rotation\n").unwrap();
        f.sync(0).unwrap();
        OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
        assert!(!f.replaced());
        f.append(b"after\n").unwrap();
        f.sync(0).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"after\n");
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let err =
            SinkFile::open(Path::new("/proc/agent-sink-test/out.txt"), Path::new("/nonexistent/state")).err().unwrap();
        assert!(err.to_string().contains("cannot open for appending /proc/agent-sink-test/out.txt"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Bounded fuzzing of the sink state reader (issue #14): whatever the state file holds,
        /// opening cuts the file back to the committed length only when the state names this
        /// very file and a shorter length, never lengthens it, and refuses a damaged state by
        /// its path, never a panic.
        #[test]
        fn opening_cuts_only_what_the_state_says_was_not_committed(
            size in 0u64..5000,
            len in 0u64..6000,
            same_file in proptest::prelude::any::<bool>(),
            junk in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60)),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (path, state_path) = paths(dir.path());
            std::fs::write(&path, vec![b'x'; size as usize]).unwrap();
            let m = std::fs::metadata(&path).unwrap();
            let ino = if same_file { m.ino() } else { m.ino() + 1 };
            let state = State { dev: m.dev(), ino, len, ids: 3 };
            let text = match &junk {
                Some(j) => j.clone(),
                None => serde_json::to_vec(&state).unwrap(),
            };
            std::fs::write(&state_path, &text).unwrap();
            match SinkFile::open(&path, &state_path) {
                Ok(o) => {
                    let now = std::fs::metadata(&path).unwrap().len();
                    let want = if junk.is_none() && same_file && len < size { len } else { size };
                    proptest::prop_assert_eq!(now, want);
                    proptest::prop_assert_eq!(o.cut, size - now);
                }
                Err(e) => {
                    proptest::prop_assert!(junk.is_some(), "a valid state is never refused: {}", e);
                    proptest::prop_assert!(e.to_string().contains("out.state"), "{}", e);
                }
            }
        }
    }
}
