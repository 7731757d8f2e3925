//! A Filebeat user's `filebeat.yml`, as it is: the `filebeat.` namespace, `type: log` inputs
//! (and Filebeat 5.x/6.x `filebeat.prospectors`), filestream's `prospector.scanner.*` names, the
//! other outputs switched off, and the sections that change nothing about shipping lines.
//!
//! Owns the translation of a libbeat-shaped [`Node`] tree into the agent's schema, done on the
//! tree after dotted keys and references are expanded and before it is typed, so every moved key
//! keeps the line the user wrote. Invariant: each Filebeat key is either moved to the agent key
//! with the same meaning, accepted and listed in a [`Note`] (it changes nothing here, or is
//! applied differently, and the note says which), or reported as an error naming the key and its
//! line; none is dropped silently.

use super::tree::{merge_entry, Entry, Node, TreeError, Value};

/// A Filebeat setting accepted without effect, or applied differently: logged once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub key: String,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (line {}): {}", self.key, self.line, self.what)
    }
}

/// What translating found: notes to log, and errors.
#[derive(Debug, Default)]
pub struct Translation {
    pub notes: Vec<Note>,
    pub errors: Vec<TreeError>,
}

impl Translation {
    fn note(&mut self, key: impl Into<String>, line: usize, what: impl Into<String>) {
        self.notes.push(Note { key: key.into(), line, what: what.into() });
    }

    fn error(&mut self, key: impl Into<String>, line: usize, message: impl Into<String>) {
        self.errors.push(TreeError { line, key: Some(key.into()), message: message.into() });
    }
}

/// Top-level sections that configure Filebeat's other jobs (Elasticsearch set-up, monitoring,
/// module loading, process tuning): nothing about reading files or writing to Kafka.
const IGNORED_SECTIONS: &[(&str, &str)] = &[
    ("setup", "Elasticsearch/Kibana set-up (templates, dashboards, ILM) is not done by the agent"),
    ("monitoring", "the agent's own metrics are on its HTTP endpoint and in its log"),
    ("xpack", "X-Pack monitoring is not sent by the agent"),
    ("max_procs", "the agent sizes its threads itself"),
    ("seccomp", "the agent's systemd unit carries its own system call filter"),
    ("migration", "Elasticsearch index migration settings"),
    ("cloud", "Elastic Cloud credentials are for the Elasticsearch output"),
    ("timestamp", "events carry millisecond timestamps, as Filebeat's default precision"),
];

/// Where the file being translated lives and how `${...}` resolves outside it: for the input
/// files `filebeat.config.inputs` loads.
pub struct Context<'a> {
    /// The config file's directory (relative input file globs start there).
    pub dir: &'a std::path::Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Translates the tree in place. `from_filebeat` inputs (`filebeat.inputs`) default to
/// `type: log`, as in Filebeat; the agent's own `inputs` default to filestream.
pub fn translate(root: &mut Node, cx: &Context<'_>) -> Translation {
    let mut t = Translation::default();
    let mut inputs: Vec<(Node, &str, String)> =
        take_list(root, "inputs", &mut t).into_iter().map(|n| (n, "filestream", "inputs".to_string())).collect();
    let mut loaded = Vec::new();
    if let Some(fb) = root.remove("filebeat") {
        let (listed, external) = filebeat_namespace(root, fb, &mut t);
        inputs.extend(listed.into_iter().map(|(n, d, f)| (n, d, f.to_string())));
        for e in external {
            let reload = e.node.get("reload").filter(|r| flag(r.get("enabled")) == Some(true)).cloned();
            loaded.extend(input_files(root, e, cx, &mut t));
            if let Some(r) = reload {
                // Filebeat re-reads its input files every `reload.period` (10 s by default).
                let period = r.get("period").cloned().unwrap_or_else(|| Node::scalar(r.line, "10s", false));
                t.note("filebeat.config.inputs.reload", r.line, "applied as reload.period: the config file and its input files are read again every period and what changed is applied, as a SIGHUP does");
                set(root, &["reload", "period"], Entry { key: "period".into(), line: period.line, node: period });
            }
        }
    }
    for (name, why) in IGNORED_SECTIONS {
        if let Some(e) = root.remove(name) {
            t.note(*name, e.line, format!("accepted, not applied: {why}"));
        }
    }
    paths(root, &mut t);
    logging(root, &mut t);
    queue(root, &mut t);
    outputs(root, &mut t);
    inactive_processors(root, "processors", &mut t);
    let mut out = Vec::new();
    let mut ids = Vec::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (node, default_type, from) in inputs {
        let i = match counts.iter_mut().find(|(f, _)| *f == from) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                counts.push((from.clone(), 1));
                0
            }
        };
        let at = format!("{from}[{i}]");
        if let Some(n) = input(node, default_type, &at, &mut ids, &mut t) {
            out.push(n);
        }
    }
    // Inputs from `filebeat.config.inputs` files, translated and checked where they were read.
    out.extend(loaded);
    if !out.is_empty() {
        let line = out[0].line;
        root.as_map_mut().expect("the root is a map").push(Entry {
            key: "inputs".into(),
            line,
            node: Node { line, value: Value::Seq(out) },
        });
    }
    t
}

