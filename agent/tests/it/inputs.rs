//! Input features a Filebeat user expects, each shown by what arrives in a mock cluster topic:
//! multiline, include/exclude_lines, processors, gzip archives, encodings, ignore_older,
//! clean_inactive / clean_removed, harvester_limit and close.on_state_change.

use crate::common::*;
use crate::outage::DownableCluster;
use agent::metrics::Metrics;
use agent::pipeline::Summary;
use flate2::write::GzEncoder;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const T: Duration = Duration::from_secs(60);
/// Record values are the lines themselves, so tests compare text.
const RAW: &str = "    codec: raw\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs").join(name)
}

/// One agent over `dir/<glob>` into a fresh one-partition topic until `expected` records arrived;
/// returns them (in topic order) and the run's summary. Raw codec unless `extra_output` sets one.
fn run_once(dir: &Path, glob: &str, extra_input: &str, extra_output: &str, expected: usize) -> (Vec<Record>, Summary) {
    let topic = "in";
    let extra_output =
        if extra_output.contains("codec:") { extra_output.to_string() } else { format!("{RAW}{extra_output}") };
    let extra_output = extra_output.as_str();
    let kc = cluster(topic, 1);
    let cfg = config(&dir.join("data"), &[dir.join(glob)], &kc.bootstrap_servers(), topic, extra_input, extra_output);
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), topic, 1, expected, T);
    (got, agent.stop())
}

fn texts(records: &[Record]) -> Vec<String> {
    records.iter().map(Record::text).collect()
}

/// The events a multiline config should make of `text`: a new event at each line `starts` accepts.
fn joined(text: &str, starts: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        match out.last_mut() {
            Some(last) if !starts(line) => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn lines_text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn registry_has_ino(data: &Path, ino: u64) -> bool {
    registry_offset_by_ino(data, ino).is_some()
}

#[test]
fn multiline_java_and_python_stack_traces_become_one_event_each_and_a_quiet_file_is_flushed() {
    let cases = [
        (
            "java-stacktrace.log",
            "pattern: '^[[:space:]]+(at|\\.{3})[[:space:]]+\\b|^Caused by:'\n          negate: false\n          match: after",
            5,
            2,
        ),
        ("python-traceback.log", "pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}'\n          negate: true\n          match: after", 4, 2),
    ];
    for (name, settings, events, joined_events) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::copy(fixture(name), &log).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let want = if name.starts_with("java") {
            joined(&text, |l| !(l.starts_with('\t') || l.starts_with("Caused by:")))
        } else {
            joined(&text, |l| l.starts_with("2026-"))
        };
        assert_eq!(want.len(), events, "{name}: fixture and expectation agree");
        // The last event has no line after it: only the timeout ships it.
        let extra = format!("    parsers:\n      - multiline:\n          {settings}\n          timeout: 300ms\n");
        let (got, summary) = run_once(dir.path(), "*.log", &extra, "", events);
        assert_eq!(texts(&got), want, "{name}");
        assert_eq!(Metrics::get(&summary.metrics.multiline_events), joined_events, "{name}");
        assert_eq!(registry_offset_of(&dir.path().join("data"), &log), Some(file_len(&log)), "{name}");
    }
}

#[test]
fn multiline_json_event_has_the_first_offset_flags_and_max_lines_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let mut lines = vec!["start".to_string()];
    lines.extend((0..50).map(|i| format!(" cont-{i}")));
    lines.push("next".into());
    append_lines(&log, lines.clone());
    let extra = "    parsers:\n      - multiline:\n          pattern: '^ '\n          match: after\n          max_lines: 10\n          timeout: 300ms\n";
    let (got, summary) = run_once(dir.path(), "*.log", extra, "    codec: json\n", 2);
    assert_eq!(got.len(), 2);
    let (first, second) = (got[0].json(), got[1].json());
    assert_eq!(first["message"], lines[..10].join("\n"));
    assert_eq!(first["log"]["offset"], 0);
    assert_eq!(first["log"]["flags"], serde_json::json!(["truncated", "multiline"]));
    let next_at = lines[..51].iter().map(|l| l.len() + 1).sum::<usize>();
    assert_eq!((second["message"].as_str(), second["log"]["offset"].as_u64()), (Some("next"), Some(next_at as u64)));
    assert!(second["log"].get("flags").is_none());
    assert_eq!(
        (Metrics::get(&summary.metrics.multiline_events), Metrics::get(&summary.metrics.lines_truncated)),
        (1, 1)
    );
}

