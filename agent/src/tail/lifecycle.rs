//! The lifecycle decisions of the reader: where a file seen for the first time starts, and when
//! a tracked file is finished, detached (`clean_inactive`) or forgotten (`clean_removed`).
//!
//! Owns no state of its own: these are the [`Reader`]'s methods that decide a file's fate, kept
//! apart from the hot read path in `tail/mod.rs`. Invariants are those of the reader: a registry
//! entry is only forgotten after its file's slot drained, and a start offset is only trusted when
//! the file's fingerprint still matches.

use super::{copy, gzip, Draining, FileKey, Reader, FINGERPRINTS_KEPT};
use crate::ack::SlotFile;
use crate::config::StartPosition;
use crate::discover::Found;
use crate::fingerprint::{FileId, Fingerprint};
use crate::metrics::Metrics;
use crate::registry::{Entry, Key, Recovery};
use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

impl Reader {
    /// `clean_removed` at start-up: registry entries of this input whose file the first scan did
    /// not find are forgotten.
    pub(super) fn clean_unfound_entries(&mut self, input: usize, present: &HashSet<FileId>) {
        // A file gone from its name while the agent was stopped (renamed beside it, or copied
        // and deleted): what it held past its offset is read from there.
        let id = self.p.inputs[input].config.id.clone();
        let unfound: Vec<Entry> =
            self.p.known.iter().filter(|(k, _)| k.0 == id && !present.contains(&k.1)).map(|(_, e)| e.clone()).collect();
        // One listing per directory for all of them (there may be thousands).
        let mut listings = copy::Listings::default();
        for e in unfound {
            self.read_copy_in(input, &e.path, Lost::Unfound, e.fingerprint(), e.offset, &mut listings);
        }
        let cfg = &self.p.inputs[input].config;
        if !cfg.clean_removed {
            return;
        }
        let unfound: Vec<Key> =
            self.p.known.keys().filter(|k| k.0 == cfg.id && !present.contains(&k.1)).cloned().collect();
        for key in unfound {
            self.p.known.remove(&key);
            tracing::debug!(input = %key.0, ino = key.1.ino, "registry entry of a file no longer found removed (clean_removed)");
            self.p.tracker.forget(key);
            Metrics::inc(&self.p.metrics.registry_entries_cleaned);
        }
    }

    /// Where to start reading a file seen for the first time in this run.
    pub(super) fn start_offset(&mut self, input: usize, s: &Seen<'_>, initial: bool) -> u64 {
        let rt = &self.p.inputs[input];
        let m = Arc::clone(&self.p.metrics);
        let (path, size) = (&s.fd.path, s.size);
        if let Some(e) = self.p.known.remove(&(rt.config.id.clone(), s.fd.id)) {
            let same = match s.content {
                Some(c) => e.fingerprint().matches_content(c),
                None => e.fingerprint().matches(s.file, size).unwrap_or(false),
            };
            if !same {
                if s.content.is_none() {
                    self.read_rest_of(input, &e, s);
                }
                if s.content.is_none() && (size < e.offset || e.fp_len > size) {
                    tracing::info!(path = %path.display(), offset = e.offset, size, "file shrank while the agent was stopped; reading it from 0");
                    Metrics::inc(&m.files_truncated);
                } else {
                    tracing::info!(path = %path.display(), "inode reused by a new file (fingerprint differs); reading it from 0");
                    Metrics::inc(&m.files_inode_reused);
                }
                return 0;
            }
            // A gzip archive's offsets are uncompressed ones: its size says nothing about them.
            if s.content.is_none() && size < e.offset {
                self.read_rest_of(input, &e, s);
                tracing::info!(path = %path.display(), offset = e.offset, size, "file truncated; reading it from 0");
                Metrics::inc(&m.files_truncated);
                return 0;
            }
            return e.offset;
        }
        if s.content.is_some() {
            if let Some(offset) = self.read_by_fingerprint(input, s.fingerprint) {
                tracing::info!(path = %path.display(), offset, "gzip archive of a file already read; starting where that file was read to");
                Metrics::inc(&m.files_matched_by_fingerprint);
                return offset;
            }
        }
        let ignore_older = rt.config.ignore_older;
        let age = s.modified.and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or_default();
        if !ignore_older.is_off() && age > ignore_older.0 {
            tracing::debug!(path = %path.display(), age = ?age, "file older than ignore_older; reading only what is written from now on");
            Metrics::inc(&m.files_ignored_older);
            return self.end_of(input, s);
        }
        match (self.p.recovered, rt.config.start_position, initial) {
            (Some(Recovery::End), _, _) | (None, StartPosition::End, true) => self.end_of(input, s),
            _ => 0,
        }
    }

