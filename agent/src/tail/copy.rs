//! Finding the rotated copy of a file that was truncated (copytruncate), so that what the copy
//! holds past the read position is read from it instead of being lost.
//!
//! Owns no state beyond [`Listings`], the directory listings one pass of lookups shares (at
//! start-up, every registry entry whose file is gone is looked up: its directory is listed once,
//! not once per entry). Invariant: a file is only taken for
//! the copy when all of these hold, so an unrelated file is never read from the middle:
//! - its name is the truncated file's name followed by `.`, `-` or `_` (`app.log.1`,
//!   `app.log-20261126`), and it is not compressed (`.gz`, `.bz2`, `.xz`, `.zst`, `.zip`: a
//!   compressed copy is made after the truncation, from the uncompressed one, which is found
//!   first);
//! - it is another file (another device or inode) while the file is still there, a regular one;
//! - it is at least as long as the read position, and starts with the bytes fingerprinted of the
//!   truncated file (a fingerprint of at least one byte).
//!
//! Of several, the one changed last (the newest copy). The rotated copies changed after it hold
//! the whole generations of the file that were written and truncated in the meantime (when the
//! reader was held back, by a slow Kafka, while the file was rotated more than once): they are
//! returned too, oldest first, to be read from their start.

use crate::fingerprint::{FileId, Fingerprint};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Suffixes of compressed copies, which are not read from the middle.
const COMPRESSED: [&str; 5] = [".gz", ".bz2", ".xz", ".zst", ".zip"];

/// A rotated copy found for a truncated file, open.
#[derive(Debug)]
pub struct Copy {
    pub path: PathBuf,
    pub file: File,
    pub id: FileId,
    pub size: u64,
    /// The copy's own fingerprint (its first bytes, up to the usual length).
    pub fingerprint: Fingerprint,
    changed: SystemTime,
}

/// What [`find`] found: the copy of the truncated file, and the later generations.
#[derive(Debug)]
pub struct Copies {
    /// The copy of what the file held when it was truncated: read on from the offset.
    pub rest: Copy,
    /// Copies of the generations written since (changed after `rest`), oldest first: read whole.
    pub later: Vec<Copy>,
}

/// The rotated copies of `truncated` (with fingerprint `fp`, read to `offset`), if one of them
/// holds what it held (see the module's invariant). `was` is its device and inode when it is
/// still there (truncated): that file is not its own copy; without it (the file is gone from the
/// globs), a file with its old inode under a rotated name is the file itself, renamed, and the
/// file still at `truncated` is taken too.
///
/// The directory's listing is taken from `listings` (listed at its first lookup).
pub fn find(
    truncated: &Path,
    was: Option<FileId>,
    fp: Fingerprint,
    offset: u64,
    listings: &mut Listings,
) -> Option<Copies> {
    if fp.len == 0 {
        // Nothing to recognise the copy by.
        return None;
    }
    let name = truncated.file_name()?.to_str()?;
    let dir = truncated.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut rotated = Vec::new();
    for file_name in listings.names(dir)? {
        // Gone from the globs, the file may still be at its own path (a copy that was being
        // read, or a file the globs no longer match): the rest of it is there.
        let itself = was.is_none() && file_name.to_str() == Some(name);
        if !itself && !file_name.to_str().is_some_and(|other| is_rotated_name(name, other)) {
            continue;
        }
        let path = dir.join(file_name);
        let Ok(file) = File::open(&path) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let id = FileId::of(&meta);
        if !meta.is_file() || Some(id) == was {
            continue;
        }
        let Ok(fingerprint) = Fingerprint::read(&file, meta.len()) else { continue };
        let changed = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        rotated.push(Copy { path, file, id, size: meta.len(), fingerprint, changed });
    }
    rotated.sort_by_key(|c| c.changed);
    let at = rotated.iter().rposition(|c| c.size >= offset && fp.matches(&c.file, c.size).unwrap_or(false))?;
    let mut later = rotated.split_off(at + 1);
    let rest = rotated.pop().expect("the copy found");
    // Only strictly newer: a copy changed within the same clock tick (file times are coarse) is
    // as likely older, and would be read twice.
    later.retain(|c| c.changed > rest.changed);
    Some(Copies { rest, later })
}

/// The names in each directory [`find`] looked in, listed once per pass of lookups. A pass is
/// short (start-up, or one truncation), so a file created during it may be missed, as it would be
/// by a lookup a moment earlier.
#[derive(Debug, Default)]
pub struct Listings {
    by_dir: HashMap<PathBuf, Vec<OsString>>,
}

impl Listings {
    /// The names in `dir`; `None` when it cannot be listed.
    fn names(&mut self, dir: &Path) -> Option<&[OsString]> {
        if !self.by_dir.contains_key(dir) {
            let names = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.file_name()).collect();
            self.by_dir.insert(dir.to_path_buf(), names);
        }
        self.by_dir.get(dir).map(Vec::as_slice)
    }
}

