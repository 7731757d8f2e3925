//! The disk spool against librdkafka's mock cluster: brokers taken down and brought back while
//! files are written and rotated; a full spool; damaged spool files written byte by byte.

use crate::common::*;
use crate::outage::DownableCluster;
use agent::metrics::Metrics;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Spool settings that react quickly (tests), plus `extra` lines under `queue.spool`.
fn with_spool(cfg: String, extra: &str) -> String {
    format!("{cfg}queue:\n  spool:\n    unhealthy_after: 2s\n    retry_interval: 200ms\n{extra}")
}

fn spool_bytes(data: &Path) -> u64 {
    segments(data).iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum()
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(data.join("spool")) else { return Vec::new() };
    let mut v: Vec<PathBuf> =
        rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    v.sort();
    v
}

/// For each `prefix-N` line, the first occurrence of every N must come in increasing N order.
fn assert_file_order(records: &[Record], prefixes: &[&str]) {
    let mut last: HashMap<String, i64> = prefixes.iter().map(|p| (p.to_string(), -1)).collect();
    let mut seen = HashSet::new();
    for r in records {
        let text = r.text();
        let Some((prefix, n)) = text.rsplit_once('-') else { continue };
        let (Some(prev), Ok(n)) = (last.get_mut(prefix), n.parse::<i64>()) else { continue };
        if seen.insert(text.clone()) {
            assert!(n > *prev, "{text} arrived after {prefix}-{prev}: per-file order broken");
            *prev = n;
        }
    }
}

fn duplicates(records: &[Record]) -> usize {
    records.len() - tally(records).len()
}

