//! The disk spool: events the output could not hand to Kafka, kept on local disk in arrival order
//! until Kafka acknowledges their replay.
//!
//! Owns the spool directory (format in [`mod@format`]): the segment files, the write head, the
//! replay read position and the acknowledged cursor. Only the output thread uses it. Invariants:
//! - sequence numbers increase by one per record, across segments and restarts;
//! - `cursor` only moves forward, and only to a sequence number Kafka acknowledged (every record
//!   below it was delivered); a restart replays from the cursor saved last, so a crash during
//!   replay re-sends at most what was acknowledged since that save (at-least-once);
//! - a segment is deleted only when every record in it is below the cursor, or by an explicit
//!   `when_full: drop_oldest` (counted by the caller);
//! - a record counts as kept only after [`Spool::sync`] (the caller marks its offsets done then);
//! - damage never stops the spool: a torn tail of the segment being written is cut off at open,
//!   damaged records elsewhere are skipped on replay and reported once.

pub mod format;

use crate::event::id::EventId;
use format::{Item, Scanner, SEGMENT_HEADER};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

const CURSOR_FILE: &str = "cursor";
const SEGMENT_EXT: &str = "seg";

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Appending would pass `max_size`; nothing was written.
    #[error("spool is full ({bytes} bytes held, max_size {max})")]
    Full { bytes: u64, max: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// One event to append.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub hash: Option<u32>,
    pub id: Option<EventId>,
    /// The record's timestamp (milliseconds since 1970).
    pub timestamp: Option<i64>,
    pub payload: &'a [u8],
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    len: u64,
}

/// What opening an existing spool found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Records waiting for replay.
    pub pending: u64,
    /// Bytes cut off the end of the last segment (a record torn by a crash mid-write).
    pub torn_bytes: u64,
    /// The cursor file was damaged; replay starts at the oldest record (duplicates, no loss).
    pub cursor_damaged: bool,
}

/// The replay read position: which segment is open and where.
struct ReadPos {
    segment: u64,
    scanner: Scanner,
}

