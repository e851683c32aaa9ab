//! Java-compatible helpers: number formatting, `$util` functions, regex translation
//! and UTF-16 index arithmetic for `String` methods.

use crate::value::push_short;
use base64::Engine as _;
use std::fmt::Write as _;

/// `Double.toString(d)` as Java prints it (`1.0`, `1990.19`, `1.0E7`, `1.0E-4`, `NaN`).
pub(crate) fn fmt_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
        return;
    }
    if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if d == 0.0 {
        out.push_str(if d.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        if short_decimal(d, out) {
            return;
        }
        // Plain notation, shortest round-trip digits, at least one fractional digit
        // (zmij prints exactly that in this range).
        let mut b = zmij::Buffer::new();
        let s = b.format_finite(d);
        out.push_str(s);
        if !s.contains('.') {
            out.push_str(".0");
        }
        return;
    }
    // Computerized scientific notation: d.dddE±n, shortest round-trip digits.
    let s = format!("{:e}", abs); // e.g. "1.2345e7", "1e-4"
    let (mant, exp) = match s.split_once('e') {
        Some(p) => p,
        None => (s.as_str(), "0"),
    };
    if d < 0.0 {
        out.push('-');
    }
    out.push_str(mant);
    if !mant.contains('.') {
        out.push_str(".0");
    }
    out.push('E');
    out.push_str(exp);
}

/// Fast path of `fmt_double` for `1e-3 <= |d| < 1e7` with at most 6 decimals (prices,
/// quantities): finds the fewest decimals `k` for which `m / 10^k` (integer `m`) reads
/// back as exactly `d`. In this range consecutive candidates at `k <= 6` are at least
/// 1e-6 apart while `d`'s rounding interval is under 2e-9 wide, so that `m` is the
/// only such candidate and the digits are the shortest round-trip ones (what zmij
/// prints). Returns false (nothing written) when no `k <= 6` works.
#[inline]
fn short_decimal(d: f64, out: &mut String) -> bool {
    const P: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
    let abs = d.abs();
    for (k, &p) in P.iter().enumerate() {
        // Nearest integer (`round()` is a libm call without SSE4.1); m < 1e13.
        let m = (abs * p + 0.5) as i64;
        if m as f64 / p != abs {
            continue;
        }
        // One integer formatting; the point goes `k` digits from the right.
        let mut b = itoa::Buffer::new();
        let digits = b.format(m);
        let n = digits.len();
        if d < 0.0 {
            out.push('-');
        }
        if k == 0 {
            push_short(out, digits);
            out.push_str(".0");
        } else if n > k {
            push_short(out, digits.get(..n - k).unwrap_or(""));
            out.push('.');
            push_short(out, digits.get(n - k..).unwrap_or(""));
        } else {
            out.push_str("0.");
            for _ in n..k {
                out.push('0');
            }
            push_short(out, digits);
        }
        return true;
    }
    false
}

/// Append an integer.
#[inline]
pub(crate) fn fmt_int(i: i64, out: &mut String) {
    let mut b = itoa::Buffer::new();
    push_short(out, b.format(i));
}

/// Bytes `escape_javascript` must rewrite.
static JS_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i >= 0x80;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\'' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'/' as usize] = true;
    t
};

/// Apache Commons Lang 2 `StringEscapeUtils.escapeJavaScript`.
pub(crate) fn escape_javascript(s: &str, out: &mut String) {
    let bytes = s.as_bytes();
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !JS_SPECIAL[b as usize] {
            i += 1;
            continue;
        }
        push_short(out, &s[last..i]);
        if b >= 0x80 {
            let ch = s[i..].chars().next().unwrap_or('\u{FFFD}');
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                push_js_unicode(*u, out);
            }
            i += ch.len_utf8();
        } else {
            match b {
                b'"' => out.push_str("\\\""),
                b'\'' => out.push_str("\\'"),
                b'\\' => out.push_str("\\\\"),
                b'/' => out.push_str("\\/"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                b'\r' => out.push_str("\\r"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                _ => push_js_unicode(u16::from(b), out),
            }
            i += 1;
        }
        last = i;
    }
    push_short(out, &s[last..]);
}

fn push_js_unicode(u: u16, out: &mut String) {
    // Commons Lang: "\\u" + upper-case hex, zero padded to 4 digits.
    let _ = write!(out, "\\u{:04X}", u);
}

/// `java.net.URLEncoder.encode(s, "UTF-8")`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{:02X}", b);
            }
        }
    }
    out
}

