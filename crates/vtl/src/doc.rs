//! A fast, read-only JSON document for request/response bodies.
//!
//! The body is parsed once per render into a flat "tape": every container's children
//! are stored contiguously, strings without escapes are borrowed from the body, and
//! large objects get a sorted key index. Much cheaper than building a
//! `serde_json::Value` (no per-object hash maps, few allocations).

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

#[derive(Debug)]
pub(crate) struct Doc<'a> {
    src: &'a str,
    nodes: Vec<Node>,
    keys: Vec<SRef>,
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
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            doc: Doc {
                src: text,
                nodes: Vec::with_capacity(text.len() / 10 + 4),
                keys: Vec::with_capacity(text.len() / 10 + 4),
                unesc: String::new(),
                sorted: Vec::new(),
                root: 0,
            },
            stack_nodes: Vec::with_capacity(32),
            stack_keys: Vec::with_capacity(32),
            depth: 0,
        };
        p.ws();
        let root = p.value()?;
        p.ws();
        if p.i != p.s.len() || p.doc.unesc.len() >= OWNED as usize {
            return None;
        }
        let mut doc = p.doc;
        doc.root = doc.nodes.len() as u32;
        doc.nodes.push(root);
        doc.keys.push(NO_KEY);
        Some(doc)
    }

    /// An empty object (`{}`), the document of an empty body.
    pub(crate) fn empty_object() -> Doc<'a> {
        Doc {
            src: "",
            nodes: vec![Node::Obj {
                first: 0,
                len: 0,
                index: u32::MAX,
            }],
            keys: vec![NO_KEY],
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

    /// Does key `i` equal `name`? (byte comparison, length first)
    #[inline]
    fn key_is(&self, i: usize, name: &[u8]) -> bool {
        let Some(r) = self.keys.get(i) else {
            return false;
        };
        let len = (r.len & !OWNED) as usize;
        if len != name.len() {
            return false;
        }
        let base = if r.len & OWNED != 0 {
            self.unesc.as_bytes()
        } else {
            self.src.as_bytes()
        };
        base.get(r.off as usize..r.off as usize + len) == Some(name)
    }

    #[inline]
    fn key(&self, i: usize) -> &str {
        match self.keys.get(i) {
            Some(k) => self.sref(*k),
            None => "",
        }
    }
}

impl<'r> DRef<'r> {
    #[inline]
    pub(crate) fn node(self) -> Node {
        self.doc
            .nodes
            .get(self.idx as usize)
            .copied()
            .unwrap_or(Node::Null)
    }

