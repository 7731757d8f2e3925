//! Java `.properties` files, as Kafka Connect reads them (`java.util.Properties.load`).
//!
//! Owns the parsing only. Follows Java's rules: `#` and `!` comments, `key=value`, `key: value` and
//! `key value`, a trailing backslash continues the line, `\t \n \r \f \uXXXX` escapes. Where Java
//! silently accepts a likely mistake, this parser refuses it with the file and line: a line that
//! is a bare word (no separator, no value), a malformed `\u` escape, and a key given twice (Java
//! keeps the last one without a word).

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PropertiesError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Syntax { path: PathBuf, line: usize, message: String },
}

/// One `key=value` with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A parsed file: its properties in file order.
#[derive(Debug, Clone)]
pub struct Properties {
    pub path: PathBuf,
    pub entries: Vec<Property>,
}

impl Properties {
    pub fn load(path: &Path) -> Result<Properties, PropertiesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PropertiesError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses `text`; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Properties, PropertiesError> {
        let err = |line: usize, message: String| PropertiesError::Syntax { path: path.to_path_buf(), line, message };
        let mut entries: Vec<Property> = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let start = i + 1;
            let first = lines[i].trim_start();
            i += 1;
            if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
                continue;
            }
            // Join continuation lines: an odd number of trailing backslashes continues.
            let mut logical = first.to_string();
            while ends_with_odd_backslashes(&logical) && i < lines.len() {
                logical.pop();
                logical.push_str(lines[i].trim_start());
                i += 1;
            }
            if ends_with_odd_backslashes(&logical) {
                logical.pop();
            }
            let (raw_key, raw_value, separated) = split_key_value(&logical);
            let key = unescape(raw_key).map_err(|m| err(start, m))?;
            let value = unescape(raw_value).map_err(|m| err(start, m))?;
            if !separated {
                return Err(err(start, format!("`{key}` has no value: write key=value")));
            }
            if let Some(prev) = entries.iter().find(|p| p.key == key) {
                return Err(err(start, format!("`{key}` is already set on line {}", prev.line)));
            }
            entries.push(Property { key, value, line: start });
        }
        Ok(Properties { path: path.to_path_buf(), entries })
    }

    pub fn get(&self, key: &str) -> Option<&Property> {
        self.entries.iter().find(|p| p.key == key)
    }
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace (Java's rule). The third
/// value says whether any separator was found.
fn split_key_value(line: &str) -> (&str, &str, bool) {
    let bytes = line.as_bytes();
    let mut k = 0;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' => k += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => k += 1,
        }
    }
    let k = k.min(bytes.len());
    if k == bytes.len() {
        return (line, "", false);
    }
    let mut v = k;
    while v < bytes.len() && matches!(bytes[v], b' ' | b'\t' | b'\x0c') {
        v += 1;
    }
    if v < bytes.len() && matches!(bytes[v], b'=' | b':') {
        v += 1;
        while v < bytes.len() && matches!(bytes[v], b' ' | b'\t' | b'\x0c') {
            v += 1;
        }
    }
    (&line[..k], &line[v..], true)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4).then(|| u32::from_str_radix(&hex, 16).ok()).flatten();
                match code.and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => return Err(format!("malformed \\uxxxx escape `\\u{hex}`")),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String, usize)>, String> {
        Properties::parse(text, Path::new("t.properties"))
            .map(|p| p.entries.into_iter().map(|e| (e.key, e.value, e.line)).collect())
            .map_err(|e| e.to_string())
    }

    fn kv(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.into(), v.into(), line)
    }

    #[test]
    fn java_separators_comments_and_continuations() {
        let text = "# comment\n! also\n\nname=local-file-source\nfile : /tmp/a b.txt\ntopic connect-test\n  tasks.max=\\\n    1\nempty=\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                kv("name", "local-file-source", 4),
                kv("file", "/tmp/a b.txt", 5),
                kv("topic", "connect-test", 6),
                kv("tasks.max", "1", 7),
                kv("empty", "", 9),
            ]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(parse("a\\=b=x\\ty\\u00e9\\\\\n").unwrap(), vec![kv("a=b", "x\ty\u{e9}\\", 1)]);
        // An even number of trailing backslashes is an escaped backslash, not a continuation.
        assert_eq!(parse("p=c:\\\\\nq=1\n").unwrap(), vec![kv("p", "c:\\", 1), kv("q", "1", 2)]);
    }

    #[test]
    fn mistakes_java_would_accept_are_errors_with_the_line() {
        assert_eq!(
            parse("a=1\nbootstrap.servers\n").unwrap_err(),
            "t.properties:2: `bootstrap.servers` has no value: write key=value"
        );
        assert_eq!(parse("a=1\n\na=2\n").unwrap_err(), "t.properties:3: `a` is already set on line 1");
        assert_eq!(parse("x=\\u12G4\n").unwrap_err(), "t.properties:1: malformed \\uxxxx escape `\\u12G4`");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Bounded fuzzing of the `.properties` parser (issue #14): any text parses or is refused
        /// with a line number inside the text, never a panic.
        #[test]
        fn any_text_parses_or_names_a_line(text in "(\\PC|[\\\\=: \t\n#!]){0,200}") {
            match Properties::parse(&text, Path::new("f.properties")) {
                Ok(_) => {}
                Err(PropertiesError::Syntax { line, .. }) => proptest::prop_assert!(line >= 1 && line <= text.lines().count().max(1)),
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
        }

        /// A key and value written as `key=value` (backslashes, `=` and `:` in the value escaped)
        /// read back as themselves.
        #[test]
        fn written_pairs_read_back(pairs in proptest::collection::btree_map("[a-z][a-z0-9.]{0,10}", "[ -~]{0,20}", 0..8)) {
            let mut text = String::new();
            for (k, v) in &pairs {
                let v = v.replace('\\', "\\\\");
                let v = v.strip_prefix(' ').map_or(v.clone(), |rest| format!("\\ {rest}"));
                text.push_str(&format!("{k}={v}\n"));
            }
            let p = Properties::parse(&text, Path::new("f.properties")).unwrap();
            for (k, v) in &pairs {
                proptest::prop_assert_eq!(p.get(k).map(|p| p.value.as_str()), Some(v.as_str()), "{}", text);
            }
        }
    }
}
