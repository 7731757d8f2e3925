//! The reader: one thread that owns every tailed file and turns new lines into events.
//!
//! Owns the set of [`TailFile`]s (keyed by input and device+inode) and the batch being filled.
//! It reconciles discovery scans (new files, renames, files gone), polls files that are due, and
//! pushes full batches into the byte-bounded [`Queue`], blocking when it is full. Invariants:
//! - a file's start offset is its registry offset only when its fingerprint still matches;
//!   otherwise (inode reuse) it is read from 0, and a shrunken file (copytruncate) too;
//! - a file gone from its path is read to its end before it is closed (deleted files at once,
//!   renamed ones once inactive, as the writer may still append to them);
//! - a file's ack slot is freed only once every event it sent is acknowledged, so a slot number
//!   is never reused while its events are in flight;
//! - at most `queue.max_open_files` descriptors are open: idle files are closed first and
//!   reopened when they grow.

pub mod file;
pub mod input;
pub mod lines;

use crate::ack::{AckTracker, SlotFile};
use crate::config::StartPosition;
use crate::discover::{DiscoverMsg, DiscoverRx, Found};
use crate::event::rfc3339_millis;
use crate::fingerprint::{FileId, Fingerprint};
use crate::metrics::Metrics;
use crate::queue::{Batch, Queue};
use crate::registry::{Entry, Key, Recovery};
use file::{Polled, TailFile};
use input::{FileCtx, InputRt};
use lines::LineSplitter;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A batch is handed to the queue once it holds this many bytes or events.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_EVENTS: usize = 4096;
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);

type FileKey = (usize, FileId);

/// Everything the reader is handed at start-up.
pub struct ReaderParts {
    pub inputs: Vec<InputRt>,
    pub known: HashMap<Key, Entry>,
    pub recovered: Option<Recovery>,
    pub tracker: Arc<AckTracker>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub rx: DiscoverRx,
    pub stop: Arc<AtomicBool>,
    pub max_open_files: usize,
}

pub struct Reader {
    p: ReaderParts,
    files: HashMap<FileKey, TailFile>,
    by_path: HashMap<PathBuf, FileKey>,
    open_files: usize,
    batch: Batch,
    buf: Vec<u8>,
    /// Encoding buffer reused for every event.
    scratch: Vec<u8>,
    /// Slots of closed files, freed once their last sent offset is acknowledged.
    draining: Vec<(u32, u64)>,
    /// Paths that failed to open, so each is logged once until it works.
    failing: HashSet<PathBuf>,
    last_housekeeping: Instant,
}

impl Reader {
    pub fn new(parts: ReaderParts) -> Reader {
        Reader {
            p: parts,
            files: HashMap::new(),
            by_path: HashMap::new(),
            open_files: 0,
            batch: Batch::default(),
            buf: vec![0; 64 * 1024],
            scratch: Vec::with_capacity(4096),
            draining: Vec::new(),
            failing: HashSet::new(),
            last_housekeeping: Instant::now(),
        }
    }

