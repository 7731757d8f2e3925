//! The Kafka output: events and replayed spool records into librdkafka, delivery reports into the
//! ack tracker (file offsets) or the replay window (spool cursor).
//!
//! Owns the producers (`ThreadedProducer`s: one record per event, a small integer opaque mapping
//! each delivery report back to its file slot and end offset, or to its spool sequence number),
//! the per-topic partition state and the signals of Kafka's health (last acknowledgement, "all
//! brokers down", the reachability probe). Split by job: this file sends (partition choice,
//! waiting for room, retries, parking for the spool, Kafka's health); `delivery` is what
//! librdkafka's threads call back into (delivery reports, statistics, logs) and classifies each
//! failure; `probe` asks whether Kafka answers while the output spools. Invariants:
//! - every event taken from the queue is registered with the [`AckTracker`] before it is sent, in
//!   queue order, and is marked done exactly once: on delivery, on a permanent failure (logged with
//!   the topic and counted), at once when it carries nothing to deliver, or by the spooling output
//!   once it is parked and fsynced in the spool;
//! - a record keeps its timestamp (the event's time) through every send: retried, held, parked
//!   and spooled, or replayed (`Shared::record_time` for the records librdkafka hands back);
//! - every failure except a refusal of the record itself (`is_permanent`) is sent again (after
//!   `backoff.init`) for as long as it takes; librdkafka's own `message.timeout.ms` is infinite,
//!   so this is the rare path;
//! - a record whose *topic* Kafka refuses (`refuses_topic`: authorization, or a topic that does
//!   not exist with creation off) is *held*: not dropped, not spooled, sent again every
//!   `backoff.max`, and not counted as Kafka being unreachable (a refusal is an answer); the topic
//!   is in [`Refusals`] (`/healthz` is 503) until Kafka acknowledges a record for it;
//! - while parking is on (the output is spooling), a file event that comes back from librdkafka
//!   (purged or failed retriably) is handed to the output to spool, never sent again directly, so
//!   nothing overtakes the spool;
//! - a producer that failed (librdkafka's fatal error, or a fenced producer id) is replaced, and
//!   every record it held is sent again through the new one ([`KafkaOutput::restart_failed`]);
//!   the worker's retry and held queues (`delivery::Pending`) outlive its producers;
//! - nothing is dropped at shutdown: what is not acknowledged by the drain deadline stays
//!   unacknowledged and is read again after restart (records librdkafka purges when the producer
//!   is dropped are never marked done).

mod delivery;
pub mod gzip;
mod probe;

use super::partition::RoundRobin;
use super::transport::Transport;
use crate::ack::{pack, unpack, AckTracker, ReplayWindow, REPLAY_BIT};
use crate::config::{is_secret_property, KafkaConfig, Partitioning};
use crate::event::id::EventId;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::spool::format::Record;
use crate::status::{Heartbeat, Refusals};
use crate::tls_check::TlsCheck;
use delivery::{is_permanent, partition_unknown, refuses_topic, AgentContext, Pending};
use probe::Probe;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a metadata request may take before the output carries on without it.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// With librdkafka reporting all brokers down, outstanding events wait at most this long before
/// Kafka counts as unreachable (sooner than `unhealthy_after`, which covers silent stalls).
const ALL_DOWN_GRACE: Duration = Duration::from_secs(1);
/// How long parking waits for librdkafka to hand back purged records.
const PURGE_WAIT: Duration = Duration::from_secs(5);
/// With this many records held for refused topics, the output takes no new events: memory stays
/// bounded, and reading waits as it does for a full queue.
pub const HELD_LIMIT: usize = 4096;
/// The record header that carries the event's id ([`crate::event::id`]).
pub const ID_HEADER: &str = "_id";

/// A record whose delivery failed with a retriable error, waiting to be sent again.
struct Retry {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    id: Option<EventId>,
    timestamp: Option<i64>,
    opaque: usize,
    not_before: Instant,
}

