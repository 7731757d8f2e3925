//! The output through TLS, end to end (issue #14, item 6): the real binary, tansu behind a TLS
//! proxy (socat from Debian's packages; tansu 0.6.0's own TLS listener did not work here, see
//! ../shared/brokers-and-peers.md), certificates made by the openssl command for each test. Each
//! case either delivers every line or is refused with its cause named in the log and `/healthz`.

use crate::common::*;
use crate::e2e::{agent_log_tail, signal, spawn_agent, wait_exit, Tansu};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A CA, a server certificate for 127.0.0.1, one for another name, a client certificate, and
/// another CA that signed none of them.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Certs {
        let c = Certs { dir: dir.to_path_buf() };
        c.ca("ca");
        c.ca("other-ca");
        c.signed("server", "/CN=localhost", Some("subjectAltName=IP:127.0.0.1,DNS:localhost"));
        c.signed("server-elsewhere", "/CN=elsewhere.invalid", Some("subjectAltName=DNS:elsewhere.invalid"));
        c.signed("client", "/CN=agent", None);
        c
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(&self.dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn ca(&self, name: &str) {
        let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={name}"));
        self.openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "2", "-subj",
            &subj,
        ]);
    }

    fn signed(&self, name: &str, subject: &str, ext: Option<&str>) {
        self.signed_for(name, subject, ext, "2");
    }

    /// A certificate signed by `ca` valid for `days` (`"0"`: it expires the second it is made).
    fn signed_for(&self, name: &str, subject: &str, ext: Option<&str>, days: &str) {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        self.openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject]);
        let mut args = vec!["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
        args.extend(["-out", &pem, "-days", days]);
        let ext_file = format!("{name}.ext");
        if let Some(ext) = ext {
            std::fs::write(self.dir.join(&ext_file), format!("{ext}\n")).unwrap();
            args.extend(["-extfile", &ext_file]);
        }
        self.openssl(&args);
    }
}

/// socat terminating TLS on `port` in front of `target`, presenting certificate `server`; with
/// `client_ca`, it asks for a client certificate signed by that CA. Killed on drop.
struct TlsProxy(Child);

