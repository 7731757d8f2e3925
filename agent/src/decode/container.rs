//! Container runtimes' log lines (Filebeat's `container` parser): Docker's json-file driver
//! (`{"log":"text\n","stream":"stdout","time":"..."}`) and CRI (`<time> <stream> <P|F> <text>`).
//! Each line becomes its text, its stream and its time; a long line the runtime split (a Docker
//! piece without its trailing newline, a CRI `P` piece) is joined with the pieces that follow
//! it on the same stream, up to the piece that ends it.
//!
//! Owns each file's open pieces ([`Pieces`], one per stream). Invariants:
//! - a piece only ever joins pieces of its own stream (Filebeat 8.1.3 joins a piece with whatever
//!   line comes next; a stderr line between two stdout pieces would land inside them);
//! - a joined line starts at its first piece's offset and carries its first piece's time, and no
//!   event emitted while a piece is open lets the registry move past that piece: its end offset is
//!   held back to the open piece's start (a restart reads the piece again, and the events after
//!   it again, with the same ids);
//! - a joined line is at most `max_bytes` long (the rest is cut and the line flagged truncated);
//! - an open piece with nothing after it for the input's timeout is emitted as it is.

use crate::config::{ContainerConfig, ContainerFormat, ContainerStream};
use crate::tail::lines::Line;
use std::time::{Duration, Instant};

/// What the container parser knew of a line: its stream and its time (milliseconds since the
/// epoch, as `@timestamp` has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerMeta {
    pub stream: Stream,
    pub time_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One runtime line, parsed.
#[derive(Debug, PartialEq)]
struct Parsed<'a> {
    meta: ContainerMeta,
    text: std::borrow::Cow<'a, [u8]>,
    /// The runtime split the line: more pieces follow.
    partial: bool,
}

/// An open piece: the start of a line whose other pieces have not come yet.
#[derive(Debug, Default)]
struct Piece {
    buf: Vec<u8>,
    meta: Option<ContainerMeta>,
    offset: u64,
    /// Where its last piece ends.
    end_offset: u64,
    truncated: bool,
    touched: Option<Instant>,
}

/// One file's open pieces, one per stream.
#[derive(Debug, Default)]
pub struct Pieces {
    stdout: Option<Piece>,
    stderr: Option<Piece>,
    /// For the log input: where the lines of a left-out stream since the last event began.
    skipped_from: Option<u64>,
}

/// The parser an input runs (from its `container` settings).
#[derive(Debug, Clone)]
pub struct ContainerParser {
    keep: ContainerStream,
    format: ContainerFormat,
    /// How long an open piece waits for the rest.
    timeout: Duration,
    /// Filebeat's `container` input (its log input) rather than a filestream parser: see
    /// [`ContainerParser::hand_on`].
    log_input: bool,
}

impl ContainerParser {
    pub fn new(cfg: &ContainerConfig, timeout: Duration, log_input: bool) -> ContainerParser {
        ContainerParser { keep: cfg.stream, format: cfg.format, timeout, log_input }
    }