pub struct Spool {
    dir: PathBuf,
    /// Oldest first; the last one is the segment appended to.
    segments: VecDeque<Segment>,
    /// Open for appending to the last segment; `None` until the first append after open or rotation.
    head: Option<File>,
    next_seq: u64,
    cursor: u64,
    cursor_on_disk: u64,
    bytes: u64,
    segment_size: u64,
    max_size: u64,
    scratch: Vec<u8>,
    unsynced: bool,
    /// Next sequence number replay wants.
    read_seq: u64,
    read: Option<ReadPos>,
    /// Furthest (segment, position) whose damage was reported, so a rewind does not count it twice.
    damage_reported: (u64, u64),
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path, segment_size: u64, max_size: u64) -> Result<(Spool, Opened), SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        let _ = fs::remove_file(crate::durable::tmp_path(&dir.join(CURSOR_FILE)));
        let mut segments = list_segments(dir)?;
        let mut opened = Opened::default();
        let mut next_seq = 0;
        if let Some(last) = segments.back_mut() {
            let (next, torn) = recover_tail(last)?;
            next_seq = next;
            opened.torn_bytes = torn;
        }
        let oldest = segments.front().map_or(next_seq, |s| s.first_seq);
        let cursor_path = dir.join(CURSOR_FILE);
        let cursor = match fs::read(&cursor_path) {
            Ok(b) => match format::decode_cursor(&b) {
                Some(c) => c,
                None => {
                    opened.cursor_damaged = true;
                    oldest
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => oldest,
            Err(e) => return Err(io_err(&cursor_path)(e)),
        };
        if segments.is_empty() {
            next_seq = cursor;
        }
        let cursor = cursor.clamp(oldest, next_seq);
        let bytes = segments.iter().map(|s| s.len).sum();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            segments,
            head: None,
            next_seq,
            cursor,
            cursor_on_disk: cursor,
            bytes,
            segment_size,
            max_size,
            scratch: Vec::new(),
            unsynced: false,
            read_seq: cursor,
            read: None,
            damage_reported: (0, 0),
        };
        spool.delete_acknowledged_segments()?;
        opened.pending = spool.pending();
        Ok((spool, opened))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records appended and not yet acknowledged (damaged ones included until skipped).
    pub fn pending(&self) -> u64 {
        self.next_seq - self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.cursor >= self.next_seq
    }

    /// Bytes of all segment files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Appends the longest prefix of `entries` that fits in `max_size` (not yet durable: call
    /// [`Spool::sync`]) and returns how many were written. `Full` when not even the first fits;
    /// an empty spool always takes at least one entry, so one event larger than the whole budget
    /// cannot wedge it.
    pub fn append(&mut self, entries: &[Entry<'_>]) -> Result<u64, SpoolError> {
        self.scratch.clear();
        let mut taken = 0u64;
        for e in entries {
            let before = self.scratch.len();
            format::encode(&mut self.scratch, self.next_seq + taken, e);
            let fits = self.bytes + self.scratch.len() as u64 <= self.max_size || (self.bytes == 0 && taken == 0);
            if !fits {
                self.scratch.truncate(before);
                break;
            }
            taken += 1;
        }
        if taken == 0 {
            return Err(SpoolError::Full { bytes: self.bytes, max: self.max_size });
        }
        let needed = self.scratch.len() as u64;
        let rotate = !matches!(self.segments.back(), Some(s) if s.len < self.segment_size);
        if rotate || self.head.is_none() {
            self.open_head(rotate)?;
        }
        let seg = self.segments.back_mut().expect("head segment exists");
        let head = self.head.as_mut().expect("head open");
        if let Err(e) = head.write_all(&self.scratch) {
            // Leave no partial record behind; if even that fails, the reader skips it by its CRC.
            let _ = head.set_len(seg.len);
            return Err(io_err(&seg.path)(e));
        }
        seg.len += needed;
        self.bytes += needed;
        self.next_seq += taken;
        self.unsynced = true;
        Ok(taken)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let (true, Some(head), Some(seg)) = (self.unsynced, self.head.as_ref(), self.segments.back()) {
            head.sync_data().map_err(io_err(&seg.path))?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Opens the last segment for appending, or (when `new`) starts a new one at `next_seq`.
    fn open_head(&mut self, new: bool) -> Result<(), SpoolError> {
        self.sync()?;
        if new {
            let path = self.dir.join(format!("{:020}.{SEGMENT_EXT}", self.next_seq));
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_err(&path))?;
            f.write_all(SEGMENT_HEADER).and_then(|()| f.sync_all()).map_err(io_err(&path))?;
            sync_dir(&self.dir)?;
            let len = SEGMENT_HEADER.len() as u64;
            self.bytes += len;
            self.segments.push_back(Segment { first_seq: self.next_seq, path, len });
            self.head = Some(f);
        } else {
            let seg = self.segments.back().expect("segment to reopen");
            self.head = Some(OpenOptions::new().append(true).open(&seg.path).map_err(io_err(&seg.path))?);
        }
        Ok(())
    }

    /// Moves the cursor to `seq` (every record below it is acknowledged) and deletes segments
    /// that hold only acknowledged records.
    pub fn acknowledge(&mut self, seq: u64) -> Result<(), SpoolError> {
        let seq = seq.min(self.next_seq);
        if seq > self.cursor {
            self.cursor = seq;
            self.delete_acknowledged_segments()?;
        }
        Ok(())
    }

    fn delete_acknowledged_segments(&mut self) -> Result<(), SpoolError> {
        let mut deletable = 0;
        for (i, _) in self.segments.iter().enumerate() {
            let end = self.segments.get(i + 1).map_or(self.next_seq, |n| n.first_seq);
            if end > self.cursor {
                break;
            }
            deletable += 1;
        }
        if deletable == 0 {
            return Ok(());
        }
        // Save the cursor first, so a crash in between never resurrects deleted records' peers.
        self.write_cursor()?;
        for _ in 0..deletable {
            self.remove_oldest()?;
        }
        Ok(())
    }

    fn remove_oldest(&mut self) -> Result<(), SpoolError> {
        let seg = self.segments.pop_front().expect("a segment to remove");
        if self.segments.is_empty() {
            self.head = None;
            self.unsynced = false;
        }
        if self.read.as_ref().is_some_and(|r| r.segment == seg.first_seq) {
            self.read = None;
        }
        self.bytes -= seg.len;
        match fs::remove_file(&seg.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&seg.path)(e)),
        }
    }

    /// `when_full: drop_oldest`: deletes the oldest segment even though it holds unacknowledged
    /// records; returns how many records were lost.
    pub fn drop_oldest(&mut self) -> Result<u64, SpoolError> {
        let Some(first) = self.segments.front() else { return Ok(0) };
        let end = self.segments.get(1).map_or(self.next_seq, |n| n.first_seq);
        let lost = end - self.cursor.max(first.first_seq);
        self.cursor = self.cursor.max(end);
        self.read_seq = self.read_seq.max(end);
        self.write_cursor()?;
        self.remove_oldest()?;
        Ok(lost)
    }

    /// Saves the cursor atomically if it moved since the last save.
    pub fn write_cursor(&mut self) -> Result<(), SpoolError> {
        if self.cursor == self.cursor_on_disk {
            return Ok(());
        }
        let path = self.dir.join(CURSOR_FILE);
        crate::durable::write_atomically(&path, &format::encode_cursor(self.cursor)).map_err(io_err(&path))?;
        self.cursor_on_disk = self.cursor;
        Ok(())
    }

    /// The next sequence number replay will read (every record below it was read).
    pub fn read_position(&self) -> u64 {
        self.read_seq.max(self.cursor)
    }

    /// Replay starts again at the cursor (after Kafka failed mid-replay).
    pub fn rewind(&mut self) {
        self.read_seq = self.cursor;
        self.read = None;
    }

    /// The next record to replay, or damage to report; `None` when replay has caught up.
    pub fn read_next(&mut self) -> Result<Option<Item>, SpoolError> {
        self.read_seq = self.read_seq.max(self.cursor);
        loop {
            if self.read.is_none() && !self.open_reader()? {
                return Ok(None);
            }
            let r = self.read.as_mut().expect("reader open");
            let seg_idx = self.segments.iter().position(|s| s.first_seq == r.segment).expect("reader's segment listed");
            let seg = &self.segments[seg_idx];
            r.scanner.set_limit(seg.len);
            let at = r.scanner.position();
            match r.scanner.next_item().map_err(io_err(&seg.path))? {
                Some(Item::Record(rec)) if rec.seq < self.read_seq => continue,
                Some(Item::Record(rec)) => {
                    self.read_seq = rec.seq + 1;
                    return Ok(Some(Item::Record(rec)));
                }
                Some(Item::Damaged { bytes }) => {
                    let here = (r.segment, at);
                    if here > self.damage_reported {
                        self.damage_reported = here;
                        return Ok(Some(Item::Damaged { bytes }));
                    }
                }
                None if seg_idx + 1 < self.segments.len() => {
                    // Records lost to damage at the end of this segment are skipped with it.
                    self.read_seq = self.read_seq.max(self.segments[seg_idx + 1].first_seq);
                    self.read = None;
                }
                None => return Ok(None),
            }
        }
    }

    /// Opens the segment holding `read_seq`; false when there is nothing to read.
    fn open_reader(&mut self) -> Result<bool, SpoolError> {
        if self.read_seq >= self.next_seq {
            return Ok(false);
        }
        let Some(seg) = self.segments.iter().rev().find(|s| s.first_seq <= self.read_seq).or(self.segments.front())
        else {
            return Ok(false);
        };
        // Appends go straight to the file (no user-space buffer), so the reader sees them at once.
        let f = File::open(&seg.path).map_err(io_err(&seg.path))?;
        let scanner = Scanner::new(f, seg.len).map_err(io_err(&seg.path))?;
        self.read = Some(ReadPos { segment: seg.first_seq, scanner });
        Ok(true)
    }
}

