//! Results: medians with min–max over runs, ratios against the ceiling and the peers measured in
//! the same run, as a markdown table, a CSV of every sample, and a chart (SVG, and PNG through
//! Debian's `rsvg-convert` when it is installed).

use crate::measure::Sample;
use crate::targets::Target;
use std::fmt::Write as _;
use std::path::Path;

/// All runs of one target in one case (or why it was skipped).
pub struct Row {
    pub case: String,
    pub target: Target,
    /// Write rate of a live-tail row, MB/s.
    pub rate_mb: Option<f64>,
    pub samples: Vec<Sample>,
    pub skipped: Option<String>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

impl Row {
    fn med(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let xs: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!xs.is_empty()).then(|| median(xs))
    }
    fn range(&self, f: impl Fn(&Sample) -> f64) -> (f64, f64) {
        let xs: Vec<f64> = self.samples.iter().filter(|s| s.complete).map(f).collect();
        (xs.iter().copied().fold(f64::INFINITY, f64::min), xs.iter().copied().fold(0.0, f64::max))
    }
    /// Median MB/s over the complete runs only: a run that did not deliver everything has no
    /// throughput to report.
    pub fn mbps(&self) -> Option<f64> {
        self.med(|s| s.complete.then(|| s.mb_per_s()))
    }
    pub fn rss_mb(&self) -> Option<f64> {
        self.med(|s| Some(s.rss_kb as f64 / 1024.0))
    }
    pub fn all_complete(&self) -> bool {
        self.samples.iter().all(|s| s.complete)
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The markdown table of one case.
pub fn markdown(case: &str, rows: &[Row]) -> String {
    let ceiling = rows.iter().find(|r| r.target == Target::Ceiling).and_then(Row::mbps);
    let connect = rows.iter().find(|r| r.target == Target::KafkaConnect).and_then(Row::mbps);
    // Like with like: JSON events against Filebeat's JSON events, lines against its lines.
    let filebeat = |json: bool| {
        let fb = if json { Target::FilebeatJson } else { Target::Filebeat };
        rows.iter().find(|r| r.target == fb).and_then(Row::mbps)
    };
    let mut out = String::new();
    match case {
        "live" => {
            out.push_str("| target | write rate MB/s | CPU % | peak RSS MB | delay p50 ms | delay p99 ms | complete |\n|---|---|---|---|---|---|---|\n");
        }
        "outage" => {
            out.push_str("| target | catch-up s after the broker is back, median (min–max) | lines written | lines re-sent | lines lost | CPU s | peak RSS MB | complete |\n|---|---|---|---|---|---|---|---|\n");
        }
        "copytruncate" => {
            out.push_str("| target | rotations | lines written | lines in no file afterwards | lines lost | lost though on disk | lines re-sent | CPU s | peak RSS MB | complete |\n|---|---|---|---|---|---|---|---|---|---|\n");
        }
        "restart" | "crash" => {
            out.push_str("| target | MB/s median (min–max) | resume s | lines re-sent | lines lost | peak RSS MB | complete |\n|---|---|---|---|---|---|---|\n");
        }
        "ratelimit" => {
            out.push_str("| target | limit | measured / limit, median (min–max) | within 5 % | events acked/s | CPU % | peak RSS MB | runs | complete |\n|---|---|---|---|---|---|---|---|---|\n");
        }
        _ => out.push_str(
            "| target | MB/s median (min–max) | × ceiling | × Kafka Connect | × Filebeat (same codec) | CPU s/GB | peak RSS MB | runs | complete |\n|---|---|---|---|---|---|---|---|---|\n",
        ),
    }
    for r in rows {
        if let Some(why) = &r.skipped {
            let _ = writeln!(out, "| {} | {why} |", r.target.name());
            continue;
        }
        let (lo, hi) = r.range(Sample::mb_per_s);
        let mbps = match r.mbps() {
            Some(m) => format!("{m:.1} ({lo:.1}–{hi:.1})"),
            None => "–".into(),
        };
        let done = if r.all_complete() {
            "yes".to_string()
        } else {
            format!("NO: {}", r.samples.iter().map(|s| s.note.as_str()).collect::<Vec<_>>().join("; "))
        };
        let line = match case {
            "live" => format!(
                "| {} | {} | {} | {} | {} | {} | {done} |",
                r.target.name(),
                opt(r.rate_mb, 1),
                opt(r.med(|s| s.cpu_percent), 1),
                opt(r.rss_mb(), 1),
                opt(r.med(|s| s.delay_p50_ms), 1),
                opt(r.med(|s| s.delay_p99_ms), 1),
            ),
            "ratelimit" => {
                let ratios: Vec<f64> = r.samples.iter().filter_map(|s| s.limit_ratio).collect();
                let (lo, hi) =
                    (ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(0.0, f64::max));
                let med = r.med(|s| s.limit_ratio);
                let within = match med {
                    Some(m) if (m - 1.0).abs() <= 0.05 => "yes".to_string(),
                    Some(m) => format!("NO ({:+.1} %)", (m - 1.0) * 100.0),
                    None => "–".into(),
                };
                format!(
                    "| {} | {} | {} | {within} | {} | {} | {} | {} | {done} |",
                    r.target.name(),
                    r.samples.first().and_then(|s| s.limit).map_or("–".into(), |l| l.label()),
                    med.map_or("–".into(), |m| format!("{m:.3} ({lo:.3}–{hi:.3})")),
                    opt(r.med(|s| Some(s.records as f64 / s.secs.max(1e-9))), 0),
                    opt(r.med(|s| s.cpu_percent), 1),
                    opt(r.rss_mb(), 1),
                    r.samples.len(),
                )
            }
            "outage" => {
                let (lo, hi) = r.range(|s| s.resume_s.unwrap_or(f64::NAN));
                format!(
                    "| {} | {} ({lo:.1}–{hi:.1}) | {} | {} | {} | {} | {} | {done} |",
                    r.target.name(),
                    opt(r.med(|s| s.resume_s), 1),
                    opt(r.med(|s| Some(s.lines as f64)), 0),
                    opt(r.med(|s| s.duplicates.map(|d| d as f64)), 0),
                    opt(r.med(|s| s.lost.map(|d| d as f64)), 0),
                    opt(r.med(|s| Some(s.cpu_s)), 1),
                    opt(r.rss_mb(), 1),
                )
            }
            "copytruncate" => {
                let med = |f: fn(&Sample) -> Option<u64>| opt(r.med(|s| f(s).map(|v| v as f64)), 0);
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {done} |",
                    r.target.name(),
                    med(|s| s.rotations.map(u64::from)),
                    med(|s| Some(s.lines)),
                    med(|s| s.off_disk),
                    med(|s| s.lost),
                    med(|s| s.lost_on_disk),
                    med(|s| s.duplicates),
                    opt(r.med(|s| Some(s.cpu_s)), 1),
                    opt(r.rss_mb(), 1),
                )
            }
            "restart" | "crash" => format!(
                "| {} | {mbps} | {} | {} | {} | {} | {done} |",
                r.target.name(),
                opt(r.med(|s| s.resume_s), 2),
                opt(r.med(|s| s.duplicates.map(|d| d as f64)), 0),
                opt(r.med(|s| s.lost.map(|d| d as f64)), 0),
                opt(r.rss_mb(), 1),
            ),
            _ => {
                let ratio = |base: Option<f64>| match (r.mbps(), base) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "–".into(),
                };
                format!(
                    "| {} | {mbps} | {} | {} | {} | {} | {} | {} | {done} |",
                    r.target.name(),
                    ratio(ceiling),
                    ratio(connect),
                    ratio(filebeat(r.target.is_json())),
                    opt(r.med(|s| Some(s.cpu_s_per_gb())), 1),
                    opt(r.rss_mb(), 1),
                    r.samples.len(),
                )
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// One CSV line per sample (and per skipped target).
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "case,target,rate_mb,run,mb_per_s,secs,bytes,lines,records,cpu_s,cpu_s_per_gb,peak_rss_kb,delay_p50_ms,delay_p99_ms,cpu_percent,resume_s,duplicates,lost,limit,limit_ratio,complete,note\n",
    );
    for r in rows {
        if let Some(why) = &r.skipped {
            let _ = writeln!(out, "{},{},,,,,,,,,,,,,,,,,,,,\"{why}\"", r.case, r.target.name());
        }
        for (i, s) in r.samples.iter().enumerate() {
            let o = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{},{:.3},{:.3},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},\"{}\",{},{},\"{}\"",
                r.case,
                r.target.name(),
                o(r.rate_mb),
                i + 1,
                s.mb_per_s(),
                s.secs,
                s.bytes,
                s.lines,
                s.records,
                s.cpu_s,
                s.cpu_s_per_gb(),
                s.rss_kb,
                o(s.delay_p50_ms),
                o(s.delay_p99_ms),
                o(s.cpu_percent),
                o(s.resume_s),
                s.duplicates.map(|d| d.to_string()).unwrap_or_default(),
                s.lost.map(|d| d.to_string()).unwrap_or_default(),
                s.limit.map(|l| l.label()).unwrap_or_default(),
                o(s.limit_ratio),
                s.complete,
                s.note.replace('"', "'"),
            );
        }
    }
    out
}

