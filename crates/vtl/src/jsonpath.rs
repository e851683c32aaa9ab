//! JSONPath as API Gateway evaluates it (Jayway JsonPath semantics, the subset that
//! matters for mapping templates and parameter mappings).
//!
//! Supported: `$`, `.name`, `['name']` / `["name"]`, `[n]` (negative counts from the
//! end), `[*]` / `.*`, deep scan `..name` / `..*` / `..[n]`, unions `['a','b']` /
//! `[0,2]`, slices `[a:b]`, and filters `[?(@.x op value)]` with `== != < <= > >=`,
//! `=~ /re/`, existence `[?(@.x)]`, `!`, `&&`, `||` and parentheses.
//!
//! A path that does not start with `$` is taken relative to the root (`a.b` = `$.a.b`),
//! as Jayway does; this is the form `method.request.body.a.b` mappings use.

use serde_json::Value;
use std::fmt;

/// The result of evaluating a JSONPath.
///
/// * A **definite** path (only names and single indexes) yields [`JsonPathResult::Single`]
///   or [`JsonPathResult::Missing`].
/// * An **indefinite** path (wildcard, deep scan, union, slice, filter) yields
///   [`JsonPathResult::List`] with every match in document order (possibly empty),
///   which Jayway returns as a JSON array.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonPathResult<'a> {
    /// A definite path that matched nothing.
    Missing,
    /// A definite path that matched one value (which may be JSON `null`).
    Single(&'a Value),
    /// All matches of an indefinite path.
    List(Vec<&'a Value>),
}

impl<'a> JsonPathResult<'a> {
    /// The result as an owned JSON value: `Missing` → `null`, `List` → array.
    pub fn to_value(&self) -> Value {
        match self {
            JsonPathResult::Missing => Value::Null,
            JsonPathResult::Single(v) => (*v).clone(),
            JsonPathResult::List(vs) => Value::Array(vs.iter().map(|v| (*v).clone()).collect()),
        }
    }

    /// `$input.json(path)` text: compact JSON of the result; a missing path gives `""`
    /// (an empty JSON string), as recorded for API Gateway.
    pub fn to_json_string(&self) -> String {
        match self {
            JsonPathResult::Missing => "\"\"".to_string(),
            JsonPathResult::Single(v) => compact_json(v),
            JsonPathResult::List(vs) => {
                let mut out = String::from("[");
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&compact_json(v));
                }
                out.push(']');
                out
            }
        }
    }

    /// Value for a parameter mapping (`method.request.body.X`,
    /// `integration.response.body.X`): strings are returned raw (no quotes), other
    /// values as compact JSON; a missing path or JSON `null` gives `None` (the mapped
    /// parameter is then omitted).
    pub fn to_parameter_value(&self) -> Option<String> {
        match self {
            JsonPathResult::Missing | JsonPathResult::Single(Value::Null) => None,
            JsonPathResult::Single(Value::String(s)) => Some(s.clone()),
            other => Some(other.to_json_string()),
        }
    }
}

fn compact_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A JSONPath syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPathError {
    /// 0-based byte offset in the path.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for JsonPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid JSONPath at offset {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for JsonPathError {}

/// Evaluate `path` against `root`. See [`JsonPathResult`] for the shape of the result.
pub fn json_path<'a>(root: &'a Value, path: &str) -> Result<JsonPathResult<'a>, JsonPathError> {
    let compiled = CompiledPath::parse(path)?;
    Ok(compiled.eval(root))
}

/// A parsed JSONPath, reusable.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPath {
    segs: Vec<Seg>,
    definite: bool,
}

#[derive(Debug, Clone)]
enum Seg {
    Name(String),
    Names(Vec<String>),
    Index(i64),
    Indexes(Vec<i64>),
    Wild,
    Slice(Option<i64>, Option<i64>, i64),
    Filter(Box<Filter>),
    /// Deep scan: apply the inner segment to the node and all descendants.
    Deep(Box<Seg>),
}

#[derive(Debug, Clone)]
enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Exists(Operand),
    Cmp(Operand, CmpOp, Operand),
    Regex(Operand, regex::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Operand {
    /// `@...` relative path (current node) or `$...` absolute path.
    Path {
        absolute: bool,
        path: CompiledPath,
    },
    Lit(Value),
}

const MAX_PATH_LEN: usize = 4096;
const MAX_FILTER_DEPTH: usize = 32;

struct P<'s> {
    s: &'s [u8],
    src: &'s str,
    pos: usize,
    depth: usize,
}