    /// At start-up, the file the registry entry `e` was read from is no longer what `s` found
    /// under its device and inode: the rest of it is looked for beside its old name (another
    /// file was given its inode) or beside its name (truncated, or replaced in place).
    fn read_rest_of(&mut self, input: usize, e: &Entry, s: &Seen<'_>) {
        if e.path != s.fd.path && self.read_copy(input, &e.path, Lost::Unfound, e.fingerprint(), e.offset) {
            return;
        }
        self.read_copy(input, &s.fd.path, Lost::Truncated(s.fd.id), e.fingerprint(), e.offset);
    }

    /// A file of `input` at `path` (fingerprint `fp`) was truncated or replaced after it was
    /// read to `offset`, or is no longer found at start-up ([`Lost`]): if its rotated copy is
    /// beside it ([`copy::find`]), the copy is tracked from `offset`, read to its end and
    /// finished, so the lines the file held past `offset` are shipped from the copy, and the
    /// copies of the generations rotated since, from their start.
    /// Returns whether a copy covers the rest of the file (also when the copy is a file this
    /// input reads anyway).
    pub(super) fn read_copy(&mut self, input: usize, path: &Path, lost: Lost, fp: Fingerprint, offset: u64) -> bool {
        self.read_copy_in(input, path, lost, fp, offset, &mut copy::Listings::default())
    }

    /// [`Reader::read_copy`] with directory listings shared by a pass of lookups.
    fn read_copy_in(
        &mut self,
        input: usize,
        path: &Path,
        lost: Lost,
        fp: Fingerprint,
        offset: u64,
        listings: &mut copy::Listings,
    ) -> bool {
        let was = match lost {
            Lost::Truncated(id) => Some(id),
            Lost::Unfound => None,
        };
        let Some(copy::Copies { rest, later }) = copy::find(path, was, fp, offset, listings) else {
            return false;
        };
        let covered = self.track_copy(input, path, rest, offset, lost);
        // Newer rotated copies hold what the file held after: read whole (a newer one that was
        // read already, under the file's name, comes twice rather than never).
        for c in later {
            self.track_copy(input, path, c, 0, lost);
        }
        covered
    }

    /// Tracks the rotated copy `c` of `path` from `offset` (see [`Reader::read_copy`]); returns
    /// whether it is read (by this, or as a file the input's globs find).
    fn track_copy(&mut self, input: usize, path: &Path, c: copy::Copy, offset: u64, lost: Lost) -> bool {
        let key = (input, c.id);
        let (copy, bytes) = (c.path.display().to_string(), c.size - offset.min(c.size));
        if let Some(tracked) = self.files.get(&key) {
            if tracked.is_open() || tracked.path == c.path {
                tracing::info!(path = %path.display(), %copy, "the rest of this file is in a file the input reads anyway");
                return true;
            }
            // A closed file under another name whose inode the copy was given: it was deleted
            // (and its registry entry goes with the copy's).
            self.finish_gone(key, false);
        }
        // A copy tracked in a run before this one: read on from where that run got to.
        // (An entry of another file that had the copy's inode stays, to be looked after itself.)
        let known = (self.p.inputs[input].config.id.clone(), c.id);
        let start = match self.p.known.get(&known) {
            Some(e) if e.fingerprint().matches(&c.file, c.size).unwrap_or(false) => {
                let start = e.offset.clamp(offset, c.size);
                self.p.known.remove(&known);
                start
            }
            _ => offset,
        };
        // Content read in this run under another name (a copy already read, met again among the
        // newer ones when their change times tie) starts where that reading got.
        let start = self.read_by_fingerprint(input, c.fingerprint).map_or(start, |read| start.max(read.min(c.size)));
        if self.retired.contains(&key) || !self.make_room(input) {
            tracing::warn!(path = %path.display(), %copy, "file truncated; its rotated copy cannot be opened now (file limits) and is not read");
            return false;
        }
        let what = SlotFile {
            input: self.p.inputs[input].config.id.clone(),
            path: c.path,
            id: c.id,
            fingerprint: c.fingerprint,
        };
        let Some(f) = self.track(input, what, false, start, Some(c.file)) else {
            return false;
        };
        // Not found by the globs (or not yet): read to its end, then finished like a file
        // renamed away; found by them, it is a file of the input like any other.
        f.gone = true;
        f.copy = true;
        match lost {
            Lost::Truncated(_) => {
                tracing::warn!(path = %path.display(), %copy, offset = start, bytes, "file truncated (copytruncate); reading from its rotated copy what was not read of it")
            }
            Lost::Unfound => {
                tracing::info!(path = %path.display(), %copy, offset = start, bytes, "file gone from its path; reading what was not read of it from its rotated name")
            }
        }
        Metrics::inc(&self.p.metrics.files_copy_read);
        true
    }

