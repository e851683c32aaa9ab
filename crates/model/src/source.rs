//! Source text → `serde_json::Value` plus a JSON-pointer → position index.
//!
//! JSON documents are parsed by `serde_json` (exact JSON semantics, as AWS's Jackson-based
//! importer reads them) and indexed by a small scanner; everything else goes through
//! `saphyr-parser`'s event stream (YAML 1.2 core schema). Both paths are iterative or
//! depth-limited, so no input can overflow the stack, and neither panics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::diagnostics::{Diagnostic, Severity};

/// Deepest nesting accepted (serde_json's own recursion limit is 128).
pub(crate) const MAX_DEPTH: usize = 128;
/// Budget of nodes that YAML aliases may produce (defeats "billion laughs").
const ALIAS_NODE_BUDGET: usize = 1_000_000;

/// 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the member's key starts (object members only).
    key: Option<Pos>,
    /// Where the value starts.
    value: Pos,
}

/// Positions of every value (and object key) of a parsed document, by JSON pointer.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    entries: HashMap<String, Entry>,
}

impl SourceMap {
    fn insert(&mut self, pointer: String, key: Option<Pos>, value: Pos) {
        self.entries.insert(pointer, Entry { key, value });
    }

    /// The position a diagnostic about `pointer` should carry: the member's key when the pointer
    /// names an object member (the start of `key: value`), the value itself for array elements
    /// and the root. Pointers that do not exist in the document (a missing required field) fall
    /// back to their nearest existing ancestor.
    pub fn position(&self, pointer: &str) -> Option<Pos> {
        let mut p = pointer;
        loop {
            if let Some(e) = self.entries.get(p) {
                return Some(e.key.unwrap_or(e.value));
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// Whether `pointer` itself (not just an ancestor) is in the document.
    pub fn contains(&self, pointer: &str) -> bool {
        self.entries.contains_key(pointer)
    }

    /// The position of the value itself (not its key).
    pub fn value_position(&self, pointer: &str) -> Option<Pos> {
        self.entries
            .get(pointer)
            .map(|e| e.value)
            .or_else(|| self.position(pointer))
    }
}

/// A parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub map: SourceMap,
}

/// Escapes one reference token for an RFC 6901 pointer.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `pointer` + `/` + escaped `token`.
pub fn join(pointer: &str, token: &str) -> String {
    let mut s = String::with_capacity(pointer.len() + token.len() + 1);
    s.push_str(pointer);
    s.push('/');
    s.push_str(&escape_token(token));
    s
}

fn diag(file: &Path, pos: Option<Pos>, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        pointer: String::new(),
        message,
    }
}

/// Parses JSON or YAML text. JSON is recognised by its first significant character (`{` or `[`)
/// and falls back to YAML when it is not valid JSON but is valid YAML flow syntax.
pub fn parse(file: &Path, text: &str) -> Result<Document, Vec<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.trim_start().chars().next();
    if matches!(first, Some('{') | Some('[')) {
        match parse_json(file, text) {
            Ok(doc) => return Ok(doc),
            Err(json_errs) => {
                // `{a: 1}` is YAML, not JSON: accept it if the YAML parser does.
                return parse_yaml(file, text).map_err(|_| json_errs);
            }
        }
    }
    parse_yaml(file, text)
}

// ---------------------------------------------------------------------------------------------
// JSON

fn parse_json(file: &Path, text: &str) -> Result<Document, Vec<Diagnostic>> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let pos = (e.line() > 0).then(|| Pos {
                line: e.line(),
                column: e.column().max(1),
            });
            let msg = strip_serde_position(&e.to_string());
            return Err(vec![diag(file, pos, format!("invalid JSON: {msg}"))]);
        }
    };
    let mut ix = JsonIndexer {
        bytes: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        map: SourceMap::default(),
        dups: Vec::new(),
    };
    ix.value(String::new(), None, 0);
    if !ix.dups.is_empty() {
        let errs = ix
            .dups
            .into_iter()
            .map(|(ptr, pos)| {
                let mut d = diag(
                    file,
                    Some(pos),
                    format!("duplicate key {:?} in object", last_token(&ptr)),
                );
                d.pointer = ptr;
                d
            })
            .collect();
        return Err(errs);
    }
    Ok(Document { value, map: ix.map })
}

fn strip_serde_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn last_token(ptr: &str) -> String {
    let t = ptr.rsplit('/').next().unwrap_or("");
    t.replace("~1", "/").replace("~0", "~")
}

/// Walks JSON text that serde_json already accepted, recording where every value starts.
struct JsonIndexer<'a> {
    bytes: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
    map: SourceMap,
    dups: Vec<(String, Pos)>,
}

