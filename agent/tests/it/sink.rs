//! FileStream sinks against librdkafka's mock cluster, in process: what reaches the file, restarts
//! from committed offsets, rotation, inputs and sinks in one process, and start-up errors.

use crate::common::*;
use crate::outage::DownableCluster;
use agent::config::Config;
use agent::metrics::Metrics;
use agent::pipeline::{self, RunOptions};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Produces `values` to `topic`, spreading them over `partitions` in turn.
pub fn produce(bootstrap: &str, topic: &str, partitions: i32, values: &[String]) {
    let p: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("producer");
    for (i, v) in values.iter().enumerate() {
        let mut rec = BaseRecord::<(), str>::to(topic).payload(v.as_str()).partition(i as i32 % partitions);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// A sinks-only config.
pub fn sink_config(data: &Path, file: &Path, bootstrap: &str, topics: &str, extra: &str) -> String {
    format!(
        "path:\n  data: \"{}\"\nlogging:\n  metrics:\n    enabled: false\nsinks:\n  - id: out\n    topics: [{topics}]\n    file: \"{}\"\n    hosts: [\"{bootstrap}\"]\n    group_id: it-sink\n    commit_interval: 200ms\n{extra}",
        data.display(),
        file.display()
    )
}

pub fn file_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Every expected line is in the file exactly once, nothing else is, and each partition's records
/// keep their order (values are `p<partition>-<seq>`).
fn assert_file_exactly_once_in_partition_order(lines: &[String], expected: &[String]) {
    let records: Vec<Record> = lines
        .iter()
        .map(|l| Record {
            partition: 0,
            key: None,
            value: l.clone().into_bytes(),
            headers: Vec::new(),
            timestamp: None,
        })
        .collect();
    assert_exactly_once(&records, expected);
    let mut last: HashMap<&str, usize> = HashMap::new();
    for l in lines {
        let (part, seq) = l.split_once('-').unwrap();
        let seq: usize = seq.parse().unwrap();
        if let Some(prev) = last.insert(part, seq) {
            assert!(seq > prev, "partition {part} out of order: {prev} then {seq}");
        }
    }
}

fn partitioned(range: std::ops::Range<usize>, partitions: usize) -> Vec<String> {
    range.map(|i| format!("p{}-{i}", i % partitions)).collect()
}

#[test]
fn sink_writes_every_record_and_a_restart_continues_from_committed_offsets() {
    let kc = cluster("sinked", 3);
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out.txt"));
    let first = partitioned(0..3000, 3);
    produce(&kc.bootstrap_servers(), "sinked", 3, &first);
    let text = sink_config(&data, &out, &kc.bootstrap_servers(), "sinked", "");
    let agent = RunningAgent::start(&text);
    wait_for("the first records in the file", T, || file_lines(&out).len() >= first.len());
    let summary = agent.stop();
    assert_file_exactly_once_in_partition_order(&file_lines(&out), &first);
    assert!(Metrics::get(&summary.metrics.sink_commits) >= 1);
    assert_eq!(Metrics::get(&summary.metrics.sink_records_written), 3000);
    assert!(data.join("sinks/out.json").exists());

    let second = partitioned(3000..5000, 3);
    produce(&kc.bootstrap_servers(), "sinked", 3, &second);
    let agent = RunningAgent::start(&text);
    wait_for("the later records", T, || file_lines(&out).len() >= 5000);
    std::thread::sleep(Duration::from_millis(500));
    let summary = agent.stop();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_file_exactly_once_in_partition_order(&file_lines(&out), &all);
    assert_eq!(Metrics::get(&summary.metrics.sink_records_written), 2000, "the restart re-read committed records");
}

#[test]
fn inputs_and_a_sink_in_one_process_move_a_file_through_a_topic() {
    let kc = cluster("through", 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("app.log"), dir.path().join("copy.txt"));
    let lines: Vec<String> = (0..2000).map(|i| format!("line {i} with \"quotes\" and ünïcödé")).collect();
    append_lines(&log, lines.clone());
    let text = config(&dir.path().join("data"), std::slice::from_ref(&log), &kc.bootstrap_servers(), "through", "", "")
        + &format!(
            "sinks:\n  - id: copy\n    topics: [through]\n    file: \"{}\"\n    hosts: [\"{}\"]\n    group_id: copy\n    format: message\n",
            out.display(),
            kc.bootstrap_servers()
        );
    let agent = RunningAgent::start(&text);
    wait_for("the file copied through Kafka", T, || file_lines(&out).len() >= lines.len());
    let summary = agent.stop();
    assert_eq!(file_lines(&out), lines, "one partition: the copy equals the input, in order");
    assert_eq!(Metrics::get(&summary.metrics.sink_records_undecodable), 0);
    assert_eq!(summary.unacknowledged, 0);
}

#[test]
fn sink_follows_rename_rotation_and_reopens_on_hangup() {
    let kc = cluster("rotated", 1);
    let dir = tempfile::tempdir().unwrap();
    let (data, out, old) = (dir.path().join("data"), dir.path().join("out.txt"), dir.path().join("out.txt.1"));
    let text = sink_config(&data, &out, &kc.bootstrap_servers(), "rotated", "");
    let hangups = Arc::new(AtomicU64::new(0));
    let agent = RunningAgent::start_with(&text, RunOptions { hangups: hangups.clone(), ..Default::default() });
    produce(&kc.bootstrap_servers(), "rotated", 1, &numbered("a", 0..1000));
    wait_for("the first batch", T, || file_lines(&out).len() >= 1000);
    std::fs::rename(&out, &old).unwrap();
    produce(&kc.bootstrap_servers(), "rotated", 1, &numbered("b", 0..1000));
    wait_for("a new file after the rename", T, || file_lines(&out).len() >= 1000);
    // copytruncate followed by SIGHUP (logrotate's postrotate): the sink reopens and keeps going.
    std::fs::OpenOptions::new().write(true).open(&out).unwrap().set_len(0).unwrap();
    hangups.fetch_add(1, Ordering::Relaxed);
    produce(&kc.bootstrap_servers(), "rotated", 1, &numbered("c", 0..1000));
    wait_for("records after copytruncate", T, || file_lines(&out).len() >= 1000);
    let summary = agent.stop();
    assert_eq!(file_lines(&old), numbered("a", 0..1000));
    assert_eq!(file_lines(&out), numbered("c", 0..1000));
    assert_eq!(Metrics::get(&summary.metrics.sink_reopens), 2, "one for the rename, one for the hangup");
}

#[test]
fn sink_file_that_cannot_be_created_stops_start_up_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    // /proc cannot be written, not even by root (these tests may run as root, so modes prove nothing).
    let text = sink_config(&dir.path().join("data"), Path::new("/proc/agent-sink/out.txt"), "127.0.0.1:1", "t", "");
    let config = Config::from_str_at(&text, Path::new("t.yml")).unwrap();
    let err = pipeline::run(config, RunOptions::default(), agent::shutdown::Shutdown::stopped()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("sink \"out\"") && msg.contains("cannot open for appending /proc/agent-sink/out.txt"),
        "{msg}"
    );
}

/// Issue #16: a sinks-only agent whose brokers are down is not ready: readiness names the sink
/// and says nothing can be consumed, its connector is FAILED; with the brokers back it is ready
/// again and goes on copying.
#[test]
fn a_sink_cut_off_from_kafka_is_not_ready() {
    use agent::status::Status;
    let kc = DownableCluster::new("cutoff", 1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let text = sink_config(&dir.path().join("data"), &out, &kc.bootstrap_servers(), "cutoff", "");
    let status = Arc::new(Status::default());
    let opts = RunOptions { status: status.clone(), ..Default::default() };
    let agent = RunningAgent::start_with(&text, opts);
    produce(&kc.bootstrap_servers(), "cutoff", 1, &numbered("a", 0..10));
    wait_for("the first records copied", T, || file_lines(&out).len() == 10);
    assert_eq!(status.readiness(), Ok(()));
    kc.all_down(false);
    wait_for("not ready while the brokers are down", T, || {
        status.readiness().is_err_and(|r| r.iter().any(|u| u.reason.contains("sink out: no Kafka broker connected")))
    });
    assert_eq!(status.find("out").unwrap().state().0, "FAILED");
    kc.all_down(true);
    wait_for("ready again", T, || status.readiness().is_ok());
    assert_eq!(status.find("out").unwrap().state().0, "RUNNING");
    produce(&kc.bootstrap_servers(), "cutoff", 1, &numbered("b", 0..10));
    wait_for("copying again", T, || file_lines(&out).len() == 20);
    agent.stop();
    assert_eq!(file_lines(&out), [numbered("a", 0..10), numbered("b", 0..10)].concat());
}

/// Issue #16: a reload that changes only a sink's format restarts the sink with it (final commit
/// first): the records after it are written in the new format, and none is lost or written twice.
#[test]
fn a_reload_that_changes_only_a_sinks_format_applies_it() {
    let kc = cluster("reformat", 1);
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out.txt"));
    let event = |i: usize| format!("{{\"message\":\"m-{i}\"}}");
    produce(&kc.bootstrap_servers(), "reformat", 1, &(0..50).map(event).collect::<Vec<_>>());
    let text = sink_config(&data, &out, &kc.bootstrap_servers(), "reformat", "");
    let opts = RunOptions::default();
    let (reload, metrics) = (opts.reload.clone(), opts.status.metrics.clone());
    let agent = RunningAgent::start_with(&text, opts);
    wait_for("the records before the reload", T, || file_lines(&out).len() == 50);
    let new = text.replace("    commit_interval: 200ms\n", "    commit_interval: 200ms\n    format: message\n");
    assert_ne!(new, text);
    *reload.lock().unwrap() = Some(Config::from_str_at(&new, Path::new("agent.yml")).unwrap());
    wait_for("the reload applied", T, || Metrics::get(&metrics.config_reloads) == 1);
    produce(&kc.bootstrap_servers(), "reformat", 1, &(50..100).map(event).collect::<Vec<_>>());
    wait_for("the records after the reload", T, || file_lines(&out).len() >= 100);
    std::thread::sleep(Duration::from_millis(500));
    agent.stop();
    let expected: Vec<String> = (0..50).map(event).chain((50..100).map(|i| format!("m-{i}"))).collect();
    assert_eq!(file_lines(&out), expected, "each record once, in the format of its side of the reload");
}