#[test]
fn multiline_event_pending_at_a_clean_stop_is_assembled_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("a.log");
    let kc = cluster("ml", 1);
    // A timeout that never fires in this test: only a following line completes an event.
    let extra =
        "    parsers:\n      - multiline:\n          pattern: '^ '\n          match: after\n          timeout: 1h\n";
    let cfg = config(&data, &[dir.path().join("*.log")], &kc.bootstrap_servers(), "ml", extra, RAW);
    append_lines(&log, ["e1", " c1", "e2", " c2a"].map(String::from));
    let agent = RunningAgent::start(&cfg);
    let first = consume(&kc.bootstrap_servers(), "ml", 1, 1, T);
    assert_eq!(texts(&first), ["e1\n c1"]);
    let summary = agent.stop();
    assert_eq!(summary.unacknowledged, 0);
    // The pending event was not recorded, not even in part: the registry stops where it starts.
    assert_eq!(registry_offset_of(&data, &log), Some("e1\n c1\n".len() as u64));
    append_lines(&log, [" c2b", "e3"].map(String::from));
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "ml", 1, 2, T);
    agent.stop();
    assert_exactly_once(&got, &["e1\n c1".to_string(), "e2\n c2a\n c2b".to_string()]);
}

#[test]
fn include_and_exclude_lines_filter_plain_lines_and_json_messages() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append_lines(&log, ["ERR disk full", "INFO fine", "WARN slow", "ERR ignore me", "DEBUG x"].map(String::from));
    let extra = "    include_lines: ['^ERR', '^WARN']\n    exclude_lines: ['ignore']\n";
    let (got, summary) = run_once(dir.path(), "a.log", extra, "", 2);
    assert_eq!(texts(&got), ["ERR disk full", "WARN slow"]);
    assert_eq!(Metrics::get(&summary.metrics.lines_filtered), 3);
    // Filtered lines still move the file's offset.
    assert_eq!(registry_offset_of(&dir.path().join("data"), &log), Some(file_len(&log)));

    let dir = tempfile::tempdir().unwrap();
    append_lines(
        &dir.path().join("b.log"),
        [r#"{"msg":"ERR a","n":1}"#, r#"{"msg":"INFO b"}"#, r#"{"n":3}"#, r#"{"msg":"ERR c"}"#].map(String::from),
    );
    let extra = "    parsers:\n      - ndjson:\n          message_key: msg\n    include_lines: ['^ERR']\n";
    let (got, summary) = run_once(dir.path(), "b.log", extra, "    codec: json\n", 2);
    let msgs: Vec<serde_json::Value> = got.iter().map(|r| r.json()["message"].clone()).collect();
    assert_eq!(msgs, ["ERR a", "ERR c"]);
    assert_eq!(Metrics::get(&summary.metrics.lines_filtered), 2);
}