    /// Hands a finished line on. Filebeat's `container` input reads through its log input, which
    /// differs from filestream's parser in two ways the events show: the text loses its newline
    /// (stripped after the parser there, before it in filestream), and an event after lines of a
    /// left-out stream has the offset where those lines began (the harvester's offset had not
    /// moved past them).
    fn hand_on(&self, pieces: &mut Pieces, mut line: Line<'_>, emit: &mut dyn FnMut(Line<'_>)) {
        if self.log_input {
            if let Some(from) = pieces.skipped_from.take() {
                line.offset = line.offset.min(from);
            }
            let text = line.bytes.strip_suffix(b"\n").unwrap_or(line.bytes);
            line.bytes = text.strip_suffix(b"\r").unwrap_or(text);
        }
        emit(line)
    }

    /// Takes one line of the file. `emit` gets the lines this completes (the text as the line,
    /// with its meta); `skip` gets the lines that are not events (another stream's), so their
    /// bytes still count as read. A line that is not in the runtime's format is emitted as it is
    /// (without meta) and returned as `Err` with the reason, for the caller to count and log.
    pub fn push(
        &self,
        pieces: &mut Pieces,
        max_bytes: usize,
        line: &Line<'_>,
        now: Instant,
        emit: &mut dyn FnMut(Line<'_>),
        skip: &mut dyn FnMut(u64),
    ) -> Result<(), String> {
        let parsed = match parse(self.format, line.bytes) {
            Ok(p) => p,
            Err(why) => {
                let end_offset = pieces.held_back(line.end_offset);
                self.hand_on(pieces, Line { end_offset, ..*line }, emit);
                return Err(why);
            }
        };
        let stream = parsed.meta.stream;
        let wanted = match self.keep {
            ContainerStream::All => true,
            ContainerStream::Stdout => stream == Stream::Stdout,
            ContainerStream::Stderr => stream == Stream::Stderr,
        };
        if !wanted {
            // Another stream's pieces are not kept: nothing of them is shipped.
            pieces.skipped_from.get_or_insert(line.offset);
            skip(pieces.held_back(line.end_offset));
            return Ok(());
        }
        let slot = pieces.slot(stream);
        if parsed.partial || slot.is_some() {
            let piece =
                slot.get_or_insert_with(|| Piece { offset: line.offset, meta: Some(parsed.meta), ..Piece::default() });
            let room = max_bytes.saturating_sub(piece.buf.len());
            piece.truncated |= line.truncated || parsed.text.len() > room;
            piece.buf.extend_from_slice(&parsed.text[..parsed.text.len().min(room)]);
            piece.touched = Some(now);
            piece.end_offset = line.end_offset;
            if parsed.partial {
                return Ok(());
            }
            let piece = slot.take().expect("just filled");
            self.hand_on_piece(pieces, piece, emit);
            return Ok(());
        }
        let end_offset = pieces.held_back(line.end_offset);
        let text = &parsed.text[..parsed.text.len().min(max_bytes)];
        let truncated = line.truncated || parsed.text.len() > max_bytes;
        let one =
            Line { bytes: text, offset: line.offset, end_offset, truncated, lines: 1, container: Some(parsed.meta) };
        self.hand_on(pieces, one, emit);
        Ok(())
    }

    /// Hands on a piece taken out of `pieces` (complete, or flushed open) as one line, from its
    /// first piece's start to its last piece's end (held back to the other stream's open piece).
    fn hand_on_piece(&self, pieces: &mut Pieces, piece: Piece, emit: &mut dyn FnMut(Line<'_>)) {
        let line = Line {
            bytes: &piece.buf,
            offset: piece.offset,
            end_offset: pieces.held_back(piece.end_offset),
            truncated: piece.truncated,
            lines: 1,
            container: piece.meta,
        };
        self.hand_on(pieces, line, emit);
    }

    /// Emits the open pieces that waited longer than the timeout (or all of them: `force`, the
    /// file is finished), oldest first. Returns whether one was emitted.
    pub fn flush(&self, pieces: &mut Pieces, force: bool, now: Instant, emit: &mut dyn FnMut(Line<'_>)) -> bool {
        let due = |p: &Option<Piece>| {
            p.as_ref().is_some_and(|p| force || p.touched.is_some_and(|t| now.duration_since(t) >= self.timeout))
        };
        let mut emitted = false;
        while due(&pieces.stdout) || due(&pieces.stderr) {
            // The older piece first, so events stay in file order.
            let first_stdout = match (&pieces.stdout, &pieces.stderr) {
                (Some(o), Some(e)) if due(&pieces.stdout) && due(&pieces.stderr) => o.offset < e.offset,
                _ => due(&pieces.stdout),
            };
            let piece = if first_stdout { pieces.stdout.take() } else { pieces.stderr.take() }.expect("due");
            self.hand_on_piece(pieces, piece, emit);
            emitted = true;
        }
        emitted
    }
}

impl Pieces {
    /// Whether a piece waits for the rest of its line.
    pub fn is_open(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }

    fn slot(&mut self, stream: Stream) -> &mut Option<Piece> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// An end offset the registry may record now: `end`, or the start of an open piece before it.
    fn held_back(&self, end: u64) -> u64 {
        [&self.stdout, &self.stderr].into_iter().flatten().map(|p| p.offset).fold(end, u64::min)
    }
}

fn text_of(s: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(s).map_err(|_| "not a CRI line: its time or stream is not text".to_string())
}

/// One line in `format` (`auto`: a line starting with `{` is Docker's, any other CRI).
fn parse(format: ContainerFormat, line: &[u8]) -> Result<Parsed<'_>, String> {
    match format {
        ContainerFormat::Docker => docker(line),
        ContainerFormat::Cri => cri(line),
        ContainerFormat::Auto if line.first() == Some(&b'{') => docker(line),
        ContainerFormat::Auto => cri(line),
    }
}

/// Docker's json-file line. The text ends with a newline unless the runtime split the line.
fn docker(line: &[u8]) -> Result<Parsed<'_>, String> {
    #[derive(serde::Deserialize)]
    struct DockerLine {
        log: String,
        stream: String,
        time: String,
    }
    let d: DockerLine = serde_json::from_slice(line).map_err(|e| format!("not a Docker json-file line: {e}"))?;
    let meta = ContainerMeta { stream: stream(&d.stream)?, time_ms: time_ms(&d.time)? };
    // The newline stays in the text: Filebeat 8.1.3's events keep it.
    let text = d.log.into_bytes();
    let partial = text.last() != Some(&b'\n');
    Ok(Parsed { meta, text: text.into(), partial })
}

