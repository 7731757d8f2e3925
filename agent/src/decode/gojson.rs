//! Why a line is not a JSON object, in the words of Go's `encoding/json` decoder, which Filebeat
//! puts in `error.message` (`Error decoding JSON: <this>`).
//!
//! Owns nothing but the wording: it scans the raw line the way Go's `json.Decoder` reads one value
//! (leading whitespace skipped, the first value only, anything after it ignored) and names the
//! first problem as Go's scanner does, or the kind of value that is not an object. Only called for
//! lines that failed to decode, so it is off the hot path.

/// Go's message for a line that does not decode into a `map[string]interface{}`; `None` when it
/// does (an object).
pub fn decode_error(line: &[u8]) -> Option<String> {
    let mut s = Scanner { b: line, i: 0 };
    s.ws();
    let Some(&first) = s.b.get(s.i) else { return Some("EOF".into()) };
    match s.value() {
        Err(Problem::Eof) => Some("unexpected EOF".into()),
        Err(Problem::Invalid(c, context)) => Some(format!("invalid character {} {context}", quote_char(c))),
        Ok(()) => match first {
            b'{' => None,
            b'[' => Some(cannot("array")),
            b'"' => Some(cannot("string")),
            b't' | b'f' => Some(cannot("bool")),
            // `null` decodes into a nil map without an error.
            b'n' => Some("<nil>".into()),
            _ => Some(cannot("number")),
        },
    }
}

fn cannot(kind: &str) -> String {
    format!("json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
}

/// A byte as Go's scanner quotes it: the byte read as a Latin-1 character, Go-escaped.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        0x07 => r"'\a'".into(),
        0x08 => r"'\b'".into(),
        0x0c => r"'\f'".into(),
        b'\n' => r"'\n'".into(),
        b'\r' => r"'\r'".into(),
        b'\t' => r"'\t'".into(),
        0x0b => r"'\v'".into(),
        0x00..=0x1f | 0x7f => format!(r"'\x{c:02x}'"),
        0x80..=0x9f => format!(r"'\u{:04x}'", c),
        0xad => r"'\u00ad'".into(),
        _ => format!("'{}'", char::from(c)),
    }
}

enum Problem {
    Eof,
    Invalid(u8, String),
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

type Scan = Result<(), Problem>;

impl Scanner<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Result<u8, Problem> {
        let c = *self.b.get(self.i).ok_or(Problem::Eof)?;
        self.i += 1;
        Ok(c)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bad<T>(c: u8, context: &str) -> Result<T, Problem> {
        Err(Problem::Invalid(c, context.to_string()))
    }

    fn value(&mut self) -> Scan {
        self.ws();
        let c = self.next()?;
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(c),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Self::bad(c, "looking for beginning of value"),
        }
    }

    fn object(&mut self) -> Scan {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            match self.next()? {
                b'"' => self.string()?,
                c => return Self::bad(c, "looking for beginning of object key string"),
            }
            self.ws();
            match self.next()? {
                b':' => {}
                c => return Self::bad(c, "after object key"),
            }
            self.value()?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                c => return Self::bad(c, "after object key:value pair"),
            }
        }
    }

    fn array(&mut self) -> Scan {
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(()),
                c => return Self::bad(c, "after array element"),
            }
        }
    }

    fn string(&mut self) -> Scan {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let h = self.next()?;
                            if !h.is_ascii_hexdigit() {
                                return Self::bad(h, r"in \u hexadecimal character escape");
                            }
                        }
                    }
                    c => return Self::bad(c, "in string escape code"),
                },
                c if c < 0x20 => return Self::bad(c, "in string literal"),
                _ => {}
            }
        }
    }

    /// A number, which ends at the first byte that cannot continue it (left for the caller).
    fn number(&mut self, first: u8) -> Scan {
        let mut c = first;
        if c == b'-' {
            c = self.next()?;
            if !c.is_ascii_digit() {
                return Self::bad(c, "in numeric literal");
            }
        }
        if c != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let d = self.next()?;
            if !d.is_ascii_digit() {
                return Self::bad(d, "after decimal point in numeric literal");
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let mut d = self.next()?;
            if d == b'+' || d == b'-' {
                d = self.next()?;
            }
            if !d.is_ascii_digit() {
                return Self::bad(d, "in exponent of numeric literal");
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &str) -> Scan {
        for &want in &word.as_bytes()[1..] {
            let c = self.next()?;
            if c != want {
                return Self::bad(c, &format!("in literal {word} (expecting '{}')", char::from(want)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::decode_error;

    /// Each message as Filebeat 8.1.3 wrote it here (`Error decoding JSON: ` cut off).
    #[test]
    fn messages_are_gos() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain line", "invalid character 'p' looking for beginning of value"),
            (b"\xc3\xbc\xc3\xb1", "invalid character '\u{c3}' looking for beginning of value"),
            (b"not json", "invalid character 'o' in literal null (expecting 'u')"),
            (b"[1,2]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
            (b"", "EOF"),
            (b"   ", "EOF"),
            (b"{\"a\":1", "unexpected EOF"),
            (b"{\"a\" 1}", "invalid character '1' after object key"),
            (b"{\"a\":1 \"b\"}", "invalid character '\"' after object key:value pair"),
            (b"{a:1}", "invalid character 'a' looking for beginning of object key string"),
            (b"{\"a\":[1 2]}", "invalid character '2' after array element"),
            (b"{\"a\":\"x\ty\"}", r"invalid character '\t' in string literal"),
            (b"{\"a\":\"\\q\"}", "invalid character 'q' in string escape code"),
            (b"{\"a\":-x}", "invalid character 'x' in numeric literal"),
            (b"{\"a\":1.x}", "invalid character 'x' after decimal point in numeric literal"),
            (b"\"text\"", "json: cannot unmarshal string into Go value of type map[string]interface {}"),
            (b"42", "json: cannot unmarshal number into Go value of type map[string]interface {}"),
            (b"null", "<nil>"),
        ];
        for (line, want) in cases {
            assert_eq!(decode_error(line).as_deref(), Some(*want), "{:?}", String::from_utf8_lossy(line));
        }
        // The first value counts; what follows it is not read, as with Go's Decoder.
        assert_eq!(decode_error(b"{\"a\":1} trailing"), None);
    }
}
