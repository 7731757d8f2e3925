//! The reader: one thread that owns every tailed file and turns new lines into events.
//!
//! Owns the set of [`TailFile`]s (keyed by input and device+inode) and the batch being filled.
//! It reconciles discovery scans (new files, renames, files gone), polls files that are due, and
//! pushes full batches into the byte-bounded [`Queue`], blocking when it is full. Invariants:
//! - a file's start offset is its registry offset only when its fingerprint still matches;
//!   otherwise (inode reuse) it is read from 0, and a shrunken file (copytruncate) too; the same
//!   holds for a file closed in this run: once its path shows a changed [`Stamp`](crate::fingerprint::Stamp) it is reopened
//!   and read on only if its fingerprint still matches, else read from 0 as a new file;
//! - a file truncated (or replaced) after it was read to an offset has what it held past the
//!   offset read from its rotated copy first, when one is beside it (`copy.rs`), and the copies of
//!   the generations rotated since from their start; the copies are files of their own, finished
//!   at their end; a closed file gone from the globs, or from the registry's path at start-up, is
//!   looked for the same way beside its old name (renamed there, or copied and deleted);
//! - an open file is closed as idle only if it is still as it was read (not longer, same first
//!   bytes), and a closed file found under another name is taken for renamed only if it starts
//!   with the bytes it was read with (else its inode was reused by a new file);
//! - a gzip archive whose uncompressed start is the fingerprint of a file already read (its
//!   rotated, compressed copy) starts where that file was read to, so it is not shipped twice;
//! - a file gone from its path is read to its end before it is closed (deleted files at once,
//!   renamed ones once inactive, as the writer may still append to them), unless
//!   `close.on_state_change.removed` / `renamed` asks to stop at once;
//! - a file's ack slot is freed only once every event it sent is acknowledged, so a slot number
//!   is never reused while its events are in flight; a registry entry is forgotten
//!   (`clean_removed`, `clean_inactive`) only after that;
//! - at most `queue.max_open_files` descriptors are open, and at most `harvester_limit` per input:
//!   idle files are closed first and reopened when they grow;
//! - files of a paused input (its [`Connector`] flag) are not read, nor those of an input over its
//!   `rate_limit` ([`limit::RateLimit`]); they are still tracked, so nothing is missed meanwhile.

mod copy;
pub mod file;
pub mod gzip;
pub mod input;
mod lifecycle;
pub mod limit;
pub mod lines;
#[cfg(test)]
mod model;

use crate::ack::{AckTracker, SlotFile};
use crate::config::FileCompression;
use crate::discover::{DiscoverMsg, DiscoverRx, Found};
use crate::event::{rfc3339_from_millis, unix_millis, Event};
use crate::fingerprint::{FileId, Fingerprint, FINGERPRINT_MAX};
use crate::metrics::Metrics;
use crate::queue::{Batch, Queue};
use crate::registry::{Entry, Key, Recovery};
use crate::shutdown::Shutdown;
use crate::status::{Connector, Heartbeat};
use file::{Archive, Kind, Polled, Reopened, TailFile, READ_BUDGET};
use input::{FileCtx, InputRt};
use lifecycle::{Lost, Seen};
use limit::RateLimit;
use lines::LineSplitter;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A batch is handed to the queue once it holds this many bytes or events.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_EVENTS: usize = 4096;
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);
/// Files finished in this run remembered by fingerprint (for archives of them that show up later).
const FINGERPRINTS_KEPT: usize = 4096;

type FileKey = (usize, FileId);

/// Everything the reader is handed at start-up.
pub struct ReaderParts {
    pub inputs: Vec<InputRt>,
    /// Each input's status (pause flag, counters), in the order of `inputs`.
    pub connectors: Vec<Arc<Connector>>,
    pub known: HashMap<Key, Entry>,
    pub recovered: Option<Recovery>,
    pub tracker: Arc<AckTracker>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub rx: DiscoverRx,
    pub stop: Shutdown,
    pub max_open_files: usize,
    /// Beaten at every turn of the reader's loop and while it waits for room in the queue.
    pub heartbeat: Heartbeat,
}

