//! The agent's own log files rotated by size (`logging.files.rotateeverybytes`, as Filebeat
//! does); time rotation (`logging.files.interval`) is tracing-appender's own.
//!
//! Owns the open log file and its size. Invariants: `<name>.log` grows past the limit only by a
//! single write that alone is larger; at rotation `<name>.log.N` becomes `<name>.log.N+1` and
//! `<name>.log` becomes `<name>.log.1`, so at most `keepfiles` rotated files are left (the oldest
//! goes first). Files are created `0600`: logs can name paths and hosts.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct SizeRotatingFile {
    dir: PathBuf,
    name: String,
    max_bytes: u64,
    keepfiles: usize,
    file: File,
    size: u64,
}

impl SizeRotatingFile {
    /// Opens (appends to) `<dir>/<name>.log`.
    pub fn open(dir: &Path, name: &str, max_bytes: u64, keepfiles: usize) -> io::Result<SizeRotatingFile> {
        let path = dir.join(format!("{name}.log"));
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(SizeRotatingFile { dir: dir.to_path_buf(), name: name.to_string(), max_bytes, keepfiles, file, size })
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
        self.file = open_append(&current)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
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
    fn rotates_by_size_and_keeps_keepfiles() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SizeRotatingFile::open(dir.path(), "agent", 100, 2).unwrap();
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
        let mut f = SizeRotatingFile::open(dir.path(), "agent", 100, 2).unwrap();
        f.write_all(format!("{:039}\n", 10).as_bytes()).unwrap();
        assert!(read("agent.log.1").starts_with("000000000000000000000000000000000000008"));
    }
}
