//! Filebeat's registry, read once when the agent takes over a host from Filebeat 8.x.
//!
//! Owns the reading of libbeat's memlog store (`<registry path>/filebeat/`) and the turning of
//! its file states into the agent's registry [`Entry`]s. It never writes there: Filebeat's files
//! stay as they were, so switching back is possible.
//!
//! The store, as Filebeat 8.1.3 writes it (libbeat `statestore/backend/memlog`):
//! - `meta.json`: `{"version":"1"}`;
//! - checkpoints `<sequence number>.json`: a JSON array of every state, each object carrying its
//!   key in `_key`; only the highest-numbered one counts;
//! - `log.json`: the operations after it, two lines each: `{"op":"set"|"remove","id":N}` then
//!   `{"k":"<key>","v":{...}}` (`K`/`V` in older files; Go reads keys case-insensitively). Ops at
//!   or below the checkpoint's number are already in it; the log is read up to the first gap in
//!   the numbering, a torn line or the end, as Filebeat reads it.
//!
//! The states taken over:
//! - filestream: key `filestream::<input id>::native::<inode>-<device>`, offset `cursor.offset`
//!   (a `null` cursor is offset 0: nothing acknowledged yet);
//! - log input: key `filebeat::logs::native::<inode>-<device>`, offset `offset`, path `source`.
//!
//! Invariant: an entry is taken over only for an input of the agent that Filebeat's state belongs
//! to (the filestream input with that id; for a log state, a log input whose globs match its
//! path), with the offset Filebeat recorded as acknowledged. Its fingerprint is the empty prefix,
//! which every file matches (Filebeat identified files by device and inode alone), so the usual
//! start-up checks still apply: a file now shorter than the offset is read from 0. Everything not
//! taken over is reported with the reason.

use super::Entry;
use crate::config::{InputConfig, InputType};
use crate::fingerprint::Fingerprint;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One file state found in Filebeat's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub key: String,
    pub kind: Kind,
    pub ino: u64,
    pub dev: u64,
    pub offset: u64,
    /// The path Filebeat last saw (log input states; filestream keeps it in `meta.source`).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Filestream { input: String },
    Log,
}

/// What reading the store found.
#[derive(Debug, Default)]
pub struct Store {
    pub states: Vec<State>,
    /// Keys of states the agent cannot use (another identity, another input kind), with why.
    pub unusable: Vec<(String, String)>,
    /// Whether the operations log ended early (a gap or a torn line), as after a crash.
    pub log_cut: bool,
}

/// The directory of Filebeat's store under a registry directory, if one is there.
pub fn store_dir(registry_dir: &Path) -> Option<PathBuf> {
    let dir = registry_dir.join("filebeat");
    dir.join("meta.json").is_file().then_some(dir)
}

/// Reads a memlog store directory.
pub fn read(dir: &Path) -> Result<Store, String> {
    let meta = fs::read(dir.join("meta.json")).map_err(|e| format!("{}: {e}", dir.join("meta.json").display()))?;
    let version = serde_json::from_slice::<Value>(&meta).ok().and_then(|v| v.get("version").cloned());
    if version != Some(Value::String("1".into())) {
        return Err(format!(
            "{}: unsupported store version {version:?} (Filebeat 7.9 to 8.x write \"1\")",
            dir.display()
        ));
    }
    let (mut states, seq) = read_checkpoint(dir)?;
    let log_cut = replay_log(dir, seq, &mut states);
    let mut store = Store { log_cut, ..Store::default() };
    let mut keys: Vec<&String> = states.keys().collect();
    keys.sort();
    for key in keys {
        match state_of(key, &states[key]) {
            Ok(s) => store.states.push(s),
            Err(why) => store.unusable.push((key.clone(), why)),
        }
    }
    Ok(store)
}

/// The newest checkpoint's states and its sequence number (0 when there is none).
fn read_checkpoint(dir: &Path) -> Result<(HashMap<String, Value>, u64), String> {
    let newest = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse::<u64>().ok().map(|n| (n, e.path()))
        })
        .max();
    let Some((seq, path)) = newest else { return Ok((HashMap::new(), 0)) };
    let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let list: Vec<Value> =
        serde_json::from_slice(&text).map_err(|e| format!("{}: not a checkpoint ({e})", path.display()))?;
    let mut states = HashMap::new();
    for mut v in list {
        let key = v.as_object_mut().and_then(|o| o.remove("_key")).and_then(|k| k.as_str().map(String::from));
        if let Some(k) = key {
            states.insert(k, v);
        }
    }
    Ok((states, seq))
}

