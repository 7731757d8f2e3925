//! FileStream sinks: each consumes Kafka topics and appends one line per record to a local file,
//! the job of Kafka Connect's FileStreamSink, done crash-safe.
//!
//! Each sink is one thread that owns its consumer, its [`file::SinkFile`] and the records
//! consumed since its last commit. A commit cycle runs every `commit_interval`, when 1 MiB is
//! pending, on rotation and at shutdown, in this order:
//! 1. append the lines not yet written (each poll batch is written at once, so the file follows
//!    the topic closely), fsync the file, record its length in the sink's state file;
//! 2. commit the consumer offsets of exactly those records (synchronously, on the sink's commit
//!    thread, so a commit waiting for an unreachable coordinator never stops consuming and
//!    writing; one commit at a time, the next carrying every position not yet confirmed).
//!
//! Invariant (at-least-once into the file): an offset is committed only after the record's line
//! is on disk. A crash before step 1 finishes loses nothing: the uncommitted tail is cut at the
//! next start and consumed again. A crash between steps 1 and 2 repeats the records of that one
//! cycle (the documented duplicate window). A write or fsync error keeps the pending lines in
//! memory, cuts what reached the file, and retries; consuming pauses meanwhile (and the sink's
//! [`Connector`] shows FAILED). A sink paused through the endpoint pauses its partitions and
//! keeps polling, so it stays in its consumer group. A sink whose consumer has no broker
//! connected (its statistics, every second) shows FAILED too, so `/healthz` says so.

pub mod dedup;
pub mod file;
pub mod format;

