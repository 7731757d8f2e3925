//! What each request gets: the agent's own routes (`/`, `/stats`, `/metrics`, `/healthz`, `/livez`) and
//! Kafka Connect's (`/connectors...`), as plain functions of the request and the [`Status`].
//!
//! Invariants: every request is checked against the bearer token first (when one is set); a
//! mutating call needs `http.control`; errors use Kafka Connect's `{"error_code","message"}`.

use crate::config::HttpConfig;
use crate::metrics::{Described, HistogramSnapshot, Metrics, LATENCY_BOUNDS};
use crate::status::{Connector, Kind, Status};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A parsed request: only what the routes look at.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without its query string, still percent-encoded.
    pub path: String,
    pub query: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response { status, content_type: "application/json", body: v.to_string() }
    }
    fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &json!({"error_code": status, "message": message.into()}))
    }
    fn accepted() -> Response {
        Response { status: 202, content_type: "application/json", body: String::new() }
    }
}

/// What the routes need besides the request.
pub struct Ctx {
    pub status: Arc<Status>,
    pub http: HttpConfig,
    /// `name` from the config, or the host name.
    pub name: String,
    pub hostname: String,
    /// `host:port` of the endpoint (Kafka Connect's `worker_id`).
    pub worker_id: String,
}

/// How long a watched thread may go without turning its loop before `/livez` calls it stuck:
/// every loop turns at least once a second, waits included, so this is far past any busy spell.
const LIVENESS_QUIET: std::time::Duration = std::time::Duration::from_secs(60);

pub fn handle(req: &Request, ctx: &Ctx) -> Response {
    if let Some(token) = &ctx.http.token {
        let given = req.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
        if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
            return Response::error(401, "a bearer token is required (Authorization: Bearer <http.token>)");
        }
    }
    let segments: Vec<String> = req.path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", []) => Response::json(200, &info(ctx)),
        ("GET", ["stats"]) => Response::json(200, &stats(ctx)),
        ("GET", ["metrics"]) => {
            Response { status: 200, content_type: "text/plain; version=0.0.4", body: prometheus(ctx) }
        }
        ("GET", ["healthz"]) => match ctx.status.readiness() {
            Ok(()) => Response::json(200, &json!({"status": "ready"})),
            Err(why) => {
                let reason = crate::status::Unready::joined(&why);
                let reasons: Vec<Value> = why
                    .iter()
                    .map(|u| json!({"reason": u.reason, "since": crate::event::rfc3339_millis(u.since)}))
                    .collect();
                Response::json(503, &json!({"status": "not ready", "reason": reason, "reasons": reasons}))
            }
        },
        ("GET", ["livez"]) => match ctx.status.liveness(LIVENESS_QUIET) {
            Ok(threads) => Response::json(200, &json!({"status": "alive", "threads": threads})),
            Err(stuck) => {
                let threads: Vec<Value> =
                    stuck.iter().map(|(t, q)| json!({"thread": t, "quiet_seconds": q.as_secs()})).collect();
                Response::json(503, &json!({"status": "stuck", "threads": threads}))
            }
        },
        ("GET", ["connectors"]) => connectors(req, ctx),
        ("GET", ["connectors", name]) => with_connector(ctx, name, |c| Response::json(200, &connector_info(c))),
        ("GET", ["connectors", name, "status"]) => {
            with_connector(ctx, name, |c| Response::json(200, &connector_status(c, ctx)))
        }
        ("PUT", ["connectors", name, action @ ("pause" | "resume")]) => {
            if !ctx.http.control {
                return Response::error(
                    403,
                    "mutating calls are disabled: set http.control: true to allow pause and resume",
                );
            }
            with_connector(ctx, name, |c| {
                let pause = *action == "pause";
                if c.paused.swap(pause, Ordering::Relaxed) != pause {
                    tracing::info!(connector = %c.name, kind = c.kind.as_str(), "{} through the HTTP endpoint", if pause { "paused" } else { "resumed" });
                }
                Response::accepted()
            })
        }
        (_, [] | ["stats" | "metrics" | "healthz" | "livez"] | ["connectors", ..]) => {
            Response::error(405, format!("method {} not allowed on {}", req.method, req.path))
        }
        _ => Response::error(404, format!("no such resource: {}", req.path)),
    }
}

