//! The Kafka output: events from the queue into librdkafka, delivery reports into the ack tracker.
//!
//! Owns the producer (a `ThreadedProducer`: one record per event, a small integer opaque mapping
//! each delivery report back to its file slot and end offset) and the per-topic partition state.
//! Invariants:
//! - every event taken from the queue is registered with the [`AckTracker`] before it is sent, in
//!   queue order, and is marked done exactly once: on delivery, on a permanent failure (logged with
//!   the topic and counted), or at once when it carries nothing to deliver;
//! - retriable failures are sent again (after `backoff.init`) for as long as it takes; librdkafka's
//!   own `message.timeout.ms` is infinite, so this is the rare path;
//! - nothing is dropped at shutdown: what is not acknowledged by the drain deadline stays
//!   unacknowledged and is read again after restart (records librdkafka purges when the producer
//!   is dropped are never marked done).

use super::partition::RoundRobin;
use crate::ack::{pack, unpack, AckTracker};
use crate::config::{is_secret_property, KafkaConfig, Partitioning};
use crate::metrics::Metrics;
use crate::queue::{Batch, Popped, Queue};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a metadata request may take before the output carries on without it.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A record whose delivery failed with a retriable error, waiting to be sent again.
struct Retry {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    opaque: usize,
    not_before: Instant,
}

/// Shared between the output thread and librdkafka's threads (delivery reports, statistics).
pub struct AgentContext {
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
    retries: Mutex<VecDeque<Retry>>,
    retry_backoff: Duration,
    /// Per topic, the partitions whose leader broker is up (from librdkafka's statistics).
    reachable: Mutex<HashMap<String, Vec<i32>>>,
    /// Topics whose permanent failure was already logged.
    failed_topics: Mutex<HashSet<String>>,
}

impl ClientContext for AgentContext {
    fn stats(&self, stats: Statistics) {
        let up: HashSet<i32> = stats.brokers.values().filter(|b| b.state == "UP").map(|b| b.nodeid).collect();
        let mut map = HashMap::new();
        for (name, topic) in &stats.topics {
            let mut parts: Vec<i32> = topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && up.contains(&p.leader))
                .map(|p| p.partition)
                .collect();
            parts.sort_unstable();
            map.insert(name.clone(), parts);
        }
        *self.reachable.lock().unwrap() = map;
    }
}

impl ProducerContext for AgentContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (slot, end) = unpack(opaque);
        match result {
            Ok(_) => {
                Metrics::inc(&self.metrics.events_acked);
                self.tracker.done(slot, end);
            }
            Err((err, _)) if is_purged(err) => {
                // Purged when the producer is dropped at shutdown: not delivered, so it stays
                // unacknowledged and is read again after restart. Never counted as done.
            }
            Err((err, msg)) if is_retriable(err) => {
                Metrics::inc(&self.metrics.events_retried);
                self.retries.lock().unwrap().push_back(Retry {
                    topic: msg.topic().to_string(),
                    partition: msg.partition(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    opaque,
                    not_before: Instant::now() + self.retry_backoff,
                });
            }
            Err((err, msg)) => {
                Metrics::inc(&self.metrics.events_failed);
                if self.failed_topics.lock().unwrap().insert(msg.topic().to_string()) {
                    tracing::error!(topic = msg.topic(), error = %err, "Kafka refused an event for good; it is counted in events_failed and skipped (logged once per topic)");
                }
                self.tracker.done(slot, end);
            }
        }
    }
}

fn is_purged(err: &KafkaError) -> bool {
    matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight))
}

fn is_retriable(err: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        err.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | QueueFull
                | AllBrokersDown
                | BrokerTransportFailure
                | NotLeaderForPartition
                | LeaderNotAvailable
                | RequestTimedOut
                | NetworkException
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | OperationTimedOut
                | BrokerNotAvailable
                | NotCoordinator
        )
    )
}