impl JsonIndexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn bump(&mut self) {
        if let Some(&b) = self.bytes.get(self.i) {
            self.i += 1;
            if b == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                self.col += 1;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    /// Skips a string literal, returning its raw text (quotes included).
    fn string(&mut self) -> &str {
        let start = self.i;
        self.bump(); // opening quote
        while let Some(b) = self.peek() {
            match b {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => {
                    self.bump();
                    break;
                }
                _ => self.bump(),
            }
        }
        std::str::from_utf8(&self.bytes[start..self.i]).unwrap_or("\"\"")
    }

    fn value(&mut self, ptr: String, key: Option<Pos>, depth: usize) {
        self.ws();
        self.map.insert(ptr.clone(), key, self.pos());
        if depth > MAX_DEPTH {
            return;
        }
        match self.peek() {
            Some(b'{') => {
                self.bump();
                let mut seen = HashSet::new();
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b'}') => {
                            self.bump();
                            break;
                        }
                        Some(b',') => {
                            self.bump();
                            continue;
                        }
                        Some(b'"') => {}
                        _ => break,
                    }
                    let kpos = self.pos();
                    let raw = self.string().to_string();
                    let name: String = serde_json::from_str(&raw).unwrap_or_default();
                    let child = join(&ptr, &name);
                    if !seen.insert(name) {
                        self.dups.push((child.clone(), kpos));
                    }
                    self.ws();
                    if self.peek() == Some(b':') {
                        self.bump();
                    }
                    self.value(child, Some(kpos), depth + 1);
                }
            }
            Some(b'[') => {
                self.bump();
                let mut idx = 0usize;
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b']') | None => {
                            self.bump();
                            break;
                        }
                        Some(b',') => {
                            self.bump();
                            continue;
                        }
                        _ => {}
                    }
                    let before = self.i;
                    self.value(format!("{ptr}/{idx}"), None, depth + 1);
                    idx += 1;
                    if self.i == before {
                        self.bump(); // never loop without progress
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.bump();
                }
            }
            None => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// YAML

fn marker_pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

enum Frame {
    Seq {
        ptr: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        ptr: String,
        map: Map<String, Value>,
        anchor: usize,
        pending_key: Option<(String, Pos)>,
        keys: HashMap<String, Pos>,
    },
}

struct YamlBuilder<'f> {
    file: &'f Path,
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: BTreeMap<usize, Value>,
    alias_budget: usize,
    map: SourceMap,
    errors: Vec<Diagnostic>,
}

