//! Counters of what the agent did and what it skipped, and a few gauges (spool size).
//!
//! Owns the process's counters; every stage holds an `Arc<Metrics>` and only ever adds. Invariant:
//! every line that does not reach Kafka unchanged (truncated, dropped, failed, replaced bytes) is
//! counted here, so a skip is never silent. Every `logging.metrics.period` the period's non-zero
//! increases, the gauges and the period's rates are logged; the run's totals once at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter or gauge as the monitoring endpoint shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    pub name: &'static str,
    /// The field's doc comment (Prometheus `# HELP`).
    pub help: &'static str,
    /// Gauges (doc starting with `Gauge:`) go up and down; the rest only count up.
    pub gauge: bool,
    pub value: u64,
}

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// Every counter and gauge with its description.
            pub fn describe(&self) -> Vec<Described> {
                vec![$({
                    let help = concat!($($doc),*).trim();
                    Described {
                        name: stringify!($name),
                        help,
                        gauge: help.starts_with("Gauge:"),
                        value: self.$name.load(Ordering::Relaxed),
                    }
                },)*]
            }
        }
    };
}

counters! {
    /// Bytes read from files.
    bytes_read,
    /// Lines read from files.
    lines_read,
    /// Events the output took to deliver, each once (retries and replays are not counted again),
    /// plus the events a previous run left in the spool. Each ends in exactly one of
    /// `events_acked`, `events_failed`, `spool_dropped`, or is still pending (unacknowledged in
    /// the output, or waiting in the spool: `spool_events`).
    events_published,
    /// Events Kafka acknowledged, each once: sent directly or replayed from the spool.
    events_acked,
    /// Empty lines not shipped (JSON codec, as Filebeat does).
    lines_skipped_empty,
    /// Lines cut at `max_bytes`.
    lines_truncated,
    /// Lines with invalid UTF-8 (replaced by U+FFFD in JSON events).
    lines_invalid_utf8,
    /// ndjson lines that were not a JSON object (shipped with the raw line and an error).
    lines_invalid_json,
    /// Lines with bytes invalid in the input's `encoding` (replaced by U+FFFD).
    lines_invalid_encoding,
    /// Lines of a `container` input in neither Docker's nor CRI's format (shipped as they are).
    lines_invalid_container,
    /// Lines of the stream a `container` parser's `stream` setting leaves out.
    lines_other_stream,
    /// Events not shipped because of include_lines / exclude_lines.
    lines_filtered,
    /// Events made of several lines by the multiline parser.
    multiline_events,
    /// Events dropped by a `drop_event` processor.
    events_dropped_processor,
    /// Events larger than `max_message_bytes`, dropped.
    events_dropped_oversize,
    /// Events whose topic or key format named a field the event lacks, dropped.
    events_dropped_format,
    /// Events whose topic, made from the event (a format or `topics` rule), is a name Kafka
    /// refuses (characters, length, `.`/`..`), dropped.
    events_dropped_topic,
    /// Events Kafka refused for good (logged with the topic).
    events_failed,
    /// Deliveries retried after a retriable error.
    events_retried,
    /// Files opened.
    files_opened,
    /// Gauge: files open now.
    files_open,
    /// Files closed (inactive, removed or renamed away).
    files_closed,
    /// Files that shrank below the read offset (copytruncate) and were read again from 0.
    files_truncated,
    /// Truncated files whose rotated copy (copytruncate) was read from the offset first.
    files_copy_read,
    /// Files whose inode was reused by new content (fingerprint mismatch).
    files_inode_reused,
    /// Files that could not be opened or read (permissions, vanished).
    file_errors,
    /// Gzip archives read to their end.
    gz_files_read,
    /// Gzip archives found corrupt or truncated (logged once per file; the lines before the damage
    /// are shipped).
    gz_errors,
    /// Files seen for the first time and older than `ignore_older`: read from their end.
    files_ignored_older,
    /// Files (gzip archives) recognised by their content as a file already read under another name.
    files_matched_by_fingerprint,
    /// Files closed at once by `close.on_state_change.renamed` / `removed` (unread data not shipped).
    files_closed_on_state_change,
    /// Registry entries removed by `clean_inactive` or `clean_removed`.
    registry_entries_cleaned,
    /// File states taken over from Filebeat's registry at the first start.
    registry_taken_over,
    /// File states in Filebeat's registry not taken over (another identity, no matching input).
    registry_take_over_skipped,
    /// Gauge: entries (files) in the registry.
    registry_entries,
    /// Registry writes.
    registry_writes,
    /// Appends of progress to the registry journal between writes (`registry.progress_every`).
    registry_journal_appends,
    /// Registry writes that failed.
    registry_write_errors,
    /// Gauge: Kafka brokers the output is connected to (librdkafka's statistics, every second).
    output_brokers_up,
    /// Gauge: 1 while the output sends to the spool because Kafka is unreachable.
    output_spooling,
    /// Gauge: without a spool, 1 while events are outstanding and none was acknowledged for
    /// `queue.spool.unhealthy_after` (reading waits for Kafka).
    output_stalled,
    /// Deliveries refused because Kafka refuses the topic (authorization, or a missing topic with
    /// creation off); the events are held and sent again every `backoff.max`.
    output_refusals,
    /// Gauge: topics Kafka refuses now (each named in `/healthz`).
    output_topics_refused,
    /// Producers rebuilt after librdkafka raised a fatal error (the idempotent producer's
    /// guarantee broken); what the old producer held is sent again by the new one.
    output_producer_restarts,
    /// Times the output switched to spooling (Kafka unreachable).
    spool_switches,
    /// Events written to the spool (and fsynced: their offsets are done).
    events_spooled,
    /// Spooled events Kafka acknowledged on replay.
    spool_replayed,
    /// Spooled events lost to `when_full: drop_oldest` or `drop_newest` (logged as errors).
    spool_dropped,
    /// Damaged stretches skipped on replay (a flipped bit, a torn record), with the records in them.
    spool_damaged,
    /// Bytes cut off the spool's last segment at start-up (a record torn by a crash mid-write).
    spool_torn_bytes,
    /// Spool writes or fsyncs that failed (reading pauses until they work).
    spool_errors,
    /// Gauge: 1 when a spool is configured and its last write or fsync worked.
    spool_writable,
    /// Gauge: bytes in the spool's segment files.
    spool_bytes,
    /// Gauge: events in the spool not yet acknowledged by Kafka.
    spool_events,
    /// Gauge: events acknowledged per second during replay, over the last second.
    spool_replay_rate,
    /// Records a sink consumed and wrote to its file (duplicates after a crash included).
    sink_records_written,
    /// Bytes sinks wrote to their files and fsynced.
    sink_bytes_written,
    /// Records whose value was not in the sink's `format` (written as they are).
    sink_records_undecodable,
    /// Records with a null value (tombstones), not written.
    sink_records_skipped,
    /// Records not written because a record with the same event id (`_id` header) was written
    /// before, within the sink's `dedup_window`: sent again after a crash.
    sink_duplicates_dropped,
    /// Consumer offset commits done after an fsync.
    sink_commits,
    /// Commits, writes or fsyncs that failed (retried; nothing is committed before it is on disk).
    sink_errors,
    /// Sink files reopened (rotation by rename, deletion, or SIGHUP).
    sink_reopens,
    /// Bytes cut from a sink file at start-up: written after its last commit, consumed again.
    sink_uncommitted_bytes_cut,
    /// Configurations applied on SIGHUP.
    config_reloads,
    /// Configurations refused on SIGHUP (invalid; the running one stays).
    config_reload_errors,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Name and value of every counter.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.describe().into_iter().map(|d| (d.name, d.value)).collect()
    }

    /// The periodic metrics line: what changed since `prev` (the values of the last line, which
    /// this replaces with the current ones) over `secs` seconds: each counter's increase, each
    /// gauge's value, non-zero ones only, then the period's rates of events acknowledged and
    /// bytes read per second.
    pub fn period_summary(&self, prev: &mut Vec<u64>, secs: f64) -> String {
        let now = self.describe();
        prev.resize(now.len(), 0);
        let mut parts = Vec::new();
        let (mut acked, mut bytes) = (0, 0);
        for (d, before) in now.iter().zip(prev.iter_mut()) {
            let shown = if d.gauge { d.value } else { d.value.saturating_sub(*before) };
            match d.name {
                "events_acked" => acked = shown,
                "bytes_read" => bytes = shown,
                _ => {}
            }
            if shown > 0 {
                parts.push(format!("{}={shown}", d.name));
            }
            *before = d.value;
        }
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        parts.push(format!("events_acked_per_s={:.1} bytes_read_per_s={:.0}", per_s(acked), per_s(bytes)));
        parts.join(" ")
    }

    /// `name=value` pairs of the non-zero counters, for a log line.
    pub fn summary(&self) -> String {
        self.snapshot()
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The periodic metrics line (`logging.metrics`): what changed in each period.
#[derive(Debug)]
pub struct PeriodicLog {
    period: Option<std::time::Duration>,
    last: std::time::Instant,
    before: Vec<u64>,
}

impl PeriodicLog {
    /// Logs every `period`; `None` never logs.
    pub fn new(period: Option<std::time::Duration>) -> PeriodicLog {
        PeriodicLog { period, last: std::time::Instant::now(), before: Vec::new() }
    }

    /// Logs the period's line ([`Metrics::period_summary`]) when a period has passed.
    pub fn tick(&mut self, metrics: &Metrics) {
        let Some(period) = self.period else { return };
        let elapsed = self.last.elapsed();
        if elapsed >= period {
            self.last = std::time::Instant::now();
            let secs = elapsed.as_secs_f64();
            tracing::info!(metrics = %metrics.period_summary(&mut self.before, secs), "metrics in the last {secs:.0}s");
        }
    }
}

/// Upper bounds (seconds) of the latency histogram's buckets, Prometheus' style: from a
/// millisecond (a local broker) to five minutes (an outage ridden out in librdkafka's queue).
pub const LATENCY_BOUNDS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A latency histogram: counts per bucket of [`LATENCY_BOUNDS`] (plus one past the last), the sum
/// and the count. Observed on librdkafka's delivery thread, read by the endpoint; only adds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A histogram's values at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts: `cumulative[i]` observations took at most `LATENCY_BOUNDS[i]`; the last
    /// is every observation (`+Inf`).
    pub cumulative: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BOUNDS.iter().position(|&b| secs <= b).unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// The upper bound of the bucket holding the `q` quantile (0 < q <= 1): at most this many
    /// seconds for that share of observations; `None` with no observations, infinity past the
    /// last bound.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let i = self.cumulative.iter().position(|&c| c >= rank)?;
        Some(LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_quantiles_name_a_bound() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile_bound(0.5), None);
        for ms in [0, 1, 3, 3, 40, 700, 400_000] {
            h.observe(std::time::Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 7);
        assert!((s.sum_seconds - 400.747).abs() < 1e-9, "{}", s.sum_seconds);
        // <=1ms: 0 and 1; <=5ms: +3,3; <=50ms: +40; <=1s: +700; the last only past 300 s.
        assert_eq!(s.cumulative[0], 2);
        assert_eq!(s.cumulative[2], 4);
        assert_eq!(s.cumulative[5], 5);
        assert_eq!(s.cumulative[9], 6);
        assert_eq!(s.cumulative[15], 6);
        assert_eq!(s.cumulative[16], 7);
        assert_eq!(s.quantile_bound(0.5), Some(0.005));
        assert_eq!(s.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(s.quantile_bound(0.8), Some(1.0));
    }

    #[test]
    fn summary_lists_only_non_zero_counters() {
        let m = Metrics::default();
        Metrics::add(&m.lines_read, 3);
        Metrics::inc(&m.lines_truncated);
        assert_eq!(m.summary(), "lines_read=3 lines_truncated=1");
    }

    #[test]
    fn the_periodic_line_gives_the_periods_increases_gauges_and_rates() {
        let m = Metrics::default();
        let mut prev = Vec::new();
        Metrics::add(&m.events_acked, 100);
        Metrics::add(&m.bytes_read, 5000);
        Metrics::set(&m.files_open, 2);
        assert_eq!(
            m.period_summary(&mut prev, 10.0),
            "bytes_read=5000 events_acked=100 files_open=2 events_acked_per_s=10.0 bytes_read_per_s=500"
        );
        Metrics::add(&m.events_acked, 30);
        assert_eq!(
            m.period_summary(&mut prev, 10.0),
            "events_acked=30 files_open=2 events_acked_per_s=3.0 bytes_read_per_s=0",
            "only the period's increase; a gauge keeps its value"
        );
    }

    #[test]
    fn descriptions_come_from_the_doc_comments() {
        let m = Metrics::default();
        Metrics::set(&m.spool_bytes, 7);
        let d = m.describe();
        let bytes = d.iter().find(|d| d.name == "bytes_read").unwrap();
        assert_eq!((bytes.help, bytes.gauge), ("Bytes read from files.", false));
        let spool = d.iter().find(|d| d.name == "spool_bytes").unwrap();
        assert!(spool.gauge && spool.value == 7, "{spool:?}");
        assert_eq!(d.len(), m.snapshot().len());
    }
}
