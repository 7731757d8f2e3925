//! One tailed file: its open descriptor (or gzip stream), read position, partial line and
//! per-file decoding state.
//!
//! Owns the file descriptor, the [`LineSplitter`] and the [`FileState`] of one (device, inode).
//! Invariants: reads use `pread` at the splitter's stream position, so the descriptor has no
//! hidden cursor; a file whose size fell below that position, or whose first bytes are no longer
//! the ones read (checked after every chunk read, before it is used, and at every poll that
//! finds nothing new), was truncated and is
//! reported, not read past (not for gzip archives, whose offsets are uncompressed ones); a
//! file's fingerprint only grows over bytes it was read with; a reopened path is
//! only used if it still leads to the same (device, inode), and it is only read on from the
//! offset if it still starts with the fingerprinted bytes: a closed file's inode may have been
//! freed and handed to a new file ([`Reopened::Replaced`]); reads hand the splitter whole code
//! units (an even number of bytes in UTF-16 files).

use super::gzip::{self, GzStream};
use super::input::FileState;
use super::lines::{Line, LineSplitter};
use crate::fingerprint::{self, FileId, Fingerprint, Stamp};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Most bytes read from one file before the reader moves on to the next (fairness).
pub const READ_BUDGET: usize = 1 << 20;

#[derive(Debug)]
pub struct TailFile {
    pub input: usize,
    /// Its ack-tracker slot; `None` once forgotten by `clean_inactive` (the slot was handed over
    /// with the registry entry), until it grows and gets a new one.
    pub slot: Option<u32>,
    pub path: PathBuf,
    /// `path` as text, for events and logs.
    pub path_str: String,
    pub id: FileId,
    pub fingerprint: Fingerprint,
    src: Option<Source>,
    /// The file's stamp when it was closed (`None` while open or before its first open): while the
    /// path shows the same stamp, nothing about the file changed.
    closed_stamp: Option<Stamp>,
    /// A plain file, or a gzip archive and how far reading it got.
    pub kind: Kind,
    pub splitter: LineSplitter,
    /// End offset of the last event handed to the queue.
    pub sent_upto: u64,
    /// No scanned path leads to this file any more (renamed away or deleted).
    pub gone: bool,
    /// The rotated copy of a truncated file, read from that file's offset: nothing is written to
    /// it any more, so it is closed once read to its end (finished, when the globs do not find it).
    pub copy: bool,
    pub at_eof: bool,
    pub last_data: Instant,
    pub next_poll: Instant,
    pub backoff: Duration,
    pub state: FileState,
}

/// What is read: a plain file as it grows, or a gzip archive once, to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Gzip(Archive),
}

/// How far reading a gzip archive got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// Being read (not ended early so far).
    Reading,
    /// It ended early (still being written?) when its compressed size was `size`: tried again
    /// once the size changes.
    EndedEarly { size: u64 },
    /// Read to its end, or given up as corrupt: never read again.
    Done,
}

#[derive(Debug)]
enum Source {
    Plain(File),
    /// Boxed: a decoder is large and few files are archives.
    Gzip(Box<GzStream>),
}

impl Source {
    fn file(&self) -> &File {
        match self {
            Source::Plain(f) => f,
            Source::Gzip(g) => g.file(),
        }
    }
}

/// What reopening a closed file by its path found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reopened {
    /// The same file: read on from the offset.
    Same,
    /// Open, under the same device and inode, but no longer starting with the fingerprinted bytes:
    /// a new file that was given the freed inode, or the file rewritten. It holds `size` bytes.
    Replaced { size: u64 },
    /// The path leads to another file or nowhere.
    NotThere,
}

/// What one poll of a file found.
#[derive(Debug)]
pub enum Polled {
    /// This many bytes were read.
    Data(usize),
    /// Nothing new.
    Eof,
    /// The file is now shorter than the read position, or no longer starts with its
    /// fingerprinted bytes (copytruncate; truncated and written again past the position while
    /// the reader was held back), after this many bytes read and fed in this poll.
    Truncated { size: u64, read: usize },
    /// A gzip archive ended after this many more bytes: it is read completely.
    Complete(usize),
    /// A gzip archive could not be decoded further (after this many more bytes).
    Damaged { read: usize, damage: gzip::Damage, error: io::Error },
}

impl Polled {
    /// Bytes this poll read.
    pub fn bytes(&self) -> usize {
        match self {
            Polled::Data(n)
            | Polled::Complete(n)
            | Polled::Damaged { read: n, .. }
            | Polled::Truncated { read: n, .. } => *n,
            Polled::Eof => 0,
        }
    }
}

