//! The compiled form of a template.

/// Source position (byte offset; converted to 1-based line/column on error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos(pub u32);

/// Line-start table for converting byte offsets to 1-based line/column.
#[derive(Debug)]
pub(crate) struct LineIndex {
    src: Box<str>,
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(src: &str) -> LineIndex {
        let mut starts = vec![0];
        for (i, &c) in src.as_bytes().iter().enumerate() {
            if c == b'\n' {
                starts.push(i + 1);
            }
        }
        LineIndex {
            src: src.into(),
            starts,
        }
    }

    /// 1-based (line, column); the column counts characters.
    pub(crate) fn line_col(&self, off: usize) -> (usize, usize) {
        let line = match self.starts.binary_search(&off) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let mut end = off.min(self.src.len());
        while end > start && !self.src.is_char_boundary(end) {
            end -= 1;
        }
        let col = self
            .src
            .get(start..end)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (line + 1, col + 1)
    }
}

/// Index into the render-time variable table.
pub(crate) type Slot = u32;

/// Pre-assigned slots for the built-in references.
pub(crate) const SLOT_INPUT: Slot = 0;
pub(crate) const SLOT_UTIL: Slot = 1;
pub(crate) const SLOT_CONTEXT: Slot = 2;
pub(crate) const SLOT_STAGE_VARIABLES: Slot = 3;
pub(crate) const SLOT_FOREACH: Slot = 4;
pub(crate) const SLOT_VELOCITY_COUNT: Slot = 5;
pub(crate) const SLOT_VELOCITY_HAS_NEXT: Slot = 6;
pub(crate) const BUILTIN_NAMES: [&str; 7] = [
    "input",
    "util",
    "context",
    "stageVariables",
    "foreach",
    "velocityCount",
    "velocityHasNext",
];

#[derive(Debug)]
pub(crate) enum Node {
    Text(Box<str>),
    Ref(Box<RefExpr>),
    Set {
        target: Box<RefExpr>,
        value: Expr,
        pos: Pos,
    },
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    Foreach {
        var: Slot,
        iter: Expr,
        body: Vec<Node>,
        pos: Pos,
    },
    Break,
    Stop,
    Define {
        var: Slot,
        body: Vec<Node>,
    },
    MacroCall {
        name: Box<str>,
        args: Vec<Expr>,
        /// Source text of the call, rendered verbatim when no such macro exists.
        literal: Box<str>,
        pos: Pos,
    },
}

#[derive(Debug)]
pub(crate) struct RefExpr {
    pub root: Slot,
    pub parts: Vec<Access>,
    pub pos: Pos,
}

#[derive(Debug)]
pub(crate) enum Access {
    Prop(Box<str>),
    Method(Method, Vec<Expr>),
    Index(Expr),
}

#[derive(Debug)]
pub(crate) struct Method {
    pub id: MethodId,
}

/// Method names resolved at compile time (dispatch is a `match` on this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodId {
    // $util / $input
    EscapeJavaScript,
    ParseJson,
    UrlEncode,
    UrlDecode,
    Base64Encode,
    Base64Decode,
    Json,
    Path,
    Params,
    // common
    Get,
    Size,
    IsEmpty,
    ToString,
    Equals,
    HashCode,
    Contains,
    // strings
    Length,
    Substring,
    IndexOf,
    LastIndexOf,
    Replace,
    ReplaceAll,
    ReplaceFirst,
    Split,
    Trim,
    ToLowerCase,
    ToUpperCase,
    StartsWith,
    EndsWith,
    EqualsIgnoreCase,
    Matches,
    CharAt,
    Concat,
    CompareTo,
    CompareToIgnoreCase,
    // lists
    Add,
    AddAll,
    Remove,
    Set,
    Clear,
    SubList,
    // maps
    Put,
    PutAll,
    PutIfAbsent,
    ContainsKey,
    ContainsValue,
    KeySet,
    Values,
    EntrySet,
    GetOrDefault,
    GetKey,
    GetValue,
    // numbers / booleans
    IntValue,
    LongValue,
    DoubleValue,
    FloatValue,
    BooleanValue,
    // $foreach
    HasNext,
    IsFirst,
    IsLast,
    GetIndex,
    GetCount,
    GetHasNext,
    GetFirst,
    GetLast,
    GetParent,
    Other,
}

impl MethodId {
    pub(crate) fn from_name(n: &str) -> MethodId {
        use MethodId::*;
        match n {
            "escapeJavaScript" => EscapeJavaScript,
            "parseJson" => ParseJson,
            "urlEncode" => UrlEncode,
            "urlDecode" => UrlDecode,
            "base64Encode" => Base64Encode,
            "base64Decode" => Base64Decode,
            "json" => Json,
            "path" => Path,
            "params" => Params,
            "get" => Get,
            "size" => Size,
            "isEmpty" => IsEmpty,
            "toString" => ToString,
            "equals" => Equals,
            "hashCode" => HashCode,
            "contains" => Contains,
            "length" => Length,
            "substring" => Substring,
            "indexOf" => IndexOf,
            "lastIndexOf" => LastIndexOf,
            "replace" => Replace,
            "replaceAll" => ReplaceAll,
            "replaceFirst" => ReplaceFirst,
            "split" => Split,
            "trim" => Trim,
            "toLowerCase" => ToLowerCase,
            "toUpperCase" => ToUpperCase,
            "startsWith" => StartsWith,
            "endsWith" => EndsWith,
            "equalsIgnoreCase" => EqualsIgnoreCase,
            "matches" => Matches,
            "charAt" => CharAt,
            "concat" => Concat,
            "compareTo" => CompareTo,
            "compareToIgnoreCase" => CompareToIgnoreCase,
            "add" => Add,
            "addAll" => AddAll,
            "remove" => Remove,
            "set" => Set,
            "clear" => Clear,
            "subList" => SubList,
            "put" => Put,
            "putAll" => PutAll,
            "putIfAbsent" => PutIfAbsent,
            "containsKey" => ContainsKey,
            "containsValue" => ContainsValue,
            "keySet" => KeySet,
            "values" => Values,
            "entrySet" => EntrySet,
            "getOrDefault" => GetOrDefault,
            "getKey" => GetKey,
            "getValue" => GetValue,
            "intValue" => IntValue,
            "longValue" => LongValue,
            "doubleValue" => DoubleValue,
            "floatValue" => FloatValue,
            "booleanValue" => BooleanValue,
            "hasNext" => HasNext,
            "isFirst" => IsFirst,
            "isLast" => IsLast,
            "getIndex" => GetIndex,
            "getCount" => GetCount,
            "getHasNext" => GetHasNext,
            "getFirst" => GetFirst,
            "getLast" => GetLast,
            "getParent" => GetParent,
            _ => Other,
        }
    }

    /// Methods that modify their receiver (a borrowed JSON receiver is copied first).
    pub(crate) fn is_mutating(self) -> bool {
        use MethodId::*;
        matches!(
            self,
            Add | AddAll | Remove | Set | Clear | Put | PutAll | PutIfAbsent
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// Double-quoted string containing references or directives.
    Interp(Vec<Node>),
    Ref(Box<RefExpr>),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Range(Box<Expr>, Box<Expr>, Pos),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>, Pos),
}

#[derive(Debug)]
pub(crate) struct MacroDef {
    pub params: Vec<Slot>,
    pub body: Vec<Node>,
}
