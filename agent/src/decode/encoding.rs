//! Character encodings: one line of a file's bytes to UTF-8 text.
//!
//! Owns the mapping from `encoding:` labels to decoders (encoding_rs, plus an exact Latin-1,
//! since the WHATWG label `latin1` means windows-1252). Invariants: decoding never fails and never
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
                "unknown encoding {label:?}; use plain, utf-8, utf-16le, utf-16be, latin1 or a WHATWG label such as windows-1252"
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
        Some(match l.as_str() {
            "plain" | "" => TextEncoding::Plain,
            "utf-8" | "utf8" => TextEncoding::Utf8,
            "latin1" | "latin-1" | "iso8859-1" | "iso-8859-1" | "iso_8859-1" | "l1" => TextEncoding::Latin1,
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
                (s, bad)
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

    #[test]
    fn latin1_is_exact_not_windows_1252() {
        // 0x80 is a C1 control in ISO-8859-1 (U+0080), the euro sign in windows-1252.
        assert_eq!(text("latin1", b"caf\xe9 \x80", false), ("café \u{80}".into(), false));
        assert_eq!(text("windows-1252", b"\x80", false), ("€".into(), false));
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