/// The segment files in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<VecDeque<Segment>, SpoolError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
            continue;
        }
        let Some(first_seq) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()) else {
            tracing::warn!(path = %path.display(), "ignoring a file in the spool directory that is not a segment");
            continue;
        };
        let len = entry.metadata().map_err(io_err(&path))?.len();
        segments.push(Segment { first_seq, path, len });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments.into())
}

/// Scans the last segment: returns the sequence number after its last valid record and the
/// bytes cut off its end (a record torn by a crash mid-write). Damage followed by valid records
/// is left for replay to skip and count.
fn recover_tail(seg: &mut Segment) -> Result<(u64, u64), SpoolError> {
    let f = File::open(&seg.path).map_err(io_err(&seg.path))?;
    let mut scanner = Scanner::new(f, seg.len).map_err(io_err(&seg.path))?;
    let has_header = scanner.position() == SEGMENT_HEADER.len() as u64;
    let mut next = seg.first_seq;
    let mut good_end = scanner.position();
    while let Some(item) = scanner.next_item().map_err(io_err(&seg.path))? {
        if let Item::Record(r) = item {
            next = r.seq + 1;
            good_end = scanner.position();
        }
    }
    let torn = seg.len - good_end;
    let rewrite_header = !has_header && next == seg.first_seq;
    if torn > 0 || rewrite_header {
        let mut f = OpenOptions::new().write(true).open(&seg.path).map_err(io_err(&seg.path))?;
        if rewrite_header {
            // Torn before its header was complete (or never had a record): start the file again.
            f.set_len(0).and_then(|()| f.write_all(SEGMENT_HEADER)).map_err(io_err(&seg.path))?;
            seg.len = SEGMENT_HEADER.len() as u64;
        } else {
            f.set_len(good_end).map_err(io_err(&seg.path))?;
            seg.len = good_end;
        }
        f.sync_all().map_err(io_err(&seg.path))?;
    }
    Ok((next, torn))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::format::Record;
    use super::*;

    fn entries(payloads: &[String]) -> Vec<Entry<'_>> {
        payloads
            .iter()
            .map(|p| Entry { topic: "logs", key: None, hash: None, id: None, timestamp: None, payload: p.as_bytes() })
            .collect()
    }

    fn lines(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("line {i:05} {}", "x".repeat(40))).collect()
    }

    /// Reads everything replay would send now, as (seq, payload); damage counted separately.
    fn replay(s: &mut Spool) -> (Vec<(u64, String)>, usize) {
        let (mut out, mut damaged) = (Vec::new(), 0);
        while let Some(item) = s.read_next().unwrap() {
            match item {
                Item::Record(Record { seq, payload, .. }) => out.push((seq, String::from_utf8(payload).unwrap())),
                Item::Damaged { .. } => damaged += 1,
            }
        }
        (out, damaged)
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn appended_records_replay_in_order_across_segments_and_acknowledged_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, opened) = Spool::open(dir.path(), 4096, 1 << 20).unwrap();
        assert_eq!(opened, Opened::default());
        let all = lines(0..300);
        for chunk in all.chunks(50) {
            s.append(&entries(chunk)).unwrap();
        }
        s.sync().unwrap();
        assert!(segment_files(dir.path()).len() >= 3, "segments rotate at segment_size");
        let (got, damaged) = replay(&mut s);
        assert_eq!(damaged, 0);
        assert_eq!(got.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), all);
        assert_eq!(got.iter().map(|(q, _)| *q).collect::<Vec<_>>(), (0..300).collect::<Vec<_>>());
        let before = segment_files(dir.path()).len();
        s.acknowledge(150).unwrap();
        assert!(segment_files(dir.path()).len() < before, "fully acknowledged segments are deleted");
        s.acknowledge(300).unwrap();
        assert!(s.is_empty());
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(s.bytes(), 0);
        // New records keep counting up from where the spool was.
        s.append(&entries(&lines(0..1))).unwrap();
        assert_eq!(replay(&mut s).0[0].0, 300);
    }

    #[test]
    fn restart_resumes_at_the_saved_cursor_and_rewind_resends_unacknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let all = lines(0..100);
        {
            let (mut s, _) = Spool::open(dir.path(), 1 << 20, 4 << 20).unwrap();
            s.append(&entries(&all)).unwrap();
            s.sync().unwrap();
            assert_eq!(replay(&mut s).0.len(), 100);
            s.rewind();
            assert_eq!(replay(&mut s).0.len(), 100, "rewind goes back to the cursor");
            s.acknowledge(40).unwrap();
            s.write_cursor().unwrap();
            s.acknowledge(60).unwrap(); // not saved: a crash now replays from 40
        }
        let (mut s, opened) = Spool::open(dir.path(), 1 << 20, 4 << 20).unwrap();
        assert_eq!(opened.pending, 60);
        let got = replay(&mut s).0;
        assert_eq!(got.first().unwrap().0, 40);
        assert_eq!(got.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), all[40..]);
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let seg_mode = fs::metadata(&segment_files(dir.path())[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(seg_mode, 0o600);
    }

    #[test]
    fn torn_tail_is_cut_off_at_open_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = Spool::open(dir.path(), 1 << 20, 4 << 20).unwrap();
            s.append(&entries(&lines(0..10))).unwrap();
            s.sync().unwrap();
        }
        let seg = segment_files(dir.path())[0].clone();
        let good = fs::metadata(&seg).unwrap().len();
        let mut torn = Vec::new();
        format::encode(
            &mut torn,
            10,
            &Entry { topic: "logs", key: None, hash: None, id: None, timestamp: None, payload: b"half written" },
        );
        fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&torn[..15]).unwrap();
        let (mut s, opened) = Spool::open(dir.path(), 1 << 20, 4 << 20).unwrap();
        assert_eq!(opened.torn_bytes, 15);
        assert_eq!(opened.pending, 10);
        assert_eq!(fs::metadata(&seg).unwrap().len(), good);
        s.append(&entries(&lines(10..12))).unwrap();
        let (got, damaged) = replay(&mut s);
        assert_eq!(damaged, 0);
        assert_eq!(got.iter().map(|(q, _)| *q).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn flipped_bit_in_the_middle_is_skipped_once_and_the_rest_replays() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = Spool::open(dir.path(), 1 << 20, 4 << 20).unwrap();
            s.append(&entries(&lines(0..10))).unwrap();
            s.append(&entries(&lines(10..20))).unwrap();
            s.sync().unwrap();
        }
        let seg = segment_files(dir.path())[0].clone();
        let mut bytes = fs::read(&seg).unwrap();
        let fifth = memchr::memmem::find_iter(&bytes, &format::RECORD_MARKER).nth(5).unwrap();
        bytes[fifth + format::RECORD_HEADER_LEN + 10] ^= 0x04;
        fs::write(&seg, &bytes).unwrap();
        let (mut s, opened) = Spool::open(dir.path(), 1 << 20, 4 << 20).unwrap();
        assert_eq!(opened.torn_bytes, 0, "damage followed by good records is not a torn tail");
        let (got, damaged) = replay(&mut s);
        assert_eq!(damaged, 1);
        let seqs: Vec<u64> = got.iter().map(|(q, _)| *q).collect();
        assert_eq!(seqs, (0..20).filter(|q| *q != 5).collect::<Vec<_>>());
        s.rewind();
        assert_eq!(replay(&mut s).1, 0, "damage is reported once, not again after a rewind");
    }

    #[test]
    fn full_spool_refuses_and_drop_oldest_makes_room() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 4096, 3 * 4096).unwrap();
        let first = s.append(&entries(&lines(0..1000))).unwrap();
        assert!(first > 0 && first < 1000, "a batch larger than the room left is taken in part ({first})");
        let mut appended = first as u32;
        let err = loop {
            match s.append(&entries(&lines(appended..appended + 20))) {
                Ok(n) => appended += n as u32,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert!(s.bytes() <= 3 * 4096);
        let lost = s.drop_oldest().unwrap();
        assert!(lost > 0);
        assert_eq!(s.append(&entries(&lines(appended..appended + 20))).unwrap(), 20);
        let got = replay(&mut s).0;
        assert_eq!(got.first().unwrap().0, lost, "replay starts after the dropped records");
        assert_eq!(got.len() as u64, u64::from(appended) + 20 - lost);
    }
}
