//! The `agent` command line: run the pipeline, or check a config or the Kafka connection.

use agent::config::{Config, LogLevel, LoggingConfig};
use agent::http::Server;
use agent::logging::SizeRotatingFile;
use agent::metrics::Metrics;
use agent::pipeline::{self, RunOptions};
use agent::registry::Recovery;
use agent::shutdown::Shutdown;
use agent::status::Status;
use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

// With the `jemalloc` feature, Rust's allocations go to jemalloc directly (sized deallocation);
// C's `malloc` is jemalloc's too (`tikv-jemalloc-sys`'s unprefixed symbols).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("the `jemalloc` and `mimalloc` features each replace the allocator: choose one");
// With the `mimalloc` feature, both go to mimalloc (`override` replaces C's `malloc`/`free`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "agent", version, about = "Tails log files and ships every line to Kafka, at least once")]
struct Cli {
    /// Configuration file.
    #[arg(short = 'c', long, global = true, default_value = "agent.yml")]
    config: PathBuf,
    /// Overrides `path.data` (registry and agent id).
    #[arg(long = "path.data", global = true)]
    path_data: Option<PathBuf>,
    /// When the registry is corrupt, start anyway reading every file from its beginning or its end.
    #[arg(long, value_enum)]
    registry_recovery: Option<RecoveryArg>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checks the configuration or the output.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
    /// Runs Kafka Connect standalone files as they are: a worker .properties file and
    /// FileStreamSource / FileStreamSink connector .properties files (`--config` is not read).
    ConnectStandalone {
        worker: PathBuf,
        #[arg(required = true)]
        connectors: Vec<PathBuf>,
    },
    /// Prints the agent.yml equivalent to Kafka Connect standalone files.
    ConvertConnect {
        worker: PathBuf,
        #[arg(required = true)]
        connectors: Vec<PathBuf>,
    },
    /// Shows the registry, or takes one over from Filebeat.
    Registry {
        #[command(subcommand)]
        what: RegistryWhat,
    },
}