impl CompiledPath {
    pub(crate) fn parse(path: &str) -> Result<CompiledPath, JsonPathError> {
        if path.len() > MAX_PATH_LEN {
            return Err(JsonPathError {
                position: 0,
                message: "path too long".into(),
            });
        }
        let trimmed = path.trim();
        let mut p = P {
            s: trimmed.as_bytes(),
            src: trimmed,
            pos: 0,
            depth: 0,
        };
        let relative_start = !(trimmed.starts_with('$') || trimmed.starts_with('@'));
        if !relative_start {
            p.pos = 1;
        }
        let segs = p.segments(relative_start, false)?;
        if p.pos != p.s.len() {
            return Err(p.err("unexpected character"));
        }
        Ok(CompiledPath::from_segs(segs))
    }

    fn from_segs(segs: Vec<Seg>) -> CompiledPath {
        let definite = segs
            .iter()
            .all(|s| matches!(s, Seg::Name(_) | Seg::Index(_)));
        CompiledPath { segs, definite }
    }

    pub(crate) fn eval<'a>(&self, root: &'a Value) -> JsonPathResult<'a> {
        match self.eval_tree(root) {
            PathResult::Missing => JsonPathResult::Missing,
            PathResult::Single(v) => JsonPathResult::Single(v),
            PathResult::List(v) => JsonPathResult::List(v),
        }
    }

    /// Evaluate over any JSON tree representation.
    pub(crate) fn eval_tree<T: Tree>(&self, root: T) -> PathResult<T> {
        self.eval_with_root(root, root)
    }

    fn eval_with_root<T: Tree>(&self, node: T, root: T) -> PathResult<T> {
        if self.definite {
            let mut cur = node;
            for seg in &self.segs {
                let next = match seg {
                    Seg::Name(n) => cur.member(n),
                    Seg::Index(i) => cur.index(*i),
                    _ => None,
                };
                match next {
                    Some(v) => cur = v,
                    None => return PathResult::Missing,
                }
            }
            return PathResult::Single(cur);
        }
        let mut cur: Vec<T> = vec![node];
        let mut budget: usize = 1_000_000;
        for seg in &self.segs {
            let mut next = Vec::new();
            for v in cur {
                apply(seg, v, root, &mut next, &mut budget);
            }
            cur = next;
        }
        PathResult::List(cur)
    }
}

/// Result of evaluating a path over a tree of type `T`.
pub(crate) enum PathResult<T> {
    Missing,
    Single(T),
    List(Vec<T>),
}

/// A read-only JSON tree the evaluator can walk.
pub(crate) trait Tree: Copy {
    /// Object member.
    fn member(self, name: &str) -> Option<Self>;
    /// Array length (`None` if not an array).
    fn array_len(self) -> Option<usize>;
    /// Array element or object member value by position.
    fn nth(self, i: usize) -> Option<Self>;
    fn is_object(self) -> bool;
    /// Number of object members (0 if not an object).
    fn object_len(self) -> usize;
    fn to_serde(self) -> Value;

    fn index(self, i: i64) -> Option<Self> {
        let len = self.array_len()? as i64;
        let j = if i < 0 { len + i } else { i };
        if j < 0 || j >= len {
            None
        } else {
            self.nth(j as usize)
        }
    }

    /// Array elements or object member values.
    fn children(self) -> Vec<Self> {
        let n = match self.array_len() {
            Some(n) => n,
            None => self.object_len(),
        };
        (0..n).filter_map(|i| self.nth(i)).collect()
    }
}

impl Tree for &Value {
    fn member(self, name: &str) -> Option<Self> {
        self.as_object().and_then(|m| m.get(name))
    }
    fn array_len(self) -> Option<usize> {
        self.as_array().map(Vec::len)
    }
    fn nth(self, i: usize) -> Option<Self> {
        match self {
            Value::Array(a) => a.get(i),
            Value::Object(m) => m.values().nth(i),
            _ => None,
        }
    }
    fn is_object(self) -> bool {
        self.is_object()
    }
    fn object_len(self) -> usize {
        self.as_object().map(|m| m.len()).unwrap_or(0)
    }
    fn to_serde(self) -> Value {
        self.clone()
    }
    fn children(self) -> Vec<Self> {
        match self {
            Value::Array(a) => a.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => Vec::new(),
        }
    }
}