impl Retry {
    /// A record to send again (when: set by the queue it goes to).
    fn of(
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        payload: &[u8],
        id: Option<EventId>,
        timestamp: Option<i64>,
        opaque: usize,
    ) -> Retry {
        Retry {
            topic: topic.to_string(),
            partition,
            key: key.map(<[u8]>::to_vec),
            payload: payload.to_vec(),
            id,
            timestamp,
            opaque,
            not_before: Instant::now(),
        }
    }
}

/// A file event taken back from the producer (or never handed to it) for the spool. It is
/// registered with the ack tracker and not done.
#[derive(Debug)]
pub struct Parked {
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    /// [`Event::partition_hash`]; for a record taken back from librdkafka, its partition (a
    /// partition id is its own index, so the record goes back where it was while the topic keeps
    /// its partition count, as Filebeat's stable partitioner does).
    pub hash: Option<u32>,
    pub payload: Vec<u8>,
    /// The event's id, sent as the `_id` header and kept in the spool.
    pub id: Option<EventId>,
    /// The record's timestamp ([`Event::timestamp`]), kept in the spool.
    pub timestamp: Option<i64>,
    /// Slot and end offset, packed ([`pack`]).
    pub opaque: usize,
}

impl Parked {
    /// Registers an event with the ack tracker, in queue order, and returns it ready to send or
    /// spool (counted once in `events_published`); an event with nothing to deliver is done at
    /// once and `None` is returned.
    pub fn register(ev: Event, tracker: &AckTracker, metrics: &Metrics) -> Option<Parked> {
        if !ev.deliver {
            tracker.register_done(ev.slot, ev.end_offset);
            return None;
        }
        Metrics::inc(&metrics.events_published);
        tracker.register(ev.slot, ev.end_offset, ev.read_at, ev.timestamp);
        let opaque = pack(ev.slot, ev.end_offset);
        Some(Parked {
            topic: ev.topic,
            key: ev.key,
            hash: ev.partition_hash,
            payload: ev.payload,
            id: ev.id,
            timestamp: ev.timestamp,
            opaque,
        })
    }

    pub fn slot_end(&self) -> (u32, u64) {
        unpack(self.opaque)
    }
}

/// Shared by all producers' contexts and the output thread.
struct Shared {
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
    replay: ReplayWindow,
    /// Milliseconds since `epoch` of the last acknowledgement.
    last_ack_ms: AtomicU64,
    epoch: Instant,
    all_down: AtomicBool,
    /// While set, file events coming back from librdkafka go to `parked` (the output spools them).
    parking: AtomicBool,
    parked: Mutex<Vec<Parked>>,
    /// `partition.hash.hash` is set: a record taken back keeps its partition as its hash.
    fields_hashed: bool,
    /// Per producer, the brokers it is connected to (from its statistics).
    up_by_worker: Mutex<Vec<HashSet<i32>>>,
    /// Topics Kafka refuses now (shared with `/healthz`, which only reads it).
    refused: Arc<Refusals>,
    /// Records held for refused topics, waiting in the producers' `held` queues.
    held: AtomicUsize,
    /// How long a held record waits before it is sent again (`backoff.max`).
    held_wait: Duration,
    /// The agent's own check of a broker certificate librdkafka could not verify.
    tls_check: Option<TlsCheck>,
}

impl Shared {
    /// The hash a record taken back from librdkafka keeps (see [`Parked::hash`]).
    fn kept_hash(&self, partition: i32) -> Option<u32> {
        (self.fields_hashed && partition >= 0).then_some(partition as u32)
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `at` in milliseconds since `epoch`.
    fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The timestamp a record in flight was sent with, by its opaque: librdkafka reports a failed
    /// record without it, and it is sent again (or spooled) with the time it had.
    fn record_time(&self, opaque: usize) -> Option<i64> {
        if opaque & REPLAY_BIT != 0 {
            self.replay.record_time((opaque & !REPLAY_BIT) as u64)
        } else {
            let (slot, end) = unpack(opaque);
            self.tracker.record_time(slot, end)
        }
    }
}

/// Builds the librdkafka client configuration from the output settings.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in cfg.client_properties() {
        cc.set(k, v);
    }
    // Statistics every second: which brokers are up (`/healthz`, `output_brokers_up`) and, for
    // `reachable_only`, which partitions have a reachable leader.
    cc.set("statistics.interval.ms", "1000");
    cc
}

