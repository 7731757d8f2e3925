//! The output's mode changes (direct → spooling → replay → direct, and a stop in each mode),
//! stepped by hand over a fake [`Transport`]: no broker, a real spool on a real file system, the
//! real ack tracker. The fake keeps the transport's contract (see `transport.rs`) and nothing more:
//! Kafka is up or down, records wait in "librdkafka" until a turn serves their delivery reports.

use super::*;
use crate::ack::SlotFile;
use crate::fingerprint::{FileId, Fingerprint};
use crate::spool::format::Record;
use std::cell::RefCell;

/// Kafka as the output sees it through the transport.
#[derive(Default)]
struct FakeKafka {
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
    /// Kafka answers and acknowledges.
    up: bool,
    /// A spool is configured (without one, Kafka never counts as unreachable: the output waits).
    spool_backed: bool,
    /// What is in "librdkafka" (a cell: delivery reports are served by `flush(&self)` too).
    flight: RefCell<Flight>,
    parked: bool,
    unparks: usize,
}

#[derive(Default)]
struct Flight {
    /// File events handed over and not yet acknowledged, in send order.
    queued: Vec<Parked>,
    /// Replayed spool records in flight.
    replay: Vec<Record>,
    /// Payloads Kafka acknowledged, in acknowledgement order.
    delivered: Vec<String>,
}

impl FakeKafka {
    /// Serves delivery reports: with Kafka up, everything waiting is acknowledged, in order.
    fn serve(&self) {
        if !self.up {
            return;
        }
        let f = &mut *self.flight.borrow_mut();
        for p in f.queued.drain(..) {
            let (slot, end) = p.slot_end();
            self.tracker.delivered(slot, end);
            f.delivered.push(String::from_utf8(p.payload).unwrap());
        }
        for r in f.replay.drain(..) {
            f.delivered.push(String::from_utf8(r.payload).unwrap());
        }
    }

    fn delivered(&self) -> Vec<String> {
        self.flight.borrow().delivered.clone()
    }
}

impl Transport for FakeKafka {
    fn beat(&self) {}
    fn begin_batch(&mut self) {}
    fn send_event(&mut self, ev: Event, stop: &Shutdown) -> Result<(), Parked> {
        let Some(p) = Parked::register(ev, &self.tracker, &self.metrics) else { return Ok(()) };
        // Room enough in the fake's queue; a stop past its deadline gives the event back.
        if stop.drain_over() {
            return Err(p);
        }
        self.flight.borrow_mut().queued.push(p);
        Ok(())
    }
    fn send_replay(&mut self, rec: &Record) -> bool {
        self.flight.borrow_mut().replay.push(rec.clone());
        true
    }
    fn replay_oldest_unacked(&self) -> Option<u64> {
        self.flight.borrow().replay.iter().map(|r| r.seq).min()
    }
    fn replay_in_flight(&self) -> usize {
        self.flight.borrow().replay.len()
    }
    fn refresh_topics_if_due(&mut self) {}
    fn send_retries(&mut self, _stop: &Shutdown) {
        self.serve();
    }
    fn outstanding(&self) -> usize {
        let f = self.flight.borrow();
        f.queued.len() + f.replay.len()
    }
    fn held(&self) -> usize {
        0
    }
    fn unhealthy(&mut self, patience: u32) -> bool {
        self.spool_backed && self.stalled(patience)
    }
    fn stalled(&mut self, _patience: u32) -> bool {
        !self.up && self.outstanding() > 0
    }
    fn connection_refused(&self) -> Option<String> {
        None
    }
    fn park_all(&mut self) -> Vec<Parked> {
        self.parked = true;
        let f = &mut *self.flight.borrow_mut();
        f.replay.clear();
        let mut back = std::mem::take(&mut f.queued);
        back.sort_by_key(|p| p.opaque);
        back
    }
    fn take_parked(&self) -> Vec<Parked> {
        Vec::new()
    }
    fn answered(&self) -> bool {
        self.parked && self.up
    }
    fn restart_stall_clock(&mut self) {}
    fn unpark(&mut self) {
        assert!(self.parked, "unpark without park_all");
        self.parked = false;
        self.unparks += 1;
    }
    fn flush(&self, wait: Duration) {
        self.serve();
        std::thread::sleep(wait.min(Duration::from_millis(1)));
    }
}