/// A list under `key` taken out of `node` (an empty or missing one is no list).
fn take_list(node: &mut Node, key: &str, t: &mut Translation) -> Vec<Node> {
    match node.remove(key) {
        Some(Entry { node: Node { value: Value::Seq(items), .. }, .. }) => items,
        Some(e) if e.node.is_null() => Vec::new(),
        Some(e) => {
            t.error(key, e.line, "needs a list");
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// The inputs a Filebeat file lists, each with its default type and where it was listed.
type Listed = Vec<(Node, &'static str, &'static str)>;

/// `filebeat.*`: inputs (and 6.x prospectors) come back to be translated, and the
/// `filebeat.config.inputs` settings to load; the rest moves to the agent's keys or is noted.
fn filebeat_namespace(root: &mut Node, fb: Entry, t: &mut Translation) -> (Listed, Vec<Entry>) {
    let Value::Map(entries) = fb.node.value else {
        t.error("filebeat", fb.line, "needs a map of settings");
        return (Vec::new(), Vec::new());
    };
    let mut inputs = Vec::new();
    let mut external = Vec::new();
    for e in entries {
        let key = format!("filebeat.{}", e.key);
        match e.key.as_str() {
            "inputs" | "prospectors" => {
                if e.key == "prospectors" {
                    t.note(
                        &key,
                        e.line,
                        "Filebeat 5.x/6.x prospectors are read as filebeat.inputs (`input_type` as `type`)",
                    );
                }
                let mut wrapper = Node::map(e.line, vec![e]);
                let from = if key.ends_with("inputs") { "filebeat.inputs" } else { "filebeat.prospectors" };
                let list = take_list(&mut wrapper, from.trim_start_matches("filebeat."), t);
                inputs.extend(list.into_iter().map(|n| (n, "log", from)));
            }
            "registry" => registry(root, e, t),
            "registry_file" | "registry_flush" => {
                let to = if e.key == "registry_flush" { "flush" } else { "" };
                if to.is_empty() {
                    t.note(
                        &key,
                        e.line,
                        "Filebeat 6.x registry file: not read; the agent keeps its own registry under path.data",
                    );
                } else {
                    set(root, &["registry", to], e);
                }
            }
            "shutdown_timeout" => set(root, &["shutdown_timeout"], e),
            "config" => external.extend(config_loading(e, t)),
            "modules" => {
                let enabled = match &e.node.value {
                    Value::Seq(items) => items.iter().any(|m| flag(m.get("enabled")) != Some(false)),
                    _ => !e.node.is_null(),
                };
                if enabled {
                    t.error(
                        &key,
                        e.line,
                        "Filebeat modules are not run by the agent; configure their log files as inputs",
                    );
                } else {
                    t.note(&key, e.line, "accepted, not applied: every module listed is disabled");
                }
            }
            "overwrite_pipelines" => t.note(&key, e.line, "accepted, not applied: Elasticsearch ingest pipelines"),
            _ => t.error(&key, e.line, "unknown Filebeat setting (or one the agent does not support)"),
        }
    }
    (inputs, external)
}

/// `filebeat.registry.*`: `path` and `flush` are the agent's; the file's mode is always 0600.
fn registry(root: &mut Node, e: Entry, t: &mut Translation) {
    let Value::Map(entries) = e.node.value else {
        t.error("filebeat.registry", e.line, "needs a map of settings");
        return;
    };
    for r in entries {
        let key = format!("filebeat.registry.{}", r.key);
        match r.key.as_str() {
            "path" | "flush" => {
                let k = r.key.clone();
                set(root, &["registry", &k], r);
            }
            "file_permissions" => {
                let mode = r.node.as_scalar().map(|s| s.text.clone()).unwrap_or_default();
                if mode.trim_start_matches('0') != "600" {
                    t.note(
                        &key,
                        r.line,
                        format!("not applied: the registry is always written with mode 0600, not {mode}"),
                    );
                }
            }
            "migrate_file" => t.note(&key, r.line, "accepted, not applied: Filebeat's own registry migration"),
            _ => t.error(&key, r.line, "unknown Filebeat registry setting"),
        }
    }
}

/// `filebeat.config.{inputs,modules}`: module loading changes nothing; enabled `inputs` come
/// back to be loaded ([`input_files`]).
fn config_loading(e: Entry, t: &mut Translation) -> Option<Entry> {
    let Value::Map(entries) = e.node.value else { return None };
    let mut inputs = None;
    for c in entries {
        let key = format!("filebeat.config.{}", c.key);
        let enabled = flag(c.node.get("enabled")) != Some(false);
        match c.key.as_str() {
            "modules" => t.note(&key, c.line, "accepted, not applied: Filebeat modules are not run by the agent"),
            "inputs" if enabled => inputs = Some(c),
            "inputs" => t.note(&key, c.line, "accepted, not applied: disabled"),
            _ => t.error(&key, c.line, "unknown Filebeat setting"),
        }
    }
    inputs
}

/// `filebeat.config.inputs`: every file its `path` glob matches (default
/// `${path.config}/inputs.d/*.yml`) is a YAML list of inputs, read now (and again at every reload)
/// and checked on its own, so a problem in one is reported with that file's name and line.
fn input_files(root: &Node, e: Entry, cx: &Context<'_>, t: &mut Translation) -> Vec<Node> {
    let at = "filebeat.config.inputs";
    let pattern = match e.node.get("path").and_then(Node::as_scalar) {
        Some(p) => match super::tree::expand_str(&p.text, root, cx.env) {
            Ok(p) => p,
            Err(message) => {
                t.error(format!("{at}.path"), e.line, message);
                return Vec::new();
            }
        },
        None => format!("{}/inputs.d/*.yml", cx.dir.display()),
    };
    let pattern =
        if std::path::Path::new(&pattern).is_relative() { format!("{}/{pattern}", cx.dir.display()) } else { pattern };
    let files: Vec<std::path::PathBuf> = match glob::glob(&pattern) {
        Ok(paths) => paths.flatten().collect(),
        Err(err) => {
            t.error(format!("{at}.path"), e.line, format!("invalid glob {pattern:?}: {err}"));
            return Vec::new();
        }
    };
    if files.is_empty() {
        t.note(format!("{at}.path"), e.line, format!("no input file matches {pattern:?} yet"));
    }
    let mut out = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) => {
                t.error(&name, 1, format!("cannot read this input file: {err}"));
                continue;
            }
        };
        let mut list = match super::tree::parse_value(&text) {
            Ok(list) => list,
            Err(err) => {
                t.error(&name, err.line, err.message);
                continue;
            }
        };
        super::tree::expand_dots(&mut list);
        for err in super::tree::expand_references(&mut list, &|k| {
            root.lookup(k).and_then(|n| n.as_scalar()).map(|s| s.text.clone()).or_else(|| (cx.env)(k))
        }) {
            t.error(format!("{name}: {}", err.key.unwrap_or_default()), err.line, err.message);
        }
        let Value::Seq(items) = list.value else {
            t.error(&name, list.line, "an input file holds a list of inputs");
            continue;
        };
        for (i, node) in items.into_iter().enumerate() {
            let Some(node) = input(node, "log", &format!("{name}[{i}]"), &mut Vec::new(), t) else { continue };
            // Typed and checked here, so a problem names this file and its line.
            match super::de::from_tree::<super::InputConfig>(&node) {
                Ok(cfg) => match cfg.validate(i) {
                    Ok(()) => out.push(node),
                    Err(inv) => {
                        let key =
                            inv.key.trim_start_matches(&format!("inputs[{i}]")).trim_start_matches('.').to_string();
                        let line = node.line_of(&key).unwrap_or(node.line);
                        t.error(format!("{name}[{i}].{key}"), line, inv.message);
                    }
                },
                Err(errs) => {
                    for err in errs {
                        t.error(format!("{name}[{i}].{}", err.key), err.line.unwrap_or(node.line), err.message);
                    }
                }
            }
        }
    }
    out
}