/// The librdkafka properties, with secrets masked, for a start-up log line.
pub fn describe(cfg: &KafkaConfig) -> String {
    cfg.client_properties()
        .into_iter()
        .map(|(k, v)| if is_secret_property(&k) { format!("{k}=*****") } else { format!("{k}={v}") })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One record on its way to a producer.
struct Outgoing<'a> {
    producer: usize,
    topic: &'a str,
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    id: Option<EventId>,
    /// Milliseconds since 1970; `None`: librdkafka stamps the send time.
    timestamp: Option<i64>,
    /// Slot and end offset ([`pack`]), or [`REPLAY_BIT`] and a spool sequence number.
    opaque: usize,
}

/// What became of a record handed to [`KafkaOutput::send`].
enum Sent {
    Queued,
    /// The producer's queue stayed full and Kafka counts as unreachable (only when giving up is
    /// allowed), or the shutdown deadline passed: the record was not queued.
    GaveUp,
}

struct TopicState {
    partitions: Vec<i32>,
    rr: RoundRobin,
}

pub struct KafkaOutput {
    /// `worker` producer instances: each has its own broker threads, so compression (done on the
    /// broker thread of the partition's leader) runs on several cores. A partition is always sent
    /// through the same producer, which keeps per-partition order.
    producers: Vec<Arc<ThreadedProducer<AgentContext>>>,
    /// For records without an explicit partition: the producer to use next.
    next_producer: usize,
    /// With `reachable_only`: per topic, the partitions whose leader is up, copied from the
    /// statistics once per batch (they change at most once a second), not looked up per event.
    reachable: HashMap<String, Vec<i32>>,
    partitioning: Partitioning,
    topics: HashMap<Arc<str>, TopicState>,
    refresh_every: Duration,
    last_refresh: Instant,
    shared: Arc<Shared>,
    /// When the producers last had nothing outstanding (a stall is measured from here or from
    /// the last acknowledgement, whichever is later).
    idle_at: Instant,
    /// How long outstanding events may go unacknowledged before Kafka counts as unreachable
    /// (`queue.spool.unhealthy_after`): the output then spools, or without a spool reports
    /// itself stalled and waits, as Filebeat does.
    unhealthy_after: Duration,
    /// A spool can take over (events are given up to it when Kafka is unreachable).
    spool_backed: bool,
    probe: Option<Probe>,
    /// `headers`: added to every record.
    headers: Vec<(String, String)>,
    /// `event_id_header`: the event's id goes in the `_id` header too.
    id_header: bool,
    /// The output thread's heartbeat (`/livez`), beaten by the output's loops ([`Self::beat`])
    /// and while a send waits for room in librdkafka's queue.
    heartbeat: Heartbeat,
    /// What a producer is built from, kept to rebuild one after a fatal error.
    recipe: Recipe,
}

/// What [`KafkaOutput`] builds each producer from.
struct Recipe {
    client: ClientConfig,
    retry_backoff: Duration,
    rdlog: Arc<crate::rdlog::RdLog>,
}

impl Recipe {
    fn build(
        &self,
        shared: &Arc<Shared>,
        worker: usize,
        pending: Arc<Pending>,
    ) -> anyhow::Result<Arc<ThreadedProducer<AgentContext>>> {
        let ctx = AgentContext::new(shared.clone(), worker, pending, self.retry_backoff, self.rdlog.clone());
        Ok(Arc::new(self.client.create_with_context(ctx)?))
    }
}

