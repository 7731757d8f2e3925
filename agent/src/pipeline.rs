//! Wiring: builds every stage, starts their threads, and runs the shutdown sequence.
//!
//! Owns the threads and the shutdown order (decide, tell everyone, wait). Sinks (topics to files,
//! [`crate::sink`]) are told to stop first and commit what they wrote while the inputs stop. The
//! input side has one [`Shutdown`], stopped with the drain deadline; each step below follows from
//! it or from the end of the step before, not from a flag polled in a sleep loop:
//! 1. stop reading (the stop wakes discovery, whose end wakes the reader; the reader hands over
//!    its last batch);
//! 2. close the queue: the output drains what is queued into the producer;
//! 3. flush the producer until the drain deadline (`shutdown_timeout`); shortly before it, what
//!    Kafka has not acknowledged goes to the spool (if enabled); whatever is neither acknowledged
//!    nor spooled stays unacknowledged and is read again after restart;
//! 4. write the registry one last time (acknowledged offsets only) and return: the registry
//!    thread's wait ends when the output thread has ended (it drops the channel's sender).
//!
//! Invariant: the registry thread is the registry's only owner once the run has started, and
//! the final write happens after the output has stopped, so it records every acknowledgement.
//!
//! A reload (SIGHUP: `main` loads and validates the file, then hands it over in
//! [`RunOptions::reload`]) restarts only the side whose settings changed: the input side by the
//! sequence above then a fresh start from the registry just written, so an unchanged input
//! resumes where it was and nothing is sent twice; the sinks by stop, final commit, start. A side
//! that cannot start with the new settings starts again with the old ones.

use crate::ack::AckTracker;
use crate::config::{Config, HumanDuration, KafkaConfig, SinkConfig};
use crate::discover::{self, Selector};
use crate::event::AgentMeta;
use crate::metrics::{Metrics, PeriodicLog};
use crate::output::kafka::describe;
use crate::output::Output;
use crate::queue::Queue;
use crate::registry::{Recovery, Registry};
use crate::shutdown::Shutdown;
use crate::sink::Sinks;
use crate::status::{Kind, Status};
use crate::tail::input::InputRt;
use crate::tail::{Reader, ReaderParts};
use anyhow::Context as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How soon a reload handed over in [`RunOptions::reload`] is applied (a stop is seen at once).
const RELOAD_PICKUP: Duration = Duration::from_millis(50);

/// Command-line choices and process-wide signals that affect a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// How to start when the registry is corrupt; `None` refuses to start.
    pub registry_recovery: Option<Recovery>,
    /// Counts the SIGHUPs received; sinks reopen their files when it changes.
    pub hangups: Arc<AtomicU64>,
    /// Shared with the monitoring endpoint; its metrics are the run's.
    pub status: Arc<Status>,
    /// A new, validated configuration to apply (put there on SIGHUP).
    pub reload: Arc<Mutex<Option<Config>>>,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct Summary {
    pub metrics: Arc<Metrics>,
    /// Events sent but not acknowledged by the drain deadline (read again after restart).
    pub unacknowledged: usize,
    /// Events waiting in the spool for Kafka (replayed after restart).
    pub spooled: u64,
}

