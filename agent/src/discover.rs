//! Discovery: which files each input's globs match, now.
//!
//! Owns the inotify watcher (the `notify` crate) and the rescan timers. It sends the reader a full
//! list of matching files per input (a *scan*) every `check_interval`, and at once (debounced) when a
//! watched directory reports a created, removed or renamed entry; writes to a file are forwarded as
//! *pokes* so the reader reads them without waiting for its poll backoff. Invariant: a scan lists
//! every regular file matching the input's globs and not excluded, once per (device, inode), under
//! the shortest path that reaches it (so a `**` through a symlink loop never names a file by a
//! looped path, and the name does not change from scan to scan); a path that is itself a symlink
//! only when the input asks for symlinks; the reader treats a file missing from a scan as renamed
//! away or deleted.

use crate::fingerprint::{FileId, Stamp};
use crate::shutdown::Shutdown;
use notify::{EventKind, RecursiveMode, Watcher};
use regex::bytes::Regex;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// A file that matched an input's globs.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub id: FileId,
    pub stamp: Stamp,
}

#[derive(Debug)]
pub enum DiscoverMsg {
    /// Every file input `input` matches now. `initial` marks the scan made at start-up.
    Scan { input: usize, files: Vec<Found>, initial: bool },
    /// Something was written to this path.
    Poke(PathBuf),
}

/// One input's file selection.
#[derive(Debug, Clone)]
pub struct Selector {
    pub input_id: String,
    pub globs: Vec<String>,
    pub exclude: Vec<Regex>,
    /// When not empty, only paths matching one of these are selected.
    pub include: Vec<Regex>,
    /// Whether a path that is a symlink is selected (the file it leads to is identified).
    pub symlinks: bool,
    pub check_interval: Duration,
}

impl Selector {
    /// Lists the matching files. Unreadable directories and vanished entries are skipped.
    pub fn scan(&self) -> Vec<Found> {
        self.scan_noting(&mut Vec::new())
    }

    /// [`Selector::scan`], noting each directory the globs could not read (path and error) in
    /// `unreadable`, so the caller can say why a file is missing instead of "no file matches".
    pub fn scan_noting(&self, unreadable: &mut Vec<(PathBuf, std::io::Error)>) -> Vec<Found> {
        let mut at: HashMap<FileId, usize> = HashMap::new();
        let mut out: Vec<Found> = Vec::new();
        for g in &self.globs {
            let Ok(paths) = glob::glob(g) else { continue };
            for path in paths {
                let path = match path {
                    Ok(p) => p,
                    Err(e) => {
                        let path = e.path().to_path_buf();
                        unreadable.push((path, e.into()));
                        continue;
                    }
                };
                let Some(meta) = self.selects(&path) else { continue };
                let id = FileId::of(&meta);
                match at.get(&id) {
                    None => {
                        at.insert(id, out.len());
                        out.push(Found { path, id, stamp: Stamp::of(&meta) });
                    }
                    Some(&i) if path.as_os_str().len() < out[i].path.as_os_str().len() => out[i].path = path,
                    Some(_) => {}
                }
            }
        }
        out
    }

    /// The metadata of the regular file at `path` if this input reads it.
    fn selects(&self, path: &Path) -> Option<std::fs::Metadata> {
        let bytes = path.as_os_str().as_bytes();
        if self.exclude.iter().any(|r| r.is_match(bytes)) {
            return None;
        }
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(bytes)) {
            return None;
        }
        // One stat a path: without symlinks the link's own metadata is the file's when it is none.
        let meta = if self.symlinks {
            std::fs::metadata(path).ok()?
        } else {
            let own = std::fs::symlink_metadata(path).ok()?;
            if own.file_type().is_symlink() {
                return None;
            }
            own
        };
        meta.is_file().then_some(meta)
    }

    /// Directories to watch for this input: the fixed prefix of each glob, and whether the glob
    /// continues below it (then the watch is recursive).
    fn watch_roots(&self) -> Vec<(PathBuf, RecursiveMode)> {
        self.globs
            .iter()
            .map(|g| {
                let mut root = PathBuf::new();
                let mut comps = Path::new(g).components().peekable();
                while let Some(c) = comps.next() {
                    let s = c.as_os_str().to_string_lossy();
                    if s.contains(['*', '?', '[']) || comps.peek().is_none() {
                        break;
                    }
                    root.push(c);
                }
                let depth = Path::new(g).components().count() - root.components().count();
                let mode = if depth > 1 { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
                (root, mode)
            })
            .collect()
    }
}

/// The longest wait between two turns of the loop (the heartbeat `/livez` watches).
const TURN_AT_LEAST: Duration = Duration::from_secs(1);

/// What wakes discovery between scans: a file system notification, or the stop.
enum Wake {
    Fs(notify::Event),
    Stop,
}