impl KafkaOutput {
    /// `probe_every` (how often a spooling output asks whether Kafka answers) is set when a spool
    /// can take over.
    pub fn new(
        cfg: &KafkaConfig,
        tracker: Arc<AckTracker>,
        metrics: Arc<Metrics>,
        refused: Arc<Refusals>,
        unhealthy_after: Duration,
        probe_every: Option<Duration>,
    ) -> anyhow::Result<KafkaOutput> {
        let shared = Arc::new(Shared {
            tracker,
            metrics,
            replay: ReplayWindow::default(),
            last_ack_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            all_down: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            parked: Mutex::new(Vec::new()),
            fields_hashed: matches!(&cfg.partition, Partitioning::Hash(h) if !h.hash.is_empty()),
            up_by_worker: Mutex::new(vec![HashSet::new(); cfg.workers()]),
            refused,
            held: AtomicUsize::new(0),
            held_wait: cfg.backoff.max.0,
            tls_check: TlsCheck::from_client_config(&client_config(cfg)),
        });
        if let Partitioning::Hash(h) = &cfg.partition {
            if !h.hash.is_empty() && h.random == Some(false) {
                tracing::warn!("output.kafka.partition.hash.random: false is not applied: an event whose hash fields are missing goes to a random partition (Filebeat drops it)");
            }
        }
        let workers = cfg.workers();
        let recipe = Recipe {
            client: client_config(cfg),
            retry_backoff: cfg.backoff.init.0,
            rdlog: Arc::new(crate::rdlog::RdLog::new("output")),
        };
        let producers = (0..workers)
            .map(|worker| recipe.build(&shared, worker, Arc::default()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        tracing::info!(workers, idempotent = cfg.idempotent(), "kafka producers created");
        let probe = probe_every.map(|every| Probe::start(producers[0].clone(), every));
        Ok(KafkaOutput {
            producers,
            next_producer: 0,
            reachable: HashMap::new(),
            partitioning: cfg.partition.clone(),
            topics: HashMap::new(),
            refresh_every: cfg.metadata.refresh_frequency.0,
            last_refresh: Instant::now(),
            shared,
            idle_at: Instant::now(),
            unhealthy_after,
            spool_backed: probe_every.is_some(),
            probe,
            headers: cfg.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect(),
            id_header: cfg.event_id_header,
            heartbeat: Heartbeat::detached("output"),
            recipe,
        })
    }

    /// Replaces each producer that failed: librdkafka raised a fatal error on it (with the
    /// idempotent producer, a broken sequence it cannot repair; the producer then takes nothing
    /// more), or the broker fenced its producer id. What the old producer held comes back through
    /// its delivery reports into the worker's `Pending` records, which the new producer sends:
    /// at least once, never lost. Logged as an error and counted in `output_producer_restarts`.
    pub fn restart_failed(&mut self) {
        for i in 0..self.producers.len() {
            let ctx = self.producers[i].context();
            // librdkafka's own record of a fatal error (an atomic read while there is none)
            // decides; the context's flag, also set from its log line, covers a fenced id.
            let why = match self.producers[i].client().fatal_error() {
                Some((code, reason)) => format!("librdkafka raised a fatal error: {code}: {reason}"),
                None if ctx.failed.load(Ordering::Relaxed) => {
                    let fenced = ctx.fenced.lock().unwrap().clone().unwrap_or_default();
                    format!("the broker fenced its producer id: {fenced}")
                }
                None => continue,
            };
            ctx.failed.store(true, Ordering::Relaxed);
            let pending = ctx.pending.clone();
            let fresh = match self.recipe.build(&self.shared, i, pending) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(worker = i, error = %e, "cannot rebuild the failed Kafka producer; trying again");
                    continue;
                }
            };
            let old = std::mem::replace(&mut self.producers[i], fresh);
            Metrics::inc(&self.shared.metrics.output_producer_restarts);
            tracing::error!(worker = i, why, "a Kafka producer failed: it is replaced, and the events it held are sent again (a consumer may see some twice, with the same _id)");
            if i == 0 {
                // The probe holds producer 0: it moves to the new one, keeping its state.
                if let Some(old_probe) = self.probe.take() {
                    let probe = Probe::start(self.producers[0].clone(), old_probe.every);
                    probe.wanted.store(old_probe.wanted.load(Ordering::Relaxed), Ordering::Relaxed);
                    probe.answered.store(old_probe.answered.load(Ordering::Relaxed), Ordering::Relaxed);
                    self.probe = Some(probe);
                }
            }
            // Records still queued or in flight in the old producer come back (purged) as
            // retries into `pending`; dropping it serves the last reports.
            old.purge(PurgeConfig::default().queue().inflight());
            let _ = old.flush(PURGE_WAIT);
        }
    }

