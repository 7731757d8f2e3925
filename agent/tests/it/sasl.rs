//! SASL against a real broker process, as far as one here can go (issue #14, item 6). tansu
//! 0.6.0 requires authentication with `--authentication` but cannot create a user then (see the
//! README's Security section), so no record goes through SASL here. What can be tested is the
//! refusal: a SCRAM login the broker rejects is named as such in the log and `/healthz`, for the
//! output and for a sink, and never shown as an unreachable Kafka.

use crate::common::*;
use crate::e2e::{signal, spawn_agent, wait_exit, Tansu};
use std::time::Duration;

#[test]
fn a_scram_login_the_broker_rejects_is_named_for_the_output_and_a_sink() {
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let tansu = Tansu::start_bare(&["--authentication"]);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        append_lines(&log, numbered("sasl", 0..10));
        let http_port = free_port();
        let credentials =
            format!("    username: agent\n    password: not-known-here\n    sasl.mechanism: {mechanism}\n");
        let sink = format!(
            "sinks:\n  - id: s\n    topics: [sasl]\n    file: \"{}\"\n    hosts: [\"{}\"]\n    group_id: g\n{credentials}",
            dir.path().join("sink.out").display(),
            tansu.bootstrap
        );
        let text =
            config(&dir.path().join("data"), std::slice::from_ref(&log), &tansu.bootstrap, "sasl", "", &credentials)
                .replace("logging:\n", &format!("http:\n  enabled: true\n  port: {http_port}\nlogging:\n"));
        let cfg = dir.path().join("agent.yml");
        std::fs::write(&cfg, format!("{text}{sink}")).unwrap();
        let mut agent = spawn_agent(&cfg);
        let mut health = String::new();
        let refused = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            health = crate::ops::http(http_port, "GET", "/healthz", None).1;
            health.contains("output: Kafka refuses the connection (SASL: ")
                && health.contains("sink s: Kafka refuses the connection (SASL: ")
        });
        signal(&agent, libc::SIGTERM);
        let _ = wait_exit(&mut agent, Duration::from_secs(30));
        let text = std::fs::read_to_string(cfg.with_file_name("agent.log")).unwrap_or_default();
        assert!(
            refused,
            "{mechanism}: /healthz names the SASL refusal for the output and the sink, not an unreachable Kafka: {health}\n{text}"
        );
        assert!(health.contains("SASL SCRAM authentication failed"), "{mechanism}: librdkafka's cause: {health}");
        assert!(
            text.lines().any(|l| l.contains("WARN Kafka refuses the connection (SASL: ") && l.contains("sink=s")),
            "{mechanism}: the sink says its connection is refused, not that no broker is connected:\n{text}"
        );
        for client in ["client=\"output\"", "client=\"sink s\""] {
            assert!(
                text.lines().any(|l| l.contains("SASL authentication error") && l.contains(client)),
                "{mechanism}: the log names the refused login for {client}:\n{text}"
            );
        }
    }
}
