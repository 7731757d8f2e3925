//! The corpus: generated log lines, deterministic from a seed, cached between runs.
//!
//! Every line carries its sequence number (`seq=N`), and line N depends only on (seed, N), so
//! any record read back from Kafka can be checked by regenerating its line. A cached corpus is
//! complete once its `manifest` file exists (written last).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Web access-log lines (combined format).
    Access,
    /// JSON application-log lines.
    Json,
    /// Both, interleaved.
    Mix,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub kind: Kind,
    pub bytes: u64,
    pub files: usize,
    pub seed: u64,
    /// Each line written as Docker's json-file driver writes it (the container case).
    pub container: bool,
}

#[derive(Clone, Debug)]
pub struct Corpus {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub lines: u64,
    pub bytes: u64,
    pub seed: u64,
    pub kind: Kind,
    /// The lines are wrapped in Docker json-file lines (`lines` counts the wrapped lines).
    pub container: bool,
}

/// Line `text` as Docker's json-file driver writes it, with its newline.
pub fn docker_line(text: &str, n: u64) -> String {
    let log = serde_json::to_string(&format!("{text}\n")).expect("a string");
    let (s, ns) = (n / 1000, (n % 1000) * 1_000_000);
    format!(
        "{{\"log\":{log},\"stream\":\"stdout\",\"time\":\"2026-11-26T{:02}:{:02}:{:02}.{ns:09}Z\"}}\n",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

impl Corpus {
    /// The glob matching every file of the corpus.
    pub fn glob(&self) -> String {
        format!("{}/*.log", self.dir.display())
    }
}

/// A fast deterministic generator (splitmix64 seeding an xorshift64*).
struct Rng(u64);

impl Rng {
    fn for_line(seed: u64, n: u64) -> Rng {
        let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATHS: &[&str] = &["/", "/api/v1/items", "/api/v1/orders", "/static/app.js", "/login", "/health", "/search"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const AGENTS: &[&str] =
    &["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/1.1", "python-requests/2.32"];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const WORDS: &[&str] =
    &["request", "handled", "cache", "miss", "user", "order", "created", "timeout", "retry", "db", "query"];

/// Line number `n` of a corpus, without its newline.
pub fn line(kind: Kind, seed: u64, n: u64) -> String {
    let mut r = Rng::for_line(seed, n);
    let kind = match kind {
        Kind::Mix if n % 2 == 0 => Kind::Access,
        Kind::Mix => Kind::Json,
        k => k,
    };
    let mut s = String::with_capacity(200);
    let (mm, ss, ms) = (r.below(60), r.below(60), r.below(1000));
    match kind {
        Kind::Access => {
            let _ = write!(
                s,
                "10.{}.{}.{} - - [22/Nov/2026:10:{mm:02}:{ss:02} +0000] \"{} {}?id={} HTTP/1.1\" {} {} \"-\" \"{}\" seq={n}",
                r.below(256),
                r.below(256),
                r.below(256),
                r.pick(METHODS),
                r.pick(PATHS),
                r.below(100_000),
                [200, 200, 200, 304, 404, 500][r.below(6) as usize],
                r.below(50_000),
                r.pick(AGENTS),
            );
        }
        _ => {
            let _ = write!(
                s,
                "{{\"@t\":\"2026-11-22T10:{mm:02}:{ss:02}.{ms:03}Z\",\"level\":\"{}\",\"logger\":\"svc.{}\",\"msg\":\"{} {} {}\",\"req\":\"{:016x}\",\"ms\":{},\"seq\":{n}}}",
                r.pick(LEVELS),
                r.pick(WORDS),
                r.pick(WORDS),
                r.pick(WORDS),
                r.pick(WORDS),
                r.next(),
                r.below(5000),
            );
        }
    }
    s
}

/// Extracts the sequence number a line carries.
pub fn seq_of(text: &str) -> Option<u64> {
    let i = text.rfind("seq")?;
    let digits: String =
        text[i + 3..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Generates the corpus into `cache/<name>/` unless a complete copy is already there.
pub fn ensure(spec: &Spec, cache: &Path) -> anyhow::Result<Corpus> {
    let docker = if spec.container { "-docker" } else { "" };
    let name = format!("{:?}-{}b-{}f-s{}{docker}", spec.kind, spec.bytes, spec.files, spec.seed).to_lowercase();
    let dir = cache.join(name);
    let files: Vec<PathBuf> = (0..spec.files).map(|i| dir.join(format!("part-{i:04}.log"))).collect();
    let manifest = dir.join("manifest");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let mut it = text.split_whitespace().map(|x| x.parse::<u64>());
        if let (Some(Ok(lines)), Some(Ok(bytes))) = (it.next(), it.next()) {
            return Ok(Corpus {
                dir,
                files,
                lines,
                bytes,
                seed: spec.seed,
                kind: spec.kind,
                container: spec.container,
            });
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut writers = files
        .iter()
        .map(|p| Ok(BufWriter::with_capacity(1 << 20, std::fs::File::create(p)?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while bytes < spec.bytes {
        let mut l = line(spec.kind, spec.seed, n);
        if spec.container {
            l = docker_line(&l, n);
        } else {
            l.push('\n');
        }
        writers[(n % spec.files as u64) as usize].write_all(l.as_bytes())?;
        bytes += l.len() as u64;
        n += 1;
    }
    for mut w in writers {
        w.flush()?;
    }
    std::fs::write(&manifest, format!("{n} {bytes}\n"))?;
    Ok(Corpus { dir, files, lines: n, bytes, seed: spec.seed, kind: spec.kind, container: spec.container })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_deterministic_and_carry_their_number() {
        for kind in [Kind::Access, Kind::Json, Kind::Mix] {
            for n in [0, 1, 77, 1_000_003] {
                let a = line(kind, 42, n);
                assert_eq!(a, line(kind, 42, n));
                assert_eq!(seq_of(&a), Some(n), "{a}");
                assert!(!a.contains('\n'));
            }
        }
        assert_ne!(line(Kind::Access, 1, 5), line(Kind::Access, 2, 5));
        let j: serde_json::Value = serde_json::from_str(&line(Kind::Json, 3, 9)).unwrap();
        assert_eq!(j["seq"], 9);
    }

    #[test]
    fn corpus_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec { kind: Kind::Mix, bytes: 100_000, files: 3, seed: 7, container: false };
        let c = ensure(&spec, dir.path()).unwrap();
        assert!(c.bytes >= 100_000 && c.lines > 0);
        let on_disk: u64 = c.files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
        assert_eq!(on_disk, c.bytes);
        let again = ensure(&spec, dir.path()).unwrap();
        assert_eq!((again.lines, again.bytes), (c.lines, c.bytes));
        let first = std::fs::read_to_string(&c.files[1]).unwrap();
        assert_eq!(first.lines().next().unwrap(), line(Kind::Mix, 7, 1));
        // The container corpus: the same lines inside Docker json-file lines.
        let d = ensure(&Spec { container: true, ..spec }, dir.path()).unwrap();
        let wrapped = std::fs::read_to_string(&d.files[1]).unwrap();
        let v: serde_json::Value = serde_json::from_str(wrapped.lines().next().unwrap()).unwrap();
        assert_eq!(v["log"], format!("{}\n", line(Kind::Mix, 7, 1)));
        assert_eq!((v["stream"].as_str(), d.container), (Some("stdout"), true));
    }
}
