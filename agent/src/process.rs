//! The process's own figures, read from `/proc/self` when asked: CPU seconds, memory, open
//! descriptors and their limit, start time (Prometheus' standard `process_*` metrics).
//!
//! Owns nothing: each call reads the kernel's current values. Invariant: a figure that cannot be
//! read is absent (`None`), never shown as zero.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// Seconds since the Unix epoch when the process started.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    pub fn read() -> ProcessStats {
        // SAFETY: sysconf only reads system configuration.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        // `fields[0]` is field 3 (state): field N is `fields[N - 3]`.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let per_tick = (ticks > 0).then(|| 1.0 / ticks as f64);
        let cpu_seconds = match (field(14), field(15), per_tick) {
            (Some(u), Some(s), Some(t)) => Some((u + s) as f64 * t),
            _ => None,
        };
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok())));
        let start_time_seconds = match (boot, field(22), per_tick) {
            (Some(b), Some(start), Some(t)) => Some(b as f64 + start as f64 * t),
            _ => None,
        };
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct it is given.
        let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur);
        ProcessStats {
            cpu_seconds,
            resident_bytes: field(24).zip((page > 0).then_some(page as u64)).map(|(p, size)| p * size),
            virtual_bytes: field(23),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds,
            start_time_seconds,
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_figures_are_plausible() {
        let before = ProcessStats::read();
        // Many at once: other tests of this binary open and close files meanwhile.
        let held: Vec<std::fs::File> = (0..200).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
        let after = ProcessStats::read();
        drop(held);
        assert!(before.resident_bytes.unwrap() > 1 << 20, "{before:?}");
        assert!(before.virtual_bytes.unwrap() >= before.resident_bytes.unwrap());
        let opened = after.open_fds.unwrap() as i64 - before.open_fds.unwrap() as i64;
        assert!((180..=220).contains(&opened), "200 descriptors more, counted {opened}");
        assert!(after.open_fds.unwrap() < after.max_fds.unwrap());
        let start = before.start_time_seconds.unwrap();
        assert!(start <= now_seconds() && start > now_seconds() - 86_400.0, "{start}");
        assert!(before.cpu_seconds.unwrap() >= 0.0);
    }
}