/// A finished file whose slot waits for its last acknowledgements.
struct Draining {
    slot: u32,
    sent: u64,
    /// Registry entry to remove once drained (`clean_removed`, `clean_inactive`).
    forget: Option<Key>,
}

pub struct Reader {
    p: ReaderParts,
    files: HashMap<FileKey, TailFile>,
    by_path: HashMap<PathBuf, FileKey>,
    open_files: usize,
    open_by_input: Vec<usize>,
    batch: Batch,
    buf: Vec<u8>,
    /// Encoding buffer reused for every event.
    scratch: Vec<u8>,
    draining: Vec<Draining>,
    /// Files closed for good while still found by the globs (`close.on_state_change.renamed`).
    retired: HashSet<FileKey>,
    /// How far files were read, by (input, fingerprint): registry entries and files finished in
    /// this run. Lets a compressed copy of a file already read start where that file ended.
    read_by_fingerprint: HashMap<(usize, Fingerprint), u64>,
    /// Paths that failed to open (with their input), so each is logged once until it works.
    failing: HashMap<PathBuf, usize>,
    /// Each input's `rate_limit`, in the order of `inputs`.
    limits: Vec<Option<RateLimit>>,
    last_housekeeping: Instant,
}

/// What to do with a file after a poll, once the borrows of the poll are over.
enum AfterPoll {
    Nothing,
    /// Ship its partial last line and pending multiline event; it will not be read again.
    FinishLines,
    /// Truncated: flush what it had, then read it again from 0 in a new slot.
    Restart {
        size: u64,
    },
}

/// Why a tracked file is read again from 0, as a new file.
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// It shrank below the read position (copytruncate).
    Truncated,
    /// Reopened after a close, it no longer starts with the fingerprinted bytes (its inode was
    /// given to a new file, or it was rewritten).
    Replaced,
}

impl Reader {
    pub fn new(parts: ReaderParts) -> Reader {
        let mut read_by_fingerprint = HashMap::new();
        for e in parts.known.values() {
            if let Some(i) = parts.inputs.iter().position(|rt| rt.config.id == e.input) {
                let at = read_by_fingerprint.entry((i, e.fingerprint())).or_insert(0);
                *at = e.offset.max(*at);
            }
        }
        Reader {
            open_by_input: vec![0; parts.inputs.len()],
            limits: parts.inputs.iter().map(|rt| rt.config.rate_limit.as_ref().map(RateLimit::new)).collect(),
            p: parts,
            files: HashMap::new(),
            by_path: HashMap::new(),
            open_files: 0,
            batch: Batch::default(),
            buf: vec![0; 64 * 1024],
            scratch: Vec::with_capacity(4096),
            draining: Vec::new(),
            retired: HashSet::new(),
            read_by_fingerprint,
            failing: HashMap::new(),
            last_housekeeping: Instant::now(),
        }
    }