    pub fn set_heartbeat(&mut self, heartbeat: Heartbeat) {
        self.heartbeat = heartbeat;
    }

    /// The producer that owns `partition`; records without one go to each producer in turn.
    fn producer_for(&mut self, partition: Option<i32>) -> usize {
        match partition {
            Some(p) => p.unsigned_abs() as usize % self.producers.len(),
            None => {
                self.next_producer = (self.next_producer + 1) % self.producers.len();
                self.next_producer
            }
        }
    }

    /// The partition for a record (`None`: librdkafka's partitioner picks one at random).
    fn choose_partition(&mut self, topic: &str, key: Option<&[u8]>, hash: Option<u32>) -> Option<i32> {
        let by_fields = self.shared.fields_hashed;
        let (group_events, reachable_only) = match &self.partitioning {
            Partitioning::RoundRobin(rr) => (rr.group_events, rr.reachable_only),
            // A record whose fields could not be hashed goes where librdkafka puts it: a random
            // partition (by its key's murmur2 if it has a key).
            Partitioning::Hash(_) if by_fields && hash.is_none() => return None,
            Partitioning::Hash(_) if by_fields || key.is_some() => (1, false),
            _ => return None,
        };
        if !self.topics.contains_key(topic) {
            let partitions = self.fetch_partitions(topic);
            self.topics.insert(topic.into(), TopicState { partitions, rr: RoundRobin::new(group_events) });
        }
        let st = self.topics.get_mut(topic).expect("inserted above");
        if let (Partitioning::Hash(_), Some(h)) = (&self.partitioning, hash.filter(|_| by_fields)) {
            return super::partition::partition_of(h, &st.partitions);
        }
        if let (Partitioning::Hash(_), Some(key)) = (&self.partitioning, key) {
            return super::partition::filebeat_hash(key, &st.partitions);
        }
        let reachable = if reachable_only { self.reachable.get(topic) } else { None };
        st.rr.choose(&st.partitions, reachable.map(Vec::as_slice))
    }