impl TlsProxy {
    /// `options`: more of socat's OPENSSL-LISTEN options, each after a comma.
    fn start(certs: &Certs, server: &str, client_ca: Option<&str>, port: u16, target: &str, options: &str) -> TlsProxy {
        let mut listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={}{options}",
            certs.path(&format!("{server}.pem")),
            certs.path(&format!("{server}.key"))
        );
        match client_ca {
            Some(ca) => listen += &format!(",cafile={},verify=1", certs.path(&format!("{ca}.pem"))),
            None => listen += ",verify=0",
        }
        let child = Command::new("socat")
            .args([listen, format!("TCP:{target}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (Debian's socat package; scripts/install-tools.sh installs it)");
        let addr = format!("127.0.0.1:{port}");
        wait_for("the TLS proxy to listen", Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok());
        TlsProxy(child)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the agent on 50 lines through a TLS proxy presenting `server` (asking for a client
/// certificate when `client_ca` is set), with `ssl` as the output's `ssl.*` keys. Returns how
/// many of the lines were read back (through the proxy, as a client with every certificate), and
/// what `/healthz` said at the end with the agent's log.
fn run(certs: &Certs, server: &str, client_ca: Option<&str>, ssl: &str, wait: Duration) -> (usize, String) {
    run_behind(certs, server, client_ca, "", ssl, wait)
}

/// tansu behind a TLS proxy, and a file of 50 lines to ship through it.
struct Behind {
    _tansu: Tansu,
    _proxy: TlsProxy,
    /// The proxy's address, the one to ship to.
    addr: String,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Behind {
    /// The proxy presents `server` (asks for a client certificate when `client_ca` is set), with
    /// more of socat's options in `proxy_options` (each after a comma).
    fn start(certs: &Certs, server: &str, client_ca: Option<&str>, proxy_options: &str) -> Behind {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        // tansu tells clients to come back to the proxy's address after the first metadata.
        let tansu = Tansu::start_behind("tls", 1, &addr);
        let proxy = TlsProxy::start(certs, server, client_ca, port, &tansu.bootstrap, proxy_options);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        append_lines(&log, numbered("tls", 0..50));
        Behind { _tansu: tansu, _proxy: proxy, addr, dir, log }
    }

    /// How many of the 50 lines arrived within `wait`, read back through the proxy as a client
    /// with every certificate.
    fn delivered(&self, certs: &Certs, wait: Duration) -> usize {
        let (ca, cert, key) = (certs.path("ca.pem"), certs.path("client.pem"), certs.path("client.key"));
        let props = [
            ("security.protocol", "ssl"),
            ("ssl.ca.location", ca.as_str()),
            ("ssl.certificate.location", cert.as_str()),
            ("ssl.key.location", key.as_str()),
            // The reader checks the chain only: one reader serves every server certificate here.
            ("ssl.endpoint.identification.algorithm", "none"),
        ];
        let seen = tally(&consume_with(&self.addr, "tls", 1, 50, wait, &props));
        numbered("tls", 0..50).iter().filter(|l| seen.contains_key(*l)).count()
    }
}

/// [`run`] with more of socat's options for the proxy (`proxy_options`, each after a comma).
fn run_behind(
    certs: &Certs,
    server: &str,
    client_ca: Option<&str>,
    proxy_options: &str,
    ssl: &str,
    wait: Duration,
) -> (usize, String) {
    let b = Behind::start(certs, server, client_ca, proxy_options);
    let cfg = b.dir.path().join("agent.yml");
    let http_port = free_port();
    let text = config(&b.dir.path().join("data"), std::slice::from_ref(&b.log), &b.addr, "tls", "", ssl)
        .replace("logging:\n", &format!("http:\n  enabled: true\n  port: {http_port}\nlogging:\n"));
    std::fs::write(&cfg, text).unwrap();
    let mut agent = spawn_agent(&cfg);
    let delivered = b.delivered(certs, wait);
    let health = crate::ops::http(http_port, "GET", "/healthz", None).1;
    signal(&agent, libc::SIGTERM);
    let _ = wait_exit(&mut agent, Duration::from_secs(30));
    (delivered, format!("/healthz: {health}\nlog:\n{}", agent_log_tail(&cfg)))
}

/// The real Filebeat 8.1.3 ships the 50 lines through a proxy presenting `server`'s certificate,
/// with `ssl` (the agent's `ssl.*` lines, as [`ssl`] writes them) under its `output.kafka`.
/// Returns how many arrived within `wait`, and Filebeat's log.
fn run_filebeat_behind(certs: &Certs, server: &str, proxy_options: &str, ssl: &str, wait: Duration) -> (usize, String) {
    use crate::filebeat::{spawn_filebeat, write_config, Reaped};
    let b = Behind::start(certs, server, None, proxy_options);
    let d = b.dir.path();
    // Filebeat's keys sit two spaces in; it sends the line alone with a format codec.
    let ssl: String = ssl.replace("    codec: raw\n", "").lines().map(|l| format!("{}\n", &l[2..])).collect();
    let text = format!(
        "filebeat.inputs:\n  - type: filestream\n    id: fb\n    paths: [\"{}\"]\npath.data: {}\n\
         output.kafka:\n  hosts: [\"{}\"]\n  topic: tls\n  codec.format:\n    string: '%{{[message]}}'\n{ssl}",
        b.log.display(),
        d.join("fb-data").display(),
        b.addr
    );
    let cfg = d.join("filebeat.yml");
    write_config(&cfg, &text);
    let mut fb = Reaped(spawn_filebeat(&cfg, d));
    let delivered = b.delivered(certs, wait);
    signal(&fb.0, libc::SIGTERM);
    let _ = wait_exit(&mut fb.0, Duration::from_secs(30));
    (delivered, std::fs::read_to_string(d.join("filebeat.log")).unwrap_or_default())
}

fn ssl(certs: &Certs, mode: &str, ca: &str, client_cert: bool) -> String {
    let mut s = format!(
        "    codec: raw\n    ssl.enabled: true\n    ssl.verification_mode: {mode}\n    ssl.certificate_authorities: [\"{}\"]\n",
        certs.path(&format!("{ca}.pem"))
    );
    if client_cert {
        s += &format!(
            "    ssl.certificate: \"{}\"\n    ssl.key: \"{}\"\n",
            certs.path("client.pem"),
            certs.path("client.key")
        );
    }
    s
}

/// The refusal names OpenSSL's reason for refusing the broker's certificate (the agent's own
/// check: librdkafka's words only say the verification failed, and guess at the CA), in the log
/// and first in `/healthz`.
fn assert_named(log: &str, reason: &str) {
    let named = format!("the broker's certificate fails verification: {reason}");
    assert!(log.contains(&format!("ERROR TLS: {named}")), "the log names the cause ({reason}):\n{log}");
    let health = log.lines().next().unwrap_or_default();
    assert!(
        health.contains(&format!("Kafka refuses the connection ({named}; TLS: ")),
        "/healthz names the cause ({reason}), not an unreachable Kafka: {health}"
    );
}

const DELIVERS: Duration = Duration::from_secs(30);
/// Long enough for librdkafka to try and log the handshake's failure a few times.
const REFUSED: Duration = Duration::from_secs(6);

#[test]
fn full_verification_with_a_client_certificate_delivers_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let (n, log) = run(&certs, "server", Some("ca"), &ssl(&certs, "full", "ca", true), DELIVERS);
    assert_eq!(n, 50, "every line through mutual TLS; log:\n{log}");
    let (n, log) = run(&certs, "server", Some("ca"), &ssl(&certs, "full", "ca", false), REFUSED);
    assert_eq!(n, 0, "{log}");
    assert!(log.contains("certificate required"), "the log names the missing client certificate:\n{log}");
    assert!(log.contains("/healthz: {\"reason\":\"output: Kafka refuses the connection (TLS: "), "{log}");
}

#[test]
fn a_server_certificate_for_another_name_passes_certificate_mode_and_fails_full() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let (n, log) = run(&certs, "server-elsewhere", None, &ssl(&certs, "certificate", "ca", false), DELIVERS);
    assert_eq!(n, 50, "certificate mode checks the chain, not the name; log:\n{log}");
    let (n, log) = run(&certs, "server-elsewhere", None, &ssl(&certs, "full", "ca", false), REFUSED);
    assert_eq!(n, 0, "{log}");
    assert!(log.contains("certificate verify failed"), "the log has librdkafka's words:\n{log}");
    assert_named(&log, "IP address mismatch");
}

#[test]
fn a_wrong_ca_is_named_in_the_log_and_verification_none_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let (n, log) = run(&certs, "server", None, &ssl(&certs, "full", "other-ca", false), REFUSED);
    assert_eq!(n, 0, "{log}");
    assert!(log.contains("certificate verify failed"), "the log has librdkafka's words:\n{log}");
    assert_named(&log, "unable to get local issuer certificate");
    let (n, log) = run(&certs, "server", None, &ssl(&certs, "none", "other-ca", false), DELIVERS);
    assert_eq!(n, 50, "verification none trusts any certificate; log:\n{log}");
}

/// An expired server certificate is refused and named as expired, not as an unreachable Kafka.
/// librdkafka reports OpenSSL's handshake error, which does not say why the verification failed
/// (and guesses at the CA): the agent's own check names the expiry.
#[test]
fn an_expired_server_certificate_is_refused_and_named_expired() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    certs.signed_for("server-expired", "/CN=localhost", Some("subjectAltName=IP:127.0.0.1,DNS:localhost"), "0");
    // Valid from the second it was made to that same second.
    std::thread::sleep(Duration::from_millis(1100));
    let (n, log) = run(&certs, "server-expired", None, &ssl(&certs, "full", "ca", false), REFUSED);
    assert_eq!(n, 0, "{log}");
    assert!(log.contains("certificate verify failed"), "the log has librdkafka's words:\n{log}");
    assert_named(&log, "certificate has expired");
}

/// The agent ships 50 lines through a proxy with `server`'s certificate (asking for a client
/// certificate) and its own sink, a consumer with the output's `ssl.*` keys (the client
/// certificate included), writes them to a file. Returns the lines written, once 50 are or after
/// `wait`, and the agent's log.
fn run_sink(certs: &Certs, server: &str, wait: Duration) -> (Vec<String>, String) {
    let b = Behind::start(certs, server, Some("ca"), "");
    let (dir, addr) = (b.dir.path(), &b.addr);
    let out = dir.join("sink.out");
    let ssl_keys = ssl(certs, "full", "ca", true);
    let sink = format!(
        "sinks:\n  - id: s\n    topics: [tls]\n    file: \"{}\"\n    hosts: [\"{addr}\"]\n    group_id: g\n    initial_offset: earliest\n    commit_interval: 200ms\n{}",
        out.display(),
        ssl_keys.replace("    codec: raw\n", "")
    );
    let cfg = dir.join("agent.yml");
    let text = config(&dir.join("data"), std::slice::from_ref(&b.log), addr, "tls", "", &ssl_keys);
    std::fs::write(&cfg, format!("{text}{sink}")).unwrap();
    let mut agent = spawn_agent(&cfg);
    let written = || crate::sink::file_lines(&out);
    let rounds = wait.as_millis() / 100;
    let _ = (0..rounds).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        written().len() >= 50
    });
    signal(&agent, libc::SIGTERM);
    let _ = wait_exit(&mut agent, Duration::from_secs(30));
    let text = std::fs::read_to_string(cfg.with_file_name("agent.log")).unwrap_or_default();
    (written(), text)
}