    /// Reads until the stop, then hands over the last batch.
    pub fn run(mut self) {
        let mut busy = false;
        while !self.p.stop.is_stopped() {
            self.p.heartbeat.beat();
            self.receive(if busy { Duration::ZERO } else { self.idle_wait() });
            busy = self.read_round();
            if !busy {
                // Nothing more to read right now: ship what we have instead of waiting for a full batch.
                self.flush_batch();
            }
            if self.last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                self.housekeeping();
            }
        }
        // A pending multiline event of a file still there is left unacknowledged and assembled
        // again after restart; one of a file gone from the globs could not be, so it is shipped.
        let gone: Vec<FileKey> = self.files.iter().filter(|(_, f)| f.gone).map(|(k, _)| *k).collect();
        for key in gone {
            self.finish_lines(key);
        }
        self.flush_batch();
        tracing::debug!(files = self.files.len(), "reader stopped");
    }

    fn idle_wait(&self) -> Duration {
        let now = Instant::now();
        // Complete archives are never polled again: their poll time must not cut the wait short.
        let next = self.files.values().filter_map(|f| self.poll_time(f)).min().unwrap_or(now + Duration::from_secs(1));
        next.saturating_duration_since(now).min(HOUSEKEEPING_EVERY)
    }

    /// When a file is next due: its own poll time, or later while its input is over its rate
    /// limit; `None` when it will not be read (a complete archive, a paused input).
    fn poll_time(&self, f: &TailFile) -> Option<Instant> {
        if f.is_complete() || self.p.connectors[f.input].is_paused() {
            return None;
        }
        let limited = self.limits[f.input].as_ref().and_then(RateLimit::next_ready);
        Some(limited.map_or(f.next_poll, |t| t.max(f.next_poll)))
    }

    /// Whether `input`'s files may be read now (not paused, rate limit paid).
    fn may_read(&mut self, input: usize) -> bool {
        !self.p.connectors[input].is_paused() && self.limits[input].as_mut().map_or(true, |l| l.ready(Instant::now()))
    }

    fn receive(&mut self, wait: Duration) {
        let first = match self.p.rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return,
            Err(RecvTimeoutError::Disconnected) => {
                // Discovery has ended (at the stop, which also ends this wait).
                self.p.stop.wait(wait);
                return;
            }
        };
        self.on_message(first);
        while let Ok(m) = self.p.rx.try_recv() {
            self.on_message(m);
        }
    }

    fn on_message(&mut self, msg: DiscoverMsg) {
        match msg {
            DiscoverMsg::Scan { input, files, initial } => self.on_scan(input, files, initial),
            DiscoverMsg::Poke(path) => {
                if let Some(f) = self.by_path.get(&path).and_then(|k| self.files.get_mut(k)) {
                    f.next_poll = Instant::now();
                    f.backoff = Duration::ZERO;
                }
            }
        }
    }

    /// Reconciles the files we track for `input` with what its globs match now.
    fn on_scan(&mut self, input: usize, found: Vec<Found>, initial: bool) {
        let close = self.p.inputs[input].config.close.on_state_change.clone();
        let mut present = HashSet::new();
        let mut close_now = Vec::new();
        let mut reused = Vec::new();
        for fd in found {
            present.insert(fd.id);
            let key = (input, fd.id);
            if self.retired.contains(&key) {
                continue;
            }
            match self.files.get_mut(&key) {
                Some(f) if f.path != fd.path && !f.is_open() && !f.is_gzip() && !f.starts_as_read(&fd.path) => {
                    // Not a rename: the closed file was deleted and its inode given to this one.
                    reused.push(fd);
                }
                Some(f) => {
                    if f.path != fd.path {
                        if close.renamed {
                            tracing::info!(from = %f.path.display(), to = %fd.path.display(), "file renamed; closing it (close.on_state_change.renamed)");
                            close_now.push(key);
                            continue;
                        }
                        tracing::info!(from = %f.path.display(), to = %fd.path.display(), "file renamed; still reading it");
                        self.by_path.remove(&f.path);
                        f.set_path(fd.path.clone());
                        self.by_path.insert(fd.path, key);
                        let path = f.path.clone();
                        if let Some(slot) = f.slot {
                            self.p.tracker.update_file(slot, |s| s.path = path);
                        }
                    }
                    f.gone = false;
                    if f.may_have_changed(&fd.stamp) {
                        f.next_poll = Instant::now();
                    }
                }
                None => self.add_file(input, fd, initial),
            }
        }
        for fd in reused {
            let key = (input, fd.id);
            let was = self.files[&key].path.display().to_string();
            tracing::info!(path = %fd.path.display(), %was, "inode of a deleted file reused by a new one; reading it as a new file");
            Metrics::inc(&self.p.metrics.files_inode_reused);
            self.finish_gone(key, false);
            self.add_file(input, fd, initial);
        }
        self.retired.retain(|k| k.0 != input || present.contains(&k.1));
        for (key, f) in self.files.iter_mut() {
            if key.0 == input && !present.contains(&key.1) && !f.gone {
                f.gone = true;
                f.next_poll = Instant::now();
                let deleted = f.is_deleted();
                if f.is_open() && ((deleted && close.removed) || (!deleted && close.renamed)) {
                    tracing::info!(path = %f.path.display(), deleted, "file gone; closing it without reading the rest (close.on_state_change)");
                    close_now.push(*key);
                } else {
                    tracing::info!(path = %f.path.display(), "file renamed away or removed; reading it to its end");
                }
            }
        }
        for key in close_now {
            Metrics::inc(&self.p.metrics.files_closed_on_state_change);
            let gone = self.files.get(&key).is_some_and(|f| f.gone);
            if !gone {
                self.retired.insert(key);
            }
            self.finish_file(key, gone && self.p.inputs[input].config.clean_removed);
        }
        if initial {
            self.clean_unfound_entries(input, &present);
        }
    }

    fn add_file(&mut self, input: usize, fd: Found, initial: bool) {
        let file = match File::open(&fd.path) {
            Ok(f) => f,
            Err(e) => {
                Metrics::inc(&self.p.metrics.file_errors);
                if self.failing.insert(fd.path.clone(), input).is_none() {
                    tracing::warn!(path = %fd.path.display(), error = %e, "cannot open file; will retry at every scan (logged once)");
                    let why = format!("cannot open {}: {e}", fd.path.display());
                    self.p.connectors[input].set_failure(Some(why));
                }
                return;
            }
        };
        if self.failing.remove(&fd.path).is_some() && !self.failing.values().any(|&i| i == input) {
            self.p.connectors[input].set_failure(None);
        }
        let meta = file.metadata().ok();
        let size = meta.as_ref().map_or(fd.stamp.size, |m| m.len());
        let modified = meta.and_then(|m| m.modified().ok());
        let rt = &self.p.inputs[input];
        let gzip = match rt.config.compression {
            FileCompression::Auto => gzip::looks_gzipped(&fd.path, &file),
            FileCompression::Gzip => true,
            FileCompression::None => false,
        };
        // A gzip archive is identified by its uncompressed start (see `fingerprint`).
        let content = gzip.then(|| gzip::prefix(&file, FINGERPRINT_MAX as usize).unwrap_or_default());
        let fingerprint = match &content {
            Some(c) => Fingerprint::of_content(c),
            None => Fingerprint::read(&file, size).unwrap_or_default(),
        };
        let seen = Seen { fd: &fd, file: &file, size, modified, content: content.as_deref(), fingerprint };
        let start = self.start_offset(input, &seen, initial);
        // Without room for one more descriptor the file is tracked closed, opened when it grows.
        let file = self.make_room(input).then_some(file);
        let what = SlotFile { input: self.p.inputs[input].config.id.clone(), path: fd.path, id: fd.id, fingerprint };
        self.track(input, what, gzip, start, file);
    }

    /// Starts tracking `what` (a file of `input`) at `start` in a slot of its own, with its
    /// descriptor if `file` is given (the caller made room for it). Returns the new file, or
    /// `None` without a slot.
    fn track(
        &mut self,
        input: usize,
        what: SlotFile,
        gzip: bool,
        start: u64,
        file: Option<File>,
    ) -> Option<&mut TailFile> {
        let (path, id, fingerprint) = (what.path.clone(), what.id, what.fingerprint);
        let Some(slot) = self.p.tracker.open(what, start, Some(self.p.connectors[input].latency.clone())) else {
            tracing::error!(path = %path.display(), "too many files tracked at once; not reading this one");
            return None;
        };
        let rt = &self.p.inputs[input];
        let splitter =
            LineSplitter::new(start, rt.config.max_bytes.0 as usize, rt.config.line_terminator, rt.encoding.newline());
        let mut f = TailFile::new(input, slot, path.clone(), id, fingerprint, gzip, splitter);
        tracing::debug!(path = %path.display(), offset = start, gzip, "tracking file");
        if let Some(file) = file {
            f.adopt(file);
            self.note_opened(input);
        }
        self.by_path.insert(path, (input, id));
        self.files.insert((input, id), f);
        self.files.get_mut(&(input, id))
    }

    fn note_opened(&mut self, input: usize) {
        self.open_files += 1;
        self.open_by_input[input] += 1;
        Metrics::inc(&self.p.metrics.files_opened);
        self.note_open_gauges(input);
    }

    fn note_closed(&mut self, input: usize) {
        self.open_files -= 1;
        self.open_by_input[input] -= 1;
        Metrics::inc(&self.p.metrics.files_closed);
        self.note_open_gauges(input);
    }

    fn note_open_gauges(&self, input: usize) {
        Metrics::set(&self.p.metrics.files_open, self.open_files as u64);
        Metrics::set(&self.p.connectors[input].open_files, self.open_by_input[input] as u64);
    }

    /// Ensures a descriptor can be opened for `input`, closing the longest-idle file at its end
    /// (of the same input when its `harvester_limit` is the limit) if needed.
    fn make_room(&mut self, input: usize) -> bool {
        let limit = self.p.inputs[input].config.harvester_limit;
        if limit > 0 && self.open_by_input[input] >= limit && !self.close_idle(Some(input)) {
            return false;
        }
        self.open_files < self.p.max_open_files || self.close_idle(None)
    }

    fn close_idle(&mut self, input: Option<usize>) -> bool {
        let victim = self
            .files
            .iter()
            .filter(|(k, f)| input.map_or(true, |i| i == k.0) && f.is_open() && f.at_eof)
            .min_by_key(|(_, f)| f.last_data)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.close_file(k);
                true
            }
            None => false,
        }
    }

    /// Polls every file that is due. Returns whether any data was read.
    fn read_round(&mut self) -> bool {
        let now = Instant::now();
        let due: Vec<FileKey> =
            self.files.iter().filter(|(_, f)| f.next_poll <= now && !f.is_complete()).map(|(k, _)| *k).collect();
        let mut any = false;
        for key in due {
            if self.p.stop.is_stopped() {
                break;
            }
            if self.may_read(key.0) {
                any |= self.read_file(key);
            }
        }
        any
    }

    fn read_file(&mut self, key: FileKey) -> bool {
        if !self.ensure_open(key) {
            return false;
        }
        let Reader { p, files, batch, buf, scratch, limits, .. } = self;
        let f = files.get_mut(&key).expect("due file exists");
        let metrics = &p.metrics;
        let limit = &mut limits[key.0];
        let budget = limit.as_ref().map_or(READ_BUDGET, |l| l.read_budget(READ_BUDGET));
        let events_before = Metrics::get(&p.connectors[key.0].events);
        let polled = with_emitter(p, batch, f, |rt, f, ctx, emit| {
            f.poll(buf, budget, |line, st| rt.on_line(line, st, ctx, metrics, scratch, emit))
        });
        if let Some(l) = limit {
            let events = Metrics::get(&p.connectors[key.0].events) - events_before;
            l.charge(polled.as_ref().map_or(0, Polled::bytes) as u64, events);
        }
        let rt = &p.inputs[f.input];
        let now = Instant::now();
        // A gzip stream cannot be resumed after it ended or failed: closed, reopened if needed.
        let mut close_stream = false;
        let (data, after) = match polled {
            Ok(Polled::Data(n)) => {
                note_read(p, key.0, n);
                f.last_data = now;
                f.backoff = Duration::ZERO;
                f.next_poll = now;
                (true, AfterPoll::Nothing)
            }
            Ok(Polled::Eof) => {
                let cfg = &rt.config.backoff;
                f.backoff = (f.backoff * 2).clamp(cfg.init.0, cfg.max.0);
                f.next_poll = now + f.backoff;
                (false, AfterPoll::Nothing)
            }
            Ok(Polled::Truncated { size, read }) => {
                note_read(p, key.0, read);
                (true, AfterPoll::Restart { size })
            }
            Ok(Polled::Complete(n)) => {
                note_read(p, key.0, n);
                Metrics::inc(&p.metrics.gz_files_read);
                tracing::info!(path = %f.path.display(), bytes = f.splitter.stream_pos(), "gzip archive read to its end");
                f.set_archive(Archive::Done);
                close_stream = true;
                (n > 0, AfterPoll::FinishLines)
            }
            Ok(Polled::Damaged { read, damage, error }) => {
                note_read(p, key.0, read);
                if !f.state.warned.gzip {
                    f.state.warned.gzip = true;
                    Metrics::inc(&p.metrics.gz_errors);
                    let (path, offset) = (f.path.display(), f.splitter.stream_pos());
                    match damage {
                        gzip::Damage::Truncated => {
                            tracing::warn!(%path, offset, %error, "gzip archive ends early (still being written?); the lines so far are shipped, the rest once it grows (logged once per file)")
                        }
                        gzip::Damage::Corrupt => {
                            tracing::error!(%path, offset, %error, "gzip archive is corrupt; the lines before the damage are shipped, the rest is given up (logged once per file)")
                        }
                    }
                }
                f.next_poll = now + rt.config.backoff.max.0;
                close_stream = true;
                if damage == gzip::Damage::Truncated {
                    // Maybe still being written: tried again once its size changes.
                    f.set_archive(Archive::EndedEarly { size: f.stamp_by_path().map_or(0, |s| s.size) });
                    (read > 0, AfterPoll::Nothing)
                } else {
                    f.set_archive(Archive::Done);
                    (read > 0, AfterPoll::FinishLines)
                }
            }
            Err(e) => {
                Metrics::inc(&p.metrics.file_errors);
                tracing::warn!(path = %f.path.display(), error = %e, "read failed; closing the file, will retry");
                f.next_poll = now + rt.config.backoff.max.0;
                self.close_file(key);
                return false;
            }
        };
        if close_stream {
            self.close_file(key);
        }
        match after {
            AfterPoll::Nothing => {}
            AfterPoll::FinishLines => self.finish_lines(key),
            AfterPoll::Restart { size } => self.restart_from_zero(key, Restart::Truncated, size),
        }
        data
    }

    /// Closes a tracked file's descriptor; it stays tracked. The fingerprint taken at close goes
    /// to the registry too, so a restart checks the file against as many bytes as a reopen does.
    fn close_file(&mut self, key: FileKey) {
        let f = self.files.get_mut(&key).expect("closed file exists");
        if let (Some(fp), Some(slot)) = (f.close(), f.slot) {
            self.p.tracker.update_file(slot, |s| s.fingerprint = fp);
        }
        self.note_closed(key.0);
    }

    /// A file shrank below the read position (copytruncate) or was replaced under its inode:
    /// what was read of it is shipped, and it is read again from 0 under a new slot.
    fn restart_from_zero(&mut self, key: FileKey, why: Restart, size: u64) {
        // What the file held past the last whole line read may still be in its rotated copy;
        // then its partial last line is read again, whole, from the copy.
        let f = self.files.get_mut(&key).expect("restarted file exists");
        // All the first bytes read, not only those fingerprinted at the last housekeeping.
        f.refresh_fingerprint();
        let (path, id, fingerprint, offset) = (f.path.clone(), f.id, f.fingerprint, f.splitter.line_start());
        let copied = !f.is_gzip() && self.read_copy(key.0, &path, Lost::Truncated(id), fingerprint, offset);
        self.flush_lines(key, !copied);
        let Reader { p, files, .. } = self;
        let f = files.get_mut(&key).expect("restarted file exists");
        let (path, offset) = (f.path.display(), f.splitter.stream_pos());
        match why {
            Restart::Truncated => {
                tracing::warn!(%path, offset, size, "file truncated (copytruncate?); reading it again from 0");
                Metrics::inc(&p.metrics.files_truncated);
            }
            Restart::Replaced => {
                tracing::info!(%path, offset, size, "same inode, other content (inode reused by a new file, or the file rewritten); reading it from 0");
                Metrics::inc(&p.metrics.files_inode_reused);
            }
        }
        if let Some(old) = f.slot {
            p.tracker.supersede(old, f.sent_upto);
        }
        let rt = &p.inputs[f.input];
        let file = SlotFile {
            input: rt.config.id.clone(),
            path: f.path.clone(),
            id: f.id,
            // Nothing read yet: the empty prefix, which every file starts with.
            fingerprint: Fingerprint::of_content(&[]),
        };
        match p.tracker.open(file, 0, Some(p.connectors[f.input].latency.clone())) {
            Some(slot) => f.restart_from_zero(slot),
            None => tracing::error!(path = %f.path.display(), "too many files tracked at once"),
        }
        f.next_poll = Instant::now();
    }

    /// Opens a due file that is closed, if it may have new data. Returns whether it is open now.
    fn ensure_open(&mut self, key: FileKey) -> bool {
        let f = self.files.get_mut(&key).expect("due file exists");
        if f.is_open() {
            return true;
        }
        let max_backoff = self.p.inputs[f.input].config.backoff.max.0;
        let changed = f.stamp_by_path().is_some_and(|s| f.may_have_changed(&s));
        if !changed {
            f.next_poll = Instant::now() + max_backoff;
            return false;
        }
        if !self.make_room(key.0) || (self.files[&key].slot.is_none() && !self.reattach(key)) {
            self.files.get_mut(&key).expect("exists").next_poll = Instant::now() + max_backoff;
            return false;
        }
        let f = self.files.get_mut(&key).expect("due file exists");
        let reopened = f.reopen();
        match reopened {
            Ok(Reopened::Same | Reopened::Replaced { .. }) => {
                if let Kind::Gzip(Archive::EndedEarly { .. }) = f.kind {
                    f.set_archive(Archive::Reading);
                }
                self.note_opened(key.0);
                if let Ok(Reopened::Replaced { size }) = reopened {
                    self.restart_from_zero(key, Restart::Replaced, size);
                }
                true
            }
            Ok(Reopened::NotThere) => {
                f.next_poll = Instant::now() + max_backoff;
                false
            }
            Err(e) => {
                Metrics::inc(&self.p.metrics.file_errors);
                tracing::warn!(path = %f.path.display(), error = %e, "cannot reopen file; will retry");
                f.next_poll = Instant::now() + max_backoff;
                false
            }
        }
    }

    /// A file that will not be read further: ship its partial last line (it can no longer be
    /// completed) and its pending multiline event.
    fn finish_lines(&mut self, key: FileKey) {
        self.flush_lines(key, true);
    }

    /// [`Reader::finish_lines`], with its partial last line shipped only if `partial` (it is not
    /// when a rotated copy of the file will give it whole).
    fn flush_lines(&mut self, key: FileKey, partial: bool) {
        // A detached file has no slot to account for what it ships: it gets one back first.
        if self.files[&key].slot.is_none() && !self.reattach(key) {
            return;
        }
        let Reader { p, files, batch, scratch, .. } = self;
        let f = files.get_mut(&key).expect("finished file exists");
        let metrics = &p.metrics;
        let (partial, pending) = with_emitter(p, batch, f, |rt, f, ctx, emit| {
            let state = &mut f.state;
            let partial = partial && f.splitter.finish(|line| rt.on_line(&line, state, ctx, metrics, scratch, emit));
            (partial, rt.flush_pending(&mut f.state, true, ctx, metrics, scratch, emit))
        });
        if partial {
            tracing::info!(path = %f.path.display(), "shipped the last line of a finished file, which had no newline");
        }
        if partial || pending {
            self.flush_batch();
        }
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            push(&self.p, std::mem::take(&mut self.batch));
        }
    }

    /// Multiline events that waited `timeout` for another line are shipped.
    fn flush_due_multiline(&mut self) {
        let Reader { p, files, batch, scratch, .. } = self;
        let metrics = &p.metrics;
        let mut any = false;
        for f in files.values_mut().filter(|f| f.state.is_pending()) {
            any |= with_emitter(p, batch, f, |rt, f, ctx, emit| {
                rt.flush_pending(&mut f.state, false, ctx, metrics, scratch, emit)
            });
        }
        if any {
            self.flush_batch();
        }
    }
}

