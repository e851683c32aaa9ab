//! A fast, read-only JSON document for request/response bodies.
//!
//! The body is parsed once per render into a flat "tape": every container's children
//! are stored contiguously, strings without escapes are borrowed from the body, and
//! large objects get a sorted key index. Much cheaper than building a
//! `serde_json::Value` (no per-object hash maps, few allocations).

use crate::value::push_short;
use std::cmp::Ordering;

const MAX_DEPTH: usize = 128;
/// Objects with more members than this get a sorted key index.
const INDEX_THRESHOLD: u32 = 12;

/// A string in the document: a byte range of the source text, or (high bit of
/// `len` set) of `Doc::unesc` for strings that contained escapes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SRef {
    off: u32,
    len: u32,
}

const OWNED: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(SRef),
    /// Children are `nodes[first..first + len]`.
    Arr {
        first: u32,
        len: u32,
    },
    /// Members are `nodes[first..first + len]` with keys `keys[first..first + len]`;
    /// `index` (if not `u32::MAX`) points into `Doc::sorted` at `len` member offsets
    /// sorted by key.
    Obj {
        first: u32,
        len: u32,
        index: u32,
    },
}

/// One slot of the tape: a value and, for object members, its key.
#[derive(Clone, Copy, Debug)]
struct Ent {
    node: Node,
    key: SRef,
}

#[derive(Debug)]
pub(crate) struct Doc<'a> {
    src: &'a str,
    ents: Vec<Ent>,
    unesc: String,
    sorted: Vec<u32>,
    root: u32,
}

/// A node of a document.
#[derive(Clone, Copy)]
pub(crate) struct DRef<'r> {
    pub doc: &'r Doc<'r>,
    pub idx: u32,
}

impl std::fmt::Debug for DRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DRef({})", self.idx)
    }
}

const NO_KEY: SRef = SRef { off: 0, len: 0 };

impl<'a> Doc<'a> {
    /// Parse `text`; `None` if it is not valid JSON (or nested deeper than 128), or
    /// larger than 2 GiB.
    pub(crate) fn parse(text: &'a str) -> Option<Doc<'a>> {
        if text.len() >= OWNED as usize {
            return None;
        }
        let mut doc = Doc {
            src: text,
            ents: Vec::new(),
            unesc: String::new(),
            sorted: Vec::new(),
            root: 0,
        };
        parse_into(&mut doc)?;
        if doc.unesc.len() >= OWNED as usize {
            return None;
        }
        Some(doc)
    }

    /// An empty object (`{}`), the document of an empty body.
    pub(crate) fn empty_object() -> Doc<'a> {
        Doc {
            src: "",
            ents: vec![Ent {
                node: Node::Obj {
                    first: 0,
                    len: 0,
                    index: u32::MAX,
                },
                key: NO_KEY,
            }],
            unesc: String::new(),
            sorted: Vec::new(),
            root: 0,
        }
    }

    pub(crate) fn root(&'a self) -> DRef<'a> {
        DRef {
            doc: self,
            idx: self.root,
        }
    }

    #[inline]
    fn sref(&self, r: SRef) -> &str {
        let (base, len) = if r.len & OWNED != 0 {
            (self.unesc.as_str(), r.len & !OWNED)
        } else {
            (self.src, r.len)
        };
        base.get(r.off as usize..(r.off + len) as usize)
            .unwrap_or("")
    }

    #[inline]
    fn key(&self, i: usize) -> &str {
        match self.ents.get(i) {
            Some(e) => self.sref(e.key),
            None => "",
        }
    }
}

impl<'r> DRef<'r> {
    #[inline]
    pub(crate) fn node(self) -> Node {
        match self.doc.ents.get(self.idx as usize) {
            Some(e) => e.node,
            None => Node::Null,
        }
    }

    #[inline]
    fn at(self, i: u32) -> DRef<'r> {
        DRef {
            doc: self.doc,
            idx: i,
        }
    }

