//! The spool's on-disk format, byte by byte, and the code that writes and reads it.
//!
//! A spool directory holds (all files 0600, the directory 0700):
//! - segment files `<first sequence number, 20 decimal digits>.seg`, append-only;
//! - `cursor`: the sequence number below which every record is acknowledged by Kafka.
//!
//! A segment file is an 8-byte header `AGSPOOL1` followed by records. A record:
//! ```text
//! offset  size  field
//! 0       4     record marker A5 5A C3 3C (lets a reader find the next record after damage)
//! 4       4     body length N, u32 little-endian
//! 8       8     sequence number, u64 little-endian (one more than the previous record's)
//! 16      4     CRC-32 (IEEE, as in gzip) of bytes 4..16 and of the body, u32 little-endian
//! 20      N     body:
//!                 0   2  topic word, u16 LE: the topic length T; bit 15 set = the event's
//!                        id follows the topic, bit 14 set = that id has 24 characters
//!                        (else 16: written before ids carried the event's end), bit 13 set =
//!                        the record's timestamp follows; T is the word without bits 15, 14, 13
//!                 2   T  topic, UTF-8
//!                 ... 24 the event id (URL-safe base64), when the topic word says so (or 16)
//!                 ... 8  the record's timestamp, i64 LE, milliseconds since 1970, when the
//!                        topic word says so
//!                 ... 4  key word W, u32 LE: FFFF FFFF = no key; FFFF FFFE = no key and a
//!                        partition hash; else bit 30 set = a partition hash after the key,
//!                        and the key length K is W without bit 30
//!                 ... K  key
//!                 ... 4  partition hash, u32 LE, when the key word says so
//!                 ... payload: the rest of the body, the record value as it goes to Kafka
//! ```
//! The partition is not stored: it is chosen again when the record is replayed (from the hash
//! when there is one: `partition.hash.hash`). Records written before the hash, the id or the
//! timestamp existed read the same (their key lengths never have bit 30 set, their topic lengths
//! never bit 15, 14 or 13: topics are at most 249 bytes); they are sent with the replay's time.
//!
//! The `cursor` file is 20 bytes: `AGCURSR1`, the sequence number (u64 LE), and the CRC-32 of
//! those 8 bytes (u32 LE). It is replaced atomically (temp file, fsync, rename, directory fsync).
//!
//! Invariant kept by [`Scanner`]: a record is returned only when its marker, length and CRC all
//! check out; anything else is skipped up to the next marker that starts a valid record and
//! reported as damage, so one bad record never hides the records after it.

use super::Entry;
use crate::event::id::{EventId, ID_LEN, OLD_ID_LEN};
use memchr::memmem;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const SEGMENT_HEADER: &[u8; 8] = b"AGSPOOL1";
pub const RECORD_MARKER: [u8; 4] = [0xA5, 0x5A, 0xC3, 0x3C];
pub const RECORD_HEADER_LEN: usize = 20;
pub const CURSOR_MAGIC: &[u8; 8] = b"AGCURSR1";
const NO_KEY: u32 = u32::MAX;
const NO_KEY_WITH_HASH: u32 = u32::MAX - 1;
const HASH_FLAG: u32 = 1 << 30;
const ID_FLAG: u16 = 1 << 15;
const LONG_ID_FLAG: u16 = 1 << 14;
const TIME_FLAG: u16 = 1 << 13;

/// One event as the spool stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub hash: Option<u32>,
    pub id: Option<EventId>,
    /// The record's timestamp (milliseconds since 1970), sent again on replay.
    pub timestamp: Option<i64>,
    pub payload: Vec<u8>,
}