impl TailFile {
    pub fn new(
        input: usize,
        slot: u32,
        path: PathBuf,
        id: FileId,
        fingerprint: Fingerprint,
        gzip: bool,
        splitter: LineSplitter,
    ) -> Self {
        let now = Instant::now();
        TailFile {
            input,
            slot: Some(slot),
            path_str: path.to_string_lossy().into_owned(),
            path,
            id,
            fingerprint,
            src: None,
            closed_stamp: None,
            kind: if gzip { Kind::Gzip(Archive::Reading) } else { Kind::Plain },
            sent_upto: splitter.line_start(),
            splitter,
            gone: false,
            copy: false,
            at_eof: false,
            last_data: now,
            next_poll: now,
            backoff: Duration::ZERO,
            state: FileState::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.src.is_some()
    }

    pub fn is_gzip(&self) -> bool {
        matches!(self.kind, Kind::Gzip(_))
    }

    /// A gzip archive read to its end or given up: never read again.
    pub fn is_complete(&self) -> bool {
        self.kind == Kind::Gzip(Archive::Done)
    }

    /// Records how far reading a gzip archive got (nothing for a plain file).
    pub fn set_archive(&mut self, how: Archive) {
        if let Kind::Gzip(a) = &mut self.kind {
            *a = how;
        }
    }

    pub fn set_path(&mut self, path: PathBuf) {
        self.path_str = path.to_string_lossy().into_owned();
        self.path = path;
    }

    /// Adopts an already opened descriptor of this file.
    pub fn adopt(&mut self, file: File) {
        self.closed_stamp = None;
        self.src = Some(if self.is_gzip() { Source::Gzip(Box::new(GzStream::new(file))) } else { Source::Plain(file) });
    }

    /// Opens the file by path and checks that it is still the file read so far.
    pub fn reopen(&mut self) -> io::Result<Reopened> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Reopened::NotThere),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if FileId::of(&meta) != self.id {
            return Ok(Reopened::NotThere);
        }
        // A gzip archive's fingerprint is over its uncompressed start, and archives are not
        // rewritten; a plain file's first bytes must still be the ones fingerprinted.
        let same = self.is_gzip() || self.fingerprint.matches(&file, meta.len())?;
        self.adopt(file);
        Ok(if same { Reopened::Same } else { Reopened::Replaced { size: meta.len() } })
    }

    /// Closes the descriptor, first taking a longer fingerprint if the file grew past it (returned,
    /// for the registry) and remembering the file's stamp, by which a later change is noticed.
    pub fn close(&mut self) -> Option<Fingerprint> {
        let grown = self.refresh_fingerprint();
        if let Some(Source::Plain(f)) = &self.src {
            self.closed_stamp = f.metadata().ok().map(|m| Stamp::of(&m));
        }
        self.src = None;
        grown
    }

    /// Whether a file whose path shows `stamp` may hold data not read yet, or may no longer be
    /// the file read so far (then [`TailFile::reopen`] tells).
    pub fn may_have_changed(&self, stamp: &Stamp) -> bool {
        match self.kind {
            Kind::Plain => {
                stamp.size != self.splitter.stream_pos() || (!self.is_open() && self.closed_stamp != Some(*stamp))
            }
            Kind::Gzip(Archive::Reading) => stamp.size != 0,
            Kind::Gzip(Archive::EndedEarly { size }) => stamp.size != size,
            Kind::Gzip(Archive::Done) => false,
        }
    }

    /// Stamp of the file behind the path, if it is still this (device, inode).
    pub fn stamp_by_path(&self) -> Option<Stamp> {
        let meta = std::fs::metadata(&self.path).ok()?;
        (FileId::of(&meta) == self.id).then(|| Stamp::of(&meta))
    }

    /// Whether the file at `path` starts with the bytes this file was read with (so it may be
    /// this file under another name).
    pub fn starts_as_read(&self, path: &std::path::Path) -> bool {
        File::open(path).is_ok_and(|f| fingerprint::starts_with(&f, self.state.id_head.bytes()).unwrap_or(false))
    }

    /// The open plain file changed since its last read: it is longer than where reading got, or
    /// no longer starts with the bytes read (truncated and written again).
    pub fn changed_since_read(&self) -> bool {
        match &self.src {
            Some(Source::Plain(f)) => {
                f.metadata().is_ok_and(|m| m.len() > self.splitter.stream_pos())
                    || !fingerprint::starts_with(f, self.state.id_head.bytes()).unwrap_or(true)
            }
            _ => false,
        }
    }

    /// The open file has no directory entry left (deleted).
    pub fn is_deleted(&self) -> bool {
        self.src.as_ref().and_then(|s| s.file().metadata().ok()).is_some_and(|m| m.nlink() == 0)
    }

    /// Reads about `budget` bytes (at most [`READ_BUDGET`], a rate limit's burst when smaller) from
    /// the read position and feeds complete lines to `on_line`.
    pub fn poll(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        mut on_line: impl FnMut(&Line<'_>, &mut FileState),
    ) -> io::Result<Polled> {
        let unit = self.splitter.unit();
        let src = self.src.as_mut().expect("poll needs an open file");
        // Ids need the file's first bytes up to where reading resumes (after a restart).
        let head_missing = self.state.id_head.missing_before(self.splitter.stream_pos());
        let file = match src {
            Source::Plain(f) => f,
            Source::Gzip(g) => {
                if let Some(n) = head_missing {
                    self.state.id_head.set_start(&gzip::prefix(g.file(), n)?);
                }
                return Ok(poll_gzip(g, &mut self.splitter, &mut self.state, buf, budget, &mut on_line));
            }
        };
        let size = file.metadata()?.len();
        if size < self.splitter.stream_pos() {
            return Ok(Polled::Truncated { size, read: 0 });
        }
        if let Some(n) = head_missing {
            let mut start = vec![0u8; n];
            file.read_exact_at(&mut start, 0)?;
            self.state.id_head.set_start(&start);
        }
        let mut total = 0;
        let len = budget.min(buf.len());
        let buf = &mut buf[..len];
        while total < budget {
            let n = file.read_at(buf, self.splitter.stream_pos())?;
            // A code unit cut in two is read again, whole, next time.
            let n = n - n % unit;
            if n == 0 {
                break;
            }
            // Read first, checked after: bytes read before a truncation are the file's, and a
            // truncation before the read shows in its first bytes. A size check alone misses a
            // file truncated and written again past the position (while the reader waited for
            // room in the queue, or between two polls): its new bytes would be taken for the
            // old file's next ones. One read of at most 1 KiB per chunk of up to 64 KiB.
            if !fingerprint::starts_with(file, self.state.id_head.bytes())? {
                let size = file.metadata()?.len();
                return Ok(Polled::Truncated { size, read: total });
            }
            total += n;
            let state = &mut self.state;
            state.id_head.see(self.splitter.stream_pos(), &buf[..n]);
            self.splitter.feed(&buf[..n], |line| on_line(&line, state));
        }
        // Nothing new: the file may still have been truncated and written again to where it was
        // read to (the same size); only its first bytes tell.
        if total == 0 && !fingerprint::starts_with(file, self.state.id_head.bytes())? {
            return Ok(Polled::Truncated { size, read: 0 });
        }
        self.at_eof = total < budget;
        Ok(if total == 0 { Polled::Eof } else { Polled::Data(total) })
    }

    /// Takes a longer fingerprint once more of the file's first bytes were read: over the bytes
    /// read (kept for ids), so a file replaced since is never fingerprinted as the one read.
    pub fn refresh_fingerprint(&mut self) -> Option<Fingerprint> {
        let head = self.state.id_head.bytes();
        if self.is_gzip() || head.len() as u64 <= self.fingerprint.len {
            return None;
        }
        self.fingerprint = Fingerprint::of_content(head);
        Some(self.fingerprint)
    }

    /// Restarts from offset 0 after truncation.
    pub fn restart_from_zero(&mut self, slot: u32) {
        self.slot = Some(slot);
        self.splitter.reset(0);
        self.state.id_head.reset();
        self.sent_upto = 0;
        self.fingerprint = self.src.as_ref().and_then(|s| Fingerprint::read(s.file(), 0).ok()).unwrap_or_default();
    }
}