#[test]
fn processors_add_and_drop_fields_drop_events_and_routing_sees_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append_lines(&log, ["GET /a 200", "DEBUG noise", "GET /b 500"].map(String::from));
    let kc = cluster("proc", 1);
    let extra = "    processors:\n      - add_fields:\n          target: project\n          fields: {name: shop}\n      - drop_fields:\n          fields: [agent.ephemeral_id, log.offset]\n      - drop_event:\n          when:\n            regexp: {message: '^DEBUG'}\n";
    let cfg = config(
        &dir.path().join("data"),
        std::slice::from_ref(&log),
        &kc.bootstrap_servers(),
        "proc",
        extra,
        "    codec: json\n    key: '%{[project.name]}-%{[env]}'\n",
    )
    // As in Filebeat, an input's processors run before `agent` is added (their drop of
    // agent.ephemeral_id finds nothing); the global ones run after and can drop it.
    .replace(
        "inputs:\n",
        "processors:\n  - add_fields:\n      target: ''\n      fields: {env: prod}\n  - drop_fields:\n      fields: [agent.ephemeral_id]\ninputs:\n",
    );
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "proc", 1, 2, T);
    let summary = agent.stop();
    assert_eq!(got.len(), 2);
    for (r, msg) in got.iter().zip(["GET /a 200", "GET /b 500"]) {
        let v = r.json();
        assert_eq!(v["message"], msg);
        assert_eq!((&v["project"]["name"], &v["env"]), (&serde_json::json!("shop"), &serde_json::json!("prod")));
        assert!(v["agent"].get("ephemeral_id").is_none() && v["agent"].get("id").is_some());
        assert!(v["log"].get("offset").is_none() && v["log"]["file"]["path"].is_string());
        assert_eq!(r.key.as_deref(), Some(&b"shop-prod"[..]));
    }
    assert_eq!(Metrics::get(&summary.metrics.events_dropped_processor), 1);
    assert_eq!(registry_offset_of(&dir.path().join("data"), &log), Some(file_len(&log)));
}

#[test]
fn gzip_archives_are_read_once_through_rotation_renames_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kc = cluster("gz", 1);
    let cfg = config(&data, &[dir.path().join("*.log*")], &kc.bootstrap_servers(), "gz", "", RAW);
    let app = dir.path().join("app.log");
    let first = numbered("app", 0..1000);
    append_lines(&app, first.clone());
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "gz", 1, 1000, T);
    // logrotate with `compress`: the archive of the file just read appears, then the file goes.
    std::fs::write(dir.path().join("app.log.1.gz"), gzip(lines_text(&first).as_bytes())).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    std::fs::remove_file(&app).unwrap();
    let second = numbered("app2", 0..100);
    append_lines(&app, second.clone());
    // An archive never seen as a plain file is read whole.
    let old = numbered("old", 0..500);
    std::fs::write(dir.path().join("old.log.gz"), gzip(lines_text(&old).as_bytes())).unwrap();
    let expected: Vec<String> = first.iter().chain(&second).chain(&old).cloned().collect();
    let got = consume(&kc.bootstrap_servers(), "gz", 1, expected.len(), T);
    assert_exactly_once(&got, &expected);
    // Rotation renames the archives; then a restart: nothing is read again.
    std::fs::rename(dir.path().join("old.log.gz"), dir.path().join("old.log.2.gz")).unwrap();
    std::fs::rename(dir.path().join("app.log.1.gz"), dir.path().join("app.log.2.gz")).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let s1 = agent.stop();
    assert_eq!(Metrics::get(&s1.metrics.gz_files_read), 2, "app.log.1.gz (nothing left to read) and old.log.gz");
    assert_eq!(Metrics::get(&s1.metrics.files_matched_by_fingerprint), 1);
    let agent = RunningAgent::start(&cfg);
    std::thread::sleep(Duration::from_secs(2));
    let s2 = agent.stop();
    let got = consume(&kc.bootstrap_servers(), "gz", 1, expected.len(), Duration::from_secs(5));
    assert_exactly_once(&got, &expected);
    assert_eq!(Metrics::get(&s2.metrics.gz_errors), 0);
}

