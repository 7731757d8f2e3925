//! What the monitoring endpoint reads and the pause switches it flips.
//!
//! Owns the list of *connectors*: one per input (a Kafka Connect "source") and one per sink of
//! the running configuration, each with its pause flag, its own counters and its failure. The
//! reader and the sinks read the flags and add to the counters; the endpoint reads everything
//! and writes only the flags. Process-wide counters stay in [`Metrics`].
//!
//! Invariant: a connector keeps its `Arc` (flag and counters) across a config reload as long as
//! an input or sink of the same name and kind exists, so a reload neither resumes what an
//! operator paused nor resets what the endpoint shows.
//!
//! Also owns the threads' heartbeats for `/livez`: each long-running thread holds a
//! [`Heartbeat`] and beats it at every turn of its loop, waits included (a thread waiting for room
//! in the queue or for Kafka is alive, just held back); a thread that ended drops its heartbeat
//! and is no longer watched.

use crate::metrics::{Histogram, Metrics};
use crate::tls_check::TlsCheck;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

/// A thread's proof of progress: the time of its last loop turn. Dropping it (the thread ended)
/// stops the watching.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Beat>);

#[derive(Debug)]
struct Beat {
    name: String,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last beat.
    at_ms: AtomicU64,
}

impl Heartbeat {
    /// One not watched by any status (tests, tools).
    pub fn detached(name: &str) -> Heartbeat {
        Heartbeat(Arc::new(Beat { name: name.into(), epoch: Instant::now(), at_ms: AtomicU64::new(0) }))
    }

