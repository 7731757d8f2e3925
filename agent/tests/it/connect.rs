//! End to end with the `agent` binary and a tansu broker process: a sink process killed with
//! `kill -9`, Apache Kafka's sample Connect files run by `agent connect-standalone`, and the clear
//! errors bad Connect files get.

use crate::common::*;
use crate::e2e::{agent_log_tail, signal, spawn_agent, wait_exit, Tansu, AGENT};
use crate::sink::file_lines;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/connect").join(name)
}

/// Copies a fixture into `dir`, with the broker address and offsets file of this test.
fn fixture_into(dir: &Path, name: &str, bootstrap: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let text = text
        .replace("localhost:9092", bootstrap)
        .replace("/tmp/connect.offsets", &dir.join("connect.offsets").display().to_string());
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn killed_sink_process_restarts_without_losing_a_line() {
    let tansu = Tansu::start("sinkcrash", 3);
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("app.log"), dir.path().join("sink.txt"));
    let lines = padded("crash", 0..200_000, 60);
    append_lines(&log, lines.clone());
    let shipper_cfg = dir.path().join("shipper/agent.yml");
    std::fs::create_dir_all(shipper_cfg.parent().unwrap()).unwrap();
    let text = config(
        &dir.path().join("shipper/data"),
        std::slice::from_ref(&log),
        &tansu.bootstrap,
        "sinkcrash",
        "",
        "    codec: raw\n",
    );
    std::fs::write(&shipper_cfg, text).unwrap();
    let sink_cfg = dir.path().join("sink/agent.yml");
    std::fs::create_dir_all(sink_cfg.parent().unwrap()).unwrap();
    // The killed member stays in the group until its session times out (45 s by default).
    let session = "    librdkafka:\n      session.timeout.ms: \"6000\"\n";
    let text = crate::sink::sink_config(&dir.path().join("sink/data"), &out, &tansu.bootstrap, "sinkcrash", session)
        .replace("commit_interval: 200ms", "commit_interval: 1s");
    std::fs::write(&sink_cfg, text).unwrap();

    let mut shipper = spawn_agent(&shipper_cfg);
    let mut sink = spawn_agent(&sink_cfg);
    wait_for("a third of the lines in the sink file", T, || file_lines(&out).len() >= lines.len() / 3);
    signal(&sink, libc::SIGKILL);
    let _ = sink.wait();
    let at_kill = file_lines(&out).len();
    let mut sink = spawn_agent(&sink_cfg);
    let want: HashSet<&String> = lines.iter().collect();
    wait_for("every line in the sink file", T, || {
        let got: HashSet<String> = file_lines(&out).into_iter().collect();
        want.iter().all(|l| got.contains(*l))
    });
    std::thread::sleep(Duration::from_secs(2));
    signal(&sink, libc::SIGTERM);
    signal(&shipper, libc::SIGTERM);
    assert!(wait_exit(&mut sink, T).success(), "{}", agent_log_tail(&sink_cfg));
    assert!(wait_exit(&mut shipper, T).success(), "{}", agent_log_tail(&shipper_cfg));

    let got = file_lines(&out);
    let counts = count_each(got.iter().map(String::as_str));
    let foreign: Vec<&&str> = counts.keys().filter(|l| !want.contains(&l.to_string())).take(3).collect();
    assert!(foreign.is_empty(), "torn or foreign lines in the sink file: {foreign:?}");
    assert!(lines.iter().all(|l| counts.contains_key(l.as_str())), "a line is missing");
    let duplicates = got.len() - counts.len();
    eprintln!("sink kill -9 at {at_kill} lines: {} lines written, {duplicates} duplicates", got.len());
    let log = std::fs::read_to_string(sink_cfg.with_file_name("agent.log")).unwrap();
    assert!(log.matches("sink started").count() == 2, "the sink ran twice: {}", agent_log_tail(&sink_cfg));
}

fn connect_standalone(dir: &Path, files: &[&Path]) -> Child {
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    Command::new(AGENT)
        .arg("connect-standalone")
        .args(files)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent binary")
}

#[test]
fn kafka_sample_connect_files_move_a_file_through_a_topic_into_another_file() {
    let tansu = Tansu::start("connect-test", 1);
    let dir = tempfile::tempdir().unwrap();
    let worker = fixture_into(dir.path(), "connect-standalone.properties", &tansu.bootstrap);
    let source = fixture_into(dir.path(), "connect-file-source.properties", &tansu.bootstrap);
    let sink = fixture_into(dir.path(), "connect-file-sink.properties", &tansu.bootstrap);
    // `file=test.txt` and `file=test.sink.txt` are relative: to the working directory, as in Connect.
    let lines: Vec<String> = (0..3000).map(|i| format!("line {i}: \"quoted\", tab\there, ünïcödé")).collect();
    append_lines(&dir.path().join("test.txt"), lines.clone());
    let mut agent = connect_standalone(dir.path(), &[&worker, &source, &sink]);
    let out = dir.path().join("test.sink.txt");
    wait_for("the sink file to equal the source file", T, || file_lines(&out).len() >= lines.len());
    signal(&agent, libc::SIGTERM);
    let status = wait_exit(&mut agent, T);
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(status.success(), "{log}");
    assert_eq!(file_lines(&out), lines, "one partition: the copy equals the source, in order");

    // On the wire: Kafka Connect's JsonConverter envelope (schemas.enable=true), as Connect writes it.
    let records = consume(&tansu.bootstrap, "connect-test", 1, lines.len(), Duration::from_secs(30));
    let expected = serde_json::json!({"schema": {"type": "string", "optional": false}, "payload": lines[0]});
    assert_eq!(records[0].json(), expected);
    assert_eq!(records.len(), lines.len());

    // convert-connect prints the same setup as an agent.yml that `agent test config` accepts.
    let out = Command::new(AGENT)
        .current_dir(dir.path())
        .arg("convert-connect")
        .args([&worker, &source, &sink])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("codec: connect_json") && yaml.contains("group_id: \"connect-local-file-sink\""), "{yaml}");
    std::fs::write(dir.path().join("agent.yml"), &yaml).unwrap();
    let check = Command::new(AGENT).args(["test", "config", "-c"]).arg(dir.path().join("agent.yml")).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("1 input(s), 1 sink(s)"));
}

