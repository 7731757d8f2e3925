//! The measured tools and how each is started with equivalent settings (same broker, topic,
//! compression codec and level, acks, batch size; round robin or no key).
//!
//! A peer that is not installed is reported as skipped with the reason, never given a number.

use crate::corpus::Corpus;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Target {
    /// The agent with the raw codec (line bytes as they are).
    AgentRaw,
    /// The agent with the Filebeat-compatible JSON codec.
    AgentJson,
    /// Another agent binary (`BASE_AGENT_BIN`, e.g. the commit before a change) with the raw
    /// codec: an A/B of two builds in the same run.
    BaseRaw,
    /// `BASE_AGENT_BIN` with the JSON codec.
    BaseJson,
    /// A raw librdkafka producer (`bench ceiling`): read, one record per line, nothing else.
    Ceiling,
    /// The ceiling with a 24-character `_id` record header per record, laid out as the agent's
    /// event ids (`bench ceiling --id-header`): what librdkafka's per-record header costs.
    CeilingId,
    /// Kafka Connect 3.9 FileStreamSource (standalone worker).
    KafkaConnect,
    /// Filebeat 8.1.3 sending the line only (`codec.format: '%{[message]}'`), its defaults otherwise.
    Filebeat,
    /// Filebeat 8.1.3 sending its own JSON events (its default codec), to set against `agent-json`.
    FilebeatJson,
    /// Filebeat 8.1.3, line only, with queue and worker settings after Elastic's tuning guidance
    /// ([`FILEBEAT_TUNED`]).
    FilebeatTuned,
    /// Filebeat 8.1.3, line only, with its disk queue (`queue.disk`) instead of the memory queue:
    /// what a Filebeat user sets up to ride out an outage.
    FilebeatDisk,
    Vector,
    FluentBit,
}

/// "Filebeat tuned": Elastic's throughput guidance for the output and its memory queue (the
/// Fleet "throughput" preset: several workers, a queue of a few batches per worker, batches
/// flushed at `bulk_max_size` events), with the batch size every target gets. Printed with the
/// results.
pub const FILEBEAT_TUNED: &str = "output.kafka.worker: 4, queue.mem.events: 2 × worker × bulk_max_size, queue.mem.flush.min_events: bulk_max_size, queue.mem.flush.timeout: 1s";

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::AgentRaw => "agent (raw)",
            Target::AgentJson => "agent (json)",
            Target::BaseRaw => "agent before (raw)",
            Target::BaseJson => "agent before (json)",
            Target::Ceiling => "librdkafka ceiling",
            Target::CeilingId => "librdkafka ceiling + _id header",
            Target::KafkaConnect => "Kafka Connect FileStream",
            Target::Filebeat => "Filebeat",
            Target::FilebeatJson => "Filebeat (its JSON events)",
            Target::FilebeatTuned => "Filebeat tuned",
            Target::FilebeatDisk => "Filebeat disk queue",
            Target::Vector => "Vector",
            Target::FluentBit => "Fluent Bit",
        }
    }

    /// The `BASE_AGENT_BIN` build (an A/B target).
    pub fn is_base(self) -> bool {
        matches!(self, Target::BaseRaw | Target::BaseJson)
    }

    /// Whether the target sends JSON events (compared with one another) rather than the line.
    pub fn is_json(self) -> bool {
        matches!(self, Target::AgentJson | Target::BaseJson | Target::FilebeatJson)
    }

    /// Whether the target remembers how far it read, so a restart can resume (the restart cases).
    pub fn keeps_offsets(self) -> bool {
        !(self.is_ceiling() || matches!(self, Target::Vector | Target::FluentBit))
    }

    /// The agent, this build or the `BASE_AGENT_BIN` one.
    pub fn is_agent(self) -> bool {
        matches!(self, Target::AgentRaw | Target::AgentJson) || self.is_base()
    }

    /// The bare librdkafka producer, with or without the `_id` header: reads files, does not tail.
    pub fn is_ceiling(self) -> bool {
        matches!(self, Target::Ceiling | Target::CeilingId)
    }

    pub fn is_filebeat(self) -> bool {
        matches!(self, Target::Filebeat | Target::FilebeatJson | Target::FilebeatTuned | Target::FilebeatDisk)
    }

    /// Every target a plain `bench run` measures (the A/B targets only when asked for).
    pub const ALL: [Target; 11] = [
        Target::AgentRaw,
        Target::AgentJson,
        Target::Ceiling,
        Target::CeilingId,
        Target::KafkaConnect,
        Target::Filebeat,
        Target::FilebeatJson,
        Target::FilebeatTuned,
        Target::FilebeatDisk,
        Target::Vector,
        Target::FluentBit,
    ];
}

