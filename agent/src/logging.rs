//! The agent's own log files, rotated by size (`logging.files.rotateeverybytes`, as Filebeat
//! does: [`SizeRotatingFile`]) or by time (`logging.files.interval`: [`TimeRotatingFile`]).
//!
//! Owns the open log file and its size or period. Invariants: `<name>.log` grows past the limit
//! only by a single write that alone is larger; at rotation `<name>.log.N` becomes
//! `<name>.log.N+1` and `<name>.log` becomes `<name>.log.1`, so at most `keepfiles` rotated files
//! are left (the oldest goes first). With `interval`, each period (UTC, aligned to the minute,
//! hour or day) writes `<name>.<period>.log` and at most `keepfiles` such files are left. Every
//! file is created `0600` (or `logging.files.permissions`): logs can name paths and hosts.
//!
//! Also owns the mapping of Filebeat's debug selectors onto the agent's modules
//! ([`selected`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct SizeRotatingFile {
    dir: PathBuf,
    name: String,
    max_bytes: u64,
    keepfiles: usize,
    mode: u32,
    file: File,
    size: u64,
}

impl SizeRotatingFile {
    /// Opens (appends to) `<dir>/<name>.log`, with `mode` (an existing file is set to it too).
    pub fn open(dir: &Path, name: &str, max_bytes: u64, keepfiles: usize, mode: u32) -> io::Result<SizeRotatingFile> {
        let path = dir.join(format!("{name}.log"));
        let file = open_append(&path, mode)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        let size = file.metadata()?.len();
        Ok(SizeRotatingFile { dir: dir.to_path_buf(), name: name.to_string(), max_bytes, keepfiles, mode, file, size })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}.log.{n}", self.name))
    }

    fn rotate(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(self.rotated(self.keepfiles));
        for n in (1..self.keepfiles).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let current = self.dir.join(format!("{}.log", self.name));
        std::fs::rename(&current, self.rotated(1))?;
        self.file = open_append(&current, self.mode)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(mode).open(path)
}

/// Log files by period: `<dir>/<name>.<period>.log`, `<period>` the UTC start of the minute
/// (`2026-11-26-16-05`), hour (`2026-11-26-16`) or day (`2026-11-26`) it was written in.
pub struct TimeRotatingFile {
    dir: PathBuf,
    name: String,
    /// The period's length in seconds: 60, 3600 or 86400.
    every: u64,
    keepfiles: usize,
    mode: u32,
    file: File,
    /// When the current period ends (seconds since the epoch).
    ends: u64,
}

impl TimeRotatingFile {
    /// Opens (appends to) the current period's file, with `mode`. `every` is 60, 3600 or 86400
    /// seconds (the config allows no other).
    pub fn open(dir: &Path, name: &str, every: u64, keepfiles: usize, mode: u32) -> io::Result<TimeRotatingFile> {
        let now = now_secs();
        let (file, ends) = Self::open_period(dir, name, every, mode, now)?;
        let f = TimeRotatingFile { dir: dir.to_path_buf(), name: name.to_string(), every, keepfiles, mode, file, ends };
        f.prune();
        Ok(f)
    }

    fn open_period(dir: &Path, name: &str, every: u64, mode: u32, now: u64) -> io::Result<(File, u64)> {
        let start = now - now % every;
        let layout = match every {
            60 => "%Y-%m-%d-%H-%M",
            3600 => "%Y-%m-%d-%H",
            _ => "%Y-%m-%d",
        };
        let period = jiff::Timestamp::from_second(start as i64).map_err(io::Error::other)?.strftime(layout).to_string();
        let file = open_append(&dir.join(format!("{name}.{period}.log")), mode)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok((file, start + every))
    }

    /// Removes the oldest period files beyond `keepfiles` (the names sort by time).
    fn prune(&self) {
        let prefix = format!("{}.", self.name);
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut periods: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".log"))
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
            })
            .collect();
        periods.sort();
        let surplus = periods.len().saturating_sub(self.keepfiles);
        for old in &periods[..surplus] {
            let _ = std::fs::remove_file(self.dir.join(old));
        }
    }
}