/// Runs the agent (inputs, sinks, or both) until `shutdown` is set, then stops in order: sinks
/// are told to stop at once (they commit what they wrote), the inputs drain as described above,
/// and the run returns when both are done.
pub fn run(config: Config, opts: RunOptions, shutdown: Shutdown) -> anyhow::Result<Summary> {
    let data = config.path.data.clone();
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create path.data {}", data.display()))?;
    let _lock = lock_data_dir(&data)?;
    let metrics = opts.status.metrics.clone();
    let ephemeral_id = random_uuid();
    // Before the first Kafka client: OpenSSL takes the bounds for every TLS context after this.
    if let Some(range @ (min, max)) = config.tls_range() {
        let file = crate::tls_versions::apply(range, &data)?;
        tracing::info!(min = min.openssl(), max = max.openssl(), file = %file.display(),
            "ssl.supported_protocols: every Kafka connection's TLS version is bounded");
    }
    let sinks = Sinks::start(&config.sinks, &data, &opts.status, opts.hangups.clone())?;
    let inputs = match start_inputs(&config, &opts, &ephemeral_id) {
        Ok(i) => i,
        Err(e) => {
            sinks.join();
            return Err(e);
        }
    };
    tracing::info!(inputs = config.inputs.len(), sinks = config.sinks.len(), data = %data.display(), "agent started");
    let mut running = Running { sinks_cfg: config.sinks.clone(), inputs_cfg: config, sinks, inputs };
    loop {
        let new = opts.reload.lock().unwrap().take();
        if let Some(new) = new {
            running.reload(new, &opts, &ephemeral_id);
        }
        if shutdown.wait(RELOAD_PICKUP) {
            break;
        }
    }
    let Running { inputs_cfg, sinks, inputs, .. } = running;
    sinks.stop();
    let unacknowledged = inputs.map_or(0, |i| i.stop(inputs_cfg.shutdown_timeout));
    sinks.join();
    tracing::info!(metrics = %metrics.summary(), "stopped");
    let spooled = Metrics::get(&metrics.spool_events);
    Ok(Summary { metrics, unacknowledged, spooled })
}

/// Starts the input side when the config has an output (and records that for `/healthz`).
fn start_inputs(config: &Config, opts: &RunOptions, ephemeral_id: &str) -> anyhow::Result<Option<Inputs>> {
    opts.status.set_output(config.output.is_some(), config.queue.spool.enabled);
    match config.kafka() {
        Some(kafka) => Inputs::start(config, kafka, opts, ephemeral_id).map(Some),
        None => {
            opts.status.install(Kind::Source, &[]);
            Ok(None)
        }
    }
}

/// What runs now, and the settings each side runs with.
struct Running {
    /// The whole config the input side was started with (it reads most sections).
    inputs_cfg: Config,
    sinks_cfg: Vec<SinkConfig>,
    sinks: Sinks,
    inputs: Option<Inputs>,
}

impl Running {
    /// Applies a new config: restarts each side whose settings changed (module docs).
    fn reload(&mut self, new: Config, opts: &RunOptions, ephemeral_id: &str) {
        let metrics = &opts.status.metrics;
        if new.path.data != self.inputs_cfg.path.data {
            Metrics::inc(&metrics.config_reload_errors);
            tracing::error!(now = %self.inputs_cfg.path.data.display(), new = %new.path.data.display(),
                "config reload refused: path.data cannot change while running; restart the agent to move it");
            return;
        }
        if new.tls_range() != self.inputs_cfg.tls_range() {
            Metrics::inc(&metrics.config_reload_errors);
            tracing::error!(
                "config reload refused: ssl.supported_protocols cannot change while running (OpenSSL \
                applies it to the whole process); restart the agent to change it"
            );
            return;
        }
        for (key, same) in [
            ("logging", same_settings(&self.inputs_cfg.logging, &new.logging)),
            ("http", same_settings(&self.inputs_cfg.http, &new.http)),
        ] {
            if !same {
                tracing::warn!(key, "config reload: {key} settings changed; they take effect after a restart");
            }
        }
        let sinks_changed = !same_settings(&self.sinks_cfg, &new.sinks);
        let inputs_changed = !same_settings(&input_side(&self.inputs_cfg), &input_side(&new));
        tracing::info!(inputs_changed, sinks_changed, "config reload: applying");
        let mut ok = true;
        if inputs_changed {
            if let Some(inputs) = self.inputs.take() {
                inputs.stop(self.inputs_cfg.shutdown_timeout);
            }
            let start = |c: &Config| start_inputs(c, opts, ephemeral_id);
            let started;
            (self.inputs, started) = start_new_or_old("inputs", &new, &self.inputs_cfg, start, || None);
            if started {
                self.inputs_cfg = new.clone();
            }
            ok &= started;
        }
        if sinks_changed {
            std::mem::replace(&mut self.sinks, Sinks::none()).join();
            let data = &self.inputs_cfg.path.data;
            let start = |c: &Vec<SinkConfig>| Sinks::start(c, data, &opts.status, opts.hangups.clone());
            let started;
            (self.sinks, started) = start_new_or_old("sinks", &new.sinks, &self.sinks_cfg, start, Sinks::none);
            if started {
                self.sinks_cfg = new.sinks.clone();
            }
            ok &= started;
        }
        if ok {
            Metrics::inc(&metrics.config_reloads);
            tracing::info!(inputs = self.inputs_cfg.inputs.len(), sinks = self.sinks_cfg.len(), "config reloaded");
        } else {
            Metrics::inc(&metrics.config_reload_errors);
        }
    }
}