    #[inline]
    pub(crate) fn str(self) -> Option<&'r str> {
        match self.node() {
            Node::Str(r) => Some(self.doc.sref(r)),
            _ => None,
        }
    }

    pub(crate) fn is_array(self) -> bool {
        matches!(self.node(), Node::Arr { .. })
    }

    pub(crate) fn is_object(self) -> bool {
        matches!(self.node(), Node::Obj { .. })
    }

    /// Number of children of an array or object (0 otherwise).
    #[inline]
    pub(crate) fn len(self) -> usize {
        match self.node() {
            Node::Arr { len, .. } | Node::Obj { len, .. } => len as usize,
            _ => 0,
        }
    }

    /// The i-th element of an array / member value of an object.
    #[inline]
    pub(crate) fn child(self, i: usize) -> Option<DRef<'r>> {
        match self.node() {
            Node::Arr { first, len } | Node::Obj { first, len, .. } if i < len as usize => {
                Some(self.at(first + i as u32))
            }
            _ => None,
        }
    }

    /// The key of the i-th member of an object.
    pub(crate) fn key(self, i: usize) -> Option<&'r str> {
        match self.node() {
            Node::Obj { first, len, .. } if i < len as usize => {
                Some(self.doc.key(first as usize + i))
            }
            _ => None,
        }
    }

    /// Object member lookup (the last member wins for duplicate keys).
    #[inline]
    pub(crate) fn get(self, name: &str) -> Option<DRef<'r>> {
        let Node::Obj { first, len, index } = self.node() else {
            return None;
        };
        if index != u32::MAX {
            return self.get_indexed(name, first, len, index);
        }
        let ents = self
            .doc
            .ents
            .get(first as usize..first as usize + len as usize)?;
        let name = name.as_bytes();
        let n = name.len();
        for (j, e) in ents.iter().enumerate().rev() {
            let k = e.key;
            if (k.len & !OWNED) as usize != n {
                continue;
            }
            let base = if k.len & OWNED != 0 {
                self.doc.unesc.as_bytes()
            } else {
                self.doc.src.as_bytes()
            };
            // Keys are short: a byte loop beats a call to memcmp.
            if let Some(kb) = base.get(k.off as usize..k.off as usize + n) {
                if kb.iter().zip(name).all(|(a, b)| a == b) {
                    return Some(self.at(first + j as u32));
                }
            }
        }
        None
    }

    fn get_indexed(self, name: &str, first: u32, len: u32, index: u32) -> Option<DRef<'r>> {
        let idx = self
            .doc
            .sorted
            .get(index as usize..(index + len) as usize)?;
        // Sorted by (key, position); find the last position with this key.
        let mut lo = 0usize;
        let mut hi = idx.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            let k = self.doc.key((first + idx[mid]) as usize);
            if k <= name {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return None;
        }
        let m = idx[lo - 1];
        if self.doc.key((first + m) as usize) == name {
            Some(self.at(first + m))
        } else {
            None
        }
    }

    /// Convert to `serde_json::Value` (for `$util` / override export / filters).
    pub(crate) fn to_serde(self) -> serde_json::Value {
        use serde_json::Value as J;
        match self.node() {
            Node::Null => J::Null,
            Node::Bool(b) => J::Bool(b),
            Node::Int(i) => J::from(i),
            Node::Float(f) => serde_json::Number::from_f64(f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Node::Str(_) => J::String(self.str().unwrap_or("").to_string()),
            Node::Arr { len, .. } => J::Array(
                (0..len as usize)
                    .filter_map(|i| self.child(i))
                    .map(|c| c.to_serde())
                    .collect(),
            ),
            Node::Obj { len, .. } => J::Object(
                (0..len as usize)
                    .filter_map(|i| Some((self.key(i)?.to_string(), self.child(i)?.to_serde())))
                    .collect(),
            ),
        }
    }
}

