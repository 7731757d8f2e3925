//! The agent's own check of a broker's certificate, run when librdkafka reports that the TLS
//! handshake failed its certificate verification.
//!
//! librdkafka passes on OpenSSL's handshake error ("certificate verify failed") and adds a guess
//! that the CA setting is wrong. OpenSSL's reason (the certificate has expired, names another
//! host, comes from an unknown CA) only reaches `ssl.certificate.verify_cb`, which rust-rdkafka
//! does not expose. So the agent repeats the handshake itself, through the same OpenSSL, with
//! the same CA file and host-name rule as the client, and reads the reason from that.
//!
//! Owns the time of the last check per broker. Invariants: a broker is checked at most once per
//! [`crate::rdlog::EVERY`] (librdkafka retries a refused connection every second or so); a check
//! runs on its own thread, never on one of librdkafka's; its finding is only ever OpenSSL's own
//! verification result, never a guess.

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the check waits to connect and for each read or write of the handshake.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How a client verifies its brokers' certificates, for the agent's own check.
#[derive(Debug)]
pub struct TlsCheck {
    rule: Rule,
    /// When each broker (`host:port`) was last checked.
    last: Mutex<HashMap<String, Instant>>,
}

/// The client's verification settings, as librdkafka applies them.
#[derive(Debug, Clone)]
struct Rule {
    /// `ssl.ca.location`: a CA file or directory; none means the system's default CAs.
    ca: Option<PathBuf>,
    /// `ssl.endpoint.identification.algorithm: https`: the certificate must name the host.
    hostname: bool,
}

impl TlsCheck {
    /// The check for a client with these librdkafka properties; `None` when it does not verify
    /// certificates (no TLS, or verification turned off).
    pub fn from_client_config(cc: &ClientConfig) -> Option<TlsCheck> {
        let protocol = cc.get("security.protocol").unwrap_or("plaintext").to_ascii_lowercase();
        let verifies = cc.get("enable.ssl.certificate.verification") != Some("false");
        if !protocol.ends_with("ssl") || !verifies {
            return None;
        }
        let rule = Rule {
            ca: cc.get("ssl.ca.location").map(PathBuf::from),
            hostname: cc.get("ssl.endpoint.identification.algorithm").unwrap_or("https") == "https",
        };
        Some(TlsCheck { rule, last: Mutex::new(HashMap::new()) })
    }

    /// After a librdkafka error: when `reason` says a broker's certificate failed verification,
    /// checks that broker's certificate on a thread of its own (unless it was checked less than
    /// [`crate::rdlog::EVERY`] ago), logs OpenSSL's reason for `client` and hands it to `found`.
    pub fn after_error(&self, client: &str, reason: &str, found: impl FnOnce(String) + Send + 'static) {
        let Some(broker) = failed_broker(reason) else { return };
        {
            let mut last = self.last.lock().unwrap();
            let now = Instant::now();
            if last.get(&broker).is_some_and(|t| now.duration_since(*t) < crate::rdlog::EVERY) {
                return;
            }
            last.insert(broker.clone(), now);
        }
        let (rule, client) = (self.rule.clone(), client.to_string());
        let spawned = std::thread::Builder::new().name("tls-check".into()).spawn(move || match rule.check(&broker) {
            Ok(Some(cause)) => {
                tracing::error!(client, broker, "TLS: the broker's certificate fails verification: {cause}");
                found(cause);
            }
            Ok(None) => tracing::info!(
                client,
                broker,
                "TLS: the agent's own check of the broker's certificate passed; see librdkafka's error"
            ),
            Err(e) => tracing::info!(client, broker, "TLS: the agent could not check the broker's certificate: {e}"),
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the TLS check: {e}");
        }
    }
}

impl Rule {
    /// Handshakes with `broker` as the client would: `Ok(Some(reason))` when OpenSSL refuses its
    /// certificate, `Ok(None)` when it accepts it (the handshake may still fail after that, for
    /// instance for want of a client certificate: not this check's business).
    fn check(&self, broker: &str) -> Result<Option<String>, String> {
        let (host, _) = broker.rsplit_once(':').ok_or("no port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = broker.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
        builder.set_verify(SslVerifyMode::PEER);
        if let Some(ca) = &self.ca {
            // librdkafka loads only the configured CAs then, as the check must.
            builder.set_cert_store(openssl::x509::store::X509StoreBuilder::new().map_err(|e| e.to_string())?.build());
            let (file, dir) = if ca.is_dir() { (None, Some(ca.as_path())) } else { (Some(ca.as_path()), None) };
            builder.load_verify_locations(file, dir).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let mut config = builder.build().configure().map_err(|e| e.to_string())?;
        config.set_verify_hostname(self.hostname);
        // The server name (SNI) is sent for names only, as librdkafka does.
        config.set_use_server_name_indication(host.parse::<IpAddr>().is_err());
        match config.connect(host, stream) {
            Ok(_) => Ok(None),
            Err(HandshakeError::Failure(mid)) | Err(HandshakeError::WouldBlock(mid)) => {
                let result = mid.ssl().verify_result();
                Ok((result.as_raw() != 0).then(|| result.error_string().to_string()))
            }
            Err(HandshakeError::SetupFailure(e)) => Err(e.to_string()),
        }
    }
}

/// The broker (`host:port`) a librdkafka error names, when it reports a failed certificate
/// verification: `ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: ...certificate verify
/// failed...` gives `127.0.0.1:9093`.
fn failed_broker(reason: &str) -> Option<String> {
    if !reason.contains("certificate verify failed") {
        return None;
    }
    let rest = &reason[reason.find("ssl://")? + "ssl://".len()..];
    let broker = &rest[..rest.find('/')?];
    broker.contains(':').then(|| broker.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_is_read_from_a_failed_verification_only() {
        let reason = "ssl://127.0.0.1:17071/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified";
        assert_eq!(failed_broker(reason).as_deref(), Some("127.0.0.1:17071"));
        let sasl = "sasl_ssl://kafka-1.example:9093/1: SSL handshake failed: certificate verify failed";
        assert_eq!(failed_broker(sasl).as_deref(), Some("kafka-1.example:9093"));
        assert_eq!(
            failed_broker("ssl://[::1]:9093/bootstrap: certificate verify failed").as_deref(),
            Some("[::1]:9093")
        );
        assert_eq!(failed_broker("ssl://127.0.0.1:9093/bootstrap: Connection refused"), None);
        assert_eq!(failed_broker("certificate verify failed"), None);
    }

    #[test]
    fn only_a_client_that_verifies_over_tls_is_checked() {
        let cc = |pairs: &[(&str, &str)]| {
            let mut cc = ClientConfig::new();
            pairs.iter().for_each(|(k, v)| {
                cc.set(*k, *v);
            });
            TlsCheck::from_client_config(&cc).map(|c| (c.rule.ca, c.rule.hostname))
        };
        assert!(cc(&[("security.protocol", "plaintext")]).is_none());
        assert!(cc(&[("security.protocol", "sasl_plaintext")]).is_none());
        assert!(cc(&[("security.protocol", "ssl"), ("enable.ssl.certificate.verification", "false")]).is_none());
        assert_eq!(
            cc(&[("security.protocol", "sasl_ssl"), ("ssl.ca.location", "/ca.pem")]),
            Some((Some(PathBuf::from("/ca.pem")), true))
        );
        assert_eq!(
            cc(&[("security.protocol", "ssl"), ("ssl.endpoint.identification.algorithm", "none")]),
            Some((None, false))
        );
    }
}