/// `path.home`, `path.config` describe Filebeat's install; `path.logs` is where its own log files
/// go, which the agent's `logging.files.path` is.
fn paths(root: &mut Node, t: &mut Translation) {
    let Some(path) = root.get("path") else { return };
    if path.as_map().is_none() {
        return;
    }
    let path = root.remove("path").expect("just seen");
    let mut keep = Vec::new();
    for e in path.node.as_map().cloned().unwrap_or_default() {
        match e.key.as_str() {
            "home" | "config" => {
                t.note(format!("path.{}", e.key), e.line, "accepted, not applied: Filebeat's install layout")
            }
            "logs" => {
                let has_files_path =
                    root.get("logging").and_then(|l| l.get("files")).and_then(|f| f.get("path")).is_some();
                if !has_files_path {
                    set(root, &["logging", "files", "path"], e);
                }
            }
            _ => keep.push(e),
        }
    }
    if !keep.is_empty() {
        root.as_map_mut().expect("root map").push(Entry {
            key: "path".into(),
            line: path.line,
            node: Node::map(path.line, keep),
        });
    }
}

/// Filebeat's logging keys the agent does not have: a value that is Filebeat's default changes
/// nothing and goes quietly; another is noted as not applied.
fn logging(root: &mut Node, t: &mut Translation) {
    let Some(logging) = root.get_mut("logging") else { return };
    let quiet_when = [
        ("to_syslog", "false", "the agent logs to stderr (the journal under systemd) and to files"),
        ("to_eventlog", "false", "there is no Windows event log here"),
        ("ecs", "false", "the agent's log lines are text, or JSON with logging.json, not ECS"),
    ];
    for (key, default, why) in quiet_when {
        if let Some(e) = logging.remove(key) {
            let text = e.node.as_scalar().map(|s| s.text.clone()).unwrap_or_default();
            let is_default = match default {
                "false" => flag(Some(&e.node)) == Some(false),
                _ => e.node.is_null() || matches!(&e.node.value, Value::Seq(v) if v.is_empty()),
            };
            if !is_default {
                t.note(format!("logging.{key}"), e.line, format!("not applied ({text}): {why}"));
            }
        }
    }
    let Some(files) = logging.get_mut("files") else { return };
    for (key, why) in [
        ("rotateonstartup", "the agent's log file is rotated by size or interval only"),
        ("redirect_stderr", "stderr stays stderr"),
    ] {
        if let Some(e) = files.remove(key) {
            t.note(format!("logging.files.{key}"), e.line, format!("accepted, not applied: {why}"));
        }
    }
}