fn with_connector(ctx: &Ctx, name: &str, f: impl FnOnce(&Connector) -> Response) -> Response {
    match ctx.status.find(name) {
        Some(c) => f(&c),
        None => Response::error(404, format!("Connector {name} not found")),
    }
}

fn info(ctx: &Ctx) -> Value {
    json!({
        "name": ctx.name,
        "hostname": ctx.hostname,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": {"ms": ctx.status.started.elapsed().as_millis() as u64},
    })
}

/// Process-wide figures grouped by stage, each input and sink, and every counter by name.
fn stats(ctx: &Ctx) -> Value {
    let m = &*ctx.status.metrics;
    let g = Metrics::get;
    let dropped =
        g(&m.events_dropped_oversize) + g(&m.events_dropped_format) + g(&m.events_dropped_topic) + g(&m.spool_dropped);
    let (inputs, sinks): (Vec<_>, Vec<_>) = ctx.status.connectors().into_iter().partition(|c| c.kind == Kind::Source);
    let counters: Map<String, Value> = m.describe().into_iter().map(|d| (d.name.to_string(), d.value.into())).collect();
    json!({
        "agent": info(ctx),
        "input": {
            "bytes_read": g(&m.bytes_read),
            "lines_read": g(&m.lines_read),
            "files_open": g(&m.files_open),
            "file_errors": g(&m.file_errors),
        },
        "events": {
            "published": g(&m.events_published),
            "acknowledged": g(&m.events_acked),
            "dropped": dropped,
            "failed": g(&m.events_failed),
            "filtered": g(&m.lines_filtered) + g(&m.events_dropped_processor),
            "retried": g(&m.events_retried),
        },
        "output": {"brokers_up": g(&m.output_brokers_up), "spooling": g(&m.output_spooling) == 1},
        "process": process_json(),
        "registry": {"entries": g(&m.registry_entries), "writes": g(&m.registry_writes)},
        "spool": {"bytes": g(&m.spool_bytes), "events": g(&m.spool_events), "writable": g(&m.spool_writable) == 1},
        "inputs": inputs.iter().map(|c| json!({
            "id": c.name,
            "state": c.state().0,
            "bytes_read": g(&c.bytes),
            "events": g(&c.events),
            "files_open": g(&c.open_files),
            "latency": latency_json(&c.latency.snapshot()),
        })).collect::<Vec<_>>(),
        "sinks": sinks.iter().map(|c| json!({
            "id": c.name,
            "state": c.state().0,
            "bytes_written": g(&c.bytes),
            "records_written": g(&c.events),
        })).collect::<Vec<_>>(),
        "counters": counters,
    })
}

/// An input's read-to-acknowledgement latency for `/stats`: count, sum, the bucket bounds under
/// which half and 99% of events were acknowledged (`null` before the first), and the buckets.
fn latency_json(h: &HistogramSnapshot) -> Value {
    let bound = |q| h.quantile_bound(q).map(|b| if b.is_finite() { json!(b) } else { json!("+Inf") });
    let buckets: Map<String, Value> = LATENCY_BOUNDS
        .iter()
        .map(|b| b.to_string())
        .chain(["+Inf".to_string()])
        .zip(&h.cumulative)
        .map(|(le, n)| (le, json!(n)))
        .collect();
    json!({
        "count": h.count,
        "sum_seconds": h.sum_seconds,
        "p50_at_most_seconds": bound(0.5),
        "p99_at_most_seconds": bound(0.99),
        "buckets": buckets,
    })
}

/// The process's own figures for `/stats` (a figure that cannot be read is left out).
fn process_json() -> Value {
    let p = crate::process::ProcessStats::read();
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("cpu_seconds", p.cpu_seconds.map(Value::from));
    put("resident_bytes", p.resident_bytes.map(Value::from));
    put("virtual_bytes", p.virtual_bytes.map(Value::from));
    put("open_fds", p.open_fds.map(Value::from));
    put("max_fds", p.max_fds.map(Value::from));
    put("start_time_seconds", p.start_time_seconds.map(Value::from));
    Value::Object(m)
}