/// Runs `body` with what turning a file's lines into events takes: its input's recipe, its
/// context (path, timestamp), and an emitter into the batch that records in `sent_upto` how far
/// the file was handed on. The one place a file's events leave for the batch.
fn with_emitter<R>(
    p: &ReaderParts,
    batch: &mut Batch,
    f: &mut TailFile,
    body: impl FnOnce(&InputRt, &mut TailFile, &FileCtx<'_>, &mut dyn FnMut(Event)) -> R,
) -> R {
    let timestamp_ms = unix_millis(SystemTime::now());
    let timestamp = rfc3339_from_millis(timestamp_ms);
    let path = f.path_str.clone();
    // Reading and flushing reattach a detached file first (`ensure_open`, `flush_lines`).
    let slot = f.slot.expect("a file read or flushed holds a slot");
    let ctx = FileCtx { slot, path: &path, timestamp: &timestamp, timestamp_ms, now: Instant::now() };
    let mut sent = f.sent_upto;
    let mut events = 0;
    let out = body(&p.inputs[f.input], f, &ctx, &mut |ev| {
        events += 1;
        emit_into(batch, p, &mut sent, ev)
    });
    f.sent_upto = sent;
    Metrics::add(&p.connectors[f.input].events, events);
    out
}

/// Counts bytes read from a file of `input`, for the process and for the input.
fn note_read(p: &ReaderParts, input: usize, n: usize) {
    Metrics::add(&p.metrics.bytes_read, n as u64);
    Metrics::add(&p.connectors[input].bytes, n as u64);
}

/// Appends an event to the batch (noting how far the file was handed on) and hands the batch to
/// the queue once full.
fn emit_into(batch: &mut Batch, p: &ReaderParts, sent_upto: &mut u64, ev: Event) {
    *sent_upto = ev.end_offset;
    // A run of skipped lines of one file is one marker: its end moves on. It still goes through
    // the queue, in order, because the output registers every event's end in queue order and a
    // file's offset may only pass a skipped line once everything before it is done.
    if let Some(last) = batch.events.last_mut().filter(|l| !ev.deliver && !l.deliver && l.slot == ev.slot) {
        last.end_offset = ev.end_offset;
        return;
    }
    batch.push(ev);
    if batch.bytes >= BATCH_BYTES || batch.events.len() >= BATCH_EVENTS {
        push(p, std::mem::take(batch));
    }
}

/// Hands a batch to the queue, blocking while it is full; gives up only when stopping. The lines
/// of a batch given up are not acknowledged and are read again after restart; the queue is then
/// closed so that no later batch overtakes them (which would be sent twice).
fn push(p: &ReaderParts, batch: Batch) {
    // Waiting for room is being held back, not stuck: the heartbeat goes on.
    let give_up = || {
        p.heartbeat.beat();
        p.stop.is_stopped()
    };
    if p.queue.push(batch, give_up).is_err() {
        tracing::debug!("stopping: a batch that did not fit in the queue will be read again after restart");
        p.queue.close();
    }
}