/// Settings every target gets (the same flags for `bench run` and `bench ceiling`).
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// gzip level for every target (Kafka Connect's default is 6; the agent's default is 4).
    #[arg(long, default_value_t = 6)]
    pub level: u32,
    #[arg(long, default_value_t = 1)]
    pub acks: i32,
    /// Records per batch.
    #[arg(long, default_value_t = 2048)]
    pub batch: usize,
    #[arg(long, default_value_t = 10)]
    pub linger_ms: u64,
    /// Runs the agent with `event_id: false` (no per-event id: measures what the ids cost).
    #[arg(long)]
    pub no_event_id: bool,
    /// Runs the agent with `event_id_header: false` (the id in `@metadata._id` only).
    #[arg(long)]
    pub no_id_header: bool,
}

/// Where the tools are.
pub struct Tools {
    pub agent: PathBuf,
    pub bench: PathBuf,
    /// Kafka Connect classpath file (one jar per line), from `scripts/install-peers.sh`.
    pub connect_classpath: Option<PathBuf>,
    pub filebeat: Option<PathBuf>,
    pub vector: Option<PathBuf>,
    pub fluent_bit: Option<PathBuf>,
    /// The agent build to compare with (`BASE_AGENT_BIN`), for the `base-*` targets.
    pub base: Option<PathBuf>,
}

/// Finds a binary from an environment variable or on PATH.
pub fn find_bin(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

impl Tools {
    pub fn discover(root: &Path) -> Tools {
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let cp = root.join(".tools/kafka-connect/classpath.txt");
        Tools {
            agent: std::env::var_os("AGENT_BIN").map(PathBuf::from).unwrap_or_else(|| dir.join("agent")),
            bench: exe,
            connect_classpath: cp.is_file().then_some(cp),
            // `scripts/install-peers.sh` installs Filebeat 8.1.3 here.
            filebeat: find_bin("FILEBEAT_BIN", "filebeat")
                .or_else(|| Some(root.join(".tools/filebeat/filebeat")).filter(|p| p.is_file())),
            vector: find_bin("VECTOR_BIN", "vector"),
            fluent_bit: find_bin("FLUENT_BIT_BIN", "fluent-bit"),
            base: std::env::var_os("BASE_AGENT_BIN").map(PathBuf::from),
        }
    }

    /// Why a target cannot run here, if it cannot.
    pub fn skip_reason(&self, t: Target, corpus: &Corpus) -> Option<String> {
        match t {
            Target::AgentRaw | Target::AgentJson => {
                (!self.agent.is_file()).then(|| format!("agent binary not found at {}", self.agent.display()))
            }
            Target::BaseRaw | Target::BaseJson => match &self.base {
                Some(b) if b.is_file() => None,
                Some(b) => Some(format!("BASE_AGENT_BIN {} not found", b.display())),
                None => Some("skipped: set BASE_AGENT_BIN to the agent binary to compare with".into()),
            },
            Target::Ceiling | Target::CeilingId => None,
            Target::KafkaConnect if self.connect_classpath.is_none() => {
                Some("skipped: not installed (scripts/install-peers.sh)".into())
            }
            Target::KafkaConnect if corpus.files.len() != 1 => {
                Some("skipped: FileStreamSource reads a single file".into())
            }
            Target::KafkaConnect => None,
            t if t.is_filebeat() && self.filebeat.is_none() => {
                Some("skipped: not installed (scripts/install-peers.sh, FILEBEAT_BIN or PATH)".into())
            }
            Target::Vector if self.vector.is_none() => Some("skipped: not installed (VECTOR_BIN or PATH)".into()),
            Target::FluentBit if self.fluent_bit.is_none() => {
                Some("skipped: not installed (FLUENT_BIT_BIN or PATH)".into())
            }
            Target::Filebeat
            | Target::FilebeatJson
            | Target::FilebeatTuned
            | Target::FilebeatDisk
            | Target::Vector
            | Target::FluentBit => None,
        }
    }

    /// The command that runs target `t` on `files` (one glob or file list) into `topic`.
    pub fn command(
        &self,
        t: Target,
        files: &Input,
        bootstrap: &str,
        topic: &str,
        s: &Settings,
        work: &Path,
    ) -> Command {
        let mut cmd = match t {
            Target::AgentRaw | Target::AgentJson | Target::BaseRaw | Target::BaseJson => {
                let codec = if matches!(t, Target::AgentRaw | Target::BaseRaw) { "raw" } else { "json" };
                let bin = if t.is_base() { self.base.as_deref().expect("checked by skip_reason") } else { &self.agent };
                let parser = if files.container { "    parsers:\n      - container: ~\n" } else { "" };
                self.agent_command(bin, files, bootstrap, topic, s, codec, work, parser, "")
            }
            Target::Ceiling | Target::CeilingId => {
                let mut c = Command::new(&self.bench);
                c.arg("ceiling").args(["--bootstrap", bootstrap, "--topic", topic]);
                if t == Target::CeilingId {
                    c.arg("--id-header");
                }
                c.args(["--partitions", &s.partitions.to_string(), "--level", &s.level.to_string()]);
                c.args(["--acks", &s.acks.to_string(), "--batch", &s.batch.to_string()]);
                c.args(["--linger-ms", &s.linger_ms.to_string()]);
                c.args(files.paths.iter().map(|p| p.to_str().unwrap()));
                c
            }
            Target::KafkaConnect => connect_command(self, files, bootstrap, topic, s, work),
            Target::Filebeat | Target::FilebeatJson | Target::FilebeatTuned | Target::FilebeatDisk => {
                let cfg = filebeat_config(files, bootstrap, topic, s, work, t);
                let mut c = Command::new(self.filebeat.as_ref().unwrap());
                c.args(["-c", cfg.to_str().unwrap(), "--path.data", work.join("fb-data").to_str().unwrap(), "-e"]);
                // Its own home: no module directory or log files beside the binary.
                c.args(["--path.home", work.to_str().unwrap()]);
                c
            }
            Target::Vector => {
                let cfg = vector_config(files, bootstrap, topic, s, work);
                let mut c = Command::new(self.vector.as_ref().unwrap());
                c.args(["--config", cfg.to_str().unwrap(), "--quiet"]);
                c
            }
            Target::FluentBit => {
                let cfg = fluent_bit_config(files, bootstrap, topic, s, work);
                let mut c = Command::new(self.fluent_bit.as_ref().unwrap());
                c.args(["-c", cfg.to_str().unwrap()]);
                c
            }
        };
        cmd.stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(work.join(format!("{t:?}.log"))).expect("target log file")));
        cmd
    }
}