#[test]
fn damaged_gzip_archives_are_counted_and_other_files_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = numbered("good", 0..200);
    append_lines(&dir.path().join("good.log"), good.clone());
    let cut_lines = numbered("cut", 0..20_000);
    let cut = gzip(lines_text(&cut_lines).as_bytes());
    std::fs::write(dir.path().join("cut.log.gz"), &cut[..cut.len() / 2]).unwrap();
    let mut bad = gzip(lines_text(&numbered("bad", 0..20_000)).as_bytes());
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(dir.path().join("bad.log.gz"), &bad).unwrap();
    let (got, summary) = run_once(dir.path(), "*.log*", "", "", 200);
    assert_eq!(Metrics::get(&summary.metrics.gz_errors), 2);
    let texts = texts(&got);
    let good_got: Vec<String> = texts.iter().filter(|t| t.starts_with("good-")).cloned().collect();
    let mut sorted = good_got.clone();
    sorted.sort_by_key(|t| t[5..].parse::<usize>().unwrap());
    assert_eq!(sorted, good);
    // What the truncated archive had before its cut arrives, in order, once.
    let cut_got: Vec<&String> = texts.iter().filter(|t| t.starts_with("cut-")).collect();
    assert!(!cut_got.is_empty() && cut_got.len() < cut_lines.len(), "{} cut lines", cut_got.len());
    assert!(cut_got.iter().zip(&cut_lines).all(|(a, b)| *a == b), "a prefix of the archive, in order");
}

#[test]
fn encodings_arrive_as_utf8_and_invalid_bytes_are_replaced_and_counted() {
    let utf16 = |text: &str, le: bool| -> Vec<u8> {
        text.encode_utf16().flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
    };
    let mut le = vec![0xFF, 0xFE];
    le.extend(utf16("héllo wörld\r\n日本語\r\nend\n", true));
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, u64)> = vec![
        ("utf-16le", le, vec!["héllo wörld", "日本語", "end"], 0),
        ("utf-16be", utf16("ünïcode\n\u{0a0a}x\n", false), vec!["ünïcode", "\u{0a0a}x"], 0),
        ("latin1", b"caf\xe9\n\xa3 5\n".to_vec(), vec!["café", "£ 5"], 0),
        ("windows-1252", b"\x80 10\n".to_vec(), vec!["€ 10"], 0),
        ("utf-8", b"ok\n\xffbad\n".to_vec(), vec!["ok", "\u{fffd}bad"], 1),
    ];
    for (encoding, bytes, want, invalid) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), &bytes).unwrap();
        let (got, summary) = run_once(dir.path(), "a.log", &format!("    encoding: {encoding}\n"), "", want.len());
        assert_eq!(texts(&got), want, "{encoding}");
        assert_eq!(Metrics::get(&summary.metrics.lines_invalid_encoding), invalid, "{encoding}");
    }
}

#[test]
fn ignore_older_skips_old_content_and_ships_what_is_written_later() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append_lines(&old, numbered("old", 0..100));
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(hour_ago).unwrap();
    append_lines(&dir.path().join("new.log"), numbered("new", 0..10));
    let kc = cluster("io", 1);
    let extra = "    ignore_older: 2s\n    close:\n      on_state_change:\n        inactive: 1s\n";
    let cfg = config(&dir.path().join("data"), &[dir.path().join("*.log")], &kc.bootstrap_servers(), "io", extra, RAW);
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "io", 1, 10, T);
    append_lines(&old, numbered("late", 0..5));
    let got = consume(&kc.bootstrap_servers(), "io", 1, 15, T);
    let summary = agent.stop();
    let expected: Vec<String> = numbered("new", 0..10).into_iter().chain(numbered("late", 0..5)).collect();
    assert_exactly_once(&got, &expected);
    assert_eq!(Metrics::get(&summary.metrics.files_ignored_older), 1);
}

