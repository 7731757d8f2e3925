//! The producers' side of the Kafka output: what librdkafka's threads call back into. Each
//! producer's [`AgentContext`] turns a delivery report into its outcome (acknowledged, refused
//! for good, held for a refused topic, taken back for the spool, retried), keeps the records to
//! send again, and reads the statistics (brokers up, reachable partitions). Invariant: every
//! report ends in exactly one outcome, classified by [`is_permanent`], [`refuses_topic`],
//! [`is_purged`] and [`partition_unknown`] (the module's parent states the guarantees).
//! Once a producer is to be replaced (librdkafka raised a fatal error on it, or the broker fenced
//! its producer id), every record it gives back (purged included) is queued to be sent again: the
//! output rebuilds that producer ([`Pending`] outlives it) and sends them through the new one.

use super::{Parked, Retry, Shared, ID_HEADER};
use crate::ack::{unpack, REPLAY_BIT};
use crate::event::id::EventId;
use crate::metrics::Metrics;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The records one worker has to send again. It belongs to the worker, not to its producer: a
/// producer rebuilt after a fatal error takes these over, and a late report from the old one
/// still lands here.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) retries: Mutex<VecDeque<Retry>>,
    /// Records whose topic Kafka refuses, sent again after `held_wait` (apart from `retries`, so
    /// their long wait never holds up a retry queued behind them).
    pub(super) held: Mutex<VecDeque<Retry>>,
}

/// Shared between the output thread and librdkafka's threads (delivery reports, statistics).
pub struct AgentContext {
    shared: Arc<Shared>,
    /// This producer's index among the output's producers.
    worker: usize,
    pub(super) pending: Arc<Pending>,
    /// This producer is to be replaced ([`super::KafkaOutput::restart_failed`]): librdkafka
    /// raised a fatal error on it (it takes no more records), or the broker fenced its producer
    /// id (its records would be refused forever).
    pub(super) failed: AtomicBool,
    /// Why, when the broker fenced it (a fatal error has its own record in librdkafka).
    pub(super) fenced: Mutex<Option<String>>,
    retry_backoff: Duration,
    /// Per topic, the partitions whose leader broker is up (from librdkafka's statistics).
    pub(super) reachable: Mutex<HashMap<String, Vec<i32>>>,
    /// Topics whose permanent failure was already logged.
    failed_topics: Mutex<HashSet<String>>,
    /// Retriable errors already logged (once per topic and error).
    retried_errors: Mutex<HashSet<(String, String)>>,
    /// librdkafka's own log lines and errors, each cause once a minute (shared by the workers).
    rdlog: Arc<crate::rdlog::RdLog>,
}

impl AgentContext {
    pub(super) fn new(
        shared: Arc<Shared>,
        worker: usize,
        pending: Arc<Pending>,
        retry_backoff: Duration,
        rdlog: Arc<crate::rdlog::RdLog>,
    ) -> AgentContext {
        AgentContext {
            shared,
            worker,
            pending,
            failed: AtomicBool::new(false),
            fenced: Mutex::new(None),
            retry_backoff,
            reachable: Mutex::new(HashMap::new()),
            failed_topics: Mutex::new(HashSet::new()),
            retried_errors: Mutex::new(HashSet::new()),
            rdlog,
        }
    }

    /// Queues a record to be sent again after `backoff.init`; the first time a topic sees an
    /// error, it is logged (an error that never clears means the output is stuck, not silent).
    pub(super) fn retry_later(&self, err: &KafkaError, mut r: Retry) {
        Metrics::inc(&self.shared.metrics.events_retried);
        if self.retried_errors.lock().unwrap().insert((r.topic.clone(), err.to_string())) {
            tracing::warn!(topic = r.topic, error = %err, "Kafka did not take an event; retrying until it does (logged once per topic and error)");
        }
        r.not_before = Instant::now() + self.retry_backoff;
        self.pending.retries.lock().unwrap().push_back(r);
    }
}