/// `java.net.URLDecoder.decode(s, "UTF-8")`; `Err` on a malformed `%` escape.
pub(crate) fn url_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => match (hex(h), hex(l)) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 3;
                        }
                        _ => {
                            return Err(
                                "URLDecoder: Illegal hex characters in escape (%) pattern".into()
                            )
                        }
                    },
                    _ => {
                        return Err("URLDecoder: Incomplete trailing escape (%) pattern".into());
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub(crate) fn base64_encode(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// `Base64.getDecoder().decode(s)` (standard alphabet, padding optional) as UTF-8 text.
pub(crate) fn base64_decode(s: &str) -> Result<String, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(s.as_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("Illegal base64 input: {e}"))
}

/// Number of UTF-16 code units (Java `String.length()`).
pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// Byte offset of UTF-16 index `idx` (`None` if out of range or inside a surrogate pair).
pub(crate) fn utf16_to_byte(s: &str, idx: usize) -> Option<usize> {
    if s.is_ascii() {
        return if idx <= s.len() { Some(idx) } else { None };
    }
    let mut units = 0;
    for (b, ch) in s.char_indices() {
        if units == idx {
            return Some(b);
        }
        units += ch.len_utf16();
        if units > idx {
            return None;
        }
    }
    if units == idx {
        Some(s.len())
    } else {
        None
    }
}

/// UTF-16 index of byte offset `b` (which must be a char boundary).
pub(crate) fn byte_to_utf16(s: &str, b: usize) -> usize {
    let prefix = s.get(..b).unwrap_or(s);
    utf16_len(prefix)
}

/// Java `String.hashCode()`.
pub(crate) fn java_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for ch in s.chars() {
        let mut units = [0u16; 2];
        for u in ch.encode_utf16(&mut units) {
            h = h.wrapping_mul(31).wrapping_add(i32::from(*u));
        }
    }
    h
}