/// Bytes that end a plain run inside a JSON string: `"`, `\\` and control characters.
static STR_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Index of the first byte at or after `i` that is `"`, `\\` or a control character.
#[inline(always)]
fn skip_plain(s: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = s.get(i..i + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let w = u64::from_le_bytes(b);
        let quote = w ^ (LO * u64::from(b'"'));
        let bslash = w ^ (LO * u64::from(b'\\'));
        // A byte is zero / below 0x20 iff the subtraction borrows into its high bit
        // (only for bytes < 0x80, hence the `!w` mask).
        let zero_q = quote.wrapping_sub(LO) & !quote;
        let zero_b = bslash.wrapping_sub(LO) & !bslash;
        let ctrl = w.wrapping_sub(LO * 0x20) & !w;
        let hit = (zero_q | zero_b | ctrl) & HI;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = s.get(i) {
        if STR_SPECIAL[b as usize] {
            break;
        }
        i += 1;
    }
    i
}

/// Exact powers of ten representable as f64 (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[inline]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(&c) = s.get(i) {
        // Everything above b' ' is not whitespace: one compare in the common case.
        if c > b' ' || !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        i += 1;
    }
    i
}

/// An open container while parsing: where its children start on the stack, whether
/// it is an object, and its own key in its parent.
struct Frame {
    mark: usize,
    obj: bool,
    key: SRef,
}

/// Parse `doc.src` into `doc` (iteratively: no recursion, one pass). Children of a
/// container are collected on a stack and copied to the tape contiguously when the
/// container closes, so `child(i)` is O(1).
fn parse_into(doc: &mut Doc<'_>) -> Option<()> {
    let text = doc.src;
    let s = text.as_bytes();
    let mut ents: Vec<Ent> = Vec::with_capacity(s.len() / 8 + 4);
    let mut stack: Vec<Ent> = Vec::with_capacity(64);
    let mut frames: Vec<Frame> = Vec::with_capacity(16);
    let mut i = 0usize;
    // Key of the value about to be parsed (NO_KEY in arrays and at the top).
    let mut key = NO_KEY;
    'value: loop {
        i = skip_ws(s, i);
        let mut node = match *s.get(i)? {
            b'"' => {
                let (r, j) = string(s, i + 1, text, &mut doc.unesc)?;
                i = j;
                Node::Str(r)
            }
            b @ (b'{' | b'[') => {
                if frames.len() >= MAX_DEPTH {
                    return None;
                }
                let obj = b == b'{';
                i = skip_ws(s, i + 1);
                let close = if obj { b'}' } else { b']' };
                if s.get(i) == Some(&close) {
                    i += 1;
                    let first = ents.len() as u32;
                    if obj {
                        Node::Obj {
                            first,
                            len: 0,
                            index: u32::MAX,
                        }
                    } else {
                        Node::Arr { first, len: 0 }
                    }
                } else {
                    frames.push(Frame {
                        mark: stack.len(),
                        obj,
                        key,
                    });
                    key = if obj {
                        let (k, j) = member_key(s, i, text, &mut doc.unesc)?;
                        i = j;
                        k
                    } else {
                        NO_KEY
                    };
                    continue 'value;
                }
            }
            b'-' | b'0'..=b'9' => {
                let (n, j) = number(s, i)?;
                i = j;
                n
            }
            b't' => {
                i = lit(s, i, b"true")?;
                Node::Bool(true)
            }
            b'f' => {
                i = lit(s, i, b"false")?;
                Node::Bool(false)
            }
            b'n' => {
                i = lit(s, i, b"null")?;
                Node::Null
            }
            _ => return None,
        };
        let mut node_key = key;
        // A value is complete: append it to its container, then handle `,` or the
        // container's end (possibly closing several containers in a row).
        loop {
            let Some(f) = frames.last() else {
                if skip_ws(s, i) != s.len() {
                    return None;
                }
                doc.root = ents.len() as u32;
                ents.push(Ent { node, key: NO_KEY });
                doc.ents = ents;
                return Some(());
            };
            stack.push(Ent {
                node,
                key: node_key,
            });
            i = skip_ws(s, i);
            let obj = f.obj;
            match *s.get(i)? {
                b',' => {
                    key = if obj {
                        let (k, j) = member_key(s, i + 1, text, &mut doc.unesc)?;
                        i = j;
                        k
                    } else {
                        i += 1;
                        NO_KEY
                    };
                    continue 'value;
                }
                b'}' if obj => {}
                b']' if !obj => {}
                _ => return None,
            }
            i += 1;
            let f = frames.pop()?;
            let first = ents.len() as u32;
            let len = (stack.len() - f.mark) as u32;
            ents.extend_from_slice(stack.get(f.mark..)?);
            stack.truncate(f.mark);
            node = if obj {
                let mut index = u32::MAX;
                if len > INDEX_THRESHOLD {
                    index = sort_keys(doc, &ents, first, len);
                }
                Node::Obj { first, len, index }
            } else {
                Node::Arr { first, len }
            };
            node_key = f.key;
        }
    }
}