impl YamlBuilder<'_> {
    fn err(&mut self, pos: Pos, pointer: String, message: String) {
        let mut d = diag(self.file, Some(pos), message);
        d.pointer = pointer;
        self.errors.push(d);
    }

    /// Pointer (and key position) for the next value in the innermost collection, or `None` when
    /// the next scalar is a mapping key.
    fn next_slot(&self) -> Option<(String, Option<Pos>)> {
        match self.stack.last() {
            None => Some((String::new(), None)),
            Some(Frame::Seq { ptr, items, .. }) => Some((format!("{ptr}/{}", items.len()), None)),
            Some(Frame::Map {
                ptr, pending_key, ..
            }) => pending_key
                .as_ref()
                .map(|(k, kpos)| (join(ptr, k), Some(*kpos))),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    /// Stores a finished value in its parent (or as the root).
    fn push_value(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map {
                map, pending_key, ..
            }) => {
                if let Some((k, _)) = pending_key.take() {
                    map.insert(k, v);
                }
            }
        }
    }

    /// Records a mapping key (a duplicate is reported).
    fn push_key(&mut self, key: String, pos: Pos) {
        let mut dup: Option<(String, Pos)> = None;
        if let Some(Frame::Map {
            ptr,
            pending_key,
            keys,
            ..
        }) = self.stack.last_mut()
        {
            if let Some(first) = keys.get(&key) {
                dup = Some((join(ptr, &key), *first));
            } else {
                keys.insert(key.clone(), pos);
            }
            *pending_key = Some((key, pos));
        }
        if let Some((ptr, first)) = dup {
            let k = last_token(&ptr);
            self.err(
                pos,
                ptr,
                format!(
                    "duplicate key {k:?} in mapping (first defined at line {})",
                    first.line
                ),
            );
        }
    }

    fn start_collection(
        &mut self,
        anchor: usize,
        tag: Option<&saphyr_parser::Tag>,
        pos: Pos,
        is_map: bool,
    ) {
        let (ptr, kpos) = match self.next_slot() {
            Some(s) => s,
            None => {
                // A collection used as a mapping key.
                let ptr = match self.stack.last() {
                    Some(Frame::Map { ptr, .. }) => ptr.clone(),
                    _ => String::new(),
                };
                self.err(
                    pos,
                    ptr,
                    "complex (non-scalar) mapping keys are not supported".into(),
                );
                self.push_key(format!("<complex key at line {}>", pos.line), pos);
                self.next_slot().unwrap_or_default()
            }
        };
        if let Some(t) = tag {
            if !t.is_yaml_core_schema() {
                self.err(pos, ptr.clone(), format!("unsupported YAML tag {t} (tags such as CloudFormation's !Ref/!Sub are not resolved)"));
            }
        }
        if self.stack.len() >= MAX_DEPTH {
            self.err(
                pos,
                ptr.clone(),
                format!("document nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        self.map.insert(ptr.clone(), kpos, pos);
        self.stack.push(if is_map {
            Frame::Map {
                ptr,
                map: Map::new(),
                anchor,
                pending_key: None,
                keys: HashMap::new(),
            }
        } else {
            Frame::Seq {
                ptr,
                items: Vec::new(),
                anchor,
            }
        });
    }

    fn on_event(&mut self, ev: Event<'_>, span: Span) {
        let pos = marker_pos(&span);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = match resolve_scalar(&text, style, tag.as_deref()) {
                    Ok(v) => v,
                    Err(msg) => {
                        let ptr = self.next_slot().map(|s| s.0).unwrap_or_default();
                        self.err(pos, ptr, msg);
                        Value::Null
                    }
                };
                if self.expecting_key() {
                    let key = match &value {
                        Value::String(s) => s.clone(),
                        Value::Null => "null".to_string(),
                        other => other.to_string(),
                    };
                    self.push_key(key, pos);
                    return;
                }
                if let Some((ptr, kpos)) = self.next_slot() {
                    self.map.insert(ptr, kpos, pos);
                }
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.push_value(value);
            }
            Event::SequenceStart(anchor, tag) => {
                self.start_collection(anchor, tag.as_deref(), pos, false)
            }
            Event::MappingStart(anchor, tag) => {
                self.start_collection(anchor, tag.as_deref(), pos, true)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let (v, anchor) = match frame {
                        Frame::Seq { items, anchor, .. } => (Value::Array(items), anchor),
                        Frame::Map { map, anchor, .. } => (Value::Object(map), anchor),
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, v.clone());
                    }
                    self.push_value(v);
                }
            }
            Event::Alias(id) => {
                let value = match self.anchors.get(&id) {
                    Some(v) => {
                        let n = count_nodes(v);
                        if n > self.alias_budget {
                            let ptr = self.next_slot().map(|s| s.0).unwrap_or_default();
                            self.err(pos, ptr, "YAML alias expansion exceeds the node budget (possible \"billion laughs\" document)".into());
                            self.alias_budget = 0;
                            Value::Null
                        } else {
                            self.alias_budget -= n;
                            v.clone()
                        }
                    }
                    None => Value::Null,
                };
                if self.expecting_key() {
                    let key = match &value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    self.push_key(key, pos);
                    return;
                }
                if let Some((ptr, kpos)) = self.next_slot() {
                    self.map.insert(ptr, kpos, pos);
                }
                self.push_value(value);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => {}
        }
    }
}

fn count_nodes(v: &Value) -> usize {
    let mut n = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += 1;
        match v {
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    n
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&saphyr_parser::Tag>,
) -> Result<Value, String> {
    if let Some(t) = tag {
        if !t.is_yaml_core_schema() {
            return Err(format!("unsupported YAML tag {t} (tags such as CloudFormation's !Ref/!Sub are not resolved)"));
        }
    }
    if style != ScalarStyle::Plain && tag.is_none() {
        return Ok(Value::String(text.to_string()));
    }
    let cow_tag = tag.map(|t| std::borrow::Cow::Owned(t.clone()));
    let scalar = Scalar::parse_from_cow_and_metadata(text.into(), style, cow_tag.as_ref())
        .ok_or_else(|| format!("value {text:?} does not match its tag"))?;
    Ok(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(b),
        Scalar::Integer(i) => Value::Number(i.into()),
        Scalar::FloatingPoint(f) => match Number::from_f64(f.0) {
            Some(n) => Value::Number(n),
            None => return Err(format!("number {text:?} cannot be represented in JSON")),
        },
        Scalar::String(s) => Value::String(s.into_owned()),
    })
}