/// Runs discovery until `stop`. Sends on `tx`, blocking for scans, dropping pokes when full.
pub fn run(selectors: Vec<Selector>, tx: SyncSender<DiscoverMsg>, stop: Shutdown, heartbeat: crate::status::Heartbeat) {
    let (ev_tx, ev_rx) = mpsc::sync_channel::<Wake>(4096);
    // The stop wakes the wait below through the same channel as the notifications do. Never
    // blocking the stopping thread: a full channel means this loop has work queued, so it turns
    // and sees the stop anyway.
    let stop_tx = ev_tx.clone();
    stop.on_stop(move || {
        let _ = stop_tx.try_send(Wake::Stop);
    });
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            // Dropping an event when full is fine: the periodic rescan catches up.
            let _ = ev_tx.try_send(Wake::Fs(ev));
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "file notifications unavailable; relying on periodic rescans"))
    .ok();
    // The directories each input watches, derived from its globs once.
    let roots: Vec<Vec<(PathBuf, RecursiveMode)>> = selectors.iter().map(Selector::watch_roots).collect();
    let mut watched: HashSet<PathBuf> = HashSet::new();
    let mut next_scan: Vec<Instant> = vec![Instant::now(); selectors.len()];
    let mut initial = vec![true; selectors.len()];
    // Per input, the directories its globs could not read, each logged when it first fails.
    let mut reported: Vec<HashMap<PathBuf, String>> = vec![HashMap::new(); selectors.len()];
    while !stop.is_stopped() {
        heartbeat.beat();
        let now = Instant::now();
        for (i, sel) in selectors.iter().enumerate() {
            if now < next_scan[i] {
                continue;
            }
            if let Some(w) = watcher.as_mut() {
                watch_new_roots(w, &roots[i], &mut watched);
            }
            let mut unreadable = Vec::new();
            let files = sel.scan_noting(&mut unreadable);
            report_unreadable(&sel.input_id, unreadable, &mut reported[i]);
            if initial[i] && files.is_empty() && reported[i].is_empty() {
                tracing::warn!(input = %sel.input_id, globs = ?sel.globs, "no file matches yet; files will be picked up when they appear");
            }
            if tx.send(DiscoverMsg::Scan { input: i, files, initial: initial[i] }).is_err() {
                return;
            }
            initial[i] = false;
            next_scan[i] = now + sel.check_interval;
        }
        // Notifications and the stop end this wait; the cap keeps the heartbeat beating.
        let wait = next_scan.iter().min().map_or(TURN_AT_LEAST, |t| t.saturating_duration_since(Instant::now()));
        let mut pokes = HashSet::new();
        let mut wake = ev_rx.recv_timeout(wait.min(TURN_AT_LEAST)).ok();
        while let Some(w) = wake {
            if let Wake::Fs(ev) = w {
                handle_event(ev, &roots, &mut next_scan, &mut pokes);
            }
            wake = ev_rx.try_recv().ok();
        }
        // A busy file produces an event per write; forward each path once per drain.
        for p in pokes {
            if let Err(TrySendError::Disconnected(_)) = tx.try_send(DiscoverMsg::Poke(p)) {
                return;
            }
        }
    }
}

/// Logs each directory that became unreadable (path and error) once, and again when its error
/// changes; logs one that can be read again. A directory missing from a scan is not an error: a
/// glob's directory that does not exist yet is waited for silently.
fn report_unreadable(input: &str, now: Vec<(PathBuf, std::io::Error)>, reported: &mut HashMap<PathBuf, String>) {
    let mut seen = HashSet::new();
    for (dir, err) in now {
        let text = err.to_string();
        if reported.get(&dir) != Some(&text) {
            tracing::warn!(input, dir = %dir.display(), error = %text, "cannot read directory; files under it are not read until it can be");
            reported.insert(dir.clone(), text);
        }
        seen.insert(dir);
    }
    reported.retain(|dir, _| {
        let still = seen.contains(dir);
        if !still {
            tracing::info!(input, dir = %dir.display(), "directory can be read again");
        }
        still
    });
}

fn watch_new_roots(
    w: &mut notify::RecommendedWatcher,
    roots: &[(PathBuf, RecursiveMode)],
    watched: &mut HashSet<PathBuf>,
) {
    for (root, mode) in roots {
        if watched.contains(root) || !root.is_dir() {
            continue;
        }
        match w.watch(root, *mode) {
            Ok(()) => {
                watched.insert(root.clone());
            }
            Err(e) => {
                tracing::debug!(dir = %root.display(), error = %e, "cannot watch directory; rescans still find its files")
            }
        }
    }
}