    pub fn beat(&self) {
        self.0.at_ms.store(self.0.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        self.0.epoch.elapsed().saturating_sub(Duration::from_millis(self.0.at_ms.load(Ordering::Relaxed)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An input: files to Kafka.
    Source,
    /// A sink: Kafka to a file.
    Sink,
}

impl Kind {
    /// Kafka Connect's lower-case `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Sink => "sink",
        }
    }
}

/// One input or sink as the endpoint shows it.
#[derive(Debug)]
pub struct Connector {
    pub name: String,
    pub kind: Kind,
    /// Set by `PUT /connectors/{name}/pause`: an input stops reading, a sink stops consuming.
    pub paused: AtomicBool,
    /// Input: bytes read from its files. Sink: bytes written to its file.
    pub bytes: AtomicU64,
    /// Input: events made from its lines. Sink: records written.
    pub events: AtomicU64,
    /// Input: files open now.
    pub open_files: AtomicU64,
    /// Input: seconds from reading a line to Kafka's acknowledgement of its event (events sent
    /// directly; those that went through the spool are not observed).
    pub latency: Arc<Histogram>,
    failure: Mutex<Option<String>>,
}

impl Connector {
    fn new(name: &str, kind: Kind) -> Connector {
        Connector {
            name: name.to_string(),
            kind,
            paused: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            open_files: AtomicU64::new(0),
            latency: Arc::default(),
            failure: Mutex::new(None),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Records (or clears, with `None`) what keeps this connector from working.
    pub fn set_failure(&self, failure: Option<String>) {
        *self.failure.lock().unwrap() = failure;
    }

    /// Kafka Connect's state and, when FAILED, the reason (`trace`). An input is FAILED when
    /// files it finds cannot be opened and none is open; a sink while its writes or commits fail.
    pub fn state(&self) -> (&'static str, Option<String>) {
        let failure = self.failure.lock().unwrap().clone();
        let failed = match self.kind {
            Kind::Source => failure.is_some() && self.open_files.load(Ordering::Relaxed) == 0,
            Kind::Sink => failure.is_some(),
        };
        if failed {
            ("FAILED", failure)
        } else if self.is_paused() {
            ("PAUSED", None)
        } else {
            ("RUNNING", None)
        }
    }
}

/// What Kafka refuses now: topics (authorization, or a topic that does not exist with creation
/// off), each with the error it gave, and the connection itself (a failed TLS handshake or SASL
/// authentication). Written by the Kafka output only: a topic comes in with its first refusal
/// and leaves with its first acknowledgement, the connection's refusal once librdkafka's
/// statistics (every second) show a broker connection up; read by [`Status::readiness`].
#[derive(Debug, Default)]
pub struct Refusals {
    /// Refused topics and Kafka's error for each.
    topics: Mutex<BTreeMap<String, String>>,
    /// Why the connection itself was refused, when its last attempt failed in the TLS handshake
    /// or in SASL authentication: a setting to fix, not an outage to wait out.
    connection: Mutex<Option<String>>,
    /// What the agent's own check found about the refused connection (the reason OpenSSL gives
    /// for refusing the broker's certificate), kept until the connection is up.
    connection_finding: Mutex<Option<String>>,
    /// Set while `connection` holds a cause: the statistics check this, not the lock.
    connection_refused: AtomicBool,
}

impl Refusals {
    /// Records a refusal; true when the topic was not refused before (the caller logs it).
    pub fn refuse(&self, topic: &str, error: &str) -> bool {
        self.topics.lock().unwrap().insert(topic.to_string(), error.to_string()).is_none()
    }

    /// Forgets a topic Kafka accepted; true when it was refused until now.
    pub fn accept(&self, topic: &str) -> bool {
        self.topics.lock().unwrap().remove(topic).is_some()
    }

    /// A librdkafka client's error: when the broker answers but the TLS handshake or the SASL
    /// login fails (a setting to fix, not an outage to wait out), records it as the connection's
    /// refusal and, for a certificate librdkafka could not verify, has `check` find out why.
    /// `/healthz` then names that cause instead of an unreachable Kafka.
    pub fn on_client_error(self: &Arc<Self>, client: &str, error: &KafkaError, reason: &str, check: Option<&TlsCheck>) {
        let words = crate::rdlog::without_timing(reason);
        let cause = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::SSL) => format!("TLS: {words}"),
            Some(RDKafkaErrorCode::Authentication) => format!("SASL: {words}"),
            // With TLS 1.3 the server checks the client's certificate after the handshake: its
            // refusal (an alert such as "certificate required") arrives as a failed receive.
            Some(RDKafkaErrorCode::BrokerTransportFailure) if reason.contains("SSL routines") => {
                format!("TLS: {words}")
            }
            _ => return,
        };
        self.refuse_connection(&cause);
        if let Some(check) = check {
            let refusals = Arc::clone(self);
            check.after_error(client, reason, move |finding| refusals.explain_connection(&finding));
        }
    }

    /// Records why a connection failed its TLS handshake or SASL authentication.
    pub fn refuse_connection(&self, cause: &str) {
        *self.connection.lock().unwrap() = Some(cause.to_string());
        self.connection_refused.store(true, Ordering::Relaxed);
    }

    /// Adds what the agent's own check found to the connection's refusal, while there is one.
    pub fn explain_connection(&self, finding: &str) {
        if self.connection_refused.load(Ordering::Relaxed) {
            *self.connection_finding.lock().unwrap() = Some(finding.to_string());
        }
    }

    /// A broker connection is up: forgets the connection's refusal.
    pub fn accept_connection(&self) {
        if self.connection_refused.swap(false, Ordering::Relaxed) {
            self.connection.lock().unwrap().take();
            self.connection_finding.lock().unwrap().take();
        }
    }

    /// Why the connection is refused, the agent's own finding first (librdkafka's words guess).
    pub fn connection(&self) -> Option<String> {
        let cause = self.connection.lock().unwrap().clone()?;
        Some(match self.connection_finding.lock().unwrap().as_deref() {
            Some(finding) => format!("the broker's certificate fails verification: {finding}; {cause}"),
            None => cause,
        })
    }

    pub fn len(&self) -> usize {
        self.topics.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every refused topic and its error, by name.
    pub fn list(&self) -> Vec<(String, String)> {
        self.topics.lock().unwrap().iter().map(|(t, e)| (t.clone(), e.clone())).collect()
    }
}

/// What the output side is configured with, for `/healthz`.
#[derive(Debug, Clone, Copy, Default)]
struct OutputShape {
    configured: bool,
    spool: bool,
}

/// The process's status, shared by the pipeline and the endpoint.
#[derive(Debug)]
pub struct Status {
    pub started: Instant,
    pub metrics: Arc<Metrics>,
    connectors: Mutex<Vec<Arc<Connector>>>,
    /// `None` until the pipeline has started.
    output: Mutex<Option<OutputShape>>,
    /// When each reason `/healthz` gives was first seen (by its key), while it lasts.
    since: Mutex<HashMap<String, SystemTime>>,
    /// The running threads' heartbeats (a thread that ended is gone from here).
    beats: Mutex<Vec<Weak<Beat>>>,
    /// Topics Kafka refuses now (written by the Kafka output).
    pub refused: Arc<Refusals>,
}

/// One reason the agent is not ready, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unready {
    pub reason: String,
    pub since: SystemTime,
}

impl Unready {
    /// The reasons on one line, `; `-separated (`/healthz`'s `reason`).
    pub fn joined(all: &[Unready]) -> String {
        all.iter().map(|u| u.reason.as_str()).collect::<Vec<_>>().join("; ")
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::new(Arc::new(Metrics::default()))
    }
}

impl Status {
    pub fn new(metrics: Arc<Metrics>) -> Status {
        Status {
            started: Instant::now(),
            metrics,
            connectors: Mutex::new(Vec::new()),
            output: Mutex::new(None),
            since: Mutex::new(HashMap::new()),
            beats: Mutex::new(Vec::new()),
            refused: Arc::default(),
        }
    }

    /// Makes `names` the connectors of `kind`, in that order: existing ones of the same name are
    /// kept (flag and counters), others are created, and the rest of that kind are dropped.
    /// Gauges of kept ones restart from 0 (their new owner sets them).
    pub fn install(&self, kind: Kind, names: &[&str]) -> Vec<Arc<Connector>> {
        let mut all = self.connectors.lock().unwrap();
        let installed: Vec<Arc<Connector>> = names
            .iter()
            .map(|&n| {
                let c = all.iter().find(|c| c.kind == kind && c.name == n).cloned();
                let c = c.unwrap_or_else(|| Arc::new(Connector::new(n, kind)));
                c.open_files.store(0, Ordering::Relaxed);
                c.set_failure(None);
                c
            })
            .collect();
        all.retain(|c| c.kind != kind);
        all.extend(installed.iter().cloned());
        installed
    }

    /// Every connector, inputs first, each kind in config order.
    pub fn connectors(&self) -> Vec<Arc<Connector>> {
        let mut all = self.connectors.lock().unwrap().clone();
        all.sort_by_key(|c| c.kind == Kind::Sink);
        all
    }

    pub fn find(&self, name: &str) -> Option<Arc<Connector>> {
        self.connectors.lock().unwrap().iter().find(|c| c.name == name).cloned()
    }

    /// Records whether inputs ship to an output, and whether it may spool.
    pub fn set_output(&self, configured: bool, spool: bool) {
        *self.output.lock().unwrap() = Some(OutputShape { configured, spool });
    }

    /// `Ok` when events can reach Kafka now and every input and sink works; else every reason,
    /// each with when it was first seen. Not ready: starting; no Kafka broker connected; Kafka
    /// counted unreachable (outstanding events unacknowledged for `unhealthy_after`: a frozen
    /// broker keeps its connection) while events go to the spool or wait; an input or a sink
    /// FAILED. Called by `/healthz` and by the pipeline every second, so `since` is when the
    /// condition began, to the second.
    pub fn readiness(&self) -> Result<(), Vec<Unready>> {
        let m = &self.metrics;
        let mut now: Vec<(String, String)> = Vec::new();
        match *self.output.lock().unwrap() {
            None => now.push(("starting".into(), "starting".into())),
            Some(out) if out.configured => {
                let spool = match (out.spool, Metrics::get(&m.spool_writable) == 1) {
                    (false, _) => "no spool: reading waits",
                    (true, true) => "events go to the spool",
                    (true, false) => "and the spool cannot take events",
                };
                if let Some(cause) = self.refused.connection() {
                    now.push((
                        "output.connection".into(),
                        format!("output: Kafka refuses the connection ({cause}); fix the ssl/sasl settings; {spool}"),
                    ));
                } else if Metrics::get(&m.output_brokers_up) == 0 {
                    now.push(("output.brokers".into(), format!("output: no Kafka broker connected; {spool}")));
                } else if Metrics::get(&m.output_spooling) == 1 || Metrics::get(&m.output_stalled) == 1 {
                    now.push((
                        "output.stalled".into(),
                        format!("output: Kafka does not acknowledge events (unreachable); {spool}"),
                    ));
                }
                for (topic, error) in self.refused.list() {
                    now.push((
                        format!("output.refused:{topic}"),
                        format!("output: Kafka refuses topic {topic} ({error}); its events are held and sent again every backoff.max, not spooled"),
                    ));
                }
            }
            Some(_) => {}
        }
        for c in self.connectors() {
            if let ("FAILED", trace) = c.state() {
                let kind = if c.kind == Kind::Sink { "sink" } else { "input" };
                now.push((format!("{kind}:{}", c.name), format!("{kind} {}: {}", c.name, trace.unwrap_or_default())));
            }
        }
        let mut since = self.since.lock().unwrap();
        since.retain(|k, _| now.iter().any(|(n, _)| n == k));
        if now.is_empty() {
            return Ok(());
        }
        let at = SystemTime::now();
        Err(now.into_iter().map(|(key, reason)| Unready { reason, since: *since.entry(key).or_insert(at) }).collect())
    }

    /// A new heartbeat for the thread `name`, watched by [`Status::liveness`] while it is held.
    pub fn heartbeat(&self, name: &str) -> Heartbeat {
        let hb = Heartbeat::detached(name);
        let mut beats = self.beats.lock().unwrap();
        beats.retain(|b| b.strong_count() > 0);
        beats.push(Arc::downgrade(&hb.0));
        hb
    }

    /// `Ok` with the names of the threads watched when every one of them turned its loop within
    /// `quiet`; else each stuck thread with how long it has been quiet.
    pub fn liveness(&self, quiet: Duration) -> Result<Vec<String>, Vec<(String, Duration)>> {
        let beats: Vec<Heartbeat> =
            self.beats.lock().unwrap().iter().filter_map(Weak::upgrade).map(Heartbeat).collect();
        let stuck: Vec<(String, Duration)> =
            beats.iter().map(|b| (b.0.name.clone(), b.quiet_for())).filter(|(_, q)| *q > quiet).collect();
        match stuck.is_empty() {
            true => Ok(beats.iter().map(|b| b.0.name.clone()).collect()),
            false => Err(stuck),
        }
    }

    /// [`Status::readiness`] with its reasons joined into one line.
    pub fn health(&self) -> Result<(), String> {
        self.readiness().map_err(|r| Unready::joined(&r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_refusal_reads_the_same_at_every_attempt() {
        let refused = Arc::new(Refusals::default());
        let (ssl, sasl) =
            (KafkaError::Global(RDKafkaErrorCode::SSL), KafkaError::Global(RDKafkaErrorCode::Authentication));
        let tls = "ssl://b:9093/bootstrap: SSL handshake failed: certificate verify failed";
        refused.on_client_error("output", &ssl, &format!("{tls} (after 5ms in state SSL_HANDSHAKE)"), None);
        assert_eq!(refused.connection(), Some(format!("TLS: {tls}")));
        let login = "sasl_ssl://b:9093/1: SASL authentication error: Authentication failed";
        let again = format!("{login} (after 12ms in state AUTH_REQ, 3 identical error(s) suppressed)");
        refused.on_client_error("output", &sasl, &again, None);
        assert_eq!(refused.connection(), Some(format!("SASL: {login}")));
    }

    #[test]
    fn install_keeps_flags_and_counters_of_the_same_name() {
        let s = Status::default();
        let first = s.install(Kind::Source, &["a", "b"]);
        first[0].paused.store(true, Ordering::Relaxed);
        first[0].events.store(5, Ordering::Relaxed);
        let again = s.install(Kind::Source, &["a", "c"]);
        assert!(Arc::ptr_eq(&first[0], &again[0]));
        assert_eq!(again[0].state().0, "PAUSED");
        assert_eq!(again[0].events.load(Ordering::Relaxed), 5);
        assert!(s.find("b").is_none(), "removed inputs are dropped");
        // A sink of the same name is a different connector.
        s.install(Kind::Sink, &["s"]);
        let names: Vec<_> = s.connectors().iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["a", "c", "s"]);
    }

    #[test]
    fn liveness_watches_held_heartbeats_and_forgets_ended_threads() {
        let s = Status::default();
        let a = s.heartbeat("reader");
        let b = s.heartbeat("output");
        a.beat();
        b.beat();
        assert_eq!(s.liveness(Duration::from_secs(5)), Ok(vec!["reader".to_string(), "output".to_string()]));
        std::thread::sleep(Duration::from_millis(60));
        a.beat();
        let stuck = s.liveness(Duration::from_millis(50)).unwrap_err();
        assert_eq!(stuck.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["output"]);
        assert!(stuck[0].1 >= Duration::from_millis(50));
        drop(b);
        assert_eq!(
            s.liveness(Duration::from_millis(50)),
            Ok(vec!["reader".to_string()]),
            "an ended thread is not watched"
        );
    }

    #[test]
    fn failed_input_only_when_nothing_is_open() {
        let s = Status::default();
        let c = &s.install(Kind::Source, &["a"])[0];
        c.set_failure(Some("cannot open /var/log/x: permission denied".into()));
        assert_eq!(c.state(), ("FAILED", Some("cannot open /var/log/x: permission denied".into())));
        c.open_files.store(1, Ordering::Relaxed);
        assert_eq!(c.state().0, "RUNNING");
    }

    #[test]
    fn ready_only_while_events_reach_kafka_and_every_connector_works() {
        let s = Status::default();
        assert_eq!(s.health(), Err("starting".into()));
        s.set_output(true, false);
        assert_eq!(s.health(), Err("output: no Kafka broker connected; no spool: reading waits".into()));
        Metrics::set(&s.metrics.output_brokers_up, 1);
        assert!(s.health().is_ok());
        // Connected but not acknowledging (a frozen broker): the output spools.
        s.set_output(true, true);
        Metrics::set(&s.metrics.spool_writable, 1);
        Metrics::set(&s.metrics.output_spooling, 1);
        assert_eq!(
            s.health(),
            Err("output: Kafka does not acknowledge events (unreachable); events go to the spool".into())
        );
        Metrics::set(&s.metrics.output_spooling, 0);
        assert!(s.health().is_ok());
        // The same without a spool: reading waits.
        s.set_output(true, false);
        Metrics::set(&s.metrics.output_stalled, 1);
        assert_eq!(
            s.health(),
            Err("output: Kafka does not acknowledge events (unreachable); no spool: reading waits".into())
        );
        Metrics::set(&s.metrics.output_stalled, 0);
        assert!(s.health().is_ok());
        // A refused topic is named with Kafka's error until Kafka takes it.
        assert!(s.refused.refuse("audit", "Broker: Topic authorization failed"));
        assert!(!s.refused.refuse("audit", "Broker: Topic authorization failed"), "known already");
        assert_eq!(
            s.health(),
            Err("output: Kafka refuses topic audit (Broker: Topic authorization failed); its events are held and sent again every backoff.max, not spooled".into())
        );
        assert!(s.refused.accept("audit"));
        assert!(s.health().is_ok());
        // A connection refused in the TLS handshake is named, also while no broker is connected,
        // until a broker connection is up.
        Metrics::set(&s.metrics.output_brokers_up, 0);
        s.refused.refuse_connection("TLS: SSL handshake failed: certificate verify failed");
        assert_eq!(
            s.health(),
            Err("output: Kafka refuses the connection (TLS: SSL handshake failed: certificate verify failed); fix the ssl/sasl settings; no spool: reading waits".into())
        );
        // The agent's own finding comes first, and goes with the refusal.
        s.refused.explain_connection("certificate has expired");
        assert_eq!(
            s.refused.connection().as_deref(),
            Some("the broker's certificate fails verification: certificate has expired; TLS: SSL handshake failed: certificate verify failed")
        );
        Metrics::set(&s.metrics.output_brokers_up, 1);
        s.refused.accept_connection();
        assert!(s.health().is_ok());
        s.refused.explain_connection("a finding after the connection came up");
        assert_eq!(s.refused.connection(), None, "a late finding explains no refusal");
        let input = &s.install(Kind::Source, &["app"])[0];
        input.set_failure(Some("cannot open /var/log/app.log: permission denied".into()));
        let sink = &s.install(Kind::Sink, &["s"])[0];
        sink.set_failure(Some("disk full".into()));
        let first = s.readiness().unwrap_err();
        let reasons: Vec<&str> = first.iter().map(|u| u.reason.as_str()).collect();
        assert_eq!(reasons, ["input app: cannot open /var/log/app.log: permission denied", "sink s: disk full"]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = s.readiness().unwrap_err();
        assert_eq!(first, again, "since is when each reason was first seen");
        sink.set_failure(None);
        input.set_failure(None);
        assert!(s.health().is_ok());
        sink.set_failure(Some("disk full".into()));
        assert!(s.readiness().unwrap_err()[0].since > first[1].since, "a reason that came back starts again");
    }
}