/// What a target reads: a glob (for tailing tools) and the concrete files (for the ceiling).
pub struct Input {
    pub glob: String,
    pub paths: Vec<PathBuf>,
    /// Docker json-file lines: read through Filebeat's `container` parser (agent and Filebeat).
    pub container: bool,
}

fn write(work: &Path, name: &str, text: String) -> PathBuf {
    let p = work.join(name);
    std::fs::write(&p, text).expect("write target config");
    p
}

impl Tools {
    /// The agent on `files` with extra input keys (`extra_input`, indented as an input's keys) and
    /// extra top-level sections (`tail`).
    #[allow(clippy::too_many_arguments)]
    pub fn agent_command(
        &self,
        bin: &Path,
        files: &Input,
        bootstrap: &str,
        topic: &str,
        s: &Settings,
        codec: &str,
        work: &Path,
        extra_input: &str,
        tail: &str,
    ) -> Command {
        let text = format!(
            r#"path:
  data: "{data}"
logging:
  level: warning
  metrics:
    enabled: false
inputs:
  - id: bench
    paths: ["{glob}"]
    check_interval: 1s
{extra_input}output:
  kafka:
    hosts: ["{bootstrap}"]
    topic: {topic}
    codec: {codec}
    compression: gzip
    compression_level: {level}
    required_acks: {acks}
    bulk_max_size: {batch}
    bulk_flush_frequency: {linger}ms
    event_id: {event_id}
{id_header}{tail}"#,
            data = work.join("agent-data").display(),
            glob = files.glob,
            level = s.level,
            acks = s.acks,
            batch = s.batch,
            linger = s.linger_ms,
            event_id = !s.no_event_id,
            // Only when asked: an older `BASE_AGENT_BIN` does not know the key.
            id_header = if s.no_id_header { "    event_id_header: false\n" } else { "" },
        );
        let cfg = write(work, "agent.yml", text);
        let mut c = Command::new(bin);
        c.args(["--config", cfg.to_str().unwrap()]);
        c
    }
}