/// `queue.mem.events` bounds the agent's queue too (the key is the agent's);
/// `queue.mem.flush.timeout`, how long Filebeat's queue waits to fill a batch, becomes
/// `output.kafka.bulk_flush_frequency` (librdkafka's `linger.ms`) unless that is set;
/// `flush.min_events` is noted. `queue.disk.*` becomes the spool, which takes over only while
/// Kafka is unreachable.
fn queue(root: &mut Node, t: &mut Translation) {
    let Some(q) = root.get_mut("queue") else { return };
    let mut linger = None;
    if let Some(mem) = q.get_mut("mem") {
        if let Some(e) = mem.get("events") {
            // The default is named from its constant, so the note cannot drift from it.
            let mib = super::DEFAULT_QUEUE_MAX_BYTES.0 >> 20;
            t.note("queue.mem.events", e.line, format!("applied: at most this many events wait in the agent's queue, which queue.mem.max_bytes ({mib} MiB by default) bounds as well; librdkafka's buffer holds more"));
        }
        if let Some(mut flush) = mem.remove("flush") {
            linger = flush.node.remove("timeout");
            if let Some(e) = flush.node.remove("min_events") {
                t.note("queue.mem.flush.min_events", e.line, "accepted, not applied: batches fill up to output.kafka.bulk_max_size or until bulk_flush_frequency passes");
            }
            if let Value::Map(rest) = flush.node.value {
                for e in rest {
                    t.note(format!("queue.mem.flush.{}", e.key), e.line, "accepted, not applied");
                }
            }
        }
        if let Some(e) = mem.remove("immediate_shutdown") {
            t.note(
                "queue.mem.immediate_shutdown",
                e.line,
                "accepted, not applied: at shutdown the agent waits up to shutdown_timeout for acknowledgements",
            );
        }
        if mem.as_map().is_some_and(Vec::is_empty) {
            q.remove("mem");
        }
    }
    if let Some(e) = linger {
        let kafka = root.get("output").and_then(|o| o.get("kafka"));
        if kafka.is_none() {
            t.note("queue.mem.flush.timeout", e.line, "not applied: there is no output.kafka");
        } else if kafka.and_then(|k| k.get("bulk_flush_frequency")).is_some() {
            t.note(
                "queue.mem.flush.timeout",
                e.line,
                "not applied: output.kafka.bulk_flush_frequency is set and decides how long a batch waits",
            );
        } else {
            t.note(
                "queue.mem.flush.timeout",
                e.line,
                "applied as output.kafka.bulk_flush_frequency (librdkafka's linger.ms): how long a batch waits to fill",
            );
            set(root, &["output", "kafka", "bulk_flush_frequency"], e);
        }
    }
    let Some(q) = root.get_mut("queue") else { return };
    let Some(disk) = q.remove("disk") else { return };
    let Value::Map(entries) = disk.node.value else { return };
    for e in entries {
        let key = format!("queue.disk.{}", e.key);
        match e.key.as_str() {
            "path" | "max_size" | "segment_size" | "retry_interval" => {
                let k = e.key.clone();
                t.note(&key, e.line, format!("applied as queue.spool.{k}: the spool keeps events while Kafka is unreachable, not all the time"));
                set(root, &["queue", "spool", &k], e);
            }
            _ => t.note(
                &key,
                e.line,
                "accepted, not applied: the spool has no read-ahead, write-ahead or growing retry interval",
            ),
        }
    }
}

/// `output.*`: Kafka is the output; another one switched off is noted, one switched on an error.
fn outputs(root: &mut Node, t: &mut Translation) {
    let Some(out) = root.get("output").and_then(Node::as_map) else { return };
    let names: Vec<(String, usize, bool)> =
        out.iter().map(|e| (e.key.clone(), e.line, flag(e.node.get("enabled")) == Some(false))).collect();
    for (name, line, disabled) in names {
        let key = format!("output.{name}");
        match (name.as_str(), disabled) {
            ("kafka", false) => {}
            (_, true) => {
                root.get_mut("output").and_then(|o| o.remove(&name));
                t.note(&key, line, "switched off (enabled: false)");
            }
            _ => t.error(&key, line, "the agent ships to Kafka only: switch this output off (enabled: false) or remove it, and configure output.kafka"),
        }
    }
    if let Some(k) = root.get_mut("output").and_then(|o| o.get_mut("kafka")) {
        k.remove("enabled");
        kafka_output(k, t);
    }
    if root.get("output").and_then(Node::as_map).is_some_and(Vec::is_empty) {
        root.remove("output");
    }
}

/// Processors that look metadata up from a cloud provider or Docker: accepted and noted as
/// inactive (the agent never probes a network address or a socket for them).
/// `add_kubernetes_metadata` runs, with only what a log file's path names.
const INACTIVE_PROCESSORS: &[&str] = &["add_cloud_metadata", "add_docker_metadata"];

fn inactive_processors(node: &mut Node, at: &str, t: &mut Translation) {
    let Some(Value::Seq(list)) = node.get_mut("processors").map(|n| &mut n.value) else { return };
    let mut i = 0;
    list.retain(|p| {
        let name = p.as_map().filter(|m| m.len() == 1).map(|m| m[0].key.as_str());
        let inactive = name.is_some_and(|n| INACTIVE_PROCESSORS.contains(&n));
        if name == Some("add_kubernetes_metadata") {
            let what = "add_kubernetes_metadata: only the fields a kubelet log path names (pod, namespace, container, container id); the Kubernetes API is not called";
            t.note(format!("{at}[{i}]"), p.line, what);
        }
        if inactive {
            let what = format!(
                "{} accepted, inactive: no cloud or Docker metadata is looked up",
                name.unwrap_or_default()
            );
            t.note(format!("{at}[{i}]"), p.line, what);
        }
        i += 1;
        !inactive
    });
    if list.is_empty() {
        node.remove("processors");
    }
}

/// A YAML boolean (`true`, `no`, `on`...), as libbeat reads it.
fn flag(node: Option<&Node>) -> Option<bool> {
    super::de::parse_bool(node?.as_scalar()?.text.trim())
}

