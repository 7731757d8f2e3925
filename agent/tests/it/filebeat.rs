//! Against the real Filebeat 8.1.3 (installed into `.tools/filebeat` by `scripts/install-peers.sh`,
//! which `.ci/run` runs; `FILEBEAT_BIN` overrides): the agent takes over a host from Filebeat with
//! the very same filebeat.yml.

use crate::common::*;
use crate::e2e::{signal, spawn_agent, wait_exit, Tansu, AGENT};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

pub fn filebeat_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FILEBEAT_BIN") {
        return p.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/filebeat/filebeat");
    assert!(
        local.exists(),
        "Filebeat not found at {}: run scripts/install-peers.sh (or set FILEBEAT_BIN)",
        local.display()
    );
    local
}

/// Writes `text` as a config file Filebeat accepts (it refuses group- or world-writable ones).
pub fn write_config(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starts Filebeat on `config`, logging to `filebeat.log` beside it.
pub fn spawn_filebeat(config: &Path, home: &Path) -> Child {
    let log = std::fs::File::create(config.with_file_name("filebeat.log")).unwrap();
    Command::new(filebeat_bin())
        .args(["-e", "-c", config.to_str().unwrap(), "--path.home", home.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("filebeat binary")
}

/// The `message` of each JSON event in the topic, counted.
fn messages(records: &[Record]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        let msg = r.json()["message"].as_str().expect("event with a message").to_string();
        *m.entry(msg).or_insert(0) += 1;
    }
    m
}

/// Filebeat ships three files (one filestream input, one log input) and is stopped with
/// `stop_signal`; lines are appended and a file appears; the agent then runs with the same
/// filebeat.yml and takes over Filebeat's registry. Returns every expected line's count in the
/// topic and how many records Filebeat had sent.
fn take_over_after(stop_signal: i32) -> (Vec<String>, HashMap<String, usize>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("logs")).unwrap();
    let tansu = Tansu::start("fb", 1);
    let cfg = d.join("filebeat.yml");
    write_config(
        &cfg,
        &format!(
            "filebeat.inputs:\n\
- type: filestream\n  id: fs-a\n  paths: [{logs}/a.log]\n\
- type: log\n  paths: [{logs}/b.log, {logs}/c*.log]\n\
path.data: {data}\n\
output.kafka:\n  hosts: [\"{bs}\"]\n  topic: fb\n  required_acks: 1\n",
            logs = d.join("logs").display(),
            data = d.join("data").display(),
            bs = tansu.bootstrap,
        ),
    );
    let mut expected = Vec::new();
    for f in ["a", "b", "c"] {
        let lines = numbered(&format!("{f}-first"), 0..300);
        append_lines(&d.join(format!("logs/{f}.log")), lines.clone());
        expected.extend(lines);
    }
    let mut fb = spawn_filebeat(&cfg, d);
    let shipped = wait_records(&tansu.bootstrap, 900);
    signal(&fb, stop_signal);
    wait_exit(&mut fb, Duration::from_secs(30));
    for f in ["a", "b", "c"] {
        let lines = numbered(&format!("{f}-later"), 0..200);
        append_lines(&d.join(format!("logs/{f}.log")), lines.clone());
        expected.extend(lines);
    }
    let new = numbered("c2-new", 0..100);
    append_lines(&d.join("logs/c2.log"), new.clone());
    expected.extend(new);

    let out = Command::new(AGENT).args(["test", "config", "-c", cfg.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "the agent takes the same filebeat.yml: {}", String::from_utf8_lossy(&out.stderr));
    let mut agent = spawn_agent(&cfg);
    let got = consume(&tansu.bootstrap, "fb", 1, shipped + 700, T);
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());
    let log = std::fs::read_to_string(d.join("agent.log")).unwrap();
    assert!(log.contains("took over Filebeat's registry"), "{log}");
    // `registry show`: every file read to its end, by the agent's own registry now.
    let out = Command::new(AGENT).args(["registry", "show", "-c", cfg.to_str().unwrap()]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    for f in ["a.log", "b.log", "c.log", "c2.log"] {
        let size = file_len(&d.join("logs").join(f));
        let row = table.lines().find(|l| l.contains(&format!("/{f}\t"))).unwrap_or_else(|| panic!("{f} in {table}"));
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!((cols[4], cols[5]), (size.to_string().as_str(), size.to_string().as_str()), "{row}");
    }
    (expected, messages(&got), shipped)
}

/// Waits until the topic holds at least `n` records; returns how many it holds then.
fn wait_records(bootstrap: &str, n: usize) -> usize {
    let mut seen = 0;
    wait_for("Filebeat to ship", T, || {
        seen = consume(bootstrap, "fb", 1, n, Duration::from_secs(3)).len();
        seen >= n
    });
    seen
}

#[test]
fn after_filebeat_stops_cleanly_the_agent_continues_every_file_at_its_offset() {
    let (expected, got, shipped) = take_over_after(libc::SIGTERM);
    let missing: Vec<&String> = expected.iter().filter(|l| !got.contains_key(*l)).take(5).collect();
    assert!(missing.is_empty(), "missing lines, e.g. {missing:?}");
    let twice: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "after a clean Filebeat stop nothing is sent twice, e.g. {twice:?}");
    assert_eq!(shipped, 900);
    assert_eq!(got.len(), expected.len());
}

#[test]
fn after_filebeat_is_killed_the_agent_loses_nothing() {
    let (expected, got, _) = take_over_after(libc::SIGKILL);
    let missing: Vec<&String> = expected.iter().filter(|l| !got.contains_key(*l)).take(5).collect();
    assert!(missing.is_empty(), "missing lines, e.g. {missing:?}");
    let twice = got.values().filter(|n| **n > 1).count();
    eprintln!(
        "after kill -9 of Filebeat: {twice} lines sent twice (acknowledged after Filebeat's last registry write)"
    );
}

/// `agent registry import-filebeat DIR` for a store kept elsewhere (another path.data): the agent
/// then sends only what Filebeat had not.
#[test]
fn a_filebeat_registry_from_elsewhere_is_imported_by_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("logs")).unwrap();
    let tansu = Tansu::start("fb", 1);
    let fb_cfg = d.join("filebeat.yml");
    let inputs = format!("filebeat.inputs:\n- type: log\n  paths: [{}/*.log]\n", d.join("logs").display());
    let output = format!("output.kafka:\n  hosts: [\"{}\"]\n  topic: fb\n", tansu.bootstrap);
    write_config(&fb_cfg, &format!("{inputs}path.data: {}/fb-data\n{output}", d.display()));
    let first = numbered("before", 0..500);
    append_lines(&d.join("logs/app.log"), first.clone());
    let mut fb = spawn_filebeat(&fb_cfg, d);
    wait_records(&tansu.bootstrap, 500);
    signal(&fb, libc::SIGTERM);
    wait_exit(&mut fb, Duration::from_secs(30));
    let later = numbered("after", 0..100);
    append_lines(&d.join("logs/app.log"), later.clone());

    let agent_cfg = d.join("agent.yml");
    write_config(&agent_cfg, &format!("{inputs}path.data: {}/agent-data\n{output}", d.display()));
    let import = |store: &Path| {
        Command::new(AGENT)
            .args(["registry", "import-filebeat", store.to_str().unwrap(), "-c", agent_cfg.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = import(&d.join("fb-data/registry"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("took over 1 file states"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = import(&d.join("fb-data/registry/filebeat"));
    assert!(!again.status.success(), "a second import would replace the agent's offsets");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has 1 entries"));

    let mut agent = spawn_agent(&agent_cfg);
    let got = consume(&tansu.bootstrap, "fb", 1, 600, T);
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());
    let got = messages(&got);
    assert!(
        first.iter().chain(&later).all(|l| got.get(l) == Some(&1)),
        "each line exactly once: {} distinct",
        got.len()
    );
}