#[test]
fn broker_outage_mid_run_spools_and_replays_every_line_in_file_order() {
    let kc = DownableCluster::new("outage", 1);
    let dir = tempfile::tempdir().unwrap();
    let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
    std::fs::create_dir(&logs).unwrap();
    let names = ["a", "b", "c"];
    let cfg = config(&data, &[logs.join("*.log")], &kc.bootstrap_servers(), "outage", "", "    codec: raw\n");
    let agent = RunningAgent::start(&with_spool(cfg, ""));
    for n in names {
        append_lines(&logs.join(format!("{n}.log")), numbered(n, 0..1000));
    }
    consume(&kc.bootstrap_servers(), "outage", 1, 3000, T);

    kc.all_down(false);
    for chunk in (1000..2000).collect::<Vec<_>>().chunks(100) {
        for n in names {
            append_lines(&logs.join(format!("{n}.log")), numbered(n, chunk[0]..chunk[0] + chunk.len()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rotate every file while Kafka is down; the new files get their own line prefixes.
    for n in names {
        std::fs::rename(logs.join(format!("{n}.log")), logs.join(format!("{n}.log.1"))).unwrap();
        append_lines(&logs.join(format!("{n}.log")), numbered(&format!("{n}2"), 0..1000));
    }
    // While Kafka is down, the spool takes the lines and the registry moves to the files' ends.
    wait_for("every file read and spooled while Kafka is down", T, || {
        names.iter().all(|n| {
            let p = logs.join(format!("{n}.log"));
            registry_offset_of(&data, &p) == Some(file_len(&p))
        })
    });
    assert!(spool_bytes(&data) > 0, "the spool holds the lines");

    kc.all_down(true);
    let expected: Vec<String> = names
        .iter()
        .flat_map(|n| numbered(n, 0..2000).into_iter().chain(numbered(&format!("{n}2"), 0..1000)))
        .collect();
    let got = consume(&kc.bootstrap_servers(), "outage", 1, expected.len(), T);
    wait_for("the spool to drain", T, || segments(&data).is_empty());
    let summary = agent.stop();
    let texts: HashSet<String> = got.iter().map(Record::text).collect();
    let missing: Vec<&String> = expected.iter().filter(|l| !texts.contains(*l)).take(5).collect();
    assert!(missing.is_empty(), "missing lines, e.g. {missing:?}");
    assert_file_order(&got, &["a", "b", "c", "a2", "b2", "c2"]);
    assert_counters_add_up(&summary);
    let m = &summary.metrics;
    assert_eq!(
        Metrics::get(&m.events_published),
        expected.len() as u64,
        "each event published once, replays not again"
    );
    assert_eq!(Metrics::get(&m.events_acked), expected.len() as u64, "replayed events count as acknowledged");
    assert!(Metrics::get(&m.spool_switches) >= 1);
    assert!(Metrics::get(&m.events_spooled) >= 3000, "spooled {}", Metrics::get(&m.events_spooled));
    assert_eq!(Metrics::get(&m.spool_replayed), Metrics::get(&m.events_spooled));
    eprintln!(
        "outage: {} records read back, {} duplicates, {} spooled",
        got.len(),
        duplicates(&got),
        Metrics::get(&m.events_spooled)
    );
}

fn small_spool_run(policy: &str) -> (Vec<Record>, Vec<String>, agent::pipeline::Summary, bool) {
    let topic = format!("full-{}", policy.replace('_', "-"));
    let kc = DownableCluster::new(&topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, data) = (dir.path().join("f.log"), dir.path().join("data"));
    // Lines of 100 bytes, so the 32 KiB spool fills after a few hundred.
    let cfg = config(&data, std::slice::from_ref(&log), &kc.bootstrap_servers(), &topic, "", "    codec: raw\n");
    let cfg = with_spool(cfg, &format!("    segment_size: 8KiB\n    max_size: 32KiB\n    when_full: {policy}\n"))
        + "  mem:\n    max_bytes: 64KiB\n";
    let agent = RunningAgent::start(&cfg);
    append_lines(&log, padded("f", 0..10, 100));
    consume(&kc.bootstrap_servers(), &topic, 1, 10, T);
    kc.all_down(false);
    append_lines(&log, padded("f", 10..4000, 100));
    // Let the spool fill and the reader settle (paused, or reading on while dropping).
    std::thread::sleep(Duration::from_secs(6));
    assert!(spool_bytes(&data) <= 32 * 1024 + 8 * 1024, "spool stays near max_size: {}", spool_bytes(&data));
    let offset_while_full = registry_offset_of(&data, &log).unwrap_or(0);
    let reading_paused = offset_while_full < file_len(&log);
    kc.all_down(true);
    let expected: Vec<String> = padded("f", 0..4000, 100);
    let got = consume(&kc.bootstrap_servers(), &topic, 1, expected.len(), Duration::from_secs(20));
    wait_for("the whole file to be acknowledged", T, || registry_offset_of(&data, &log) == Some(file_len(&log)));
    wait_for("the spool to drain", T, || segments(&data).is_empty());
    let summary = agent.stop();
    assert_counters_add_up(&summary);
    (got, expected, summary, reading_paused)
}

#[test]
fn full_spool_with_block_pauses_reading_and_loses_nothing() {
    let (got, expected, summary, paused) = small_spool_run("block");
    assert!(paused, "reading must pause while the spool is full");
    let texts: HashSet<String> = got.iter().map(Record::text).collect();
    let missing = expected.iter().filter(|l| !texts.contains(*l)).count();
    assert_eq!(missing, 0, "{missing} lines missing");
    assert_eq!(Metrics::get(&summary.metrics.spool_dropped), 0);
    eprintln!("block: {} records, {} duplicates", got.len(), duplicates(&got));
}

#[test]
fn full_spool_with_drop_policies_drops_and_counts() {
    for policy in ["drop_newest", "drop_oldest"] {
        let (got, expected, summary, paused) = small_spool_run(policy);
        assert!(!paused, "{policy}: reading goes on while the spool is full");
        let dropped = Metrics::get(&summary.metrics.spool_dropped);
        let arrived = tally(&got).len() as u64;
        assert!(dropped > 0, "{policy}: a full spool must drop");
        assert_eq!(arrived + dropped, expected.len() as u64, "{policy}: every line arrived or was counted as dropped");
        if policy == "drop_newest" {
            assert!(got.iter().any(|r| r.text().starts_with("f-10-")), "drop_newest keeps the oldest spooled lines");
        } else {
            assert!(got.iter().any(|r| r.text().starts_with("f-3999-")), "drop_oldest keeps the newest lines");
        }
    }
}

/// Writes a segment file the way the spool's documented format says, independently of the
/// agent's encoder: marker, length, sequence number, CRC-32 of length+sequence+body, body.
fn fixture_record(seq: u64, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes()); // no key
    body.extend_from_slice(payload);
    let mut head = Vec::new();
    head.extend_from_slice(&(body.len() as u32).to_le_bytes());
    head.extend_from_slice(&seq.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(&body);
    let mut rec = vec![0xA5, 0x5A, 0xC3, 0x3C];
    rec.extend_from_slice(&head);
    rec.extend_from_slice(&h.finalize().to_le_bytes());
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn damaged_spool_fixtures_replay_everything_else_and_count_the_damage() {
    let kc = cluster("fixtures", 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spool = data.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // Segment 0: records 0..10, record 4 with one flipped bit in its payload.
    let mut seg0 = b"AGSPOOL1".to_vec();
    for seq in 0..10 {
        let mut rec = fixture_record(seq, "fixtures", format!("spooled-{seq}").as_bytes());
        if seq == 4 {
            let last = rec.len() - 1;
            rec[last] ^= 0x01;
        }
        seg0.extend(rec);
    }
    std::fs::write(spool.join(format!("{:020}.seg", 0)), seg0).unwrap();
    // Segment 10: records 10..20, then record 20 torn halfway (a crash mid-write).
    let mut seg10 = b"AGSPOOL1".to_vec();
    for seq in 10..20 {
        seg10.extend(fixture_record(seq, "fixtures", format!("spooled-{seq}").as_bytes()));
    }
    let torn = fixture_record(20, "fixtures", b"spooled-20");
    seg10.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(spool.join(format!("{:020}.seg", 10)), seg10).unwrap();

    let cfg =
        config(&data, &[dir.path().join("none-*.log")], &kc.bootstrap_servers(), "fixtures", "", "    codec: raw\n");
    let agent = RunningAgent::start(&with_spool(cfg, ""));
    let expected: Vec<String> = (0..20).filter(|s| *s != 4).map(|s| format!("spooled-{s}")).collect();
    let got = consume(&kc.bootstrap_servers(), "fixtures", 1, expected.len(), T);
    wait_for("the spool to drain", T, || segments(&data).is_empty());
    let summary = agent.stop();
    assert_exactly_once(&got, &expected);
    let in_order: Vec<String> = got.iter().map(Record::text).collect();
    assert_eq!(in_order, expected, "replayed in spool order");
    assert_eq!(Metrics::get(&summary.metrics.spool_damaged), 1);
    assert_eq!(Metrics::get(&summary.metrics.spool_torn_bytes), (torn.len() / 2) as u64);
    let cursor = std::fs::read(spool.join("cursor")).unwrap();
    assert_eq!(u64::from_le_bytes(cursor[8..16].try_into().unwrap()), 20, "cursor after the last record");
}

/// Ships 50 lines, takes every broker down, writes 50 more, stops (2 s drain deadline, timed),
/// brings the brokers back, restarts and reads the topic. Returns the first run's summary, what
/// was read back, and the temp dir (so the caller can look at `data/`). Both runs' counters add up.
/// Returns the first run's summary, the records, the directory and when the second run started
/// (milliseconds since 1970).
fn stop_while_kafka_is_down(
    topic: &str,
    queue: &str,
) -> (agent::pipeline::Summary, Vec<Record>, tempfile::TempDir, i64) {
    let kc = DownableCluster::new(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.log");
    append_lines(&log, numbered("up", 0..50));
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        topic,
        "",
        "    codec: raw\n",
    )
    .replace("shutdown_timeout: 10s", "shutdown_timeout: 2s")
        + queue;
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), topic, 1, 50, T);
    kc.all_down(false);
    append_lines(&log, numbered("while-down", 0..50));
    std::thread::sleep(Duration::from_secs(1));
    let started = std::time::Instant::now();
    let summary = agent.stop();
    assert!(started.elapsed() < Duration::from_secs(6), "stop took {:?} with a 2s drain deadline", started.elapsed());
    kc.all_down(true);
    let restarted = jiff::Timestamp::now().as_millisecond();
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), topic, 1, 100, T);
    wait_for("the spool to drain", T, || segments(&dir.path().join("data")).is_empty());
    let second = agent.stop();
    assert_counters_add_up(&summary);
    assert_counters_add_up(&second);
    (summary, got, dir, restarted)
}

#[test]
fn shutdown_with_kafka_down_spools_what_is_left_and_replays_it_after_restart() {
    let (summary, got, _dir, restarted) = stop_while_kafka_is_down("down", &with_spool(String::new(), ""));
    assert_eq!(summary.unacknowledged, 0, "what Kafka did not take by the deadline is in the spool");
    // A replayed record keeps its event's time (the spool stores it), as the first send had it.
    let late: Vec<_> = got
        .iter()
        .filter(|r| r.text().starts_with("while-down") && r.timestamp.is_none_or(|t| t >= restarted))
        .map(|r| (r.text(), r.timestamp))
        .collect();
    assert!(late.is_empty(), "replayed with the replay's time (restart at {restarted}), not the line's: {late:?}");
    assert_eq!(Metrics::get(&summary.metrics.events_spooled), 50);
    assert_eq!(summary.spooled, 50, "the shutdown summary says what waits in the spool");
    assert_exactly_once(&got, &[numbered("up", 0..50), numbered("while-down", 0..50)].concat());
}

#[test]
fn without_a_spool_the_shutdown_deadline_leaves_lines_unacknowledged_and_nothing_is_lost() {
    let (summary, got, dir, _) = stop_while_kafka_is_down("nospool", "queue:\n  spool:\n    enabled: false\n");
    assert!(summary.unacknowledged > 0, "the lines sent while Kafka was down were not acknowledged");
    assert!(!dir.path().join("data/spool").exists(), "no spool directory when the spool is off");
    let texts: HashSet<String> = got.iter().map(Record::text).collect();
    for l in numbered("up", 0..50).iter().chain(numbered("while-down", 0..50).iter()) {
        assert!(texts.contains(l), "missing {l}");
    }
}

/// The refusal tests' run: lines alternate between `held` and `open` (a `topics` rule routes a
/// line by its text) while the agent runs with a spool and `librdkafka` (extra producer
/// properties, indented). Returns once every `open` line arrived exactly once and the held topic
/// counts as refused.
struct HeldTopicRun {
    agent: RunningAgent,
    status: Arc<agent::status::Status>,
    dir: tempfile::TempDir,
    /// The lines routed to the held topic.
    held: Vec<String>,
}

impl HeldTopicRun {
    fn start(
        kc: &rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        held: &str,
        librdkafka: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
        std::fs::create_dir(&logs).unwrap();
        let output = format!("    codec: raw\n    backoff:\n      init: 50ms\n      max: 500ms\n{librdkafka}    topics:\n      - topic: open\n        when.contains:\n          message: \"open\"\n");
        let cfg = config(&data, &[logs.join("*.log")], &kc.bootstrap_servers(), held, "", &output);
        let status = Arc::new(agent::status::Status::default());
        let opts = agent::pipeline::RunOptions { status: status.clone(), ..Default::default() };
        let agent = RunningAgent::start_with(&with_spool(cfg, ""), opts);
        let (held_lines, open) = (numbered(held, 0..200), numbered("open", 0..200));
        append_lines(
            &logs.join("a.log"),
            held_lines.iter().cloned().zip(open.iter().cloned()).flat_map(|(d, o)| [d, o]),
        );
        // The other topic flows while this one is refused.
        let got = consume(&kc.bootstrap_servers(), "open", 1, open.len(), T);
        assert_exactly_once(&got, &open);
        let m = status.metrics.clone();
        wait_for("the held topic counted as refused", T, || Metrics::get(&m.output_topics_refused) == 1);
        HeldTopicRun { agent, status, dir, held: held_lines }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("logs/a.log")
    }

    /// Nothing was spooled or dropped: a refusal is not an outage.
    fn assert_nothing_spooled_or_dropped(&self) {
        let m = &self.status.metrics;
        assert_eq!(Metrics::get(&m.spool_switches), 0, "a refusal is not an outage");
        assert_eq!(Metrics::get(&m.events_spooled), 0);
        assert_eq!(Metrics::get(&m.events_failed), 0, "nothing dropped");
        assert!(segments(&self.data()).is_empty(), "nothing in the spool");
    }

    /// Once Kafka takes the topic: every held line arrives exactly once, readiness recovers, and
    /// the counters add up at the stop.
    fn finish(
        self,
        kc: &rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        topic: &str,
    ) -> agent::pipeline::Summary {
        let got = consume(&kc.bootstrap_servers(), topic, 1, self.held.len(), T);
        assert_exactly_once(&got, &self.held);
        wait_for("the topic no longer refused", T, || self.status.readiness().is_ok());
        let summary = self.agent.stop();
        assert_counters_add_up(&summary);
        assert_eq!(summary.unacknowledged, 0);
        summary
    }
}

/// A topic Kafka refuses (here: topic authorization failed, set in the mock cluster's metadata)
/// is not an outage: its events are held, not spooled and not dropped; `/healthz`'s readiness
/// names the topic and the error; other topics keep flowing; once Kafka takes the topic, every
/// held line arrives exactly once.
#[test]
fn a_refused_topic_holds_its_events_without_spooling_and_says_so() {
    use rdkafka::types::RDKafkaRespErr;
    let kc = cluster("denied", 1);
    kc.create_topic("open", 1, 1).unwrap();
    kc.topic_error("denied", RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED).unwrap();
    let run = HeldTopicRun::start(&kc, "denied", "");
    let m = run.status.metrics.clone();
    // Well past unhealthy_after (2 s): still held, never taken for an outage.
    std::thread::sleep(Duration::from_secs(5));
    let reasons = run.status.readiness().expect_err("not ready while a topic is refused");
    assert!(
        reasons.iter().any(|u| u.reason.contains("refuses topic denied") && u.reason.contains("uthorization")),
        "{reasons:?}"
    );
    assert!(Metrics::get(&m.output_refusals) >= 200, "refusals {}", Metrics::get(&m.output_refusals));
    run.assert_nothing_spooled_or_dropped();
    assert_eq!(Metrics::get(&m.output_spooling), 0);
    assert!(
        registry_offset_of(&run.data(), &run.log()).unwrap_or(0) < file_len(&run.log()),
        "the held lines are not acknowledged in the registry"
    );

    kc.topic_error("denied", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR).unwrap();
    let summary = run.finish(&kc, "denied");
    assert_eq!(Metrics::get(&summary.metrics.output_topics_refused), 0);
}

/// A topic that does not exist, with auto-creation off (the producer's `allow.auto.create.topics:
/// false`, as on a cluster whose admins create topics): librdkafka reports it missing once the
/// metadata has had `topic.metadata.propagation.max.ms` to show it. That is a refusal too: held,
/// named in readiness, never spooled; once the topic is created every held line arrives once.
#[test]
fn a_missing_topic_with_auto_creation_off_is_held_until_it_is_created() {
    let kc = cluster("open", 1);
    let librdkafka =
        "    librdkafka:\n      allow.auto.create.topics: \"false\"\n      topic.metadata.propagation.max.ms: \"300\"\n";
    let run = HeldTopicRun::start(&kc, "missing", librdkafka);
    std::thread::sleep(Duration::from_secs(4));
    let reasons = run.status.readiness().expect_err("not ready while a topic is missing");
    assert!(reasons.iter().any(|u| u.reason.contains("refuses topic missing")), "{reasons:?}");
    run.assert_nothing_spooled_or_dropped();

    kc.create_topic("missing", 1, 1).unwrap();
    run.finish(&kc, "missing");
}