/// Build the sorted key index of a large object; returns its offset in `doc.sorted`.
fn sort_keys(doc: &mut Doc<'_>, ents: &[Ent], first: u32, len: u32) -> u32 {
    let (src, unesc) = (doc.src, doc.unesc.as_str());
    let key = |i: u32| -> &str {
        let r = ents
            .get((first + i) as usize)
            .map(|e| e.key)
            .unwrap_or(NO_KEY);
        let (base, l) = if r.len & OWNED != 0 {
            (unesc, r.len & !OWNED)
        } else {
            (src, r.len)
        };
        base.get(r.off as usize..(r.off + l) as usize).unwrap_or("")
    };
    let mut order: Vec<u32> = (0..len).collect();
    order.sort_by(|&a, &b| match key(a).cmp(key(b)) {
        Ordering::Equal => a.cmp(&b),
        o => o,
    });
    let index = doc.sorted.len() as u32;
    doc.sorted.extend(order);
    index
}

#[inline]
fn lit(s: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    if s.get(i..i + word.len()) == Some(word) {
        Some(i + word.len())
    } else {
        None
    }
}

/// `ws "key" ws :` starting at `i`; returns the key and the index after the colon.
/// (Inlined: returning the tuple through memory stalls store-to-load forwarding.)
#[inline(always)]
fn member_key(s: &[u8], i: usize, text: &str, unesc: &mut String) -> Option<(SRef, usize)> {
    let i = skip_ws(s, i);
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let (k, i) = string(s, i + 1, text, unesc)?;
    let i = if s.get(i) == Some(&b':') {
        i
    } else {
        skip_ws(s, i)
    };
    if s.get(i) != Some(&b':') {
        return None;
    }
    Some((k, i + 1))
}

fn number(s: &[u8], mut i: usize) -> Option<(Node, usize)> {
    let start = i;
    let neg = s.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    // Significant digits as an integer (up to 19 digits) and a decimal exponent.
    let mut mant: u64 = 0;
    let mut digits = 0u32;
    let mut exp10: i64 = 0;
    let mut exact = true;
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while let Some(&d @ b'0'..=b'9') = s.get(i) {
                if digits < 19 {
                    mant = mant * 10 + u64::from(d - b'0');
                    digits += 1;
                } else {
                    exact = false;
                    exp10 += 1;
                }
                i += 1;
            }
        }
        _ => return None,
    }
    let mut float = false;
    if s.get(i) == Some(&b'.') {
        float = true;
        i += 1;
        if !matches!(s.get(i), Some(b'0'..=b'9')) {
            return None;
        }
        while let Some(&d @ b'0'..=b'9') = s.get(i) {
            if digits < 19 {
                mant = mant * 10 + u64::from(d - b'0');
                if mant != 0 {
                    digits += 1;
                }
                exp10 -= 1;
            } else if d != b'0' {
                exact = false;
            }
            i += 1;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        float = true;
        i += 1;
        let mut eneg = false;
        match s.get(i) {
            Some(b'+') => i += 1,
            Some(b'-') => {
                eneg = true;
                i += 1;
            }
            _ => {}
        }
        if !matches!(s.get(i), Some(b'0'..=b'9')) {
            return None;
        }
        let mut e: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = s.get(i) {
            e = (e * 10 + i64::from(d - b'0')).min(100_000);
            i += 1;
        }
        exp10 += if eneg { -e } else { e };
    }
    if !float && exact {
        if neg {
            if mant <= i64::MAX as u64 + 1 {
                return Some((Node::Int((mant as i64).wrapping_neg()), i));
            }
        } else if mant <= i64::MAX as u64 {
            return Some((Node::Int(mant as i64), i));
        }
    }
    // Clinger's fast path: exact mantissa and power of ten give a correctly
    // rounded result with one operation.
    if exact && mant < (1u64 << 53) && (-22..=22).contains(&exp10) {
        let m = mant as f64;
        let v = if exp10 < 0 {
            m / POW10[(-exp10) as usize]
        } else {
            m * POW10[exp10 as usize]
        };
        return Some((Node::Float(if neg { -v } else { v }), i));
    }
    let t = std::str::from_utf8(s.get(start..i)?).ok()?;
    t.parse::<f64>().ok().map(|f| (Node::Float(f), i))
}