/// Starts one side (`what`: inputs or sinks) with the `new` settings or, when it cannot, with the
/// `old` ones again, and failing that with `nothing`. True when the new settings run.
fn start_new_or_old<C, T>(
    what: &str,
    new: &C,
    old: &C,
    start: impl Fn(&C) -> anyhow::Result<T>,
    nothing: impl FnOnce() -> T,
) -> (T, bool) {
    let e = match start(new) {
        Ok(side) => return (side, true),
        Err(e) => e,
    };
    tracing::error!(
        error = format!("{e:#}"),
        "config reload: the {what} cannot start with the new settings; starting them again with the old ones"
    );
    let side = start(old).unwrap_or_else(|e| {
        tracing::error!(
            error = format!("{e:#}"),
            "the {what} cannot start again with the old settings either: none runs until the next reload"
        );
        nothing()
    });
    (side, false)
}

/// Whether two settings are the same, by value (every field of every config type, secrets and
/// librdkafka properties included; `Debug` hides some of them, so it cannot be the test).
fn same_settings<T: PartialEq>(a: &T, b: &T) -> bool {
    a == b
}

/// The settings the input side is built from (everything but the sinks, logging and http).
#[derive(PartialEq)]
struct InputSide<'a> {
    name: &'a Option<String>,
    registry: &'a crate::config::RegistryConfig,
    inputs: &'a [crate::config::InputConfig],
    processors: &'a [crate::config::ProcessorConfig],
    queue: &'a crate::config::QueueConfig,
    output: &'a Option<crate::config::OutputConfig>,
    shutdown_timeout: HumanDuration,
    metrics_log: &'a crate::config::LogMetricsConfig,
    fields: &'a std::collections::BTreeMap<String, serde_json::Value>,
    fields_under_root: bool,
    tags: &'a [String],
}

fn input_side(c: &Config) -> InputSide<'_> {
    InputSide {
        name: &c.name,
        registry: &c.registry,
        inputs: &c.inputs,
        processors: &c.processors,
        queue: &c.queue,
        output: &c.output,
        shutdown_timeout: c.shutdown_timeout,
        metrics_log: &c.logging.metrics,
        fields: &c.fields,
        fields_under_root: c.fields_under_root,
        tags: &c.tags,
    }
}

/// The input side's threads and the handles its shutdown sequence needs.
struct Inputs {
    discover: JoinHandle<()>,
    reader: JoinHandle<()>,
    output: JoinHandle<usize>,
    registry: JoinHandle<()>,
    queue: Arc<Queue>,
    tracker: Arc<AckTracker>,
    /// Ends reading at once and the output's drain at its deadline; the registry ends after the
    /// output (its `done` channel closes).
    stop: Shutdown,
}

