//! Hand-written Velocity 1.7 parser producing the AST in `ast.rs`.
//!
//! Whitespace handling follows Velocity 1.7's lexer (the rules API Gateway shows):
//! * a directive's closing `)` eats `[ \t]*` + one newline when a newline follows
//!   (`#set`, `#if`, `#elseif`, `#foreach`, `#macro`, `#define`, macro calls);
//! * `#else` / `#end` eat `[ \t]*` + one newline when a newline follows;
//! * `#set` eats the spaces/tabs before it when they start a new text token (that is,
//!   when nothing but spaces/tabs separates it from the previous directive,
//!   reference, comment or the template start);
//! * `##` comments eat their newline.
//!
//! Everything else is output verbatim.

use crate::ast::*;
use crate::ParseError;
use std::collections::HashMap;

const MAX_NESTING: usize = 128;

pub(crate) struct Compiled {
    pub nodes: Vec<Node>,
    pub macros: HashMap<Box<str>, MacroDef>,
    pub n_slots: usize,
    pub lines: LineIndex,
    /// Bytes of literal text (an output size hint).
    pub text_bytes: usize,
}

pub(crate) fn compile(src: &str) -> Result<Compiled, ParseError> {
    let mut p = Parser::new(src);
    let (nodes, end) = p.block(BlockKind::Top)?;
    match end {
        BlockEnd::Eof => {}
        _ => return Err(p.err_at(p.pos, "unexpected directive")),
    }
    Ok(Compiled {
        nodes,
        macros: std::mem::take(&mut p.macros),
        n_slots: p.slot_names.len(),
        text_bytes: src.len(),
        lines: p.lines,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Top,
    /// Body of `#if` / `#elseif`: may end with `#elseif`, `#else` or `#end`.
    If,
    /// Any other block: ends with `#end`.
    Block,
    /// Interpolated string content: ends at `self.end`.
    Interp,
}

enum BlockEnd {
    Eof,
    End,
    Else,
    ElseIf(Expr),
}

struct Parser<'s> {
    src: &'s str,
    b: &'s [u8],
    pos: usize,
    end: usize,
    lines: LineIndex,
    slots: HashMap<String, Slot>,
    slot_names: Vec<String>,
    macros: HashMap<Box<str>, MacroDef>,
    depth: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'@'
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Self {
        let mut p = Parser {
            src,
            b: src.as_bytes(),
            pos: 0,
            end: src.len(),
            lines: LineIndex::new(src),
            slots: HashMap::new(),
            slot_names: Vec::new(),
            macros: HashMap::new(),
            depth: 0,
        };
        for name in BUILTIN_NAMES {
            p.slot(name);
        }
        p
    }

    fn slot(&mut self, name: &str) -> Slot {
        if let Some(&s) = self.slots.get(name) {
            return s;
        }
        let s = self.slot_names.len() as Slot;
        self.slots.insert(name.to_string(), s);
        self.slot_names.push(name.to_string());
        s
    }

    fn pos_of(&self, off: usize) -> Pos {
        Pos(off as u32)
    }

    fn err_at(&self, off: usize, msg: &str) -> ParseError {
        let (line, column) = self.lines.line_col(off);
        ParseError {
            line,
            column,
            message: msg.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        if self.pos < self.end {
            self.b.get(self.pos).copied()
        } else {
            None
        }
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        let i = self.pos + k;
        if i < self.end {
            self.b.get(i).copied()
        } else {
            None
        }
    }

    fn starts_with(&self, s: &str) -> bool {
        let e = self.pos + s.len();
        e <= self.end && self.b.get(self.pos..e) == Some(s.as_bytes())
    }

    fn slice(&self, a: usize, b: usize) -> &'s str {
        self.src.get(a..b).unwrap_or("")
    }

    fn enter(&mut self, off: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err_at(off, "template nested too deeply"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Eat `[ \t]*` followed by one newline, if a newline follows.
    fn gobble_newline(&mut self) {
        let mut i = self.pos;
        while i < self.end && matches!(self.b[i], b' ' | b'\t') {
            i += 1;
        }
        if i < self.end {
            match self.b[i] {
                b'\n' => self.pos = i + 1,
                b'\r' => {
                    self.pos = if i + 1 < self.end && self.b[i + 1] == b'\n' {
                        i + 2
                    } else {
                        i + 1
                    }
                }
                _ => {}
            }
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    // ------------------------------------------------------------------ text

    fn block(&mut self, kind: BlockKind) -> Result<(Vec<Node>, BlockEnd), ParseError> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut text = String::new();
        // Start of the current raw text token (for #set's leading-whitespace rule).
        let mut run_start = self.pos;

        fn flush(nodes: &mut Vec<Node>, text: &mut String) {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text).into_boxed_str()));
            }
        }

        loop {
            let start = self.pos;
            let mut i = start;
            while i < self.end && !matches!(self.b[i], b'$' | b'#' | b'\\') {
                i += 1;
            }
            text.push_str(self.slice(start, i));
            self.pos = i;
            if i >= self.end {
                flush(&mut nodes, &mut text);
                // Blocks report a missing #end at their opening directive.
                return Ok((nodes, BlockEnd::Eof));
            }
            match self.b[i] {
                b'\\' => {
                    let mut j = i;
                    while j < self.end && self.b[j] == b'\\' {
                        j += 1;
                    }
                    let n = j - i;
                    let next = if j < self.end { Some(self.b[j]) } else { None };
                    match next {
                        Some(b'$') => {
                            self.pos = j;
                            let save = self.pos;
                            match self.reference()? {
                                Some(r) => {
                                    for _ in 0..n / 2 {
                                        text.push('\\');
                                    }
                                    if n % 2 == 1 {
                                        text.push_str(self.slice(save, self.pos));
                                    } else {
                                        flush(&mut nodes, &mut text);
                                        nodes.push(Node::Ref(Box::new(r)));
                                    }
                                }
                                None => {
                                    self.pos = save;
                                    text.push_str(self.slice(i, j));
                                }
                            }
                        }
                        Some(b'#') if self.escaped_directive_len(j).is_some() => {
                            for _ in 0..n / 2 {
                                text.push('\\');
                            }
                            if n % 2 == 1 {
                                let len = self.escaped_directive_len(j).unwrap_or(1);
                                text.push_str(self.slice(j, j + len));
                                self.pos = j + len;
                            } else {
                                self.pos = j;
                            }
                        }
                        _ => {
                            text.push_str(self.slice(i, j));
                            self.pos = j;
                        }
                    }
                    run_start = self.pos;
                }
                b'$' => {
                    let save = self.pos;
                    match self.reference()? {
                        Some(r) => {
                            flush(&mut nodes, &mut text);
                            nodes.push(Node::Ref(Box::new(r)));
                        }
                        None => {
                            self.pos = save + 1;
                            text.push('$');
                        }
                    }
                    run_start = self.pos;
                }
                _ => {
                    // '#'
                    let hash = self.pos;
                    if self.starts_with("##") {
                        while let Some(c) = self.peek() {
                            self.pos += 1;
                            if c == b'\n' {
                                break;
                            }
                            if c == b'\r' {
                                if self.peek() == Some(b'\n') {
                                    self.pos += 1;
                                }
                                break;
                            }
                        }
                        run_start = self.pos;
                        continue;
                    }
                    if self.starts_with("#*") {
                        let body_start = self.pos + 2;
                        match find(self.b, b"*#", body_start, self.end) {
                            Some(e) => self.pos = e + 2,
                            None => return Err(self.err_at(hash, "unterminated #* comment")),
                        }
                        run_start = self.pos;
                        continue;
                    }
                    if self.starts_with("#[[") {
                        let body_start = self.pos + 3;
                        match find(self.b, b"]]#", body_start, self.end) {
                            Some(e) => {
                                text.push_str(self.slice(body_start, e));
                                self.pos = e + 3;
                            }
                            None => {
                                return Err(self.err_at(hash, "unterminated #[[ unparsed block"))
                            }
                        }
                        run_start = self.pos;
                        continue;
                    }
                    let Some((name, after)) = self.directive_word(hash) else {
                        text.push('#');
                        self.pos = hash + 1;
                        continue;
                    };
                    match name {
                        "set" => {
                            // `#set` must be followed by ` *(`.
                            let mut k = after;
                            while k < self.end && self.b[k] == b' ' {
                                k += 1;
                            }
                            if k >= self.end || self.b[k] != b'(' {
                                text.push_str(self.slice(hash, after));
                                self.pos = after;
                                continue;
                            }
                            // Leading spaces/tabs of a fresh text token are eaten.
                            if self.b[run_start..hash]
                                .iter()
                                .all(|&c| c == b' ' || c == b'\t')
                            {
                                let cut = hash - run_start;
                                let keep = text.len().saturating_sub(cut);
                                text.truncate(keep);
                            }
                            flush(&mut nodes, &mut text);
                            self.pos = k + 1;
                            let node = self.set_directive(hash)?;
                            nodes.push(node);
                        }
                        "if" => {
                            self.pos = after;
                            flush(&mut nodes, &mut text);
                            let node = self.if_directive(hash)?;
                            nodes.push(node);
                        }
                        "elseif" => {
                            if kind != BlockKind::If {
                                return Err(self.err_at(hash, "#elseif without matching #if"));
                            }
                            self.pos = after;
                            self.expect_lparen(hash, "#elseif")?;
                            let cond = self.expression()?;
                            self.close_directive(hash, "#elseif")?;
                            flush(&mut nodes, &mut text);
                            return Ok((nodes, BlockEnd::ElseIf(cond)));
                        }
                        "else" => {
                            if kind != BlockKind::If {
                                return Err(self.err_at(hash, "#else without matching #if"));
                            }
                            self.pos = after;
                            self.gobble_newline();
                            flush(&mut nodes, &mut text);
                            return Ok((nodes, BlockEnd::Else));
                        }
                        "end" => {
                            if matches!(kind, BlockKind::Top | BlockKind::Interp) {
                                return Err(
                                    self.err_at(hash, "#end without matching block directive")
                                );
                            }
                            self.pos = after;
                            self.gobble_newline();
                            flush(&mut nodes, &mut text);
                            return Ok((nodes, BlockEnd::End));
                        }
                        "foreach" => {
                            if !self.lparen_follows(after) {
                                text.push_str(self.slice(hash, after));
                                self.pos = after;
                                continue;
                            }
                            self.pos = after;
                            flush(&mut nodes, &mut text);
                            let node = self.foreach_directive(hash)?;
                            nodes.push(node);
                        }
                        "break" => {
                            self.pos = after;
                            if self.lparen_follows(after) {
                                self.expect_lparen(hash, "#break")?;
                                self.directive_args(hash)?;
                                self.gobble_newline();
                            }
                            flush(&mut nodes, &mut text);
                            nodes.push(Node::Break);
                        }
                        "stop" => {
                            self.pos = after;
                            flush(&mut nodes, &mut text);
                            nodes.push(Node::Stop);
                        }
                        "macro" => {
                            if !self.lparen_follows(after) {
                                return Err(self.err_at(
                                    hash,
                                    "a macro declaration requires at least a name argument",
                                ));
                            }
                            self.pos = after;
                            flush(&mut nodes, &mut text);
                            self.macro_directive(hash)?;
                        }
                        "define" => {
                            if !self.lparen_follows(after) {
                                text.push_str(self.slice(hash, after));
                                self.pos = after;
                                continue;
                            }
                            self.pos = after;
                            flush(&mut nodes, &mut text);
                            let node = self.define_directive(hash)?;
                            nodes.push(node);
                        }
                        _ => {
                            if name.starts_with('@') || !self.lparen_follows(after) {
                                text.push_str(self.slice(hash, after));
                                self.pos = after;
                                continue;
                            }
                            self.pos = after;
                            self.expect_lparen(hash, "macro call")?;
                            let args = self.directive_args(hash)?;
                            let literal = self.slice(hash, self.pos).into();
                            self.gobble_newline();
                            flush(&mut nodes, &mut text);
                            nodes.push(Node::MacroCall {
                                name: name.into(),
                                args,
                                literal,
                                pos: self.pos_of(hash),
                            });
                        }
                    }
                    run_start = self.pos;
                }
            }
        }
    }

    /// After `#` at `hash`: the directive word (`name` or `{name}`) and the offset after it.
    fn directive_word(&self, hash: usize) -> Option<(&'s str, usize)> {
        let mut i = hash + 1;
        let braced = i < self.end && self.b[i] == b'{';
        if braced {
            i += 1;
        }
        let ws = i;
        if i >= self.end || !(self.b[i].is_ascii_alphabetic() || matches!(self.b[i], b'_' | b'@')) {
            return None;
        }
        while i < self.end && is_word_char(self.b[i]) {
            i += 1;
        }
        let name = self.slice(ws, i);
        if braced {
            if i < self.end && self.b[i] == b'}' {
                i += 1;
            } else {
                return None;
            }
        }
        Some((name, i))
    }

    /// Length of `#word` / `#{word}` at `hash` if it is a directive that `\` can escape.
    fn escaped_directive_len(&self, hash: usize) -> Option<usize> {
        let (name, after) = self.directive_word(hash)?;
        match name {
            "set" | "if" | "elseif" | "else" | "end" | "foreach" | "break" | "stop" | "macro"
            | "define" => Some(after - hash),
            _ if self.macros.contains_key(name) => Some(after - hash),
            _ => None,
        }
    }

    fn lparen_follows(&self, mut i: usize) -> bool {
        while i < self.end && matches!(self.b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i < self.end && self.b[i] == b'('
    }

    fn expect_lparen(&mut self, at: usize, what: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err_at(at, &format!("{what} requires '(' after the directive name")))
        }
    }

    /// Expect `)` closing a directive, then apply the newline gobbling rule.
    fn close_directive(&mut self, at: usize, what: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek() == Some(b')') {
            self.pos += 1;
            self.gobble_newline();
            Ok(())
        } else {
            let here = self.pos;
            let _ = at;
            Err(self.err_at(here, &format!("expected ')' to close {what}")))
        }
    }

    fn set_directive(&mut self, hash: usize) -> Result<Node, ParseError> {
        self.skip_ws();
        let lhs_at = self.pos;
        if self.peek() != Some(b'$') {
            return Err(self.err_at(lhs_at, "#set requires a reference on the left-hand side"));
        }
        let Some(target) = self.reference()? else {
            return Err(self.err_at(lhs_at, "#set requires a reference on the left-hand side"));
        };
        if matches!(target.parts.last(), Some(Access::Method(..))) {
            return Err(self.err_at(lhs_at, "the left-hand side of #set cannot be a method call"));
        }
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Err(self.err_at(self.pos, "expected '=' in #set"));
        }
        self.pos += 1;
        let value = self.expression()?;
        self.close_directive(hash, "#set")?;
        Ok(Node::Set {
            target: Box::new(target),
            value,
            pos: self.pos_of(hash),
        })
    }

    fn if_directive(&mut self, hash: usize) -> Result<Node, ParseError> {
        self.enter(hash)?;
        self.expect_lparen(hash, "#if")?;
        let cond = self.expression()?;
        self.close_directive(hash, "#if")?;
        let mut branches = Vec::new();
        let mut cond = cond;
        let otherwise;
        loop {
            let (body, end) = self.block(BlockKind::If)?;
            branches.push((cond, body));
            match end {
                BlockEnd::End => {
                    otherwise = None;
                    break;
                }
                BlockEnd::ElseIf(c) => cond = c,
                BlockEnd::Else => {
                    let (body, end) = self.block(BlockKind::Block)?;
                    match end {
                        BlockEnd::End => {}
                        _ => return Err(self.err_at(hash, "missing #end for this #if")),
                    }
                    otherwise = Some(body);
                    break;
                }
                BlockEnd::Eof => return Err(self.err_at(hash, "missing #end for this #if")),
            }
        }
        self.leave();
        Ok(Node::If {
            branches,
            otherwise,
        })
    }

    fn foreach_directive(&mut self, hash: usize) -> Result<Node, ParseError> {
        self.enter(hash)?;
        self.expect_lparen(hash, "#foreach")?;
        self.skip_ws();
        let var_at = self.pos;
        let var = match self.reference()? {
            Some(r) if r.parts.is_empty() => r.root,
            _ => {
                return Err(self.err_at(
                    var_at,
                    "#foreach requires a simple reference as its loop variable",
                ))
            }
        };
        self.skip_ws();
        if !self.starts_with("in") || self.peek_at(2).is_some_and(is_ident_char) {
            return Err(self.err_at(self.pos, "expected 'in' in #foreach"));
        }
        self.pos += 2;
        let iter = self.expression()?;
        self.close_directive(hash, "#foreach")?;
        let (body, end) = self.block(BlockKind::Block)?;
        if !matches!(end, BlockEnd::End) {
            return Err(self.err_at(hash, "missing #end for #foreach"));
        }
        self.leave();
        Ok(Node::Foreach {
            var,
            iter,
            body,
            pos: self.pos_of(hash),
        })
    }

    fn macro_directive(&mut self, hash: usize) -> Result<(), ParseError> {
        self.enter(hash)?;
        self.expect_lparen(hash, "#macro")?;
        self.skip_ws();
        let name_at = self.pos;
        while let Some(c) = self.peek() {
            if is_word_char(c) || c == b'-' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let name = self.slice(name_at, self.pos);
        if name.is_empty() {
            return Err(self.err_at(name_at, "#macro requires a name as its first argument"));
        }
        let mut params = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b',') {
                self.pos += 1;
                self.skip_ws();
            }
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    self.gobble_newline();
                    break;
                }
                Some(b'$') => {
                    let at = self.pos;
                    match self.reference()? {
                        Some(r) if r.parts.is_empty() => params.push(r.root),
                        _ => {
                            return Err(
                                self.err_at(at, "macro parameters must be simple references")
                            )
                        }
                    }
                }
                _ => return Err(self.err_at(self.pos, "expected a $parameter or ')' in #macro")),
            }
        }
        let (body, end) = self.block(BlockKind::Block)?;
        if !matches!(end, BlockEnd::End) {
            return Err(self.err_at(hash, "missing #end for #macro"));
        }
        self.leave();
        self.macros.insert(name.into(), MacroDef { params, body });
        Ok(())
    }

    fn define_directive(&mut self, hash: usize) -> Result<Node, ParseError> {
        self.enter(hash)?;
        self.expect_lparen(hash, "#define")?;
        self.skip_ws();
        let at = self.pos;
        let var = match self.reference()? {
            Some(r) if r.parts.is_empty() => r.root,
            _ => return Err(self.err_at(at, "#define requires a simple reference")),
        };
        self.close_directive(hash, "#define")?;
        let (body, end) = self.block(BlockKind::Block)?;
        if !matches!(end, BlockEnd::End) {
            return Err(self.err_at(hash, "missing #end for #define"));
        }
        self.leave();
        Ok(Node::Define { var, body })
    }

    /// Arguments of a macro call / `#break(...)`: primaries separated by whitespace
    /// and/or commas, then `)` (newline gobbling is left to the caller).
    fn directive_args(&mut self, at: usize) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b',') {
                self.pos += 1;
                self.skip_ws();
            }
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    return Ok(args);
                }
                None => return Err(self.err_at(at, "unterminated directive arguments")),
                _ => {
                    let e = self.primary()?;
                    args.push(e);
                }
            }
        }
    }

    // ------------------------------------------------------------ references

    /// Parse a reference at `$`. `Ok(None)` (position restored) if the text there is
    /// not a reference (it is then literal text).
    fn reference(&mut self) -> Result<Option<RefExpr>, ParseError> {
        let start = self.pos;
        let at = self.pos_of(start);
        self.pos += 1; // '$'
        if self.peek() == Some(b'!') {
            self.pos += 1;
        }
        let braced = self.peek() == Some(b'{');
        if braced {
            self.pos += 1;
        }
        match self.peek() {
            Some(c) if is_ident_start(c) => {}
            _ => {
                self.pos = start;
                return Ok(None);
            }
        }
        let id_start = self.pos;
        while let Some(c) = self.peek() {
            if is_ident_char(c) {
                self.pos += 1;
            } else {
                break;
            }
        }
        let name = self.slice(id_start, self.pos);
        let root = self.slot(name);
        let mut parts = Vec::new();
        self.enter(start)?;
        loop {
            match self.peek() {
                Some(b'[') => {
                    let save = self.pos;
                    self.pos += 1;
                    let parsed = (|| -> Option<Expr> {
                        self.skip_ws();
                        let e = self.expression().ok()?;
                        self.skip_ws();
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            Some(e)
                        } else {
                            None
                        }
                    })();
                    match parsed {
                        Some(e) => parts.push(Access::Index(e)),
                        None => {
                            self.pos = save;
                            break;
                        }
                    }
                }
                Some(b'.') if self.peek_at(1).is_some_and(|c| c.is_ascii_alphabetic()) => {
                    self.pos += 1;
                    let s = self.pos;
                    while let Some(c) = self.peek() {
                        if is_ident_char(c) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                    let name = self.slice(s, self.pos);
                    if self.peek() == Some(b'(') {
                        let call_at = self.pos;
                        self.pos += 1;
                        let mut args = Vec::new();
                        self.skip_ws();
                        if self.peek() == Some(b')') {
                            self.pos += 1;
                        } else {
                            loop {
                                let e = self.expression()?;
                                args.push(e);
                                self.skip_ws();
                                match self.peek() {
                                    Some(b',') => {
                                        self.pos += 1;
                                    }
                                    Some(b')') => {
                                        self.pos += 1;
                                        break;
                                    }
                                    _ => {
                                        return Err(self.err_at(
                                            call_at,
                                            &format!(
                                                "expected ',' or ')' in arguments of .{name}()"
                                            ),
                                        ))
                                    }
                                }
                            }
                        }
                        parts.push(Access::Method(
                            Method {
                                id: MethodId::from_name(name),
                            },
                            args,
                        ));
                    } else {
                        parts.push(Access::Prop(name.into()));
                    }
                }
                _ => break,
            }
        }
        self.leave();
        if braced {
            if self.peek() == Some(b'}') {
                self.pos += 1;
            } else {
                self.pos = start;
                return Ok(None);
            }
        }
        Ok(Some(RefExpr {
            root,
            parts,
            pos: at,
        }))
    }

    // ----------------------------------------------------------- expressions

    fn expression(&mut self) -> Result<Expr, ParseError> {
        let at = self.pos;
        self.enter(at)?;
        let r = self.or_expr();
        self.leave();
        r
    }

    /// Try to match an operator (symbol or word form) after whitespace.
    fn op(&mut self, sym: &[&str], word: Option<&str>) -> bool {
        self.skip_ws();
        for s in sym {
            if self.starts_with(s) {
                // Don't take '=' of '==' for '<' etc.: callers order longest first.
                self.pos += s.len();
                return true;
            }
        }
        if let Some(w) = word {
            if self.starts_with(w) && !self.peek_at(w.len()).is_some_and(is_ident_char) {
                self.pos += w.len();
                return true;
            }
        }
        false
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        loop {
            let at = self.pos;
            if self.op(&["||"], Some("or")) {
                let right = self.and_expr()?;
                left = Expr::Bin(BinOp::Or, Box::new(left), Box::new(right), self.pos_of(at));
            } else {
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.eq_expr()?;
        loop {
            let at = self.pos;
            if self.op(&["&&"], Some("and")) {
                let right = self.eq_expr()?;
                left = Expr::Bin(BinOp::And, Box::new(left), Box::new(right), self.pos_of(at));
            } else {
                return Ok(left);
            }
        }
    }

    fn eq_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.rel_expr()?;
        loop {
            let at = self.pos;
            let op = if self.op(&["=="], Some("eq")) {
                BinOp::Eq
            } else if self.op(&["!="], Some("ne")) {
                BinOp::Ne
            } else {
                return Ok(left);
            };
            let right = self.rel_expr()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right), self.pos_of(at));
        }
    }

    fn rel_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.add_expr()?;
        loop {
            let at = self.pos;
            let op = if self.op(&["<="], Some("le")) {
                BinOp::Le
            } else if self.op(&[">="], Some("ge")) {
                BinOp::Ge
            } else if self.op(&["<"], Some("lt")) {
                BinOp::Lt
            } else if self.op(&[">"], Some("gt")) {
                BinOp::Gt
            } else {
                return Ok(left);
            };
            let right = self.add_expr()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right), self.pos_of(at));
        }
    }

    fn add_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.mul_expr()?;
        loop {
            let at = self.pos;
            let op = if self.op(&["+"], None) {
                BinOp::Add
            } else if self.op(&["-"], None) {
                BinOp::Sub
            } else {
                return Ok(left);
            };
            let right = self.mul_expr()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right), self.pos_of(at));
        }
    }

    fn mul_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let at = self.pos;
            let op = if self.op(&["*"], None) {
                BinOp::Mul
            } else if self.op(&["/"], None) {
                BinOp::Div
            } else if self.op(&["%"], None) {
                BinOp::Mod
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right), self.pos_of(at));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        if self.peek() == Some(b'!') && self.peek_at(1) != Some(b'=') {
            self.pos += 1;
            let at = self.pos;
            self.enter(at)?;
            let e = self.unary()?;
            self.leave();
            return Ok(Expr::Not(Box::new(e)));
        }
        if self.starts_with("not") && !self.peek_at(3).is_some_and(is_ident_char) {
            self.pos += 3;
            let at = self.pos;
            self.enter(at)?;
            let e = self.unary()?;
            self.leave();
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        let at = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.err_at(at, "unexpected end of template in expression"));
        };
        match c {
            b'$' => match self.reference()? {
                Some(r) => Ok(Expr::Ref(Box::new(r))),
                None => Err(self.err_at(at, "invalid reference")),
            },
            b'"' => self.string_literal(true),
            b'\'' => self.string_literal(false),
            b'0'..=b'9' => self.number(),
            b'-' if self
                .peek_at(1)
                .is_some_and(|d| d.is_ascii_digit() || d == b'.') =>
            {
                self.number()
            }
            b'.' if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => self.number(),
            b'(' => {
                self.pos += 1;
                let e = self.expression()?;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err(self.err_at(self.pos, "expected ')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            b'[' => {
                self.pos += 1;
                self.enter(at)?;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    self.leave();
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.expression()?;
                self.skip_ws();
                if self.starts_with("..") {
                    self.pos += 2;
                    let second = self.expression()?;
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.err_at(self.pos, "expected ']' to close range"));
                    }
                    self.pos += 1;
                    self.leave();
                    return Ok(Expr::Range(
                        Box::new(first),
                        Box::new(second),
                        self.pos_of(at),
                    ));
                }
                let mut items = vec![first];
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => {
                            self.pos += 1;
                            items.push(self.expression()?);
                        }
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.err_at(self.pos, "expected ',' or ']' in list")),
                    }
                }
                self.leave();
                Ok(Expr::List(items))
            }
            b'{' => {
                self.pos += 1;
                self.enter(at)?;
                let mut entries = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    self.leave();
                    return Ok(Expr::Map(entries));
                }
                loop {
                    let k = self.expression()?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err_at(self.pos, "expected ':' in map literal"));
                    }
                    self.pos += 1;
                    let v = self.expression()?;
                    entries.push((k, v));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            break;
                        }
                        _ => {
                            return Err(self.err_at(self.pos, "expected ',' or '}' in map literal"))
                        }
                    }
                }
                self.leave();
                Ok(Expr::Map(entries))
            }
            _ => {
                for (w, e) in [("true", true), ("false", false)] {
                    if self.starts_with(w) && !self.peek_at(w.len()).is_some_and(is_ident_char) {
                        self.pos += w.len();
                        return Ok(Expr::Bool(e));
                    }
                }
                if self.starts_with("null") && !self.peek_at(4).is_some_and(is_ident_char) {
                    self.pos += 4;
                    return Ok(Expr::Null);
                }
                Err(self.err_at(at, "unexpected character in expression"))
            }
        }
    }

    fn number(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let mut float = false;
        if self.peek() == Some(b'.') && self.peek_at(1) != Some(b'.') {
            float = true;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                float = true;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let t = self.slice(start, self.pos);
        if float {
            t.parse::<f64>()
                .map(Expr::Float)
                .map_err(|_| self.err_at(start, "invalid number"))
        } else {
            match t.parse::<i64>() {
                Ok(i) => Ok(Expr::Int(i)),
                Err(_) => t
                    .parse::<f64>()
                    .map(Expr::Float)
                    .map_err(|_| self.err_at(start, "invalid number")),
            }
        }
    }

    fn string_literal(&mut self, double: bool) -> Result<Expr, ParseError> {
        let q = if double { b'"' } else { b'\'' };
        let start = self.pos;
        self.pos += 1;
        let content_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err_at(start, "unterminated string literal")),
                Some(b'\\') if double => {
                    // `\x` never ends the string.
                    self.pos += if self.peek_at(1).is_some() { 2 } else { 1 };
                }
                Some(c) if c == q => break,
                Some(_) => self.pos += 1,
            }
        }
        let content_end = self.pos;
        self.pos += 1;
        let content = self.slice(content_start, content_end);
        if double && (content.contains('$') || content.contains('#')) {
            let save_end = self.end;
            let after = self.pos;
            self.pos = content_start;
            self.end = content_end;
            self.enter(start)?;
            let r = self.block(BlockKind::Interp);
            self.leave();
            self.end = save_end;
            self.pos = after;
            let (nodes, _) = r?;
            // A single text node is a constant.
            if let [Node::Text(t)] = nodes.as_slice() {
                return Ok(Expr::Str(t.clone()));
            }
            if nodes.is_empty() {
                return Ok(Expr::Str("".into()));
            }
            return Ok(Expr::Interp(nodes));
        }
        Ok(Expr::Str(unescape_unicode(content).into()))
    }
}

/// Velocity 1.7 processes `\uXXXX` escapes in string literals; other backslashes stay.
fn unescape_unicode(s: &str) -> String {
    if !s.contains("\\u") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 6);
        match hex
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
        {
            Some(ch) if hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())) => {
                out.push(ch);
                rest = &rest[i + 6..];
            }
            _ => {
                out.push_str("\\u");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn find(hay: &[u8], needle: &[u8], from: usize, end: usize) -> Option<usize> {
    let end = end.min(hay.len());
    if from >= end || needle.len() > end - from {
        return None;
    }
    (from..=end - needle.len()).find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}