/// A chart panel: title, x offset, the value drawn per row.
type Panel = (&'static str, f64, fn(&Row) -> f64);

/// A two-panel horizontal bar chart: median MB/s and median peak RSS per measured target.
pub fn svg(title: &str, rows: &[Row]) -> String {
    let measured: Vec<&Row> = rows.iter().filter(|r| r.skipped.is_none() && !r.samples.is_empty()).collect();
    let (w, bar_h, gap, label_w, panel_w) = (1000.0, 26.0, 10.0, 230.0, 300.0);
    let h = 80.0 + measured.len() as f64 * (bar_h + gap);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        xml(title)
    );
    let panels: [Panel; 2] = [
        ("MB/s (median)", label_w, |r| r.mbps().unwrap_or(0.0)),
        ("peak RSS MB (median)", label_w + panel_w + 60.0, |r| r.rss_mb().unwrap_or(0.0)),
    ];
    for (name, x0, f) in &panels {
        let max = measured.iter().map(|r| f(r)).fold(1e-9, f64::max);
        let _ = writeln!(out, "<text x=\"{x0}\" y=\"50\" font-weight=\"bold\">{name}</text>");
        for (i, r) in measured.iter().enumerate() {
            let y = 62.0 + i as f64 * (bar_h + gap);
            let v = f(r);
            let bw = (v / max * panel_w).max(1.0);
            let color = match r.target {
                Target::AgentRaw | Target::AgentJson => "#2b7bb9",
                Target::BaseRaw | Target::BaseJson => "#8fb8d8",
                _ => "#999999",
            };
            let _ = writeln!(out, "<rect x=\"{x0}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{bar_h}\" fill=\"{color}\"/>");
            let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{:.1}\">{v:.1}</text>", x0 + bw + 4.0, y + bar_h * 0.7);
        }
    }
    for (i, r) in measured.iter().enumerate() {
        let y = 62.0 + i as f64 * (bar_h + gap) + bar_h * 0.7;
        let _ = writeln!(out, "<text x=\"10\" y=\"{y:.1}\">{}</text>", xml(r.target.name()));
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Writes the chart as SVG and, when `rsvg-convert` is installed, as PNG. Returns the PNG path.
pub fn write_chart(svg_text: &str, base: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    let svg_path = base.with_extension("svg");
    std::fs::write(&svg_path, svg_text)?;
    let png = base.with_extension("png");
    let ok = std::process::Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png)
        .arg(&svg_path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    Ok(ok.then_some(png))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mbps_secs: f64, rss_kb: u64) -> Sample {
        Sample {
            secs: mbps_secs,
            bytes: 100_000_000,
            lines: 10,
            records: 10,
            rss_kb,
            complete: true,
            ..Sample::default()
        }
    }

    #[test]
    fn medians_and_ratios_against_the_ceiling() {
        let rows = vec![
            Row {
                case: "catchup".into(),
                target: Target::Ceiling,
                rate_mb: None,
                samples: vec![sample(1.0, 1000), sample(2.0, 1000), sample(4.0, 1000)],
                skipped: None,
            },
            Row {
                case: "catchup".into(),
                target: Target::AgentRaw,
                rate_mb: None,
                samples: vec![sample(2.0, 2048), sample(2.0, 4096), sample(10.0, 1024)],
                skipped: None,
            },
            Row {
                case: "catchup".into(),
                target: Target::Filebeat,
                rate_mb: None,
                samples: vec![],
                skipped: Some("skipped: not installed".into()),
            },
        ];
        // Ceiling median 50 MB/s (100 MB in 2 s), agent median 50 MB/s: ratio 1.00.
        let md = markdown("catchup", &rows);
        assert!(md.contains("| agent (raw) | 50.0 (10.0–50.0) | 1.00× |"), "{md}");
        assert!(md.contains("| Filebeat | skipped: not installed |"), "{md}");
        assert!(md.contains("| 2.0 |"), "median RSS of 1, 2 and 4 MiB is 2 MiB: {md}");
        let c = csv(&rows);
        assert_eq!(c.lines().count(), 1 + 3 + 3 + 1);
        let s = svg("t", &rows);
        assert_eq!(s.matches("<rect x=").count(), 4, "two bars per measured target");
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn filebeat_ratios_compare_like_with_like_and_the_crash_table_shows_losses() {
        let row = |target, secs: f64| Row {
            case: "catchup".into(),
            target,
            rate_mb: None,
            samples: vec![sample(secs, 1000)],
            skipped: None,
        };
        // 100 MB: the agent's lines in 1 s, Filebeat's in 4 s; JSON events in 2 s and 10 s.
        let rows = vec![
            row(Target::AgentRaw, 1.0),
            row(Target::AgentJson, 2.0),
            row(Target::Filebeat, 4.0),
            row(Target::FilebeatJson, 10.0),
        ];
        let md = markdown("catchup", &rows);
        assert!(md.contains("| agent (raw) | 100.0 (100.0–100.0) | – | – | 4.00× |"), "{md}");
        assert!(md.contains("| agent (json) | 50.0 (50.0–50.0) | – | – | 5.00× |"), "{md}");
        let mut crashed = row(Target::FilebeatJson, 2.0);
        crashed.samples[0].lost = Some(466);
        crashed.samples[0].duplicates = Some(24);
        let md = markdown("crash", &[crashed]);
        assert!(md.contains("| 24 | 466 |"), "re-sent, then lost: {md}");
    }

    #[test]
    fn the_copytruncate_table_shows_losses_on_disk_apart() {
        let mut s = sample(20.0, 2048);
        (s.rotations, s.off_disk, s.lost, s.lost_on_disk, s.duplicates) =
            (Some(19), Some(3), Some(40), Some(37), Some(5));
        let row = Row {
            case: "copytruncate".into(),
            target: Target::Filebeat,
            rate_mb: None,
            samples: vec![s],
            skipped: None,
        };
        let md = markdown("copytruncate", &[row]);
        assert!(
            md.contains("| Filebeat | 19 | 10 | 3 | 40 | 37 | 5 |"),
            "rotations, written, off disk, lost, on disk, re-sent: {md}"
        );
    }
}
