//! The pipeline against librdkafka's mock cluster: every line read back from the topic.

use crate::common::*;
use agent::metrics::Metrics;
use rdkafka::mocking::MockCluster;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn several_files_with_many_lines_arrive_once_each() {
    let kc = cluster("many", 3);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut expected = Vec::new();
    for f in 0..4 {
        let lines = numbered(&format!("file{f}"), 0..3000);
        append_lines(&logs.join(format!("app{f}.log")), lines.clone());
        expected.extend(lines);
    }
    let cfg = config(
        &dir.path().join("data"),
        &[logs.join("*.log")],
        &kc.bootstrap_servers(),
        "many",
        "",
        "    codec: raw\n",
    );
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "many", 3, expected.len(), T);
    let summary = agent.stop();
    assert_exactly_once(&got, &expected);
    assert_eq!(Metrics::get(&summary.metrics.events_acked), expected.len() as u64);
    assert_eq!(summary.unacknowledged, 0);
}

#[test]
fn clean_stop_and_restart_delivers_every_line_exactly_once() {
    let kc = cluster("restart", 2);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let data = dir.path().join("data");
    let first = numbered("a", 0..5000);
    append_lines(&log, first.clone());
    let cfg = config(&data, std::slice::from_ref(&log), &kc.bootstrap_servers(), "restart", "", "    codec: raw\n");
    let agent = RunningAgent::start(&cfg);
    // Stop in the middle of a stream: lines keep being written while the agent runs.
    let second = numbered("b", 0..3000);
    for chunk in second.chunks(500) {
        append_lines(&log, chunk.to_vec());
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.stop();
    // Written while the agent is stopped: must arrive after the restart.
    let third = numbered("c", 0..2000);
    append_lines(&log, third.clone());
    let agent = RunningAgent::start(&cfg);
    let expected: Vec<String> = first.into_iter().chain(second).chain(third).collect();
    let got = consume(&kc.bootstrap_servers(), "restart", 2, expected.len(), T);
    agent.stop();
    assert_exactly_once(&got, &expected);
}

#[test]
fn rotation_truncation_deletion_and_new_files_all_arrive() {
    let kc = cluster("rotate", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = config(
        &dir.path().join("data"),
        &[logs.join("*.log*")],
        &kc.bootstrap_servers(),
        "rotate",
        "",
        "    codec: raw\n",
    );
    let renamed = logs.join("renamed.log");
    let copytrunc = logs.join("copytrunc.log");
    let deleted = logs.join("deleted.log");
    append_lines(&renamed, numbered("r1", 0..200));
    append_lines(&copytrunc, numbered("t1", 0..200));
    append_lines(&deleted, numbered("d1", 0..200));
    let agent = RunningAgent::start(&cfg);
    let bs = kc.bootstrap_servers();
    wait_for("first lines", T, || consume(&bs, "rotate", 1, 600, Duration::from_secs(2)).len() >= 600);

    // rename + create: the old file gets more lines after the rename (the writer still has it open).
    std::fs::rename(&renamed, logs.join("renamed.log.1")).unwrap();
    append_lines(&logs.join("renamed.log.1"), numbered("r2", 0..100));
    append_lines(&renamed, numbered("r3", 0..100));
    // copytruncate: copy away (outside the glob), truncate, write again.
    std::fs::copy(&copytrunc, dir.path().join("copytrunc.saved")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&copytrunc).unwrap().set_len(0).unwrap();
    append_lines(&copytrunc, numbered("t2", 0..50));
    // deletion right after a last write: the tail of the file is still read, and its last line
    // without a newline is shipped once the file is finished.
    append_lines(&deleted, numbered("d2", 0..100));
    std::fs::OpenOptions::new().append(true).open(&deleted).unwrap().write_all(b"d-no-newline").unwrap();
    std::fs::remove_file(&deleted).unwrap();
    // a file created after start
    append_lines(&logs.join("late.log"), numbered("n", 0..100));

    let mut expected: Vec<String> = ["r1:200", "t1:200", "d1:200", "d2:100", "r2:100", "r3:100", "t2:50", "n:100"]
        .iter()
        .flat_map(|spec| {
            let (p, n) = spec.split_once(':').unwrap();
            numbered(p, 0..n.parse().unwrap())
        })
        .collect();
    expected.push("d-no-newline".into());
    let got = consume(&bs, "rotate", 1, expected.len(), T);
    let summary = agent.stop();
    let tallied = tally(&got);
    for l in &expected {
        assert!(tallied.contains_key(l), "missing {l}");
    }
    assert!(Metrics::get(&summary.metrics.files_truncated) >= 1, "copytruncate was counted");
}

#[test]
fn round_robin_spreads_evenly_over_partitions() {
    let kc = cluster("rr", 3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rr.log");
    append_lines(&log, numbered("x", 0..3000));
    let cfg = config(&dir.path().join("data"), &[log], &kc.bootstrap_servers(), "rr", "", "    codec: raw\n");
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "rr", 3, 3000, T);
    agent.stop();
    assert_eq!(got.len(), 3000);
    for p in 0..3 {
        assert_eq!(got.iter().filter(|r| r.partition == p).count(), 1000, "partition {p}");
    }
}

#[test]
fn group_events_sends_runs_to_one_partition() {
    let kc = cluster("grp", 2);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("g.log");
    append_lines(&log, numbered("g", 0..400));
    let extra = "    codec: raw\n    partition:\n      round_robin:\n        group_events: 100\n";
    let cfg = config(&dir.path().join("data"), &[log], &kc.bootstrap_servers(), "grp", "", extra);
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "grp", 2, 400, T);
    agent.stop();
    let p0: HashSet<String> = got.iter().filter(|r| r.partition == 0).map(Record::text).collect();
    // Lines 0-99 and 200-299 on one partition, 100-199 and 300-399 on the other.
    let first_run: HashSet<String> = numbered("g", 0..100).into_iter().chain(numbered("g", 200..300)).collect();
    let second_run: HashSet<String> = numbered("g", 100..200).into_iter().chain(numbered("g", 300..400)).collect();
    assert!(p0 == first_run || p0 == second_run, "partition 0 got {} lines not in runs of 100", p0.len());
}

#[test]
fn every_required_acks_setting_delivers() {
    for acks in ["0", "1", "-1"] {
        let topic = format!("acks{}", acks.replace('-', "m"));
        let kc = cluster(&topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        let lines = numbered(&topic, 0..500);
        append_lines(&log, lines.clone());
        let extra = format!("    codec: raw\n    required_acks: {acks}\n");
        let cfg = config(&dir.path().join("data"), &[log], &kc.bootstrap_servers(), &topic, "", &extra);
        let agent = RunningAgent::start(&cfg);
        let got = consume(&kc.bootstrap_servers(), &topic, 1, lines.len(), T);
        agent.stop();
        assert_exactly_once(&got, &lines);
    }
}

#[test]
fn json_events_have_filebeat_fields_and_ndjson_errors_are_kept() {
    let kc = cluster("json", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.json");
    std::fs::write(&log, "{\"msg\":\"one\",\"level\":\"info\"}\nnot json at all\n{\"msg\":\"two\"}\r\n").unwrap();
    let input =
        "    fields: {service: api}\n    tags: [edge]\n    parsers:\n      - ndjson:\n          message_key: msg\n          add_error_key: true\n";
    let cfg = config(&dir.path().join("data"), std::slice::from_ref(&log), &kc.bootstrap_servers(), "json", input, "");
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "json", 1, 3, T);
    let summary = agent.stop();
    assert_eq!(got.len(), 3);
    let evs: Vec<serde_json::Value> = got.iter().map(Record::json).collect();
    let one = evs.iter().find(|e| e["message"] == "one").expect("first event");
    assert_eq!(one["level"], "info");
    assert_eq!(one["log"]["offset"], 0);
    assert_eq!(one["log"]["file"]["path"], log.display().to_string());
    assert_eq!(one["fields"]["service"], "api");
    assert_eq!(one["tags"][0], "edge");
    assert_eq!(one["input"]["type"], "filestream");
    assert!(one["@timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(one["agent"]["id"].is_string() && one["host"]["name"].is_string() && one["ecs"]["version"].is_string());
    let bad = evs.iter().find(|e| e["message"] == "not json at all").expect("invalid line kept");
    assert_eq!(bad["error"]["type"], "json");
    assert!(evs.iter().any(|e| e["message"] == "two"), "CRLF line decoded");
    assert_eq!(Metrics::get(&summary.metrics.lines_invalid_json), 1);
}

#[test]
fn topic_and_key_format_strings_route_events() {
    let kc = MockCluster::new(1).unwrap();
    kc.create_topic("logs-api", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("f.json");
    // k4's topic would be `logs-my api!`, a name Kafka refuses: dropped and counted, not sent.
    let lines = "{\"svc\":\"api\",\"id\":\"k1\"}\n{\"id\":\"k2\"}\n{\"svc\":\"my api!\",\"id\":\"k4\"}\n{\"svc\":\"api\",\"id\":\"k3\"}\n";
    std::fs::write(&log, lines).unwrap();
    let input = "    parsers:\n      - ndjson: {}\n";
    let cfg = config(
        &dir.path().join("data"),
        &[log],
        &kc.bootstrap_servers(),
        "\"logs-%{[svc]}\"",
        input,
        "    key: \"%{[id]}\"\n",
    );
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "logs-api", 1, 2, T);
    let summary = agent.stop();
    let keys: Vec<Vec<u8>> = got.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k3".to_vec()]);
    assert_eq!(Metrics::get(&summary.metrics.events_dropped_format), 1, "the event without svc is dropped and counted");
    assert_eq!(
        Metrics::get(&summary.metrics.events_dropped_topic),
        1,
        "the event naming a bad topic is dropped and counted"
    );
    assert_eq!(Metrics::get(&summary.metrics.events_failed), 0, "and never sent to be refused");
}

#[test]
fn bad_input_is_contained_and_counted() {
    let kc = cluster("bad", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Binary garbage with a few newlines, a 10 MB line, and a normal file next to them.
    let garbage: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(logs.join("garbage.log"), &garbage).unwrap();
    let mut big = vec![b'x'; 10 * 1024 * 1024];
    big.extend_from_slice(b"\nafter-big\n");
    std::fs::write(logs.join("big.log"), &big).unwrap();
    append_lines(&logs.join("good.log"), numbered("good", 0..100));
    let input = "    max_bytes: 64KiB\n";
    let cfg = config(&dir.path().join("data"), &[logs.join("*.log")], &kc.bootstrap_servers(), "bad", input, "");
    let agent = RunningAgent::start(&cfg);
    let expected_good = numbered("good", 0..100);
    let bs = kc.bootstrap_servers();
    let mut got = Vec::new();
    wait_for("good lines and the line after the big one", T, || {
        got = consume(&bs, "bad", 1, 1, Duration::from_secs(2));
        let msgs: HashSet<String> =
            got.iter().map(|r| r.json()["message"].as_str().unwrap_or("").to_string()).collect();
        expected_good.iter().all(|l| msgs.contains(l)) && msgs.contains("after-big")
    });
    let summary = agent.stop();
    let truncated: Vec<serde_json::Value> =
        got.iter().map(Record::json).filter(|e| e["log"]["flags"][0] == "truncated").collect();
    assert_eq!(truncated.len(), 1, "the 10 MB line arrives once, truncated and flagged");
    assert_eq!(truncated[0]["message"].as_str().unwrap().len(), 64 * 1024);
    assert!(Metrics::get(&summary.metrics.lines_invalid_utf8) > 0, "garbage counted as invalid UTF-8");
    assert_eq!(Metrics::get(&summary.metrics.lines_truncated), 1);
}

#[test]
fn glob_matching_nothing_picks_up_files_created_later() {
    let kc = cluster("later", 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("not-yet");
    let cfg = config(
        &dir.path().join("data"),
        &[logs.join("*.log")],
        &kc.bootstrap_servers(),
        "later",
        "",
        "    codec: raw\n",
    );
    let agent = RunningAgent::start(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::create_dir(&logs).unwrap();
    append_lines(&logs.join("x.log"), numbered("later", 0..10));
    let got = consume(&kc.bootstrap_servers(), "later", 1, 10, T);
    agent.stop();
    assert_exactly_once(&got, &numbered("later", 0..10));
}

#[test]
fn start_position_end_skips_existing_content_only() {
    let kc = cluster("end", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("old.log");
    append_lines(&log, numbered("old", 0..50));
    let cfg = config(
        &dir.path().join("data"),
        &[dir.path().join("*.log")],
        &kc.bootstrap_servers(),
        "end",
        "    start_position: end\n",
        "    codec: raw\n",
    );
    let agent = RunningAgent::start(&cfg);
    std::thread::sleep(Duration::from_millis(600));
    append_lines(&log, numbered("new", 0..20));
    append_lines(&dir.path().join("fresh.log"), numbered("fresh", 0..5));
    let expected: Vec<String> = numbered("new", 0..20).into_iter().chain(numbered("fresh", 0..5)).collect();
    let got = consume(&kc.bootstrap_servers(), "end", 1, expected.len(), T);
    agent.stop();
    assert_exactly_once(&got, &expected);
}

#[test]
fn a_thousand_files_at_once_with_few_descriptors() {
    let kc = cluster("thousand", 2);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut expected = Vec::new();
    for f in 0..1000 {
        let lines = numbered(&format!("f{f}"), 0..5);
        append_lines(&logs.join(format!("{f}.log")), lines.clone());
        expected.extend(lines);
    }
    // Far fewer descriptors than files: idle files must be closed and others opened in turn.
    let cfg = config(
        &dir.path().join("data"),
        &[logs.join("*.log")],
        &kc.bootstrap_servers(),
        "thousand",
        "",
        "    codec: raw\n",
    )
    .replace("logging:", "queue:\n  max_open_files: 64\nlogging:");
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "thousand", 2, expected.len(), Duration::from_secs(60));
    let summary = agent.stop();
    assert_exactly_once(&got, &expected);
    assert!(Metrics::get(&summary.metrics.files_closed) > 0, "descriptors were recycled");
}

#[test]
fn registry_is_written_and_corrupt_registry_stops_start_up() {
    let kc = cluster("reg", 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("r.log");
    append_lines(&log, numbered("r", 0..10));
    let cfg = config(&data, std::slice::from_ref(&log), &kc.bootstrap_servers(), "reg", "", "    codec: raw\n");
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "reg", 1, 10, T);
    agent.stop();
    let reg_path = data.join("registry/registry.json");
    let reg: serde_json::Value = serde_json::from_slice(&std::fs::read(&reg_path).unwrap()).unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(reg["entries"][0]["offset"], size, "registry holds the acknowledged end of file");
    assert_eq!(reg["entries"][0]["path"], log.display().to_string());

    std::fs::write(&reg_path, b"{\"version\":1,\"entries\":[{\"inp").unwrap();
    let config = agent::config::Config::from_str_at(&cfg, Path::new("t.yml")).unwrap();
    let err =
        agent::pipeline::run(config, Default::default(), agent::shutdown::Shutdown::stopped()).unwrap_err().to_string();
    assert!(err.contains("registry.json") && err.contains("corrupt"), "{err}");
}

#[test]
fn same_inode_with_new_content_is_read_from_the_start() {
    let kc = cluster("reuse", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append_lines(&log, numbered("old", 0..100));
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "reuse",
        "",
        "    codec: raw\n",
    );
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "reuse", 1, 100, T);
    agent.stop();
    // While stopped, the file is rewritten in place (same inode) with other, longer content: a
    // stale offset would skip its first lines.
    let fresh = numbered("brand-new-content", 0..200);
    let mut text = fresh.join("\n");
    text.push('\n');
    std::fs::write(&log, text).unwrap();
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "reuse", 1, 300, T);
    let summary = agent.stop();
    let expected: Vec<String> = numbered("old", 0..100).into_iter().chain(fresh).collect();
    assert_exactly_once(&got, &expected);
    assert_eq!(Metrics::get(&summary.metrics.files_inode_reused), 1);
}

/// Issue #14's reproduction: a file closed as inactive comes back under the same device and
/// inode with other content (deleted and created again, which ext4 hands the freed inode; or
/// rewritten in place at the same size, which keeps the inode for certain). Before the fix the
/// reader matched it by inode alone and resumed at the old offset: a same-size replacement was
/// never shipped and a longer one lost its first old-size bytes.
#[test]
fn inode_reused_while_the_file_is_closed_is_read_from_the_start() {
    let kc = cluster("reuse-closed", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("f.log");
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "reuse-closed",
        "    close:\n      on_state_change:\n        inactive: 300ms\n",
        "    codec: raw\n",
    );
    // 100 lines of 10 bytes, as in the report; later rounds are the same size or longer.
    let round = |r: usize, n: usize| padded(&format!("r{r:02}"), 0..n, 9);
    let mut expected = round(0, 100);
    append_lines(&log, expected.clone());
    let agent = RunningAgent::start(&cfg);
    let bs = kc.bootstrap_servers();
    wait_for("the first round", T, || consume(&bs, "reuse-closed", 1, 100, Duration::from_secs(2)).len() >= 100);
    let (mut reused, mut rewritten) = (0, 0);
    for r in 1..=8 {
        // Long enough for the file to be closed as inactive (300 ms) and for housekeeping.
        std::thread::sleep(Duration::from_millis(1200));
        let lines = round(r, if r % 2 == 0 { 100 } else { 130 });
        let before = std::fs::metadata(&log).unwrap().ino();
        if r % 4 == 3 {
            // In place, same size, same inode: nothing but the content tells it apart.
            let text: String = round(r, 100).iter().map(|l| format!("{l}\n")).collect();
            std::fs::OpenOptions::new().write(true).open(&log).unwrap().write_all_at(text.as_bytes(), 0).unwrap();
            expected.extend(round(r, 100));
            rewritten += 1;
            continue;
        }
        std::fs::remove_file(&log).unwrap();
        append_lines(&log, lines.clone());
        reused += usize::from(std::fs::metadata(&log).unwrap().ino() == before);
        expected.extend(lines);
    }
    let got = consume(&bs, "reuse-closed", 1, expected.len(), T);
    let summary = agent.stop();
    assert_exactly_once(&got, &expected);
    eprintln!("inode reused by delete + create in {reused} of 6 rounds; {rewritten} rewritten in place");
    // A rewrite in place is only told apart by the fingerprint; a deleted file's inode coming back
    // may also be seen as a new file when a scan fell between the delete and the create.
    assert!(Metrics::get(&summary.metrics.files_inode_reused) >= rewritten as u64);
}

/// Copies a file away (as logrotate's `copytruncate` does) and truncates it.
fn copytruncate(log: &Path, copy: &Path) {
    std::fs::copy(log, copy).unwrap();
    std::fs::OpenOptions::new().write(true).open(log).unwrap().set_len(0).unwrap();
}

/// Issue #14, item 3: lines the file held past the read position when it was copied and
/// truncated are read from the copy (`f.log.1`, beside it and outside the glob), whichever way the
/// truncation is found: while the file is open and read slowly (a rate limit keeps most of it
/// unread), after it was closed as inactive (the reopened file no longer starts with its first
/// bytes), and while the agent was stopped. Each line arrives exactly once, the partial last line
/// read before the truncation included (it is read again, whole, from the copy).
#[test]
fn copytruncate_reads_the_rest_of_the_file_from_its_rotated_copy() {
    let kc = cluster("copytrunc", 1);
    let bs = kc.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("f.log");
    let copy = dir.path().join("f.log.1");
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &bs,
        "copytrunc",
        "    close:\n      on_state_change:\n        inactive: 300ms\n    rate_limit:\n      events_per_second: 500\n",
        "    codec: raw\n",
    );
    // 1. Open and being read: 3000 lines at 500 a second; truncated after the first few hundred.
    let mut expected = padded("open", 0..3000, 6);
    append_lines(&log, expected.clone());
    let agent = RunningAgent::start(&cfg);
    wait_for("some lines", T, || consume(&bs, "copytrunc", 1, 100, Duration::from_secs(2)).len() >= 100);
    // A partial line at the end, then the copy and the truncation.
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"partial-").unwrap();
    copytruncate(&log, &copy);
    // The copy keeps the partial line only: the writer finishes it in the truncated file.
    expected.push("partial-".into());
    let after = padded("after-open", 0..20, 6);
    append_lines(&log, after.clone());
    expected.extend(after);
    wait_for("the first copy read", T, || {
        consume(&bs, "copytrunc", 1, expected.len(), Duration::from_secs(2)).len() >= expected.len()
    });

    // 2. Closed as inactive: lines written after the close, then copied and truncated and the
    // file written again beyond its old size, so only its first bytes tell.
    std::thread::sleep(Duration::from_millis(1500));
    let unread = padded("closed", 0..200, 6);
    append_lines(&log, unread.clone());
    expected.extend(unread);
    copytruncate(&log, &copy);
    let after = padded("after-closed", 0..600, 6);
    append_lines(&log, after.clone());
    expected.extend(after);
    wait_for("the second copy read", T, || {
        consume(&bs, "copytrunc", 1, expected.len(), Duration::from_secs(2)).len() >= expected.len()
    });

    // 3. Stopped: lines written while the agent is down, copied and truncated before it starts.
    let summary = agent.stop();
    assert_eq!(Metrics::get(&summary.metrics.files_copy_read), 2, "both copies read while running");
    let unread = padded("stopped", 0..200, 6);
    append_lines(&log, unread.clone());
    expected.extend(unread);
    copytruncate(&log, &copy);
    let after = padded("after-stopped", 0..10, 6);
    append_lines(&log, after.clone());
    expected.extend(after);
    let agent = RunningAgent::start(&cfg);
    let got = consume(&bs, "copytrunc", 1, expected.len(), T);
    let summary = agent.stop();
    assert_eq!(Metrics::get(&summary.metrics.files_copy_read), 1, "the copy read at start-up");
    assert_exactly_once(&got, &expected);
}

#[test]
fn every_compression_codec_delivers() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let kc = cluster(&topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        let lines = numbered(&topic, 0..300);
        append_lines(&log, lines.clone());
        let extra = format!("    codec: raw\n    compression: {codec}\n");
        let cfg =
            config(&dir.path().join("data"), std::slice::from_ref(&log), &kc.bootstrap_servers(), &topic, "", &extra);
        let agent = RunningAgent::start(&cfg);
        let got = consume(&kc.bootstrap_servers(), &topic, 1, lines.len(), T);
        agent.stop();
        assert_exactly_once(&got, &lines);
    }
}

#[test]
fn oversized_events_are_dropped_counted_and_do_not_block_the_file() {
    let kc = cluster("size", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("s.log");
    append_lines(&log, vec!["small-1".into(), "y".repeat(5000), "small-2".into()]);
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "size",
        "",
        "    codec: raw\n    max_message_bytes: 2000\n",
    );
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "size", 1, 2, T);
    std::thread::sleep(Duration::from_millis(500));
    let summary = agent.stop();
    assert_exactly_once(&got, &["small-1".to_string(), "small-2".to_string()]);
    assert_eq!(Metrics::get(&summary.metrics.events_dropped_oversize), 1);
    let reg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("data/registry/registry.json")).unwrap()).unwrap();
    assert_eq!(
        reg["entries"][0]["offset"],
        std::fs::metadata(&log).unwrap().len(),
        "offset moved past the dropped line"
    );
}