#[derive(Subcommand, Debug)]
enum RegistryWhat {
    /// Prints every file the registry knows: input, path, device, inode, offset, size now, last seen.
    Show,
    /// Takes over Filebeat 8.x's registry from DIR (its `registry/filebeat` store directory, or the
    /// registry directory holding it) into the agent's empty registry. The agent does this by itself
    /// at its first start when the store is under its own registry directory.
    ImportFilebeat { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
enum TestWhat {
    /// Loads and validates the configuration; exits non-zero with the key and line on error.
    Config,
    /// Connects to Kafka and reports the topic's partitions and leaders.
    Output,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum RecoveryArg {
    Beginning,
    End,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration the command line names (again on every SIGHUP).
type Loader = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::ConvertConnect { worker, connectors }) = &cli.command {
        print!("{}", agent::connect::translate(worker, connectors)?);
        return Ok(());
    }
    let load: Loader = {
        let (command, path, path_data) = (cli.command.as_ref(), cli.config.clone(), cli.path_data.clone());
        let connect = match command {
            Some(Command::ConnectStandalone { worker, connectors }) => Some((worker.clone(), connectors.clone())),
            _ => None,
        };
        Arc::new(move || {
            let mut config = match &connect {
                Some((worker, connectors)) => {
                    let yaml = agent::connect::translate(worker, connectors)?;
                    Config::from_str_at(&yaml, Path::new("(translated from Kafka Connect files)"))?
                }
                None => Config::load(&path)?,
            };
            if let Some(p) = &path_data {
                config.path.data = p.clone();
            }
            Ok(config)
        })
    };
    let config = load()?;
    match cli.command {
        Some(Command::Test { what: TestWhat::Config }) => {
            check_writable(&config.path.data).with_context(|| {
                format!("path.data {} cannot be written (registry, spool, agent id)", config.path.data.display())
            })?;
            let output = config.kafka().map_or_else(|| "none".to_string(), |k| format!("kafka {}", k.hosts.join(",")));
            println!("Config OK: {} input(s), {} sink(s), output {output}", config.inputs.len(), config.sinks.len());
            for note in &config.notes {
                println!("  note: {note}");
            }
            Ok(())
        }
        Some(Command::Test { what: TestWhat::Output }) => {
            let kafka = config.kafka().context("no output.kafka in the config")?;
            print!("{}", test_output(kafka)?);
            Ok(())
        }
        Some(Command::Registry { what: RegistryWhat::Show }) => {
            print!("{}", pipeline::show_registry(&config)?);
            Ok(())
        }
        Some(Command::Registry { what: RegistryWhat::ImportFilebeat { dir } }) => {
            let _log_guard = init_logging(&LoggingConfig::default(), &config.path.data)?;
            print!("{}", pipeline::import_filebeat(&config, &dir)?);
            Ok(())
        }
        Some(Command::ConnectStandalone { .. }) | None => run_agent(config, cli.registry_recovery, load),
        Some(Command::ConvertConnect { .. }) => unreachable!("handled above"),
    }
}

/// Whether the agent could write in `dir` (or create it): a file is created there and removed.
fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().context("no existing parent directory")?;
    }
    let probe = existing.join(format!(".agent-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("cannot create a file in {}", existing.display()))?;
    std::fs::remove_file(&probe)?;
    Ok(())
}

fn run_agent(config: Config, recovery: Option<RecoveryArg>, load: Loader) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Taken before anything else starts: a SIGTERM from the moment the agent's own log file
    // exists (or earlier) is a clean stop, not the default action that ends the process.
    let signals = {
        let _rt = rt.enter();
        Signals::new()?
    };
    let _log_guard = init_logging(&config.logging, &config.path.data)?;
    for note in &config.notes {
        tracing::info!(setting = %note.key, line = note.line, "Filebeat setting: {}", note.what);
    }
    raise_fd_limit();
    let shutdown = Shutdown::new();
    let opts = RunOptions {
        registry_recovery: recovery.map(|r| match r {
            RecoveryArg::Beginning => Recovery::Beginning,
            RecoveryArg::End => Recovery::End,
        }),
        hangups: Arc::new(AtomicU64::new(0)),
        status: Arc::new(Status::default()),
        reload: Arc::new(Mutex::new(None)),
    };
    if config.http.enabled {
        let hostname = pipeline::host_name();
        let name = config.name.clone().unwrap_or_else(|| hostname.clone());
        let server = rt.block_on(Server::bind(&config.http, opts.status.clone(), name, hostname))?;
        rt.spawn(server.serve());
    }
    let load_periodic = load.clone();
    // The configuration last handed to the pipeline (by a SIGHUP or a period).
    let last = Arc::new(Mutex::new(config.clone()));
    let on_hangup = {
        let (hangups, reload, status) = (opts.hangups.clone(), opts.reload.clone(), opts.status.clone());
        let last = last.clone();
        move || {
            hangups.fetch_add(1, Ordering::Relaxed);
            match load() {
                Ok(new) => {
                    tracing::info!("SIGHUP: configuration loaded; applying it (sinks reopen their files)");
                    *last.lock().unwrap() = new.clone();
                    *reload.lock().unwrap() = Some(new);
                }
                Err(e) => {
                    Metrics::inc(&status.metrics.config_reload_errors);
                    tracing::error!(
                        error = format!("{e:#}"),
                        "SIGHUP: the new configuration is invalid; the running one stays (sinks reopen their files)"
                    );
                }
            }
        }
    };
    // `reload.period`: read the config again and apply it when it changed (no sink reopens, no
    // log line when nothing changed).
    let period = config.reload.period.map(|p| p.0);
    let on_period = {
        let (reload, status) = (opts.reload.clone(), opts.status.clone());
        move || match load_periodic() {
            Ok(new) if *last.lock().unwrap() != new => {
                tracing::info!("reload.period: the configuration changed; applying it");
                *last.lock().unwrap() = new.clone();
                *reload.lock().unwrap() = Some(new);
            }
            Ok(_) => {}
            Err(e) => {
                Metrics::inc(&status.metrics.config_reload_errors);
                tracing::error!(
                    error = format!("{e:#}"),
                    "reload.period: the configuration is invalid; the running one stays"
                );
            }
        }
    };
    let worker = {
        let shutdown = shutdown.clone();
        std::thread::Builder::new().name("pipeline".into()).spawn(move || pipeline::run(config, opts, shutdown))?
    };
    rt.block_on(wait_for_signal(signals, &shutdown, on_hangup, period, on_period, &worker));
    let summary = worker.join().map_err(|_| anyhow::anyhow!("pipeline thread panicked"))??;
    let (unacknowledged, spooled) = (summary.unacknowledged, summary.spooled);
    tracing::info!(
        unacknowledged,
        spooled,
        "exiting: {unacknowledged} events not acknowledged (read again at the next start), {spooled} waiting in the spool (replayed at the next start)"
    );
    Ok(())
}

/// The signals the agent handles. Once created, a signal is kept for [`wait_for_signal`] even
/// when it arrives before that runs.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; must run inside the runtime that waits for them.
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Stops `shutdown` on the first SIGTERM or SIGINT (or when the pipeline ends by itself); calls
/// `on_hangup` at every SIGHUP (reload) and `on_period` every `period` when one is set.
async fn wait_for_signal(
    signals: Signals,
    shutdown: &Shutdown,
    on_hangup: impl Fn(),
    period: Option<std::time::Duration>,
    on_period: impl Fn(),
    worker: &std::thread::JoinHandle<anyhow::Result<pipeline::Summary>>,
) {
    let Signals { mut term, mut int, mut hup } = signals;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    // Without a period the timer never fires (a year, far past any run between restarts).
    let every = period.unwrap_or(std::time::Duration::from_secs(365 * 86_400));
    let mut reread = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received"); break; }
            _ = hup.recv() => on_hangup(),
            _ = reread.tick(), if period.is_some() => on_period(),
            _ = tick.tick() => if worker.is_finished() { break; },
        }
    }
    shutdown.stop();
}