impl Inputs {
    fn start(config: &Config, kafka: &KafkaConfig, opts: &RunOptions, ephemeral_id: &str) -> anyhow::Result<Inputs> {
        let data = &config.path.data;
        let metrics = opts.status.metrics.clone();
        let agent = agent_meta(config, data, ephemeral_id)?;
        let registry_dir = config.registry_dir();
        let first_start = !Registry::exists_in(&registry_dir);
        let mut opened = Registry::open(&registry_dir, opts.registry_recovery)?;
        if first_start {
            take_over_filebeat(&registry_dir, &config.inputs, &mut opened.registry, &metrics)?;
        }
        let known = opened.registry.entries().clone();
        tracing::info!(registry = %opened.registry.path().display(), entries = known.len(), "registry loaded");

        let tracker = Arc::new(AckTracker::default());
        let queue =
            Arc::new(Queue::new(config.queue.mem.max_bytes.0 as usize, config.queue.mem.events.unwrap_or(usize::MAX)));
        tracing::info!(properties = %describe(kafka), gzip = %crate::output::kafka::gzip::describe(), "kafka producer settings");
        let mut output = Output::new(config, kafka, tracker.clone(), metrics.clone(), opts.status.refused.clone())?;

        let enabled: Vec<_> = config.inputs.iter().filter(|i| i.enabled).cloned().collect();
        if enabled.is_empty() {
            tracing::warn!("no enabled input: nothing to read");
        }
        let selectors = enabled.iter().map(selector).collect::<Vec<_>>();
        let connectors = opts.status.install(Kind::Source, &enabled.iter().map(|i| i.id.as_str()).collect::<Vec<_>>());
        let global = config.global_fields();
        let inputs = enabled.into_iter().map(|i| InputRt::new(i, kafka, &agent, &config.processors, &global)).collect();

        let stop = Shutdown::new();
        let (tx, rx) = mpsc::sync_channel(1024);
        let discover = spawn("discover", {
            let (s, hb) = (stop.clone(), opts.status.heartbeat("discover"));
            move || discover::run(selectors, tx, s, hb)
        });
        let reader = Reader::new(ReaderParts {
            inputs,
            connectors,
            known,
            recovered: opened.recovered,
            tracker: tracker.clone(),
            queue: queue.clone(),
            metrics: metrics.clone(),
            rx,
            stop: stop.clone(),
            max_open_files: config.queue.max_open_files,
            heartbeat: opts.status.heartbeat("reader"),
        });
        let reader = spawn("reader", move || reader.run());
        output.set_heartbeat(opts.status.heartbeat("output"));
        // The output thread holds `done` until it has drained: dropping it ends the registry.
        let (done, output_done) = mpsc::channel::<()>();
        let output = spawn("output", {
            let (queue, stop) = (queue.clone(), stop.clone());
            move || {
                output.run(&queue, &stop);
                let unacknowledged = output.drain(&stop);
                // The producers close first (their last delivery reports reach the tracker), then
                // the registry may write for the last time.
                drop(output);
                drop(done);
                unacknowledged
            }
        });
        let registry = spawn("registry", {
            let (tracker, cfg, status) = (tracker.clone(), config.clone(), opts.status.clone());
            move || registry_loop(opened.registry, &tracker, &status, &cfg, &output_done)
        });
        Ok(Inputs { discover, reader, output, registry, queue, tracker, stop })
    }

    /// The input side's shutdown sequence (module docs); returns the events left unacknowledged.
    fn stop(self, timeout: HumanDuration) -> usize {
        tracing::info!(timeout = %timeout, "stopping: no more reading, draining to Kafka");
        self.stop.stop_within(timeout.0);
        join(self.reader, "reader");
        join(self.discover, "discover");
        self.queue.close();
        let unacknowledged = self.output.join().unwrap_or_else(|_| {
            tracing::error!("output thread panicked");
            self.tracker.in_flight()
        });
        // The output thread has ended, so the registry's last write follows.
        join(self.registry, "registry");
        if unacknowledged > 0 {
            tracing::warn!(
                unacknowledged,
                "drain deadline reached: unacknowledged events will be read again after restart"
            );
        }
        unacknowledged
    }
}

