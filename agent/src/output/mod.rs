//! The output stage: batches from the queue to Kafka, directly or, while Kafka is unreachable,
//! through the disk spool.
//!
//! Owns the mode (with a spool, a `Phase` whose variants hold what each needs: direct, waiting
//! for Kafka, replaying with the record the producer had no room for) and the spooling
//! bookkeeping. Two modes:
//! - **direct**: events go to the producers ([`kafka::KafkaOutput`]); their offsets are done when
//!   Kafka acknowledges them;
//! - **spooling** (entered when Kafka counts as unreachable, see [`kafka::KafkaOutput::unhealthy`],
//!   or at start-up when the spool holds events): every event goes to the spool, and its offsets
//!   are done once the spool is fsynced. When the probe reaches Kafka again the spool is replayed
//!   oldest first; the cursor moves only over acknowledged records. The output goes back to direct
//!   mode when the spool is empty and nothing is in flight.
//!
//! Invariants:
//! - per-file order: on entering spooling, the events librdkafka still held are taken back and
//!   spooled first, in (file, offset) order, then the rest; the spool is replayed in order, and
//!   direct sending resumes only after the last spooled record is acknowledged;
//! - an event's offsets are done only once it is acknowledged by Kafka or fsynced in the spool;
//!   an event the spool cannot take (full with `when_full: block`, or a disk error) stays in
//!   memory, not done, and the queue behind it fills, so reading pauses: nothing is lost. Only the
//!   `drop_*` policies lose events, and each loss is counted and logged as an error.

pub mod kafka;
pub mod partition;
#[cfg(test)]
mod tests;
pub mod transport;

use crate::ack::{unpack, AckTracker};
use crate::config::{Config, FsyncPolicy, KafkaConfig, SpoolConfig, WhenFull};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::queue::{Popped, Queue};
use crate::shutdown::Shutdown;
use crate::spool::format::{Item, Record};
use crate::spool::{Entry, Spool, SpoolError};
use crate::status::{Heartbeat, Refusals};
use kafka::{KafkaOutput, Parked, HELD_LIMIT};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::Transport;

/// Most replayed records in flight at once (the producers' own queues bound it too).
const MAX_REPLAY_IN_FLIGHT: usize = 50_000;
/// Longest stretch of one output-loop turn spent replaying, so new batches keep being spooled.
const REPLAY_SLICE: Duration = Duration::from_millis(20);
/// At shutdown, events still unacknowledged this close to the deadline are spooled.
const SPOOL_BEFORE_DEADLINE: Duration = Duration::from_millis(500);
/// Replay tolerates stalls of up to `unhealthy_after` × 2^this after repeated stalls.
const MAX_REPLAY_BACKOFF_DOUBLINGS: u32 = 4;

/// The output stage over a [`Transport`]: librdkafka's producers in the agent, a fake in the
/// mode tests.
pub struct Output<T = KafkaOutput> {
    kafka: T,
    /// `None` when `queue.spool.enabled` is false: the output then waits for Kafka, as Filebeat does.
    spooling: Option<Spooling>,
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
}

/// Everything the spool side owns.
struct Spooling {
    spool: Spool,
    fsync: FsyncPolicy,
    when_full: WhenFull,
    /// Where the output stands with the spool.
    phase: Phase,
    /// Events waiting to be written: the spool is full (`block`) or the disk failed.
    held: Vec<Parked>,
    /// Opaques of events written but not yet fsynced.
    unsynced: Vec<usize>,
    last_sync: Instant,
    /// Replay stalls in a row without the cursor moving (widens the stall limit; kept across a
    /// return to waiting, reset when the cursor moves).
    replay_stalls: u32,
    cursor_every: Duration,
    last_cursor_write: Instant,
    /// Log once per episode, not once per batch.
    full_logged: bool,
    error_logged: bool,
    rate_at: (Instant, u64),
}