fn parse_yaml(file: &Path, text: &str) -> Result<Document, Vec<Diagnostic>> {
    let mut parser = Parser::new_from_str(text);
    let mut b = YamlBuilder {
        file,
        stack: Vec::new(),
        root: None,
        anchors: BTreeMap::new(),
        alias_budget: ALIAS_NODE_BUDGET,
        map: SourceMap::default(),
        errors: Vec::new(),
    };
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (ev, span) = match next {
            Ok(x) => x,
            Err(e) => {
                let m = e.marker();
                let pos = Pos {
                    line: m.line(),
                    column: m.col() + 1,
                };
                return Err(vec![diag(
                    file,
                    Some(pos),
                    format!("invalid YAML: {}", e.info()),
                )]);
            }
        };
        match &ev {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    let pos = marker_pos(&span);
                    return Err(vec![diag(
                        file,
                        Some(pos),
                        "expected a single YAML document, found several".into(),
                    )]);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                b.on_event(ev, span);
                if b.stack.len() > MAX_DEPTH {
                    return Err(b.errors);
                }
                continue;
            }
            Event::StreamEnd => break,
            _ => {}
        }
        b.on_event(ev, span);
        if b.alias_budget == 0 {
            return Err(b.errors);
        }
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    match b.root {
        Some(value) => Ok(Document { value, map: b.map }),
        None => Err(vec![diag(
            file,
            Some(Pos { line: 1, column: 1 }),
            "the document is empty".into(),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Document, Vec<Diagnostic>> {
        parse(Path::new("t"), text)
    }

    #[test]
    fn yaml_positions() {
        let d = p("a:\n  b: 1\n  c:\n    - x\n    - y: 2\n").unwrap();
        assert_eq!(
            d.value,
            serde_json::json!({"a": {"b": 1, "c": ["x", {"y": 2}]}})
        );
        assert_eq!(d.map.position("/a/b"), Some(Pos { line: 2, column: 3 }));
        assert_eq!(
            d.map.value_position("/a/b"),
            Some(Pos { line: 2, column: 6 })
        );
        assert_eq!(d.map.position("/a/c/1"), Some(Pos { line: 5, column: 7 }));
        assert_eq!(d.map.position("/a/c/1/y"), Some(Pos { line: 5, column: 7 }));
        assert_eq!(
            d.map.position("/a/missing"),
            Some(Pos { line: 1, column: 1 })
        );
    }

    #[test]
    fn json_positions() {
        let d = p("{\n  \"a\": {\"b/c\": [1, {\"d\": true}]}\n}").unwrap();
        assert_eq!(d.map.position("/a"), Some(Pos { line: 2, column: 3 }));
        assert_eq!(d.map.position("/a/b~1c"), Some(Pos { line: 2, column: 9 }));
        assert_eq!(
            d.map.position("/a/b~1c/1/d"),
            Some(Pos {
                line: 2,
                column: 21
            })
        );
    }

    #[test]
    fn yaml_scalars_and_keys() {
        let d = p("200: ok\n'x': \"1\"\ny: 1.5\nz: ~\nw: yes\n").unwrap();
        assert_eq!(
            d.value,
            serde_json::json!({"200": "ok", "x": "1", "y": 1.5, "z": null, "w": "yes"})
        );
    }

    #[test]
    fn duplicates_are_errors() {
        let e = p("a: 1\na: 2\n").unwrap_err();
        assert_eq!((e[0].line, e[0].column), (Some(2), Some(1)));
        let e = p("{\"a\": 1,\n \"a\": 2}").unwrap_err();
        assert_eq!((e[0].line, e[0].column), (Some(2), Some(2)));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = p("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e[0].line.is_some());
        let e = p("{\"a\": 1").unwrap_err();
        assert_eq!(e[0].line, Some(1));
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflow() {
        let deep = "[".repeat(100_000);
        assert!(p(&deep).is_err());
        let deep = "- ".repeat(10_000) + "x";
        assert!(p(&deep).is_err());
    }

    #[test]
    fn alias_bomb_is_rejected() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='k' {
            s.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = c;
        }
        assert!(p(&s).is_err());
    }

    #[test]
    fn aliases_and_flow_yaml() {
        let d = p("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(
            d.value,
            serde_json::json!({"a": {"k": "v"}, "b": {"k": "v"}})
        );
        let d = p("{a: 1}").unwrap();
        assert_eq!(d.value, serde_json::json!({"a": 1}));
    }

    #[test]
    fn tags_are_rejected() {
        assert!(p("a: !Ref x\n").is_err());
        let d = p("a: !!str 12\n").unwrap();
        assert_eq!(d.value, serde_json::json!({"a": "12"}));
    }
}