#[test]
fn clean_inactive_forgets_an_idle_file_and_later_lines_still_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("a.log");
    append_lines(&log, numbered("a", 0..10));
    let ino = std::fs::metadata(&log).unwrap().ino();
    let kc = cluster("ci", 1);
    let extra =
        "    ignore_older: 2s\n    clean_inactive: 3s\n    close:\n      on_state_change:\n        inactive: 1s\n";
    let cfg = config(&data, std::slice::from_ref(&log), &kc.bootstrap_servers(), "ci", extra, RAW);
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "ci", 1, 10, T);
    wait_for("the registry entry to be written", T, || registry_has_ino(&data, ino));
    wait_for("clean_inactive to remove the entry", T, || !registry_has_ino(&data, ino));
    append_lines(&log, numbered("b", 0..5));
    let got = consume(&kc.bootstrap_servers(), "ci", 1, 15, T);
    wait_for("the entry to come back at the file's end", T, || registry_offset_of(&data, &log) == Some(file_len(&log)));
    let summary = agent.stop();
    let expected: Vec<String> = numbered("a", 0..10).into_iter().chain(numbered("b", 0..5)).collect();
    assert_exactly_once(&got, &expected);
    assert!(Metrics::get(&summary.metrics.registry_entries_cleaned) >= 1);
}

#[test]
fn clean_removed_drops_a_deleted_file_entry_unless_turned_off() {
    for clean_removed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("a.log");
        append_lines(&log, numbered("a", 0..10));
        let ino = std::fs::metadata(&log).unwrap().ino();
        let kc = cluster("cr", 1);
        let extra = format!("    clean_removed: {clean_removed}\n");
        let cfg = config(&data, std::slice::from_ref(&log), &kc.bootstrap_servers(), "cr", &extra, RAW);
        let agent = RunningAgent::start(&cfg);
        consume(&kc.bootstrap_servers(), "cr", 1, 10, T);
        wait_for("the registry entry", T, || registry_has_ino(&data, ino));
        std::fs::remove_file(&log).unwrap();
        if clean_removed {
            wait_for("the entry to be removed", T, || !registry_has_ino(&data, ino));
        } else {
            std::thread::sleep(Duration::from_secs(2));
            assert!(registry_has_ino(&data, ino), "kept for registry.clean_removed_after");
        }
        let summary = agent.stop();
        assert_eq!(Metrics::get(&summary.metrics.registry_entries_cleaned), u64::from(clean_removed));
    }
}

/// Number of runs of consecutive records from the same file (by prefix before the first `-`).
fn runs(records: &[Record]) -> usize {
    let prefixes: Vec<String> = records.iter().map(|r| r.text().split('-').next().unwrap().to_string()).collect();
    1 + prefixes.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn harvester_limit_reads_files_one_after_another() {
    let per_file = 25_000;
    let mut by_limit = Vec::new();
    for limit in ["1", "0"] {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            append_lines(&dir.path().join(format!("{name}.log")), padded(name, 0..per_file, 100));
        }
        let (got, summary) =
            run_once(dir.path(), "*.log", &format!("    harvester_limit: {limit}\n"), "", 2 * per_file);
        assert_eq!(got.len(), 2 * per_file, "limit {limit}");
        assert_eq!(summary.unacknowledged, 0);
        by_limit.push(runs(&got));
    }
    // One file at a time: two runs. Without a limit the reader takes turns (1 MiB per file).
    assert_eq!(by_limit[0], 2, "harvester_limit: 1");
    assert!(by_limit[1] > 2, "no limit: files read in turns, got {} runs", by_limit[1]);
}

