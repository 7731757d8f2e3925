//! Shared helpers: a running in-process agent, reading a topic back, writing log files.

use agent::config::Config;
use agent::pipeline::{self, RunOptions, Summary};
use agent::shutdown::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An agent pipeline running in this process (the library, not the binary).
pub struct RunningAgent {
    shutdown: Shutdown,
    handle: Option<JoinHandle<anyhow::Result<Summary>>>,
}

impl RunningAgent {
    pub fn start(config_text: &str) -> RunningAgent {
        Self::start_with(config_text, RunOptions::default())
    }

    pub fn start_with(config_text: &str, opts: RunOptions) -> RunningAgent {
        let config = Config::from_str_at(config_text, Path::new("test.yml")).expect("test config is valid");
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let handle = std::thread::spawn(move || pipeline::run(config, opts, s));
        RunningAgent { shutdown, handle: Some(handle) }
    }

    /// Stops cleanly (the same path SIGTERM takes) and returns the run's summary.
    pub fn stop(mut self) -> Summary {
        self.shutdown.stop();
        self.handle.take().unwrap().join().expect("pipeline thread").expect("pipeline run")
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.shutdown.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's timestamp in milliseconds (its create time, as the producer set it).
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("record is JSON")
    }
}

/// Reads a topic from the beginning of every partition until `expected` records have arrived
/// (and a short quiet period passed, to catch extras) or `timeout`.
pub fn consume(bootstrap: &str, topic: &str, partitions: i32, expected: usize, timeout: Duration) -> Vec<Record> {
    consume_with(bootstrap, topic, partitions, expected, timeout, &[])
}

/// [`consume`] with extra client properties (SASL, TLS).
pub fn consume_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
    extra: &[(&str, &str)],
) -> Vec<Record> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", "it-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50");
    for (k, v) in extra {
        cc.set(*k, *v);
    }
    let consumer: BaseConsumer = cc.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut quiet_until: Option<Instant> = None;
    while Instant::now() < deadline {
        if let Some(q) = quiet_until {
            if Instant::now() >= q {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Record {
                partition: m.partition(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers: m.headers().map_or_else(Vec::new, |h| {
                    h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect()
                }),
                timestamp: m.timestamp().to_millis(),
            }),
            Some(Err(e)) => eprintln!("consume error: {e}"),
            None => {}
        }
        if out.len() >= expected && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    out
}

/// How often each distinct item occurs.
pub fn count_each<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// Counts of each distinct record value.
pub fn tally(records: &[Record]) -> HashMap<String, usize> {
    count_each(records.iter().map(Record::text))
}

pub fn append_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// `prefix-0` .. `prefix-(n-1)`.
pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// `prefix-N-` padded with `-` to `width` bytes: lines of a known size, still told apart by N.
pub fn padded(prefix: &str, range: std::ops::Range<usize>, width: usize) -> Vec<String> {
    range.map(|i| format!("{:-<width$}", format!("{prefix}-{i}-"))).collect()
}

/// Waits until `cond` holds or panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A config for tests: one input over `globs`, raw codec unless `extra_output` says otherwise.
pub fn config(
    data: &Path,
    globs: &[PathBuf],
    bootstrap: &str,
    topic: &str,
    extra_input: &str,
    extra_output: &str,
) -> String {
    let paths: Vec<String> = globs.iter().map(|g| format!("\"{}\"", g.display())).collect();
    format!(
        "path:\n  data: \"{data}\"\nregistry:\n  flush: 200ms\nshutdown_timeout: 10s\nlogging:\n  metrics:\n    enabled: false\n\
inputs:\n  - id: it\n    paths: [{paths}]\n    check_interval: 200ms\n    backoff:\n      init: 10ms\n      max: 100ms\n{extra_input}\
output:\n  kafka:\n    hosts: [\"{bootstrap}\"]\n    topic: {topic}\n    bulk_flush_frequency: 5ms\n{extra_output}",
        data = data.display(),
        paths = paths.join(", "),
    )
}

/// What a run published ended in exactly one place: acknowledged by Kafka (directly or replayed
/// from the spool), refused for good, dropped by the spool's policy, or still pending at the stop
/// (unacknowledged, read again from its file after a restart; or waiting in the spool).
pub fn assert_counters_add_up(s: &Summary) {
    let m = &s.metrics;
    let get = agent::metrics::Metrics::get;
    let (published, acked, failed, dropped) =
        (get(&m.events_published), get(&m.events_acked), get(&m.events_failed), get(&m.spool_dropped));
    assert_eq!(
        published,
        acked + failed + dropped + s.unacknowledged as u64 + s.spooled,
        "published {published} = acked {acked} + failed {failed} + dropped {dropped} + unacknowledged {} + in the spool {}",
        s.unacknowledged,
        s.spooled
    );
}

/// A 3-broker mock cluster with `topic` (replication 1).
pub fn cluster(topic: &str, partitions: i32) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(3).expect("mock cluster");
    c.create_topic(topic, partitions, 1).expect("create topic");
    c
}

/// Every expected line arrived exactly once, and nothing else.
pub fn assert_exactly_once(records: &[Record], expected: &[String]) {
    let got = tally(records);
    let missing: Vec<&String> = expected.iter().filter(|l| !got.contains_key(*l)).take(5).collect();
    assert!(missing.is_empty(), "missing lines, e.g. {missing:?} ({} of {} arrived)", got.len(), expected.len());
    let dups: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicated lines, e.g. {dups:?}");
    let want: HashSet<&String> = expected.iter().collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains(k)).take(5).collect();
    assert!(extra.is_empty(), "unexpected records, e.g. {extra:?}");
}

/// The registry's offset for the file now at `path`, found by its inode (a rotated-away file
/// may still carry the name until the agent sees the rename).
pub fn registry_offset_of(data: &Path, path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    registry_offset_by_ino(data, std::fs::metadata(path).ok()?.ino())
}

/// The registry's offset for the file with inode `ino` (also after the file is gone).
/// Read as the agent reads it at start-up: `registry.json` with its journal applied.
pub fn registry_offset_by_ino(data: &Path, ino: u64) -> Option<u64> {
    let found = agent::registry::read(&data.join("registry")).ok()?;
    found.entries.values().find(|e| e.ino == ino).map(|e| e.offset)
}

pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// A port for a process a test starts (tansu, a TLS proxy, Connect's REST, the agent's HTTP, a
/// mock broker's relay in [`crate::outage`]).
///
/// Taken below the kernel's ephemeral range on purpose: a port here is never picked by `bind(0)`
/// or `connect()`, so a relay that closes its port while its broker is down can bind it again,
/// and nothing started here lands on a port a mock broker (ephemeral) is using. The counter keeps
/// two tests in this process from getting the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1000));
    // Each test binary starts at its own place so two binaries run side by side rarely meet.
    let start = std::process::id() % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port below the ephemeral range");
        let port = (first + (start + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