/// Whether `other` is named like a rotated copy of `name`.
fn is_rotated_name(name: &str, other: &str) -> bool {
    let Some(rest) = other.strip_prefix(name) else { return false };
    let mut chars = rest.chars();
    matches!(chars.next(), Some('.' | '-' | '_'))
        && chars.next().is_some()
        && !COMPRESSED.iter().any(|s| rest.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`find`] in a pass of its own.
    fn lookup(truncated: &Path, was: Option<FileId>, fp: Fingerprint, offset: u64) -> Option<Copies> {
        find(truncated, was, fp, offset, &mut Listings::default())
    }

    /// Rotated twice while the reader was held back: the copy of what it read is followed by the
    /// copy of the generation written after it, whatever their names say.
    #[test]
    fn the_generations_after_the_copy_come_with_it_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, b"gen one\n").unwrap();
        let f = File::open(&p).unwrap();
        let (id, fp) = (FileId::of(&f.metadata().unwrap()), Fingerprint::read(&f, 8).unwrap());
        let pause = || std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("app.log.9"), b"an old generation, read long ago\n").unwrap();
        pause();
        std::fs::write(dir.path().join("app.log.3"), b"gen one\nmore of gen one\n").unwrap();
        pause();
        std::fs::write(dir.path().join("app.log.2"), b"gen two\n").unwrap();
        pause();
        std::fs::write(dir.path().join("app.log.1"), b"gen three\n").unwrap();
        let c = lookup(&p, Some(id), fp, 8).expect("the copy");
        assert_eq!(c.rest.path, dir.path().join("app.log.3"));
        let later: Vec<_> = c.later.iter().map(|c| c.path.file_name().unwrap().to_owned()).collect();
        assert_eq!(later, ["app.log.2", "app.log.1"]);
    }

    /// Many files gone from one directory, looked up in one pass: the directory is listed once,
    /// and each finds its own copy.
    #[test]
    fn one_pass_lists_a_directory_once() {
        let dir = tempfile::tempdir().unwrap();
        let copy = |i: usize| dir.path().join(format!("f{i}.log.1"));
        for i in 0..20 {
            std::fs::write(copy(i), format!("file {i}\nrest\n")).unwrap();
        }
        let mut listings = Listings::default();
        for i in 0..20 {
            let fp = Fingerprint::read(&File::open(copy(i)).unwrap(), 7).unwrap();
            let c = find(&dir.path().join(format!("f{i}.log")), None, fp, 7, &mut listings).expect("its copy");
            assert_eq!(c.rest.path, copy(i));
        }
        assert_eq!(listings.by_dir.len(), 1, "directories listed");
    }

    #[test]
    fn rotated_names_are_the_name_a_separator_and_more_uncompressed() {
        for ok in ["app.log.1", "app.log-20261126", "app.log_old", "app.log.2026-11-26"] {
            assert!(is_rotated_name("app.log", ok), "{ok}");
        }
        for no in ["app.log", "app.log.", "app.log.1.gz", "app.log-1.zst", "app.logs", "other.log.1", "xapp.log.1"] {
            assert!(!is_rotated_name("app.log", no), "{no}");
        }
    }

    /// The copy must start like the truncated file, be long enough, and be another file; of
    /// two, the newer is taken.
    #[test]
    fn the_newest_long_enough_copy_with_the_same_start_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, b"first line\nsecond line\n").unwrap();
        let f = File::open(&p).unwrap();
        let (id, fp) = (FileId::of(&f.metadata().unwrap()), Fingerprint::read(&f, 23).unwrap());
        assert!(lookup(&p, Some(id), fp, 11).is_none(), "no copy yet");
        std::fs::write(dir.path().join("app.log.2"), b"first line\n").unwrap();
        assert!(lookup(&p, Some(id), fp, 11).is_none(), "too short for the fingerprint");
        std::fs::write(dir.path().join("other.log.1"), b"first line\nsecond line\nthird\n").unwrap();
        std::fs::write(dir.path().join("app.log.3"), b"another start\nsecond line\nthird\n").unwrap();
        assert!(lookup(&p, Some(id), fp, 11).is_none(), "other name, other start");
        std::fs::write(dir.path().join("app.log.1"), b"first line\nsecond line\nthird line\n").unwrap();
        let c = lookup(&p, Some(id), fp, 23).expect("the copy");
        assert_eq!(c.rest.path, dir.path().join("app.log.1"));
        assert_eq!(c.rest.size, 34);
        assert!(c.later.is_empty(), "{c:?}");
        assert!(lookup(&p, Some(id), fp, 35).is_none(), "shorter than the offset");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("app.log-new"), b"first line\nsecond line\n").unwrap();
        assert_eq!(lookup(&p, Some(id), fp, 23).unwrap().rest.path, dir.path().join("app.log-new"), "the newer one");
        assert!(lookup(&p, Some(id), Fingerprint::default(), 0).is_none(), "an empty fingerprint recognises nothing");
        // A hard link to the truncated file itself is not its copy.
        std::fs::remove_file(dir.path().join("app.log-new")).unwrap();
        std::fs::remove_file(dir.path().join("app.log.1")).unwrap();
        std::fs::hard_link(&p, dir.path().join("app.log.1")).unwrap();
        assert!(lookup(&p, Some(id), fp, 0).is_none());
        // Gone from its name (renamed to app.log.1): that is where the rest of it is.
        std::fs::remove_file(&p).unwrap();
        assert_eq!(lookup(&p, None, fp, 0).unwrap().rest.path, dir.path().join("app.log.1"));
    }
}
