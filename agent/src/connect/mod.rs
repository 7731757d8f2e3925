//! Kafka Connect standalone compatibility: a worker `.properties` file and FileStreamSource /
//! FileStreamSink connector files become an `agent.yml`.
//!
//! Owns the mapping from Connect keys to agent keys. `agent connect-standalone` runs the YAML this
//! module writes and `agent convert-connect` prints it, so both always agree. Invariants: every
//! key of every file is either mapped or refused with its file, line and a reason (never ignored
//! silently; `plugin.path` is the one accepted key with no effect, and the YAML says so); relative
//! paths are resolved against the current directory, as Connect resolves them.

pub mod properties;

use properties::{Properties, PropertiesError, Property};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    #[error("{path}{line}: {key}: {message}", path = path.display(), line = line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { path: PathBuf, line: Option<usize>, key: String, message: String },
}

const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
const SOURCE_CLASSES: &[&str] =
    &["FileStreamSource", "FileStreamSourceConnector", "org.apache.kafka.connect.file.FileStreamSourceConnector"];
const SINK_CLASSES: &[&str] =
    &["FileStreamSink", "FileStreamSinkConnector", "org.apache.kafka.connect.file.FileStreamSinkConnector"];
const WORKER_KEYS: &[&str] = &[
    "bootstrap.servers",
    "key.converter",
    "value.converter",
    "key.converter.schemas.enable",
    "value.converter.schemas.enable",
    "offset.storage.file.filename",
    "offset.flush.interval.ms",
    "plugin.path",
];
const CONNECTOR_KEYS: &[&str] = &[
    "name",
    "connector.class",
    "tasks.max",
    "file",
    "topic",
    "topics",
    "topics.regex",
    "batch.size",
    "key.converter",
    "value.converter",
    "key.converter.schemas.enable",
    "value.converter.schemas.enable",
];

/// How a record value is (de)serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Converter {
    String,
    Json { schemas: bool },
}

impl Converter {
    /// The `output.kafka.codec` for sources.
    fn codec(self) -> &'static str {
        match self {
            Converter::String => "raw",
            Converter::Json { schemas: true } => "connect_json",
            Converter::Json { schemas: false } => "connect_json_schemaless",
        }
    }
    /// The sink `format`.
    fn format(self) -> &'static str {
        match self {
            Converter::String => "value",
            other => other.codec(),
        }
    }
}

struct Worker {
    hosts: Vec<String>,
    value: Converter,
    data: PathBuf,
    offsets_file: PathBuf,
    flush_ms: Option<u64>,
    plugin_path: bool,
}

enum Kind {
    Source { topic: String, batch_size: Option<usize> },
    Sink { topics: Vec<String>, regex: Option<String> },
}

struct Connector {
    name: String,
    path: PathBuf,
    file: PathBuf,
    kind: Kind,
    value: Converter,
}

/// Reads the worker file and the connector files and writes the equivalent `agent.yml`.
pub fn translate(worker: &Path, connectors: &[PathBuf]) -> Result<String, ConnectError> {
    let worker_props = Properties::load(worker)?;
    let w = parse_worker(&worker_props)?;
    let mut parsed: Vec<Connector> = Vec::new();
    for path in connectors {
        let c = parse_connector(&Properties::load(path)?, &w)?;
        if let Some(prev) = parsed.iter().find(|p| p.name == c.name) {
            return Err(invalid(
                path,
                None,
                "name",
                format!("{:?} is also the name in {}", c.name, prev.path.display()),
            ));
        }
        parsed.push(c);
    }
    if parsed.is_empty() {
        return Err(invalid(worker, None, "connectors", "give at least one connector .properties file".into()));
    }
    write_yaml(worker, connectors, &w, &parsed)
}

fn invalid(path: &Path, line: Option<usize>, key: &str, message: String) -> ConnectError {
    ConnectError::Invalid { path: path.to_path_buf(), line, key: key.to_string(), message }
}

fn at(props: &Properties, p: &Property, message: impl Into<String>) -> ConnectError {
    invalid(&props.path, Some(p.line), &p.key, message.into())
}

fn required<'a>(props: &'a Properties, key: &str, why: &str) -> Result<&'a Property, ConnectError> {
    match props.get(key) {
        Some(p) if !p.value.trim().is_empty() => Ok(p),
        Some(p) => Err(at(props, p, format!("must not be empty{why}"))),
        None => Err(invalid(&props.path, None, key, format!("is required{why}"))),
    }
}