/// Appends one record (header and body) to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, e: &Entry<'_>) {
    let Entry { topic, key, hash, id, timestamp, payload } = *e;
    // Topics are at most 249 bytes in Kafka; a longer one could not be produced anyway (bits 15,
    // 14 and 13 of the topic word mark an id, its length and a timestamp).
    let topic = &topic.as_bytes()[..topic.len().min(TIME_FLAG as usize - 1)];
    // Kafka keys are far below 1 GiB (bit 30 of the key word marks a hash).
    let key = key.map(|k| &k[..k.len().min(HASH_FLAG as usize - 1)]);
    let body_len = 2
        + topic.len()
        + id.map_or(0, |id| id.as_bytes().len())
        + timestamp.map_or(0, |_| 8)
        + 4
        + key.map_or(0, <[u8]>::len)
        + hash.map_or(0, |_| 4)
        + payload.len();
    let start = out.len();
    out.extend_from_slice(&RECORD_MARKER);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    let id_bits = match id.map(|id| id.as_bytes().len()) {
        None => 0,
        Some(ID_LEN) => ID_FLAG | LONG_ID_FLAG,
        Some(_) => ID_FLAG,
    };
    let time_bit = if timestamp.is_some() { TIME_FLAG } else { 0 };
    let topic_word = topic.len() as u16 | id_bits | time_bit;
    out.extend_from_slice(&topic_word.to_le_bytes());
    out.extend_from_slice(topic);
    if let Some(id) = &id {
        out.extend_from_slice(id.as_bytes());
    }
    if let Some(t) = timestamp {
        out.extend_from_slice(&t.to_le_bytes());
    }
    let word = match (key, hash) {
        (Some(k), None) => k.len() as u32,
        (Some(k), Some(_)) => k.len() as u32 | HASH_FLAG,
        (None, None) => NO_KEY,
        (None, Some(_)) => NO_KEY_WITH_HASH,
    };
    out.extend_from_slice(&word.to_le_bytes());
    if let Some(k) = key {
        out.extend_from_slice(k);
    }
    if let Some(h) = hash {
        out.extend_from_slice(&h.to_le_bytes());
    }
    out.extend_from_slice(payload);
    let crc = record_crc(&out[start + 4..start + 16], &out[start + RECORD_HEADER_LEN..]);
    out[start + 16..start + 20].copy_from_slice(&crc.to_le_bytes());
}

fn record_crc(len_and_seq: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_and_seq);
    h.update(body);
    h.finalize()
}

/// What is at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A valid record of `len` bytes in all.
    Record { len: usize },
    /// The slice ends before the record does (`need` bytes are needed in all).
    Short { need: usize },
    /// Not a valid record.
    Bad,
}

/// Checks the record at the start of `buf`; `max_len` is the most bytes a record there can have
/// (the rest of the segment), so a damaged length never makes the reader wait for bytes that
/// will not come.
fn parse(buf: &[u8], max_len: u64) -> Parsed {
    if buf.len() < RECORD_HEADER_LEN {
        return if buf.len() >= 4 && buf[..4] != RECORD_MARKER {
            Parsed::Bad
        } else {
            Parsed::Short { need: RECORD_HEADER_LEN }
        };
    }
    if buf[..4] != RECORD_MARKER {
        return Parsed::Bad;
    }
    let body_len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    let len = RECORD_HEADER_LEN + body_len;
    if body_len < 6 || len as u64 > max_len {
        return Parsed::Bad;
    }
    if buf.len() < len {
        return Parsed::Short { need: len };
    }
    let crc = u32::from_le_bytes(buf[16..20].try_into().expect("4 bytes"));
    if record_crc(&buf[4..16], &buf[RECORD_HEADER_LEN..len]) != crc
        || decode_body(&buf[RECORD_HEADER_LEN..len]).is_none()
    {
        return Parsed::Bad;
    }
    Parsed::Record { len }
}

