//! Identity processors: `fingerprint` (a hash of chosen fields, the same for the same values)
//! and `add_id` (a new unique id per event).
//!
//! Owns the hashing text of Filebeat 8.1.3's `fingerprint` and the id generator's clock and
//! sequence. Invariants: a fingerprint is computed over `|name|value` of the fields sorted by
//! name, then `|`, with values written as Go's `%v` writes them, so the agent and Filebeat give
//! the same hash for the same event; ids from one process never repeat (a millisecond clock that
//! never goes back, a 24-bit sequence, and a random 48-bit node number per process).

use crate::config::{Fingerprint, FingerprintEncoding, FingerprintMethod};
use crate::event::{lookup_value, put_value};
use serde_json::{Map, Value};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// `fingerprint`: the hash in `target_field`, or why it could not be computed.
pub(super) fn fingerprint(ev: &mut Map<String, Value>, f: &Fingerprint, sorted: &[String]) -> Result<(), String> {
    let mut text = String::new();
    for name in sorted {
        match lookup_value(ev, name) {
            None if f.ignore_missing => continue,
            None => return Err(format!("failed to find field [{name}] in event: key not found")),
            Some(Value::Object(_) | Value::Array(_)) => {
                return Err(format!("cannot compute fingerprint using non-scalar field [{name}]"))
            }
            Some(v) => {
                text.push('|');
                text.push_str(name);
                text.push('|');
                text.push_str(&go_v(v));
            }
        }
    }
    text.push('|');
    let sum = digest(f.method, text.as_bytes());
    let encoded = match f.encoding {
        FingerprintEncoding::Hex => data_encoding::HEXLOWER.encode(&sum),
        FingerprintEncoding::Base32 => data_encoding::BASE32.encode(&sum),
        FingerprintEncoding::Base64 => data_encoding::BASE64.encode(&sum),
    };
    put_value(ev, &f.target_field, Value::String(encoded));
    Ok(())
}

fn digest(method: FingerprintMethod, bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match method {
        FingerprintMethod::Md5 => md5::Md5::digest(bytes).to_vec(),
        FingerprintMethod::Sha1 => sha1::Sha1::digest(bytes).to_vec(),
        FingerprintMethod::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
        FingerprintMethod::Sha384 => sha2::Sha384::digest(bytes).to_vec(),
        FingerprintMethod::Sha512 => sha2::Sha512::digest(bytes).to_vec(),
        FingerprintMethod::Xxhash => xxhash_rust::xxh64::xxh64(bytes, 0).to_be_bytes().to_vec(),
    }
}

/// A scalar as Go's `%v` writes it: text as it is, integers in decimal, floats shortest with an
/// exponent only below 1e-4 or from 1e21.
fn go_v(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => crate::event::gofmt::float(n.as_f64().unwrap_or_default(), 21, false),
        other => other.to_string(),
    }
}

/// The `add_id` generator: Elasticsearch-style time-based ids (20 URL-safe base64 characters).
#[derive(Debug)]
pub(super) struct IdGen {
    node: [u8; 6],
    state: Mutex<(u64, u32)>,
}

impl IdGen {
    pub(super) fn new() -> IdGen {
        let seed: [u8; 9] = crate::event::random_bytes();
        let mut node = [0u8; 6];
        node.copy_from_slice(&seed[..6]);
        let sequence = u32::from_le_bytes([seed[6], seed[7], seed[8], 0]);
        IdGen { node, state: Mutex::new((0, sequence)) }
    }

    pub(super) fn next(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let (ts, seq) = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.1 = (s.1 + 1) & 0xff_ffff;
            // The clock never goes back, and a wrapped sequence moves it on by a millisecond.
            s.0 = if s.1 == 0 { s.0.max(now) + 1 } else { s.0.max(now) };
            *s
        };
        let mut b = [0u8; 15];
        // The fast-changing bytes first, so ids spread over index shards as Elasticsearch's do.
        b[0] = seq as u8;
        b[1] = (seq >> 16) as u8;
        b[2..6].copy_from_slice(&(ts >> 16).to_be_bytes()[4..]);
        b[6..12].copy_from_slice(&self.node);
        b[12] = (ts >> 8) as u8;
        b[13] = (seq >> 8) as u8;
        b[14] = ts as u8;
        data_encoding::BASE64URL_NOPAD.encode(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fp(yaml: &str, ev: Value) -> Result<Map<String, Value>, String> {
        let f: Fingerprint = crate::config::from_yaml(yaml).unwrap();
        let mut sorted = f.fields.clone();
        sorted.sort();
        let mut ev = ev.as_object().unwrap().clone();
        fingerprint(&mut ev, &f, &sorted).map(|()| ev)
    }

    /// Hashes read from Filebeat 8.1.3's output for the document
    /// `{"s":"abc","i":5,"f":1.5,"b":true,"neg":-3}` (ndjson at the root).
    #[test]
    fn hashes_equal_filebeats() {
        let doc = json!({"s": "abc", "i": 5, "f": 1.5, "b": true, "neg": -3, "log": {"offset": 0}});
        let cases = [
            ("fields: [s, i]", "f3052bc4664bc1ce637e67e7e2d3da4a1e78dff80a700ea3536e0eaffacc869f"),
            ("fields: [f]", "523ef1e3d1bd8c0a0b14322b3991321e221858154b9624b0d86f1c0e88c1debf"),
            ("fields: [b]", "bf9df02c70e22e2515fbb2abc066a054fd6645b3085055011bf297de0690281d"),
            ("fields: [neg]", "4b1c342ab658ab2759a4019b081f51a47c0bc6a0582fb0fe860a0f03394602a3"),
            ("fields: [s, log.offset]", "580f4014c9f649553cb5f3126bdeed738f3bebb5448cd10fe744eefeb3c5a6f5"),
            ("{fields: [s, missing], ignore_missing: true}", "1978240c5ef135406983f480140564e3f33249fdbffedd90d25a245f823e0dc4"),
            ("{fields: [s], method: md5, encoding: base64}", "HdW5qVXKOTVSQSl/xfK47w=="),
            ("{fields: [s], method: sha1, encoding: base32}", "SUTMQXERCBRHGVTQW2AFZ4LEPQ6MNYJJ"),
            ("{fields: [s], method: xxhash}", "0f4519df5608ce35"),
            ("{fields: [s], method: sha384}", "c1aece759ea0316c22ae60548a549f3142c8ff5ad771858c71be1d2364bc6a8cdb0e674a3b66f21106d159081a33b9e6"),
            ("{fields: [s], method: sha512}", "08b450aaf3f903e5a27d625f7e4122d22bf00f9a73803dac25fdc0063d67e292dea7b05e65f9de4d5696f74af8424f2cabbdcbbdc7de8bbf6a6488ae2e56d2ab"),
        ];
        for (yaml, want) in cases {
            let ev = fp(yaml, doc.clone()).unwrap();
            assert_eq!(ev["fingerprint"], want, "{yaml}");
        }
        assert!(fp("fields: [s, missing]", doc.clone()).unwrap_err().contains("[missing]"));
        assert!(fp("fields: [log]", doc).unwrap_err().contains("non-scalar"));
    }

    #[test]
    fn ids_are_20_url_safe_characters_and_never_repeat() {
        let g = IdGen::new();
        let ids: std::collections::HashSet<String> = (0..100_000).map(|_| g.next()).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 20 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
    }
}