    /// The offset of a file's current end: its size, or a gzip archive's uncompressed length.
    pub(super) fn end_of(&self, input: usize, s: &Seen<'_>) -> u64 {
        if s.content.is_none() {
            let unit = self.p.inputs[input].encoding.newline();
            // A UTF-16 file is only ever entered at a code unit boundary.
            return if unit == crate::decode::encoding::Newline::Byte { s.size } else { s.size & !1 };
        }
        gzip::uncompressed_len(s.file).unwrap_or_else(|e| {
            tracing::warn!(path = %s.fd.path.display(), error = %e, "cannot find the end of a damaged gzip archive; reading what it has");
            0
        })
    }

    /// How far a file with this fingerprint was read, by a live file or a finished one.
    pub(super) fn read_by_fingerprint(&self, input: usize, fp: Fingerprint) -> Option<u64> {
        let live = self
            .files
            .iter()
            .filter(|((i, _), f)| *i == input && !f.is_gzip() && f.fingerprint == fp)
            .map(|(_, f)| f.sent_upto)
            .max();
        live.max(self.read_by_fingerprint.get(&(input, fp)).copied())
    }

    /// Stops tracking a file: ships what it has, closes it, and frees its slot once drained
    /// (then forgets its registry entry if `forget`).
    pub(super) fn finish_file(&mut self, key: FileKey, forget: bool) {
        self.finish_lines(key);
        let mut f = self.files.remove(&key).expect("finished file exists");
        if !f.is_gzip() {
            f.refresh_fingerprint();
            let at = self.read_by_fingerprint.entry((key.0, f.fingerprint)).or_insert(0);
            *at = f.sent_upto.max(*at);
            if self.read_by_fingerprint.len() > FINGERPRINTS_KEPT {
                // Bounded memory: forget the least far-read file (rarely matters; an archive of
                // it would be shipped again, never lost).
                let smallest = self.read_by_fingerprint.iter().min_by_key(|(_, o)| **o).map(|(k, _)| *k);
                if let Some(k) = smallest {
                    self.read_by_fingerprint.remove(&k);
                }
            }
        }
        if f.is_open() {
            f.close();
            self.note_closed(key.0);
        }
        if self.by_path.get(&f.path) == Some(&key) {
            self.by_path.remove(&f.path);
        }
        tracing::info!(path = %f.path.display(), offset = f.splitter.line_start(), "finished reading file");
        // Without a slot, it was handed over when the file was detached (and no new one could be had).
        let Some(slot) = f.slot else { return };
        let forget = forget.then(|| (self.p.inputs[key.0].config.id.clone(), key.1));
        self.draining.push(Draining { slot, sent: f.sent_upto, forget });
    }

    /// [`Reader::finish_file`] for a file no longer at its path. A closed one could not be read
    /// to its end: renamed beside its old name (or copied and deleted), the rest of it is read
    /// from there ([`Reader::read_copy`]).
    pub(super) fn finish_gone(&mut self, key: FileKey, forget: bool) {
        let f = &self.files[&key];
        let rest = (!f.is_open() && !f.is_gzip()).then(|| (f.path.clone(), f.fingerprint, f.splitter.line_start()));
        self.finish_file(key, forget);
        if let Some((path, fp, offset)) = rest {
            self.read_copy(key.0, &path, Lost::Unfound, fp, offset);
        }
    }