    fn at(self, i: u32) -> DRef<'r> {
        DRef {
            doc: self.doc,
            idx: i,
        }
    }

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
    pub(crate) fn len(self) -> usize {
        match self.node() {
            Node::Arr { len, .. } | Node::Obj { len, .. } => len as usize,
            _ => 0,
        }
    }

    /// The i-th element of an array / member value of an object.
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
    pub(crate) fn get(self, name: &str) -> Option<DRef<'r>> {
        let Node::Obj { first, len, index } = self.node() else {
            return None;
        };
        if index == u32::MAX {
            let name = name.as_bytes();
            for i in (first..first + len).rev() {
                if self.doc.key_is(i as usize, name) {
                    return Some(self.at(i));
                }
            }
            return None;
        }
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
#[inline]
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

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    doc: Doc<'a>,
    stack_nodes: Vec<Node>,
    stack_keys: Vec<SRef>,
    depth: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn lit(&mut self, word: &[u8], node: Node) -> Option<Node> {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Some(node)
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Node> {
        match *self.s.get(self.i)? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Node::Str),
            b't' => self.lit(b"true", Node::Bool(true)),
            b'f' => self.lit(b"false", Node::Bool(false)),
            b'n' => self.lit(b"null", Node::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Node> {
        let start = self.i;
        let neg = self.s.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        // Significant digits as an integer (up to 19 digits) and a decimal exponent.
        let mut mant: u64 = 0;
        let mut digits = 0u32;
        let mut exp10: i64 = 0;
        let mut exact = true;
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while let Some(&d @ b'0'..=b'9') = self.s.get(self.i) {
                    if digits < 19 {
                        mant = mant * 10 + u64::from(d - b'0');
                        digits += 1;
                    } else {
                        exact = false;
                        exp10 += 1;
                    }
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let mut float = false;
        if self.s.get(self.i) == Some(&b'.') {
            float = true;
            self.i += 1;
            if !matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
                return None;
            }
            while let Some(&d @ b'0'..=b'9') = self.s.get(self.i) {
                if digits < 19 {
                    mant = mant * 10 + u64::from(d - b'0');
                    if mant != 0 {
                        digits += 1;
                    }
                    exp10 -= 1;
                } else if d != b'0' {
                    exact = false;
                }
                self.i += 1;
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            let mut eneg = false;
            match self.s.get(self.i) {
                Some(b'+') => self.i += 1,
                Some(b'-') => {
                    eneg = true;
                    self.i += 1;
                }
                _ => {}
            }
            if !matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
                return None;
            }
            let mut e: i64 = 0;
            while let Some(&d @ b'0'..=b'9') = self.s.get(self.i) {
                e = (e * 10 + i64::from(d - b'0')).min(100_000);
                self.i += 1;
            }
            exp10 += if eneg { -e } else { e };
        }
        if !float && exact {
            if neg {
                if mant <= i64::MAX as u64 + 1 {
                    return Some(Node::Int((mant as i64).wrapping_neg()));
                }
            } else if mant <= i64::MAX as u64 {
                return Some(Node::Int(mant as i64));
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
            return Some(Node::Float(if neg { -v } else { v }));
        }
        let t = std::str::from_utf8(self.s.get(start..self.i)?).ok()?;
        t.parse::<f64>().ok().map(Node::Float)
    }

    /// Parse a string at `"`: a range of the source if it has no escapes, else
    /// unescaped into `Doc::unesc`.
    fn string(&mut self) -> Option<SRef> {
        self.i += 1;
        let start = self.i;
        // Skip plain bytes quickly, 8 at a time.
        self.i = skip_plain(self.s, self.i);
        loop {
            let c = *self.s.get(self.i)?;
            match c {
                b'"' => {
                    let r = SRef {
                        off: start as u32,
                        len: (self.i - start) as u32,
                    };
                    self.i += 1;
                    return Some(r);
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let out_start = self.doc.unesc.len();
        let src = self.doc.src;
        if self.doc.unesc.capacity() == 0 {
            // One allocation for all unescaped strings of the document.
            self.doc.unesc.reserve(self.s.len() - start);
        }
        self.doc.unesc.push_str(src.get(start..self.i)?);
        loop {
            let c = *self.s.get(self.i)?;
            match c {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let out = &mut self.doc.unesc;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi)
                                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                } else {
                                    self.i = save;
                                    None
                                }
                            } else {
                                char::from_u32(hi)
                            };
                            self.doc.unesc.push(ch.unwrap_or('\u{FFFD}'));
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {
                    // Copy a run of plain bytes.
                    let run = self.i;
                    self.i = skip_plain(self.s, self.i);
                    self.doc.unesc.push_str(src.get(run..self.i)?);
                }
            }
        }
        let len = self.doc.unesc.len() - out_start;
        if len >= OWNED as usize {
            return None;
        }
        Some(SRef {
            off: out_start as u32,
            len: len as u32 | OWNED,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.doc.src.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        Some(v)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            None
        } else {
            Some(())
        }
    }

    fn array(&mut self) -> Option<Node> {
        self.enter()?;
        self.i += 1;
        let mark = self.stack_nodes.len();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                let v = self.value()?;
                self.stack_nodes.push(v);
                self.stack_keys.push(NO_KEY);
                self.ws();
                match self.s.get(self.i)? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        let first = self.doc.nodes.len() as u32;
        let len = (self.stack_nodes.len() - mark) as u32;
        self.doc
            .nodes
            .extend_from_slice(self.stack_nodes.get(mark..).unwrap_or(&[]));
        self.doc
            .keys
            .extend_from_slice(self.stack_keys.get(mark..).unwrap_or(&[]));
        self.stack_nodes.truncate(mark);
        self.stack_keys.truncate(mark);
        Some(Node::Arr { first, len })
    }

    fn object(&mut self) -> Option<Node> {
        self.enter()?;
        self.i += 1;
        let mark = self.stack_nodes.len();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.s.get(self.i) != Some(&b'"') {
                    return None;
                }
                let k = self.string()?;
                self.ws();
                if self.s.get(self.i) != Some(&b':') {
                    return None;
                }
                self.i += 1;
                self.ws();
                let v = self.value()?;
                self.stack_nodes.push(v);
                self.stack_keys.push(k);
                self.ws();
                match self.s.get(self.i)? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        let first = self.doc.nodes.len() as u32;
        let len = (self.stack_nodes.len() - mark) as u32;
        self.doc
            .nodes
            .extend_from_slice(self.stack_nodes.get(mark..).unwrap_or(&[]));
        self.doc
            .keys
            .extend_from_slice(self.stack_keys.get(mark..).unwrap_or(&[]));
        self.stack_nodes.truncate(mark);
        self.stack_keys.truncate(mark);
        let mut index = u32::MAX;
        if len > INDEX_THRESHOLD {
            let mut order: Vec<u32> = (0..len).collect();
            let doc = &self.doc;
            order.sort_by(|&a, &b| {
                let ka = doc.key((first + a) as usize);
                let kb = doc.key((first + b) as usize);
                match ka.cmp(kb) {
                    Ordering::Equal => a.cmp(&b),
                    o => o,
                }
            });
            index = self.doc.sorted.len() as u32;
            self.doc.sorted.extend(order);
        }
        Some(Node::Obj { first, len, index })
    }
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
