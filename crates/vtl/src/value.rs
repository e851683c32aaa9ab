//! Runtime values.

use crate::ast::Node;
use crate::doc::{DRef, Node as DNode};
use indexmap::IndexMap;
use serde_json::Value as J;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    Path,
    Querystring,
    Header,
}

/// A value during rendering. `'r` is the lifetime of one render: template, input and
/// the lazily parsed body are borrowed, never copied.
#[derive(Clone, Default)]
pub(crate) enum Value<'r> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    BStr(&'r str),
    /// A JSON array or object of the body document (scalars are converted).
    Doc(DRef<'r>),
    List(Rc<RefCell<ListObj<'r>>>),
    Map(Rc<RefCell<MapObj<'r>>>),
    Entry(Rc<(Value<'r>, Value<'r>)>),
    /// A `#define` block: rendered when used.
    Block(&'r [Node]),
    /// `$foreach`.
    Loop(Rc<LoopInfo>),
    Input,
    Util,
    Context,
    /// A JSON object inside `$context` (navigable, renders as empty text).
    CtxJson(&'r J),
    StageVars,
    Params,
    ParamSection(Section),
}

pub(crate) struct ListObj<'r> {
    pub items: Vec<Value<'r>>,
    /// Registered for cleanup at the end of the render (see `Eval::track`).
    pub tracked: bool,
    /// Renders as JSON (`[{"a":1}]`, JSON arrays from the body) rather than Java's
    /// `ArrayList.toString()` (`[a, b]`, VTL list literals).
    pub json: bool,
}

pub(crate) struct MapObj<'r> {
    pub map: IndexMap<String, Value<'r>>,
    /// Renders as empty text (maps inside `$context`).
    pub hidden: bool,
    /// Registered for cleanup at the end of the render (see `Eval::track`).
    pub tracked: bool,
}

pub(crate) struct LoopInfo {
    pub index: Cell<usize>,
    pub has_next: Cell<bool>,
    pub parent: Option<Rc<LoopInfo>>,
}

impl<'r> Value<'r> {
    pub(crate) fn str(s: &str) -> Value<'r> {
        Value::Str(Rc::from(s))
    }

    pub(crate) fn string(s: String) -> Value<'r> {
        Value::Str(Rc::from(s))
    }

    pub(crate) fn list(items: Vec<Value<'r>>, json: bool) -> Value<'r> {
        Value::List(Rc::new(RefCell::new(ListObj {
            items,
            json,
            tracked: false,
        })))
    }

    pub(crate) fn map(map: IndexMap<String, Value<'r>>, hidden: bool) -> Value<'r> {
        Value::Map(Rc::new(RefCell::new(MapObj {
            map,
            hidden,
            tracked: false,
        })))
    }

    /// A list, map or entry (something that can hold other values).
    pub(crate) fn is_container(&self) -> bool {
        matches!(self, Value::List(_) | Value::Map(_) | Value::Entry(_))
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// String content if this is a string value.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::BStr(s) => Some(s),
            _ => None,
        }
    }

    /// Velocity 1.7 truthiness: only `null` and `false` are false.
    pub(crate) fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// Convert a node of the body document (scalars become native values).
    pub(crate) fn from_doc(d: DRef<'r>) -> Value<'r> {
        match d.node() {
            DNode::Null => Value::Null,
            DNode::Bool(b) => Value::Bool(b),
            DNode::Int(i) => Value::Int(i),
            DNode::Float(f) => Value::Float(f),
            DNode::Str(_) => Value::BStr(d.str().unwrap_or("")),
            DNode::Arr { .. } | DNode::Obj { .. } => Value::Doc(d),
        }
    }

    /// Convert a value of `$context` / `$stageVariables` (objects stay borrowed and
    /// render as empty text; arrays are copied).
    pub(crate) fn from_serde(j: &'r J) -> Value<'r> {
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => num(n),
            J::String(s) => Value::BStr(s),
            J::Array(_) => Value::from_owned_json(j.clone()),
            J::Object(_) => Value::CtxJson(j),
        }
    }

    /// Deep-convert an owned JSON value (used for `$util.parseJson`).
    pub(crate) fn from_owned_json(j: J) -> Value<'r> {
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => num(&n),
            J::String(s) => Value::string(s),
            J::Array(a) => Value::list(a.into_iter().map(Value::from_owned_json).collect(), true),
            J::Object(o) => Value::map(
                o.into_iter()
                    .map(|(k, v)| (k, Value::from_owned_json(v)))
                    .collect(),
                false,
            ),
        }
    }

    /// One level of a body container as an owned container (children stay borrowed)
    /// so it can be modified.
    pub(crate) fn shallow_owned_doc(d: DRef<'r>) -> Value<'r> {
        let n = d.len();
        if d.is_array() {
            Value::list(
                (0..n)
                    .filter_map(|i| d.child(i))
                    .map(Value::from_doc)
                    .collect(),
                true,
            )
        } else if d.is_object() {
            Value::map(
                (0..n)
                    .filter_map(|i| Some((d.key(i)?.to_string(), Value::from_doc(d.child(i)?))))
                    .collect(),
                false,
            )
        } else {
            Value::from_doc(d)
        }
    }

    /// One level of a `$context` object as an owned (hidden) map.
    pub(crate) fn shallow_owned_ctx(j: &'r J) -> Value<'r> {
        match j {
            J::Object(o) => Value::map(
                o.iter()
                    .map(|(k, x)| (k.clone(), Value::from_serde(x)))
                    .collect(),
                true,
            ),
            other => Value::from_serde(other),
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub(crate) fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }
}

fn num<'r>(n: &serde_json::Number) -> Value<'r> {
    if let Some(i) = n.as_i64() {
        Value::Int(i)
    } else {
        Value::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// `out.push_str(s)` for the short pieces templates are made of: below 16 bytes each
/// length gets a constant-size copy (inlined moves) instead of a call to memcpy.
#[inline(always)]
pub(crate) fn push_short(out: &mut String, s: &str) {
    macro_rules! arms {
        ($($n:literal)*) => {
            match s.len() {
                $($n => out.push_str(s.get(..$n).unwrap_or("")),)*
                _ => out.push_str(s),
            }
        };
    }
    arms!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// Append `s` as a JSON string literal.
pub(crate) fn json_quote(s: &str, out: &mut String) {
    out.push('"');
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[last..i]);
        match rep {
            Some(r) => out.push_str(r),
            None => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        last = i + 1;
    }
    out.push_str(&s[last..]);
    out.push('"');
}
