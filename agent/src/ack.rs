//! Acknowledgement tracking: which lines of which file Kafka has confirmed.
//!
//! Owns one *slot* per file being read. The reader opens a slot for a file, the output registers
//! each event's end offset in send order, and delivery reports (on librdkafka's thread) mark them
//! done. Invariant: a slot's `acked` offset only ever moves to the end of the highest *contiguous*
//! done event, so the registry never records an offset past a line that is still in flight, even
//! when acknowledgements arrive out of order (several partitions). It also keeps each in-flight
//! event's record timestamp, which librdkafka does not report for a failed record, so a record
//! sent again or spooled keeps the time it was first sent with.

use crate::fingerprint::{FileId, Fingerprint};
use crate::metrics::Histogram;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the registry needs to know about a slot's file.
#[derive(Debug, Clone)]
pub struct SlotFile {
    pub input: String,
    pub path: PathBuf,
    pub id: FileId,
    pub fingerprint: Fingerprint,
}

#[derive(Debug)]
struct Slot {
    file: SlotFile,
    /// Everything before this offset is acknowledged (or was already when the slot opened).
    acked: u64,
    /// Events in send order.
    pending: VecDeque<Pending>,
    /// A newer slot took over this file (after truncation): its offsets are no longer reported.
    /// Holds the end of the last event the reader sent under it, which may still be in the queue
    /// (not registered yet): the slot is freed only once that is acknowledged too.
    superseded: Option<u64>,
    /// The file's input's read-to-acknowledgement latency, observed at each delivery.
    latency: Option<Arc<Histogram>>,
}

/// One registered event of a slot.
#[derive(Debug, Clone, Copy)]
struct Pending {
    end: u64,
    done: bool,
    /// When its line was read (`None` for an event with nothing to deliver).
    read_at: Option<Instant>,
    /// Its record's timestamp: a record that comes back from librdkafka failed carries none
    /// (librdkafka reports it only for delivered ones), and is sent again or spooled with this.
    time: Option<i64>,
}

/// The contiguous acknowledged offset of one file, as the registry stores it.
#[derive(Debug, Clone)]
pub struct Watermark {
    pub file: SlotFile,
    pub offset: u64,
}

#[derive(Debug, Default)]
pub struct AckTracker {
    slots: Mutex<Vec<Option<Slot>>>,
    /// Registry entries to remove (files forgotten by `clean_removed` / `clean_inactive`), handed
    /// from the reader to the registry thread.
    forgotten: Mutex<Vec<(String, FileId)>>,
}

/// Most files tracked at once; slot numbers must fit the delivery opaque (see [`pack`]).
pub const MAX_SLOTS: usize = 1 << 15;

/// Packs a slot and an end offset into the integer that rides along with a Kafka record.
pub fn pack(slot: u32, end_offset: u64) -> usize {
    debug_assert!(end_offset < (1 << 48));
    ((slot as usize) << 48) | end_offset as usize
}

pub fn unpack(opaque: usize) -> (u32, u64) {
    ((opaque >> 48) as u32, (opaque & ((1 << 48) - 1)) as u64)
}

impl AckTracker {
    /// Opens a slot for a file whose bytes before `offset` need no more acknowledgement; its
    /// deliveries are observed in `latency` (its input's histogram).
    pub fn open(&self, file: SlotFile, offset: u64, latency: Option<Arc<Histogram>>) -> Option<u32> {
        let mut slots = self.slots.lock().unwrap();
        let slot = Slot { file, acked: offset, pending: VecDeque::new(), superseded: None, latency };
        if let Some(i) = slots.iter().position(Option::is_none) {
            slots[i] = Some(slot);
            return Some(i as u32);
        }
        if slots.len() >= MAX_SLOTS {
            return None;
        }
        slots.push(Some(slot));
        Some((slots.len() - 1) as u32)
    }

    /// Updates the identity the registry will record for a slot (path after rename, longer fingerprint).
    pub fn update_file(&self, slot: u32, f: impl FnOnce(&mut SlotFile)) {
        if let Some(Some(s)) = self.slots.lock().unwrap().get_mut(slot as usize) {
            f(&mut s.file);
        }
    }

    /// Stops reporting a slot's offsets (a newer slot owns the file); it is freed once every
    /// event sent under it, up to `sent` (the end of the last one), is acknowledged.
    pub fn supersede(&self, slot: u32, sent: u64) {
        if let Some(Some(s)) = self.slots.lock().unwrap().get_mut(slot as usize) {
            s.superseded = Some(sent);
        }
    }