impl AgentContext {
    /// Holds a record whose topic Kafka refuses (see the module's invariants): counted, logged
    /// when the topic is first refused, and queued to be sent again after `backoff.max`.
    pub(super) fn hold(&self, err: &KafkaError, mut r: Retry) {
        let sh = &self.shared;
        let topic = r.topic.as_str();
        Metrics::inc(&sh.metrics.output_refusals);
        // A refusal is an answer: Kafka is reachable, so this is no stall.
        sh.last_ack_ms.store(sh.now_ms(), Ordering::Relaxed);
        if sh.refused.refuse(topic, &err.to_string()) {
            Metrics::set(&sh.metrics.output_topics_refused, sh.refused.len() as u64);
            tracing::error!(topic, error = %err, every = ?sh.held_wait, "Kafka refuses this topic: its events are held (not dropped, not spooled) and sent again every backoff.max until Kafka takes them; /healthz is 503 meanwhile");
        }
        sh.held.fetch_add(1, Ordering::Relaxed);
        r.partition = -1;
        r.not_before = Instant::now() + sh.held_wait;
        self.pending.held.lock().unwrap().push_back(r);
    }
}

impl ClientContext for AgentContext {
    fn stats(&self, stats: Statistics) {
        let up: HashSet<i32> = stats.brokers.values().filter(|b| b.state == "UP").map(|b| b.nodeid).collect();
        if !up.is_empty() {
            // A broker connection is up: the TLS handshake or authentication works now.
            self.shared.refused.accept_connection();
        }
        // The gauge is what any of the producers is connected to: an idle producer (librdkafka
        // connects sparsely) must not hide the connection the others have.
        let all_up = {
            let mut per = self.shared.up_by_worker.lock().unwrap();
            per[self.worker].clone_from(&up);
            per.iter().flatten().collect::<HashSet<_>>().len()
        };
        Metrics::set(&self.shared.metrics.output_brokers_up, all_up as u64);
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

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.all_down.store(true, Ordering::Relaxed);
        }
        let check = self.shared.tls_check.as_ref();
        self.shared.refused.on_client_error(self.rdlog.client(), &error, reason, check);
        // Each cause once a minute: connection errors repeat at every reconnect attempt.
        self.rdlog.error(&error, reason);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == FATAL_FACILITY {
            // librdkafka logs a fatal error from the thread that raises it, before it purges the
            // producer's queue (the error event itself carries the underlying code, not that it
            // is fatal): the purged records that follow are sent again, not taken for a
            // shutdown's purge.
            self.failed.store(true, Ordering::Relaxed);
        }
        self.rdlog.log(level, fac, message);
    }
}