#[test]
fn permanent_produce_errors_are_counted_and_the_file_moves_on() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let kc = cluster("perm-err", 1);
    // The broker refuses the next produce requests for good (a permanent error).
    kc.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD; 3]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    append_lines(&log, numbered("first", 0..5));
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "perm-err",
        "",
        "    codec: raw\n    bulk_max_size: 1\n",
    );
    let agent = RunningAgent::start(&cfg);
    std::thread::sleep(Duration::from_secs(2));
    append_lines(&log, numbered("later", 0..5));
    let got = consume(&kc.bootstrap_servers(), "perm-err", 1, 5, T);
    let summary = agent.stop();
    let later: Vec<String> = numbered("later", 0..5);
    let texts: HashSet<String> = got.iter().map(Record::text).collect();
    assert!(later.iter().all(|l| texts.contains(l)), "lines after the refused ones still arrive: {texts:?}");
    let failed = Metrics::get(&summary.metrics.events_failed);
    assert!(failed >= 1, "refused events are counted");
    assert_eq!(failed as usize + got.len(), 10, "every line is either delivered or counted as failed");
}

#[test]
fn unexpected_broker_errors_are_retried_not_dropped() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let kc = cluster("unknown-err", 1);
    // tansu answers UNKNOWN_SERVER_ERROR while a topic is being created: a line must not be lost to it.
    kc.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN; 3]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("u.log");
    append_lines(&log, numbered("u", 0..5));
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "unknown-err",
        "",
        "    codec: raw\n    bulk_max_size: 1\n",
    );
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "unknown-err", 1, 5, T);
    let summary = agent.stop();
    assert_exactly_once(&got, &numbered("u", 0..5));
    assert_eq!(Metrics::get(&summary.metrics.events_failed), 0);
    assert!(Metrics::get(&summary.metrics.events_retried) >= 1, "the refused sends were retried");
}