/// One file's lines `line 0`, `line 1`, ... as events of `slot`; line `i` ends at `(i + 1) * 10`.
fn events(slot: u32, lines: std::ops::Range<u64>) -> Vec<Event> {
    lines
        .map(|i| Event {
            slot,
            end_offset: (i + 1) * 10,
            topic: "t".into(),
            key: None,
            partition_hash: None,
            payload: format!("line {i}").into_bytes(),
            deliver: true,
            read_at: Instant::now(),
            id: None,
            timestamp: None,
        })
        .collect()
}

fn lines(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("line {i}")).collect()
}

/// An output over the fake, Kafka up, with a spool in `dir` (or none), and one open slot.
fn output(dir: Option<&std::path::Path>) -> (Output<FakeKafka>, u32) {
    let (tracker, metrics) = (Arc::new(AckTracker::default()), Arc::new(Metrics::default()));
    let file = SlotFile {
        input: "i".into(),
        path: "/f".into(),
        id: FileId { dev: 1, ino: 1 },
        fingerprint: Fingerprint::default(),
    };
    let slot = tracker.open(file, 0, None).unwrap();
    let spooling = dir.map(|d| {
        let cfg = SpoolConfig { path: Some(d.to_path_buf()), ..SpoolConfig::default() };
        Spooling::open(&cfg, d, Duration::ZERO, &metrics).unwrap()
    });
    let kafka = FakeKafka {
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        up: true,
        spool_backed: spooling.is_some(),
        parked: spooling.as_ref().is_some_and(|s| s.phase.spooling()),
        ..FakeKafka::default()
    };
    (Output { kafka, spooling, tracker, metrics }, slot)
}

fn phase(o: &Output<FakeKafka>) -> &'static str {
    match o.spooling.as_ref().map(|s| &s.phase) {
        None | Some(Phase::Direct) => "direct",
        Some(Phase::Waiting) => "waiting",
        Some(Phase::Replaying { .. }) => "replaying",
    }
}

/// Turns the output's loop until `done` holds (at most 20 turns).
fn turn_until(o: &mut Output<FakeKafka>, stop: &Shutdown, done: impl Fn(&Output<FakeKafka>) -> bool) {
    for _ in 0..20 {
        if done(o) {
            return;
        }
        o.tick(stop);
    }
    assert!(done(o), "not reached in 20 turns; phase {}", phase(o));
}

#[test]
fn kafka_away_spools_and_replay_brings_everything_back_in_order_then_direct_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, slot) = output(Some(dir.path()));
    let stop = Shutdown::new();

    // Direct: delivered and acknowledged.
    o.accept(events(slot, 0..5), &stop);
    o.tick(&stop);
    assert_eq!((phase(&o), o.tracker.acked(slot).unwrap().0), ("direct", 50));

    // Kafka goes away with five events in flight: they are taken back and spooled first, and the
    // next batch goes to the spool behind them. Spooled (fsynced) events are done for the registry.
    o.kafka.up = false;
    o.accept(events(slot, 5..10), &stop);
    o.tick(&stop);
    assert_eq!(phase(&o), "waiting");
    o.accept(events(slot, 10..15), &stop);
    o.tick(&stop);
    assert_eq!(o.spooling.as_ref().unwrap().spool.pending(), 10);
    assert_eq!(o.tracker.acked(slot).unwrap().0, 150);
    assert_eq!(o.kafka.delivered(), lines(0..5));

    // Kafka answers again: the spool is replayed, oldest first, then the output sends directly.
    o.kafka.up = true;
    turn_until(&mut o, &stop, |o| phase(o) == "replaying");
    turn_until(&mut o, &stop, |o| phase(o) == "direct");
    assert!(o.spooling.as_ref().unwrap().spool.is_empty());
    assert_eq!(o.kafka.unparks, 1);
    o.accept(events(slot, 15..20), &stop);
    o.tick(&stop);
    assert_eq!(o.kafka.delivered(), lines(0..20), "every line once, in file order");
    assert_eq!(o.tracker.acked(slot).unwrap().0, 200);
}