/// The first start on a host where Filebeat ran (its store under the same registry directory):
/// every file state of Filebeat's that belongs to one of our inputs becomes our registry entry,
/// so each file continues at Filebeat's acknowledged offset. Written at once, so the next start
/// uses the agent's own registry. Filebeat's files are only read.
fn take_over_filebeat(
    dir: &Path,
    inputs: &[crate::config::InputConfig],
    registry: &mut Registry,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let Some(store) = crate::registry::filebeat::store_dir(dir) else { return Ok(()) };
    let (taken, skipped) = take_over_from(&store, inputs, registry)?;
    Metrics::add(&metrics.registry_taken_over, taken as u64);
    Metrics::add(&metrics.registry_take_over_skipped, skipped as u64);
    tracing::info!(store = %store.display(), taken, skipped, "first start: took over Filebeat's registry (its files are left as they are)");
    Ok(())
}

/// Reads Filebeat's store at `store`, adds the states that belong to `inputs` to `registry` and
/// writes it; returns how many states were taken and skipped (each skip is logged with why).
fn take_over_from(
    store: &Path,
    inputs: &[crate::config::InputConfig],
    registry: &mut Registry,
) -> anyhow::Result<(usize, usize)> {
    use crate::registry::filebeat;
    let found = filebeat::read(store).map_err(|e| anyhow::anyhow!("cannot take over Filebeat's registry: {e}"))?;
    if found.log_cut {
        tracing::warn!(store = %store.display(), "Filebeat's registry log ends early (a crash?); taking over its states up to there, as Filebeat itself would");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let (entries, skipped) = filebeat::take_over(&found.states, inputs, now);
    for (key, why) in found.unusable.iter().chain(&skipped) {
        tracing::warn!(state = %key, reason = %why, "Filebeat registry state not taken over; its file is treated as new");
    }
    let taken = entries.len();
    registry.insert(entries);
    registry.write()?;
    Ok((taken, found.unusable.len() + skipped.len()))
}

/// `agent registry import-filebeat DIR`: takes Filebeat's registry over from `dir` (a memlog store
/// directory, or a registry directory holding `filebeat/`) into the agent's, which must be empty.
/// Refused while an agent runs on this `path.data`.
pub fn import_filebeat(config: &Config, dir: &Path) -> anyhow::Result<String> {
    let data = &config.path.data;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create path.data {}", data.display()))?;
    let _lock = lock_data_dir(data)?;
    let store = if dir.join("meta.json").is_file() {
        Some(dir.to_path_buf())
    } else {
        crate::registry::filebeat::store_dir(dir)
    };
    let store = store.with_context(|| {
        format!("{} holds no Filebeat registry (no meta.json there or in filebeat/)", dir.display())
    })?;
    let registry_dir = config.registry_dir();
    let mut registry = Registry::open(&registry_dir, None)?.registry;
    anyhow::ensure!(
        registry.is_empty(),
        "the agent's registry {} already has {} entries; importing would replace their offsets (move it away first)",
        registry.path().display(),
        registry.len()
    );
    let (taken, skipped) = take_over_from(&store, &config.inputs, &mut registry)?;
    Ok(format!(
        "took over {taken} file states from {} into {} ({skipped} skipped, see the log)\n",
        store.display(),
        registry.path().display()
    ))
}

/// `agent registry show`: the agent's registry as a table (input, path, identity, offset, last seen).
pub fn show_registry(config: &Config) -> anyhow::Result<String> {
    let registry_dir = config.registry_dir();
    let registry = Registry::open(&registry_dir, None)?.registry;
    let mut out = format!("{} ({} entries)\n", registry.path().display(), registry.len());
    let mut entries: Vec<_> = registry.entries().values().collect();
    entries.sort_by(|a, b| (&a.input, &a.path).cmp(&(&b.input, &b.path)));
    out.push_str("input\tpath\tdevice\tinode\toffset\tsize now\tlast seen\n");
    for e in entries {
        let size = std::fs::metadata(&e.path)
            .ok()
            .filter(|m| crate::fingerprint::FileId::of(m) == e.id())
            .map_or_else(|| "-".to_string(), |m| m.len().to_string());
        let seen = crate::event::rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_secs(e.last_seen));
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{size}\t{seen}\n",
            e.input,
            e.path.display(),
            e.dev,
            e.ino,
            e.offset
        ));
    }
    Ok(out)
}