/// Splits a checked body into a record (sequence number 0: it is in the header); `None` if its
/// inner lengths do not fit.
fn decode_body(body: &[u8]) -> Option<Record> {
    let tword = u16::from_le_bytes(body.get(0..2)?.try_into().ok()?);
    let tlen = (tword & !(ID_FLAG | LONG_ID_FLAG | TIME_FLAG)) as usize;
    let topic = std::str::from_utf8(body.get(2..2 + tlen)?).ok()?.to_string();
    let mut at = 2 + tlen;
    let id = match tword & ID_FLAG != 0 {
        true => {
            let n = if tword & LONG_ID_FLAG != 0 { ID_LEN } else { OLD_ID_LEN };
            let id = EventId::from_bytes(body.get(at..at + n)?)?;
            at += n;
            Some(id)
        }
        false => None,
    };
    let timestamp = match tword & TIME_FLAG != 0 {
        true => {
            let t = i64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?);
            at += 8;
            Some(t)
        }
        false => None,
    };
    let word = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?);
    at += 4;
    let (klen, has_hash) = match word {
        NO_KEY => (None, false),
        NO_KEY_WITH_HASH => (None, true),
        w => (Some((w & !HASH_FLAG) as usize), w & HASH_FLAG != 0),
    };
    let key = match klen {
        Some(n) => {
            let k = body.get(at..at + n)?.to_vec();
            at += n;
            Some(k)
        }
        None => None,
    };
    let hash = match has_hash {
        true => {
            let h = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?);
            at += 4;
            Some(h)
        }
        false => None,
    };
    Some(Record { seq: 0, topic, key, hash, id, timestamp, payload: body[at..].to_vec() })
}

/// What [`Scanner::next_item`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    Record(Record),
    /// Damaged bytes skipped (up to the next valid record or the end of the segment).
    Damaged {
        bytes: u64,
    },
}

/// Reads the records of one segment file in order, through a bounded buffer.
pub struct Scanner {
    file: File,
    /// File position of `buf[start]`.
    pos: u64,
    /// Bytes of the segment that may be read (the writer's length for the segment being written).
    limit: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (compacted away before the next read, not per record).
    start: usize,
}

const READ_CHUNK: usize = 256 * 1024;

impl Scanner {
    /// Starts after the segment header. A file without the header is reported as damaged from 0.
    pub fn new(file: File, limit: u64) -> io::Result<Scanner> {
        let mut s = Scanner { file, pos: 0, limit, buf: Vec::new(), start: 0 };
        s.fill(SEGMENT_HEADER.len())?;
        if s.avail().starts_with(SEGMENT_HEADER) {
            s.consume(SEGMENT_HEADER.len());
        }
        Ok(s)
    }