/// Parse a string whose opening `"` is just before `i`: a range of the source if it
/// has no escapes, else unescaped into `unesc`. Returns the index after the closing `"`.
#[inline(always)]
fn string(s: &[u8], start: usize, text: &str, unesc: &mut String) -> Option<(SRef, usize)> {
    let i = skip_plain(s, start);
    if *s.get(i)? == b'"' {
        return Some((
            SRef {
                off: start as u32,
                len: (i - start) as u32,
            },
            i + 1,
        ));
    }
    string_escaped(s, start, i, text, unesc)
}

/// The slow path of `string`: `i` is at the first `\\` or control character.
#[cold]
fn string_escaped(
    s: &[u8],
    start: usize,
    mut i: usize,
    text: &str,
    unesc: &mut String,
) -> Option<(SRef, usize)> {
    if *s.get(i)? != b'\\' {
        return None;
    }
    let out_start = unesc.len();
    if unesc.capacity() == 0 {
        // One allocation for all unescaped strings of the document.
        unesc.reserve(s.len() - start);
    }
    push_short(unesc, text.get(start..i)?);
    loop {
        match *s.get(i)? {
            b'"' => {
                i += 1;
                break;
            }
            b'\\' => {
                let e = *s.get(i + 1)?;
                i += 2;
                match e {
                    b'"' => unesc.push('"'),
                    b'\\' => unesc.push('\\'),
                    b'/' => unesc.push('/'),
                    b'b' => unesc.push('\u{8}'),
                    b'f' => unesc.push('\u{c}'),
                    b'n' => unesc.push('\n'),
                    b'r' => unesc.push('\r'),
                    b't' => unesc.push('\t'),
                    b'u' => {
                        let hi = hex4(text, i)?;
                        i += 4;
                        let ch = if (0xD800..0xDC00).contains(&hi)
                            && s.get(i..i + 2) == Some(b"\\u")
                        {
                            match hex4(text, i + 2) {
                                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                    i += 6;
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                }
                                Some(_) => None,
                                None => return None,
                            }
                        } else {
                            char::from_u32(hi)
                        };
                        unesc.push(ch.unwrap_or('\u{FFFD}'));
                    }
                    _ => return None,
                }
            }
            0..=0x1f => return None,
            _ => {
                // Copy a run of plain bytes.
                let run = i;
                i = skip_plain(s, i);
                push_short(unesc, text.get(run..i)?);
            }
        }
    }
    let len = unesc.len() - out_start;
    if len >= OWNED as usize {
        return None;
    }
    Some((
        SRef {
            off: out_start as u32,
            len: len as u32 | OWNED,
        },
        i,
    ))
}

