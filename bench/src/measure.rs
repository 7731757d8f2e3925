//! Measuring one run of one target: start it, follow the topic until every line is in, stop it,
//! collect its CPU time and peak RSS (`wait4` rusage of the target process), then confirm by
//! fetching every record back (count, and a sample checked against the regenerated lines).
//!
//! Progress during the run is followed with high watermarks (cheap, so the read-back does not
//! compete with the target for the 2 cores); completion is confirmed by fetching afterwards,
//! because tansu's watermarks can lag the records it serves.

use crate::broker::Broker;
use crate::corpus::{self, Corpus};
use crate::kafka::{read_back, ReadSpec, TopicReader};
use crate::targets::{Input, Settings, Target, Tools};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub secs: f64,
    pub bytes: u64,
    pub lines: u64,
    pub records: u64,
    pub cpu_s: f64,
    pub rss_kb: u64,
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub resume_s: Option<f64>,
    pub duplicates: Option<u64>,
    /// Restart cases: lines of the corpus that never arrived.
    pub lost: Option<u64>,
    /// Copytruncate case: lines lost though a copy or the file still held them afterwards.
    pub lost_on_disk: Option<u64>,
    /// Copytruncate case: lines written that no file held afterwards (written between a copy and
    /// its truncation), and rotations done.
    pub off_disk: Option<u64>,
    pub rotations: Option<u32>,
    /// Rate-limit case: the limit, and the rate measured over the limit.
    pub limit: Option<Limit>,
    pub limit_ratio: Option<f64>,
    pub complete: bool,
    pub note: String,
}

impl Sample {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
    pub fn cpu_s_per_gb(&self) -> f64 {
        self.cpu_s / (self.bytes as f64 / 1e9).max(1e-12)
    }
}