fn init_logging(
    cfg: &LoggingConfig,
    data: &Path,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    let level = match cfg.level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warning => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    let mut guard = None;
    let file_writer = if cfg.to_files {
        let dir = cfg.files.path.clone().unwrap_or_else(|| data.join("logs"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create log directory {}", dir.display()))?;
        let files = &cfg.files;
        let (w, g) = match files.interval {
            Some(every) => {
                let mode = files.permissions.unwrap_or(0o600);
                let file =
                    agent::logging::TimeRotatingFile::open(&dir, &files.name, every.0.as_secs(), files.keepfiles, mode)
                        .with_context(|| format!("cannot open the log file in {}", dir.display()))?;
                tracing_appender::non_blocking(file)
            }
            None => {
                let mode = files.permissions.unwrap_or(0o600);
                let file = SizeRotatingFile::open(&dir, &files.name, files.rotateeverybytes.0, files.keepfiles, mode)
                    .with_context(|| format!("cannot open the log file in {}", dir.display()))?;
                tracing_appender::non_blocking(file)
            }
        };
        guard = Some(g);
        Some(w)
    } else {
        None
    };
    let writer = match (cfg.to_stderr, file_writer) {
        (true, Some(f)) => BoxMakeWriter::new(std::io::stderr.and(f)),
        (false, Some(f)) => BoxMakeWriter::new(f),
        (_, None) => BoxMakeWriter::new(std::io::stderr),
    };
    // Plain lines (no colours) under systemd/journald and in files.
    let ansi = cfg.to_stderr && !cfg.to_files && std::env::var_os("JOURNAL_STREAM").is_none() && is_tty_stderr();
    // Filebeat's selectors: debug lines only from the parts they name; other levels from all.
    let selectors = cfg.selectors.clone();
    let filter = tracing_subscriber::filter::filter_fn(move |meta| {
        *meta.level() != tracing::Level::DEBUG || agent::logging::selected(&selectors, meta.target())
    });
    let fmt = tracing_subscriber::fmt().with_max_level(level).with_writer(writer).with_target(false);
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        if cfg.json {
            fmt.json().flatten_event(true).finish().with(filter).init();
        } else {
            fmt.with_ansi(ansi).finish().with(filter).init();
        }
    }
    let unknown = agent::logging::unknown_selectors(&cfg.selectors);
    if !unknown.is_empty() {
        tracing::warn!(selectors = ?unknown, "logging.selectors: these name no part of the agent and select nothing");
    }
    Ok(guard)
}

fn is_tty_stderr() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

/// Raises the soft open-files limit to the hard limit: one descriptor per tailed file.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write to and read from the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `agent test output`: connects, fetches the topic's metadata, and describes partitions and leaders.
fn test_output(cfg: &agent::config::KafkaConfig) -> anyhow::Result<String> {
    use rdkafka::producer::Producer as _;
    let producer: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        agent::output::kafka::client_config(cfg).create()?;
    let topic = cfg.topic.as_static();
    let md = producer.client().fetch_metadata(topic.as_deref(), std::time::Duration::from_secs(10))?;
    let mut out = String::new();
    for b in md.brokers() {
        out.push_str(&format!("broker {} at {}:{}\n", b.id(), b.host(), b.port()));
    }
    for t in md.topics() {
        if let Some(err) = t.error() {
            out.push_str(&format!("topic {}: error {:?}\n", t.name(), err));
            continue;
        }
        out.push_str(&format!("topic {}: {} partitions\n", t.name(), t.partitions().len()));
        for p in t.partitions() {
            out.push_str(&format!("  partition {} leader {}\n", p.id(), p.leader()));
        }
    }
    if md.topics().is_empty() {
        out.push_str("no topic metadata returned (dynamic topic format: nothing to check)\n");
    }
    Ok(out)
}
