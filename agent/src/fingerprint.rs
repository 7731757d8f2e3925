//! File identity: device + inode, checked against a hash of the file's first bytes.
//!
//! Invariant: two observations are the same file only if device and inode match *and* the stored
//! fingerprint still matches the file's first `len` bytes. An inode reused by a new file (same
//! number, other content) therefore starts from offset 0 instead of resuming at a stale offset.
//! Unlike Filebeat's fingerprint mode there is no minimum size: a file of 3 bytes is fingerprinted
//! over those 3 bytes and shipped at once; the fingerprint grows (up to [`FINGERPRINT_MAX`]) as the
//! file does. A gzip archive is fingerprinted over its *uncompressed* first bytes, so the archive
//! of a file already read (logrotate's `compress`) has that file's fingerprint.
//!
//! A [`Stamp`] (size and change times) is what the reader remembers of a file it closed: while
//! the path's stamp is unchanged the file is untouched; once it differs the file is checked
//! against its fingerprint before it is read on, because device and inode alone do not tell a
//! file from a new one that was given the freed inode.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_MAX: u64 = 1024;

/// Device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// What the metadata says of a file's content: its size and its modification and status change
/// times. Any write, truncation or re-creation changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp { size: meta.len(), mtime: (meta.mtime(), meta.mtime_nsec()), ctime: (meta.ctime(), meta.ctime_nsec()) }
    }
}

/// FNV-1a hash of the first `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// Fingerprints the first `min(size, FINGERPRINT_MAX)` bytes.
    pub fn read(file: &File, size: u64) -> io::Result<Fingerprint> {
        Self::read_len(file, size.min(FINGERPRINT_MAX))
    }

    /// Fingerprints the first `min(len, FINGERPRINT_MAX)` bytes of `content` (the uncompressed
    /// start of a gzip archive, so an archive of a file already read is recognised).
    pub fn of_content(content: &[u8]) -> Fingerprint {
        let len = content.len().min(FINGERPRINT_MAX as usize);
        Fingerprint { len: len as u64, hash: fnv1a(&content[..len]) }
    }

    /// Whether `content` (a start of the file's content) begins with the fingerprinted bytes.
    pub fn matches_content(&self, content: &[u8]) -> bool {
        content.len() as u64 >= self.len && Self::of_content(&content[..self.len as usize]) == *self
    }

    fn read_len(file: &File, len: u64) -> io::Result<Fingerprint> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, 0)?;
        Ok(Fingerprint { len, hash: fnv1a(&buf) })
    }

    /// Whether `file` (of `size` bytes) starts with the bytes this fingerprint was taken over.
    pub fn matches(&self, file: &File, size: u64) -> io::Result<bool> {
        if size < self.len {
            return Ok(false);
        }
        Ok(Self::read_len(file, self.len)? == *self)
    }
}

/// Whether `file` starts with `head` (at most [`FINGERPRINT_MAX`] bytes); a file now shorter
/// than `head` does not.
pub fn starts_with(file: &File, head: &[u8]) -> io::Result<bool> {
    // On the stack: the reader checks this for every chunk it reads.
    let mut buf = [0u8; FINGERPRINT_MAX as usize];
    let buf = &mut buf[..head.len().min(FINGERPRINT_MAX as usize)];
    match file.read_exact_at(buf, 0) {
        Ok(()) => Ok(buf == &head[..buf.len()]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_matches_same_prefix_and_rejects_other_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"hello\n").unwrap();
        let f = File::open(&p).unwrap();
        let fp = Fingerprint::read(&f, 6).unwrap();
        assert_eq!(fp.len, 6);
        // Growing keeps the identity.
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"more\n").unwrap();
        assert!(fp.matches(&f, 11).unwrap());
        // Same inode, new content (a reused inode or a rewritten file) does not match.
        std::fs::write(&p, b"other!\n").unwrap();
        assert!(!fp.matches(&f, 7).unwrap());
        // A file now shorter than the fingerprint (copytruncate) does not match.
        std::fs::write(&p, b"he").unwrap();
        assert!(!fp.matches(&f, 2).unwrap());
    }

    #[test]
    fn fingerprint_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![7u8; 5000]).unwrap();
        let fp = Fingerprint::read(&File::open(&p).unwrap(), 5000).unwrap();
        assert_eq!(fp.len, FINGERPRINT_MAX);
    }
}