impl<'r> Tree for crate::doc::DRef<'r> {
    fn member(self, name: &str) -> Option<Self> {
        self.get(name)
    }
    fn array_len(self) -> Option<usize> {
        if self.is_array() {
            Some(self.len())
        } else {
            None
        }
    }
    fn nth(self, i: usize) -> Option<Self> {
        self.child(i)
    }
    fn is_object(self) -> bool {
        crate::doc::DRef::is_object(self)
    }
    fn object_len(self) -> usize {
        if crate::doc::DRef::is_object(self) {
            self.len()
        } else {
            0
        }
    }
    fn to_serde(self) -> Value {
        crate::doc::DRef::to_serde(self)
    }
}

fn apply<T: Tree>(seg: &Seg, v: T, root: T, out: &mut Vec<T>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match seg {
        Seg::Name(n) => {
            if let Some(x) = v.member(n) {
                out.push(x);
            }
        }
        Seg::Names(ns) => {
            for n in ns {
                if let Some(x) = v.member(n) {
                    out.push(x);
                }
            }
        }
        Seg::Index(i) => {
            if let Some(x) = v.index(*i) {
                out.push(x);
            }
        }
        Seg::Indexes(is) => {
            for i in is {
                if let Some(x) = v.index(*i) {
                    out.push(x);
                }
            }
        }
        Seg::Wild => out.extend(v.children()),
        Seg::Slice(from, to, step) => {
            if let Some(len) = v.array_len() {
                let len = len as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let f = from.map(norm).unwrap_or(0);
                let t = to.map(norm).unwrap_or(len);
                let step = (*step).max(1);
                let mut i = f;
                while i < t {
                    if let Some(x) = v.nth(i as usize) {
                        out.push(x);
                    }
                    i += step;
                }
            }
        }
        Seg::Filter(f) => {
            let items: Vec<T> = if v.array_len().is_some() {
                v.children()
            } else if v.is_object() {
                vec![v]
            } else {
                Vec::new()
            };
            for it in items {
                if filter_matches(f, it, root) {
                    out.push(it);
                }
            }
        }
        Seg::Deep(inner) => {
            deep(inner, v, root, out, budget);
        }
    }
}

fn deep<T: Tree>(inner: &Seg, v: T, root: T, out: &mut Vec<T>, budget: &mut usize) {
    // Jayway applies the inner segment to the node, then recurses into children.
    apply(inner, v, root, out, budget);
    for x in v.children() {
        if *budget == 0 {
            return;
        }
        deep(inner, x, root, out, budget);
    }
}

fn operand_value<T: Tree>(op: &Operand, cur: T, root: T) -> Option<Value> {
    match op {
        Operand::Lit(v) => Some(v.clone()),
        Operand::Path { absolute, path } => {
            let base = if *absolute { root } else { cur };
            match path.eval_with_root(base, root) {
                PathResult::Missing => None,
                PathResult::Single(v) => Some(v.to_serde()),
                PathResult::List(vs) => {
                    Some(Value::Array(vs.into_iter().map(|v| v.to_serde()).collect()))
                }
            }
        }
    }
}

fn filter_matches<T: Tree>(f: &Filter, cur: T, root: T) -> bool {
    match f {
        Filter::Or(a, b) => filter_matches(a, cur, root) || filter_matches(b, cur, root),
        Filter::And(a, b) => filter_matches(a, cur, root) && filter_matches(b, cur, root),
        Filter::Not(a) => !filter_matches(a, cur, root),
        Filter::Exists(op) => match operand_value(op, cur, root) {
            None => false,
            Some(Value::Array(a)) => {
                matches!(op, Operand::Lit(_)) || !a.is_empty() || {
                    matches!(op, Operand::Path { path, .. } if path.definite)
                }
            }
            Some(_) => true,
        },
        Filter::Regex(op, re) => match operand_value(op, cur, root) {
            Some(Value::String(s)) => re.is_match(&s),
            _ => false,
        },
        Filter::Cmp(a, op, b) => {
            let (Some(x), Some(y)) = (operand_value(a, cur, root), operand_value(b, cur, root))
            else {
                return matches!(op, CmpOp::Ne);
            };
            compare(&x, *op, &y)
        }
    }
}