/// Reads a gzip archive on from the splitter's position (uncompressed).
fn poll_gzip(
    g: &mut GzStream,
    splitter: &mut LineSplitter,
    state: &mut FileState,
    buf: &mut [u8],
    budget: usize,
    on_line: &mut impl FnMut(&Line<'_>, &mut FileState),
) -> Polled {
    let mut total = 0;
    let len = budget.min(buf.len());
    let buf = &mut buf[..len];
    while total < budget {
        match g.read_from(buf, splitter.stream_pos()) {
            Ok(0) => return Polled::Complete(total),
            Ok(n) => {
                total += n;
                state.id_head.see(splitter.stream_pos(), &buf[..n]);
                splitter.feed(&buf[..n], |line| on_line(&line, state));
            }
            Err(error) => {
                let damage = gzip::damage(&error).unwrap_or(gzip::Damage::Corrupt);
                return Polled::Damaged { read: total, damage, error };
            }
        }
    }
    Polled::Data(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LineTerminator;
    use crate::decode::encoding::Newline;
    use std::io::Write;
    use std::path::Path;

    /// A file of `text` tracked from 0, read to its end and closed, as the reader leaves an
    /// inactive file.
    fn read_and_close(path: &Path, text: &[u8]) -> TailFile {
        std::fs::write(path, text).unwrap();
        let file = File::open(path).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let fp = Fingerprint::read(&file, 0).unwrap();
        let splitter = LineSplitter::new(0, 1 << 20, LineTerminator::Auto, Newline::Byte);
        let mut f = TailFile::new(0, 0, path.to_path_buf(), id, fp, false, splitter);
        f.adopt(file);
        let mut lines = 0;
        let polled = f.poll(&mut [0; 4096], READ_BUDGET, |_, _| lines += 1).unwrap();
        assert!(matches!(polled, Polled::Data(n) if n == text.len()));
        assert_eq!(lines, text.iter().filter(|b| **b == b'\n').count());
        let grown = f.close().expect("the fingerprint grows to what was read, at close");
        assert_eq!(grown.len, text.len() as u64);
        f
    }

    fn changed(f: &TailFile) -> bool {
        f.stamp_by_path().is_some_and(|s| f.may_have_changed(&s))
    }

    #[test]
    fn an_untouched_closed_file_is_not_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let f = read_and_close(&dir.path().join("a.log"), b"one\ntwo\n");
        assert!(!changed(&f));
    }

    #[test]
    fn a_closed_file_that_grew_is_reopened_as_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = read_and_close(&p, b"one\ntwo\n");
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"three\n").unwrap();
        assert!(changed(&f));
        assert_eq!(f.reopen().unwrap(), Reopened::Same);
        assert!(f.is_open());
    }

    /// The loss of issue #14: same device, inode and size, other bytes. Only the stamp says that
    /// something happened and only the fingerprint says what.
    #[test]
    fn a_closed_file_rewritten_at_the_same_size_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = read_and_close(&p, b"one\ntwo\n");
        // The stamp's times must move: coarse file system clocks tick every few milliseconds.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().write_all_at(b"ONE\nTWO\n", 0).unwrap();
        assert!(changed(&f), "same size, but the stamp moved");
        assert_eq!(f.reopen().unwrap(), Reopened::Replaced { size: 8 });
    }

    #[test]
    fn a_deleted_and_recreated_file_is_replaced_or_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = read_and_close(&p, b"one\ntwo\n");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"new!\nnew!\n").unwrap();
        let reused = std::fs::metadata(&p).unwrap().ino() == f.id.ino;
        let want = if reused { Reopened::Replaced { size: 10 } } else { Reopened::NotThere };
        assert_eq!(f.reopen().unwrap(), want);
    }

    /// A gzip archive still being written: read up to where it ends early, polled again only once
    /// its compressed size changes, then read to its end and never polled again.
    #[test]
    fn an_archive_that_ended_early_waits_for_its_size_to_change_and_a_done_one_is_never_read_again() {
        use flate2::write::GzEncoder;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log.gz");
        let text: Vec<u8> = (0..2000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        let gz = enc.finish().unwrap();
        let half = gz.len() / 2;
        std::fs::write(&p, &gz[..half]).unwrap();
        let file = File::open(&p).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let splitter = LineSplitter::new(0, 1 << 20, LineTerminator::Auto, Newline::Byte);
        let mut f = TailFile::new(0, 0, p.clone(), id, Fingerprint::default(), true, splitter);
        assert_eq!(f.kind, Kind::Gzip(Archive::Reading));
        f.adopt(file);
        let mut lines = 0;
        let polled = f.poll(&mut [0; 4096], READ_BUDGET, |_, _| lines += 1).unwrap();
        assert!(matches!(polled, Polled::Damaged { damage: gzip::Damage::Truncated, .. }), "{polled:?}");
        let first = lines;
        assert!(first > 0 && first < 2000, "{first} lines before the cut");
        f.close();
        f.set_archive(Archive::EndedEarly { size: half as u64 });
        assert!(!changed(&f), "the same size: nothing new to read");
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&gz[half..]).unwrap();
        assert!(changed(&f), "it grew");
        assert_eq!(f.reopen().unwrap(), Reopened::Same);
        f.set_archive(Archive::Reading);
        let mut polled = f.poll(&mut [0; 4096], READ_BUDGET, |_, _| lines += 1).unwrap();
        while let Polled::Data(_) = polled {
            polled = f.poll(&mut [0; 4096], READ_BUDGET, |_, _| lines += 1).unwrap();
        }
        assert!(matches!(polled, Polled::Complete(_)), "{polled:?}");
        assert_eq!(lines, 2000, "each line once, across the two reads");
        f.set_archive(Archive::Done);
        assert!(f.is_complete());
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"more").unwrap();
        assert!(!changed(&f), "a done archive is never read again");
        let mut plain = read_and_close(&dir.path().join("b.log"), b"one\n");
        plain.set_archive(Archive::Done);
        assert_eq!(plain.kind, Kind::Plain, "a plain file has no archive state");
    }
}
