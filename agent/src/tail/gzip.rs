//! Gzip archives read as the stream of their uncompressed bytes (flate2).
//!
//! Owns one archive's decoder and its position in the uncompressed stream. Invariants: offsets
//! are uncompressed offsets (the registry stores them like any file's); the decoder reads through
//! `pread` on its own descriptor, so no shared file cursor can be moved under it; reaching a given
//! offset after a restart means decompressing up to it (a deflate stream cannot be entered in the
//! middle). Concatenated members (`cat a.gz b.gz`) are one stream, as `zcat` reads them.

use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A `Read` over a file by absolute offsets.
#[derive(Debug)]
struct At {
    file: File,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

pub struct GzStream {
    dec: MultiGzDecoder<At>,
    /// Uncompressed bytes produced so far.
    pos: u64,
}

impl std::fmt::Debug for GzStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzStream").field("pos", &self.pos).finish()
    }
}

impl GzStream {
    pub fn new(file: File) -> GzStream {
        GzStream { dec: MultiGzDecoder::new(At { file, pos: 0 }), pos: 0 }
    }

    pub fn file(&self) -> &File {
        &self.dec.get_ref().file
    }

    /// Reads uncompressed bytes from offset `at` (never before the current position: a reader
    /// that needs to go back opens a new stream). Skips forward by decompressing. `Ok(0)`: the
    /// archive ended (also when it ends before `at`).
    pub fn read_from(&mut self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        debug_assert!(at >= self.pos, "gzip streams only move forward");
        while self.pos < at {
            let want = buf.len().min((at - self.pos) as usize);
            let n = self.dec.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(0);
            }
            self.pos += n as u64;
        }
        let n = self.dec.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether a file is a gzip archive: by its name, or (when it has two bytes) by its magic number.
pub fn looks_gzipped(path: &Path, file: &File) -> bool {
    if path.extension().is_some_and(|e| e == "gz") {
        return true;
    }
    let mut magic = [0u8; 2];
    file.read_exact_at(&mut magic, 0).is_ok() && magic == MAGIC
}

/// The first `max` uncompressed bytes (fewer if the archive is shorter or damaged there).
pub fn prefix(file: &File, max: usize) -> io::Result<Vec<u8>> {
    let mut s = GzStream::new(file.try_clone()?);
    let mut out = vec![0u8; max];
    let mut got = 0;
    while got < max {
        match s.read_from(&mut out[got..], got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    out.truncate(got);
    Ok(out)
}

/// The archive's uncompressed length (decompresses all of it; an error for a damaged archive).
pub fn uncompressed_len(file: &File) -> io::Result<u64> {
    let mut s = GzStream::new(file.try_clone()?);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let at = s.pos;
        if s.read_from(&mut buf, at)? == 0 {
            return Ok(s.pos);
        }
    }
}

/// How a decoding error is read: the archive ends too early (maybe still being written), or
/// its bytes are damaged. `None`: an I/O error of the file itself.
pub fn damage(e: &io::Error) -> Option<Damage> {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => Some(Damage::Truncated),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => Some(Damage::Corrupt),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    Truncated,
    Corrupt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> File {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        File::open(p).unwrap()
    }

    #[test]
    fn reads_from_any_forward_offset_across_members() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = gz(b"one\ntwo\n");
        bytes.extend(gz(b"three\n"));
        let f = file_with(dir.path(), "a.gz", &bytes);
        assert_eq!(uncompressed_len(&f).unwrap(), 14);
        let mut s = GzStream::new(f);
        let mut buf = [0u8; 64];
        let n = s.read_from(&mut buf, 4).unwrap();
        let mut text = buf[..n].to_vec();
        loop {
            let at = 4 + text.len() as u64;
            let n = s.read_from(&mut buf, at).unwrap();
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        assert_eq!(text, b"two\nthree\n");
    }

    #[test]
    fn detection_by_name_or_magic_and_damage_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let data = gz(&b"line\n".repeat(1000));
        let f = file_with(dir.path(), "noext", &data);
        assert!(looks_gzipped(&dir.path().join("noext"), &f));
        let plain = file_with(dir.path(), "plain.log", b"text\n");
        assert!(!looks_gzipped(&dir.path().join("plain.log"), &plain));
        assert!(looks_gzipped(Path::new("/x/empty.gz"), &plain));
        assert_eq!(prefix(&f, 10).unwrap(), b"line\nline\n");
        // Cut short: truncated. A flipped byte in the deflate data: corrupt (or a CRC mismatch).
        let cut = file_with(dir.path(), "cut.gz", &data[..data.len() / 2]);
        assert_eq!(damage(&uncompressed_len(&cut).unwrap_err()), Some(Damage::Truncated));
        let mut bad = data.clone();
        bad[12] ^= 0xff;
        let bad = file_with(dir.path(), "bad.gz", &bad);
        assert_eq!(damage(&uncompressed_len(&bad).unwrap_err()), Some(Damage::Corrupt));
    }
}
