//! The `http` section: the monitoring endpoint (Filebeat's `http.*` keys, plus Kafka Connect's
//! pause/resume calls behind `control` and a bearer `token`).

use super::{invalid, Invalid};
use serde::Deserialize;

/// Filebeat's default host and port for its monitoring endpoint.
pub const DEFAULT_HTTP_HOST: &str = "localhost";
pub const DEFAULT_HTTP_PORT: u16 = 5066;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "d_host")]
    pub host: String,
    #[serde(default = "d_port")]
    pub port: u16,
    /// Allows the mutating calls (`PUT /connectors/{name}/pause` and `resume`); off by default.
    #[serde(default)]
    pub control: bool,
    /// Bearer token every request must carry (`Authorization: Bearer <token>`); required when
    /// `host` is not a loopback address.
    #[serde(default)]
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { enabled: false, host: d_host(), port: d_port(), control: false, token: None }
    }
}
fn d_host() -> String {
    DEFAULT_HTTP_HOST.to_string()
}
fn d_port() -> u16 {
    DEFAULT_HTTP_PORT
}

impl HttpConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.host.trim().is_empty() {
            return Err(invalid("http.host", "must not be empty"));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(invalid("http.token", "must not be empty"));
        }
        if self.enabled && !is_loopback(&self.host) && self.token.is_none() {
            return Err(invalid(
                "http.token",
                format!("required when http.host ({}) is not a loopback address: anyone who can reach the port could read the stats and pause inputs", self.host),
            ));
        }
        Ok(())
    }
}

/// `localhost` or a loopback IP address (`127.0.0.0/8`, `::1`).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "10.0.0.1", "example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let mut c = HttpConfig { enabled: true, host: "0.0.0.0".into(), ..Default::default() };
        assert_eq!(c.validate().unwrap_err().key, "http.token");
        c.token = Some("s3cret".into());
        assert!(c.validate().is_ok());
        // Disabled: nothing listens, nothing to protect.
        let c = HttpConfig { host: "0.0.0.0".into(), ..Default::default() };
        assert!(c.validate().is_ok());
    }
}