/// Prometheus' standard `process_*` families (what its client libraries' process collector
/// exports), each only when it could be read.
fn process_families(out: &mut String) {
    let p = crate::process::ProcessStats::read();
    let families: [(&str, &str, &str, Option<f64>); 6] = [
        ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", p.cpu_seconds),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            p.resident_bytes.map(|v| v as f64),
        ),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", p.virtual_bytes.map(|v| v as f64)),
        ("process_open_fds", "Number of open file descriptors.", "gauge", p.open_fds.map(|v| v as f64)),
        ("process_max_fds", "Maximum number of open file descriptors.", "gauge", p.max_fds.map(|v| v as f64)),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            p.start_time_seconds,
        ),
    ];
    for (name, help, kind, value) in families {
        if let Some(v) = value {
            family(out, name, help, kind);
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

/// Prometheus text format: every counter (`agent_<name>_total`) and gauge, then per connector,
/// then the process's own figures.
fn prometheus(ctx: &Ctx) -> String {
    let mut out = String::new();
    family(&mut out, "agent_info", "The agent's version.", "gauge");
    let _ = writeln!(out, "agent_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    family(&mut out, "agent_uptime_seconds", "Seconds since the agent started.", "gauge");
    let _ = writeln!(out, "agent_uptime_seconds {:.3}", ctx.status.started.elapsed().as_secs_f64());
    for Described { name, help, gauge, value } in ctx.status.metrics.describe() {
        let (full, kind) =
            if gauge { (format!("agent_{name}"), "gauge") } else { (format!("agent_{name}_total"), "counter") };
        family(&mut out, &full, help.strip_prefix("Gauge:").unwrap_or(help).trim(), kind);
        let _ = writeln!(out, "{full} {value}");
    }
    let connectors = ctx.status.connectors();
    let per: [PerConnector; 3] = [
        ("agent_connector_bytes_total", "Input: bytes read. Sink: bytes written.", "counter", |c| {
            Metrics::get(&c.bytes)
        }),
        ("agent_connector_events_total", "Input: events made. Sink: records written.", "counter", |c| {
            Metrics::get(&c.events)
        }),
        ("agent_connector_files_open", "Input: files open now.", "gauge", |c| Metrics::get(&c.open_files)),
    ];
    for (name, help, kind, value) in per {
        family(&mut out, name, help, kind);
        for c in &connectors {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(c), value(c));
        }
    }
    family(&mut out, "agent_connector_state", "1 for the connector's state (RUNNING, PAUSED, FAILED).", "gauge");
    for c in &connectors {
        let state = c.state().0;
        for s in ["RUNNING", "PAUSED", "FAILED"] {
            let _ = writeln!(out, "agent_connector_state{{{},state=\"{s}\"}} {}", labels(c), u8::from(s == state));
        }
    }
    let name = "agent_input_latency_seconds";
    family(&mut out, name, "Input: seconds from reading a line to Kafka's acknowledgement of its event (events sent directly, not through the spool).", "histogram");
    for c in connectors.iter().filter(|c| c.kind == Kind::Source) {
        let h = c.latency.snapshot();
        let les = LATENCY_BOUNDS.iter().map(|b| b.to_string()).chain(["+Inf".to_string()]);
        for (le, n) in les.zip(&h.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{},le=\"{le}\"}} {n}", labels(c));
        }
        let _ = writeln!(out, "{name}_sum{{{}}} {}", labels(c), h.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{}}} {}", labels(c), h.count);
    }
    process_families(&mut out);
    out
}

/// A per-connector metric family: name, help, type, and how to read it.
type PerConnector = (&'static str, &'static str, &'static str, fn(&Connector) -> u64);

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", help.replace('\n', " "));
}

fn labels(c: &Connector) -> String {
    let escaped = c.name.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("connector=\"{escaped}\",type=\"{}\"", c.kind.as_str())
}