fn refuse_unknown(props: &Properties, known: &[&str], what: &str) -> Result<(), ConnectError> {
    match props.entries.iter().find(|p| !known.contains(&p.key.as_str())) {
        Some(p) => Err(at(
            props,
            p,
            format!("is not supported in a {what} file (supported: {}); remove it or see the README", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A key's value as a number of at least 1; `None` when the key is not set.
fn positive<N: std::str::FromStr + PartialOrd + From<u8>>(
    props: &Properties,
    key: &str,
    what: &str,
) -> Result<Option<N>, ConnectError> {
    let Some(p) = props.get(key) else { return Ok(None) };
    match p.value.trim().parse::<N>() {
        Ok(n) if n >= N::from(1) => Ok(Some(n)),
        _ => Err(at(props, p, format!("must be {what}"))),
    }
}

/// Kafka Connect's list type: comma-separated, blanks trimmed, empty items dropped.
fn comma_list(value: &str) -> Vec<String> {
    value.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
}

fn parse_worker(props: &Properties) -> Result<Worker, ConnectError> {
    refuse_unknown(props, WORKER_KEYS, "worker")?;
    let hosts = required(props, "bootstrap.servers", "")?;
    let hosts = comma_list(&hosts.value);
    let offsets = required(props, "offset.storage.file.filename", " (standalone mode stores source offsets there)")?;
    let offsets_file = absolute(&offsets.value);
    let mut data = offsets_file.clone().into_os_string();
    data.push(".agent");
    let flush_ms = positive::<u64>(props, "offset.flush.interval.ms", "a positive number of milliseconds")?;
    // Keys are always null (FileStreamSource sets none), but a bad key converter is still a mistake.
    converter(props, "key", None)?;
    let value = converter(props, "value", None)?.unwrap_or(Converter::Json { schemas: true });
    Ok(Worker {
        hosts,
        value,
        data: PathBuf::from(data),
        offsets_file,
        flush_ms,
        plugin_path: props.get("plugin.path").is_some(),
    })
}

/// Reads `<side>.converter` and `<side>.converter.schemas.enable`; `None` when not set here.
fn converter(props: &Properties, side: &str, inherited: Option<Converter>) -> Result<Option<Converter>, ConnectError> {
    let schemas = match props.get(&format!("{side}.converter.schemas.enable")) {
        Some(p) => Some(match p.value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(at(props, p, "must be true or false")),
        }),
        None => None,
    };
    let class = props.get(&format!("{side}.converter"));
    let conv = match class {
        None => match (inherited, schemas) {
            (Some(Converter::Json { .. }), Some(s)) => Some(Converter::Json { schemas: s }),
            (inherited, _) => inherited,
        },
        Some(p) => match p.value.trim() {
            STRING_CONVERTER | "StringConverter" => Some(Converter::String),
            // JsonConverter's schemas.enable defaults to true.
            JSON_CONVERTER | "JsonConverter" => Some(Converter::Json { schemas: schemas.unwrap_or(true) }),
            other => {
                return Err(at(
                    props,
                    p,
                    format!("converter {other} is not supported (StringConverter and JsonConverter are)"),
                ))
            }
        },
    };
    Ok(conv)
}

fn parse_connector(props: &Properties, w: &Worker) -> Result<Connector, ConnectError> {
    refuse_unknown(props, CONNECTOR_KEYS, "connector")?;
    let name = required(props, "name", "")?.value.trim().to_string();
    let class = required(props, "connector.class", "")?;
    let is_source = if SOURCE_CLASSES.contains(&class.value.trim()) {
        true
    } else if SINK_CLASSES.contains(&class.value.trim()) {
        false
    } else {
        return Err(at(
            props,
            class,
            format!("unknown connector class {:?}: only FileStreamSource and FileStreamSink can run here", class.value),
        ));
    };
    positive::<u32>(props, "tasks.max", "a positive integer")?;
    let stdio = if is_source { "stdin" } else { "stdout" };
    let file =
        required(props, "file", &format!(" (Kafka Connect would use {stdio} without it; the agent needs a file)"))?;
    let only = |key: &str, kind: &str| match props.get(key) {
        Some(p) => Err(at(props, p, format!("only applies to FileStream{kind} connectors"))),
        None => Ok(()),
    };
    let kind = if is_source {
        only("topics", "Sink")?;
        only("topics.regex", "Sink")?;
        let topic = required(props, "topic", "")?.value.trim().to_string();
        let batch_size = positive::<usize>(props, "batch.size", "a positive integer")?;
        Kind::Source { topic, batch_size }
    } else {
        only("topic", "Source")?;
        only("batch.size", "Source")?;
        let topics = props.get("topics").map_or(Vec::new(), |p| comma_list(&p.value));
        let regex = props.get("topics.regex").map(|p| p.value.trim().to_string()).filter(|r| !r.is_empty());
        match (topics.is_empty(), &regex) {
            (true, None) => return Err(invalid(&props.path, None, "topics", "is required (or topics.regex)".into())),
            (false, Some(_)) => {
                return Err(at(props, props.get("topics.regex").expect("set"), "give either topics or topics.regex"))
            }
            _ => {}
        }
        Kind::Sink { topics, regex }
    };
    converter(props, "key", None)?;
    let value = converter(props, "value", Some(w.value))?.unwrap_or(w.value);
    Ok(Connector { name, path: props.path.clone(), file: absolute(&file.value), kind, value })
}

fn absolute(p: &str) -> PathBuf {
    let p = Path::new(p.trim());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// A string as a YAML scalar (JSON's double-quoted strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn q_path(p: &Path) -> String {
    q(&p.to_string_lossy())
}

/// A connector name as an agent id: letters, digits, `.`, `_` and `-` are kept.
fn id_of(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

/// A YAML flow list of quoted strings.
fn q_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|t| q(t)).collect::<Vec<_>>().join(", "))
}

fn write_yaml(worker: &Path, files: &[PathBuf], w: &Worker, connectors: &[Connector]) -> Result<String, ConnectError> {
    use std::fmt::Write as _;
    let mut y = String::new();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let _ = writeln!(y, "# Generated by `agent convert-connect` from {} and {}.", worker.display(), names.join(", "));
    let _ = writeln!(
        y,
        "path:\n  # Next to offset.storage.file.filename ({}), which is left untouched.",
        w.offsets_file.display()
    );
    let _ = writeln!(y, "  data: {}", q_path(&w.data));
    if w.plugin_path {
        let _ = writeln!(y, "# plugin.path is not needed: the FileStream connectors are built in.");
    }
    if let Some(ms) = w.flush_ms {
        let _ = writeln!(y, "registry:\n  flush: {ms}ms  # offset.flush.interval.ms");
    }
    let sources: Vec<(&Connector, &str, Option<usize>)> = connectors
        .iter()
        .filter_map(|c| match &c.kind {
            Kind::Source { topic, batch_size } => Some((c, topic.as_str(), *batch_size)),
            Kind::Sink { .. } => None,
        })
        .collect();
    if !sources.is_empty() {
        write_sources(&mut y, w, &sources, worker)?;
    }
    write_sinks(&mut y, w, connectors);
    Ok(y)
}

fn write_sinks(y: &mut String, w: &Worker, connectors: &[Connector]) {
    use std::fmt::Write as _;
    let mut header = false;
    for c in connectors {
        let Kind::Sink { topics, regex } = &c.kind else { continue };
        if !std::mem::replace(&mut header, true) {
            let _ = writeln!(y, "sinks:");
        }
        let _ = writeln!(y, "  - id: {}  # {}", q(&id_of(&c.name)), c.path.display());
        match regex {
            Some(r) => _ = writeln!(y, "    topics_pattern: {}", q(r)),
            None => _ = writeln!(y, "    topics: {}", q_list(topics)),
        }
        let _ = writeln!(y, "    file: {}", q_path(&c.file));
        let _ = writeln!(y, "    hosts: {}", q_list(&w.hosts));
        let _ = writeln!(
            y,
            "    group_id: {}  # Kafka Connect's group for this connector",
            q(&format!("connect-{}", c.name))
        );
        let _ = writeln!(y, "    format: {}", c.value.format());
        if let Some(ms) = w.flush_ms {
            let _ = writeln!(y, "    commit_interval: {ms}ms  # offset.flush.interval.ms");
        }
    }
}

/// Writes `inputs` and `output.kafka` for the source connectors: (connector, topic, batch.size).
fn write_sources(
    y: &mut String,
    w: &Worker,
    sources: &[(&Connector, &str, Option<usize>)],
    worker: &Path,
) -> Result<(), ConnectError> {
    use std::fmt::Write as _;
    let (first, first_topic, _) = sources[0];
    let codec = first.value;
    if let Some((other, ..)) = sources.iter().find(|(c, ..)| c.value != codec) {
        return Err(invalid(
            &other.path,
            None,
            "value.converter",
            format!(
                "differs from {}'s; all FileStreamSource connectors of one agent must use the same converter",
                first.path.display()
            ),
        ));
    }
    let one_topic = sources.iter().all(|(_, topic, _)| *topic == first_topic);
    let _ = writeln!(y, "inputs:");
    for (c, topic, _) in sources {
        let _ = writeln!(y, "  - id: {}  # {}", q(&id_of(&c.name)), c.path.display());
        let _ = writeln!(y, "    paths: [{}]", q_path(&c.file));
        if !one_topic {
            let _ = writeln!(y, "    fields: {{connect_topic: {}}}", q(topic));
        }
    }
    let _ = writeln!(y, "output:\n  kafka:");
    let _ = writeln!(y, "    hosts: {}", q_list(&w.hosts));
    if one_topic {
        let _ = writeln!(y, "    topic: {}", q(first_topic));
    } else {
        let _ = writeln!(y, "    topic: \"%{{[fields.connect_topic]}}\"");
    }
    let _ = writeln!(y, "    codec: {}  # value.converter of {}", codec.codec(), worker.display());
    if let Some(b) = sources.iter().filter_map(|(_, _, batch)| *batch).max() {
        let _ = writeln!(y, "    bulk_max_size: {b}  # batch.size");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, worker: &str, connectors: &[&str]) -> (PathBuf, Vec<PathBuf>) {
        let w = dir.join("worker.properties");
        std::fs::write(&w, worker).unwrap();
        let cs = connectors
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let p = dir.join(format!("c{i}.properties"));
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect();
        (w, cs)
    }

    const WORKER: &str = "bootstrap.servers=localhost:9092\noffset.storage.file.filename=/tmp/connect.offsets\n";

    fn translated(worker: &str, connectors: &[&str]) -> Result<crate::config::Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let (w, cs) = files(dir.path(), worker, connectors);
        let yaml = translate(&w, &cs).map_err(|e| e.to_string())?;
        crate::config::Config::from_str_at(&yaml, Path::new("generated.yml")).map_err(|e| format!("{e}\n{yaml}"))
    }

    #[test]
    fn converters_choose_codec_and_format() {
        let src = "name=s\nconnector.class=FileStreamSource\nfile=/tmp/in.txt\ntopic=t\n";
        let sink = "name=k\nconnector.class=FileStreamSink\nfile=/tmp/out.txt\ntopics=t\n";
        let c = translated(WORKER, &[src, sink]).unwrap();
        assert_eq!(c.kafka().unwrap().codec, crate::config::Codec::ConnectJson);
        assert_eq!(c.sinks[0].format, crate::config::SinkFormat::ConnectJson);
        assert_eq!(c.sinks[0].group_id, "connect-k");
        let worker = format!("{WORKER}value.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=false\n");
        let c = translated(&worker, &[src, sink]).unwrap();
        assert_eq!(c.kafka().unwrap().codec, crate::config::Codec::ConnectJsonSchemaless);
        let sink_string = format!("{sink}value.converter=org.apache.kafka.connect.storage.StringConverter\n");
        let c = translated(&worker, &[&sink_string]).unwrap();
        assert_eq!(c.sinks[0].format, crate::config::SinkFormat::Value);
        assert!(c.kafka().is_none() && c.inputs.is_empty());
    }

    #[test]
    fn several_sources_route_by_topic_field() {
        let a = "name=a\nconnector.class=FileStreamSource\nfile=/tmp/a.txt\ntopic=ta\nbatch.size=500\n";
        let b = "name=b\nconnector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\nfile=/tmp/b.txt\ntopic=tb\n";
        let c = translated(WORKER, &[a, b]).unwrap();
        assert_eq!(c.kafka().unwrap().topic.as_str(), "%{[fields.connect_topic]}");
        assert_eq!(c.inputs[1].fields["connect_topic"], "tb");
        assert_eq!(c.kafka().unwrap().bulk_max_size, 500);
        assert_eq!(c.path.data, Path::new("/tmp/connect.offsets.agent"));
    }

    #[test]
    fn bad_input_names_the_file_key_and_line() {
        let err =
            translated(WORKER, &["name=x\nconnector.class=JdbcSinkConnector\nfile=/tmp/o\ntopics=t\n"]).unwrap_err();
        assert!(err.ends_with("c0.properties:2: connector.class: unknown connector class \"JdbcSinkConnector\": only FileStreamSource and FileStreamSink can run here"), "{err}");
        let err = translated(WORKER, &["name=x\nconnector.class=FileStreamSink\ntopics=t\n"]).unwrap_err();
        assert!(err.contains("c0.properties: file: is required (Kafka Connect would use stdout"), "{err}");
        let err = translated(
            &format!("{WORKER}rest.port=8083\n"),
            &["name=x\nconnector.class=FileStreamSink\nfile=/tmp/o\ntopics=t\n"],
        )
        .unwrap_err();
        assert!(err.contains("worker.properties:3: rest.port: is not supported in a worker file"), "{err}");
        let err = translated(WORKER, &["name=x\nconnector.class=FileStreamSource\nfile=/tmp/o\ntopic=t\ntopics=u\n"])
            .unwrap_err();
        assert!(err.contains("c0.properties:5: topics: only applies to FileStreamSink connectors"), "{err}");
        let err =
            translated(&format!("{WORKER}value.converter=io.confluent.connect.avro.AvroConverter\n"), &[]).unwrap_err();
        assert!(err.contains("worker.properties:3: value.converter: converter io.confluent.connect.avro.AvroConverter is not supported"), "{err}");
        let err = translated(WORKER, &["name=x\nconnector.class=FileStreamSink\nfile=/tmp/o\ntopics=t\ntasks.max=0\n"])
            .unwrap_err();
        assert!(err.contains("c0.properties:5: tasks.max: must be a positive integer"), "{err}");
    }
}