/// Directory changes trigger a rescan of the inputs watching there (debounced by 20 ms, so a
/// rename followed by a create is seen in one scan); data writes are forwarded as pokes.
fn handle_event(
    ev: notify::Event,
    roots: &[Vec<(PathBuf, RecursiveMode)>],
    next_scan: &mut [Instant],
    pokes: &mut HashSet<PathBuf>,
) {
    match ev.kind {
        EventKind::Modify(notify::event::ModifyKind::Data(_)) => pokes.extend(ev.paths),
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_)) => {
            let soon = Instant::now() + Duration::from_millis(20);
            for (i, input_roots) in roots.iter().enumerate() {
                let concerned = ev.paths.iter().any(|p| input_roots.iter().any(|(root, _)| p.starts_with(root)));
                if concerned && next_scan[i] > soon {
                    next_scan[i] = soon;
                }
            }
        }
        _ => {}
    }
}

/// Receives discovery messages; a thin alias so the reader's signature reads clearly.
pub type DiscoverRx = Receiver<DiscoverMsg>;

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(dir: &Path, globs: &[&str], exclude: &[&str]) -> Selector {
        Selector {
            input_id: "t".into(),
            globs: globs.iter().map(|g| dir.join(g).to_string_lossy().into_owned()).collect(),
            exclude: exclude.iter().map(|r| Regex::new(r).unwrap()).collect(),
            include: vec![],
            symlinks: false,
            check_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn include_files_and_symlinks_select_like_filebeat() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.log"), b"x").unwrap();
        std::fs::write(dir.path().join("db.log"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("db.log"), dir.path().join("link.log")).unwrap();
        let names = |sel: &Selector| {
            let mut v: Vec<String> =
                sel.scan().iter().map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        };
        let mut sel = selector(dir.path(), &["*.log"], &[]);
        assert_eq!(names(&sel), ["app.log", "db.log"], "a symlink is not read by default");
        sel.include = vec![Regex::new("app").unwrap()];
        assert_eq!(names(&sel), ["app.log"]);
        // With symlinks on, the linked file is still one file, under its shorter name.
        let mut sel = selector(dir.path(), &["link.log", "*.log"], &[]);
        sel.symlinks = true;
        assert_eq!(names(&sel), ["app.log", "db.log"], "link.log and db.log are one file");
    }

    #[test]
    fn a_symlink_loop_under_a_double_star_names_each_file_by_its_shortest_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/app.log"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("d"), dir.path().join("d/loop")).unwrap();
        let mut sel = selector(dir.path(), &["**/*.log"], &[]);
        sel.symlinks = true;
        let found = sel.scan();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, dir.path().join("d/app.log"));
    }

    #[test]
    fn scan_matches_globs_recursively_and_honours_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("top.log"), b"x").unwrap();
        std::fs::write(dir.path().join("a/b/deep.log"), b"x").unwrap();
        std::fs::write(dir.path().join("a/skip.log.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("a/other.txt"), b"x").unwrap();
        let sel = selector(dir.path(), &["**/*.log*"], &[r"\.gz$"]);
        let mut names: Vec<String> =
            sel.scan().iter().map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec!["deep.log", "top.log"]);
    }

    #[test]
    fn a_file_matched_by_two_globs_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.log"), b"x").unwrap();
        let sel = selector(dir.path(), &["*.log", "x.*"], &[]);
        assert_eq!(sel.scan().len(), 1);
    }

    #[test]
    fn glob_matching_nothing_is_an_empty_scan() {
        let dir = tempfile::tempdir().unwrap();
        assert!(selector(dir.path(), &["missing/*.log"], &[]).scan().is_empty());
    }

    #[test]
    fn watch_roots_stop_at_the_first_wildcard() {
        let sel = Selector {
            input_id: "t".into(),
            globs: vec!["/var/log/app/*.log".into(), "/srv/**/x.log".into()],
            exclude: vec![],
            include: vec![],
            symlinks: false,
            check_interval: Duration::from_secs(1),
        };
        let roots = sel.watch_roots();
        assert_eq!(roots[0], (PathBuf::from("/var/log/app"), RecursiveMode::NonRecursive));
        assert_eq!(roots[1], (PathBuf::from("/srv"), RecursiveMode::Recursive));
    }

    #[test]
    fn new_file_is_reported_within_a_second_by_notification() {
        let dir = tempfile::tempdir().unwrap();
        let mut sel = selector(dir.path(), &["*.log"], &[]);
        sel.check_interval = Duration::from_secs(3600);
        let (tx, rx) = mpsc::sync_channel(64);
        let stop = Shutdown::new();
        let s2 = stop.clone();
        let h = std::thread::spawn(move || run(vec![sel], tx, s2, crate::status::Heartbeat::detached("discover")));
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            DiscoverMsg::Scan { files, initial: true, .. } => assert!(files.is_empty()),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("new.log"), b"hello\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut found = false;
        while let Ok(msg) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let DiscoverMsg::Scan { files, .. } = msg {
                found |= files.iter().any(|f| f.path.ends_with("new.log"));
            }
            if found {
                break;
            }
        }
        stop.stop();
        h.join().unwrap();
        assert!(found, "the new file was not reported within a second (check_interval is an hour)");
    }
}