/// `GET /connectors`: the names, or with `?expand=status` / `?expand=info` a map of them.
fn connectors(req: &Request, ctx: &Ctx) -> Response {
    let all = ctx.status.connectors();
    let expand: Vec<&str> =
        req.query.split('&').filter_map(|kv| kv.strip_prefix("expand=")).filter(|v| !v.is_empty()).collect();
    if expand.is_empty() {
        return Response::json(200, &json!(all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()));
    }
    let mut map = Map::new();
    for c in &all {
        let mut entry = Map::new();
        if expand.contains(&"status") {
            entry.insert("status".into(), connector_status(c, ctx));
        }
        if expand.contains(&"info") {
            entry.insert("info".into(), connector_info(c));
        }
        map.insert(c.name.clone(), Value::Object(entry));
    }
    Response::json(200, &Value::Object(map))
}

/// Kafka Connect's `ConnectorInfo`. The agent has no connector-level config to show.
fn connector_info(c: &Connector) -> Value {
    json!({
        "name": c.name,
        "config": {},
        "tasks": [{"connector": c.name, "task": 0}],
        "type": c.kind.as_str(),
    })
}

/// Kafka Connect's `ConnectorStateInfo`: the connector and its one task share its state.
fn connector_status(c: &Connector, ctx: &Ctx) -> Value {
    let (state, trace) = c.state();
    let mut task = json!({"id": 0, "state": state, "worker_id": ctx.worker_id});
    if let Some(t) = trace.filter(|t| !t.is_empty()) {
        task["trace"] = t.into();
    }
    json!({
        "name": c.name,
        "connector": {"state": state, "worker_id": ctx.worker_id},
        "tasks": [task],
        "type": c.kind.as_str(),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(http: HttpConfig) -> Ctx {
        let status = Arc::new(Status::default());
        status.install(Kind::Source, &["app logs"]);
        status.install(Kind::Sink, &["copy"]);
        Ctx { status, http, name: "web-1".into(), hostname: "web-1".into(), worker_id: "127.0.0.1:5066".into() }
    }

    fn req(method: &str, path: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request { method: method.into(), path: path.into(), query: query.into(), authorization: None }
    }

    fn body(r: &Response) -> Value {
        serde_json::from_str(&r.body).unwrap()
    }

    #[test]
    fn connect_shapes() {
        let c = ctx(HttpConfig { control: true, ..Default::default() });
        assert_eq!(body(&handle(&req("GET", "/connectors"), &c)), json!(["app logs", "copy"]));
        let st = body(&handle(&req("GET", "/connectors/app%20logs/status"), &c));
        assert_eq!(
            st,
            json!({"name": "app logs", "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:5066"},
                   "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:5066"}], "type": "source"})
        );
        assert_eq!(handle(&req("PUT", "/connectors/copy/pause"), &c).status, 202);
        let expanded = body(&handle(&req("GET", "/connectors?expand=status"), &c));
        assert_eq!(expanded["copy"]["status"]["connector"]["state"], "PAUSED");
        assert_eq!(expanded["copy"]["status"]["type"], "sink");
        assert_eq!(handle(&req("PUT", "/connectors/copy/resume"), &c).status, 202);
        assert_eq!(c.status.find("copy").unwrap().state().0, "RUNNING");
        let missing = handle(&req("GET", "/connectors/nope/status"), &c);
        assert_eq!((missing.status, body(&missing)["error_code"].clone()), (404, json!(404)));
        assert_eq!(handle(&req("DELETE", "/connectors/copy"), &c).status, 405);
        assert_eq!(handle(&req("GET", "/nowhere"), &c).status, 404);
    }

    #[test]
    fn mutating_calls_need_control_and_the_token() {
        let c = ctx(HttpConfig::default());
        let r = handle(&req("PUT", "/connectors/copy/pause"), &c);
        assert_eq!(r.status, 403, "{r:?}");
        assert!(!c.status.find("copy").unwrap().is_paused());

        let c = ctx(HttpConfig { control: true, token: Some("s3cret".into()), ..Default::default() });
        assert_eq!(handle(&req("PUT", "/connectors/copy/pause"), &c).status, 401);
        let mut wrong = req("PUT", "/connectors/copy/pause");
        wrong.authorization = Some("Bearer s3cre".into());
        assert_eq!(handle(&wrong, &c).status, 401);
        assert!(!c.status.find("copy").unwrap().is_paused());
        let mut right = wrong.clone();
        right.authorization = Some("Bearer s3cret".into());
        assert_eq!(handle(&right, &c).status, 202);
        assert!(c.status.find("copy").unwrap().is_paused());
        // Reads need the token too once one is set.
        assert_eq!(handle(&req("GET", "/stats"), &c).status, 401);
    }

    #[test]
    fn livez_lists_the_watched_threads() {
        let c = ctx(HttpConfig::default());
        let hb = c.status.heartbeat("reader");
        hb.beat();
        let r = handle(&req("GET", "/livez"), &c);
        assert_eq!((r.status, body(&r)), (200, json!({"status": "alive", "threads": ["reader"]})));
        assert_eq!(handle(&req("PUT", "/livez"), &c).status, 405);
    }

    #[test]
    fn prometheus_text_has_every_counter_once() {
        let c = ctx(HttpConfig::default());
        Metrics::add(&c.status.metrics.events_acked, 42);
        Metrics::set(&c.status.metrics.spool_bytes, 9);
        let text = handle(&req("GET", "/metrics"), &c).body;
        assert!(text.contains("# TYPE agent_events_acked_total counter\nagent_events_acked_total 42\n"), "{text}");
        assert!(text.contains("# TYPE agent_spool_bytes gauge\nagent_spool_bytes 9\n"), "{text}");
        assert!(text.contains("agent_connector_state{connector=\"app logs\",type=\"source\",state=\"RUNNING\"} 1"));
        for d in c.status.metrics.describe() {
            let full = if d.gauge { format!("agent_{}", d.name) } else { format!("agent_{}_total", d.name) };
            assert_eq!(text.matches(&format!("# TYPE {full} ")).count(), 1, "{full}");
            assert!(text.contains(&format!("\n{full} {}\n", d.value)), "{full}");
        }
        // Every sample line is `name{labels} value` with a number for value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        // Prometheus' standard process families, with this process's figures.
        let sample = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(sample("process_resident_memory_bytes") > 1e6 && sample("process_open_fds") >= 3.0);
        assert!(sample("process_start_time_seconds") <= crate::process::now_seconds());
        let stats = body(&handle(&req("GET", "/stats"), &c));
        assert!(stats["process"]["resident_bytes"].as_u64().is_some_and(|b| b > 1 << 20), "{stats}");
    }

    #[test]
    fn input_latency_is_a_histogram_per_input() {
        let c = ctx(HttpConfig::default());
        let input = c.status.find("app logs").unwrap();
        input.latency.observe(std::time::Duration::from_millis(3));
        input.latency.observe(std::time::Duration::from_millis(40));
        let text = handle(&req("GET", "/metrics"), &c).body;
        assert!(
            text.contains(
                "# TYPE agent_input_latency_seconds histogram
"
            ),
            "{text}"
        );
        let l = "connector=\"app logs\",type=\"source\"";
        for line in [
            format!("agent_input_latency_seconds_bucket{{{l},le=\"0.0025\"}} 0"),
            format!("agent_input_latency_seconds_bucket{{{l},le=\"0.005\"}} 1"),
            format!("agent_input_latency_seconds_bucket{{{l},le=\"0.05\"}} 2"),
            format!("agent_input_latency_seconds_bucket{{{l},le=\"+Inf\"}} 2"),
            format!("agent_input_latency_seconds_sum{{{l}}} 0.043"),
            format!("agent_input_latency_seconds_count{{{l}}} 2"),
        ] {
            assert!(text.lines().any(|t| t == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("agent_input_latency_seconds_count{connector=\"copy\""), "sinks have no latency");
        let stats = body(&handle(&req("GET", "/stats"), &c));
        let latency = &stats["inputs"][0]["latency"];
        assert_eq!(latency["count"], 2);
        assert_eq!(latency["p50_at_most_seconds"], 0.005);
        assert_eq!(latency["p99_at_most_seconds"], 0.05);
    }
}