    /// File position of the next unread byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Lets the scanner read further into a segment that grew.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The next record or damaged stretch; `None` at the limit.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        self.fill(RECORD_HEADER_LEN)?;
        if self.avail().is_empty() {
            return Ok(None);
        }
        match self.parse_here()? {
            Parsed::Record { len } => {
                let b = self.avail();
                let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
                let rec = decode_body(&b[RECORD_HEADER_LEN..len]).expect("checked by parse");
                self.consume(len);
                Ok(Some(Item::Record(Record { seq, ..rec })))
            }
            Parsed::Short { .. } => {
                // The segment ends inside this record: a torn tail.
                let rest = self.avail().len();
                self.consume(rest);
                Ok(Some(Item::Damaged { bytes: rest as u64 }))
            }
            Parsed::Bad => self.resync().map(Some),
        }
    }

    /// Skips from a bad record to the next marker that starts a valid record, or to the end.
    fn resync(&mut self) -> io::Result<Item> {
        self.consume(1);
        let mut skipped = 1u64;
        loop {
            self.fill(RECORD_HEADER_LEN)?;
            if self.avail().is_empty() {
                return Ok(Item::Damaged { bytes: skipped });
            }
            let Some(i) = memmem::find(self.avail(), &RECORD_MARKER) else {
                // Keep the last 3 bytes unless at the end: a marker may straddle the next read.
                let len = self.avail().len();
                let drop = if len < RECORD_HEADER_LEN { len } else { len - (RECORD_MARKER.len() - 1) };
                self.consume(drop);
                skipped += drop as u64;
                continue;
            };
            self.consume(i);
            skipped += i as u64;
            match self.parse_here()? {
                Parsed::Record { .. } => return Ok(Item::Damaged { bytes: skipped }),
                Parsed::Bad => {
                    self.consume(1);
                    skipped += 1;
                }
                Parsed::Short { .. } => {
                    let rest = self.avail().len();
                    self.consume(rest);
                    return Ok(Item::Damaged { bytes: skipped + rest as u64 });
                }
            }
        }
    }

    /// Parses at the buffer start, reading as much as the record there claims to need;
    /// `Short` only when the segment ends first.
    fn parse_here(&mut self) -> io::Result<Parsed> {
        loop {
            match parse(self.avail(), self.limit - self.pos) {
                Parsed::Short { need } => {
                    let had = self.avail().len();
                    self.fill(need)?;
                    if self.avail().len() == had {
                        return Ok(Parsed::Short { need });
                    }
                }
                other => return Ok(other),
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Reads until `want` unconsumed bytes are buffered or the limit is reached.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        while self.avail().len() < want {
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let at = self.pos + self.buf.len() as u64;
            if at >= self.limit {
                return Ok(());
            }
            let n = (want - self.buf.len()).max(READ_CHUNK).min((self.limit - at) as usize);
            let old = self.buf.len();
            self.buf.resize(old + n, 0);
            let got = self.file.read_at(&mut self.buf[old..], at)?;
            self.buf.truncate(old + got);
            if got == 0 {
                // The file is shorter than the limit (cut off by someone else): stop here.
                self.limit = at;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Encodes the cursor file's content.
pub fn encode_cursor(seq: u64) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..8].copy_from_slice(CURSOR_MAGIC);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..].copy_from_slice(&crc32fast::hash(&seq.to_le_bytes()).to_le_bytes());
    out
}

/// Decodes the cursor file's content; `None` if it is damaged.
pub fn decode_cursor(b: &[u8]) -> Option<u64> {
    if b.len() != 20 || &b[..8] != CURSOR_MAGIC {
        return None;
    }
    let seq: [u8; 8] = b[8..16].try_into().ok()?;
    (crc32fast::hash(&seq).to_le_bytes() == b[16..20]).then(|| u64::from_le_bytes(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    type Spec<'a> = (u64, &'a str, Option<&'a [u8]>, Option<u32>, &'a [u8]);

    fn segment(records: &[Spec<'_>]) -> Vec<u8> {
        let mut out = SEGMENT_HEADER.to_vec();
        for &(seq, topic, key, hash, payload) in records {
            encode(&mut out, seq, &Entry { topic, key, hash, id: None, timestamp: None, payload });
        }
        out
    }

    fn scan(bytes: &[u8]) -> Vec<Item> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        let mut s = Scanner::new(f, bytes.len() as u64).unwrap();
        let mut out = Vec::new();
        while let Some(item) = s.next_item().unwrap() {
            out.push(item);
        }
        out
    }

    fn seqs(items: &[Item]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Record(r) => Some(r.seq),
                Item::Damaged { .. } => None,
            })
            .collect()
    }

    #[test]
    fn records_round_trip_with_and_without_key_and_hash() {
        let bytes = segment(&[
            (7, "logs", Some(b"k1"), None, b"hello"),
            (8, "other", None, None, b""),
            (9, "t", Some(b""), None, b"x"),
            (10, "t", Some(b"k2"), Some(0xdead_beef), b"hashed"),
            (11, "t", None, Some(7), b"hashed, no key"),
        ]);
        let rec = |seq, topic: &str, key: Option<&[u8]>, hash, payload: &[u8]| {
            Item::Record(Record {
                seq,
                topic: topic.into(),
                key: key.map(<[u8]>::to_vec),
                hash,
                id: None,
                timestamp: None,
                payload: payload.to_vec(),
            })
        };
        assert_eq!(
            scan(&bytes),
            vec![
                rec(7, "logs", Some(b"k1"), None, b"hello"),
                rec(8, "other", None, None, b""),
                rec(9, "t", Some(b""), None, b"x"),
                rec(10, "t", Some(b"k2"), Some(0xdead_beef), b"hashed"),
                rec(11, "t", None, Some(7), b"hashed, no key"),
            ]
        );
    }

    #[test]
    fn records_carry_the_event_id_and_records_without_one_read_as_before() {
        let id = EventId::from_bytes(b"AbCdEfGhIjKlMn-_AbCdEfGh").unwrap();
        // An older spool's 16-character id reads back as it was written.
        let old = EventId::from_bytes(b"AbCdEfGhIjKlMn-_").unwrap();
        let mut bytes = SEGMENT_HEADER.to_vec();
        let with = |topic, key, hash| Entry { topic, key, hash, id: Some(id), timestamp: None, payload: b"p" };
        encode(&mut bytes, 1, &with("logs", None, None));
        encode(&mut bytes, 2, &Entry { id: Some(old), ..with("t", Some(b"k"), Some(9)) });
        encode(&mut bytes, 3, &Entry { topic: "t", key: None, hash: None, id: None, timestamp: None, payload: b"q" });
        let items = scan(&bytes);
        let ids: Vec<Option<EventId>> = items
            .iter()
            .map(|i| match i {
                Item::Record(r) => r.id,
                Item::Damaged { .. } => panic!("damage: {items:?}"),
            })
            .collect();
        assert_eq!(ids, vec![Some(id), Some(old), None]);
        let Item::Record(second) = &items[1] else { unreachable!() };
        assert_eq!((second.topic.as_str(), second.key.as_deref(), second.hash), ("t", Some(&b"k"[..]), Some(9)));
    }

    #[test]
    fn records_carry_the_timestamp_with_or_without_id_key_and_hash() {
        let id = EventId::from_bytes(b"AbCdEfGhIjKlMn-_AbCdEfGh").unwrap();
        let entries = [
            Entry {
                topic: "logs",
                key: None,
                hash: None,
                id: Some(id),
                timestamp: Some(1_600_000_000_123),
                payload: b"a",
            },
            Entry { topic: "t", key: Some(b"k"), hash: Some(9), id: None, timestamp: Some(0), payload: b"b" },
            Entry { topic: "t", key: None, hash: Some(1), id: Some(id), timestamp: Some(i64::MAX), payload: b"" },
            Entry { topic: "t", key: None, hash: None, id: None, timestamp: None, payload: b"d" },
        ];
        let mut bytes = SEGMENT_HEADER.to_vec();
        for (seq, e) in entries.iter().enumerate() {
            encode(&mut bytes, seq as u64, e);
        }
        let got: Vec<Record> = scan(&bytes)
            .into_iter()
            .map(|i| match i {
                Item::Record(r) => r,
                Item::Damaged { .. } => panic!("damage"),
            })
            .collect();
        let want: Vec<Record> = entries
            .iter()
            .enumerate()
            .map(|(seq, e)| Record {
                seq: seq as u64,
                topic: e.topic.into(),
                key: e.key.map(<[u8]>::to_vec),
                hash: e.hash,
                id: e.id,
                timestamp: e.timestamp,
                payload: e.payload.to_vec(),
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_torn_tail_is_reported_as_damage_after_the_good_records() {
        let mut bytes = segment(&[(1, "t", None, None, b"one"), (2, "t", None, None, b"two")]);
        let full = bytes.len();
        let torn = Entry { topic: "t", key: None, hash: None, id: None, timestamp: None, payload: b"three, cut short" };
        encode(&mut bytes, 3, &torn);
        bytes.truncate(full + 10);
        let items = scan(&bytes);
        assert_eq!(seqs(&items), vec![1, 2]);
        assert_eq!(items.last(), Some(&Item::Damaged { bytes: 10 }));
    }

    #[test]
    fn a_flipped_bit_in_the_middle_skips_one_record_only() {
        let mut bytes =
            segment(&[(1, "t", None, None, b"one"), (2, "t", None, None, b"two"), (3, "t", None, None, b"three")]);
        let second = memmem::find_iter(&bytes, &RECORD_MARKER).nth(1).unwrap();
        bytes[second + RECORD_HEADER_LEN + 4] ^= 0x10; // inside record 2's body
        let items = scan(&bytes);
        assert_eq!(seqs(&items), vec![1, 3]);
        assert_eq!(items.iter().filter(|i| matches!(i, Item::Damaged { .. })).count(), 1);
    }

    #[test]
    fn a_damaged_length_does_not_swallow_the_rest() {
        let mut bytes =
            segment(&[(1, "t", None, None, b"one"), (2, "t", None, None, b"two"), (3, "t", None, None, b"three")]);
        let second = memmem::find_iter(&bytes, &RECORD_MARKER).nth(1).unwrap();
        bytes[second + 7] = 0x7f; // length now far beyond the segment
        assert_eq!(seqs(&scan(&bytes)), vec![1, 3]);
    }

    #[test]
    fn a_marker_inside_a_payload_is_not_mistaken_for_a_record() {
        let mut payload = b"abc".to_vec();
        payload.extend_from_slice(&RECORD_MARKER);
        payload.extend_from_slice(b"def");
        let mut bytes = segment(&[(1, "t", None, None, &payload), (2, "t", None, None, b"two")]);
        bytes[SEGMENT_HEADER.len() + 5] ^= 1; // damage record 1's length
        assert_eq!(seqs(&scan(&bytes)), vec![2]);
    }

    #[test]
    fn cursor_round_trips_and_detects_damage() {
        let mut c = encode_cursor(123_456_789);
        assert_eq!(decode_cursor(&c), Some(123_456_789));
        c[9] ^= 1;
        assert_eq!(decode_cursor(&c), None);
        assert_eq!(decode_cursor(b"short"), None);
    }

    /// One record for the property test: (topic, key, hash, has an id, payload).
    type Spec2 = (String, Option<Vec<u8>>, Option<u32>, bool, Option<i64>, Vec<u8>);

    fn spec() -> impl proptest::strategy::Strategy<Value = Spec2> {
        use proptest::prelude::*;
        (
            "[a-z._-]{1,20}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            proptest::option::of(any::<i64>()),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Bounded fuzzing of the segment reader (issue #14): damage one byte of a segment, or
        /// cut it anywhere, and the scanner still returns every record the damage did not touch,
        /// unchanged and in order, and never one it did touch (CRC), without panicking.
        #[test]
        fn damage_costs_only_the_record_it_touches(
            specs in proptest::collection::vec(spec(), 1..12),
            at in 0usize..4000,
            flip in 1u8..=255,
            cut in proptest::prelude::any::<bool>(),
        ) {
            let id = EventId::from_bytes(b"AAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
            let mut bytes = SEGMENT_HEADER.to_vec();
            let mut spans = Vec::new();
            let mut want = Vec::new();
            for (i, (topic, key, hash, has_id, timestamp, payload)) in specs.iter().enumerate() {
                let from = bytes.len();
                let e = Entry { topic, key: key.as_deref(), hash: *hash, id: has_id.then_some(id), timestamp: *timestamp, payload };
                encode(&mut bytes, i as u64, &e);
                spans.push(from..bytes.len());
                let rec = Record { seq: i as u64, topic: topic.clone(), key: key.clone(), hash: *hash, id: has_id.then_some(id), timestamp: *timestamp, payload: payload.clone() };
                want.push(rec);
            }
            let at = at % bytes.len();
            if cut {
                bytes.truncate(at);
            } else {
                bytes[at] ^= flip;
            }
            let got: Vec<Record> = scan(&bytes).into_iter().filter_map(|i| match i {
                Item::Record(r) => Some(r),
                Item::Damaged { .. } => None,
            }).collect();
            let intact: Vec<&Record> = want.iter().zip(&spans).filter(|(_, s)| if cut { s.end <= at } else { !s.contains(&at) }).map(|(r, _)| r).collect();
            proptest::prop_assert_eq!(got.iter().collect::<Vec<_>>(), intact);
        }
    }
}