fn hex4(text: &str, i: usize) -> Option<u32> {
    let h = text.get(i..i + 4)?;
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_navigates() {
        let text =
            r#"{"a": [1, 2.5, "x\"y", null, true], "b": {"c": "\u00e9\ud83d\ude00"}, "a": 7}"#;
        let d = Doc::parse(text).expect("valid");
        let r = d.root();
        assert!(r.is_object());
        assert_eq!(r.len(), 3);
        assert!(matches!(r.get("a").map(|n| n.node()), Some(Node::Int(7))));
        let b = r.get("b").and_then(|b| b.get("c")).and_then(|c| c.str());
        assert_eq!(b, Some("\u{e9}\u{1F600}"));
        let first_a = r.child(0).expect("a");
        assert_eq!(first_a.len(), 5);
        assert_eq!(first_a.child(2).and_then(|x| x.str()), Some("x\"y"));
        assert_eq!(
            r.to_serde(),
            serde_json::json!({"a": 7, "b": {"c": "\u{e9}\u{1F600}"}})
        );
    }

    #[test]
    fn big_objects_use_index() {
        let mut s = String::from("{");
        for i in 0..50 {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("\"k{i}\": {i}"));
        }
        s.push('}');
        let d = Doc::parse(&s).expect("valid");
        for i in 0..50 {
            let v = d.root().get(&format!("k{i}")).map(|n| n.node());
            assert!(matches!(v, Some(Node::Int(x)) if x == i));
        }
        assert!(d.root().get("nope").is_none());
    }

    use proptest::prelude::*;
    use serde_json::Value as J;

    fn arb_json() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<i64>().prop_map(J::from),
            (-1e6f64..1e6).prop_map(J::from),
            any::<f64>().prop_map(J::from),
            any::<String>().prop_map(J::String),
            "[a-z\"\\\\/\u{0}-\u{1f}é😀 ]{0,12}".prop_map(J::String),
        ];
        leaf.prop_recursive(5, 64, 16, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
                prop::collection::vec(("[a-z\"\\\\é]{0,4}", inner), 0..16)
                    .prop_map(|v| J::Object(v.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON document (compact or pretty) parses to the same value.
        #[test]
        fn parses_what_serde_json_writes(v in arb_json(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).expect("serializable")
            } else {
                v.to_string()
            };
            let d = Doc::parse(&text);
            prop_assert!(d.is_some(), "{}", text);
            prop_assert_eq!(d.map(|d| d.root().to_serde()), Some(v));
        }

        /// One-character edits of a document are accepted exactly when serde_json
        /// accepts them.
        #[test]
        fn accepts_what_serde_json_accepts(
            v in arb_json(),
            at in any::<prop::sample::Index>(),
            edit in prop_oneof![
                Just(None),
                prop::sample::select(&[
                    '{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\n', '0', '1', '-', '+', '.',
                    'e', 'E', 't', 'n', 'u', '\u{1}', 'x',
                ][..]).prop_map(Some),
            ],
            delete in any::<bool>(),
        ) {
            let mut text = v.to_string();
            let bounds: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let i = bounds[at.index(bounds.len())];
            if delete && i < text.len() {
                text.remove(i);
            }
            if let Some(c) = edit {
                text.insert(i, c);
            }
            // (Values are not compared: serde_json's default float parsing may be
            // 1 ulp off for 17-digit numbers; ours is correctly rounded.)
            let ours = Doc::parse(&text).is_some();
            let theirs = serde_json::from_str::<J>(&text);
            // serde_json refuses numbers beyond f64's range; we read them as infinity.
            let out_of_range = matches!(&theirs, Err(e) if e.to_string().contains("out of range"));
            if !out_of_range {
                prop_assert_eq!(ours, theirs.is_ok(), "{:?}", text);
            }
        }
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "tru",
            "01",
            "1.",
            "\"\\x\"",
            "[1] 2",
            "\"a\u{1}\"",
        ] {
            assert!(Doc::parse(bad).is_none(), "{bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Doc::parse(&deep).is_none());
        assert!(Doc::parse(" {\"a\":[]} ").is_some());
    }
}