#[test]
fn bad_connect_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let worker = fixture_into(dir.path(), "connect-standalone.properties", "127.0.0.1:1");
    let cases = [
        ("unknown-class.properties", "unknown-class.properties:2: connector.class: unknown connector class \"io.confluent.connect.jdbc.JdbcSinkConnector\""),
        ("missing-file.properties", "missing-file.properties: file: is required (Kafka Connect would use stdout without it"),
        ("syntax-error.properties", "syntax-error.properties:5: malformed \\uxxxx escape `\\users`"),
        ("unwritable-sink.properties", "sink \"unwritable\": cannot open for appending /proc/agent-connect-test/out.txt"),
    ];
    for (name, expected) in cases {
        let connector = fixture(name);
        let out = Command::new(AGENT)
            .current_dir(dir.path())
            .arg("connect-standalone")
            .args([&worker, &connector])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} should be refused");
        assert!(stderr.contains(expected), "{name}: expected {expected:?} in {stderr}");
    }
}

/// Kafka Connect 3.9 itself (jars from `scripts/install-peers.sh`, which `.ci/run` runs) on one side,
/// the agent on the other, in both directions, with JsonConverter envelopes on the wire:
/// Connect's FileStreamSource → agent sink, and agent source → Connect's FileStreamSink. The
/// agent's records are gzip (its default) made by libdeflate: Connect's Java consumer inflates them
/// with the JDK's own zlib, so a stock-zlib consumer reads them.
#[test]
fn kafka_connect_and_the_agent_read_each_others_json_envelopes() {
    let classpath = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/kafka-connect/classpath.txt");
    let cp = std::fs::read_to_string(&classpath)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/install-peers.sh", classpath.display()))
        .lines()
        .collect::<Vec<_>>()
        .join(":");
    let tansu = Tansu::start("from-connect", 1);
    tansu.create_topic("from-agent", 1);
    let dir = tempfile::tempdir().unwrap();
    let (connect_dir, agent_dir) = (dir.path().join("connect"), dir.path().join("agent"));
    std::fs::create_dir_all(connect_dir.join("plugins")).unwrap();
    std::fs::create_dir_all(&agent_dir).unwrap();
    let lines = |who: &str| -> Vec<String> { (0..500).map(|i| format!("{who} {i}: \"q\" \\ tab\t ünï")).collect() };
    append_lines(&connect_dir.join("in.txt"), lines("connect"));
    append_lines(&agent_dir.join("in.txt"), lines("agent"));
    let connector = |name: &str, class: &str, key: &str, topic: &str, file: &str| {
        format!("name={name}\nconnector.class={class}\ntasks.max=1\nfile={file}\n{key}={topic}\n")
    };
    for (d, src_topic, sink_topic) in
        [(&connect_dir, "from-connect", "from-agent"), (&agent_dir, "from-agent", "from-connect")]
    {
        fixture_into(d, "connect-standalone.properties", &tansu.bootstrap);
        std::fs::write(d.join("source.properties"), connector("src", "FileStreamSource", "topic", src_topic, "in.txt"))
            .unwrap();
        std::fs::write(d.join("sink.properties"), connector("snk", "FileStreamSink", "topics", sink_topic, "out.txt"))
            .unwrap();
    }
    // Connect's worker needs its own REST port and plugin settings (keys the agent refuses).
    let port = free_port();
    let extra = format!(
        "plugin.path={}\nplugin.discovery=service_load\nlisteners=http://127.0.0.1:{port}\n",
        connect_dir.join("plugins").display()
    );
    let worker = connect_dir.join("connect-standalone.properties");
    std::fs::write(&worker, std::fs::read_to_string(&worker).unwrap() + &extra).unwrap();
    let mut java = Command::new("java")
        .args(["-cp", &cp, "org.apache.kafka.connect.cli.ConnectStandalone"])
        .args(["connect-standalone.properties", "source.properties", "sink.properties"])
        .current_dir(&connect_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("connect.log")).unwrap())
        .spawn()
        .expect("java");
    let files: Vec<PathBuf> = ["connect-standalone.properties", "source.properties", "sink.properties"]
        .iter()
        .map(|f| agent_dir.join(f))
        .collect();
    let mut agent = connect_standalone(&agent_dir, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let done =
        || file_lines(&connect_dir.join("out.txt")).len() >= 500 && file_lines(&agent_dir.join("out.txt")).len() >= 500;
    let waited = std::panic::catch_unwind(|| wait_for("both copies", T, done));
    let _ = java.kill();
    let _ = java.wait();
    signal(&agent, libc::SIGTERM);
    let status = wait_exit(&mut agent, T);
    if waited.is_err() {
        let log = std::fs::read_to_string(dir.path().join("connect.log")).unwrap_or_default();
        panic!("copies incomplete; Kafka Connect log tail:\n{}", &log[log.len().saturating_sub(3000)..]);
    }
    assert!(status.success(), "{}", std::fs::read_to_string(agent_dir.join("agent.log")).unwrap());
    assert_eq!(file_lines(&agent_dir.join("out.txt")), lines("connect"), "Connect's source, the agent's sink");
    assert_eq!(file_lines(&connect_dir.join("out.txt")), lines("agent"), "the agent's source, Connect's sink");
}
