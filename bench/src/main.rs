//! The benchmark harness: measures the agent and its peers as processes, on the same data, with
//! the same broker and settings, in one run. It drives binaries and never links agent internals.

mod kafka;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "bench", about = "Benchmark harness and Kafka helpers for the agent")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Reads a topic from the beginning of each partition and prints every record, one per line.
    Consume {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Stop after this many records.
        #[arg(long, default_value_t = u64::MAX)]
        expect: u64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Consume { bootstrap, topic, partitions, expect, timeout } => {
            let out = std::io::stdout();
            let mut out = out.lock();
            let t = Duration::from_secs(timeout);
            let spec = kafka::ReadSpec {
                bootstrap: &bootstrap,
                topic: &topic,
                partitions,
                expect,
                idle: t,
                timeout: t,
                sample: 0,
            };
            let rb = kafka::read_back(&spec, |v| {
                let _ = out.write_all(v);
                let _ = out.write_all(b"\n");
            })?;
            drop(out);
            eprintln!("{} records read from {topic}", rb.records);
            anyhow::ensure!(
                expect == u64::MAX || rb.records >= expect,
                "only {} of {expect} records arrived",
                rb.records
            );
            Ok(())
        }
    }
}
