//! The benchmark's smoke run, as CI runs it: every installed target must deliver every line of a
//! small corpus in every case (no timing is judged here; figures come from full runs).

use std::path::Path;
use std::process::Command;

#[test]
fn smoke_run_delivers_every_line_for_every_installed_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The harness starts the agent binary: make sure this profile's build of it exists.
    let status = Command::new(env!("CARGO")).args(["build", "-q", "-p", "agent"]).current_dir(&root).status().unwrap();
    assert!(status.success());
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run", "--smoke", "--cases", "catchup,many,live,restart,crash,ratelimit,outage,container", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "smoke run failed:\n{stderr}\n{}", String::from_utf8_lossy(&run.stdout));
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    // The agent (both codecs) and the ceiling always run; peers run when installed.
    for t in ["agent (raw)", "agent (json)", "librdkafka ceiling"] {
        assert!(md.contains(&format!("| {t} |")), "{t} missing from\n{md}");
    }
    // The test command installs the peers first (scripts/test.sh sets BENCH_REQUIRE_PEERS): then
    // they must have run, not been skipped.
    if std::env::var_os("BENCH_REQUIRE_PEERS").is_some() {
        for t in [
            "Filebeat",
            "Filebeat (its JSON events)",
            "Filebeat tuned",
            "Filebeat disk queue",
            "Kafka Connect FileStream",
        ] {
            assert!(md.contains(&format!("| {t} |")), "{t} missing from\n{md}");
            assert!(!md.contains(&format!("| {t} | skipped: not installed")), "{t} not installed:\n{md}");
        }
    }
    let measured = csv.lines().skip(1).filter(|l| l.contains(",true,")).count();
    let incomplete = csv.lines().skip(1).filter(|l| l.contains(",false,")).count();
    assert!(measured >= 9, "expected at least 9 measured samples:\n{csv}");
    assert_eq!(incomplete, 0, "{csv}");
    assert!(out.path().join("chart-catchup.svg").exists());
    // The outage case ran on the agent: a row with a catch-up time, not a skip.
    assert!(md.contains("### Broker outage while writing"), "{md}");
    assert!(csv.lines().any(|l| l.starts_with("outage,agent (raw),") && l.contains(",true,")), "{csv}");
}