    /// `clean_inactive`: the file's registry entry goes (once its slot drained) while the reader
    /// keeps the file in mind, closed and without a slot. Should it grow, it gets a new slot at
    /// the offset it was read to ([`Reader::reattach`]); should the agent restart first, the file
    /// is new to it and, unchanged for longer than `ignore_older`, read from its end.
    pub(super) fn detach(&mut self, key: FileKey) {
        let f = self.files.get_mut(&key).expect("cleaned file exists");
        tracing::debug!(path = %f.path.display(), "nothing read for clean_inactive: forgetting the file's registry entry");
        let was_open = f.is_open();
        f.close();
        if let Some(slot) = f.slot.take() {
            let forget = Some((self.p.inputs[key.0].config.id.clone(), key.1));
            self.draining.push(Draining { slot, sent: f.sent_upto, forget });
        }
        if was_open {
            self.note_closed(key.0);
        }
    }

    /// A detached file grew: it is tracked again from where it was read to.
    pub(super) fn reattach(&mut self, key: FileKey) -> bool {
        let f = self.files.get_mut(&key).expect("detached file exists");
        let rt = &self.p.inputs[f.input];
        let file = SlotFile { input: rt.config.id.clone(), path: f.path.clone(), id: f.id, fingerprint: f.fingerprint };
        match self.p.tracker.open(file, f.splitter.line_start(), Some(self.p.connectors[f.input].latency.clone())) {
            Some(slot) => {
                tracing::debug!(path = %f.path.display(), offset = f.splitter.line_start(), "forgotten file grew; tracking it again");
                f.slot = Some(slot);
                true
            }
            None => false,
        }
    }

    /// Closes idle and finished files, flushes due multiline events, forgets inactive files
    /// (`clean_inactive`), frees drained slots, grows fingerprints.
    pub(super) fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        self.flush_due_multiline();
        let mut finished = Vec::new();
        let mut cleaned = Vec::new();
        let mut closed = Vec::new();
        for (key, f) in self.files.iter_mut() {
            if let (Some(fp), Some(slot)) = (f.refresh_fingerprint(), f.slot) {
                self.p.tracker.update_file(slot, |s| s.fingerprint = fp);
            }
            let cfg = &self.p.inputs[f.input].config;
            let quiet = f.last_data.elapsed();
            // At its end as of its last read, and still: a file written (or rewritten) since is read
            // before it is closed (or finished, when gone), even if nothing was read for `inactive`.
            let idle = f.at_eof
                && (cfg.close.on_eof || f.copy || quiet >= cfg.close.on_state_change.inactive.0)
                && !f.changed_since_read();
            if f.gone && (!f.is_open() || idle || (f.at_eof && f.is_deleted())) {
                finished.push(*key);
            } else if !cfg.clean_inactive.is_off()
                && f.slot.is_some()
                && quiet >= cfg.clean_inactive.0
                && (f.at_eof || !f.is_open() || f.is_complete())
                && !f.state.is_pending()
            {
                cleaned.push(*key);
            } else if f.is_open() && idle {
                tracing::debug!(path = %f.path.display(), "closing inactive file");
                closed.push(*key);
            }
        }
        for key in closed {
            self.close_file(key);
        }
        for key in finished {
            self.finish_gone(key, self.p.inputs[key.0].config.clean_removed);
        }
        for key in cleaned {
            self.detach(key);
        }
        let (tracker, metrics) = (&self.p.tracker, &self.p.metrics);
        self.draining.retain_mut(|d| {
            let done = tracker.acked(d.slot).is_some_and(|(acked, idle)| idle && acked >= d.sent);
            if !(done && tracker.close_if_drained(d.slot)) {
                return true;
            }
            if let Some(key) = d.forget.take() {
                tracker.forget(key);
                Metrics::inc(&metrics.registry_entries_cleaned);
            }
            false
        });
        tracker.reap_superseded();
    }
}

/// What became of a file whose rest [`Reader::read_copy`] looks for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lost {
    /// Truncated or replaced under its device and inode, which it keeps: its copy is another
    /// file, and the copies of the generations rotated since follow it.
    Truncated(FileId),
    /// Not found at start-up, or gone from the globs while closed: renamed beside its old name
    /// (its own inode), or copied and deleted.
    Unfound,
}

/// What [`Reader::start_offset`] knows of a file seen for the first time.
pub(super) struct Seen<'a> {
    pub fd: &'a Found,
    pub file: &'a File,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// The uncompressed start of a gzip archive (`None` for a plain file).
    pub content: Option<&'a [u8]>,
    pub fingerprint: Fingerprint,
}