/// Kafka down and the reader blocked mid-file; the file is removed or renamed away; Kafka back.
/// Returns how many of the file's lines arrived and the summary.
fn gone_while_blocked(close_option: &str, rename: bool) -> (usize, Summary) {
    let lines = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let kc = DownableCluster::new("gone", 1);
    let extra = format!("    close:\n      on_state_change:\n        {close_option}\n");
    let output = "    librdkafka:\n      queue.buffering.max.messages: \"1000\"\n";
    let cfg =
        config(&dir.path().join("data"), std::slice::from_ref(&log), &kc.bootstrap_servers(), "gone", &extra, output)
            .replace("inputs:\n", "queue:\n  mem:\n    max_bytes: 64KiB\n  spool:\n    enabled: false\ninputs:\n");
    kc.all_down(false);
    let agent = RunningAgent::start(&cfg);
    append_lines(&log, padded("line", 0..lines, 100));
    std::thread::sleep(Duration::from_secs(1));
    if rename {
        std::fs::rename(&log, dir.path().join("a.log.old")).unwrap();
    } else {
        std::fs::remove_file(&log).unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    kc.all_down(true);
    let got = consume(&kc.bootstrap_servers(), "gone", 1, lines, Duration::from_secs(20));
    let summary = agent.stop();
    let distinct: std::collections::HashSet<String> = texts(&got).into_iter().collect();
    (distinct.len(), summary)
}

#[test]
fn close_on_state_change_stops_reading_a_removed_or_renamed_file_at_once() {
    let (all, s) = gone_while_blocked("removed: false", false);
    assert_eq!((all, Metrics::get(&s.metrics.files_closed_on_state_change)), (50_000, 0), "default: read to its end");
    for (option, rename) in [("removed: true", false), ("renamed: true", true)] {
        let (got, s) = gone_while_blocked(option, rename);
        assert!(got > 0 && got < 50_000, "{option}: {got} lines arrived");
        assert_eq!(Metrics::get(&s.metrics.files_closed_on_state_change), 1, "{option}");
    }
}

#[test]
fn multiline_count_mode_joins_fixed_groups() {
    let dir = tempfile::tempdir().unwrap();
    append_lines(&dir.path().join("a.log"), ["a", "b", "c", "d", "e"].map(String::from));
    let extra =
        "    parsers:\n      - multiline:\n          type: count\n          count_lines: 2\n          timeout: 300ms\n";
    let (got, _) = run_once(dir.path(), "a.log", extra, "", 3);
    assert_eq!(texts(&got), ["a\nb", "c\nd", "e"]);
}

#[test]
fn gzip_archive_stopped_midway_resumes_at_its_uncompressed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines = numbered("mid", 0..400_000);
    let archive = dir.path().join("big.log.gz");
    std::fs::write(&archive, gzip(lines_text(&lines).as_bytes())).unwrap();
    let kc = cluster("gzmid", 1);
    // Slow acknowledgements and a short producer queue: the first run cannot finish the archive.
    let output = format!("{RAW}    librdkafka:\n      queue.buffering.max.messages: \"1000\"\n");
    let cfg = config(&data, &[dir.path().join("*.gz")], &kc.bootstrap_servers(), "gzmid", "", &output);
    let rtt = |ms| (1..=3).for_each(|b| kc.broker_round_trip_time(b, Duration::from_millis(ms)).unwrap());
    rtt(300);
    let agent = RunningAgent::start(&cfg);
    consume(&kc.bootstrap_servers(), "gzmid", 1, 1, T);
    // Fast again for the stop, so the drain completes (a drain cut by its deadline spools what is
    // in flight, and replaying that may repeat records: at-least-once, not what this test is about).
    rtt(0);
    let first = agent.stop();
    assert_eq!(first.unacknowledged, 0);
    let offset = registry_offset_of(&data, &archive).expect("an entry for the archive");
    let total = lines_text(&lines).len() as u64;
    assert!(offset > 0 && offset < total, "stopped midway: offset {offset} of {total}");
    let agent = RunningAgent::start(&cfg);
    let got = consume(&kc.bootstrap_servers(), "gzmid", 1, lines.len(), T);
    let second = agent.stop();
    assert_exactly_once(&got, &lines);
    assert_eq!(registry_offset_of(&data, &archive), Some(total));
    assert_eq!(Metrics::get(&second.metrics.gz_files_read), 1);
}