/// A sink consumes through the same mutual TLS and writes every line in order.
#[test]
fn a_sink_consumes_through_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let (written, log) = run_sink(&certs, "server", DELIVERS);
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert_eq!(written, numbered("tls", 0..50), "every line once, in order (one partition); log:\n{tail:?}");
}

/// A sink refused by an expired broker certificate names the expiry in its own log line.
#[test]
fn a_sink_names_an_expired_broker_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    certs.signed_for("server-expired", "/CN=localhost", Some("subjectAltName=IP:127.0.0.1,DNS:localhost"), "0");
    std::thread::sleep(Duration::from_millis(1100));
    let (written, log) = run_sink(&certs, "server-expired", REFUSED);
    assert!(written.is_empty(), "{written:?}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR TLS: the broker's certificate fails verification: certificate has expired")
                && l.contains("client=\"sink s\"")),
        "the sink's log line names the expiry:\n{log}"
    );
}

/// `ssl.supported_protocols` bounds the TLS version as the real Filebeat does: against a broker
/// that speaks TLS 1.2 at most, `[TLSv1.3]` is refused (the agent names the version), and
/// `[TLSv1.2, TLSv1.3]` delivers, for the agent and for Filebeat with the same keys.
#[test]
fn supported_protocols_bound_the_tls_version() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let at_most_1_2 = ",openssl-max-proto-version=TLS1.2";
    let only_1_3 = format!("{}    ssl.supported_protocols: [TLSv1.3]\n", ssl(&certs, "full", "ca", false));
    let (n, log) = run_behind(&certs, "server", None, at_most_1_2, &only_1_3, REFUSED);
    assert_eq!(n, 0, "{log}");
    assert!(log.contains("ssl.supported_protocols: every Kafka connection's TLS version is bounded"), "{log}");
    assert!(log.contains("protocol version"), "the log names the version refused:\n{log}");
    assert!(log.lines().next().unwrap_or_default().contains("Kafka refuses the connection (TLS: "), "{log}");
    let both = format!("{}    ssl.supported_protocols: [TLSv1.2, TLSv1.3]\n", ssl(&certs, "full", "ca", false));
    let (n, log) = run_behind(&certs, "server", None, at_most_1_2, &both, DELIVERS);
    assert_eq!(n, 50, "TLS 1.2 is allowed; log:\n{log}");
    // The real Filebeat, with the same keys against the same proxy, does the same.
    let (n, log) = run_filebeat_behind(&certs, "server", at_most_1_2, &only_1_3, REFUSED);
    // (Filebeat's log only says "client has run out of available brokers to talk to".)
    assert_eq!(n, 0, "Filebeat refuses TLS 1.2 with [TLSv1.3] too; its log:\n{log}");
    let (n, log) = run_filebeat_behind(&certs, "server", at_most_1_2, &both, DELIVERS);
    assert_eq!(n, 50, "Filebeat delivers with [TLSv1.2, TLSv1.3]; its log:\n{log}");
}