#[test]
fn a_replay_that_stalls_waits_again_and_resumes_from_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, slot) = output(Some(dir.path()));
    let stop = Shutdown::new();
    o.kafka.up = false;
    o.accept(events(slot, 0..8), &stop);
    turn_until(&mut o, &stop, |o| phase(o) == "waiting");

    // Replay starts, its records go out, and Kafka stops acknowledging before any comes back.
    o.kafka.up = true;
    turn_until(&mut o, &stop, |o| phase(o) == "replaying");
    o.kafka.up = false;
    o.tick(&stop);
    assert_eq!(phase(&o), "waiting", "a stalled replay goes back to waiting");
    assert_eq!(o.kafka.replay_in_flight(), 0);
    assert!(o.kafka.delivered().is_empty());

    o.kafka.up = true;
    turn_until(&mut o, &stop, |o| phase(o) == "direct");
    assert_eq!(o.kafka.delivered(), lines(0..8), "replayed from the cursor: nothing lost, nothing twice");
}

#[test]
fn a_stop_in_direct_mode_waits_for_the_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, slot) = output(Some(dir.path()));
    let stop = Shutdown::new();
    o.accept(events(slot, 0..5), &stop);
    stop.stop_within(Duration::from_secs(5));
    assert_eq!(o.drain(&stop), 0);
    assert_eq!(o.kafka.delivered(), lines(0..5));
    assert_eq!(phase(&o), "direct");
}

#[test]
fn a_stop_with_kafka_away_spools_what_is_in_flight_and_the_next_run_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut o, slot) = output(Some(dir.path()));
        let stop = Shutdown::new();
        o.kafka.up = false;
        o.accept(events(slot, 0..6), &stop);
        stop.stop_within(Duration::from_secs(5));
        assert_eq!(o.drain(&stop), 0, "every event is spooled at the stop");
        assert_eq!(o.tracker.acked(slot).unwrap().0, 60);
        assert!(o.kafka.delivered().is_empty());
    }
    // The next run starts by spooling (its spool holds events) and replays them once Kafka answers.
    let (mut o, _) = output(Some(dir.path()));
    assert_eq!(phase(&o), "waiting");
    let stop = Shutdown::new();
    turn_until(&mut o, &stop, |o| phase(o) == "direct");
    assert_eq!(o.kafka.delivered(), lines(0..6));
}

#[test]
fn a_stop_while_waiting_fsyncs_the_spool_and_keeps_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut o, slot) = output(Some(dir.path()));
        let stop = Shutdown::new();
        o.kafka.up = false;
        o.accept(events(slot, 0..4), &stop);
        turn_until(&mut o, &stop, |o| phase(o) == "waiting");
        o.accept(events(slot, 4..9), &stop);
        stop.stop_within(Duration::from_secs(5));
        assert_eq!(o.drain(&stop), 0);
        assert_eq!(o.spooling.as_ref().unwrap().spool.pending(), 9);
    }
    let (mut o, _) = output(Some(dir.path()));
    turn_until(&mut o, &Shutdown::new(), |o| phase(o) == "direct");
    assert_eq!(o.kafka.delivered(), lines(0..9));
}

#[test]
fn a_stop_while_replaying_waits_for_the_records_in_flight_and_saves_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut o, slot) = output(Some(dir.path()));
        let stop = Shutdown::new();
        o.kafka.up = false;
        o.accept(events(slot, 0..7), &stop);
        turn_until(&mut o, &stop, |o| phase(o) == "waiting");
        o.kafka.up = true;
        turn_until(&mut o, &stop, |o| o.kafka.replay_in_flight() > 0);
        assert_eq!(phase(&o), "replaying");
        stop.stop_within(Duration::from_secs(5));
        assert_eq!(o.drain(&stop), 0);
        assert_eq!(o.kafka.replay_in_flight(), 0, "the records in flight were acknowledged");
        assert_eq!(o.kafka.delivered(), lines(0..7));
    }
    // The cursor went past them: the next run has nothing to replay.
    let (o, _) = output(Some(dir.path()));
    assert_eq!(phase(&o), "direct");
    assert!(o.spooling.as_ref().unwrap().spool.is_empty());
}

#[test]
fn without_a_spool_a_stop_with_kafka_away_leaves_the_events_unacknowledged_at_the_deadline() {
    let (mut o, slot) = output(None);
    let stop = Shutdown::new();
    o.kafka.up = false;
    o.accept(events(slot, 0..5), &stop);
    o.tick(&stop);
    assert_eq!(phase(&o), "direct", "without a spool the output waits for Kafka");
    assert_eq!(Metrics::get(&o.metrics.output_stalled), 1, "and says it is stalled");
    stop.stop_within(Duration::from_millis(100));
    assert_eq!(o.drain(&stop), 5, "read again after the restart");
    assert_eq!(o.tracker.acked(slot).unwrap().0, 0);
}