/// Applies `log.json`'s operations after `seq`; returns whether it stopped before its end.
fn replay_log(dir: &Path, seq: u64, states: &mut HashMap<String, Value>) -> bool {
    let Ok(text) = fs::read_to_string(dir.join("log.json")) else { return false };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut last = seq;
    while let Some(op_line) = lines.next() {
        let Ok(op) = serde_json::from_str::<Value>(op_line) else { return true };
        let (Some(name), Some(id)) = (op.get("op").and_then(Value::as_str), op.get("id").and_then(Value::as_u64))
        else {
            return true;
        };
        let Some(data) = lines.next().and_then(|l| serde_json::from_str::<Value>(l).ok()) else { return true };
        if id <= seq {
            continue;
        }
        if id != last + 1 && last != 0 {
            return true;
        }
        last = id;
        let Some(key) = field(&data, "k").and_then(Value::as_str).map(String::from) else { return true };
        match name {
            "set" => {
                states.insert(key, field(&data, "v").cloned().unwrap_or(Value::Null));
            }
            "remove" => {
                states.remove(&key);
            }
            _ => return true,
        }
    }
    false
}

/// A member by name, either case (`k` or `K`), as Go's JSON decoder finds it.
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).or_else(|| v.get(name.to_ascii_uppercase()))
}

fn state_of(key: &str, v: &Value) -> Result<State, String> {
    let identity = |rest: &str| -> Result<(u64, u64), String> {
        let (ino, dev) = rest.split_once('-').ok_or("no inode-device in the key")?;
        Ok((ino.parse().map_err(|_| "bad inode")?, dev.parse().map_err(|_| "bad device")?))
    };
    if let Some(rest) = key.strip_prefix("filestream::") {
        let (input, id) = rest.rsplit_once("::native::").ok_or("not a native (inode and device) file identity")?;
        let (ino, dev) = identity(id)?;
        let offset = v.get("cursor").and_then(|c| c.get("offset")).and_then(Value::as_u64).unwrap_or(0);
        let source = v.get("meta").and_then(|m| m.get("source")).and_then(Value::as_str).map(PathBuf::from);
        return Ok(State { key: key.into(), kind: Kind::Filestream { input: input.into() }, ino, dev, offset, source });
    }
    if let Some(id) = key.strip_prefix("filebeat::logs::native::") {
        let (ino, dev) = identity(id)?;
        let offset = v.get("offset").and_then(Value::as_u64).ok_or("log state without an offset")?;
        let source = v.get("source").and_then(Value::as_str).map(PathBuf::from);
        return Ok(State { key: key.into(), kind: Kind::Log, ino, dev, offset, source });
    }
    Err("not a filestream or log input state with a native file identity".into())
}

/// The agent's registry entries for Filebeat's states, and the states not taken, with why.
pub fn take_over(states: &[State], inputs: &[InputConfig], now_s: u64) -> (Vec<Entry>, Vec<(String, String)>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for s in states {
        let input = match &s.kind {
            Kind::Filestream { input } => {
                inputs.iter().find(|i| i.input_type == InputType::Filestream && &i.id == input).map(|i| i.id.clone())
            }
            Kind::Log => s.source.as_ref().and_then(|src| {
                inputs.iter().find(|i| i.input_type.is_log_input() && globs_match(&i.paths, src)).map(|i| i.id.clone())
            }),
        };
        let Some(input) = input else {
            let why = match &s.kind {
                Kind::Filestream { input } => format!("no filestream input with id {input:?} in this config"),
                Kind::Log => "no log input of this config matches its path".into(),
            };
            skipped.push((s.key.clone(), why));
            continue;
        };
        let any = Fingerprint::of_content(&[]);
        entries.push(Entry {
            input,
            path: s.source.clone().unwrap_or_default(),
            dev: s.dev,
            ino: s.ino,
            fp_len: any.len,
            fp_hash: any.hash,
            offset: s.offset,
            last_seen: now_s,
        });
    }
    (entries, skipped)
}