/// The idempotent producer (on by default) gets a fatal error when the broker answers a
/// head-of-line request with OUT_OF_ORDER_SEQUENCE_NUMBER: librdkafka then takes nothing more on
/// that producer. The output must replace it and send what it held: every line still arrives.
#[test]
fn a_fatal_producer_error_replaces_the_producer_and_loses_no_line() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let kc = cluster("fatal", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("f.log");
    let before = numbered("before", 0..2000);
    append_lines(&log, before.clone());
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "fatal",
        "",
        "    codec: raw\n",
    );
    let agent = RunningAgent::start(&cfg);
    assert_eq!(consume(&kc.bootstrap_servers(), "fatal", 1, before.len(), T).len(), before.len());
    kc.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
    let after = numbered("after", 0..2000);
    for chunk in after.chunks(200) {
        append_lines(&log, chunk.to_vec());
        std::thread::sleep(Duration::from_millis(20));
    }
    let expected: Vec<String> = before.into_iter().chain(after).collect();
    let got = consume(&kc.bootstrap_servers(), "fatal", 1, expected.len(), T);
    let summary = agent.stop();
    let seen = tally(&got);
    let missing: Vec<&String> = expected.iter().filter(|l| !seen.contains_key(*l)).take(5).collect();
    assert!(
        missing.is_empty(),
        "lines lost after the fatal error, e.g. {missing:?} ({} of {} arrived)",
        seen.len(),
        expected.len()
    );
    assert_eq!(seen.len(), expected.len(), "nothing but the written lines");
    assert!(Metrics::get(&summary.metrics.output_producer_restarts) >= 1, "the failed producer was replaced");
    assert_eq!((Metrics::get(&summary.metrics.events_failed), summary.unacknowledged), (0, 0));
}