fn compare(x: &Value, op: CmpOp, y: &Value) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (x, y) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            a.partial_cmp(&b)
        }
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

impl<'s> P<'s> {
    fn err(&self, msg: &str) -> JsonPathError {
        JsonPathError {
            position: self.pos,
            message: msg.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Parse segments until end (or, inside a filter, until a character that cannot
    /// continue a path).
    fn segments(
        &mut self,
        mut implicit_dot: bool,
        in_filter: bool,
    ) -> Result<Vec<Seg>, JsonPathError> {
        let mut segs = Vec::new();
        loop {
            if implicit_dot {
                implicit_dot = false;
                if self.pos < self.s.len() && self.peek() != Some(b'[') {
                    let name = self.name()?;
                    segs.push(name);
                    continue;
                }
            }
            match self.peek() {
                None => break,
                Some(b'.') => {
                    if self.s.get(self.pos + 1) == Some(&b'.') {
                        self.pos += 2;
                        let inner = if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else {
                            self.name()?
                        };
                        segs.push(Seg::Deep(Box::new(inner)));
                    } else {
                        self.pos += 1;
                        let name = self.name()?;
                        segs.push(name);
                    }
                }
                Some(b'[') => {
                    let s = self.bracket()?;
                    segs.push(s);
                }
                Some(_) if in_filter => break,
                Some(_) => return Err(self.err("expected '.' or '['")),
            }
        }
        Ok(segs)
    }

    fn name(&mut self) -> Result<Seg, JsonPathError> {
        if self.peek() == Some(b'*') {
            self.pos += 1;
            return Ok(Seg::Wild);
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b'.' | b'['
                    | b']'
                    | b' '
                    | b'\t'
                    | b')'
                    | b'='
                    | b'!'
                    | b'<'
                    | b'>'
                    | b'&'
                    | b'|'
                    | b','
            ) {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("expected a property name"));
        }
        let name = self.src.get(start..self.pos).unwrap_or("").to_string();
        Ok(Seg::Name(name))
    }

    fn quoted(&mut self) -> Result<String, JsonPathError> {
        let q = self.peek().ok_or_else(|| self.err("expected a quote"))?;
        self.pos += 1;
        let mut out = String::new();
        let mut seg_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'\\') => {
                    out.push_str(self.src.get(seg_start..self.pos).unwrap_or(""));
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.err("unterminated string")),
                        Some(c) => {
                            let ch = self.src.get(self.pos..).and_then(|r| r.chars().next());
                            match c {
                                b'n' => out.push('\n'),
                                b't' => out.push('\t'),
                                _ => {
                                    if let Some(ch) = ch {
                                        out.push(ch);
                                    }
                                }
                            }
                            self.pos += ch.map(|c| c.len_utf8()).unwrap_or(1);
                            seg_start = self.pos;
                        }
                    }
                }
                Some(c) if c == q => {
                    out.push_str(self.src.get(seg_start..self.pos).unwrap_or(""));
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn int(&mut self) -> Result<i64, JsonPathError> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.src
            .get(start..self.pos)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| self.err("expected an integer"))
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonPathError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    fn bracket(&mut self) -> Result<Seg, JsonPathError> {
        self.pos += 1; // '['
        self.skip_ws();
        let seg = match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                Seg::Wild
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.peek() == Some(b',') {
                    self.pos += 1;
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Seg::Name(names.pop().unwrap_or_default())
                } else {
                    Seg::Names(names)
                }
            }
            Some(b'?') => {
                self.pos += 1;
                self.expect(b'(')?;
                let f = self.filter_or()?;
                self.expect(b')')?;
                Seg::Filter(Box::new(f))
            }
            Some(b':') => {
                self.pos += 1;
                self.skip_ws();
                let to = if self.peek() == Some(b']') {
                    None
                } else {
                    Some(self.int()?)
                };
                Seg::Slice(None, to, 1)
            }
            Some(b'-' | b'0'..=b'9') => {
                let first = self.int()?;
                self.skip_ws();
                match self.peek() {
                    Some(b':') => {
                        self.pos += 1;
                        self.skip_ws();
                        let to = if matches!(self.peek(), Some(b']' | b':')) {
                            None
                        } else {
                            Some(self.int()?)
                        };
                        self.skip_ws();
                        let mut step = 1;
                        if self.peek() == Some(b':') {
                            self.pos += 1;
                            step = self.int()?;
                        }
                        Seg::Slice(Some(first), to, step)
                    }
                    Some(b',') => {
                        let mut is = vec![first];
                        while self.peek() == Some(b',') {
                            self.pos += 1;
                            is.push(self.int()?);
                            self.skip_ws();
                        }
                        Seg::Indexes(is)
                    }
                    _ => Seg::Index(first),
                }
            }
            _ => return Err(self.err("unexpected character in brackets")),
        };
        self.expect(b']')?;
        Ok(seg)
    }

    fn filter_or(&mut self) -> Result<Filter, JsonPathError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.err("filter nested too deeply"));
        }
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.s.get(self.pos..self.pos + 2) == Some(b"||") {
                self.pos += 2;
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(left)
    }

    fn filter_and(&mut self) -> Result<Filter, JsonPathError> {
        let mut left = self.filter_unary()?;
        loop {
            self.skip_ws();
            if self.s.get(self.pos..self.pos + 2) == Some(b"&&") {
                self.pos += 2;
                let right = self.filter_unary()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                break;
            }
        }
        Ok(left)
    }

    fn filter_unary(&mut self) -> Result<Filter, JsonPathError> {
        self.skip_ws();
        match self.peek() {
            Some(b'!') if self.s.get(self.pos + 1) != Some(&b'=') => {
                self.pos += 1;
                let inner = self.filter_unary()?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Some(b'(') => {
                self.pos += 1;
                let f = self.filter_or()?;
                self.expect(b')')?;
                Ok(f)
            }
            _ => {
                let left = self.operand()?;
                self.skip_ws();
                let two = self.s.get(self.pos..self.pos + 2);
                let op = match two {
                    Some(b"==") => Some((CmpOp::Eq, 2)),
                    Some(b"!=") => Some((CmpOp::Ne, 2)),
                    Some(b"<=") => Some((CmpOp::Le, 2)),
                    Some(b">=") => Some((CmpOp::Ge, 2)),
                    Some(b"=~") => None,
                    _ => match self.peek() {
                        Some(b'<') => Some((CmpOp::Lt, 1)),
                        Some(b'>') => Some((CmpOp::Gt, 1)),
                        _ => None,
                    },
                };
                if two == Some(b"=~") {
                    self.pos += 2;
                    self.skip_ws();
                    if self.peek() != Some(b'/') {
                        return Err(self.err("expected /regex/"));
                    }
                    self.pos += 1;
                    let start = self.pos;
                    while let Some(c) = self.peek() {
                        if c == b'\\' {
                            self.pos += 2;
                            continue;
                        }
                        if c == b'/' {
                            break;
                        }
                        self.pos += 1;
                    }
                    let pat = self
                        .src
                        .get(start..self.pos.min(self.s.len()))
                        .unwrap_or("");
                    self.expect(b'/')?;
                    let mut case_insensitive = false;
                    if self.peek() == Some(b'i') {
                        self.pos += 1;
                        case_insensitive = true;
                    }
                    let re = regex::RegexBuilder::new(&format!("^(?:{pat})$"))
                        .case_insensitive(case_insensitive)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|_| self.err("invalid regular expression"))?;
                    return Ok(Filter::Regex(left, re));
                }
                match op {
                    Some((op, n)) => {
                        self.pos += n;
                        let right = self.operand()?;
                        Ok(Filter::Cmp(left, op, right))
                    }
                    None => Ok(Filter::Exists(left)),
                }
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, JsonPathError> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') | Some(b'$') => {
                let absolute = self.peek() == Some(b'$');
                self.pos += 1;
                let segs = self.segments(false, true)?;
                Ok(Operand::Path {
                    absolute,
                    path: CompiledPath::from_segs(segs),
                })
            }
            Some(b'\'' | b'"') => Ok(Operand::Lit(Value::String(self.quoted()?))),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                self.pos += 1;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.pos += 1;
                }
                let t = self.src.get(start..self.pos).unwrap_or("");
                let v: Value = serde_json::from_str(t).map_err(|_| self.err("invalid number"))?;
                Ok(Operand::Lit(v))
            }
            _ => {
                for (kw, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.s.get(self.pos..self.pos + kw.len()) == Some(kw.as_bytes()) {
                        self.pos += kw.len();
                        return Ok(Operand::Lit(v));
                    }
                }
                Err(self.err("expected a filter operand"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"store": {"book": [
            {"category": "reference", "author": "Nigel Rees", "title": "Sayings", "price": 8.95},
            {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword", "price": 12.99},
            {"category": "fiction", "author": "Tolkien", "title": "LOTR", "isbn": "0-395", "price": 22.99}
        ], "bicycle": {"color": "red", "price": 19.95}}, "a b": 1})
    }

    #[test]
    fn definite_paths() {
        let d = doc();
        assert_eq!(
            json_path(&d, "$.store.bicycle.color").unwrap().to_value(),
            json!("red")
        );
        assert_eq!(
            json_path(&d, "$['store']['bicycle']['price']")
                .unwrap()
                .to_value(),
            json!(19.95)
        );
        assert_eq!(
            json_path(&d, "$.store.book[-1].author").unwrap().to_value(),
            json!("Tolkien")
        );
        assert_eq!(
            json_path(&d, "store.book[0].title").unwrap().to_value(),
            json!("Sayings")
        );
        assert_eq!(json_path(&d, "$['a b']").unwrap().to_value(), json!(1));
        assert_eq!(json_path(&d, "$.nope").unwrap(), JsonPathResult::Missing);
        assert_eq!(json_path(&d, "$").unwrap(), JsonPathResult::Single(&d));
        assert_eq!(json_path(&d, "$.nope").unwrap().to_json_string(), "\"\"");
    }

    #[test]
    fn indefinite_paths() {
        let d = doc();
        assert_eq!(
            json_path(&d, "$.store.book[*].author").unwrap().to_value(),
            json!(["Nigel Rees", "Evelyn Waugh", "Tolkien"])
        );
        assert_eq!(
            json_path(&d, "$..price").unwrap().to_value(),
            json!([8.95, 12.99, 22.99, 19.95])
        );
        assert_eq!(
            json_path(&d, "$.store.book[?(@.price < 10)].title")
                .unwrap()
                .to_value(),
            json!(["Sayings"])
        );
        assert_eq!(
            json_path(&d, "$.store.book[?(@.isbn)].title")
                .unwrap()
                .to_value(),
            json!(["LOTR"])
        );
        assert_eq!(
            json_path(
                &d,
                "$.store.book[?(@.category == 'fiction' && @.price > 20)].title"
            )
            .unwrap()
            .to_value(),
            json!(["LOTR"])
        );
        assert_eq!(
            json_path(&d, "$.store.book[0:2].title").unwrap().to_value(),
            json!(["Sayings", "Sword"])
        );
        assert_eq!(
            json_path(&d, "$.store.book[0,2].title").unwrap().to_value(),
            json!(["Sayings", "LOTR"])
        );
        assert_eq!(
            json_path(&d, "$.store.book[?(@.author =~ /.*Waugh/)].price")
                .unwrap()
                .to_value(),
            json!([12.99])
        );
        assert_eq!(json_path(&d, "$.x[*]").unwrap().to_value(), json!([]));
    }

    #[test]
    fn parameter_values() {
        let d = doc();
        assert_eq!(
            json_path(&d, "store.bicycle.color")
                .unwrap()
                .to_parameter_value(),
            Some("red".to_string())
        );
        assert_eq!(
            json_path(&d, "store.bicycle").unwrap().to_parameter_value(),
            Some(r#"{"color":"red","price":19.95}"#.to_string())
        );
        assert_eq!(json_path(&d, "store.x").unwrap().to_parameter_value(), None);
    }

    #[test]
    fn errors() {
        let d = doc();
        assert!(json_path(&d, "$.a[").is_err());
        assert!(json_path(&d, "$.a[?(@.x == )]").is_err());
        assert!(json_path(&d, "$[x]").is_err());
    }
}