impl ProducerContext for AgentContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let sh = &self.shared;
        let replay = opaque & REPLAY_BIT != 0;
        if let Err((err, _)) = result {
            if producer_fenced(err) {
                // The broker refuses this producer's id or epoch: no retry through it can
                // succeed, while a new producer (a new id) can. The record is retried below.
                self.fenced.lock().unwrap().get_or_insert_with(|| err.to_string());
                self.failed.store(true, Ordering::Relaxed);
            }
        }
        match result {
            Ok(msg) => {
                // One clock read per report: for the last acknowledgement and the latency.
                let now = Instant::now();
                sh.last_ack_ms.store(sh.ms_at(now), Ordering::Relaxed);
                if Metrics::get(&sh.metrics.output_topics_refused) > 0 && sh.refused.accept(msg.topic()) {
                    Metrics::set(&sh.metrics.output_topics_refused, sh.refused.len() as u64);
                    tracing::info!(topic = msg.topic(), "Kafka takes this topic again: its held events are sent");
                }
                sh.all_down.store(false, Ordering::Relaxed);
                // An acknowledgement proves a broker connected, also before the first statistics
                // (a second after start) count it; they give the exact number from then on.
                if Metrics::get(&sh.metrics.output_brokers_up) == 0 {
                    Metrics::set(&sh.metrics.output_brokers_up, 1);
                }
                // Every event acknowledged counts once in events_acked, replayed ones included.
                Metrics::inc(&sh.metrics.events_acked);
                if replay {
                    Metrics::inc(&sh.metrics.spool_replayed);
                    sh.replay.done((opaque & !REPLAY_BIT) as u64);
                } else {
                    let (slot, end) = unpack(opaque);
                    sh.tracker.delivered_at(slot, end, now);
                }
            }
            Err((err, msg)) if refuses_topic(err) => {
                let (id, at) = (header_id(msg), sh.record_time(opaque));
                self.hold(
                    err,
                    Retry::of(msg.topic(), -1, msg.key(), msg.payload().unwrap_or_default(), id, at, opaque),
                );
            }
            Err((err, msg)) if !replay && sh.parking.load(Ordering::Relaxed) && !is_permanent(err) => {
                sh.parked.lock().unwrap().push(Parked {
                    topic: msg.topic().into(),
                    key: msg.key().map(<[u8]>::to_vec),
                    hash: sh.kept_hash(msg.partition()),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    id: header_id(msg),
                    timestamp: sh.record_time(opaque),
                    opaque,
                });
            }
            Err((err, _)) if is_purged(err) && !self.failed.load(Ordering::Relaxed) => {
                // Purged when the producer is dropped at shutdown, or a replayed record purged
                // when replay stopped: not delivered, so it stays unacknowledged (read again
                // from its file or from the spool cursor). Never counted as done. (Purged from a
                // failed producer, it is sent again below, through the one replacing it.)
            }
            Err((err, msg)) if !is_permanent(err) => {
                let partition = if partition_unknown(err) { -1 } else { msg.partition() };
                let (id, at) = (header_id(msg), sh.record_time(opaque));
                let again =
                    Retry::of(msg.topic(), partition, msg.key(), msg.payload().unwrap_or_default(), id, at, opaque);
                self.retry_later(err, again);
            }
            Err((err, msg)) => {
                Metrics::inc(&sh.metrics.events_failed);
                if self.failed_topics.lock().unwrap().insert(msg.topic().to_string()) {
                    tracing::error!(topic = msg.topic(), error = %err, "Kafka refused an event for good; it is counted in events_failed and skipped (logged once per topic)");
                }
                if replay {
                    sh.replay.done((opaque & !REPLAY_BIT) as u64);
                } else {
                    let (slot, end) = unpack(opaque);
                    sh.tracker.done(slot, end);
                }
            }
        }
    }
}

/// The log facility of librdkafka's "Fatal error: ..." line.
const FATAL_FACILITY: &str = "FATAL";

/// The event id a record carries in its `_id` header (it goes back with the record).
fn header_id(msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<EventId> {
    let headers = msg.headers()?;
    headers.iter().find(|h| h.key == ID_HEADER).and_then(|h| EventId::from_bytes(h.value?))
}

pub(super) fn is_purged(err: &KafkaError) -> bool {
    matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight))
}

/// Errors no retry can fix: Kafka refuses the record itself (too large, invalid) or the request
/// can never be valid. Everything else (brokers down, leaders moving, a topic being created, an
/// unexpected broker error) is retried for as long as it takes, as Filebeat does: a line is only
/// ever given up for a reason that lies in the line.
///
/// `InvalidTopic` is one too: the agent checks every topic name before sending (a static one at
/// start, one made from an event before it is queued), so a broker refusing a name is a broker
/// with stricter rules, and the name came from the line.
pub(super) fn is_permanent(err: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        err.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessage
                | InvalidMessageSize
                | InvalidRecord
                | InvalidRequiredAcks
                | InvalidTopic
        )
    )
}

/// Errors where Kafka refuses the topic, not the record, and an operator can fix it (grant the
/// ACL, create the topic): no outage to wait out or to spool through, and no reason to drop the
/// lines. librdkafka reports a topic missing with auto-creation off as `UnknownTopic` once the
/// metadata has had `topic.metadata.propagation.max.ms` to show it.
pub(super) fn refuses_topic(err: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(err.rdkafka_error_code(), Some(TopicAuthorizationFailed | ClusterAuthorizationFailed | UnknownTopic))
}

/// The broker refuses the idempotent producer's id or epoch (tansu does so after librdkafka
/// bumps the epoch; Kafka when the id expired): only a new producer gets a new id.
fn producer_fenced(err: &KafkaError) -> bool {
    matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch))
}

/// Partition errors mean the metadata the partition was chosen from is stale: a retry lets
/// librdkafka place the record instead.
pub(super) fn partition_unknown(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::UnknownTopicOrPartition)
    )
}