#[test]
fn reachable_only_avoids_partitions_whose_leader_is_down() {
    let kc = crate::outage::DownableCluster::new("reach", 3);
    for p in 0..3 {
        kc.partition_leader("reach", p, Some(p + 1)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("r.log");
    append_lines(&log, numbered("before", 0..30));
    let extra = "    codec: raw\n    partition:\n      round_robin:\n        reachable_only: true\n";
    let cfg = config(&dir.path().join("data"), std::slice::from_ref(&log), &kc.bootstrap_servers(), "reach", "", extra);
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "reach", 3, 30, T);
    kc.broker_down(2);
    // librdkafka's statistics (every second) report the broker down.
    std::thread::sleep(Duration::from_secs(4));
    let after = numbered("after", 0..60);
    append_lines(&log, after.clone());
    let got = consume(&kc.bootstrap_servers(), "reach", 3, 90, Duration::from_secs(20));
    kc.broker_up(2);
    agent.stop();
    let after_set: HashSet<&String> = after.iter().collect();
    let after_got: Vec<&Record> = got.iter().filter(|r| after_set.contains(&r.text())).collect();
    assert_eq!(after_got.len(), 60, "every line arrived while broker 2 was down");
    assert!(after_got.iter().all(|r| r.partition != 1), "nothing was sent to the partition led by the down broker");
}

/// Regression: records librdkafka purged when the producer was dropped at shutdown were counted
/// as permanent failures, which moved the registry past lines never delivered.
#[test]
fn corrupt_registry_with_recovery_end_ships_only_new_lines() {
    let kc = cluster("recover", 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("x.log");
    append_lines(&log, numbered("old", 0..20));
    std::fs::create_dir_all(data.join("registry")).unwrap();
    std::fs::write(data.join("registry/registry.json"), b"\x00\x01 not json").unwrap();
    let cfg = config(&data, std::slice::from_ref(&log), &kc.bootstrap_servers(), "recover", "", "    codec: raw\n");
    let opts =
        agent::pipeline::RunOptions { registry_recovery: Some(agent::registry::Recovery::End), ..Default::default() };
    let agent = RunningAgent::start_with(&cfg, opts);
    std::thread::sleep(Duration::from_millis(800));
    append_lines(&log, numbered("new", 0..5));
    let got = consume(&kc.bootstrap_servers(), "recover", 1, 5, T);
    agent.stop();
    assert_exactly_once(&got, &numbered("new", 0..5));
}

/// `output.kafka.headers` (Filebeat's key): every record carries them, in order, after the
/// event's own `_id` header (issue #19).
#[test]
fn records_carry_the_configured_headers() {
    let kc = cluster("headers", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("h.log");
    append_lines(&log, numbered("h", 0..20));
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "headers",
        "",
        "    codec: raw\n    headers:\n      - {key: env, value: production}\n      - {key: team, value: web}\n",
    );
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "headers", 1, 20, T);
    agent.stop();
    let want = vec![("env".to_string(), b"production".to_vec()), ("team".to_string(), b"web".to_vec())];
    assert_eq!(got.len(), 20);
    for r in &got {
        let (first, rest) = r.headers.split_first().expect("headers");
        assert_eq!((first.0.as_str(), first.1.len()), ("_id", 24), "{:?}", r.headers);
        assert_eq!(rest, want.as_slice(), "{:?}", r.headers);
    }
}

/// `topics` rules with `mappings` and `default` (Filebeat's semantics): the rendered topic is
/// looked up; without an entry the rule's `default` applies.
#[test]
fn topic_rules_with_mappings_and_default() {
    let kc = MockCluster::new(1).expect("mock cluster");
    for t in ["other", "web-logs", "db-logs", "misc-logs"] {
        kc.create_topic(t, 1, 1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (web, db, cron) = (dir.path().join("web.log"), dir.path().join("db.log"), dir.path().join("cron.log"));
    append_lines(&web, numbered("w", 0..3));
    append_lines(&db, numbered("d", 0..2));
    append_lines(&cron, numbered("c", 0..1));
    let cfg = config(
        &dir.path().join("data"),
        &[dir.path().join("*.log")],
        &kc.bootstrap_servers(),
        "other",
        "",
        "    codec: json\n    topics:\n      - topic: '%{[log.file.path]}'\n        mappings: {WEB: web-logs, DB: db-logs}\n        default: misc-logs\n",
    );
    let web_path = web.display().to_string();
    let db_path = db.display().to_string();
    let cfg = cfg.replace("{WEB: web-logs, DB: db-logs}", &format!("{{'{web_path}': web-logs, '{db_path}': db-logs}}"));
    let agent = RunningAgent::start(&cfg);
    let bs = kc.bootstrap_servers();
    let count = |t: &str, n| consume(&bs, t, 1, n, T).len();
    assert_eq!((count("web-logs", 3), count("db-logs", 2), count("misc-logs", 1)), (3, 2, 1));
    agent.stop();
    assert_eq!(consume(&bs, "other", 1, 0, Duration::from_secs(1)).len(), 0, "every event matched the rule");
}

/// Issue #19: with the JSON codec, each event's `@metadata._id` equals its `_id` header, and a
/// line sent again (here: the registry lost, so the whole file is read again after a restart)
/// has the id it had the first time; lines of the file read under another name after a rename
/// keep their ids too.
#[test]
fn json_events_carry_their_lines_id_in_metadata_and_header_across_a_resend() {
    let kc = cluster("ids", 2);
    let dir = tempfile::tempdir().unwrap();
    let (log, data) = (dir.path().join("app.log"), dir.path().join("data"));
    let lines = numbered("line", 0..300);
    append_lines(&log, lines.clone());
    let cfg = config(&data, &[dir.path().join("*.log*")], &kc.bootstrap_servers(), "ids", "", "    codec: json\n");
    let agent = RunningAgent::start(&cfg);
    let first = consume(&kc.bootstrap_servers(), "ids", 2, 300, T);
    agent.stop();
    std::fs::remove_dir_all(data.join("registry")).unwrap();
    // Renamed while the agent is down: read again under the new name, from the start.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    let agent = RunningAgent::start(&cfg);
    let all = consume(&kc.bootstrap_servers(), "ids", 2, 600, T);
    agent.stop();
    assert_eq!(first.len(), 300);
    let message = |r: &Record| r.json()["message"].as_str().unwrap().to_string();
    for r in &all {
        let header = r.headers.iter().find(|(k, _)| k == "_id").map(|(_, v)| String::from_utf8(v.clone()).unwrap());
        assert_eq!(header.as_deref(), r.json()["@metadata"]["_id"].as_str(), "header and @metadata agree");
    }
    crate::e2e::assert_ids_name_lines(&all, message);
    assert_eq!(all.iter().map(message).collect::<HashSet<_>>().len(), lines.len());
    let paths: HashSet<String> =
        all.iter().map(|r| r.json()["log"]["file"]["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths.len(), 2, "read under both names: {paths:?}");
}

/// Issue #19: ids through what changes a file under the agent. Multiline events, a file copied
/// and truncated, a file replaced under a reused inode (the same offsets with other lines), and a
/// gzip archive of a file read before; then the registry is lost and everything still there is
/// sent again. Each line (each multiline event) has one id over all its sends, and no id names
/// two of them.
#[test]
fn ids_hold_through_multiline_copytruncate_inode_reuse_and_gzip_archives() {
    let kc = cluster("ids2", 2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let at = |name: &str| dir.path().join(name);
    let events: Vec<String> = (0..50).map(|i| format!("event-{i:03}\n  at frame {i}.1\n  at frame {i}.2")).collect();
    append_lines(&at("m.log"), events.clone());
    let (c1, c2) = (numbered("c1", 0..100), numbered("c2", 0..100));
    let (r1, r2) = (numbered("r1", 0..100), numbered("r2", 0..100));
    let g = numbered("g", 0..100);
    append_lines(&at("c.log"), c1.clone());
    append_lines(&at("r.log"), r1.clone());
    append_lines(&at("g.log"), g.clone());
    let multiline = "    parsers:\n      - multiline:\n          type: pattern\n          pattern: '^\\s'\n          negate: false\n          match: after\n          timeout: 300ms\n";
    let cfg = config(&data, &[at("*.log*")], &kc.bootstrap_servers(), "ids2", multiline, "    codec: json\n");
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "ids2", 2, 350, T);
    // copytruncate; a new file under the old one's name and (likely) inode, its lines at the same
    // offsets; logrotate's `compress` of a file read.
    std::fs::copy(at("c.log"), at("c.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(at("c.log")).unwrap().set_len(0).unwrap();
    append_lines(&at("c.log"), c2.clone());
    std::fs::remove_file(at("r.log")).unwrap();
    append_lines(&at("r.log"), r2.clone());
    std::fs::write(at("g.log.1.gz"), crate::inputs::gzip(std::fs::read(at("g.log")).unwrap().as_slice())).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    std::fs::remove_file(at("g.log")).unwrap();
    consume(&kc.bootstrap_servers(), "ids2", 2, 550, T);
    agent.stop();
    // The registry lost: every file there is read again from its start.
    std::fs::remove_dir_all(data.join("registry")).unwrap();
    let agent = RunningAgent::start(&cfg);
    let all = consume(&kc.bootstrap_servers(), "ids2", 2, 1000, T);
    agent.stop();
    let message = |r: &Record| r.json()["message"].as_str().unwrap().to_string();
    let distinct: HashSet<String> = all.iter().map(message).collect();
    let written: HashSet<String> = [&events, &c1, &c2, &r1, &r2, &g].into_iter().flatten().cloned().collect();
    assert_eq!(distinct, written, "every multiline event and line arrived");
    assert_eq!(all.len(), 1000, "all but r1 (gone) sent twice");
    crate::e2e::assert_ids_name_lines(&all, message);
}

/// Runs the agent on `n` lines with `output` under `output.kafka` and returns the records.
fn id_run(topic: &str, n: usize, output: &str) -> Vec<Record> {
    let kc = cluster(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append_lines(&log, numbered("l", 0..n));
    let agent =
        RunningAgent::start(&config(&dir.path().join("data"), &[log], &kc.bootstrap_servers(), topic, "", output));
    let got = consume(&kc.bootstrap_servers(), topic, 1, n, T);
    agent.stop();
    assert_eq!(got.len(), n);
    got
}

/// `output.kafka.event_id: false` turns the ids off: no `_id` header, no `@metadata._id`.
#[test]
fn event_ids_can_be_turned_off() {
    for r in &id_run("noids", 20, "    codec: json\n    event_id: false\n") {
        assert!(r.headers.iter().all(|(k, _)| k != "_id"), "{:?}", r.headers);
        assert!(r.json()["@metadata"].get("_id").is_none(), "{}", r.text());
    }
}

/// `event_id_header: false`: the id stays in `@metadata._id` and no record carries an `_id`
/// header (configured headers still go out).
#[test]
fn without_the_id_header_json_events_keep_their_id_in_metadata_only() {
    let out = "    codec: json\n    event_id_header: false\n    headers:\n      - key: env\n        value: prod\n";
    for r in &id_run("noidh", 100, out) {
        let keys: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["env"], "only the configured header");
        let id = r.json()["@metadata"]["_id"].as_str().map(str::len);
        assert_eq!(id, Some(24), "the id is still in the event: {}", r.text());
    }
}