/// `output.kafka`'s Filebeat-only spellings: `codec.format.string` and `codec.json.*`, settings
/// that tune Filebeat's Kafka client (sarama) and have no counterpart here.
fn kafka_output(k: &mut Node, t: &mut Translation) {
    if let Some(codec) = k.get("codec").filter(|c| c.as_map().is_some()).cloned() {
        let line = codec.line;
        k.remove("codec");
        let (name, extra) = match (codec.get("format"), codec.get("json")) {
            (Some(f), None) => match f.get("string") {
                Some(string) => ("format", Some(("codec_format", string.clone()))),
                None => {
                    t.error("output.kafka.codec.format.string", f.line, "the format codec needs its string");
                    return;
                }
            },
            // `pretty` keeps its name under `codec_json` (other keys are refused there by name);
            // `escape_html` changes nothing in Filebeat 8.1.3's Kafka output (checked), nor here.
            (None, Some(j)) => {
                let mut j = j.clone();
                if let Some(e) = j.remove("escape_html") {
                    t.note(
                        "output.kafka.codec.json.escape_html",
                        e.line,
                        "accepted, changes nothing: Filebeat 8.1.3's Kafka output writes <, > and & unescaped too",
                    );
                }
                ("json", j.as_map().is_some_and(|m| !m.is_empty()).then_some(("codec_json", j)))
            }
            _ => {
                t.error("output.kafka.codec", line, "needs one of format or json");
                return;
            }
        };
        let map = k.as_map_mut().expect("a map");
        map.push(Entry { key: "codec".into(), line, node: Node::scalar(line, name, false) });
        if let Some((key, node)) = extra {
            map.push(Entry { key: key.into(), line: node.line, node });
        }
    }
    for (path, what) in [
        (&["channel_buffer_size"][..], "librdkafka queues per partition itself (bounded by queue.buffering.max.*)"),
        (&["max_retries"], "retries are unlimited, as Filebeat's Kafka output ignores this setting too"),
        (&["bulk_max_duration"], "batches are flushed by bulk_flush_frequency (linger.ms)"),
        (&["metadata", "retry"], "librdkafka retries metadata requests itself (retry.backoff.ms)"),
    ] {
        if let Some(e) = take_path(k, path) {
            t.note(format!("output.kafka.{}", path.join(".")), e.line, format!("accepted, not applied: {what}"));
        }
    }
    if let Some(e) = take_path(k, &["metadata", "full"]).filter(|e| flag(Some(&e.node)) == Some(true)) {
        t.note(
            "output.kafka.metadata.full",
            e.line,
            "not applied: only the metadata of the topics written to is fetched",
        );
    }
}

/// Sets `root.<path>` (a map node: the file or one input) to the entry's value, keeping its line
/// (maps are merged).
fn set(root: &mut Node, path: &[&str], e: Entry) {
    let mut node = e.node;
    for k in path[1..].iter().rev() {
        node = Node::map(e.line, vec![Entry { key: (*k).to_string(), line: e.line, node }]);
    }
    let map = root.as_map_mut().expect("root map");
    merge_entry(map, Entry { key: path[0].to_string(), line: e.line, node });
}

/// Translates one input; `None` when it is dropped (a disabled Filebeat input).
fn input(mut node: Node, default_type: &str, at: &str, ids: &mut Vec<String>, t: &mut Translation) -> Option<Node> {
    if node.as_map().is_none() {
        t.error(at, node.line, "an input needs a map of settings");
        return None;
    }
    if let Some(e) = node.remove("input_type") {
        merge_entry(node.as_map_mut().expect("map"), Entry { key: "type".into(), ..e });
    }
    let kind = node.get("type").and_then(Node::as_scalar).map_or(default_type.to_string(), |s| s.text.clone());
    let disabled = flag(node.get("enabled")) == Some(false);
    if disabled && default_type == "log" {
        t.note(at, node.line, "disabled input: not read (and not checked)");
        return None;
    }
    match kind.as_str() {
        "filestream" => filestream(&mut node, at, t),
        "log" => log_input(&mut node, at, t),
        "container" => {
            log_input(&mut node, at, t);
            container_input(&mut node);
        }
        other => {
            let line = node.get("type").map_or(node.line, |n| n.line);
            t.error(
                format!("{at}.type"),
                line,
                format!("input type {other:?} is not supported: filestream, log and container inputs are"),
            );
            return None;
        }
    }
    inactive_processors(&mut node, &format!("{at}.processors"), t);
    set_type(&mut node, &kind);
    backoff_default(&mut node);
    give_id(&mut node, &kind, ids);
    Some(node)
}

fn set_type(node: &mut Node, kind: &str) {
    let line = node.get("type").map_or(node.line, |n| n.line);
    node.remove("type");
    node.as_map_mut().expect("map").push(Entry { key: "type".into(), line, node: Node::scalar(line, kind, false) });
}

/// `backoff.max` defaults to 1 s, or to `backoff.init` when that is set longer (Filebeat's own
/// `backoff.init: 2s` must not be refused for exceeding a default the user never wrote).
fn backoff_default(node: &mut Node) {
    let Some(b) = node.get("backoff") else { return };
    if b.get("max").is_some() {
        return;
    }
    let Some(init) = b.get("init").cloned() else { return };
    let longer = init
        .as_scalar()
        .and_then(|s| humantime::parse_duration(&s.text).ok())
        .is_some_and(|d| d > super::DEFAULT_BACKOFF_MAX.0);
    if longer {
        if let Some(b) = node.get_mut("backoff").and_then(Node::as_map_mut) {
            b.push(Entry { key: "max".into(), line: init.line, node: init });
        }
    }
}

