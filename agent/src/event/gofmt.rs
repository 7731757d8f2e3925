//! Numbers written as Go writes them, where a hash or an id depends on the exact text (Filebeat
//! hashes `%v` of a value for `fingerprint` and `FormatFloat(v, 'g', -1, 32)` of a float for
//! `partition.hash.hash`), and text read as Go's `strconv` reads it (the processors' `boolean`
//! conversions).
//!
//! Owns no state. Invariant: the digits are the shortest that read back as the same number at
//! the precision asked for (Go's and Rust's shortest formatting agree on those), and the exponent
//! form is used exactly where Go uses it.

/// A float in Go's shortest `%g` form: decimal while the exponent is in `-4..below`, else
/// `d.ddde±XX`. Go's `%v` uses `below = 21`, `strconv.FormatFloat(f, 'g', -1, _)` uses 6.
/// `single` formats at float32 precision (Go's `bitSize` 32).
pub fn float(f: f64, below: i32, single: bool) -> String {
    let (sci, plain) = if single {
        let x = f as f32;
        (format!("{x:e}"), format!("{x}"))
    } else {
        (format!("{f:e}"), format!("{f}"))
    };
    if !f.is_finite() || f == 0.0 {
        return plain;
    }
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} writes an exponent");
    let exp: i32 = exponent.parse().expect("an integer exponent");
    if (-4..below).contains(&exp) {
        return plain;
    }
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Go's `strconv.ParseBool`: `1 t T true TRUE True` and `0 f F false FALSE False`, nothing else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::float;

    #[test]
    fn floats_are_written_as_go_writes_them() {
        // Go's fmt.Sprintf("%v", f).
        for (f, go) in
            [(1.5, "1.5"), (1e20, "100000000000000000000"), (1e21, "1e+21"), (0.0001, "0.0001"), (1.5e-7, "1.5e-07")]
        {
            assert_eq!(float(f, 21, false), go);
        }
        // Go's strconv.FormatFloat(f, 'g', -1, 32).
        for (f, go) in [(1.5, "1.5"), (0.1, "0.1"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (1e-5, "1e-05")]
        {
            assert_eq!(float(f, 6, true), go);
        }
    }
}
