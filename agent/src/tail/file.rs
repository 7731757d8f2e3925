//! One tailed file: its open descriptor, read position and partial line.
//!
//! Owns the file descriptor and the [`LineSplitter`] of one (device, inode). Invariants: reads
//! use `pread` at the splitter's stream position, so the descriptor has no hidden cursor; a file
//! whose size fell below that position was truncated and is reported, not read past; a reopened
//! path is only used if it still leads to the same (device, inode).

use super::input::Warned;
use super::lines::{Line, LineSplitter};
use crate::fingerprint::{FileId, Fingerprint, FINGERPRINT_MAX};
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
    pub slot: u32,
    pub path: PathBuf,
    /// `path` as text, for events and logs.
    pub path_str: String,
    pub id: FileId,
    pub fingerprint: Fingerprint,
    file: Option<File>,
    pub splitter: LineSplitter,
    /// End offset of the last event handed to the queue.
    pub sent_upto: u64,
    /// No scanned path leads to this file any more (renamed away or deleted).
    pub gone: bool,
    pub at_eof: bool,
    pub last_data: Instant,
    pub next_poll: Instant,
    pub backoff: Duration,
    pub warned: Warned,
}

/// What one poll of a file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    /// This many bytes were read.
    Data(usize),
    /// Nothing new.
    Eof,
    /// The file is now shorter than the read position (copytruncate).
    Truncated { size: u64 },
}

impl TailFile {
    pub fn new(
        input: usize,
        slot: u32,
        path: PathBuf,
        id: FileId,
        fingerprint: Fingerprint,
        splitter: LineSplitter,
    ) -> Self {
        let now = Instant::now();
        TailFile {
            input,
            slot,
            path_str: path.to_string_lossy().into_owned(),
            path,
            id,
            fingerprint,
            file: None,
            sent_upto: splitter.line_start(),
            splitter,
            gone: false,
            at_eof: false,
            last_data: now,
            next_poll: now,
            backoff: Duration::ZERO,
            warned: Warned::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    pub fn set_path(&mut self, path: PathBuf) {
        self.path_str = path.to_string_lossy().into_owned();
        self.path = path;
    }

    /// Adopts an already opened descriptor of this file.
    pub fn adopt(&mut self, file: File) {
        self.file = Some(file);
    }

    /// Opens the file by path. `Ok(false)` when the path now leads to another file or nowhere.
    pub fn reopen(&mut self) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if FileId::of(&file.metadata()?) != self.id {
            return Ok(false);
        }
        self.file = Some(file);
        Ok(true)
    }

    pub fn close(&mut self) {
        self.file = None;
    }

    /// Size of the file behind the path (for a closed file), if it is still this file.
    pub fn size_by_path(&self) -> Option<u64> {
        let meta = std::fs::metadata(&self.path).ok()?;
        (FileId::of(&meta) == self.id).then_some(meta.len())
    }

    /// The open file has no directory entry left (deleted).
    pub fn is_deleted(&self) -> bool {
        self.file.as_ref().and_then(|f| f.metadata().ok()).is_some_and(|m| m.nlink() == 0)
    }

    /// Reads up to [`READ_BUDGET`] bytes from the read position and feeds complete lines to `on_line`.
    pub fn poll(&mut self, buf: &mut [u8], mut on_line: impl FnMut(&Line<'_>, &mut Warned)) -> io::Result<Polled> {
        let file = self.file.as_ref().expect("poll needs an open file");
        let size = file.metadata()?.len();
        if size < self.splitter.stream_pos() {
            return Ok(Polled::Truncated { size });
        }
        let mut total = 0;
        while total < READ_BUDGET {
            let n = file.read_at(buf, self.splitter.stream_pos())?;
            if n == 0 {
                break;
            }
            total += n;
            let warned = &mut self.warned;
            self.splitter.feed(&buf[..n], |line| on_line(&line, warned));
        }
        self.at_eof = total < READ_BUDGET;
        Ok(if total == 0 { Polled::Eof } else { Polled::Data(total) })
    }

    /// Takes a longer fingerprint once the file has grown past the current one.
    pub fn refresh_fingerprint(&mut self) -> Option<Fingerprint> {
        if self.fingerprint.len >= FINGERPRINT_MAX || self.splitter.stream_pos() <= self.fingerprint.len {
            return None;
        }
        let file = self.file.as_ref()?;
        let fp = Fingerprint::read(file, self.splitter.stream_pos()).ok()?;
        self.fingerprint = fp;
        Some(fp)
    }

    /// Restarts from offset 0 after truncation.
    pub fn restart_from_zero(&mut self, slot: u32) {
        self.slot = slot;
        self.splitter.reset(0);
        self.sent_upto = 0;
        self.fingerprint = self.file.as_ref().and_then(|f| Fingerprint::read(f, 0).ok()).unwrap_or_default();
    }
}