    fn fetch_partitions(&self, topic: &str) -> Vec<i32> {
        match self.producers[0].client().fetch_metadata(Some(topic), METADATA_TIMEOUT) {
            Ok(md) => {
                let mut p: Vec<i32> = md
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic)
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                p.sort_unstable();
                if p.is_empty() {
                    tracing::warn!(topic, "topic has no partitions in the metadata yet; librdkafka will place records until the next refresh");
                }
                p
            }
            Err(e) => {
                tracing::warn!(topic, error = %e, "cannot fetch topic metadata; librdkafka will place records until the next refresh");
                Vec::new()
            }
        }
    }

    fn record<'a>(&self, r: &'a Outgoing<'a>) -> BaseRecord<'a, [u8], [u8], usize> {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(r.topic, r.opaque).payload(r.payload);
        if let Some(k) = r.key {
            rec = rec.key(k);
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        if let Some(t) = r.timestamp {
            rec = rec.timestamp(t);
        }
        // The event's id as `_id`, then `output.kafka.headers`, on every record (replayed spool
        // records included).
        let id = r.id.filter(|_| self.id_header);
        if id.is_some() || !self.headers.is_empty() {
            let mut h = rdkafka::message::OwnedHeaders::new_with_capacity(self.headers.len() + 1);
            if let Some(id) = &id {
                h = h.insert(rdkafka::message::Header { key: ID_HEADER, value: Some(id.as_bytes()) });
            }
            for (key, value) in &self.headers {
                h = h.insert(rdkafka::message::Header { key, value: Some(value.as_bytes()) });
            }
            rec = rec.headers(h);
        }
        rec
    }

    /// One attempt; `Err` when the producer's queue is full. Other errors are permanent failures
    /// (counted, and the record is done).
    fn try_send(&self, r: &Outgoing<'_>) -> Result<(), ()> {
        match self.producers[r.producer].send(self.record(r)) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Err(()),
            Err((e, _)) if refuses_topic(&e) => {
                let ctx = self.producers[r.producer].context();
                ctx.hold(&e, Retry::of(r.topic, -1, r.key, r.payload, r.id, r.timestamp, r.opaque));
                Ok(())
            }
            Err((e, _)) if !is_permanent(&e) => {
                let partition = if partition_unknown(&e) { -1 } else { r.partition.unwrap_or(-1) };
                let ctx = self.producers[r.producer].context();
                ctx.retry_later(&e, Retry::of(r.topic, partition, r.key, r.payload, r.id, r.timestamp, r.opaque));
                Ok(())
            }
            Err((e, _)) => {
                Metrics::inc(&self.shared.metrics.events_failed);
                tracing::error!(topic = r.topic, error = %e, "cannot hand event to the producer; counted in events_failed");
                if r.opaque & REPLAY_BIT != 0 {
                    self.shared.replay.done((r.opaque & !REPLAY_BIT) as u64);
                } else {
                    let (slot, end) = unpack(r.opaque);
                    self.shared.tracker.done(slot, end);
                }
                Ok(())
            }
        }
    }

    /// Hands one record to its producer, waiting while that producer's queue is full: until
    /// the drain deadline, or (when `may_give_up` and a spool exists) until Kafka counts as unreachable.
    fn send(&mut self, r: Outgoing<'_>, stop: &Shutdown, may_give_up: bool) -> Sent {
        let mut waited = 0u32;
        loop {
            if self.try_send(&r).is_ok() {
                return Sent::Queued;
            }
            if stop.drain_over() {
                // Shutdown deadline: the event stays unacknowledged and is read again.
                return Sent::GaveUp;
            }
            waited += 1;
            if waited % 50 == 0 {
                self.heartbeat.beat();
            }
            if may_give_up && waited % 50 == 0 && self.unhealthy(1) {
                return Sent::GaveUp;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Records waiting for Kafka to answer: [`KafkaOutput::outstanding`] without the held ones,
    /// which wait for an operator, not for Kafka.
    fn awaiting_kafka(&self) -> usize {
        self.producers
            .iter()
            .map(|p| p.in_flight_count().max(0) as usize + p.context().pending.retries.lock().unwrap().len())
            .sum()
    }
}

impl Transport for KafkaOutput {
    /// One turn of the output thread's loop (`/livez`).
    fn beat(&self) {
        self.heartbeat.beat();
    }

    /// Copies per-batch state (reachable partitions) before a batch is sent.
    fn begin_batch(&mut self) {
        if matches!(&self.partitioning, Partitioning::RoundRobin(rr) if rr.reachable_only) {
            self.reachable.clone_from(&self.producers[0].context().reachable.lock().unwrap());
        }
    }

    /// Registers one event with the ack tracker and hands it to a producer. Returns it, still
    /// registered, when Kafka counts as unreachable while the producer's queue is full (only with
    /// a spool) or the stop's drain deadline passed.
    fn send_event(&mut self, ev: Event, stop: &Shutdown) -> Result<(), Parked> {
        let Some(p) = Parked::register(ev, &self.shared.tracker, &self.shared.metrics) else { return Ok(()) };
        let partition = self.choose_partition(&p.topic, p.key.as_deref(), p.hash);
        let producer = self.producer_for(partition);
        let out = Outgoing {
            producer,
            topic: &p.topic,
            partition,
            key: p.key.as_deref(),
            payload: &p.payload,
            id: p.id,
            timestamp: p.timestamp,
            opaque: p.opaque,
        };
        match self.send(out, stop, true) {
            Sent::Queued => Ok(()),
            Sent::GaveUp => Err(p),
        }
    }

    /// Sends one replayed spool record; false when the producer's queue is full (try again later).
    fn send_replay(&mut self, rec: &Record) -> bool {
        let partition = self.choose_partition(&rec.topic, rec.key.as_deref(), rec.hash);
        let producer = self.producer_for(partition);
        let opaque = REPLAY_BIT | rec.seq as usize;
        let out = Outgoing {
            producer,
            topic: &rec.topic,
            partition,
            key: rec.key.as_deref(),
            payload: &rec.payload,
            id: rec.id,
            timestamp: rec.timestamp,
            opaque,
        };
        // In the window before the attempt, so a permanent failure inside it can mark it done.
        self.shared.replay.sent(rec.seq, rec.timestamp);
        match self.try_send(&out) {
            Ok(()) => true,
            Err(()) => {
                self.shared.replay.unsend(rec.seq);
                false
            }
        }
    }

    /// The lowest replayed sequence number not yet acknowledged; `None` when none is in flight.
    fn replay_oldest_unacked(&self) -> Option<u64> {
        self.shared.replay.oldest_unacked()
    }

    fn replay_in_flight(&self) -> usize {
        self.shared.replay.len()
    }

    /// Refreshes the partitions of known topics every `metadata.refresh_frequency`.
    fn refresh_topics_if_due(&mut self) {
        if self.last_refresh.elapsed() < self.refresh_every {
            return;
        }
        self.last_refresh = Instant::now();
        let names: Vec<Arc<str>> = self.topics.keys().cloned().collect();
        for name in names {
            let fresh = self.fetch_partitions(&name);
            if !fresh.is_empty() {
                self.topics.get_mut(&name).expect("listed").partitions = fresh;
            }
        }
    }

    /// Sends again the records whose delivery failed with a retriable error, once their backoff passed.
    /// Held records (refused topics) go again once `backoff.max` passed.
    fn send_retries(&mut self, stop: &Shutdown) {
        self.restart_failed();
        let now = Instant::now();
        for i in 0..self.producers.len() {
            loop {
                let next = {
                    let ctx = self.producers[i].context();
                    let due = |q: &mut VecDeque<Retry>| match q.front() {
                        Some(r) if r.not_before <= now => q.pop_front(),
                        _ => None,
                    };
                    due(&mut ctx.pending.retries.lock().unwrap()).map(|r| (r, false)).or_else(|| {
                        let r = due(&mut ctx.pending.held.lock().unwrap());
                        if r.is_some() {
                            self.shared.held.fetch_sub(1, Ordering::Relaxed);
                        }
                        r.map(|r| (r, true))
                    })
                };
                let Some((r, was_held)) = next else { break };
                let partition = (r.partition >= 0).then_some(r.partition);
                let out = Outgoing {
                    producer: i,
                    topic: &r.topic,
                    partition,
                    key: r.key.as_deref(),
                    payload: &r.payload,
                    id: r.id,
                    timestamp: r.timestamp,
                    opaque: r.opaque,
                };
                if let Sent::GaveUp = self.send(out, stop, true) {
                    // Kept for later where it came from: a retry (which the spool takes when it
                    // parks), or a held record (never spooled; see the module's invariants).
                    let ctx = self.producers[i].context();
                    if was_held {
                        self.shared.held.fetch_add(1, Ordering::Relaxed);
                        ctx.pending.held.lock().unwrap().push_front(r);
                    } else {
                        ctx.pending.retries.lock().unwrap().push_front(r);
                    }
                    return;
                }
            }
        }
    }

    /// Records in librdkafka (queued, in flight, or with an unserved report), retries waiting, and
    /// records held for refused topics.
    fn outstanding(&self) -> usize {
        self.awaiting_kafka() + self.held()
    }

    /// Records held because Kafka refuses their topic.
    fn held(&self) -> usize {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// True when a spool exists and Kafka counts as unreachable: records are outstanding and
    /// none was acknowledged for `unhealthy_after` times `patience` (1 s once librdkafka reports
    /// all brokers down).
    fn unhealthy(&mut self, patience: u32) -> bool {
        self.spool_backed && self.stalled(patience)
    }

    /// Whether records are outstanding and none was acknowledged for `unhealthy_after` times
    /// `patience`, with or without a spool (`/healthz`; without a spool reading then waits).
    fn stalled(&mut self, patience: u32) -> bool {
        if self.awaiting_kafka() == 0 {
            self.idle_at = Instant::now();
            return false;
        }
        let last_ack = self.shared.epoch + Duration::from_millis(self.shared.last_ack_ms.load(Ordering::Relaxed));
        let since = last_ack.max(self.idle_at);
        let after = self.unhealthy_after * patience.max(1);
        let limit = if self.shared.all_down.load(Ordering::Relaxed) { after.min(ALL_DOWN_GRACE) } else { after };
        since.elapsed() >= limit
    }

    /// Why the brokers refuse the connection (TLS or SASL), when that is why nothing gets through.
    fn connection_refused(&self) -> Option<String> {
        self.shared.refused.connection()
    }

    /// Takes every file event back from librdkafka for the spool: turns parking on, purges the
    /// producers' queues and in-flight requests, and collects what comes back plus the retries
    /// waiting, in per-file order (slot, then offset). Replayed records are dropped from librdkafka
    /// and the replay window (replay restarts from the spool cursor).
    fn park_all(&mut self) -> Vec<Parked> {
        self.shared.parking.store(true, Ordering::Relaxed);
        for p in &self.producers {
            p.purge(PurgeConfig::default().queue().inflight());
        }
        let until = Instant::now() + PURGE_WAIT;
        for p in &self.producers {
            let _ = p.flush(until.saturating_duration_since(Instant::now()));
        }
        let mut parked = self.take_parked();
        for p in &self.producers {
            for r in p.context().pending.retries.lock().unwrap().drain(..) {
                if r.opaque & REPLAY_BIT == 0 {
                    let hash = self.shared.kept_hash(r.partition);
                    parked.push(Parked {
                        topic: r.topic.into(),
                        key: r.key,
                        hash,
                        payload: r.payload,
                        id: r.id,
                        timestamp: r.timestamp,
                        opaque: r.opaque,
                    });
                }
            }
        }
        parked.sort_by_key(|p| p.opaque);
        // Held replayed records go with the replay window: replay starts again from the cursor.
        for p in &self.producers {
            let mut held = p.context().pending.held.lock().unwrap();
            let before = held.len();
            held.retain(|r| r.opaque & REPLAY_BIT == 0);
            self.shared.held.fetch_sub(before - held.len(), Ordering::Relaxed);
        }
        self.shared.replay.clear();
        self.idle_at = Instant::now();
        if let Some(probe) = &self.probe {
            probe.answered.store(false, Ordering::Relaxed);
            probe.wanted.store(true, Ordering::Relaxed);
        }
        parked
    }

    /// File events that came back from librdkafka since the last call (while parking).
    fn take_parked(&self) -> Vec<Parked> {
        std::mem::take(&mut *self.shared.parked.lock().unwrap())
    }

    /// Whether the probe reached Kafka since parking began (Kafka is worth trying again).
    fn answered(&self) -> bool {
        self.probe.as_ref().is_some_and(|p| p.answered.load(Ordering::Relaxed))
    }

    /// Replay starts now: a stall is measured from this moment, not from when Kafka went away.
    fn restart_stall_clock(&mut self) {
        self.idle_at = Instant::now();
        self.shared.all_down.store(false, Ordering::Relaxed);
    }

    /// Back to sending directly: parking and probing off.
    fn unpark(&mut self) {
        self.shared.parking.store(false, Ordering::Relaxed);
        if let Some(probe) = &self.probe {
            probe.wanted.store(false, Ordering::Relaxed);
        }
        self.idle_at = Instant::now();
    }

    /// Serves delivery reports for up to `wait`.
    fn flush(&self, wait: Duration) {
        for p in &self.producers {
            let _ = p.flush(wait);
        }
    }
}

impl Drop for KafkaOutput {
    fn drop(&mut self) {
        // The probe first (its thread holds a producer), as before the producers go.
        self.probe.take();
    }
}