/// The output's mode while a spool is configured.
enum Phase {
    /// Events go to Kafka directly.
    Direct,
    /// Events go to the spool; Kafka has not answered the probe yet.
    Waiting,
    /// Events go to the spool, and the spool is replayed to Kafka oldest first.
    Replaying {
        /// A record read for replay that the producer had no room for yet.
        next: Option<Record>,
    },
}

impl Phase {
    fn spooling(&self) -> bool {
        !matches!(self, Phase::Direct)
    }
}

impl Output<KafkaOutput> {
    pub fn new(
        config: &Config,
        kafka: &KafkaConfig,
        tracker: Arc<AckTracker>,
        metrics: Arc<Metrics>,
        refused: Arc<Refusals>,
    ) -> anyhow::Result<Output> {
        let spool_cfg = &config.queue.spool;
        let probe_every = spool_cfg.enabled.then_some(spool_cfg.retry_interval.0);
        let mut kafka = KafkaOutput::new(
            kafka,
            tracker.clone(),
            metrics.clone(),
            refused,
            spool_cfg.unhealthy_after.0,
            probe_every,
        )?;
        let spooling = if spool_cfg.enabled {
            Some(Spooling::open(spool_cfg, &config.path.data, config.registry.flush.0, &metrics)?)
        } else {
            None
        };
        if spooling.as_ref().is_some_and(|s| s.phase.spooling()) {
            // Events spooled before the restart go first: start in spooling mode.
            kafka.park_all();
        }
        Ok(Output { kafka, spooling, tracker, metrics })
    }

    /// The heartbeat `/livez` watches, beaten by the output's loops and while a send waits.
    pub fn set_heartbeat(&mut self, heartbeat: Heartbeat) {
        self.kafka.set_heartbeat(heartbeat);
    }
}

impl<T: Transport> Output<T> {
    /// Delivers everything from the queue until it is closed and empty (and nothing is held for
    /// the spool), or the stop's drain deadline passes.
    pub fn run(&mut self, queue: &Queue, stop: &Shutdown) {
        while !stop.drain_over() {
            self.kafka.beat();
            if self.holding() {
                self.store(Vec::new());
                if self.holding() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            } else if self.kafka.held() >= HELD_LIMIT {
                // Kafka refuses a topic and holds this many of its events: take no more until it
                // takes them (reading waits, as for a full queue).
                std::thread::sleep(Duration::from_millis(20));
            } else {
                let wait = if self.replaying() { Duration::from_millis(1) } else { Duration::from_millis(50) };
                match queue.pop(wait) {
                    Popped::Closed => return,
                    Popped::Batch(batch) => self.accept(batch.events, stop),
                    Popped::Empty => {}
                }
            }
            self.tick(stop);
        }
    }

    fn holding(&self) -> bool {
        self.spooling.as_ref().is_some_and(|s| !s.held.is_empty())
    }

    fn replaying(&self) -> bool {
        self.spooling.as_ref().is_some_and(|s| matches!(s.phase, Phase::Replaying { .. }))
    }

    fn active(&self) -> bool {
        self.spooling.as_ref().is_some_and(|s| s.phase.spooling())
    }

    /// Sends a batch directly, or spools it; switches to spooling when Kafka stops answering.
    fn accept(&mut self, events: Vec<Event>, stop: &Shutdown) {
        self.kafka.begin_batch();
        let mut events = events.into_iter();
        if !self.active() {
            for ev in events.by_ref() {
                let Err(parked) = self.kafka.send_event(ev, stop) else { continue };
                if stop.drain_over() || self.spooling.is_none() {
                    return; // shutdown deadline: unacknowledged events are read again after restart
                }
                self.enter_spooling();
                self.store(vec![parked]);
                break;
            }
        }
        let parked: Vec<Parked> = events.filter_map(|ev| Parked::register(ev, &self.tracker, &self.metrics)).collect();
        if !parked.is_empty() {
            self.store(parked);
        }
    }