fn connect_command(tools: &Tools, files: &Input, bootstrap: &str, topic: &str, s: &Settings, work: &Path) -> Command {
    let cp_file = tools.connect_classpath.as_ref().expect("checked by skip_reason");
    let cp = std::fs::read_to_string(cp_file).expect("classpath").lines().collect::<Vec<_>>().join(":");
    let plugins = work.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let acks = if s.acks == -1 { "all".to_string() } else { s.acks.to_string() };
    let worker = format!(
        r#"bootstrap.servers={bootstrap}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename={offsets}
offset.flush.interval.ms=10000
plugin.path={plugins}
plugin.discovery=service_load
listeners=http://127.0.0.1:{port}
producer.compression.type=gzip
producer.compression.gzip.level={level}
producer.acks={acks}
producer.linger.ms={linger}
producer.batch.size={batch_bytes}
"#,
        offsets = work.join("connect.offsets").display(),
        plugins = plugins.display(),
        level = s.level,
        linger = s.linger_ms,
        batch_bytes = 1 << 20,
    );
    let source = format!(
        r#"name=bench-file-source
connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector
tasks.max=1
file={file}
topic={topic}
batch.size={batch}
"#,
        file = files.paths[0].display(),
        batch = s.batch,
    );
    let w = write(work, "worker.properties", worker);
    let src = write(work, "source.properties", source);
    let mut c = Command::new("java");
    c.args(["-cp", &cp, "org.apache.kafka.connect.cli.ConnectStandalone"]).arg(w).arg(src);
    c
}

fn filebeat_config(files: &Input, bootstrap: &str, topic: &str, s: &Settings, work: &Path, t: Target) -> PathBuf {
    let codec = if t == Target::FilebeatJson { "" } else { "  codec.format:\n    string: '%{[message]}'\n" };
    // FILEBEAT_TUNED, as settings.
    let tuned = if t == Target::FilebeatTuned {
        format!(
            "  worker: 4\nqueue.mem:\n  events: {events}\n  flush.min_events: {batch}\n  flush.timeout: 1s\n",
            events = 2 * 4 * s.batch,
            batch = s.batch
        )
    } else if t == Target::FilebeatDisk {
        // In `path.data` (the target's own directory), bounded well above what a run writes.
        "queue.disk:\n  max_size: 2GB\n".to_string()
    } else {
        String::new()
    };
    let parser = if files.container { "  parsers:\n    - container: ~\n" } else { "" };
    let text = format!(
        r#"filebeat.inputs:
- type: filestream
  id: bench
  paths: ["{glob}"]
  prospector.scanner.check_interval: 1s
{parser}output.kafka:
  hosts: ["{bootstrap}"]
  topic: {topic}
  partition.round_robin:
    reachable_only: false
  compression: gzip
  compression_level: {level}
  required_acks: {acks}
  bulk_max_size: {batch}
{codec}{tuned}logging.level: warning
"#,
        glob = files.glob,
        level = s.level,
        acks = s.acks,
        batch = s.batch,
    );
    write(work, "filebeat.yml", text)
}

fn vector_config(files: &Input, bootstrap: &str, topic: &str, s: &Settings, work: &Path) -> PathBuf {
    let data = work.join("vector-data");
    std::fs::create_dir_all(&data).expect("vector data dir");
    let text = format!(
        r#"data_dir = "{data}"
[sources.f]
type = "file"
include = ["{glob}"]
read_from = "beginning"
[sinks.k]
type = "kafka"
inputs = ["f"]
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
compression = "gzip"
encoding.codec = "text"
[sinks.k.librdkafka_options]
"compression.level" = "{level}"
"acks" = "{acks}"
"batch.num.messages" = "{batch}"
"linger.ms" = "{linger}"
"#,
        data = data.display(),
        glob = files.glob,
        level = s.level,
        acks = s.acks,
        batch = s.batch,
        linger = s.linger_ms,
    );
    write(work, "vector.toml", text)
}

fn fluent_bit_config(files: &Input, bootstrap: &str, topic: &str, s: &Settings, work: &Path) -> PathBuf {
    let text = format!(
        r#"[SERVICE]
    flush 1
    log_level warn
[INPUT]
    name tail
    path {glob}
    read_from_head true
    refresh_interval 1
    db {db}
[OUTPUT]
    name kafka
    match *
    brokers {bootstrap}
    topics {topic}
    format raw
    raw_log_key log
    rdkafka.compression.codec gzip
    rdkafka.compression.level {level}
    rdkafka.request.required.acks {acks}
    rdkafka.batch.num.messages {batch}
    rdkafka.linger.ms {linger}
"#,
        glob = files.glob,
        db = work.join("fluent-bit.db").display(),
        level = s.level,
        acks = s.acks,
        batch = s.batch,
        linger = s.linger_ms,
    );
    write(work, "fluent-bit.conf", text)
}