    /// Records that an event ending at `end_offset`, whose line was read at `read_at`, is about
    /// to be sent with the record timestamp `time`.
    pub fn register(&self, slot: u32, end_offset: u64, read_at: Instant, time: Option<i64>) {
        if let Some(Some(s)) = self.slots.lock().unwrap().get_mut(slot as usize) {
            s.pending.push_back(Pending { end: end_offset, done: false, read_at: Some(read_at), time });
        }
    }

    /// The record timestamp an event in flight was registered with.
    pub fn record_time(&self, slot: u32, end_offset: u64) -> Option<i64> {
        let slots = self.slots.lock().unwrap();
        let s = slots.get(slot as usize)?.as_ref()?;
        let i = s.pending.binary_search_by_key(&end_offset, |p| p.end).ok()?;
        s.pending[i].time
    }

    /// Registers an event that needs no delivery (skipped or dropped line): done at once.
    pub fn register_done(&self, slot: u32, end_offset: u64) {
        let mut slots = self.slots.lock().unwrap();
        if let Some(Some(s)) = slots.get_mut(slot as usize) {
            s.pending.push_back(Pending { end: end_offset, done: true, read_at: None, time: None });
            advance(s);
        }
    }

    /// Marks the event ending at `end_offset` as done without a delivery to Kafka (spooled, or
    /// refused for good).
    pub fn done(&self, slot: u32, end_offset: u64) {
        self.mark(slot, end_offset, None);
    }

    /// Marks the event ending at `end_offset` as acknowledged by Kafka now, and observes the time
    /// since its line was read in its input's latency histogram.
    pub fn delivered(&self, slot: u32, end_offset: u64) {
        self.delivered_at(slot, end_offset, Instant::now());
    }

    /// [`Self::delivered`] with the clock the caller read already (a delivery report reads it
    /// once for all it records).
    pub fn delivered_at(&self, slot: u32, end_offset: u64, at: Instant) {
        self.mark(slot, end_offset, Some(at));
    }

    /// `delivered_at`: `None` for an event done without a delivery.
    fn mark(&self, slot: u32, end_offset: u64, delivered_at: Option<Instant>) {
        let mut slots = self.slots.lock().unwrap();
        let Some(Some(s)) = slots.get_mut(slot as usize) else { return };
        // Offsets within a slot increase in send order, so the entry can be found by bisection.
        if let Ok(i) = s.pending.binary_search_by_key(&end_offset, |p| p.end) {
            let p = &mut s.pending[i];
            p.done = true;
            if let (Some(at), Some(read_at), Some(h)) = (delivered_at, p.read_at, &s.latency) {
                h.observe(at.saturating_duration_since(read_at));
            }
            advance(s);
        }
    }

    /// The slot's contiguous acknowledged offset and whether nothing is in flight.
    pub fn acked(&self, slot: u32) -> Option<(u64, bool)> {
        let slots = self.slots.lock().unwrap();
        slots.get(slot as usize)?.as_ref().map(|s| (s.acked, s.pending.is_empty()))
    }

    /// Frees a slot whose events are all acknowledged; returns false (and keeps it) otherwise.
    pub fn close_if_drained(&self, slot: u32) -> bool {
        let mut slots = self.slots.lock().unwrap();
        match slots.get_mut(slot as usize) {
            Some(entry @ Some(_)) if entry.as_ref().is_some_and(|s| s.pending.is_empty()) => {
                *entry = None;
                true
            }
            _ => false,
        }
    }

    /// Frees superseded slots that have drained: nothing registered is pending and everything
    /// sent under them is acknowledged. Events still in the queue are not registered yet; a slot
    /// freed before them would be reused by another file and take their offsets for its own.
    pub fn reap_superseded(&self) {
        let mut slots = self.slots.lock().unwrap();
        for entry in slots.iter_mut() {
            if entry.as_ref().is_some_and(|s| s.superseded.is_some_and(|sent| s.pending.is_empty() && s.acked >= sent))
            {
                *entry = None;
            }
        }
    }