    fn enter_spooling(&mut self) {
        if let Some(sp) = self.spooling.as_mut() {
            sp.enter(&mut self.kafka, &self.tracker, &self.metrics);
        }
    }

    /// Appends events (after any already held) to the spool, applying `when_full`.
    fn store(&mut self, items: Vec<Parked>) {
        if let Some(sp) = self.spooling.as_mut() {
            sp.store(items, &self.tracker, &self.metrics);
        }
    }

    /// One turn of housekeeping after each batch (or timeout).
    fn tick(&mut self, stop: &Shutdown) {
        let Output { kafka, spooling, tracker, metrics } = self;
        match spooling {
            Some(sp) if sp.phase.spooling() => {
                let late = kafka.take_parked();
                if !late.is_empty() {
                    sp.store(late, tracker, metrics);
                }
                kafka.send_retries(stop);
                sp.sync_if_due(tracker, metrics);
                sp.replay_step(kafka, tracker, metrics);
                sp.acknowledge(kafka, metrics);
                sp.leave_if_drained(kafka);
            }
            Some(sp) => {
                kafka.send_retries(stop);
                if kafka.unhealthy(1) {
                    sp.enter(kafka, tracker, metrics);
                }
            }
            None => {
                kafka.send_retries(stop);
                Metrics::set(&metrics.output_stalled, u64::from(kafka.stalled(1)));
            }
        }
        self.kafka.refresh_topics_if_due();
        self.update_gauges();
    }

    fn update_gauges(&mut self) {
        Metrics::set(&self.metrics.output_spooling, u64::from(self.active()));
        let Some(sp) = self.spooling.as_mut() else { return };
        Metrics::set(&self.metrics.spool_bytes, sp.spool.bytes());
        Metrics::set(&self.metrics.spool_events, sp.spool.pending());
        let (at, count) = sp.rate_at;
        if at.elapsed() >= Duration::from_secs(1) {
            let now = Metrics::get(&self.metrics.spool_replayed);
            let rate = (now - count) as f64 / at.elapsed().as_secs_f64();
            Metrics::set(&self.metrics.spool_replay_rate, rate as u64);
            sp.rate_at = (Instant::now(), now);
        }
    }