impl Write for TimeRotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = now_secs();
        if now >= self.ends {
            // A failed rotation keeps writing to the current file rather than losing the line.
            match Self::open_period(&self.dir, &self.name, self.every, self.mode, now) {
                Ok((file, ends)) => {
                    (self.file, self.ends) = (file, ends);
                    self.prune();
                }
                Err(e) => eprintln!("agent: cannot rotate the log file in {}: {e}", self.dir.display()),
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Filebeat's selector names and the agent's modules that log what they cover.
const SELECTORS: &[(&[&str], &[&str])] = &[
    (
        &["input", "harvester", "filestream", "input.filestream", "file_watcher", "scanner", "reader", "log"],
        &["agent::tail", "agent::discover", "agent::decode", "agent::event"],
    ),
    (
        &["kafka", "publisher", "publish", "output", "pipeline", "queue", "diskqueue"],
        &["agent::output", "agent::queue", "agent::spool", "agent::rdlog"],
    ),
    (&["registrar", "registry", "memlog", "store"], &["agent::registry", "agent::ack"]),
    (&["processors", "processor"], &["agent::processors"]),
    (&["cfgwarn", "config", "reload", "cfgfile"], &["agent::config", "agent::pipeline"]),
    (&["monitoring", "metrics", "http", "api"], &["agent::http", "agent::metrics", "agent::status"]),
    (&["sink"], &["agent::sink"]),
];

/// Whether a debug line of `target` (a module path) is shown with these `selectors`: every one
/// with none or `*`, else those of a module a selector names (Filebeat's names, listed above).
pub fn selected(selectors: &[String], target: &str) -> bool {
    if selectors.is_empty() || selectors.iter().any(|s| s == "*") {
        return true;
    }
    selectors.iter().any(|s| {
        SELECTORS
            .iter()
            .filter(|(names, _)| names.contains(&s.as_str()))
            .flat_map(|(_, modules)| modules.iter())
            .any(|m| target == *m || target.starts_with(&format!("{m}::")))
    })
}

/// The selectors that name no part of the agent (logged once at start).
pub fn unknown_selectors(selectors: &[String]) -> Vec<&str> {
    selectors
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "*" && !SELECTORS.iter().any(|(names, _)| names.contains(s)))
        .collect()
}

impl Write for SizeRotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            // A failed rotation keeps writing to the current file rather than losing the line.
            if let Err(e) = self.rotate() {
                eprintln!("agent: cannot rotate the log file in {}: {e}", self.dir.display());
            }
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_pick_the_modules_filebeats_names_cover() {
        let sel = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selected(&[], "agent::output::kafka") && selected(&sel(&["*"]), "agent::tail"));
        let kafka = sel(&["kafka"]);
        assert!(selected(&kafka, "agent::output::kafka") && selected(&kafka, "agent::rdlog"));
        assert!(!selected(&kafka, "agent::tail") && !selected(&kafka, "agent::outputs_elsewhere"));
        assert!(selected(&sel(&["harvester", "registrar"]), "agent::registry"));
        assert_eq!(unknown_selectors(&sel(&["kafka", "nope", "*"])), ["nope"]);
    }

    #[test]
    fn rotates_by_size_and_keeps_keepfiles() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SizeRotatingFile::open(dir.path(), "agent", 100, 2, 0o600).unwrap();
        for i in 0..10 {
            // 40-byte lines, one write each (as the log writer does): two fit in 100 bytes.
            f.write_all(format!("{i:039}\n").as_bytes()).unwrap();
        }
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["agent.log", "agent.log.1", "agent.log.2"]);
        assert_eq!(read("agent.log").lines().count(), 2);
        assert!(read("agent.log").starts_with("000000000000000000000000000000000000008"));
        assert!(read("agent.log.1").starts_with("000000000000000000000000000000000000006"));
        assert!(read("agent.log.2").starts_with("000000000000000000000000000000000000004"));
        for n in &names {
            let mode = std::fs::metadata(dir.path().join(n)).unwrap().permissions();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600, "{n}");
        }
        // Reopening appends to the current file and counts its size.
        let mut f = SizeRotatingFile::open(dir.path(), "agent", 100, 2, 0o600).unwrap();
        f.write_all(format!("{:039}\n", 10).as_bytes()).unwrap();
        assert!(read("agent.log.1").starts_with("000000000000000000000000000000000000008"));
    }

    #[test]
    fn time_rotation_names_files_by_period_keeps_keepfiles_and_sets_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // Older periods left by earlier runs, and files that are not this log's.
        for n in [
            "agent.2020-01-01-13.log",
            "agent.2020-01-01-14.log",
            "agent.2020-01-01-15.log",
            "agent.log",
            "other.2020-01-01-13.log",
        ] {
            std::fs::write(dir.path().join(n), "old\n").unwrap();
        }
        let mut f = TimeRotatingFile::open(dir.path(), "agent", 3600, 2, 0o640).unwrap();
        f.write_all(b"now\n").unwrap();
        let hour = jiff::Timestamp::now().strftime("%Y-%m-%d-%H").to_string();
        let current = format!("agent.{hour}.log");
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        let mut expected = vec![
            "agent.2020-01-01-15.log".to_string(),
            current.clone(),
            "agent.log".into(),
            "other.2020-01-01-13.log".into(),
        ];
        expected.sort();
        assert_eq!(names, expected, "the two newest periods are kept, other files left alone");
        let mode = std::fs::metadata(dir.path().join(&current)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(std::fs::read_to_string(dir.path().join(&current)).unwrap().ends_with("now\n"));
        // The period's end passed: the next write opens the next period's file.
        f.ends = 0;
        f.write_all(b"later\n").unwrap();
        assert!(
            std::fs::read_to_string(dir.path().join(&current)).unwrap().ends_with("later\n"),
            "same hour, same file"
        );
        assert!(f.ends > now_secs());
    }

    #[test]
    fn files_get_the_mode_asked_for_existing_ones_too() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut f = SizeRotatingFile::open(dir.path(), "agent", 10, 2, 0o644).unwrap();
        f.write_all(b"0123456789\n").unwrap();
        f.write_all(b"rotated\n").unwrap();
        assert_eq!((mode(&dir.path().join("agent.log")), mode(&dir.path().join("agent.log.1"))), (0o644, 0o644));
        drop(f);
        SizeRotatingFile::open(dir.path(), "agent", 10, 2, 0o600).unwrap();
        assert_eq!(mode(&dir.path().join("agent.log")), 0o600, "an existing file is set to the mode");
    }
}