    /// Reads until the stop flag is set, then hands over the last batch.
    pub fn run(mut self) {
        let mut busy = false;
        while !self.p.stop.load(Ordering::Relaxed) {
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
        self.flush_batch();
        tracing::debug!(files = self.files.len(), "reader stopped");
    }

    fn idle_wait(&self) -> Duration {
        let now = Instant::now();
        let next = self.files.values().map(|f| f.next_poll).min().unwrap_or(now + Duration::from_secs(1));
        next.saturating_duration_since(now).min(HOUSEKEEPING_EVERY)
    }

    fn receive(&mut self, wait: Duration) {
        let first = match self.p.rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return,
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
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
        let mut present = HashSet::new();
        for fd in found {
            present.insert(fd.id);
            let key = (input, fd.id);
            match self.files.get_mut(&key) {
                Some(f) => {
                    if f.path != fd.path {
                        tracing::info!(from = %f.path.display(), to = %fd.path.display(), "file renamed; still reading it");
                        self.by_path.remove(&f.path);
                        f.set_path(fd.path.clone());
                        self.by_path.insert(fd.path, key);
                        let path = f.path.clone();
                        self.p.tracker.update_file(f.slot, |s| s.path = path);
                    }
                    f.gone = false;
                    if fd.size != f.splitter.stream_pos() {
                        f.next_poll = Instant::now();
                    }
                }
                None => self.add_file(input, fd, initial),
            }
        }
        for (key, f) in self.files.iter_mut() {
            if key.0 == input && !present.contains(&key.1) && !f.gone {
                tracing::info!(path = %f.path.display(), "file renamed away or removed; reading it to its end");
                f.gone = true;
                f.next_poll = Instant::now();
            }
        }
    }

    fn add_file(&mut self, input: usize, fd: Found, initial: bool) {
        let file = match File::open(&fd.path) {
            Ok(f) => f,
            Err(e) => {
                Metrics::inc(&self.p.metrics.file_errors);
                if self.failing.insert(fd.path.clone()) {
                    tracing::warn!(path = %fd.path.display(), error = %e, "cannot open file; will retry at every scan (logged once)");
                }
                return;
            }
        };
        self.failing.remove(&fd.path);
        let size = file.metadata().map(|m| m.len()).unwrap_or(fd.size);
        let start = self.start_offset(input, &fd, &file, size, initial);
        let fingerprint = Fingerprint::read(&file, size).unwrap_or_default();
        let rt = &self.p.inputs[input];
        let slot_file = SlotFile { input: rt.config.id.clone(), path: fd.path.clone(), id: fd.id, fingerprint };
        let Some(slot) = self.p.tracker.open(slot_file, start) else {
            tracing::error!(path = %fd.path.display(), "too many files tracked at once; not reading this one");
            return;
        };
        let splitter = LineSplitter::new(start, rt.config.max_bytes.0 as usize, rt.config.line_terminator);
        let mut f = TailFile::new(input, slot, fd.path.clone(), fd.id, fingerprint, splitter);
        tracing::debug!(path = %fd.path.display(), offset = start, "tracking file");
        if self.make_room() {
            f.adopt(file);
            self.open_files += 1;
            Metrics::inc(&self.p.metrics.files_opened);
        }
        self.by_path.insert(fd.path, (input, fd.id));
        self.files.insert((input, fd.id), f);
    }

    /// Where to start reading a file seen for the first time in this run.
    fn start_offset(&mut self, input: usize, fd: &Found, file: &File, size: u64, initial: bool) -> u64 {
        let rt = &self.p.inputs[input];
        let m = &self.p.metrics;
        if let Some(e) = self.p.known.remove(&(rt.config.id.clone(), fd.id)) {
            if !e.fingerprint().matches(file, size).unwrap_or(false) {
                if size < e.offset || e.fp_len > size {
                    tracing::info!(path = %fd.path.display(), offset = e.offset, size, "file shrank while the agent was stopped; reading it from 0");
                    Metrics::inc(&m.files_truncated);
                } else {
                    tracing::info!(path = %fd.path.display(), "inode reused by a new file (fingerprint differs); reading it from 0");
                    Metrics::inc(&m.files_inode_reused);
                }
                return 0;
            }
            if size < e.offset {
                tracing::info!(path = %fd.path.display(), offset = e.offset, size, "file truncated; reading it from 0");
                Metrics::inc(&m.files_truncated);
                return 0;
            }
            return e.offset;
        }
        match (self.p.recovered, rt.config.start_position, initial) {
            (Some(Recovery::End), _, _) | (None, StartPosition::End, true) => size,
            _ => 0,
        }
    }

    /// Ensures a descriptor can be opened, closing the longest-idle file at its end if needed.
    fn make_room(&mut self) -> bool {
        if self.open_files < self.p.max_open_files {
            return true;
        }
        let victim = self
            .files
            .iter()
            .filter(|(_, f)| f.is_open() && f.at_eof)
            .min_by_key(|(_, f)| f.last_data)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.files.get_mut(&k).expect("victim exists").close();
                self.open_files -= 1;
                Metrics::inc(&self.p.metrics.files_closed);
                true
            }
            None => false,
        }
    }

    /// Polls every file that is due. Returns whether any data was read.
    fn read_round(&mut self) -> bool {
        let now = Instant::now();
        let due: Vec<FileKey> = self.files.iter().filter(|(_, f)| f.next_poll <= now).map(|(k, _)| *k).collect();
        let mut any = false;
        for key in due {
            if self.p.stop.load(Ordering::Relaxed) {
                break;
            }
            any |= self.read_file(key);
        }
        any
    }

    fn read_file(&mut self, key: FileKey) -> bool {
        if !self.ensure_open(key) {
            return false;
        }
        let timestamp = rfc3339_millis(SystemTime::now());
        let Reader { p, files, batch, buf, scratch, .. } = self;
        let f = files.get_mut(&key).expect("due file exists");
        let rt = &p.inputs[f.input];
        let (slot, path) = (f.slot, f.path_str.clone());
        let mut sent_upto = f.sent_upto;
        let polled = f.poll(buf, |line, warned| {
            let mut ctx = FileCtx { slot, path: &path, timestamp: &timestamp, warned };
            batch.push(rt.event(line, &mut ctx, &p.metrics, scratch));
            sent_upto = line.end_offset;
            if batch.bytes >= BATCH_BYTES || batch.events.len() >= BATCH_EVENTS {
                push(&p.queue, &p.stop, std::mem::take(batch));
            }
        });
        f.sent_upto = sent_upto;
        let now = Instant::now();
        match polled {
            Ok(Polled::Data(n)) => {
                Metrics::add(&p.metrics.bytes_read, n as u64);
                f.last_data = now;
                f.backoff = Duration::ZERO;
                f.next_poll = now;
                true
            }
            Ok(Polled::Eof) => {
                let cfg = &rt.config.backoff;
                f.backoff = (f.backoff * 2).clamp(cfg.init.0, cfg.max.0);
                f.next_poll = now + f.backoff;
                false
            }
            Ok(Polled::Truncated { size }) => {
                tracing::warn!(path = %f.path.display(), offset = f.splitter.stream_pos(), size, "file truncated (copytruncate?); reading it again from 0");
                Metrics::inc(&p.metrics.files_truncated);
                p.tracker.supersede(f.slot);
                let file = SlotFile {
                    input: rt.config.id.clone(),
                    path: f.path.clone(),
                    id: f.id,
                    fingerprint: Fingerprint::default(),
                };
                match p.tracker.open(file, 0) {
                    Some(slot) => f.restart_from_zero(slot),
                    None => tracing::error!(path = %f.path.display(), "too many files tracked at once"),
                }
                f.next_poll = now;
                true
            }
            Err(e) => {
                Metrics::inc(&p.metrics.file_errors);
                tracing::warn!(path = %f.path.display(), error = %e, "read failed; closing the file, will retry");
                f.close();
                self.open_files -= 1;
                f.next_poll = now + rt.config.backoff.max.0;
                false
            }
        }
    }

    /// Opens a due file that is closed, if it grew. Returns whether it is open now.
    fn ensure_open(&mut self, key: FileKey) -> bool {
        let f = self.files.get_mut(&key).expect("due file exists");
        if f.is_open() {
            return true;
        }
        let max_backoff = self.p.inputs[f.input].config.backoff.max.0;
        let grown = f.size_by_path().is_some_and(|s| s != f.splitter.stream_pos());
        if !grown {
            f.next_poll = Instant::now() + max_backoff;
            return false;
        }
        if !self.make_room() {
            self.files.get_mut(&key).expect("exists").next_poll = Instant::now() + max_backoff;
            return false;
        }
        let f = self.files.get_mut(&key).expect("due file exists");
        match f.reopen() {
            Ok(true) => {
                self.open_files += 1;
                Metrics::inc(&self.p.metrics.files_opened);
                true
            }
            Ok(false) => {
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

    /// A file that is gone can no longer complete its last line: ship what there is.
    fn ship_partial_line(&mut self, key: FileKey) {
        let timestamp = rfc3339_millis(SystemTime::now());
        let Reader { p, files, batch, scratch, .. } = self;
        let f = files.get_mut(&key).expect("finished file exists");
        let rt = &p.inputs[f.input];
        let (slot, path) = (f.slot, f.path_str.clone());
        let mut end = None;
        f.splitter.finish(|line| {
            let mut ctx = FileCtx { slot, path: &path, timestamp: &timestamp, warned: &mut f.warned };
            batch.push(rt.event(&line, &mut ctx, &p.metrics, scratch));
            end = Some(line.end_offset);
        });
        if let Some(end) = end {
            tracing::info!(path = %f.path.display(), "shipped the last line of a finished file, which had no newline");
            f.sent_upto = end;
            self.flush_batch();
        }
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            push(&self.p.queue, &self.p.stop, std::mem::take(&mut self.batch));
        }
    }

    /// Closes idle and finished files, frees drained slots, grows fingerprints.
    fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        let mut finished = Vec::new();
        for (key, f) in self.files.iter_mut() {
            if let Some(fp) = f.refresh_fingerprint() {
                self.p.tracker.update_file(f.slot, |s| s.fingerprint = fp);
            }
            let inactive = self.p.inputs[f.input].config.close.on_state_change.inactive.0;
            let idle = f.last_data.elapsed() >= inactive && f.at_eof;
            if f.gone && (!f.is_open() || idle || (f.at_eof && f.is_deleted())) {
                finished.push(*key);
            } else if f.is_open() && idle {
                tracing::debug!(path = %f.path.display(), "closing inactive file");
                f.close();
                self.open_files -= 1;
                Metrics::inc(&self.p.metrics.files_closed);
            }
        }
        for key in finished {
            self.ship_partial_line(key);
            let mut f = self.files.remove(&key).expect("finished file exists");
            if f.is_open() {
                f.close();
                self.open_files -= 1;
                Metrics::inc(&self.p.metrics.files_closed);
            }
            if self.by_path.get(&f.path) == Some(&key) {
                self.by_path.remove(&f.path);
            }
            tracing::info!(path = %f.path.display(), offset = f.splitter.line_start(), "finished reading file that is gone");
            self.draining.push((f.slot, f.sent_upto));
        }
        let tracker = &self.p.tracker;
        self.draining.retain(|&(slot, sent)| {
            let done = tracker.acked(slot).is_some_and(|(acked, idle)| idle && acked >= sent);
            !(done && tracker.close_if_drained(slot))
        });
        tracker.reap_superseded();
    }
}

/// Hands a batch to the queue, blocking while it is full; gives up only when stopping. The lines
/// of a batch given up are not acknowledged and are read again after restart; the queue is then
/// closed so that no later batch overtakes them (which would be sent twice).
fn push(queue: &Queue, stop: &AtomicBool, batch: Batch) {
    if queue.push(batch, || stop.load(Ordering::Relaxed)).is_err() {
        tracing::debug!("stopping: a batch that did not fit in the queue will be read again after restart");
        queue.close();
    }
}