    /// Waits until every event is acknowledged or spooled, or the stop's drain deadline passes; returns the
    /// number of events still unacknowledged (read again after restart). With a spool, events
    /// Kafka did not take by shortly before the deadline are spooled.
    pub fn drain(&mut self, stop: &Shutdown) -> usize {
        let deadline = stop.deadline().unwrap_or_else(Instant::now);
        loop {
            self.kafka.beat();
            let left = deadline.saturating_duration_since(Instant::now());
            let Output { kafka, spooling, tracker, metrics } = self;
            match spooling {
                Some(sp) if sp.phase.spooling() => {
                    sp.store(kafka.take_parked(), tracker, metrics);
                    sp.sync_now(tracker, metrics);
                    // No new replay at shutdown; wait for what is in flight to be acknowledged.
                    kafka.flush(left.min(Duration::from_millis(100)));
                    sp.acknowledge(kafka, metrics);
                    let settled = sp.held.is_empty() && sp.unsynced.is_empty() && kafka.replay_in_flight() == 0;
                    if settled || left.is_zero() {
                        break;
                    }
                    if !sp.held.is_empty() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                _ => {
                    kafka.send_retries(stop);
                    kafka.flush(left.min(Duration::from_millis(100)));
                    if tracker.in_flight() == 0 && kafka.outstanding() == 0 {
                        break;
                    }
                    let spool_now = kafka.unhealthy(1) || left <= SPOOL_BEFORE_DEADLINE;
                    if let (Some(sp), true) = (spooling.as_mut(), spool_now) {
                        sp.enter(kafka, tracker, metrics);
                        continue;
                    }
                    if left.is_zero() {
                        break;
                    }
                    if kafka.outstanding() == 0 {
                        // Nothing for flush to wait on (events held back for a retry): no spin.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        if let Some(sp) = self.spooling.as_mut() {
            sp.sync_now(&self.tracker, &self.metrics);
            if let Err(e) = sp.spool.write_cursor() {
                tracing::error!(error = %e, "cannot save the spool cursor at shutdown; replay will repeat records");
            }
        }
        self.update_gauges();
        self.tracker.in_flight()
    }
}

/// The spooling mode's steps; each takes the Kafka output it sends through.
impl Spooling {
    /// Kafka counts as unreachable: takes every event back from librdkafka and spools it first.
    fn enter(&mut self, kafka: &mut impl Transport, tracker: &AckTracker, metrics: &Metrics) {
        let parked = kafka.park_all();
        self.phase = Phase::Waiting;
        self.spool.rewind();
        Metrics::inc(&metrics.spool_switches);
        let spool = self.spool.dir().display();
        match kafka.connection_refused() {
            // Not an outage to wait out: a setting to fix (the reason is also in `/healthz`).
            Some(why) => tracing::warn!(%spool, taken_back = parked.len(),
                "Kafka refuses the connection ({why}): spooling events to disk until it accepts it"),
            None => tracing::warn!(%spool, taken_back = parked.len(),
                "Kafka is unreachable: spooling events to disk until it answers again"),
        }
        self.store(parked, tracker, metrics);
    }

    /// Appends events (after any already held) to the spool, applying `when_full`.
    fn store(&mut self, items: Vec<Parked>, tracker: &AckTracker, metrics: &Metrics) {
        self.held.extend(items);
        self.write_held(tracker, metrics);
    }

    /// Starts replay once the probe reached Kafka, goes back to waiting when replay stalls, and
    /// otherwise sends the next records for up to [`REPLAY_SLICE`].
    fn replay_step(&mut self, kafka: &mut impl Transport, tracker: &AckTracker, metrics: &Metrics) {
        if let Phase::Waiting = self.phase {
            if !kafka.answered() {
                return;
            }
            self.phase = Phase::Replaying { next: None };
            kafka.restart_stall_clock();
            tracing::info!(events = self.spool.pending(), "Kafka answers again: replaying the spool");
        }
        let patience = 1 << self.replay_stalls.min(MAX_REPLAY_BACKOFF_DOUBLINGS);
        if kafka.replay_in_flight() > 0 && kafka.unhealthy(patience) {
            let parked = kafka.park_all();
            // A broker that answers but acknowledges slowly (loaded, or catching up) must not
            // make replay restart for ever: each stall without progress doubles the patience.
            self.replay_stalls += 1;
            self.phase = Phase::Waiting;
            self.spool.rewind();
            tracing::warn!(
                "Kafka stopped acknowledging during replay: spooling goes on, replay resumes from the cursor"
            );
            self.store(parked, tracker, metrics);
            return;
        }
        let until = Instant::now() + REPLAY_SLICE;
        while Instant::now() < until && kafka.replay_in_flight() < MAX_REPLAY_IN_FLIGHT {
            let Some(rec) = self.next_replay_record(metrics) else { break };
            if !kafka.send_replay(&rec) {
                if let Phase::Replaying { next } = &mut self.phase {
                    *next = Some(rec);
                }
                break;
            }
        }
    }

    fn next_replay_record(&mut self, metrics: &Metrics) -> Option<Record> {
        if let Phase::Replaying { next } = &mut self.phase {
            if let Some(r) = next.take() {
                return Some(r);
            }
        }
        loop {
            match self.spool.read_next() {
                Ok(Some(Item::Record(r))) => return Some(r),
                Ok(Some(Item::Damaged { bytes })) => {
                    Metrics::inc(&metrics.spool_damaged);
                    tracing::warn!(bytes, spool = %self.spool.dir().display(), "skipped a damaged stretch of the spool (its records are lost, counted in spool_damaged)");
                }
                Ok(None) => return None,
                Err(e) => {
                    Metrics::inc(&metrics.spool_errors);
                    tracing::error!(error = %e, "cannot read the spool for replay; retrying");
                    return None;
                }
            }
        }
    }

    /// The record the producer had no room for yet, if replay holds one.
    fn waiting_record(&self) -> Option<&Record> {
        match &self.phase {
            Phase::Replaying { next } => next.as_ref(),
            _ => None,
        }
    }

    /// Moves the spool cursor to the oldest replayed record not yet acknowledged.
    fn acknowledge(&mut self, kafka: &impl Transport, metrics: &Metrics) {
        let upto = kafka
            .replay_oldest_unacked()
            .or(self.waiting_record().map(|r| r.seq))
            .unwrap_or_else(|| self.spool.read_position());
        if upto > self.spool.cursor() {
            self.replay_stalls = 0;
        }
        if let Err(e) = self.spool.acknowledge(upto) {
            Metrics::inc(&metrics.spool_errors);
            tracing::error!(error = %e, "cannot delete an acknowledged spool segment; retrying");
        }
        if self.last_cursor_write.elapsed() >= self.cursor_every {
            self.last_cursor_write = Instant::now();
            if let Err(e) = self.spool.write_cursor() {
                Metrics::inc(&metrics.spool_errors);
                tracing::error!(error = %e, "cannot save the spool cursor; retrying");
            }
        }
    }

    /// Back to direct sending once the spool is empty and nothing of it is in flight.
    fn leave_if_drained(&mut self, kafka: &mut impl Transport) {
        let drained = self.spool.is_empty()
            && self.held.is_empty()
            && self.unsynced.is_empty()
            && self.waiting_record().is_none()
            && kafka.replay_in_flight() == 0;
        if !drained {
            return;
        }
        self.phase = Phase::Direct;
        let _ = self.spool.write_cursor();
        kafka.unpark();
        tracing::info!("spool replayed: sending directly to Kafka again");
    }
}

impl Spooling {
    fn open(
        cfg: &SpoolConfig,
        data: &std::path::Path,
        cursor_every: Duration,
        metrics: &Metrics,
    ) -> anyhow::Result<Spooling> {
        let dir = cfg.dir(data);
        let (spool, opened) = Spool::open(&dir, cfg.segment_size.0, cfg.max_size.0)?;
        if opened.torn_bytes > 0 {
            Metrics::add(&metrics.spool_torn_bytes, opened.torn_bytes);
            tracing::warn!(spool = %dir.display(), bytes = opened.torn_bytes, "cut off a record torn by a crash mid-write at the end of the spool (it was never fsynced, so its events are read again from their files)");
        }
        if opened.cursor_damaged {
            tracing::error!(spool = %dir.display(), "the spool cursor is damaged: replaying the whole spool (duplicates, nothing lost)");
        }
        if opened.pending > 0 {
            tracing::info!(spool = %dir.display(), events = opened.pending, "spool holds events from the last run: they go to Kafka first");
            // This run delivers them: they count as published by it, so that what it published
            // is what it acknowledged, failed, dropped, or still holds.
            Metrics::add(&metrics.events_published, opened.pending);
            Metrics::set(&metrics.spool_events, opened.pending);
        }
        Metrics::set(&metrics.spool_writable, 1);
        Ok(Spooling {
            phase: if opened.pending > 0 { Phase::Waiting } else { Phase::Direct },
            spool,
            fsync: cfg.fsync,
            when_full: cfg.when_full,
            held: Vec::new(),
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            replay_stalls: 0,
            cursor_every,
            last_cursor_write: Instant::now(),
            full_logged: false,
            error_logged: false,
            rate_at: (Instant::now(), 0),
        })
    }

    /// Writes the held events to the spool if there is room (after dropping, with a drop policy).
    fn write_held(&mut self, tracker: &AckTracker, metrics: &Metrics) {
        while !self.held.is_empty() {
            let entries: Vec<Entry<'_>> = self
                .held
                .iter()
                .map(|p| Entry {
                    topic: &p.topic,
                    key: p.key.as_deref(),
                    hash: p.hash,
                    id: p.id,
                    timestamp: p.timestamp,
                    payload: &p.payload,
                })
                .collect();
            match self.spool.append(&entries) {
                Ok(n) => {
                    Metrics::set(&metrics.spool_writable, 1);
                    self.unsynced.extend(self.held.drain(..n as usize).map(|p| p.opaque));
                    (self.full_logged, self.error_logged) = (false, false);
                    if self.fsync == FsyncPolicy::Batch {
                        self.sync_now(tracker, metrics);
                    }
                }
                Err(SpoolError::Full { .. }) => {
                    if !self.when_full(tracker, metrics) {
                        return;
                    }
                }
                Err(e @ SpoolError::Io { .. }) => {
                    Metrics::inc(&metrics.spool_errors);
                    Metrics::set(&metrics.spool_writable, 0);
                    if !std::mem::replace(&mut self.error_logged, true) {
                        tracing::error!(error = %e, "cannot write to the spool: reading pauses until it works again (nothing is lost)");
                    }
                    return;
                }
            }
        }
    }

    /// Applies `when_full`; true when room was made and the write should be tried again.
    fn when_full(&mut self, tracker: &AckTracker, metrics: &Metrics) -> bool {
        match self.when_full {
            WhenFull::Block => {
                Metrics::set(&metrics.spool_writable, 0);
                if !std::mem::replace(&mut self.full_logged, true) {
                    tracing::warn!(spool = %self.spool.dir().display(), bytes = self.spool.bytes(), "spool is full (queue.spool.max_size): reading pauses until Kafka takes events again");
                }
                false
            }
            WhenFull::DropNewest => {
                let n = self.held.len() as u64;
                for p in self.held.drain(..) {
                    let (slot, end) = p.slot_end();
                    tracker.done(slot, end);
                }
                Metrics::add(&metrics.spool_dropped, n);
                tracing::error!(
                    events = n,
                    "spool is full: dropped the newest events (when_full: drop_newest); counted in spool_dropped"
                );
                false
            }
            WhenFull::DropOldest => {
                match self.spool.drop_oldest() {
                    Ok(lost) => {
                        Metrics::add(&metrics.spool_dropped, lost);
                        tracing::error!(events = lost, "spool is full: deleted its oldest segment (when_full: drop_oldest); counted in spool_dropped");
                        true
                    }
                    Err(e) => {
                        Metrics::inc(&metrics.spool_errors);
                        tracing::error!(error = %e, "cannot delete the oldest spool segment");
                        false
                    }
                }
            }
        }
    }

    fn sync_if_due(&mut self, tracker: &AckTracker, metrics: &Metrics) {
        if let FsyncPolicy::Every(every) = self.fsync {
            if self.last_sync.elapsed() >= every.0 {
                self.sync_now(tracker, metrics);
            }
        }
    }

    /// Fsyncs the spool; the events written before are then done for the registry.
    fn sync_now(&mut self, tracker: &AckTracker, metrics: &Metrics) {
        self.last_sync = Instant::now();
        if self.unsynced.is_empty() {
            return;
        }
        match self.spool.sync() {
            Ok(()) => {
                Metrics::set(&metrics.spool_writable, 1);
                Metrics::add(&metrics.events_spooled, self.unsynced.len() as u64);
                for opaque in self.unsynced.drain(..) {
                    let (slot, end) = unpack(opaque);
                    tracker.done(slot, end);
                }
            }
            Err(e) => {
                Metrics::inc(&metrics.spool_errors);
                Metrics::set(&metrics.spool_writable, 0);
                if !std::mem::replace(&mut self.error_logged, true) {
                    tracing::error!(error = %e, "cannot fsync the spool: offsets wait until it works again (nothing is lost)");
                }
            }
        }
    }
}