fn globs_match(globs: &[String], path: &Path) -> bool {
    let opts = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
    globs.iter().any(|g| glob::Pattern::new(g).is_ok_and(|p| p.matches_path_with(path, opts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    /// The log Filebeat 8.1.3 wrote here for one filestream and one log input (trimmed).
    const LOG: &str = r#"{"op":"set","id":1}
{"k":"filestream::fs-one::native::10027171-65024","v":{"ttl":0,"cursor":null,"meta":{"source":"/tmp/fbr/logs/a.log","identifier_name":"native"}}}
{"op":"set","id":2}
{"k":"filebeat::logs::native::10027172-65024","v":{"id":"native::10027172-65024","source":"/tmp/fbr/logs/b.log","ttl":-1,"type":"log","offset":741,"FileStateOS":{"inode":10027172,"device":65024}}}
{"op":"set","id":3}
{"k":"filestream::fs-one::native::10027171-65024","v":{"cursor":{"offset":992},"meta":{"identifier_name":"native","source":"/tmp/fbr/logs/a.log"},"ttl":1800000000000}}
{"op":"set","id":4}
{"k":"filebeat::logs::native::10027172-65024","v":{"offset":992,"source":"/tmp/fbr/logs/b.log","type":"log","FileStateOS":{"device":65024,"inode":10027172}}}
"#;

    fn store(log: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "meta.json", r#"{"version":"1"}"#);
        write(dir.path(), "log.json", log);
        dir
    }

    #[test]
    fn the_latest_state_of_each_file_is_read_from_the_log() {
        let dir = store(LOG);
        let s = read(dir.path()).unwrap();
        assert!(!s.log_cut && s.unusable.is_empty());
        assert_eq!(s.states.len(), 2);
        let log = s.states.iter().find(|s| s.kind == Kind::Log).unwrap();
        assert_eq!((log.ino, log.dev, log.offset), (10027172, 65024, 992));
        assert_eq!(log.source.as_deref(), Some(Path::new("/tmp/fbr/logs/b.log")));
        let fs = s.states.iter().find(|s| s.kind != Kind::Log).unwrap();
        assert_eq!((fs.kind.clone(), fs.offset), (Kind::Filestream { input: "fs-one".into() }, 992));
    }

    #[test]
    fn a_checkpoint_is_read_and_only_later_operations_applied_up_to_a_gap() {
        let dir = store(&format!(
            "{}{}{}",
            "{\"op\":\"set\",\"id\":3}\n{\"K\":\"filebeat::logs::native::1-2\",\"V\":{\"offset\":5,\"source\":\"/a\"}}\n",
            "{\"op\":\"set\",\"id\":4}\n{\"K\":\"filebeat::logs::native::1-2\",\"V\":{\"offset\":50,\"source\":\"/a\"}}\n",
            "{\"op\":\"set\",\"id\":6}\n{\"K\":\"filebeat::logs::native::1-2\",\"V\":{\"offset\":99,\"source\":\"/a\"}}\n",
        ));
        write(dir.path(), "1.json", r#"[{"_key":"filebeat::logs::native::9-2","offset":1,"source":"/old"}]"#);
        write(
            dir.path(),
            "3.json",
            r#"[{"_key":"filebeat::logs::native::1-2","offset":4,"source":"/a"},{"_key":"filestream::x::fingerprint::abc","cursor":{"offset":3}}]"#,
        );
        let s = read(dir.path()).unwrap();
        // 3.json is the newest checkpoint; op 3 is in it; op 4 applies; op 6 follows a gap.
        assert!(s.log_cut);
        assert_eq!(s.states.iter().map(|s| (s.ino, s.offset)).collect::<Vec<_>>(), [(1, 50)]);
        assert_eq!(s.unusable.len(), 1, "the fingerprint identity is reported, not guessed");
    }

    #[test]
    fn a_torn_last_line_ends_the_log_where_it_is_whole() {
        let cut = &LOG[..LOG.len() - 30];
        let s = read(store(cut).path()).unwrap();
        assert!(s.log_cut);
        let log = s.states.iter().find(|s| s.kind == Kind::Log).unwrap();
        assert_eq!(log.offset, 741);
    }

    #[test]
    fn states_go_to_the_input_they_belong_to_or_are_reported() {
        let inputs: Vec<InputConfig> = crate::config::from_yaml(
            "- {id: fs-one, paths: [/tmp/fbr/logs/a.log]}\n- {id: log-1, type: log, paths: ['/tmp/fbr/logs/*.log']}\n",
        )
        .unwrap();
        let s = read(store(LOG).path()).unwrap();
        let (entries, skipped) = take_over(&s.states, &inputs, 7);
        assert!(skipped.is_empty(), "{skipped:?}");
        let by_input: Vec<(&str, u64, u64)> = entries.iter().map(|e| (e.input.as_str(), e.ino, e.offset)).collect();
        assert!(by_input.contains(&("fs-one", 10027171, 992)) && by_input.contains(&("log-1", 10027172, 992)));
        let (_, skipped) = take_over(&s.states, &inputs[1..], 7);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].1.contains("fs-one"), "{skipped:?}");
    }

    #[test]
    fn an_unknown_store_version_is_refused() {
        let dir = store(LOG);
        write(dir.path(), "meta.json", r#"{"version":"2"}"#);
        assert!(read(dir.path()).unwrap_err().contains("version"));
    }
}