#[test]
fn gzip_archive_still_being_written_is_finished_once_it_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let lines = numbered("w", 0..50_000);
    let full = gzip(lines_text(&lines).as_bytes());
    let archive = dir.path().join("late.log.gz");
    // The compressor has written half of the archive when the agent first sees it.
    std::fs::write(&archive, &full[..full.len() / 2]).unwrap();
    let kc = cluster("gzw", 1);
    let cfg = config(&dir.path().join("data"), &[dir.path().join("*.gz")], &kc.bootstrap_servers(), "gzw", "", RAW);
    let agent = RunningAgent::start(&cfg);
    let early = consume(&kc.bootstrap_servers(), "gzw", 1, 1, T);
    assert!(!early.is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::OpenOptions::new().append(true).open(&archive).unwrap();
    f.write_all(&full[full.len() / 2..]).unwrap();
    let got = consume(&kc.bootstrap_servers(), "gzw", 1, lines.len(), T);
    let summary = agent.stop();
    assert_exactly_once(&got, &lines);
    assert_eq!(Metrics::get(&summary.metrics.gz_files_read), 1);
}

/// Container logs: a stdout piece stays open while a stderr line passes it; the registry stays at
/// the open piece through a clean stop; after a restart the piece is read again and joined with
/// its end, and the stderr line sent again carries its first id. `add_kubernetes_metadata` names
/// the pod, namespace, container and container id from the file's name alone.
#[test]
fn container_pieces_join_per_stream_across_a_restart_with_kubernetes_fields_from_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let containers = dir.path().join("containers");
    std::fs::create_dir(&containers).unwrap();
    let id = "c0ffee".repeat(10) + "beef";
    let log = containers.join(format!("web-1_shop_app-{id}.log"));
    let data = dir.path().join("data");
    let kc = cluster("ctr", 1);
    let extra = format!(
        "    parsers:\n      - container: ~\n    processors:\n      - add_kubernetes_metadata:\n          matchers:\n            - logs_path:\n                logs_path: \"{}/\"\n",
        containers.display()
    );
    let cfg = config(&data, &[containers.join("*.log")], &kc.bootstrap_servers(), "ctr", &extra, "    codec: json\n");
    append_lines(
        &log,
        ["2026-11-26T10:00:00Z stdout P first ", "2026-11-26T10:00:01Z stderr F between"].map(String::from),
    );
    let agent = RunningAgent::start(&cfg);
    let first = consume(&kc.bootstrap_servers(), "ctr", 1, 1, T);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].json()["message"], "between");
    agent.stop();
    assert_eq!(registry_offset_of(&data, &log), Some(0), "held at the open stdout piece");
    append_lines(&log, ["2026-11-26T10:00:02Z stdout F last"].map(String::from));
    let agent = RunningAgent::start(&cfg);
    let all = consume(&kc.bootstrap_servers(), "ctr", 1, 3, T);
    agent.stop();
    let events: Vec<serde_json::Value> = all.iter().map(Record::json).collect();
    let messages: Vec<&str> = events.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["between", "between", "first last"]);
    assert_eq!(events[0]["@metadata"]["_id"], events[1]["@metadata"]["_id"], "the re-send keeps its id");
    let joined = &events[2];
    assert_eq!((joined["stream"].as_str(), joined["log"]["offset"].as_u64()), (Some("stdout"), Some(0)));
    assert_eq!(joined["@timestamp"], "2026-11-26T10:00:00.000Z", "the first piece's time");
    assert_eq!(
        (
            joined["kubernetes"]["pod"]["name"].as_str(),
            joined["kubernetes"]["namespace"].as_str(),
            joined["kubernetes"]["container"]["name"].as_str(),
            joined["container"]["id"].as_str()
        ),
        (Some("web-1"), Some("shop"), Some("app"), Some(id.as_str()))
    );
}
