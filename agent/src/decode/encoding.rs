//! Character encodings: one line of a file's bytes to UTF-8 text.
//!
//! Owns the mapping from `encoding:` labels to decoders: Filebeat's names and the WHATWG labels
//! it also takes, decoded as Filebeat 8.1.3 (Go's x/text) decodes them. So `latin1` is
//! windows-1252, as WHATWG and Filebeat read it, and only Filebeat's own `iso8859-1` is the exact
//! ISO-8859-1; a byte a single-byte code page leaves undefined (which WHATWG maps to a C1
//! control) becomes U+FFFD, as in Go; the IBM PC code pages come from `oem_cp`. Invariants:
//! decoding never fails and never
//! drops a line (invalid bytes become U+FFFD and are reported so the caller counts them); `plain`
//! returns the bytes untouched, borrowed; a byte-order mark is removed only at offset 0.

use encoding_rs::Encoding;

use std::borrow::Cow;

/// The `encoding:` setting: its label as written and the encoding it names, resolved while the
/// config is read (an unknown label is an error at its key and line).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodingSetting {
    label: String,
    encoding: TextEncoding,
}

impl Default for EncodingSetting {
    fn default() -> Self {
        EncodingSetting { label: "plain".into(), encoding: TextEncoding::Plain }
    }
}

impl EncodingSetting {
    pub fn as_str(&self) -> &str {
        &self.label
    }

    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }
}

