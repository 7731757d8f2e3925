//! librdkafka's own log lines and errors, in the agent's log.
//!
//! Owns the rate limit per cause. librdkafka repeats a connection error at every reconnect
//! attempt (several a second with several brokers), so each cause (client, facility or error
//! code, and the message with its numbers taken out) is logged at most once per [`EVERY`], and
//! the next line says how many were left out. Invariant: every cause reaches the log at its
//! level within [`EVERY`] of first happening; nothing is logged with a secret (librdkafka masks
//! them in its own lines).

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one cause is logged.
pub const EVERY: Duration = Duration::from_secs(60);

/// A client's librdkafka log: `client` names it in every line (`output`, `sink web`).
#[derive(Debug)]
pub struct RdLog {
    client: String,
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RdLog {
    pub fn new(client: impl Into<String>) -> RdLog {
        RdLog { client: client.into(), seen: Mutex::new(HashMap::new()) }
    }

    /// The client's name in the log (`output`, `sink web`).
    pub fn client(&self) -> &str {
        &self.client
    }

    /// A librdkafka log line (`ClientContext::log`).
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let Some(suppressed) = self.due(&shape(message)) else { return };
        let client = self.client.as_str();
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(client, fac, suppressed, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(client, fac, suppressed, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(client, fac, suppressed, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(client, fac, suppressed, "librdkafka: {message}"),
        }
    }

    /// A librdkafka error (`ClientContext::error`): a warning, as librdkafka retries it.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        // The same failure usually comes as a log line too: one cause, one line.
        let Some(suppressed) = self.due(&shape(reason)) else { return };
        tracing::warn!(client = self.client.as_str(), error = %error, suppressed, "librdkafka error: {reason}");
    }

    /// `Some(times left out since the last line)` when the cause may be logged now.
    fn due(&self, cause: &str) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap();
        let now = Instant::now();
        match seen.get_mut(cause) {
            Some((last, left_out)) if now.duration_since(*last) < EVERY => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now;
                Some(std::mem::take(left_out))
            }
            None => {
                if seen.len() > 1000 {
                    seen.clear();
                }
                seen.insert(cause.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// `reason` without librdkafka's suffix of the moment, " (after 12ms in state APIVERSION_QUERY,
/// 3 identical error(s) suppressed)": a cause shown while it lasts (`/healthz`) then reads the
/// same at every reconnect attempt instead of changing with each.
pub fn without_timing(reason: &str) -> &str {
    let Some(i) = reason.rfind(" (after ") else { return reason };
    let tail = &reason[i + " (after ".len()..];
    let millis = tail.split_once("ms").map(|(n, _)| n).unwrap_or_default();
    if tail.ends_with(')') && !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()) {
        &reason[..i]
    } else {
        reason
    }
}

/// A message as a cause: without librdkafka's thread prefix (`[thrd:...]: `), its count of
/// "identical error(s) suppressed" and its numbers (ports, milliseconds, attempts), so one cause
/// repeating with other numbers, or as a log line and as an error, counts once.
fn shape(message: &str) -> String {
    let body = match message.strip_prefix("[thrd:").and_then(|m| m.split_once("]: ")) {
        Some((_, rest)) => rest,
        None => message,
    };
    let digits_out: String = body.chars().filter(|c| !c.is_ascii_digit()).collect();
    digits_out.replace(",  identical error(s) suppressed", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_of_the_moment_is_taken_off_a_reason() {
        let base = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed";
        for suffix in [
            " (after 12ms in state AUTH_REQ)",
            " (after 0ms in state AUTH_REQ, 4 identical error(s) suppressed)",
            " (after 3ms)",
        ] {
            assert_eq!(without_timing(&format!("{base}{suffix}")), base);
        }
        // Anything else in parentheses is the cause's own words and stays.
        for kept in ["connect failed (after the handshake)", "x (after 12 tries)", "no suffix"] {
            assert_eq!(without_timing(kept), kept);
        }
    }

    #[test]
    fn a_cause_is_logged_once_per_period_and_others_still_are() {
        let l = RdLog::new("output");
        assert_eq!(l.due(&shape("connect to 127.0.0.1:9092 failed: Connection refused (after 0ms)")), Some(0));
        assert_eq!(l.due(&shape("connect to 127.0.0.1:9093 failed: Connection refused (after 1ms)")), None);
        assert_eq!(l.due("another cause"), Some(0));
        // The same failure as a log line (with librdkafka's thread prefix) and with its own count
        // of identical errors is the same cause.
        let line = "[thrd:127.0.0.1:9092/bootstrap]: connect to 127.0.0.1:9092 failed: Connection refused (after 0ms, 1 identical error(s) suppressed)";
        assert_eq!(l.due(&shape(line)), None);
        // Once the period is over, the line says how many were left out.
        l.seen.lock().unwrap().values_mut().for_each(|(t, _)| *t -= EVERY);
        assert_eq!(l.due(&shape("connect to 127.0.0.1:9094 failed: Connection refused (after 3ms)")), Some(2));
    }
}