fn selector(input: &crate::config::InputConfig) -> Selector {
    Selector {
        input_id: input.id.clone(),
        globs: input.paths.clone(),
        exclude: input.exclude_files.iter().map(|p| (**p).clone()).collect(),
        include: input.include_files.iter().map(|p| (**p).clone()).collect(),
        symlinks: input.symlinks,
        check_interval: input.check_interval.0,
    }
}

fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::Builder::new().name(name.to_string()).spawn(f).expect("spawn thread")
}

fn join<T>(h: JoinHandle<T>, name: &str) {
    if h.join().is_err() {
        tracing::error!(thread = name, "thread panicked");
    }
}

/// Writes acknowledged offsets every `registry.flush`, notes progress in the registry's journal
/// every `registry.progress_every` in between, and logs metrics every period, until the output
/// has ended (`output_done` closes: every acknowledgement is in); then writes once more.
fn registry_loop(
    mut registry: Registry,
    tracker: &AckTracker,
    status: &Status,
    cfg: &Config,
    output_done: &Receiver<()>,
) {
    let metrics = &*status.metrics;
    let heartbeat = status.heartbeat("registry");
    let (flush, clean_after) = (cfg.registry.flush.0, cfg.registry.clean_removed_after.0);
    let progress = Some(cfg.registry.progress_every.0).filter(|p| !p.is_zero() && *p < flush);
    let mut metrics_log = PeriodicLog::new(cfg.logging.metrics.enabled.then_some(cfg.logging.metrics.period.0));
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next {
            registry.flush_from(tracker, metrics, clean_after);
            // Notes when a not-ready condition began, for `/healthz`'s `since`.
            let _ = status.readiness();
            metrics_log.tick(metrics);
            next = Instant::now() + flush;
        } else if progress.is_some() {
            registry.note_progress(tracker, metrics, clean_after);
        }
        heartbeat.beat();
        // Wakes at the next note or write, at least once a second (the heartbeat), or at the
        // output's end.
        let turn = progress.unwrap_or(flush).min(Duration::from_secs(1));
        let wait = next.saturating_duration_since(Instant::now()).min(turn);
        if let Err(RecvTimeoutError::Disconnected) = output_done.recv_timeout(wait) {
            registry.flush_from(tracker, metrics, clean_after);
            return;
        }
    }
}