impl<'de> serde::Deserialize<'de> for EncodingSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = <String as serde::Deserialize>::deserialize(d)?;
        match TextEncoding::from_label(&label) {
            Some(encoding) => Ok(EncodingSetting { label, encoding }),
            None => Err(serde::de::Error::custom(format!(
                "unknown encoding {label:?}; use one of Filebeat's names (plain, utf-8, utf-16le, latin1, windows1252, cp437, koi8r...) or a WHATWG label such as shift_jis; EBCDIC and utf-16-bom are not read"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// No decoding: bytes are shipped as they are (invalid UTF-8 is replaced only in JSON events).
    Plain,
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    Utf16Le,
    Utf16Be,
    /// Any other ASCII-compatible encoding encoding_rs knows (`windows-1252`, `shift_jis`, `gbk`).
    Other(&'static Encoding),
    /// An IBM PC code page Filebeat reads (`cp437`, `cp850`...): bytes 0x80..=0xFF by table.
    CodePage(&'static [char; 128]),
}

/// Filebeat's names that are not WHATWG labels, with the WHATWG label of the same encoding.
const FILEBEAT_NAMES: &[(&str, &str)] = &[
    ("nop", "plain"),
    ("windows1250", "windows-1250"),
    ("windows1251", "windows-1251"),
    ("windows1252", "windows-1252"),
    ("windows1253", "windows-1253"),
    ("windows1254", "windows-1254"),
    ("windows1255", "windows-1255"),
    ("windows1256", "windows-1256"),
    ("windows1257", "windows-1257"),
    ("windows1258", "windows-1258"),
    ("windows874", "windows-874"),
    ("koi8r", "koi8-r"),
    ("koi8u", "koi8-u"),
    ("macintosh-cyrillic", "x-mac-cyrillic"),
    ("iso8859-6e", "iso-8859-6-e"),
    ("iso8859-6i", "iso-8859-6-i"),
    ("iso8859-8e", "iso-8859-8-e"),
    ("iso8859-8i", "iso-8859-8-i"),
];

/// Filebeat's IBM code pages (`cp866` is a WHATWG label, read by encoding_rs).
fn code_page(label: &str) -> Option<&'static [char; 128]> {
    use oem_cp::code_table as t;
    Some(match label {
        "cp437" => &t::DECODING_TABLE_CP437,
        "cp850" => &t::DECODING_TABLE_CP850,
        "cp852" => &t::DECODING_TABLE_CP852,
        "cp855" => &t::DECODING_TABLE_CP855,
        "cp858" => &t::DECODING_TABLE_CP858,
        "cp860" => &t::DECODING_TABLE_CP860,
        "cp862" => &t::DECODING_TABLE_CP862,
        "cp863" => &t::DECODING_TABLE_CP863,
        "cp865" => &t::DECODING_TABLE_CP865,
        _ => return None,
    })
}

/// How a newline is written in the file's bytes, which decides where lines split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newline {
    /// `\n` as one byte (UTF-8, Latin-1 and every ASCII-compatible encoding).
    Byte,
    /// `0A 00` at an even offset.
    Utf16Le,
    /// `00 0A` at an even offset.
    Utf16Be,
}

impl TextEncoding {
    /// Resolves a Filebeat or WHATWG label; `None` for unknown ones and for encodings whose
    /// newline is not a plain LF byte (other than UTF-16).
    pub fn from_label(label: &str) -> Option<TextEncoding> {
        let l = label.trim().to_ascii_lowercase();
        let l = FILEBEAT_NAMES.iter().find(|(fb, _)| *fb == l).map_or(l.as_str(), |(_, whatwg)| whatwg);
        if let Some(table) = code_page(l) {
            return Some(TextEncoding::CodePage(table));
        }
        Some(match l {
            "plain" | "" => TextEncoding::Plain,
            "utf-8" | "utf8" => TextEncoding::Utf8,
            // Filebeat's own name for the exact ISO-8859-1 (`latin1` is a WHATWG label: windows-1252).
            "iso8859-1" => TextEncoding::Latin1,
            "utf-16le" | "utf-16le-bom" | "utf16le" | "utf-16" => TextEncoding::Utf16Le,
            "utf-16be" | "utf-16be-bom" | "utf16be" => TextEncoding::Utf16Be,
            _ => {
                let enc = Encoding::for_label(l.as_bytes())?;
                if !enc.is_ascii_compatible() && enc != encoding_rs::ISO_2022_JP {
                    return None;
                }
                TextEncoding::Other(enc)
            }
        })
    }

    pub fn newline(&self) -> Newline {
        match self {
            TextEncoding::Utf16Le => Newline::Utf16Le,
            TextEncoding::Utf16Be => Newline::Utf16Be,
            _ => Newline::Byte,
        }
    }

    /// Decodes one line (terminator already removed). Returns the UTF-8 bytes and whether invalid
    /// input was replaced. `at_start`: the line begins at offset 0, where a BOM may sit.
    pub fn decode<'a>(&self, line: &'a [u8], at_start: bool) -> (Cow<'a, [u8]>, bool) {
        let text: (Cow<'a, str>, bool) = match self {
            TextEncoding::Plain => return (Cow::Borrowed(line), false),
            TextEncoding::Utf8 => {
                let line = if at_start { line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line) } else { line };
                let s = String::from_utf8_lossy(line);
                let bad = matches!(s, Cow::Owned(_));
                (s, bad)
            }
            TextEncoding::Latin1 => (encoding_rs::mem::decode_latin1(line), false),
            TextEncoding::Utf16Le => utf16(encoding_rs::UTF_16LE, line, at_start.then_some(b"\xFF\xFE")),
            TextEncoding::Utf16Be => utf16(encoding_rs::UTF_16BE, line, at_start.then_some(b"\xFE\xFF")),
            TextEncoding::Other(enc) => {
                let (s, bad) = enc.decode_without_bom_handling(line);
                // What Go leaves undefined and WHATWG maps: the C1 controls of single-byte code
                // pages, and Shift_JIS's user-defined area (private use). U+FFFD, as Filebeat writes.
                let undefined = |c: char| {
                    (enc.is_single_byte() && ('\u{80}'..='\u{9f}').contains(&c))
                        || (*enc == encoding_rs::SHIFT_JIS && ('\u{e000}'..='\u{e757}').contains(&c))
                };
                if s.chars().any(undefined) {
                    let s: String = s.chars().map(|c| if undefined(c) { '\u{fffd}' } else { c }).collect();
                    (Cow::Owned(s), true)
                } else {
                    (s, bad)
                }
            }
            TextEncoding::CodePage(table) => {
                let s: String =
                    line.iter().map(|&b| if b < 0x80 { char::from(b) } else { table[usize::from(b - 0x80)] }).collect();
                (Cow::Owned(s), false)
            }
        };
        match text {
            (Cow::Borrowed(s), bad) => (Cow::Borrowed(s.as_bytes()), bad),
            (Cow::Owned(s), bad) => (Cow::Owned(s.into_bytes()), bad),
        }
    }
}

fn utf16<'a>(enc: &'static Encoding, line: &'a [u8], bom: Option<&[u8; 2]>) -> (Cow<'a, str>, bool) {
    let line = match bom {
        Some(b) => line.strip_prefix(b).unwrap_or(line),
        None => line,
    };
    enc.decode_without_bom_handling(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(enc: &str, bytes: &[u8], at_start: bool) -> (String, bool) {
        let (b, bad) = TextEncoding::from_label(enc).unwrap().decode(bytes, at_start);
        (String::from_utf8(b.into_owned()).unwrap(), bad)
    }

    #[test]
    fn labels_resolve_and_unknown_or_unsplittable_ones_do_not() {
        assert_eq!(TextEncoding::from_label("plain"), Some(TextEncoding::Plain));
        assert_eq!(TextEncoding::from_label("UTF-16LE"), Some(TextEncoding::Utf16Le));
        assert_eq!(TextEncoding::from_label("iso8859-1"), Some(TextEncoding::Latin1));
        assert_eq!(TextEncoding::from_label("windows-1252"), Some(TextEncoding::Other(encoding_rs::WINDOWS_1252)));
        assert_eq!(TextEncoding::from_label("gbk"), Some(TextEncoding::Other(encoding_rs::GBK)));
        assert_eq!(TextEncoding::from_label("klingon"), None);
        assert_eq!(TextEncoding::from_label("replacement"), None);
    }

    /// What Filebeat 8.1.3 made of these bytes under its own encoding names (its file output).
    #[test]
    fn filebeats_names_decode_as_filebeat_decodes() {
        for (name, bytes, want) in [
            ("windows1252", &b"caf\xe9 \x80"[..], "café €"),
            ("shift-jis", b"\x82\xa0\x82\xa2", "あい"),
            ("iso8859-2", b"\xb1\xb2", "ą˛"),
            ("cp437", b"\x82\x9c", "é£"),
            ("koi8r", b"\xc1\xc2", "аб"),
            ("macintosh", b"\x8a\x9a", "äö"),
            ("nop", b"x", "x"),
        ] {
            assert_eq!(text(name, bytes, false), (want.to_string(), false), "{name}");
        }
        assert_eq!(TextEncoding::from_label("ebcdic-037"), None, "EBCDIC has no LF byte to split on");
    }

    /// As Filebeat 8.1.3 decodes bytes 0x80 and 0x81 (its file output): `latin1` and `iso-8859-1`
    /// are WHATWG labels of windows-1252, whose 0x81 is undefined; only `iso8859-1` keeps the C1
    /// controls of the exact ISO-8859-1; ISO-8859-2 leaves 0x80..0x9F undefined.
    #[test]
    fn latin1_is_windows_1252_and_iso8859_1_is_exact_as_in_filebeat() {
        for name in ["latin1", "iso-8859-1", "windows-1252", "windows1252"] {
            assert_eq!(text(name, b"caf\xe9 \x80\x81", false), ("café €\u{fffd}".into(), true), "{name}");
        }
        assert_eq!(text("iso8859-1", b"caf\xe9 \x80\x81", false), ("café \u{80}\u{81}".into(), false));
        assert_eq!(text("iso8859-2", b"\x80\xb1", false), ("\u{fffd}ą".into(), true));
        // Shift_JIS's user-defined area, then 涇.
        assert_eq!(text("shift_jis", b"\xf0\xf1\xfa\xfb", false), ("\u{fffd}涇".into(), true));
    }

    #[test]
    fn utf16_both_orders_with_bom_only_at_the_start() {
        assert_eq!(text("utf-16le", b"\xFF\xFEh\0i\0", true), ("hi".into(), false));
        assert_eq!(text("utf-16be", b"\xFE\xFF\0h\0i", true), ("hi".into(), false));
        // Elsewhere U+FEFF is content.
        assert_eq!(text("utf-16le", b"\xFF\xFEh\0", false), ("\u{feff}h".into(), false));
    }

    #[test]
    fn invalid_bytes_are_replaced_and_reported() {
        assert_eq!(text("utf-8", b"a\xffb", false), ("a\u{fffd}b".into(), true));
        // A lone surrogate in UTF-16.
        assert_eq!(text("utf-16le", b"\x00\xd8a\0", false), ("\u{fffd}a".into(), true));
        let (b, bad) = TextEncoding::Plain.decode(b"a\xffb", false);
        assert_eq!((&*b, bad), (&b"a\xffb"[..], false));
    }
}