/// A CRI line: `<RFC 3339 time> <stream> <P|F> <text>` (runtimes before the tag wrote no `P|F`).
fn cri(line: &[u8]) -> Result<Parsed<'_>, String> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let (Some(time), Some(stream_name), Some(third)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a CRI line: fewer than three fields".into());
    };
    let meta = ContainerMeta { stream: stream(text_of(stream_name)?)?, time_ms: time_ms(text_of(time)?)? };
    let (partial, text) = match (third, parts.next()) {
        (b"P", rest) => (true, rest.unwrap_or_default()),
        (b"F", rest) => (false, rest.unwrap_or_default()),
        // No tag: the third field starts the text.
        (_, _) => (false, &line[time.len() + stream_name.len() + 2..]),
    };
    Ok(Parsed { meta, text: text.into(), partial })
}

fn stream(name: &str) -> Result<Stream, String> {
    match name {
        "stdout" => Ok(Stream::Stdout),
        "stderr" => Ok(Stream::Stderr),
        other => Err(format!("unknown stream {other:?}")),
    }
}

fn time_ms(text: &str) -> Result<i64, String> {
    let t: jiff::Timestamp = text.parse().map_err(|e| format!("time {text:?}: {e}"))?;
    Ok(t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An emitted line: text, offset, end offset, meta, truncated.
    type Emitted = (String, u64, u64, Option<ContainerMeta>, bool);

    fn run(p: &ContainerParser, lines: &[&[u8]], max: usize) -> (Vec<Emitted>, Pieces) {
        let mut pieces = Pieces::default();
        let mut out = Vec::new();
        let mut offset = 0;
        let now = Instant::now();
        for l in lines {
            let line = Line {
                bytes: l,
                offset,
                end_offset: offset + l.len() as u64 + 1,
                truncated: false,
                lines: 1,
                container: None,
            };
            offset = line.end_offset;
            let _ = p.push(
                &mut pieces,
                max,
                &line,
                now,
                &mut |e| {
                    out.push((
                        String::from_utf8_lossy(e.bytes).into_owned(),
                        e.offset,
                        e.end_offset,
                        e.container,
                        e.truncated,
                    ))
                },
                &mut |_| (),
            );
        }
        (out, pieces)
    }

    fn parser(keep: ContainerStream) -> ContainerParser {
        ContainerParser::new(
            &ContainerConfig { stream: keep, format: ContainerFormat::Auto },
            Duration::from_secs(5),
            false,
        )
    }

    #[test]
    fn docker_and_cri_lines_give_their_text_stream_and_time() {
        let p = parser(ContainerStream::All);
        let (out, _) = run(
            &p,
            &[
                br#"{"log":"hello \"you\"\n","stream":"stdout","time":"2017-09-12T22:32:21.212861448Z"}"#,
                b"2017-09-12T22:32:21.5Z stderr F error: x y",
                b"2017-09-12T22:32:22+02:00 stdout old runtime line",
            ],
            1000,
        );
        let texts: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(texts, ["hello \"you\"\n", "error: x y", "old runtime line"]);
        assert_eq!(out[0].3, Some(ContainerMeta { stream: Stream::Stdout, time_ms: 1505255541212 }));
        assert_eq!(out[1].3.unwrap().stream, Stream::Stderr);
        assert_eq!(out[2].3.unwrap().time_ms, 1505255542000 - 2 * 3600 * 1000);
    }

    #[test]
    fn pieces_join_per_stream_and_hold_the_registry_back() {
        let p = parser(ContainerStream::All);
        let (out, pieces) = run(
            &p,
            &[
                b"2020-01-01T00:00:00Z stdout P first ",  // 0..37
                b"2020-01-01T00:00:01Z stderr F between", // 37..75
                b"2020-01-01T00:00:02Z stdout F last",    // 75..110
            ],
            1000,
        );
        assert_eq!(out[0].0, "between");
        assert_eq!(out[0].2, 0, "held back to the open stdout piece");
        assert_eq!((out[1].0.as_str(), out[1].1, out[1].2), ("first last", 0, 110));
        assert_eq!(out[1].3.unwrap().time_ms, 1577836800000, "the first piece's time");
        assert!(!pieces.is_open());
    }

    #[test]
    fn docker_pieces_join_and_obey_max_bytes() {
        let p = parser(ContainerStream::All);
        let (out, _) = run(
            &p,
            &[
                br#"{"log":"0123456789","stream":"stdout","time":"2020-01-01T00:00:00Z"}"#,
                br#"{"log":"abcdefghij\n","stream":"stdout","time":"2020-01-01T00:00:01Z"}"#,
            ],
            15,
        );
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.as_str(), out[0].4), ("0123456789abcde", true), "the newline is cut too");
    }

    #[test]
    fn the_stream_filter_skips_the_other_stream_and_bad_lines_pass_as_they_are() {
        let p = parser(ContainerStream::Stderr);
        let mut pieces = Pieces::default();
        let (mut emitted, mut skipped) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for (i, l) in [&b"2020-01-01T00:00:00Z stdout F out"[..], b"2020-01-01T00:00:00Z stderr F err", b"garbage"]
            .iter()
            .enumerate()
        {
            let line = Line {
                bytes: l,
                offset: i as u64 * 100,
                end_offset: i as u64 * 100 + 50,
                truncated: false,
                lines: 1,
                container: None,
            };
            let r = p.push(
                &mut pieces,
                100,
                &line,
                now,
                &mut |e| emitted.push(String::from_utf8_lossy(e.bytes).into_owned()),
                &mut |end| skipped.push(end),
            );
            assert_eq!(r.is_err(), i == 2);
        }
        assert_eq!(emitted, ["err", "garbage"]);
        assert_eq!(skipped, [50]);
    }

    #[test]
    fn an_open_piece_is_flushed_after_the_timeout() {
        let p = parser(ContainerStream::All);
        let (_, mut pieces) = run(&p, &[b"2020-01-01T00:00:00Z stdout P alone"], 1000);
        let mut out = Vec::new();
        assert!(!p.flush(&mut pieces, false, Instant::now(), &mut |e| out.push(e.offset)));
        assert!(p.flush(&mut pieces, false, Instant::now() + Duration::from_secs(6), &mut |e| out.push(e.offset)));
        assert_eq!(out, [0]);
        assert!(!pieces.is_open());
    }
}
