//! Crash-safe small-file writes, shared by every piece of state the agent keeps on disk (registry,
//! spool cursor, sink positions).
//!
//! Invariant: after [`write_atomically`] returns, the file holds the new content and survives a
//! power loss; a crash before that leaves the old content (and at most a stray `<name>.tmp`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary file [`write_atomically`] writes first: `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn named(at: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", at.display()))
}

/// Writes `bytes` to `path` (mode 0600): temp file, fsync, rename over `path`, fsync the directory.
/// An error names the file it happened on.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let mut f =
        OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(named(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(named(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(named(path))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(named(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!tmp_path(&p).exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn error_names_the_file() {
        let err = write_atomically(Path::new("/nonexistent-dir/x"), b"").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.tmp"), "{err}");
    }
}