/// A started target process, with a sampler of its peak resident set.
pub struct Proc {
    pid: i32,
    peak_kb: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

pub struct Usage {
    pub cpu_s: f64,
    pub rss_kb: u64,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Proc> {
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        let (peak_kb, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, d) = (peak_kb.clone(), done.clone());
        // The peak resident set is sampled from /proc (`VmHWM`) while the process lives. Not
        // `wait4`'s `ru_maxrss`: Linux carries the pre-exec high-water mark of the forked harness
        // (hundreds of MB) into it.
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                p.fetch_max(hwm_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Ok(Proc { pid, peak_kb, done })
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the process and returns its resource usage.
    pub fn stop(self, grace: Duration) -> Usage {
        self.end(libc::SIGTERM, grace)
    }

    /// SIGKILL at once (a crash); reaps the process and returns its resource usage.
    pub fn kill(self) -> Usage {
        self.end(libc::SIGKILL, Duration::ZERO)
    }

    fn end(self, signal: libc::c_int, grace: Duration) -> Usage {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.pid, signal) };
        let deadline = Instant::now() + grace;
        loop {
            let mut status = 0;
            // SAFETY: zeroed rusage is a valid value to be overwritten by wait4.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if Instant::now() < deadline { libc::WNOHANG } else { 0 };
            if Instant::now() >= deadline {
                // SAFETY: as above.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
            // SAFETY: wait4 on our child with our own out-parameters.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid || r < 0 {
                self.done.store(true, Ordering::Relaxed);
                let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                let rss_kb = self.peak_kb.load(Ordering::Relaxed);
                return Usage { cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime), rss_kb };
            }
            self.peak_kb.fetch_max(hwm_kb(self.pid), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Proc {
    /// CPU seconds (user + system) the live process has used so far, from `/proc/<pid>/stat`:
    /// lets a case count only the CPU of a window (the live case's writing), not start-up's.
    pub fn cpu_s_so_far(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'; utime
        // and stime are the 14th and 15th fields of the line, the 12th and 13th after it.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ticks: f64 = rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<f64>().ok()).sum();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks / hz
    }
}

/// Peak resident set (`VmHWM`) of a live process, in KiB; 0 once it has exited.
fn hwm_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Follows the topic's watermark until `expect` records, or until nothing new arrived for
/// `stall`; returns the instant of the last progress seen (`since` if there was none) and the
/// watermark.
fn follow(ctx: &Ctx<'_>, topic: &str, expect: u64, from: u64, since: Instant) -> (Instant, u64) {
    follow_records(ctx, topic, expect, from, since, true)
}

/// [`follow`]; with `exact` false the watermark may count re-sent records too (after a restart),
/// so reaching `expect` is not the end: the topic must also have been quiet for 2 s.
fn follow_records(ctx: &Ctx<'_>, topic: &str, expect: u64, from: u64, since: Instant, exact: bool) -> (Instant, u64) {
    let (mut last, mut last_change, started) = (from, since, Instant::now());
    loop {
        let wm = ctx.broker.watermark(topic, ctx.settings.partitions);
        if wm > last {
            last = wm;
            last_change = Instant::now();
        }
        // tansu's watermark can stay a few records short of what it serves: within 0.5% of the
        // target and quiet for 2 s counts as done (the fetch-back then checks every line).
        let nearly = wm as f64 >= expect as f64 * 0.995 && last_change.elapsed() > Duration::from_secs(2);
        if (exact && wm >= expect) || nearly || last_change.max(started).elapsed() > ctx.stall {
            return (last_change, wm);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The line text inside a record value, for the codec the target uses.
fn line_of(target: Target, value: &[u8]) -> Option<String> {
    let mut text = match target {
        t if t.is_json() => {
            let v: serde_json::Value = serde_json::from_slice(value).ok()?;
            v["message"].as_str().map(str::to_string)?
        }
        _ => String::from_utf8_lossy(value).into_owned(),
    };
    // A Docker line's text keeps its newline through the container parser (as in Filebeat).
    if text.ends_with('\n') {
        text.pop();
    }
    Some(text)
}

/// Fetches every record back: how many arrived, how many distinct lines, and whether the sample
/// matches the regenerated corpus lines.
fn verify(
    broker: &Broker,
    topic: &str,
    s: &Settings,
    target: Target,
    corpus: &Corpus,
    idle: Duration,
) -> (u64, u64, bool) {
    let v = fetch_lines(broker, topic, s, target, corpus, idle);
    (v.records, v.distinct, v.sample_ok)
}

/// What [`fetch_lines`] read back.
struct Fetched {
    records: u64,
    distinct: u64,
    sample_ok: bool,
    /// By corpus line number: whether the line arrived.
    seen: Vec<bool>,
}

fn fetch_lines(broker: &Broker, topic: &str, s: &Settings, target: Target, corpus: &Corpus, idle: Duration) -> Fetched {
    let mut seen = vec![false; corpus.lines as usize];
    let mut distinct = 0u64;
    let mut sample_ok = true;
    let mut checked = 0;
    let spec = ReadSpec {
        bootstrap: &broker.bootstrap,
        topic,
        partitions: s.partitions,
        expect: u64::MAX,
        idle,
        timeout: Duration::from_secs(600),
        sample: 0,
    };
    let rb = read_back(&spec, |v| {
        let Some(text) = line_of(target, v) else {
            sample_ok = false;
            return;
        };
        let Some(seq) = corpus::seq_of(&text) else {
            sample_ok = false;
            return;
        };
        if let Some(slot) = seen.get_mut(seq as usize) {
            if !*slot {
                *slot = true;
                distinct += 1;
            }
        }
        if checked < 1000 && seq % 97 == 0 {
            checked += 1;
            sample_ok &= text == corpus::line(corpus.kind, corpus.seed, seq);
        }
    });
    Fetched { records: rb.map(|r| r.records).unwrap_or(0), distinct, sample_ok, seen }
}

pub struct Ctx<'a> {
    pub broker: &'a Broker,
    pub tools: &'a Tools,
    pub settings: &'a Settings,
    pub work: &'a Path,
    /// Nothing new in the topic for this long ends a run (incomplete if lines are missing).
    pub stall: Duration,
    /// The fetch-back ends when nothing new arrived for this long.
    pub idle: Duration,
}

fn fresh_topic(ctx: &Ctx<'_>, label: &str) -> anyhow::Result<String> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
    let topic = format!("bench-{label}-{nanos}");
    ctx.broker.create_topic(&topic, ctx.settings.partitions)?;
    Ok(topic)
}

fn target_dir(ctx: &Ctx<'_>, target: Target, run: usize) -> anyhow::Result<std::path::PathBuf> {
    let dir = ctx.work.join(format!("{target:?}-{run}").to_lowercase());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What a case with a writer works on: a fresh topic, the target's directory, and in it an empty
/// `<case>.log` the target tails (its only input).
struct Written {
    topic: String,
    dir: std::path::PathBuf,
    file: std::path::PathBuf,
    input: Input,
}

fn written_file(ctx: &Ctx<'_>, target: Target, run: usize, case: &str) -> anyhow::Result<Written> {
    let topic = fresh_topic(ctx, &format!("{case}-{target:?}").to_lowercase())?;
    let dir = target_dir(ctx, target, run)?;
    let file = dir.join(format!("{case}.log"));
    std::fs::write(&file, b"")?;
    let input = Input { glob: file.display().to_string(), paths: vec![file.clone()], container: false };
    Ok(Written { topic, dir, file, input })
}

/// Catch-up: the corpus exists before the target starts; time until every line is in Kafka.
pub fn catch_up(ctx: &Ctx<'_>, target: Target, corpus: &Corpus, run: usize) -> anyhow::Result<Sample> {
    let topic = fresh_topic(ctx, &format!("{target:?}").to_lowercase())?;
    let dir = target_dir(ctx, target, run)?;
    let input = Input { glob: corpus.glob(), paths: corpus.files.clone(), container: corpus.container };
    let cmd = ctx.tools.command(target, &input, &ctx.broker.bootstrap, &topic, ctx.settings, &dir);
    let t0 = Instant::now();
    let proc = Proc::spawn(cmd)?;
    let (end, _) = follow(ctx, &topic, corpus.lines, 0, t0);
    let secs = end.duration_since(t0).as_secs_f64();
    let usage = proc.stop(Duration::from_secs(30));
    let (records, distinct, sample_ok) = verify(ctx.broker, &topic, ctx.settings, target, corpus, ctx.idle);
    let complete = distinct == corpus.lines && sample_ok;
    Ok(Sample {
        secs,
        bytes: corpus.bytes,
        lines: corpus.lines,
        records,
        cpu_s: usage.cpu_s,
        rss_kb: usage.rss_kb,
        duplicates: Some(records.saturating_sub(distinct)),
        lost: Some(corpus.lines.saturating_sub(distinct)),
        complete,
        note: if complete {
            String::new()
        } else {
            format!("{distinct} of {} lines, sample ok: {sample_ok}", corpus.lines)
        },
        ..Sample::default()
    })
}

/// Restart in the middle: SIGTERM (or, for `crash`, SIGKILL) at half the lines, start again at
/// once; time to resume, lines re-sent (duplicates) and lines lost.
pub fn restart(ctx: &Ctx<'_>, target: Target, corpus: &Corpus, run: usize, crash: bool) -> anyhow::Result<Sample> {
    let case = if crash { "crash" } else { "restart" };
    let topic = fresh_topic(ctx, &format!("{case}-{target:?}").to_lowercase())?;
    let dir = target_dir(ctx, target, run)?;
    let input = Input { glob: corpus.glob(), paths: corpus.files.clone(), container: corpus.container };
    let s = ctx.settings;
    let t0 = Instant::now();
    let first = Proc::spawn(ctx.tools.command(target, &input, &ctx.broker.bootstrap, &topic, s, &dir))?;
    let (first_end, _) = follow(ctx, &topic, corpus.lines / 2, 0, t0);
    let u1 = if crash { first.kill() } else { first.stop(Duration::from_secs(30)) };
    // What the stop drained is in; the restart resumes when anything new arrives.
    let at_stop = ctx.broker.watermark(&topic, s.partitions);
    let restarted = Instant::now();
    let second = Proc::spawn(ctx.tools.command(target, &input, &ctx.broker.bootstrap, &topic, s, &dir))?;
    let mut resume = None;
    while restarted.elapsed() < ctx.stall && at_stop < corpus.lines {
        if ctx.broker.watermark(&topic, s.partitions) > at_stop {
            resume = Some(restarted.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Re-sent records count in the watermark: reaching the line count is not the end of it.
    let (end, _) = follow_records(ctx, &topic, corpus.lines, at_stop, first_end, false);
    let u2 = second.stop(Duration::from_secs(30));
    let (records, distinct, sample_ok) = verify(ctx.broker, &topic, s, target, corpus, ctx.idle);
    let complete = distinct == corpus.lines && sample_ok;
    Ok(Sample {
        secs: end.duration_since(t0).as_secs_f64(),
        bytes: corpus.bytes,
        lines: corpus.lines,
        records,
        cpu_s: u1.cpu_s + u2.cpu_s,
        rss_kb: u1.rss_kb.max(u2.rss_kb),
        resume_s: resume,
        duplicates: Some(records.saturating_sub(distinct)),
        lost: Some(corpus.lines.saturating_sub(distinct)),
        complete,
        note: if complete { String::new() } else { format!("{distinct} of {} lines", corpus.lines) },
        ..Sample::default()
    })
}

/// Live tail: a writer appends lines at `rate` bytes/s for `duration` while the target runs;
/// each line carries its write time, so the read-back measures write-to-Kafka delay.
pub fn live(
    ctx: &Ctx<'_>,
    target: Target,
    corpus: &Corpus,
    rate: u64,
    duration: Duration,
    run: usize,
) -> anyhow::Result<Sample> {
    let Written { topic, dir, file, input } = written_file(ctx, target, run, "live")?;
    let s = ctx.settings;
    // The consumer is assigned and fetching, and the target is tailing, before the measured
    // writing starts: one warm-up line must come through first. Otherwise the first records'
    // delays hold the target's start-up and the consumer's own connection and offset lookup.
    let reader = TopicReader::open(&ctx.broker.bootstrap, &topic, s.partitions, 5)?;
    let proc = Proc::spawn(ctx.tools.command(target, &input, &ctx.broker.bootstrap, &topic, s, &dir))?;
    std::fs::OpenOptions::new().append(true).open(&file)?.write_all(b"warm-up\n")?;
    let mut spec = ReadSpec {
        bootstrap: &ctx.broker.bootstrap,
        topic: &topic,
        partitions: s.partitions,
        expect: 1,
        idle: Duration::from_secs(120),
        timeout: Duration::from_secs(120),
        sample: 0,
    };
    let warm = reader.read(&spec, |_| {});
    anyhow::ensure!(warm.records == 1, "{target:?}: the warm-up line did not reach the topic within 120 s");
    let (t0, cpu0) = (Instant::now(), proc.cpu_s_so_far());
    let (kind, seed) = (corpus.kind, corpus.seed);
    let writer = std::thread::spawn(move || write_paced(&file, kind, seed, rate, duration, Paced::Stamped));
    let mut delays = Vec::new();
    spec.expect = u64::MAX;
    spec.idle = ctx.stall.min(Duration::from_secs(10));
    spec.timeout = duration + Duration::from_secs(120);
    let rb = reader.read(&spec, |v| {
        if let Some(ts) = find_ts(v) {
            delays.push((now_nanos().saturating_sub(ts)) as f64 / 1e6);
        }
    });
    let (lines, bytes) = writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    // CPU % over the writing and the read-back that followed it (the window ends when nothing
    // new arrived for `idle`, so it holds that idle time too, for every target alike).
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), proc.cpu_s_so_far() - cpu0);
    let usage = proc.stop(Duration::from_secs(30));
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| delays.get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1))).copied();
    Ok(Sample {
        secs: duration.as_secs_f64(),
        bytes,
        lines,
        records: rb.records,
        cpu_s: usage.cpu_s,
        rss_kb: usage.rss_kb,
        delay_p50_ms: pct(0.5),
        delay_p99_ms: pct(0.99),
        cpu_percent: Some(100.0 * cpu / wall),
        complete: rb.records >= lines,
        note: if rb.records >= lines { String::new() } else { format!("{} of {lines} records", rb.records) },
        ..Sample::default()
    })
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn find_ts(v: &[u8]) -> Option<u64> {
    let i = v.windows(4).rposition(|w| w == b" ts=")?;
    let digits: Vec<u8> = v[i + 4..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Appends lines at `rate` bytes per second in 10 ms steps; returns (lines, bytes) written.
/// What [`write_paced`] writes.
#[derive(Clone, Copy)]
enum Paced {
    /// Corpus lines with their write time appended (` ts=<nanos>`), for delays.
    Stamped,
    /// The corpus's own lines, at most this many (the fetch-back checks them like a catch-up).
    Plain { max_lines: u64 },
}

fn write_paced(
    file: &Path,
    kind: corpus::Kind,
    seed: u64,
    rate: u64,
    duration: Duration,
    what: Paced,
) -> anyhow::Result<(u64, u64)> {
    let mut f = std::fs::OpenOptions::new().append(true).open(file)?;
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut buf = String::new();
    while start.elapsed() < duration {
        let due = (rate as f64 * start.elapsed().as_secs_f64()) as u64;
        buf.clear();
        let ts = now_nanos();
        // Rate 0 writes nothing (the live case's idle row).
        while rate > 0 && bytes + buf.len() as u64 <= due {
            if let Paced::Plain { max_lines } = what {
                if n == max_lines {
                    break;
                }
            }
            buf.push_str(&corpus::line(kind, seed, n));
            if let Paced::Stamped = what {
                buf.push_str(&format!(" ts={ts}"));
            }
            buf.push('\n');
            n += 1;
        }
        f.write_all(buf.as_bytes())?;
        bytes += buf.len() as u64;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((n, bytes))
}

/// The timeline of an outage run.
#[derive(Clone, Copy)]
pub struct Outage {
    /// Write rate, bytes/s, from the target's start until the broker comes back.
    pub rate: u64,
    /// Writing with the broker up before it freezes.
    pub before: Duration,
    /// How long the broker stays frozen (SIGSTOP), lines still being written.
    pub down: Duration,
}

/// Broker outage while writing: a writer appends corpus lines at `rate`; after `before` the
/// broker is frozen for `down`, then resumed, and the writer stops. Measures the time from the
/// broker's return until every written line is in the topic (`resume_s`), lines lost and lines
/// re-sent.
pub fn outage(ctx: &Ctx<'_>, target: Target, corpus: &Corpus, o: Outage, run: usize) -> anyhow::Result<Sample> {
    let Written { topic, dir, file, input } = written_file(ctx, target, run, "outage")?;
    let proc = Proc::spawn(ctx.tools.command(target, &input, &ctx.broker.bootstrap, &topic, ctx.settings, &dir))?;
    let (kind, seed, max_lines) = (corpus.kind, corpus.seed, corpus.lines);
    let writer = std::thread::spawn(move || {
        write_paced(&file, kind, seed, o.rate, o.before + o.down, Paced::Plain { max_lines })
    });
    std::thread::sleep(o.before);
    ctx.broker.freeze()?;
    std::thread::sleep(o.down);
    // Nothing between the freeze and the thaw can fail: one broken run never leaves the broker
    // frozen for the next.
    let thawed = ctx.broker.thaw();
    let back = Instant::now();
    thawed?;
    let (lines, bytes) = writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    // Re-sent records count in the watermark: reaching the line count is not the end of it.
    let (end, _) = follow_records(ctx, &topic, lines, 0, back, false);
    let usage = proc.stop(Duration::from_secs(30));
    let (records, distinct, sample_ok) = verify(ctx.broker, &topic, ctx.settings, target, corpus, ctx.idle);
    let complete = distinct == lines && sample_ok;
    Ok(Sample {
        secs: (o.before + o.down).as_secs_f64(),
        bytes,
        lines,
        records,
        cpu_s: usage.cpu_s,
        rss_kb: usage.rss_kb,
        resume_s: Some(end.saturating_duration_since(back).as_secs_f64()),
        duplicates: Some(records.saturating_sub(distinct)),
        lost: Some(lines.saturating_sub(distinct)),
        complete,
        note: if complete { String::new() } else { format!("{distinct} of {lines} lines, sample ok: {sample_ok}") },
        ..Sample::default()
    })
}

/// The timeline of a copytruncate run.
#[derive(Clone, Copy)]
pub struct Storm {
    /// Write rate, bytes/s.
    pub rate: u64,
    /// Time between two rotations.
    pub every: Duration,
    /// How long the writer writes (and the rotations go on).
    pub duration: Duration,
    /// The broker is frozen (SIGSTOP) this long in the middle of the storm, so that the target
    /// falls behind the writer as with a slow Kafka: the lines not read yet when a file is
    /// truncated are then only in its copy.
    pub freeze: Duration,
}

/// A copytruncate storm: a writer appends corpus lines at `rate` while a rotator, every `every`,
/// does what logrotate's `copytruncate` does (shifts `ct.log.N` to `ct.log.N+1`, copies `ct.log`
/// to `ct.log.1`, truncates `ct.log`), the glob matching `ct.log` only; the broker is frozen for
/// `freeze` from a third of the way in. Lines written between a
/// copy and its truncation are in no file afterwards: no tailer can be asked for them. Counts the
/// lines lost in all (`lost`) and those of them that are still on disk, in a copy or in the file
/// (`lost_on_disk`): these a tailer could have shipped.
pub fn copytruncate(ctx: &Ctx<'_>, target: Target, corpus: &Corpus, st: Storm, run: usize) -> anyhow::Result<Sample> {
    let Written { topic, dir, file, input } = written_file(ctx, target, run, "ct")?;
    let proc = Proc::spawn(ctx.tools.command(target, &input, &ctx.broker.bootstrap, &topic, ctx.settings, &dir))?;
    std::thread::sleep(Duration::from_secs(1));
    let (kind, seed, max_lines) = (corpus.kind, corpus.seed, corpus.lines);
    let w = file.clone();
    let writer =
        std::thread::spawn(move || write_paced(&w, kind, seed, st.rate, st.duration, Paced::Plain { max_lines }));
    let t0 = Instant::now();
    let mut copies = 0u32;
    let (freeze_at, mut frozen, mut thawed) = (st.duration / 3, false, st.freeze.is_zero());
    // Rotations at every `every` while the writer writes; none in its last `every`.
    while t0.elapsed() + st.every < st.duration {
        let next = st.every * (copies + 1);
        while t0.elapsed() < next {
            let at = t0.elapsed();
            if !frozen && !thawed && at >= freeze_at {
                ctx.broker.freeze()?;
                frozen = true;
            } else if frozen && at >= freeze_at + st.freeze {
                ctx.broker.thaw()?;
                (frozen, thawed) = (false, true);
            }
            std::thread::sleep(Duration::from_millis(10).min(next.saturating_sub(at)));
        }
        for n in (1..=copies).rev() {
            std::fs::rename(dir.join(format!("ct.log.{n}")), dir.join(format!("ct.log.{}", n + 1)))?;
        }
        std::fs::copy(&file, dir.join("ct.log.1"))?;
        std::fs::OpenOptions::new().write(true).open(&file)?.set_len(0)?;
        copies += 1;
    }
    if frozen {
        ctx.broker.thaw()?;
    }
    let (lines, bytes) = writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    // Lost lines never arrive: the end is the topic staying quiet, not a count.
    let (mut last, mut quiet_since) = (0, Instant::now());
    while quiet_since.elapsed() < Duration::from_secs(5) {
        let wm = ctx.broker.watermark(&topic, ctx.settings.partitions);
        if wm > last {
            (last, quiet_since) = (wm, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let usage = proc.stop(Duration::from_secs(30));
    let got = fetch_lines(ctx.broker, &topic, ctx.settings, target, corpus, ctx.idle);
    let mut on_disk = vec![false; lines as usize];
    for n in 0..=copies {
        let path = if n == 0 { file.clone() } else { dir.join(format!("ct.log.{n}")) };
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Some(seen) = corpus::seq_of(line).and_then(|s| on_disk.get_mut(s as usize)) {
                *seen = true;
            }
        }
    }
    let lost_on_disk =
        (0..lines as usize).filter(|&i| on_disk[i] && !got.seen.get(i).copied().unwrap_or(false)).count();
    let never_on_disk = on_disk.iter().filter(|d| !**d).count();
    Ok(Sample {
        secs: st.duration.as_secs_f64(),
        bytes,
        lines,
        records: got.records,
        cpu_s: usage.cpu_s,
        rss_kb: usage.rss_kb,
        duplicates: Some(got.records.saturating_sub(got.distinct)),
        lost: Some(lines.saturating_sub(got.distinct)),
        lost_on_disk: Some(lost_on_disk as u64),
        off_disk: Some(never_on_disk as u64),
        rotations: Some(copies),
        // Losses are what this case measures (the table shows them); a run is incomplete when
        // what arrived is not the corpus's lines.
        complete: got.sample_ok,
        note: format!(
            "{copies} rotations; {never_on_disk} lines in no file afterwards; {lost_on_disk} lost though on disk; sample ok: {}",
            got.sample_ok
        ),
        ..Sample::default()
    })
}

/// What a rate-limit run limits: the agent's `rate_limit` per input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    BytesPerSecond(u64),
    EventsPerSecond(u64),
}

impl Limit {
    pub fn label(self) -> String {
        match self {
            Limit::BytesPerSecond(b) => format!("bytes_per_second: {:.2} MB/s", b as f64 / 1e6),
            Limit::EventsPerSecond(e) => format!("events_per_second: {e}/s"),
        }
    }
    fn yaml(self) -> String {
        match self {
            Limit::BytesPerSecond(b) => format!("    rate_limit:\n      bytes_per_second: {b}\n"),
            Limit::EventsPerSecond(e) => format!("    rate_limit:\n      events_per_second: {e}\n"),
        }
    }
    fn per_second(self) -> f64 {
        match self {
            Limit::BytesPerSecond(n) | Limit::EventsPerSecond(n) => n as f64,
        }
    }
}

/// The agent's `GET /stats` on loopback.
fn agent_stats(port: u16) -> anyhow::Result<serde_json::Value> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(serde_json::from_str(body)?)
}

/// Rate limit: the agent (raw codec) reads a catch-up corpus far larger than the limit lets it
/// finish, under `limit`. After `warmup` (start, connection, the limiter's 200 ms burst), the
/// agent's own counters (`/stats`: the input's bytes read and events made, the events Kafka
/// acknowledged) are read at the start and the end of `duration`; the rate is their difference
/// over the time between the two reads.
pub fn rate_limited(
    ctx: &Ctx<'_>,
    corpus: &Corpus,
    limit: Limit,
    warmup: Duration,
    duration: Duration,
    run: usize,
) -> anyhow::Result<Sample> {
    let topic = fresh_topic(ctx, "ratelimit")?;
    let dir = target_dir(ctx, Target::AgentRaw, run)?;
    let input = Input { glob: corpus.glob(), paths: corpus.files.clone(), container: corpus.container };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let http = format!("http:\n  enabled: true\n  host: 127.0.0.1\n  port: {port}\n");
    let cmd = ctx.tools.agent_command(
        &ctx.tools.agent,
        &input,
        &ctx.broker.bootstrap,
        &topic,
        ctx.settings,
        "raw",
        &dir,
        &limit.yaml(),
        &http,
    );
    let t0 = Instant::now();
    let proc = Proc::spawn(cmd)?;
    while agent_stats(port).is_err() {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(30), "the agent's endpoint did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(warmup.saturating_sub(t0.elapsed()));
    let read = |port| -> anyhow::Result<(Instant, [u64; 3])> {
        let st = agent_stats(port)?;
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        Ok((
            Instant::now(),
            [n(&st["inputs"][0]["bytes_read"]), n(&st["inputs"][0]["events"]), n(&st["events"]["acknowledged"])],
        ))
    };
    let (t1, a) = read(port)?;
    std::thread::sleep(duration);
    let (t2, b) = read(port)?;
    let usage = proc.stop(Duration::from_secs(30));
    let secs = t2.duration_since(t1).as_secs_f64();
    let (bytes, events, acked) = (b[0] - a[0], b[1] - a[1], b[2] - a[2]);
    let measured = match limit {
        Limit::BytesPerSecond(_) => bytes as f64,
        Limit::EventsPerSecond(_) => events as f64,
    } / secs;
    // Reading the whole corpus before the end would measure the corpus, not the limit.
    let exhausted = b[1] >= corpus.lines;
    Ok(Sample {
        secs,
        bytes,
        lines: events,
        records: acked,
        cpu_s: usage.cpu_s,
        rss_kb: usage.rss_kb,
        cpu_percent: Some(100.0 * usage.cpu_s / t0.elapsed().as_secs_f64()),
        limit: Some(limit),
        limit_ratio: Some(measured / limit.per_second()),
        complete: !exhausted && events > 0,
        note: if exhausted { "the corpus was read to its end: use a larger --size-mb".into() } else { String::new() },
        ..Sample::default()
    })
}