/// Builds the librdkafka client configuration from the output settings.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in cfg.client_properties() {
        cc.set(k, v);
    }
    if matches!(&cfg.partition, Partitioning::RoundRobin(rr) if rr.reachable_only) {
        cc.set("statistics.interval.ms", "1000");
    }
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
    /// Slot and end offset, packed ([`pack`]).
    opaque: usize,
}

struct TopicState {
    partitions: Vec<i32>,
    rr: RoundRobin,
}

pub struct KafkaOutput {
    /// `worker` producer instances: each has its own broker threads, so compression (done on the
    /// broker thread of the partition's leader) runs on several cores. A partition is always sent
    /// through the same producer, which keeps per-partition order.
    producers: Vec<ThreadedProducer<AgentContext>>,
    /// For records without an explicit partition: the producer to use next.
    next_producer: usize,
    /// With `reachable_only`: per topic, the partitions whose leader is up, copied from the
    /// statistics once per batch (they change at most once a second), not looked up per event.
    reachable: HashMap<String, Vec<i32>>,
    partitioning: Partitioning,
    topics: HashMap<Arc<str>, TopicState>,
    refresh_every: Duration,
    last_refresh: Instant,
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
}

impl KafkaOutput {
    pub fn new(cfg: &KafkaConfig, tracker: Arc<AckTracker>, metrics: Arc<Metrics>) -> anyhow::Result<KafkaOutput> {
        let workers = cfg.workers();
        let mut producers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let ctx = AgentContext {
                tracker: tracker.clone(),
                metrics: metrics.clone(),
                retries: Mutex::new(VecDeque::new()),
                retry_backoff: cfg.backoff.init.0,
                reachable: Mutex::new(HashMap::new()),
                failed_topics: Mutex::new(HashSet::new()),
            };
            producers.push(client_config(cfg).create_with_context(ctx)?);
        }
        tracing::info!(workers, "kafka producers created");
        Ok(KafkaOutput {
            producers,
            next_producer: 0,
            reachable: HashMap::new(),
            partitioning: cfg.partition.clone(),
            topics: HashMap::new(),
            refresh_every: cfg.metadata.refresh_frequency.0,
            last_refresh: Instant::now(),
            tracker,
            metrics,
        })
    }

    /// Sends everything from the queue until it is closed and empty, or `abort` is set.
    pub fn run(&mut self, queue: &Queue, abort: &AtomicBool) {
        loop {
            if abort.load(Ordering::Relaxed) {
                break;
            }
            match queue.pop(Duration::from_millis(50)) {
                Popped::Closed => break,
                Popped::Batch(batch) => self.send_batch(batch, abort),
                Popped::Empty => {}
            }
            self.send_retries(abort);
            if self.last_refresh.elapsed() >= self.refresh_every {
                self.refresh_topics();
            }
        }
    }

    /// Waits until every sent event is acknowledged or `deadline` passes; returns the number of
    /// events still unacknowledged.
    pub fn drain(&mut self, deadline: Instant, abort: &AtomicBool) -> usize {
        loop {
            self.send_retries(abort);
            let left = deadline.saturating_duration_since(Instant::now());
            for p in &self.producers {
                let _ = p.flush(left.min(Duration::from_millis(100)));
            }
            let retries: usize = self.producers.iter().map(|p| p.context().retries.lock().unwrap().len()).sum();
            let in_flight = self.tracker.in_flight();
            if (in_flight == 0 && retries == 0) || left.is_zero() || abort.load(Ordering::Relaxed) {
                return in_flight;
            }
        }
    }

    fn send_batch(&mut self, batch: Batch, abort: &AtomicBool) {
        if matches!(&self.partitioning, Partitioning::RoundRobin(rr) if rr.reachable_only) {
            self.reachable.clone_from(&self.producers[0].context().reachable.lock().unwrap());
        }
        for ev in batch.events {
            if !ev.deliver {
                self.tracker.register_done(ev.slot, ev.end_offset);
                continue;
            }
            let partition = self.choose_partition(&ev.topic);
            self.tracker.register(ev.slot, ev.end_offset);
            let opaque = pack(ev.slot, ev.end_offset);
            let producer = self.producer_for(partition);
            let out = Outgoing {
                producer,
                topic: &ev.topic,
                partition,
                key: ev.key.as_deref(),
                payload: &ev.payload,
                opaque,
            };
            self.send(out, abort);
        }
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

    fn choose_partition(&mut self, topic: &Arc<str>) -> Option<i32> {
        let Partitioning::RoundRobin(rr_cfg) = &self.partitioning else { return None };
        if !self.topics.contains_key(topic) {
            let partitions = self.fetch_partitions(topic);
            self.topics.insert(topic.clone(), TopicState { partitions, rr: RoundRobin::new(rr_cfg.group_events) });
        }
        let reachable = if rr_cfg.reachable_only { self.reachable.get(topic.as_ref()) } else { None };
        let st = self.topics.get_mut(topic).expect("inserted above");
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

    fn refresh_topics(&mut self) {
        self.last_refresh = Instant::now();
        let names: Vec<Arc<str>> = self.topics.keys().cloned().collect();
        for name in names {
            let fresh = self.fetch_partitions(&name);
            if !fresh.is_empty() {
                self.topics.get_mut(&name).expect("listed").partitions = fresh;
            }
        }
    }

    /// Hands one record to its producer, waiting while that producer's queue is full.
    fn send(&self, r: Outgoing<'_>, abort: &AtomicBool) {
        let Outgoing { producer, topic, partition, key, payload, opaque } = r;
        let mut rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, opaque).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        loop {
            match self.producers[producer].send(rec) {
                Ok(()) => {
                    Metrics::inc(&self.metrics.events_published);
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if abort.load(Ordering::Relaxed) {
                        // Shutdown deadline: the event stays unacknowledged and is read again.
                        return;
                    }
                    rec = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => {
                    Metrics::inc(&self.metrics.events_failed);
                    tracing::error!(topic, error = %e, "cannot hand event to the producer; counted in events_failed");
                    let (slot, end) = unpack(opaque);
                    self.tracker.done(slot, end);
                    return;
                }
            }
        }
    }

    fn send_retries(&self, abort: &AtomicBool) {
        let now = Instant::now();
        for (i, producer) in self.producers.iter().enumerate() {
            loop {
                let next = {
                    let mut q = producer.context().retries.lock().unwrap();
                    match q.front() {
                        Some(r) if r.not_before <= now => q.pop_front(),
                        _ => None,
                    }
                };
                let Some(r) = next else { break };
                let partition = (r.partition >= 0).then_some(r.partition);
                let out = Outgoing {
                    producer: i,
                    topic: &r.topic,
                    partition,
                    key: r.key.as_deref(),
                    payload: &r.payload,
                    opaque: r.opaque,
                };
                self.send(out, abort);
            }
        }
    }
}

/// `agent test output`: connects, fetches the topic's metadata, and describes partitions and leaders.
pub fn test_output(cfg: &KafkaConfig) -> anyhow::Result<String> {
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = client_config(cfg).create()?;
    let topic = crate::event::Format::parse(&cfg.topic).map_err(anyhow::Error::msg)?.as_static();
    let md = producer.client().fetch_metadata(topic.as_deref(), Duration::from_secs(10))?;
    let mut out = String::new();
    for b in md.brokers() {
        out.push_str(&format!("broker {} at {}:{}\n", b.id(), b.host(), b.port()));
    }
    for t in md.topics() {
        if let Some(err) = t.error() {
            out.push_str(&format!("topic {}: error {:?}\n", t.name(), err));
            continue;
        }
        out.push_str(&format!("topic {}: {} partitions\n", t.name(), t.partitions().len()));
        for p in t.partitions() {
            out.push_str(&format!("  partition {} leader {}\n", p.id(), p.leader()));
        }
    }
    if md.topics().is_empty() {
        out.push_str("no topic metadata returned (dynamic topic format: nothing to check)\n");
    }
    Ok(out)
}