/// Inputs without an `id` (log inputs have none; filestream's is optional in 8.x) get one from
/// their type and paths, stable across restarts so their registry entries are found again.
fn give_id(node: &mut Node, kind: &str, ids: &mut Vec<String>) {
    let id = match node.get("id").and_then(Node::as_scalar) {
        Some(s) => s.text.clone(),
        None => {
            let paths = match node.get("paths").map(|n| &n.value) {
                Some(Value::Seq(items)) => {
                    items.iter().filter_map(|p| p.as_scalar().map(|s| s.text.clone())).collect::<Vec<_>>().join("\n")
                }
                Some(Value::Scalar(s)) => s.text.clone(),
                _ => String::new(),
            };
            let mut id = format!("{kind}-{:016x}", fnv1a(paths.as_bytes()));
            let base = id.clone();
            let mut n = 1;
            while ids.contains(&id) {
                n += 1;
                id = format!("{base}-{n}");
            }
            let line = node.line;
            node.as_map_mut().expect("map").push(Entry {
                key: "id".into(),
                line,
                node: Node::scalar(line, id.clone(), false),
            });
            id
        }
    };
    ids.push(id);
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Renames `from` (a dotted path in the input) to `to`, keeping the line.
fn rename(node: &mut Node, from: &[&str], to: &[&str]) {
    if let Some(e) = take_path(node, from) {
        set(node, to, e);
    }
}

/// `**` in paths always matches any depth here: a setting that turns that off is refused.
fn recursive_glob(node: &mut Node, path: &[&str], at: &str, t: &mut Translation) {
    if let Some(e) = take_path(node, path) {
        if flag(Some(&e.node)) == Some(false) {
            let key = format!("{at}.{}", path.join("."));
            t.error(key, e.line, "false is not supported: `**` in paths always matches any depth");
        }
    }
}

/// Takes the entry at a path out of nested maps (removing maps left empty).
fn take_path(node: &mut Node, path: &[&str]) -> Option<Entry> {
    if path.len() == 1 {
        return node.remove(path[0]);
    }
    let child = node.get_mut(path[0])?;
    let e = take_path(child, &path[1..])?;
    if child.as_map().is_some_and(Vec::is_empty) {
        node.remove(path[0]);
    }
    Some(e)
}

/// filestream's Filebeat names onto the agent's.
fn filestream(node: &mut Node, at: &str, t: &mut Translation) {
    rename(node, &["prospector", "scanner", "check_interval"], &["check_interval"]);
    rename(node, &["prospector", "scanner", "exclude_files"], &["exclude_files"]);
    rename(node, &["prospector", "scanner", "include_files"], &["include_files"]);
    rename(node, &["prospector", "scanner", "symlinks"], &["symlinks"]);
    rename(node, &["close", "reader", "on_eof"], &["close", "on_eof"]);
    recursive_glob(node, &["prospector", "scanner", "recursive_glob"], at, t);
    if let Some(e) = take_path(node, &["file_identity"]) {
        let native = e.node.as_map().is_some_and(|m| m.len() == 1 && m[0].key == "native");
        if !native {
            t.error(format!("{at}.file_identity"), e.line, "only `native` is supported: the agent identifies files by device and inode, checked against a fingerprint of their first KiB");
        }
    }
    common(node, at, t);
}

/// The 7.x `log` input's names onto filestream's meaning.
fn log_input(node: &mut Node, at: &str, t: &mut Translation) {
    rename(node, &["scan_frequency"], &["check_interval"]);
    rename(node, &["close_inactive"], &["close", "on_state_change", "inactive"]);
    rename(node, &["close_renamed"], &["close", "on_state_change", "renamed"]);
    rename(node, &["close_eof"], &["close", "on_eof"]);
    // The log input closes a removed file at once by default (filestream reads it to its end).
    if node.get("close_removed").is_none() {
        let line = node.line;
        merge_entry(
            node.as_map_mut().expect("map"),
            Entry { key: "close_removed".into(), line, node: Node::scalar(line, "true", true) },
        );
    }
    rename(node, &["close_removed"], &["close", "on_state_change", "removed"]);
    rename(node, &["backoff"], &["backoff", "init"]);
    rename(node, &["max_backoff"], &["backoff", "max"]);
    recursive_glob(node, &["recursive_glob", "enabled"], at, t);
    if let Some(e) = node.remove("backoff_factor") {
        if e.node.as_scalar().map_or(true, |s| s.text != "2") {
            t.error(format!("{at}.backoff_factor"), e.line, "only 2 is supported (the wait doubles up to backoff.max)");
        }
    }
    if let Some(e) = node.remove("tail_files") {
        if flag(Some(&e.node)) == Some(true) {
            let line = e.line;
            merge_entry(
                node.as_map_mut().expect("map"),
                Entry { key: "start_position".into(), line, node: Node::scalar(line, "end", true) },
            );
            t.note(format!("{at}.tail_files"), line, "files present at start-up without a registry entry are read from their end (start_position: end); files that appear later are read from their start");
        }
    }
    if let Some(e) = node.remove("close_timeout") {
        let off = e.node.as_scalar().is_some_and(|s| s.text == "0" || s.text == "0s");
        if !off {
            t.error(
                format!("{at}.close_timeout"),
                e.line,
                "not supported: a file is read until it is inactive, renamed or removed",
            );
        }
    }
    if let Some(e) = node.remove("harvester_buffer_size") {
        t.note(
            format!("{at}.harvester_buffer_size"),
            e.line,
            "accepted, not applied: the agent reads in 64 KiB pieces",
        );
    }
    parsers_from_log(node, at, t);
    common(node, at, t);
}

/// The log input's `json.*` and `multiline.*` become filestream parsers. Filebeat's log input
/// decodes JSON before joining lines; the agent's parsers join first, so both together are refused.
fn parsers_from_log(node: &mut Node, at: &str, t: &mut Translation) {
    let multiline = node.remove("multiline");
    let json = node.remove("json");
    let mut parsers = Vec::new();
    if let (Some(m), Some(_)) = (&multiline, &json) {
        t.error(
            format!("{at}.multiline"),
            m.line,
            "multiline together with json (joining decoded messages) is not supported",
        );
        return;
    }
    if let Some(m) = multiline {
        parsers.push(Node::map(m.line, vec![Entry { key: "multiline".into(), line: m.line, node: m.node }]));
    }
    if let Some(mut j) = json {
        let line = j.line;
        let under_root =
            take_path(&mut j.node, &["keys_under_root"]).and_then(|e| flag(Some(&e.node))).unwrap_or(false);
        let Some(map) = j.node.as_map_mut() else {
            t.error(format!("{at}.json"), line, "needs a map of settings");
            return;
        };
        // Without keys_under_root the log input puts the document under `json`.
        if !under_root && !map.iter().any(|e| e.key == "target") {
            map.push(Entry { key: "target".into(), line, node: Node::scalar(line, "json", false) });
        }
        parsers.push(Node::map(line, vec![Entry { key: "ndjson".into(), line, node: j.node }]));
    }
    if !parsers.is_empty() {
        let line = parsers[0].line;
        node.as_map_mut().expect("map").push(Entry {
            key: "parsers".into(),
            line,
            node: Node { line, value: Value::Seq(parsers) },
        });
    }
}

/// Filebeat's `container` input is its log input reading container runtimes' files: its
/// `stream` and `format` become a `container` parser ahead of the others (`json`, `multiline`),
/// and symlinks are followed.
fn container_input(node: &mut Node) {
    let line = node.line;
    // /var/log/containers/*.log are symlinks into /var/log/pods: Filebeat's container input
    // follows them (the file is known by its target's identity, so it is read once).
    if node.get("symlinks").is_none() {
        node.as_map_mut().expect("map").push(Entry {
            key: "symlinks".into(),
            line,
            node: Node::scalar(line, "true", true),
        });
    }
    let settings: Vec<Entry> = ["stream", "format"].iter().filter_map(|k| node.remove(k)).collect();
    let parser = Node::map(line, vec![Entry { key: "container".into(), line, node: Node::map(line, settings) }]);
    let map = node.as_map_mut().expect("map");
    match map.iter_mut().find(|e| e.key == "parsers") {
        Some(Entry { node: Node { value: Value::Seq(list), .. }, .. }) => list.insert(0, parser),
        _ => map.push(Entry { key: "parsers".into(), line, node: Node { line, value: Value::Seq(vec![parser]) } }),
    }
}

/// Settings both input types share that change nothing here, or are not supported.
fn common(node: &mut Node, at: &str, t: &mut Translation) {
    for (key, what) in [
        ("index", "accepted, not applied: an Elasticsearch index name"),
        ("pipeline", "accepted, not applied: an Elasticsearch ingest pipeline"),
        ("buffer_size", "accepted, not applied: the agent reads in 64 KiB pieces"),
    ] {
        if let Some(e) = node.remove(key) {
            t.note(format!("{at}.{key}"), e.line, what);
        }
    }
    for (key, why) in [
        ("keep_null", "events never carry null fields"),
        ("publisher_pipeline", "host.name is always set"),
        ("ignore_inactive", "use ignore_older"),
        ("take_over", "the agent keeps its own registry"),
        ("rotation", "copytruncate is detected without it"),
        ("prospector", "supported scanner settings: check_interval, exclude_files, include_files, symlinks"),
    ] {
        if let Some(e) = node.remove(key) {
            let off = flag(Some(&e.node)) == Some(false);
            if !(key == "keep_null" && off) {
                t.error(format!("{at}.{key}"), e.line, format!("not supported: {why}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree;

    fn translated(text: &str) -> (Node, Translation) {
        translated_in(text, std::path::Path::new("/nonexistent"))
    }

    fn translated_in(text: &str, dir: &std::path::Path) -> (Node, Translation) {
        let mut n = tree::parse(text).unwrap();
        tree::expand_dots(&mut n);
        let d = dir.display().to_string();
        let env = move |k: &str| (k == "path.config").then(|| d.clone());
        let t = translate(&mut n, &Context { dir, env: &env });
        (n, t)
    }

    #[test]
    fn input_files_are_loaded_translated_and_checked_with_their_own_name_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inputs.d")).unwrap();
        std::fs::write(
            dir.path().join("inputs.d/a.yml"),
            "- type: log\n  paths: [/var/log/a/*.log]\n  close_removed: false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("inputs.d/b.yml"),
            "- type: filestream\n  id: b\n  paths: [/var/log/b/*.log]\n  pathz: [x]\n",
        )
        .unwrap();
        let (n, t) = translated_in(
            "filebeat.config.inputs:\n  enabled: true\n  path: ${path.config}/inputs.d/*.yml\n  reload.enabled: true\n",
            dir.path(),
        );
        assert_eq!(text(&n, "inputs[0].type"), "log");
        assert_eq!(text(&n, "inputs[0].close.on_state_change.removed"), "false", "the user's value, translated once");
        assert!(n.lookup("inputs[1]").is_none(), "the file with a bad key is left out");
        let b = dir.path().join("inputs.d/b.yml").display().to_string();
        let err = t.errors.iter().find(|e| e.key.as_deref().is_some_and(|k| k.starts_with(&b))).expect("b.yml's error");
        assert_eq!((err.key.as_deref(), err.line), (Some(format!("{b}[0].pathz").as_str()), 4));
        assert!(t.notes.iter().any(|n| n.key == "filebeat.config.inputs.reload"));
        assert_eq!(text(&n, "reload.period"), "10s", "Filebeat's default period");
    }

    fn text<'a>(n: &'a Node, path: &str) -> &'a str {
        &n.lookup(path).unwrap_or_else(|| panic!("{path} in {n:?}")).as_scalar().unwrap().text
    }

    #[test]
    fn filebeat_inputs_default_to_the_log_input_and_its_keys_map_onto_filestream() {
        let (n, t) = translated(
            "filebeat.inputs:\n- paths: [/var/log/*.log]\n  scan_frequency: 5s\n  close_inactive: 2m\n  json.keys_under_root: true\n  json.overwrite_keys: true\n  tail_files: true\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(text(&n, "inputs[0].type"), "log");
        assert_eq!(text(&n, "inputs[0].check_interval"), "5s");
        assert_eq!(text(&n, "inputs[0].close.on_state_change.inactive"), "2m");
        assert_eq!(text(&n, "inputs[0].close.on_state_change.removed"), "true");
        assert_eq!(text(&n, "inputs[0].parsers[0].ndjson.overwrite_keys"), "true");
        assert!(n.lookup("inputs[0].parsers[0].ndjson.target").is_none(), "keys_under_root: at the root");
        assert_eq!(text(&n, "inputs[0].start_position"), "end");
        assert!(text(&n, "inputs[0].id").starts_with("log-"));
        // Lines are the user's.
        assert_eq!(n.line_of("inputs[0].check_interval"), Some(3));
    }

    #[test]
    fn queue_flush_timeout_becomes_the_batch_wait_unless_the_output_sets_one() {
        let (n, t) = translated("queue.mem:\n  events: 4096\n  flush.timeout: 2s\n  flush.min_events: 512\noutput.kafka:\n  hosts: [h]\n  topic: t\n");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(text(&n, "output.kafka.bulk_flush_frequency"), "2s");
        assert_eq!(n.line_of("output.kafka.bulk_flush_frequency"), Some(3));
        assert_eq!(text(&n, "queue.mem.events"), "4096");
        assert!(t.notes.iter().any(|n| n.key == "queue.mem.flush.min_events"));
        let (n, t) = translated(
            "queue.mem.flush.timeout: 2s\noutput.kafka:\n  hosts: [h]\n  topic: t\n  bulk_flush_frequency: 0\n",
        );
        assert_eq!(text(&n, "output.kafka.bulk_flush_frequency"), "0");
        assert!(t.notes.iter().any(|n| n.key == "queue.mem.flush.timeout" && n.what.contains("not applied")));
    }

    #[test]
    fn prospectors_of_filebeat_6_are_read_as_inputs() {
        let (n, t) = translated("filebeat.prospectors:\n- input_type: log\n  paths:\n  - /data/*.json\n");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(text(&n, "inputs[0].type"), "log");
        assert_eq!(text(&n, "inputs[0].paths[0]"), "/data/*.json");
        assert!(t.notes.iter().any(|n| n.key == "filebeat.prospectors"));
    }

    #[test]
    fn filestream_scanner_names_and_other_sections() {
        let (n, t) = translated(
            "filebeat.inputs:\n- type: filestream\n  id: a\n  paths: [/x]\n  prospector.scanner.check_interval: 1s\n  backoff.init: 2s\n\
filebeat.registry.flush: 5s\nsetup.template.enabled: false\npath.logs: /var/log/fb\n\
output.elasticsearch:\n  enabled: false\n  hosts: [es]\noutput.kafka:\n  hosts: [k]\n  topic: t\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(text(&n, "inputs[0].check_interval"), "1s");
        assert_eq!(text(&n, "inputs[0].backoff.max"), "2s", "max follows a longer init");
        assert_eq!(text(&n, "registry.flush"), "5s");
        assert_eq!(text(&n, "logging.files.path"), "/var/log/fb");
        assert!(n.get("setup").is_none() && n.lookup("output.elasticsearch").is_none());
        let noted: Vec<&str> = t.notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(noted, ["setup", "output.elasticsearch"]);
    }

    #[test]
    fn the_container_input_is_the_log_input_with_a_container_parser_first() {
        let (n, t) = translated(
            "filebeat.inputs:\n- type: container\n  paths: [/var/log/containers/*.log]\n  stream: stderr\n  json.keys_under_root: true\n",
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(text(&n, "inputs[0].type"), "container");
        assert_eq!(text(&n, "inputs[0].symlinks"), "true");
        assert_eq!(text(&n, "inputs[0].parsers[0].container.stream"), "stderr");
        assert!(n.lookup("inputs[0].parsers[1].ndjson").is_some(), "json after the container parser");
    }

    #[test]
    fn what_is_not_supported_is_an_error_naming_the_key() {
        let (_, t) = translated(
            "filebeat.inputs:\n- type: syslog\n  paths: [/x]\n- type: log\n  paths: [/y]\n  close_timeout: 5m\noutput.elasticsearch.hosts: [es]\nfilebeat.modules:\n- module: nginx\n",
        );
        let keys: Vec<(&str, usize)> = t.errors.iter().map(|e| (e.key.as_deref().unwrap(), e.line)).collect();
        assert_eq!(
            keys,
            [
                ("filebeat.modules", 8),
                ("output.elasticsearch", 7),
                ("filebeat.inputs[0].type", 2),
                ("filebeat.inputs[1].close_timeout", 6)
            ]
        );
    }
}