    /// Current watermarks of all live, non-superseded slots.
    pub fn watermarks(&self) -> Vec<Watermark> {
        let slots = self.slots.lock().unwrap();
        slots
            .iter()
            .flatten()
            .filter(|s| s.superseded.is_none())
            .map(|s| Watermark { file: s.file.clone(), offset: s.acked })
            .collect()
    }

    /// Asks the registry to drop the entry of a file whose slot is closed.
    pub fn forget(&self, key: (String, FileId)) {
        self.forgotten.lock().unwrap().push(key);
    }

    /// The entries to drop since the last call.
    pub fn take_forgotten(&self) -> Vec<(String, FileId)> {
        std::mem::take(&mut *self.forgotten.lock().unwrap())
    }

    /// Events registered and not yet acknowledged, over all slots.
    pub fn in_flight(&self) -> usize {
        self.slots.lock().unwrap().iter().flatten().map(|s| s.pending.iter().filter(|p| !p.done).count()).sum()
    }
}
/// Marks the delivery opaque of a replayed spool record (the rest is its sequence number). Slot
/// numbers stay below [`MAX_SLOTS`], so [`pack`] never sets this bit.
pub const REPLAY_BIT: usize = 1 << 63;
const _: () = assert!(((MAX_SLOTS - 1) << 48) & REPLAY_BIT == 0);

/// The spool records sent to Kafka during replay and not yet acknowledged, in send order.
///
/// Invariant: [`ReplayWindow::oldest_unacked`] is the lowest sequence number sent and not yet
/// acknowledged, so the spool cursor moved to it never passes an undelivered record.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    /// Sequence number, done, the record's timestamp (see [`Pending`]'s `time`).
    pending: Mutex<VecDeque<(u64, bool, Option<i64>)>>,
}

impl ReplayWindow {
    pub fn sent(&self, seq: u64, time: Option<i64>) {
        self.pending.lock().unwrap().push_back((seq, false, time));
    }

    /// The record timestamp a replayed record in flight was sent with.
    pub fn record_time(&self, seq: u64) -> Option<i64> {
        let p = self.pending.lock().unwrap();
        let i = p.binary_search_by_key(&seq, |e| e.0).ok()?;
        p[i].2
    }

    /// Takes back the newest entry when the record could not be handed to the producer after all.
    pub fn unsend(&self, seq: u64) {
        let mut p = self.pending.lock().unwrap();
        if p.back().is_some_and(|e| e.0 == seq) {
            p.pop_back();
        }
    }

    /// Marks a record delivered (or refused for good: it is skipped either way).
    pub fn done(&self, seq: u64) {
        let mut p = self.pending.lock().unwrap();
        if let Ok(i) = p.binary_search_by_key(&seq, |e| e.0) {
            p[i].1 = true;
        }
        while p.front().is_some_and(|e| e.1) {
            p.pop_front();
        }
    }

    /// The lowest sequence number sent and not acknowledged; `None` when nothing is in flight.
    pub fn oldest_unacked(&self) -> Option<u64> {
        self.pending.lock().unwrap().front().map(|e| e.0)
    }

