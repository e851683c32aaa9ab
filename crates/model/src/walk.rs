//! Diagnostics collection and typed accessors over `serde_json::Value` that report what is wrong
//! with a pointer and a position instead of failing.

use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Severity};
use crate::source::{join, SourceMap};

/// Collects diagnostics for one file.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub map: &'a SourceMap,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a Path, map: &'a SourceMap) -> Self {
        Ctx {
            file,
            map,
            diags: Vec::new(),
        }
    }

    pub fn push(&mut self, severity: Severity, pointer: &str, message: String) {
        let pos = self.map.position(pointer);
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            pointer: pointer.to_string(),
            message,
        });
    }

    pub fn error(&mut self, pointer: &str, message: impl Into<String>) {
        self.push(Severity::Error, pointer, message.into());
    }

    pub fn warn(&mut self, pointer: &str, message: impl Into<String>) {
        self.push(Severity::Warning, pointer, message.into());
    }

    // -- typed access ---------------------------------------------------------------------------

    pub fn obj<'v>(&mut self, v: &'v Value, ptr: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.error(ptr, format!("expected an object, got {}", kind(other)));
                None
            }
        }
    }

    pub fn arr<'v>(&mut self, v: &'v Value, ptr: &str) -> Option<&'v Vec<Value>> {
        match v {
            Value::Array(a) => Some(a),
            other => {
                self.error(ptr, format!("expected a list, got {}", kind(other)));
                None
            }
        }
    }

    pub fn str<'v>(&mut self, v: &'v Value, ptr: &str) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.error(ptr, format!("expected a string, got {}", kind(other)));
                None
            }
        }
    }

    /// A string, or a number/boolean written without quotes (YAML `statusCode: 200`).
    pub fn scalar_string(&mut self, v: &Value, ptr: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.error(ptr, format!("expected a string, got {}", kind(other)));
                None
            }
        }
    }

    pub fn bool(&mut self, v: &Value, ptr: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            other => {
                self.error(ptr, format!("expected true or false, got {}", kind(other)));
                None
            }
        }
    }

    /// A non-negative integer (numeric strings accepted).
    pub fn u64(&mut self, v: &Value, ptr: &str) -> Option<u64> {
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e19)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if n.is_none() {
            self.error(
                ptr,
                format!("expected a non-negative integer, got {}", describe(v)),
            );
        }
        n
    }

    /// A non-negative number (numeric strings accepted).
    pub fn f64(&mut self, v: &Value, ptr: &str) -> Option<f64> {
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|f| f.is_finite() && *f >= 0.0);
        if n.is_none() {
            self.error(
                ptr,
                format!("expected a non-negative number, got {}", describe(v)),
            );
        }
        n
    }

    /// A list of strings.
    pub fn str_list(&mut self, v: &Value, ptr: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = self.arr(v, ptr) {
            for (i, item) in a.iter().enumerate() {
                if let Some(s) = self.str(item, &format!("{ptr}/{i}")) {
                    out.push(s.to_string());
                }
            }
        }
        out
    }

    /// A map of strings, in document order.
    pub fn str_map(&mut self, v: &Value, ptr: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.obj(v, ptr) {
            for (k, item) in m {
                if let Some(s) = self.str(item, &join(ptr, k)) {
                    out.push((k.clone(), s.to_string()));
                }
            }
        }
        out
    }
}

/// "a string", "an object", ... for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Kind plus a short rendering of scalars.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(_) | Value::Bool(_) => format!("{} ({v})", kind(v)),
        _ => kind(v).to_string(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// ` (did you mean "x"?)` when a known name is close to `name`.
pub(crate) fn did_you_mean(name: &str, known: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}