use crate::config::SinkConfig;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::status::{Connector, Kind, Refusals, Status};
use anyhow::Context as _;
use file::SinkFile;
use format::{append_line, Appended};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pending bytes that trigger a commit cycle before `commit_interval` (and bound a sink's memory).
const MAX_PENDING_BYTES: usize = 1 << 20;
/// How often the sink checks whether its file was rotated away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);
/// How long a stopping sink waits for its last offset commit to be confirmed.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for records in one poll (the stop is noticed within this).
const POLL_WAIT: Duration = Duration::from_millis(100);

/// The running sinks of one process.
pub struct Sinks {
    threads: Vec<(String, JoinHandle<()>)>,
    stop: Shutdown,
}

impl Sinks {
    /// Opens every sink's file and consumer, then starts their threads. An error (a file that
    /// cannot be written, a bad consumer setting) names the sink and stops start-up.
    pub fn start(
        configs: &[SinkConfig],
        data: &Path,
        status: &Status,
        hangups: Arc<AtomicU64>,
    ) -> anyhow::Result<Sinks> {
        let stop = Shutdown::new();
        let connectors = status.install(Kind::Sink, &configs.iter().map(|c| c.id.as_str()).collect::<Vec<_>>());
        let mut opened = Vec::new();
        if !configs.is_empty() {
            let dir = data.join("sinks");
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        for (cfg, connector) in configs.iter().zip(connectors) {
            let sink = Sink::open(cfg, data, status.metrics.clone(), connector, hangups.clone())
                .with_context(|| format!("sink {:?}", cfg.id))?;
            opened.push(sink);
        }
        let threads = opened
            .into_iter()
            .map(|sink| {
                let stop = stop.clone();
                let name = sink.cfg.id.clone();
                let heartbeat = status.heartbeat(&format!("sink-{name}"));
                let h = std::thread::Builder::new()
                    .name(format!("sink-{name}"))
                    .spawn(move || sink.run(&stop, &heartbeat))
                    .expect("spawn sink thread");
                (name, h)
            })
            .collect();
        Ok(Sinks { threads, stop })
    }

    /// No sink running.
    pub fn none() -> Sinks {
        Sinks { threads: Vec::new(), stop: Shutdown::new() }
    }

    /// Tells every sink to stop; [`join`](Self::join) waits for their last commit.
    pub fn stop(&self) {
        self.stop.stop();
    }

    pub fn join(self) {
        self.stop();
        for (name, h) in self.threads {
            if h.join().is_err() {
                tracing::error!(sink = %name, "sink thread panicked");
            }
        }
    }
}

/// librdkafka's log lines and errors go to the agent's log, each cause once a minute
/// ([`crate::rdlog`]), naming the sink; its statistics (every second) say whether the consumer is
/// connected to any broker.
struct SinkContext {
    rdlog: crate::rdlog::RdLog,
    /// The agent's own check of a broker certificate librdkafka could not verify.
    tls_check: Option<crate::tls_check::TlsCheck>,
    /// Why the brokers refuse the consumer's connection (TLS or SASL), until one is up; only the
    /// connection's refusal is used (a sink refuses no topic).
    refused: Arc<Refusals>,
    /// Statistics in a row that showed no broker connected (0 while one is).
    unconnected_stats: AtomicU32,
}

/// Next offsets to commit, per (topic, partition).
type Offsets = Vec<((String, i32), i64)>;

/// The result of one offset commit and the offsets it carried.
struct Committed {
    result: Result<(), String>,
    offsets: Offsets,
}

/// Commits offsets on its own thread. librdkafka's synchronous commit waits for the group
/// coordinator without a time limit, so with the brokers down it would stop the sink (consuming,
/// writing, its shutdown) until they came back; and an asynchronous commit's result never reaches
/// a `BaseConsumer` (librdkafka reports it only to an `offset_commit_cb`, which rust-rdkafka does
/// not set). Here the sink hands over one commit at a time and reads the result when it comes.
struct Committer {
    requests: Option<std::sync::mpsc::SyncSender<Offsets>>,
    results: std::sync::mpsc::Receiver<Committed>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    fn start(name: &str, consumer: Arc<BaseConsumer<SinkContext>>) -> Committer {
        let (req_tx, req_rx) = std::sync::mpsc::sync_channel::<Offsets>(1);
        let (res_tx, res_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name(format!("commit-{name}")).spawn(move || {
            for offsets in req_rx {
                let mut tpl = TopicPartitionList::new();
                for ((topic, partition), next) in &offsets {
                    // Adding a partition to a fresh list cannot fail.
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
                }
                let result = consumer.commit(&tpl, CommitMode::Sync).map_err(|e| e.to_string());
                if res_tx.send(Committed { result, offsets }).is_err() {
                    return;
                }
            }
        });
        Committer { requests: Some(req_tx), results: res_rx, thread: thread.ok() }
    }

    /// Ends the thread. An idle one is joined, so its handle on the consumer is gone and the
    /// consumer is closed (leaving its group) by the sink's thread, before a reload or the
    /// process starts another; one still blocked in a commit is left to end when the brokers
    /// answer (or with the process).
    fn finish(&mut self, idle: bool) {
        self.requests = None;
        if let (true, Some(t)) = (idle, self.thread.take()) {
            let _ = t.join();
        }
    }

    /// Hands over a commit; false when the committer thread is gone.
    fn send(&self, offsets: Offsets) -> bool {
        self.requests.as_ref().is_some_and(|r| r.send(offsets).is_ok())
    }
}

/// Statistics in a row without a connected broker before the sink counts as cut off from Kafka
/// (two seconds: the first statistics may come before the first connection is up).
const UNCONNECTED_STATS: u32 = 2;

impl SinkContext {
    /// Why the consumer cannot consume now, if it cannot.
    fn kafka_problem(&self) -> Option<String> {
        if self.unconnected_stats.load(Ordering::Relaxed) < UNCONNECTED_STATS {
            return None;
        }
        Some(match self.refused.connection() {
            Some(cause) => {
                format!("Kafka refuses the connection ({cause}); fix the ssl/sasl settings: nothing can be consumed")
            }
            None => "no Kafka broker connected: nothing can be consumed".to_string(),
        })
    }
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.refused.on_client_error(self.rdlog.client(), &error, reason, self.tls_check.as_ref());
        self.rdlog.error(&error, reason);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.rdlog.log(level, fac, message);
    }

    fn stats(&self, stats: rdkafka::statistics::Statistics) {
        if stats.brokers.values().any(|b| b.state == "UP") {
            self.unconnected_stats.store(0, Ordering::Relaxed);
            self.refused.accept_connection();
        } else {
            self.unconnected_stats.fetch_add(1, Ordering::Relaxed);
        }
    }
}
impl ConsumerContext for SinkContext {}

struct Sink {
    cfg: SinkConfig,
    consumer: Arc<BaseConsumer<SinkContext>>,
    committer: Committer,
    file: SinkFile,
    /// What was written, by the records' ids (bounded by `dedup_window`), to drop records sent again.
    seen: dedup::Seen,
    /// Lines consumed since the last commit cycle; the first `written` bytes are in the file
    /// (not yet fsynced), the rest not yet.
    pending: Vec<u8>,
    written: usize,
    /// Next offset per (topic, partition) of the records in the file but not yet committed.
    positions: HashMap<(String, i32), i64>,
    /// An offset commit was sent and its result has not come back yet.
    committing: bool,
    last_commit: Instant,
    last_rotation_check: Instant,
    metrics: Arc<Metrics>,
    /// Pause flag (set through the endpoint), own counters and failure.
    connector: Arc<Connector>,
    /// Whether the assigned partitions are paused now.
    paused: bool,
    last_pause_check: Instant,
    hangups: Arc<AtomicU64>,
    seen_hangups: u64,
    /// Problems already logged (once per episode, not once per record).
    undecodable_logged: bool,
    /// Why the file cannot be written now (the connector's failure, with `cut_off`).
    failing: Option<String>,
    /// Why nothing can be consumed now (no broker connected).
    cut_off: Option<String>,
}

impl Sink {
    fn open(
        cfg: &SinkConfig,
        data: &Path,
        metrics: Arc<Metrics>,
        connector: Arc<Connector>,
        hangups: Arc<AtomicU64>,
    ) -> anyhow::Result<Sink> {
        let state = data.join("sinks").join(format!("{}.json", cfg.id));
        let opened = SinkFile::open(&cfg.file, &state)?;
        let sinks = data.join("sinks");
        // The journal of one id per record from before ids carried their event's end (`.ids`)
        // is replaced by the journal of ranges (`.seen`); the state's length for it is new too.
        let _ = std::fs::remove_file(sinks.join(format!("{}.ids", cfg.id)));
        let seen = dedup::Seen::open(&sinks.join(format!("{}.seen", cfg.id)), opened.ids, cfg.dedup_window)?;
        if opened.cut > 0 {
            Metrics::add(&metrics.sink_uncommitted_bytes_cut, opened.cut);
            tracing::info!(sink = %cfg.id, file = %cfg.file.display(), bytes = opened.cut,
                "cut the bytes written after the last commit (a crash); they are consumed again");
        }
        let mut cc = ClientConfig::new();
        for (k, v) in cfg.client_properties() {
            cc.set(k, v);
        }
        // Statistics every second: whether any broker is connected (readiness).
        cc.set("statistics.interval.ms", "1000");
        let context = SinkContext {
            rdlog: crate::rdlog::RdLog::new(format!("sink {}", cfg.id)),
            tls_check: crate::tls_check::TlsCheck::from_client_config(&cc),
            refused: Arc::default(),
            unconnected_stats: AtomicU32::new(0),
        };
        let consumer: Arc<BaseConsumer<SinkContext>> =
            Arc::new(cc.create_with_context(context).context("cannot create the consumer")?);
        let topics = cfg.subscription();
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>()).context("cannot subscribe")?;
        tracing::info!(sink = %cfg.id, topics = ?topics, group_id = %cfg.group_id, file = %cfg.file.display(), "sink started");
        let seen_hangups = hangups.load(Ordering::Relaxed);
        Ok(Sink {
            cfg: cfg.clone(),
            committer: Committer::start(&cfg.id, consumer.clone()),
            consumer,
            file: opened.file,
            seen,
            pending: Vec::new(),
            written: 0,
            positions: HashMap::new(),
            committing: false,
            last_commit: Instant::now(),
            last_rotation_check: Instant::now(),
            metrics,
            connector,
            paused: false,
            last_pause_check: Instant::now(),
            hangups,
            seen_hangups,
            undecodable_logged: false,
            failing: None,
            cut_off: None,
        })
    }

    fn run(mut self, stop: &Shutdown, heartbeat: &crate::status::Heartbeat) {
        while !stop.is_stopped() {
            heartbeat.beat();
            if self.pending.len() < MAX_PENDING_BYTES {
                self.consume();
                // Lines show up in the file at once (as Kafka Connect's do); durability and the
                // offset commit follow at the commit cycle.
                self.write_out();
            } else {
                // A failing disk: hold what we have, poll nothing more until it is written.
                stop.wait(POLL_WAIT);
            }
            if self.pending.len() >= MAX_PENDING_BYTES || self.last_commit.elapsed() >= self.cfg.commit_interval.0 {
                self.commit();
            }
            self.follow_commits();
            self.follow_rotation();
            self.follow_pause();
            self.follow_kafka();
        }
        self.final_commit(FINAL_COMMIT_WAIT);
        if !self.pending.is_empty() {
            tracing::warn!(sink = %self.cfg.id, bytes = self.pending.len(), "stopping with lines not written; they are consumed again at restart");
        }
        tracing::info!(sink = %self.cfg.id, "sink stopped");
    }

    /// Takes the records librdkafka has (waiting up to [`POLL_WAIT`] for the first one).
    fn consume(&mut self) {
        let mut wait = POLL_WAIT;
        while self.pending.len() < MAX_PENDING_BYTES {
            let Some(polled) = self.consumer.poll(wait) else { return };
            wait = Duration::ZERO;
            let msg = match polled {
                Ok(m) => m,
                Err(e) => {
                    // Group, commit, authorization and fetch errors: warnings, each cause once a
                    // minute; librdkafka retries them.
                    self.consumer.context().rdlog.error(&e, &format!("consumer error: {e}"));
                    return;
                }
            };
            let position = ((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
            let id = msg
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == crate::output::kafka::ID_HEADER).and_then(|h| h.value))
                .map(dedup::Id::of);
            if id.is_some_and(|k| self.seen.contains(&k)) {
                Metrics::inc(&self.metrics.sink_duplicates_dropped);
                self.positions.insert(position.0, position.1);
                continue;
            }
            let before = self.pending.len();
            match append_line(self.cfg.format, msg.payload(), &mut self.pending) {
                Appended::Line => {}
                Appended::Undecodable => {
                    Metrics::inc(&self.metrics.sink_records_undecodable);
                    if !std::mem::replace(&mut self.undecodable_logged, true) {
                        tracing::warn!(sink = %self.cfg.id, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), format = ?self.cfg.format,
                            "record value is not in the sink's format; written as it is (logged once, counted in sink_records_undecodable)");
                    }
                }
                Appended::Skipped => Metrics::inc(&self.metrics.sink_records_skipped),
            }
            if self.pending.len() > before {
                Metrics::inc(&self.metrics.sink_records_written);
                Metrics::inc(&self.connector.events);
                if let Some(k) = id {
                    self.seen.insert(k);
                }
            }
            self.positions.insert(position.0, position.1);
        }
    }

    /// Appends the pending lines not yet in the file. False after an error (logged once per
    /// episode): the file is cut back to its last sync and everything pending is written again
    /// at the next try.
    fn write_out(&mut self) -> bool {
        if self.written == self.pending.len() {
            return true;
        }
        if self.file.replaced() {
            self.reopen("the file was renamed or deleted");
        }
        match self.file.append(&self.pending[self.written..]) {
            Ok(()) => {
                self.written = self.pending.len();
                true
            }
            Err(e) => {
                self.write_failed(e);
                false
            }
        }
    }

    fn write_failed(&mut self, e: std::io::Error) {
        self.written = 0;
        Metrics::inc(&self.metrics.sink_errors);
        if self.failing.is_none() {
            tracing::error!(sink = %self.cfg.id, error = %e, "cannot write the sink file; consuming paused, retrying");
            self.failing = Some(format!("cannot write {}: {e}", self.file.path().display()));
            self.show_failure();
        }
    }

    /// The connector's failure: every reason this sink cannot do its job now, or none.
    fn show_failure(&self) {
        let reasons: Vec<&str> = [&self.failing, &self.cut_off].into_iter().flatten().map(String::as_str).collect();
        self.connector.set_failure((!reasons.is_empty()).then(|| reasons.join("; ")));
    }

    /// Follows whether the consumer is connected to Kafka (its statistics), logging each change.
    fn follow_kafka(&mut self) {
        let now = self.consumer.context().kafka_problem();
        if now == self.cut_off {
            return;
        }
        // Logged when it starts and ends: a refusal's words change at every reconnect (librdkafka's
        // timings), `/healthz` follows them.
        match &now {
            Some(why) if self.cut_off.is_none() => {
                tracing::warn!(sink = %self.cfg.id, "{why}; /healthz is 503 until a broker is connected")
            }
            None => tracing::info!(sink = %self.cfg.id, "connected to Kafka again"),
            Some(_) => {}
        }
        self.cut_off = now;
        self.show_failure();
    }

    /// Writes, fsyncs and records the pending lines, then commits their offsets (module docs).
    fn commit(&mut self) {
        self.last_commit = Instant::now();
        if !self.pending.is_empty() {
            if !self.write_out() {
                return;
            }
            // The ids first: the state written with the file's length records the journal's.
            let ids = match self.seen.sync() {
                Ok(ids) => ids,
                Err(e) => {
                    self.file.rollback();
                    self.write_failed(e);
                    return;
                }
            };
            if let Err(e) = self.file.sync(ids) {
                self.write_failed(e);
                return;
            }
            if self.seen.wants_compaction() {
                if let Err(e) = self.seen.compact().and_then(|ids| self.file.record_ids(ids)) {
                    // The journal keeps growing until a compaction works; nothing else changes.
                    tracing::warn!(sink = %self.cfg.id, error = %e, "cannot compact the sink's id journal; retrying at the next commit");
                }
            }
            if self.failing.take().is_some() {
                tracing::info!(sink = %self.cfg.id, "sink file writable again");
                self.show_failure();
            }
            // Counted once durable: bytes rewritten after an error are not counted twice.
            Metrics::add(&self.metrics.sink_bytes_written, self.pending.len() as u64);
            Metrics::add(&self.connector.bytes, self.pending.len() as u64);
            self.pending.clear();
            self.written = 0;
        }
        // One commit at a time: the next carries every position still not confirmed.
        if self.positions.is_empty() || self.committing {
            return;
        }
        let offsets = self.positions.iter().map(|(tp, next)| (tp.clone(), *next)).collect();
        if self.committer.send(offsets) {
            self.committing = true;
        } else {
            self.commit_failed("the commit thread ended");
        }
    }

    /// Takes the results of the commits sent (see [`Sink::committed`]).
    fn follow_commits(&mut self) {
        while let Ok(c) = self.committer.results.try_recv() {
            self.committed(c);
        }
    }

    /// A commit's result: a confirmed position is forgotten unless a later record moved it
    /// since; a failed one stays for the next cycle.
    fn committed(&mut self, c: Committed) {
        self.committing = false;
        match c.result {
            Ok(()) => {
                for (tp, next) in c.offsets {
                    if self.positions.get(&tp) == Some(&next) {
                        self.positions.remove(&tp);
                    }
                }
                Metrics::inc(&self.metrics.sink_commits);
            }
            Err(e) => self.commit_failed(&e),
        }
    }

    fn commit_failed(&self, error: &str) {
        // Kept for the next cycle: the lines are on disk, so at worst they come again.
        Metrics::inc(&self.metrics.sink_errors);
        tracing::warn!(sink = %self.cfg.id, error, "offset commit failed; retrying at the next cycle");
    }

    /// At shutdown: commits what is on disk, waiting up to `wait` for the commits (the one in
    /// flight, then the last positions), then lets the commit thread go (it ends once its commit
    /// returns).
    fn final_commit(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        self.commit();
        while self.committing {
            let Ok(c) = self.committer.results.recv_timeout(until.saturating_duration_since(Instant::now())) else {
                break;
            };
            self.committed(c);
            self.commit();
        }
        if !self.positions.is_empty() {
            tracing::warn!(sink = %self.cfg.id, "the last offsets were not committed; the records since the last commit are consumed again at restart and written twice (the window of a crash between fsync and commit)");
        }
        self.committer.finish(!self.committing);
    }

    /// Reopens the file on SIGHUP, and when it was renamed or deleted (checked every second
    /// and before every write).
    fn follow_rotation(&mut self) {
        let hangups = self.hangups.load(Ordering::Relaxed);
        if hangups != self.seen_hangups {
            self.seen_hangups = hangups;
            self.reopen("SIGHUP");
        } else if self.last_rotation_check.elapsed() >= ROTATION_CHECK {
            self.last_rotation_check = Instant::now();
            if self.file.replaced() {
                self.reopen("the file was renamed or deleted");
            }
        }
    }

    /// Pauses or resumes the assigned partitions when the connector's flag changes; while paused,
    /// every second, so partitions assigned by a rebalance meanwhile are paused too.
    fn follow_pause(&mut self) {
        let want = self.connector.is_paused();
        if want == self.paused && !(want && self.last_pause_check.elapsed() >= ROTATION_CHECK) {
            return;
        }
        self.last_pause_check = Instant::now();
        let assigned = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(sink = %self.cfg.id, error = %e, "cannot read the consumer's assignment; pause or resume retried");
                return;
            }
        };
        let done = if want { self.consumer.pause(&assigned) } else { self.consumer.resume(&assigned) };
        match done {
            Ok(()) if want != self.paused => {
                self.paused = want;
                tracing::info!(sink = %self.cfg.id, partitions = assigned.count(), "{}", if want { "sink paused" } else { "sink resumed" });
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(sink = %self.cfg.id, error = %e, "cannot pause or resume the partitions; retrying")
            }
        }
    }

    /// Opens the path again. Pending lines are not in any file yet, so they go to the new one.
    fn reopen(&mut self, why: &str) {
        match self.file.reopen() {
            Ok(()) => {
                Metrics::inc(&self.metrics.sink_reopens);
                tracing::info!(sink = %self.cfg.id, file = %self.file.path().display(), why, "sink file reopened");
            }
            Err(e) => {
                // The old descriptor stays in use; the next check tries again.
                Metrics::inc(&self.metrics.sink_errors);
                tracing::error!(sink = %self.cfg.id, error = %e, "cannot reopen the sink file; retrying");
            }
        }
    }
}