    pub fn len(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything in flight (replay restarts from the spool cursor).
    pub fn clear(&self) {
        *self.pending.lock().unwrap() = VecDeque::new();
    }
}

fn advance(s: &mut Slot) {
    while let Some(&Pending { end, done: true, .. }) = s.pending.front() {
        s.acked = end;
        s.pending.pop_front();
    }
    // A burst (catch-up of a file) can leave a large deque behind; with thousands of files that
    // capacity adds up, so give it back once the slot is idle.
    if s.pending.is_empty() && s.pending.capacity() > 64 {
        s.pending = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> SlotFile {
        SlotFile {
            input: "i".into(),
            path: "/a".into(),
            id: FileId { dev: 1, ino: 2 },
            fingerprint: Fingerprint::default(),
        }
    }

    #[test]
    fn only_deliveries_are_observed_in_the_latency_histogram() {
        let t = AckTracker::default();
        let h = Arc::new(Histogram::default());
        let s = t.open(file(), 0, Some(h.clone())).unwrap();
        let long_ago = Instant::now() - std::time::Duration::from_millis(30);
        t.register(s, 10, long_ago, None);
        t.register(s, 20, Instant::now(), None);
        t.register_done(s, 25);
        t.done(s, 20); // spooled or refused for good: not a delivery
        t.delivered(s, 10);
        let snap = h.snapshot();
        assert_eq!(snap.count, 1);
        assert!(snap.sum_seconds >= 0.03 && snap.sum_seconds < 10.0, "{snap:?}");
        assert_eq!(t.acked(s), Some((25, true)));
    }

    #[test]
    fn events_in_flight_keep_their_record_time_until_done() {
        let t = AckTracker::default();
        let s = t.open(file(), 0, None).unwrap();
        t.register(s, 10, Instant::now(), Some(1_000));
        t.register(s, 20, Instant::now(), None);
        t.register(s, 30, Instant::now(), Some(3_000));
        assert_eq!(
            (t.record_time(s, 10), t.record_time(s, 20), t.record_time(s, 30)),
            (Some(1_000), None, Some(3_000))
        );
        assert_eq!(t.record_time(s, 25), None, "no event ends there");
        t.delivered(s, 10);
        assert_eq!(t.record_time(s, 10), None, "acknowledged and gone");
        assert_eq!(t.record_time(s, 30), Some(3_000));
        let w = ReplayWindow::default();
        w.sent(7, Some(70));
        w.sent(8, None);
        w.sent(9, Some(90));
        w.done(8);
        assert_eq!((w.record_time(7), w.record_time(8), w.record_time(9)), (Some(70), None, Some(90)));
    }

    #[test]
    fn replay_window_reports_the_oldest_unacknowledged_record() {
        let w = ReplayWindow::default();
        assert_eq!(w.oldest_unacked(), None);
        for seq in 10..15 {
            w.sent(seq, None);
        }
        w.done(12);
        w.done(10);
        assert_eq!(w.oldest_unacked(), Some(11));
        w.done(11);
        assert_eq!(w.oldest_unacked(), Some(13));
        w.done(13);
        w.done(14);
        assert_eq!(w.oldest_unacked(), None);
        assert!(w.is_empty());
    }

    #[test]
    fn watermark_moves_only_over_contiguous_acks() {
        let t = AckTracker::default();
        let s = t.open(file(), 100, None).unwrap();
        for end in [110, 120, 130] {
            t.register(s, end, Instant::now(), None);
        }
        t.done(s, 120);
        assert_eq!(t.acked(s), Some((100, false)), "110 is still in flight");
        t.done(s, 110);
        assert_eq!(t.acked(s), Some((120, false)));
        t.done(s, 130);
        assert_eq!(t.acked(s), Some((130, true)));
        assert_eq!(t.watermarks()[0].offset, 130);
    }

    #[test]
    fn skipped_events_advance_in_order() {
        let t = AckTracker::default();
        let s = t.open(file(), 0, None).unwrap();
        t.register(s, 10, Instant::now(), None);
        t.register_done(s, 20);
        assert_eq!(t.acked(s), Some((0, false)));
        t.done(s, 10);
        assert_eq!(t.acked(s), Some((20, true)));
    }

    #[test]
    fn slots_are_reused_only_when_drained_and_superseded_ones_are_hidden() {
        let t = AckTracker::default();
        let a = t.open(file(), 0, None).unwrap();
        t.register(a, 5, Instant::now(), None);
        assert!(!t.close_if_drained(a));
        // Sent up to 9: the event ending there is still in the queue, not registered yet.
        t.supersede(a, 9);
        assert!(t.watermarks().is_empty());
        let b = t.open(file(), 0, None).unwrap();
        assert_ne!(a, b);
        t.done(a, 5);
        t.reap_superseded();
        assert_ne!(t.open(file(), 0, None).unwrap(), a, "not free while an event sent under it is unregistered");
        t.register(a, 9, Instant::now(), None);
        t.delivered(a, 9);
        t.reap_superseded();
        let c = t.open(file(), 0, None).unwrap();
        assert_eq!(c, a, "the drained superseded slot is free again");
    }

    #[test]
    fn drained_slot_gives_its_memory_back() {
        let t = AckTracker::default();
        let s = t.open(file(), 0, None).unwrap();
        for end in 1..=5000 {
            t.register(s, end, Instant::now(), None);
        }
        for end in 1..=5000 {
            t.done(s, end);
        }
        let slots = t.slots.lock().unwrap();
        assert!(slots[s as usize].as_ref().unwrap().pending.capacity() <= 64);
    }

    #[test]
    fn opaque_round_trips() {
        let o = pack(12_345, (1 << 48) - 7);
        assert_eq!(unpack(o), (12_345, (1 << 48) - 7));
    }
}