/// Takes an exclusive lock on `<path.data>/agent.lock`, so two agents never share a registry.
fn lock_data_dir(data: &Path) -> anyhow::Result<File> {
    let path = data.join("agent.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    anyhow::ensure!(rc == 0, "path.data {} is in use by another agent (lock {} held)", data.display(), path.display());
    Ok(f)
}

/// Host name and agent ids; the agent id persists in `<path.data>/agent.id`.
fn agent_meta(config: &Config, data: &Path, ephemeral_id: &str) -> anyhow::Result<AgentMeta> {
    let id_path = data.join("agent.id");
    let agent_id = match std::fs::read_to_string(&id_path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            let id = random_uuid();
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&id_path)
                .with_context(|| format!("cannot write {}", id_path.display()))?;
            f.write_all(id.as_bytes())?;
            f.sync_all()?;
            id
        }
    };
    let host_name = config.name.clone().unwrap_or_else(host_name);
    Ok(AgentMeta { host_name, agent_id, ephemeral_id: ephemeral_id.to_string() })
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A random (version 4) UUID from the kernel's random source.
fn random_uuid() -> String {
    let mut b: [u8; 16] = crate::event::random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
path:
  data: /tmp/agent-reload-test
registry:
  flush: 1s
inputs:
  - id: app
    paths: [/var/log/app.log]
processors: []
queue:
  mem:
    max_bytes: 64MiB
output:
  kafka:
    hosts: [\"k1:9092\"]
    topic: logs
    codec: json
    compression: gzip
    librdkafka:
      socket.keepalive.enable: \"true\"
sinks:
  - id: copy
    topics: [logs]
    file: /tmp/copy.txt
    hosts: [\"k1:9092\"]
    group_id: copy
";

    fn parse(text: &str) -> Config {
        Config::from_str_at(text, Path::new("agent.yml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Issue #16: a reload restarts exactly the side whose settings changed, for every class of
    /// setting (each output key class including TLS, SASL and librdkafka properties, queue,
    /// registry, processors, inputs, a sink's hosts and format). Before, a change `Debug` did
    /// not print (the codec, TLS, SASL, properties) was reloaded as "no change".
    #[test]
    fn every_class_of_setting_restarts_its_side() {
        let base = parse(BASE);
        let input_side_changes: [(&str, &str, &str); 12] = [
            ("codec", "    codec: json\n", "    codec: raw\n"),
            ("compression level", "    compression: gzip\n", "    compression: gzip\n    compression_level: 9\n"),
            (
                "tls",
                "    compression: gzip\n",
                "    compression: gzip\n    ssl:\n      certificate_authorities: [/etc/ca.pem]\n",
            ),
            (
                "sasl",
                "    compression: gzip\n",
                "    compression: gzip\n    username: u\n    password: p\n    sasl:\n      mechanism: SCRAM-SHA-512\n",
            ),
            ("librdkafka property", "socket.keepalive.enable: \"true\"", "socket.keepalive.enable: \"false\""),
            ("batch size", "    compression: gzip\n", "    compression: gzip\n    bulk_max_size: 100\n"),
            ("topic", "    topic: logs\n", "    topic: other\n"),
            ("queue", "max_bytes: 64MiB", "max_bytes: 32MiB"),
            ("registry", "  flush: 1s\n", "  flush: 5s\n"),
            ("processors", "processors: []\n", "processors:\n  - add_fields:\n      fields: {env: prod}\n"),
            (
                "input",
                "    paths: [/var/log/app.log]\n",
                "    paths: [/var/log/app.log]\n    exclude_lines: ['^DEBUG']\n",
            ),
            (
                "input added",
                "    paths: [/var/log/app.log]\n",
                "    paths: [/var/log/app.log]\n  - id: web\n    paths: [/var/log/web.log]\n",
            ),
        ];
        for (class, from, to) in input_side_changes {
            assert!(BASE.contains(from), "{class}: the base lacks {from:?}");
            let new = parse(&BASE.replacen(from, to, 1));
            assert!(input_side(&base) != input_side(&new), "{class}: the input side must restart");
            assert!(same_settings(&base.sinks, &new.sinks), "{class}: the sinks must keep running");
        }
        let sink_changes: [(&str, &str, &str); 4] = [
            ("sink hosts", "    hosts: [\"k1:9092\"]\n    group_id", "    hosts: [\"k2:9092\"]\n    group_id"),
            ("sink format", "    group_id: copy\n", "    group_id: copy\n    format: message\n"),
            ("sink topics", "    topics: [logs]\n", "    topics: [logs, audit]\n"),
            (
                "sink librdkafka property",
                "    group_id: copy\n",
                "    group_id: copy\n    librdkafka:\n      fetch.min.bytes: \"1024\"\n",
            ),
        ];
        for (class, from, to) in sink_changes {
            assert!(BASE.contains(from), "{class}: the base lacks {from:?}");
            let new = parse(&BASE.replacen(from, to, 1));
            assert!(!same_settings(&base.sinks, &new.sinks), "{class}: the sinks must restart");
            assert!(input_side(&base) == input_side(&new), "{class}: the input side must keep running");
        }
        // The same text again restarts nothing.
        let again = parse(BASE);
        assert!(input_side(&base) == input_side(&again) && same_settings(&base.sinks, &again.sinks));
    }
}