/// Translate a Java regex to the `regex` crate's syntax where they differ.
/// Returns `Err` for constructs the `regex` crate cannot run (back-references,
/// look-around, possessive quantifiers, atomic groups).
pub(crate) fn translate_java_regex(p: &str) -> Result<String, String> {
    let mut out = String::with_capacity(p.len() + 4);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    return Err("Unexpected internal error: trailing backslash".into());
                };
                match n {
                    '1'..='9' if !in_class => {
                        return Err("back-references are not supported".into());
                    }
                    'Q' => {
                        // \Q...\E literal quoting
                        let mut lit = String::new();
                        loop {
                            match chars.next() {
                                None => break,
                                Some('\\') if chars.peek() == Some(&'E') => {
                                    chars.next();
                                    break;
                                }
                                Some(x) => lit.push(x),
                            }
                        }
                        out.push_str(&regex::escape(&lit));
                    }
                    'Z' => out.push_str(r"(?:\n?\z)"),
                    'h' => out.push_str(
                        r"[ \t\xA0\x{1680}\x{180e}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]",
                    ),
                    'R' => out.push_str(r"(?:\r\n|[\n\x0B\x0C\r\x{85}\x{2028}\x{2029}])"),
                    'e' => out.push_str(r"\x1B"),
                    'c' => {
                        let Some(x) = chars.next() else {
                            return Err("illegal control escape".into());
                        };
                        let _ = write!(out, "\\x{{{:X}}}", (x as u32) ^ 64);
                    }
                    '0' => {
                        // octal \0n, \0nn, \0mnn
                        let mut v: u32 = 0;
                        let mut k = 0;
                        while k < 3 {
                            match chars.peek() {
                                Some(d @ '0'..='7') => {
                                    let nv = v * 8 + d.to_digit(8).unwrap_or(0);
                                    if nv > 0o377 {
                                        break;
                                    }
                                    v = nv;
                                    chars.next();
                                    k += 1;
                                }
                                _ => break,
                            }
                        }
                        let _ = write!(out, "\\x{{{:X}}}", v);
                    }
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let _ = write!(out, "\\x{{{hex}}}");
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class => {
                // nested class (union) — regex crate supports nested classes.
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                out.push('(');
                let mut look = chars.clone();
                look.next();
                match look.peek() {
                    Some('=') | Some('!') | Some('>') => {
                        return Err("look-around and atomic groups are not supported".into());
                    }
                    Some('<') => {
                        let mut l2 = look.clone();
                        l2.next();
                        match l2.peek() {
                            Some('=') | Some('!') => {
                                return Err("look-behind is not supported".into());
                            }
                            _ => {
                                // named group (?<name>...) → (?P<name>...)
                                chars.next();
                                out.push_str("?P");
                            }
                        }
                    }
                    _ => {}
                }
            }
            '+' if !in_class && matches!(out.chars().last(), Some('+' | '*' | '?' | '}')) => {
                // possessive quantifier: approximate with greedy.
                let _ = c;
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Translate a Java `Matcher.replaceAll` replacement string (`$1`, `${name}`, `\$`)
/// into the `regex` crate's syntax.
pub(crate) fn translate_java_replacement(r: &str, group_count: usize) -> Result<String, String> {
    let mut out = String::with_capacity(r.len() + 4);
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(x) => out.push(x),
                None => return Err("character to be escaped is missing".into()),
            },
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(x) => name.push(x),
                            None => {
                                return Err("named capturing group is missing trailing '}'".into())
                            }
                        }
                    }
                    let _ = write!(out, "${{{name}}}");
                }
                Some(d) if d.is_ascii_digit() => {
                    // Java: first digit always; further digits while the group exists.
                    let mut n = d.to_digit(10).unwrap_or(0) as usize;
                    chars.next();
                    while let Some(d2) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let nn = n * 10 + d2 as usize;
                        if nn > group_count {
                            break;
                        }
                        n = nn;
                        chars.next();
                    }
                    if n > group_count {
                        return Err(format!("No group {n}"));
                    }
                    let _ = write!(out, "${{{n}}}");
                }
                _ => return Err("Illegal group reference".into()),
            },
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `escape_javascript` equals a char-by-char Commons Lang 2 model.
    #[test]
    fn escape_javascript_matches_char_model() {
        fn model(s: &str) -> String {
            let mut out = String::new();
            for ch in s.chars() {
                match ch {
                    '"' => out.push_str("\\\""),
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    '/' => out.push_str("\\/"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 || (c as u32) >= 0x80 => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{:04X}", u));
                        }
                    }
                    c => out.push(c),
                }
            }
            out
        }
        let alphabet: Vec<char> = "ab/\\\"'\n\t\r\u{8}\u{c}\u{1}\u{1f} \u{7f}\u{80}é€😀"
            .chars()
            .collect();
        let mut st = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..40 {
            for _ in 0..400 {
                let s: String = (0..len)
                    .map(|_| {
                        st ^= st << 13;
                        st ^= st >> 7;
                        st ^= st << 17;
                        alphabet[(st % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let mut out = String::from(">");
                escape_javascript(&s, &mut out);
                assert_eq!(out, format!(">{}", model(&s)), "{s:?}");
            }
        }
    }

    /// The `short_decimal` fast path prints exactly what the zmij path prints.
    #[test]
    fn short_decimal_matches_shortest_digits() {
        let zmij_plain = |x: f64| {
            let mut b = zmij::Buffer::new();
            let s = b.format_finite(x).to_string();
            if s.contains('.') {
                s
            } else {
                s + ".0"
            }
        };
        let check = |x: f64| {
            if !(1e-3..1e7).contains(&x.abs()) {
                return;
            }
            let mut s = String::new();
            if short_decimal(x, &mut s) {
                assert_eq!(s, zmij_plain(x), "{x:e}");
            }
        };
        // Decimals with up to 7 fractional digits, both signs, near powers of ten.
        for m in (0..1_000_000u64).step_by(11) {
            for k in 0..8 {
                let x = m as f64 / 10f64.powi(k);
                check(x);
                check(-x);
            }
        }
        for e in -3..7 {
            let p = 10f64.powi(e);
            for x in [p, p * (1.0 + f64::EPSILON), p * (1.0 - f64::EPSILON / 2.0)] {
                check(x);
                check(-x);
            }
        }
        // Pseudo-random doubles in range (mostly not short: must be refused or equal).
        let mut st = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300_000 {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            let x = (st >> 11) as f64 / (1u64 << 53) as f64 * 1e7;
            check(x);
            check((x * 1e6).round() / 1e6);
            check((x * 100.0).round() / 100.0);
        }
    }

    fn d(x: f64) -> String {
        let mut s = String::new();
        fmt_double(x, &mut s);
        s
    }

    #[test]
    fn doubles_like_java() {
        assert_eq!(d(1.0), "1.0");
        assert_eq!(d(6.0), "6.0");
        assert_eq!(d(1990.19), "1990.19");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(1e7), "1.0E7");
        assert_eq!(d(12345678.9), "1.23456789E7");
        assert_eq!(d(-2.5), "-2.5");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(d(f64::NAN), "NaN");
    }

    #[test]
    fn escape_js_commons_lang() {
        let mut s = String::new();
        escape_javascript("a\"b'c\\d/e\nf\u{1}g\u{e9}h\u{1F600}", &mut s);
        assert_eq!(s, "a\\\"b\\'c\\\\d\\/e\\nf\\u0001g\\u00E9h\\uD83D\\uDE00");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a b{\":}~*é"), "a+b%7B%22%3A%7D%7E*%C3%A9");
        assert_eq!(url_decode("a+b%7B%22").unwrap(), "a b{\"");
        assert!(url_decode("%zz").is_err());
        assert!(url_decode("%a").is_err());
    }

    #[test]
    fn base64() {
        assert_eq!(
            base64_encode("{\"kinesis\": \"snapshot\"}"),
            "eyJraW5lc2lzIjogInNuYXBzaG90In0="
        );
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), "hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), "hello");
        assert!(base64_decode("!!").is_err());
    }

    #[test]
    fn utf16() {
        assert_eq!(utf16_len("a\u{1F600}b"), 4);
        assert_eq!(utf16_to_byte("a\u{1F600}b", 3), Some(5));
        assert_eq!(utf16_to_byte("a\u{1F600}b", 2), None);
        assert_eq!(java_hash("hello"), 99162322);
    }

    #[test]
    fn regex_translation() {
        assert_eq!(translate_java_regex(r"\\'").unwrap(), r"\\'");
        assert_eq!(translate_java_regex(r"(?<n>a)").unwrap(), r"(?P<n>a)");
        assert!(translate_java_regex(r"(a)\1").is_err());
        assert_eq!(translate_java_replacement(r"$1-\$", 1).unwrap(), "${1}-$$");
        assert_eq!(translate_java_replacement(r"$12", 1).unwrap(), "${1}2");
    }
}
