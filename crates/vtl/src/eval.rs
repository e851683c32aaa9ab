//! The renderer: walks the AST over `Value`s and the API Gateway host objects.

use crate::ast::*;
use crate::doc::{DRef, Doc, Node as DNode};
use crate::java;
use crate::jsonpath::{CompiledPath, PathResult};
use crate::parser::Compiled;
use crate::value::*;
use crate::{Limits, Overrides, Params, RenderError, RenderInput, Rendered};
use indexmap::IndexMap;
use serde_json::Value as J;
use std::cell::{OnceCell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;

/// Nesting of evaluation (blocks, expressions, macro calls) beyond which rendering
/// stops with `RecursionLimit`, protecting the native stack.
const MAX_EVAL_NESTING: usize = 400;
/// Depth beyond which values are not converted to JSON (self-referencing maps).
const MAX_VALUE_DEPTH: usize = 64;
/// Compiled regexes kept per render.
const REGEX_CACHE: usize = 32;

/// Errors are boxed inside the renderer to keep `Result<Value, _>` small.
type R<T> = Result<T, Box<RenderError>>;

enum Flow {
    Normal,
    Break,
    Stop,
}

pub(crate) struct Eval<'r> {
    c: &'r Compiled,
    body: &'r str,
    params: &'r Params,
    context: &'r J,
    stage: &'r serde_json::Map<String, J>,
    body_json: &'r OnceCell<Option<Doc<'r>>>,
    limits: &'r Limits,
    vars: Vec<Value<'r>>,
    pub(crate) out: String,
    steps: u64,
    nesting: usize,
    macro_depth: usize,
    last_pos: Pos,
    /// `$context` entries created or replaced during rendering (requestOverride,
    /// responseOverride, anything `#set` on `$context`).
    overlay: Option<Rc<RefCell<MapObj<'r>>>>,
    regexes: Vec<(String, Rc<regex::Regex>)>,
    cur_loop: Option<Rc<LoopInfo>>,
    /// Containers that hold (or may come to hold) other containers. They are emptied
    /// when the render ends, which frees reference cycles a template built
    /// (`$m.put('self', $m)`) and keeps dropping deep structures non-recursive.
    arena: Vec<Value<'r>>,
}

impl Drop for Eval<'_> {
    fn drop(&mut self) {
        // The arena holds every container that can hold a container, so emptying
        // them one by one never recurses deeper than one level.
        for v in std::mem::take(&mut self.arena) {
            match &v {
                Value::List(l) => {
                    let items = std::mem::take(&mut l.borrow_mut().items);
                    drop(items);
                }
                Value::Map(m) => {
                    let map = std::mem::take(&mut m.borrow_mut().map);
                    drop(map);
                }
                _ => {}
            }
        }
    }
}

struct Args<'r> {
    buf: [Value<'r>; 4],
    extra: Vec<Value<'r>>,
    n: usize,
    null: Value<'r>,
}

impl<'r> Args<'r> {
    fn get(&self, i: usize) -> &Value<'r> {
        if i >= self.n {
            return &self.null;
        }
        if i < 4 {
            &self.buf[i]
        } else {
            self.extra.get(i - 4).unwrap_or(&self.null)
        }
    }
    fn take(&mut self, i: usize) -> Value<'r> {
        if i >= self.n {
            return Value::Null;
        }
        if i < 4 {
            std::mem::take(&mut self.buf[i])
        } else {
            self.extra
                .get_mut(i - 4)
                .map(std::mem::take)
                .unwrap_or_default()
        }
    }
}

impl<'r> Eval<'r> {
    pub(crate) fn new(
        c: &'r Compiled,
        input: &'r RenderInput<'r>,
        body_json: &'r OnceCell<Option<Doc<'r>>>,
        limits: &'r Limits,
    ) -> Eval<'r> {
        let mut vars = vec![Value::Null; c.n_slots.max(BUILTIN_NAMES.len())];
        vars[SLOT_INPUT as usize] = Value::Input;
        vars[SLOT_UTIL as usize] = Value::Util;
        vars[SLOT_CONTEXT as usize] = Value::Context;
        vars[SLOT_STAGE_VARIABLES as usize] = Value::StageVars;
        let context = input.context;
        Eval {
            c,
            body: input.body,
            params: input.params,
            context,
            stage: input.stage_variables,
            body_json,
            limits,
            vars,
            out: String::with_capacity(c.text_bytes + input.body.len().min(1 << 16) + 64),
            steps: 0,
            nesting: 0,
            macro_depth: 0,
            last_pos: Pos(0),
            overlay: None,
            regexes: Vec::new(),
            cur_loop: None,
            arena: Vec::new(),
        }
    }

    /// The `$context` overlay, created on first use with `requestOverride` /
    /// `responseOverride` (copied from the input context when present).
    fn ov(&mut self) -> Rc<RefCell<MapObj<'r>>> {
        if let Some(o) = &self.overlay {
            return o.clone();
        }
        let context = self.context;
        let mut overlay = IndexMap::new();
        let req = match context.get("requestOverride") {
            Some(j @ J::Object(_)) => deep_owned_hidden(j),
            _ => {
                let mut m = IndexMap::new();
                m.insert("path".to_string(), Value::map(IndexMap::new(), true));
                m.insert("header".to_string(), Value::map(IndexMap::new(), true));
                m.insert("querystring".to_string(), Value::map(IndexMap::new(), true));
                Value::map(m, true)
            }
        };
        let resp = match context.get("responseOverride") {
            Some(j @ J::Object(_)) => deep_owned_hidden(j),
            _ => {
                let mut m = IndexMap::new();
                m.insert("header".to_string(), Value::map(IndexMap::new(), true));
                Value::map(m, true)
            }
        };
        overlay.insert("requestOverride".to_string(), req);
        overlay.insert("responseOverride".to_string(), resp);
        let o = Rc::new(RefCell::new(MapObj {
            map: overlay,
            hidden: true,
            tracked: false,
        }));
        let ov = Value::Map(o.clone());
        self.track(&ov);
        self.overlay = Some(o.clone());
        o
    }

    /// Register a container for cleanup at the end of the render (see `arena`).
    fn track(&mut self, v: &Value<'r>) {
        let fresh = match v {
            Value::List(l) => !std::mem::replace(&mut l.borrow_mut().tracked, true),
            Value::Map(m) => !std::mem::replace(&mut m.borrow_mut().tracked, true),
            _ => false,
        };
        if fresh {
            self.arena.push(v.clone());
        }
    }

    /// A new list; tracked if any item is a container.
    fn new_list(&mut self, items: Vec<Value<'r>>, json: bool) -> Value<'r> {
        let nested = items.iter().any(Value::is_container);
        let v = Value::list(items, json);
        if nested {
            self.track(&v);
        }
        v
    }

    pub(crate) fn run_template(&mut self) -> Result<(), RenderError> {
        let c: &'r Compiled = self.c;
        match self.run(&c.nodes) {
            Ok(_) => Ok(()),
            Err(e) => Err(*e),
        }
    }

    pub(crate) fn finish(mut self) -> Rendered {
        let Some(overlay) = self.overlay.take() else {
            return Rendered {
                output: std::mem::take(&mut self.out),
                overrides: Overrides::default(),
                request_override: None,
                response_override: None,
            };
        };
        let overlay = overlay.borrow();
        let req = overlay
            .map
            .get("requestOverride")
            .cloned()
            .unwrap_or_default();
        let resp = overlay
            .map
            .get("responseOverride")
            .cloned()
            .unwrap_or_default();
        let mut ov = Overrides::default();
        if let Value::Map(m) = &req {
            let m = m.borrow();
            ov.request_header = multi_entries(m.map.get("header"));
            ov.request_querystring = multi_entries(m.map.get("querystring"));
            ov.request_path = multi_entries(m.map.get("path"))
                .into_iter()
                .filter_map(|(k, mut v)| v.pop().map(|v| (k, v)))
                .collect();
        }
        if let Value::Map(m) = &resp {
            let m = m.borrow();
            ov.response_header = multi_entries(m.map.get("header"));
            ov.response_status = m.map.get("status").and_then(status_of);
        }
        Rendered {
            output: std::mem::take(&mut self.out),
            overrides: ov,
            request_override: Some(to_json(&req)),
            response_override: Some(to_json(&resp)),
        }
    }

    // ------------------------------------------------------------- budget

    fn err_at(&self, pos: Pos, message: String) -> Box<RenderError> {
        let (line, column) = self.c.lines.line_col(pos.0 as usize);
        Box::new(RenderError::Runtime {
            line,
            column,
            message,
        })
    }

    #[inline]
    fn tick(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(self.step_error());
        }
        Ok(())
    }

    fn charge(&mut self, units: usize) -> R<()> {
        self.steps = self.steps.saturating_add((units / 16) as u64);
        if self.steps > self.limits.max_steps {
            return Err(self.step_error());
        }
        Ok(())
    }

    fn step_error(&self) -> Box<RenderError> {
        let (line, column) = self.c.lines.line_col(self.last_pos.0 as usize);
        Box::new(RenderError::StepLimit {
            limit: self.limits.max_steps,
            line,
            column,
        })
    }

    /// A string about to be built of `len` bytes must fit the output limit.
    fn check_size(&mut self, len: usize) -> R<()> {
        if len > self.limits.max_output_bytes {
            return Err(Box::new(RenderError::OutputLimit {
                limit: self.limits.max_output_bytes,
            }));
        }
        self.charge(len)
    }

    #[inline]
    fn check_out(&self) -> R<()> {
        if self.out.len() > self.limits.max_output_bytes {
            return Err(Box::new(RenderError::OutputLimit {
                limit: self.limits.max_output_bytes,
            }));
        }
        Ok(())
    }

    fn enter(&mut self, pos: Pos) -> R<()> {
        self.nesting += 1;
        if self.nesting > MAX_EVAL_NESTING {
            let (line, column) = self.c.lines.line_col(pos.0 as usize);
            return Err(Box::new(RenderError::RecursionLimit {
                limit: self.limits.max_recursion_depth,
                line,
                column,
            }));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    // ------------------------------------------------------------- nodes

    fn run(&mut self, nodes: &'r [Node]) -> R<Flow> {
        for node in nodes {
            self.tick()?;
            match node {
                Node::Text(t) => {
                    push_short(&mut self.out, t);
                    self.check_out()?;
                }
                Node::Ref(r) => {
                    self.last_pos = r.pos;
                    self.render_ref(r)?;
                }
                Node::Set { target, value, pos } => {
                    self.last_pos = *pos;
                    let v = self.expr(value)?;
                    self.assign(target, v)?;
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut taken = None;
                    for (cond, body) in branches {
                        if self.truthy(cond)? {
                            taken = Some(body);
                            break;
                        }
                    }
                    let body = match (taken, otherwise) {
                        (Some(b), _) => Some(b),
                        (None, Some(o)) => Some(o),
                        (None, None) => None,
                    };
                    if let Some(body) = body {
                        // A text-only branch (`#if($foreach.hasNext),#end`): same ticks
                        // and checks as running it, without the nested call.
                        if let [Node::Text(t)] = body.as_slice() {
                            if self.nesting < MAX_EVAL_NESTING {
                                self.tick()?;
                                push_short(&mut self.out, t);
                                self.check_out()?;
                                continue;
                            }
                        }
                        let pos = self.last_pos;
                        self.enter(pos)?;
                        let r = self.run(body);
                        self.leave();
                        match r? {
                            Flow::Normal => {}
                            f => return Ok(f),
                        }
                    }
                }
                Node::Foreach {
                    var,
                    iter,
                    body,
                    pos,
                } => {
                    self.last_pos = *pos;
                    self.enter(*pos)?;
                    let r = self.foreach(*var, iter, body, *pos);
                    self.leave();
                    if let Flow::Stop = r? {
                        return Ok(Flow::Stop);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Stop => return Ok(Flow::Stop),
                Node::Define { var, body } => {
                    self.vars[*var as usize] = Value::Block(body);
                }
                Node::MacroCall {
                    name,
                    args,
                    literal,
                    pos,
                } => {
                    self.last_pos = *pos;
                    if let Flow::Stop = self.call_macro(name, args, literal, *pos)? {
                        return Ok(Flow::Stop);
                    }
                }
            }
        }
        Ok(Flow::Normal)
    }

    /// `$var.a.b…` over the body document when every step is a member lookup that
    /// succeeds: the node reached, without building `Value`s. `None` means "take the
    /// general path" (which gives the same result for these chains; they have no
    /// side effects, so trying this first is safe).
    #[inline]
    fn doc_chain(&self, r: &RefExpr) -> Option<DRef<'r>> {
        let Some(Value::Doc(d)) = self.vars.get(r.root as usize) else {
            return None;
        };
        let mut d = *d;
        for p in &r.parts {
            match p {
                Access::Prop(name) => d = d.get(name)?,
                _ => return None,
            }
        }
        Some(d)
    }

    /// `expr(e)?.truthy()`, with `$foreach.x` and body values tested without building
    /// `Value`s.
    #[inline]
    fn truthy(&mut self, e: &'r Expr) -> R<bool> {
        if let Expr::Ref(r) = e {
            if let (Some(Value::Loop(l)), [Access::Prop(name)]) =
                (self.vars.get(r.root as usize), r.parts.as_slice())
            {
                return Ok(match &**name {
                    "hasNext" => l.has_next.get(),
                    "last" => !l.has_next.get(),
                    "first" => l.index.get() == 0,
                    _ => loop_prop(l, name).truthy(),
                });
            }
            if let Some(d) = self.doc_chain(r) {
                return Ok(!matches!(d.node(), DNode::Null | DNode::Bool(false)));
            }
        }
        Ok(self.expr(e)?.truthy())
    }

    fn render_ref(&mut self, r: &'r RefExpr) -> R<()> {
        // Fast path: body values render straight into the output.
        if let Some(d) = self.doc_chain(r) {
            match d.node() {
                DNode::Null => {}
                DNode::Str(_) => push_short(&mut self.out, d.str().unwrap_or("")),
                DNode::Int(i) => java::fmt_int(i, &mut self.out),
                // As `write` → `fmt` does it (one step), without the detour through
                // a `Value` and a moved-out output buffer.
                DNode::Float(f) => {
                    self.tick()?;
                    java::fmt_double(f, &mut self.out);
                }
                DNode::Bool(b) => {
                    self.tick()?;
                    self.out.push_str(if b { "true" } else { "false" });
                }
                _ => return self.write(&Value::from_doc(d)),
            }
            return self.check_out();
        }
        // Fast path: $util.escapeJavaScript(x) writes straight into the output.
        if r.root == SLOT_UTIL && r.parts.len() == 1 {
            if let (Value::Util, Access::Method(m, args)) =
                (&self.vars[SLOT_UTIL as usize], &r.parts[0])
            {
                if m.id == MethodId::EscapeJavaScript && args.len() == 1 {
                    if let Expr::Ref(ar) = &args[0] {
                        if let Some(s) = self.doc_chain(ar).and_then(DRef::str) {
                            java::escape_javascript(s, &mut self.out);
                            return self.check_out();
                        }
                    }
                    let v = self.expr(&args[0])?;
                    match v.as_str() {
                        Some(s) => java::escape_javascript(s, &mut self.out),
                        None if v.is_null() => {}
                        None => {
                            let s = self.stringify(&v)?;
                            java::escape_javascript(&s, &mut self.out);
                        }
                    }
                    return self.check_out();
                }
            }
        }
        let v = self.eval_ref(r)?;
        self.write(&v)
    }

    fn write(&mut self, v: &Value<'r>) -> R<()> {
        match v {
            Value::Null => {}
            Value::BStr(s) => self.out.push_str(s),
            Value::Str(s) => self.out.push_str(s),
            Value::Int(i) => {
                java::fmt_int(*i, &mut self.out);
            }
            _ => {
                let mut buf = std::mem::take(&mut self.out);
                let r = self.fmt(v, &mut buf, false);
                self.out = buf;
                r?;
            }
        }
        self.check_out()
    }

    fn foreach(&mut self, var: Slot, iter: &'r Expr, body: &'r [Node], pos: Pos) -> R<Flow> {
        let src = match iter {
            Expr::Range(a, b, _) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                match (to_int(&a), to_int(&b)) {
                    (Some(a), Some(b)) => return self.foreach_range(var, a, b, body, pos),
                    _ => return Ok(Flow::Normal),
                }
            }
            _ => self.expr(iter)?,
        };
        self.foreach_value(var, src, None, body, pos)
    }

    fn foreach_range(&mut self, var: Slot, a: i64, b: i64, body: &'r [Node], pos: Pos) -> R<Flow> {
        self.foreach_value(var, Value::Null, Some((a, b)), body, pos)
    }

    fn foreach_value(
        &mut self,
        var: Slot,
        src: Value<'r>,
        range: Option<(i64, i64)>,
        body: &'r [Node],
        pos: Pos,
    ) -> R<Flow> {
        enum It<'r> {
            Doc(DRef<'r>),
            CtxRefs(Vec<&'r J>),
            List(Rc<RefCell<ListObj<'r>>>),
            Vals(Vec<Value<'r>>),
            Range(i64, i64),
            None,
        }
        let it = match &src {
            _ if range.is_some() => match range {
                Some((a, b)) => It::Range(a, b),
                None => It::None,
            },
            Value::Doc(d) => It::Doc(*d),
            Value::CtxJson(J::Object(o)) => It::CtxRefs(o.values().collect()),
            Value::List(l) => It::List(l.clone()),
            Value::Map(m) => It::Vals(m.borrow().map.values().cloned().collect()),
            Value::Context | Value::StageVars | Value::Params | Value::ParamSection(_) => {
                It::Vals(self.map_values(&src))
            }
            _ => It::None,
        };
        let it = match it {
            It::None => match src {
                Value::Entry(_) | Value::Null => return Ok(Flow::Normal),
                _ => return Ok(Flow::Normal),
            },
            other => other,
        };
        let len_hint = |it: &It<'r>| -> Option<usize> {
            match it {
                It::Doc(d) => Some(d.len()),
                It::CtxRefs(v) => Some(v.len()),
                It::Vals(v) => Some(v.len()),
                It::List(l) => Some(l.borrow().items.len()),
                It::Range(a, b) => Some((a.abs_diff(*b) as usize).saturating_add(1)),
                It::None => Some(0),
            }
        };
        let saved_var = std::mem::take(&mut self.vars[var as usize]);
        let saved_foreach = std::mem::take(&mut self.vars[SLOT_FOREACH as usize]);
        let saved_count = std::mem::take(&mut self.vars[SLOT_VELOCITY_COUNT as usize]);
        let saved_has_next = std::mem::take(&mut self.vars[SLOT_VELOCITY_HAS_NEXT as usize]);
        let info = Rc::new(LoopInfo {
            index: std::cell::Cell::new(0),
            has_next: std::cell::Cell::new(false),
            parent: self.cur_loop.clone(),
        });
        let saved_loop = self.cur_loop.replace(info.clone());
        self.vars[SLOT_FOREACH as usize] = Value::Loop(info.clone());
        let mut result = Ok(Flow::Normal);
        let mut i = 0usize;
        loop {
            let len = len_hint(&it).unwrap_or(0);
            if i >= len {
                break;
            }
            if i >= self.limits.max_loop_iterations {
                let (line, column) = self.c.lines.line_col(pos.0 as usize);
                result = Err(Box::new(RenderError::LoopLimit {
                    limit: self.limits.max_loop_iterations,
                    line,
                    column,
                }));
                break;
            }
            if let Err(e) = self.tick() {
                result = Err(e);
                break;
            }
            let has_next = i + 1 < len;
            // Body containers replace the previous item's DRef in place: building a
            // whole `Value` and moving it costs a store-forwarding stall per iteration.
            let in_place = match (&it, &mut self.vars[var as usize]) {
                (It::Doc(d), Value::Doc(slot)) => match d.child(i) {
                    Some(c) if matches!(c.node(), DNode::Arr { .. } | DNode::Obj { .. }) => {
                        *slot = c;
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            if !in_place {
                let item = match &it {
                    It::Doc(d) => d.child(i).map(Value::from_doc).unwrap_or_default(),
                    It::CtxRefs(v) => v.get(i).map(|j| Value::from_serde(j)).unwrap_or_default(),
                    It::Vals(v) => v.get(i).cloned().unwrap_or_default(),
                    It::List(l) => l.borrow().items.get(i).cloned().unwrap_or_default(),
                    It::Range(a, b) => {
                        let off = i as i64;
                        Value::Int(if a <= b { a + off } else { a - off })
                    }
                    It::None => Value::Null,
                };
                self.vars[var as usize] = item;
            }
            info.index.set(i);
            info.has_next.set(has_next);
            self.loop_counters(i, has_next);
            match self.run(body) {
                Ok(Flow::Normal) => {}
                Ok(Flow::Break) => break,
                Ok(Flow::Stop) => {
                    result = Ok(Flow::Stop);
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            i += 1;
        }
        self.cur_loop = saved_loop;
        self.vars[var as usize] = saved_var;
        self.vars[SLOT_FOREACH as usize] = saved_foreach;
        self.vars[SLOT_VELOCITY_COUNT as usize] = saved_count;
        self.vars[SLOT_VELOCITY_HAS_NEXT as usize] = saved_has_next;
        result
    }

    /// `$velocityCount` / `$velocityHasNext` for iteration `i`, updated in place when
    /// they still hold the previous iteration's values.
    #[inline]
    fn loop_counters(&mut self, i: usize, has_next: bool) {
        let count = i as i64 + 1;
        match &mut self.vars[SLOT_VELOCITY_COUNT as usize] {
            Value::Int(x) => *x = count,
            other => *other = Value::Int(count),
        }
        match &mut self.vars[SLOT_VELOCITY_HAS_NEXT as usize] {
            Value::Bool(x) => *x = has_next,
            other => *other = Value::Bool(has_next),
        }
    }

    fn call_macro(&mut self, name: &str, args: &'r [Expr], literal: &'r str, pos: Pos) -> R<Flow> {
        let c: &'r Compiled = self.c;
        let Some(def) = c.macros.get(name) else {
            self.out.push_str(literal);
            self.check_out()?;
            return Ok(Flow::Normal);
        };
        if self.macro_depth >= self.limits.max_recursion_depth {
            let (line, column) = self.c.lines.line_col(pos.0 as usize);
            return Err(Box::new(RenderError::RecursionLimit {
                limit: self.limits.max_recursion_depth,
                line,
                column,
            }));
        }
        let mut values = Vec::with_capacity(args.len());
        for a in args {
            values.push(self.expr(a)?);
        }
        let mut saved = Vec::with_capacity(def.params.len());
        for (i, slot) in def.params.iter().enumerate() {
            let v = values.get(i).cloned().unwrap_or_default();
            saved.push(std::mem::replace(&mut self.vars[*slot as usize], v));
        }
        self.macro_depth += 1;
        let r = self.enter(pos).and_then(|_| self.run(&def.body));
        self.leave();
        self.macro_depth -= 1;
        for (slot, v) in def.params.iter().zip(saved).rev() {
            self.vars[*slot as usize] = v;
        }
        match r? {
            Flow::Stop => Ok(Flow::Stop),
            _ => Ok(Flow::Normal),
        }
    }

    // ------------------------------------------------------------- #set

    fn assign(&mut self, target: &'r RefExpr, v: Value<'r>) -> R<()> {
        // Velocity 1.7 (directive.set.null.allowed=false): a null RHS leaves the
        // target unchanged.
        if v.is_null() {
            return Ok(());
        }
        let Some((last, prefix)) = target.parts.split_last() else {
            self.vars[target.root as usize] = v;
            return Ok(());
        };
        let parent = self.materialize(target, prefix.len())?;
        let key = match last {
            Access::Prop(name) => Value::BStr(name),
            Access::Index(e) => self.expr(e)?,
            Access::Method(..) => return Ok(()),
        };
        self.put_into(&parent, key, v)
    }

    fn put_into(&mut self, parent: &Value<'r>, key: Value<'r>, v: Value<'r>) -> R<()> {
        self.track(parent);
        match parent {
            Value::Map(m) => {
                let k = self.key_string(&key)?;
                m.borrow_mut().map.insert(k, v);
            }
            Value::Context => {
                let k = self.key_string(&key)?;
                self.ov().borrow_mut().map.insert(k, v);
            }
            Value::List(l) => {
                if let Value::Int(i) = key {
                    let mut l = l.borrow_mut();
                    let len = l.items.len() as i64;
                    let idx = if i < 0 { len + i } else { i };
                    if idx >= 0 && idx < len {
                        l.items[idx as usize] = v;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Evaluate `target.root` + `target.parts[..n]`, turning borrowed JSON containers
    /// on the way into owned ones (stored back into their parents) so that the result
    /// can be modified in place.
    fn materialize(&mut self, target: &'r RefExpr, n: usize) -> R<Value<'r>> {
        let root = target.root as usize;
        let mut cur = match &self.vars[root] {
            Value::Doc(d) => {
                let owned = Value::shallow_owned_doc(*d);
                self.vars[root] = owned.clone();
                owned
            }
            Value::CtxJson(j) => {
                let owned = Value::shallow_owned_ctx(j);
                self.vars[root] = owned.clone();
                owned
            }
            other => other.clone(),
        };
        for part in target.parts.iter().take(n) {
            self.tick()?;
            cur = match part {
                Access::Prop(name) => self.child_for_write(&cur, Value::BStr(name))?,
                Access::Index(e) => {
                    let k = self.expr(e)?;
                    self.child_for_write(&cur, k)?
                }
                Access::Method(m, args) => {
                    let a = self.eval_args(args)?;
                    self.call(cur, m, a, target.pos)?
                }
            };
        }
        Ok(cur)
    }

    fn child_for_write(&mut self, parent: &Value<'r>, key: Value<'r>) -> R<Value<'r>> {
        match parent {
            Value::Map(m) => {
                let k = self.key_string(&key)?;
                let child = m.borrow().map.get(&k).cloned().unwrap_or_default();
                let owned = match child {
                    Value::Doc(d) => Value::shallow_owned_doc(d),
                    Value::CtxJson(j) => Value::shallow_owned_ctx(j),
                    other => return Ok(other),
                };
                m.borrow_mut().map.insert(k, owned.clone());
                self.track(parent);
                Ok(owned)
            }
            Value::List(l) => {
                let Value::Int(i) = key else {
                    return Ok(Value::Null);
                };
                let len = l.borrow().items.len() as i64;
                let idx = if i < 0 { len + i } else { i };
                if idx < 0 || idx >= len {
                    return Ok(Value::Null);
                }
                let child = l.borrow().items[idx as usize].clone();
                let owned = match child {
                    Value::Doc(d) => Value::shallow_owned_doc(d),
                    Value::CtxJson(j) => Value::shallow_owned_ctx(j),
                    other => return Ok(other),
                };
                l.borrow_mut().items[idx as usize] = owned.clone();
                self.track(parent);
                Ok(owned)
            }
            Value::Context => {
                let k = self.key_string(&key)?;
                if let Some(v) = self.ov().borrow().map.get(&k) {
                    return Ok(v.clone());
                }
                match self.context.get(k.as_str()) {
                    Some(j @ J::Object(_)) => {
                        let owned = Value::shallow_owned_ctx(j);
                        self.ov().borrow_mut().map.insert(k, owned.clone());
                        Ok(owned)
                    }
                    Some(j) => Ok(Value::from_serde(j)),
                    None => Ok(Value::Null),
                }
            }
            other => self.index(other, &key),
        }
    }

    // ------------------------------------------------------------- references

    fn eval_ref(&mut self, r: &'r RefExpr) -> R<Value<'r>> {
        // `$input.params('name')`: what `call` → `input_call` does, without `Args`.
        if let (Some(Value::Input), [Access::Method(m, args)]) =
            (self.vars.get(r.root as usize), r.parts.as_slice())
        {
            if let (MethodId::Params, [Expr::Str(name)]) = (m.id, args.as_slice()) {
                self.tick()?;
                return Ok(Value::BStr(self.input_param(name)));
            }
        }
        let n = r.parts.len();
        // Common first step without cloning the root value.
        let (mut cur, skip) = match (&self.vars[r.root as usize], r.parts.first()) {
            (Value::Doc(d), Some(Access::Prop(name))) => {
                let d = *d;
                (self.doc_prop(d, name), 1)
            }
            (Value::Loop(l), Some(Access::Prop(name))) => (loop_prop(l, name), 1),
            (root, _) => (root.clone(), 0),
        };
        if skip == 1 && cur.is_null() {
            return Ok(Value::Null);
        }
        for (i, part) in r.parts.iter().enumerate().skip(skip) {
            cur = match part {
                Access::Prop(name) => self.prop(&cur, name),
                Access::Index(e) => {
                    let k = self.expr(e)?;
                    self.index(&cur, &k)?
                }
                Access::Method(m, args) => {
                    if m.id.is_mutating() && matches!(cur, Value::Doc(_) | Value::CtxJson(_)) {
                        let prefix_ok = r.parts[..i]
                            .iter()
                            .all(|p| !matches!(p, Access::Method(..)));
                        if prefix_ok {
                            cur = self.materialize(r, i)?;
                        } else if let Value::Doc(d) = cur {
                            cur = Value::shallow_owned_doc(d);
                        }
                    }
                    let a = self.eval_args(args)?;
                    self.call(cur, m, a, r.pos)?
                }
            };
            if cur.is_null() && i + 1 < n {
                // Null anywhere in the chain renders as empty (API Gateway quirk).
                return Ok(Value::Null);
            }
        }
        Ok(cur)
    }

    fn eval_args(&mut self, args: &'r [Expr]) -> R<Args<'r>> {
        let mut a = Args {
            buf: Default::default(),
            extra: Vec::new(),
            n: args.len(),
            null: Value::Null,
        };
        for (i, e) in args.iter().enumerate() {
            let v = self.expr(e)?;
            if i < 4 {
                a.buf[i] = v;
            } else {
                a.extra.push(v);
            }
        }
        Ok(a)
    }

    fn body_json(&self) -> Option<&'r Doc<'r>> {
        let body = self.body;
        self.body_json
            .get_or_init(|| {
                if body.trim().is_empty() {
                    Some(Doc::empty_object())
                } else {
                    Doc::parse(body)
                }
            })
            .as_ref()
    }

    fn input_body(&self) -> Value<'r> {
        if self.body.is_empty() {
            Value::BStr("{}")
        } else {
            Value::BStr(self.body)
        }
    }

    #[inline]
    fn doc_prop(&self, d: DRef<'r>, name: &str) -> Value<'r> {
        match d.get(name) {
            Some(c) => Value::from_doc(c),
            None if name == "empty" && d.is_array() => Value::Bool(d.len() == 0),
            None => Value::Null,
        }
    }

    fn prop(&mut self, base: &Value<'r>, name: &str) -> Value<'r> {
        match base {
            Value::Null => Value::Null,
            Value::Doc(d) => self.doc_prop(*d, name),
            Value::CtxJson(J::Object(o)) => o.get(name).map(Value::from_serde).unwrap_or_default(),
            Value::Map(m) => m.borrow().map.get(name).cloned().unwrap_or_default(),
            Value::List(l) if name == "empty" => Value::Bool(l.borrow().items.is_empty()),
            Value::Str(_) | Value::BStr(_) if name == "empty" => {
                Value::Bool(base.as_str().is_some_and(str::is_empty))
            }
            Value::Entry(e) => match name {
                "key" => e.0.clone(),
                "value" => e.1.clone(),
                _ => Value::Null,
            },
            Value::Loop(l) => loop_prop(l, name),
            Value::Input => match name {
                "body" => self.input_body(),
                _ => Value::Null,
            },
            Value::Context => self.context_get(name),
            Value::StageVars => self
                .stage
                .get(name)
                .map(Value::from_serde)
                .unwrap_or_default(),
            Value::Params => match name {
                "path" => Value::ParamSection(Section::Path),
                "querystring" => Value::ParamSection(Section::Querystring),
                "header" => Value::ParamSection(Section::Header),
                _ => Value::Null,
            },
            Value::ParamSection(s) => self.param_in(*s, name).map(Value::BStr).unwrap_or_default(),
            _ => Value::Null,
        }
    }

    fn context_get(&mut self, name: &str) -> Value<'r> {
        if self.overlay.is_some() || matches!(name, "requestOverride" | "responseOverride") {
            if let Some(v) = self.ov().borrow().map.get(name) {
                return v.clone();
            }
        }
        self.context
            .get(name)
            .map(Value::from_serde)
            .unwrap_or_default()
    }

    fn section(&self, s: Section) -> &'r [(String, String)] {
        let p: &'r Params = self.params;
        match s {
            Section::Path => &p.path,
            Section::Querystring => &p.querystring,
            Section::Header => &p.header,
        }
    }

    /// Last value of `name` in a parameter section (exact, case-sensitive match).
    fn param_in(&self, s: Section, name: &str) -> Option<&'r str> {
        self.section(s)
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `$input.params(name)`: path, then query string, then header ("" if absent).
    fn input_param(&self, name: &str) -> &'r str {
        self.param_in(Section::Path, name)
            .or_else(|| self.param_in(Section::Querystring, name))
            .or_else(|| self.param_in(Section::Header, name))
            .or_else(|| {
                self.section(Section::Header)
                    .iter()
                    .rev()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            })
            .unwrap_or("")
    }

    fn index(&mut self, base: &Value<'r>, key: &Value<'r>) -> R<Value<'r>> {
        match (base, key) {
            (Value::Null, _) => Ok(Value::Null),
            (Value::Doc(d), Value::Int(i)) if d.is_array() => Ok(list_idx(d.len(), *i)
                .and_then(|i| d.child(i))
                .map(Value::from_doc)
                .unwrap_or_default()),
            (Value::List(l), Value::Int(i)) => {
                let l = l.borrow();
                Ok(list_idx(l.items.len(), *i)
                    .and_then(|i| l.items.get(i))
                    .cloned()
                    .unwrap_or_default())
            }
            (Value::List(_), _) => Ok(Value::Null),
            (Value::Doc(d), _) if d.is_array() => Ok(Value::Null),
            (Value::Str(_) | Value::BStr(_), _) => Ok(Value::Null),
            _ => {
                let k = self.key_string(key)?;
                Ok(self.prop(base, &k))
            }
        }
    }

    fn key_string(&mut self, k: &Value<'r>) -> R<String> {
        match k {
            Value::Str(s) => Ok(s.to_string()),
            Value::BStr(s) => Ok(s.to_string()),
            other => self.stringify(other),
        }
    }

    // ------------------------------------------------------------- expressions

    fn expr(&mut self, e: &'r Expr) -> R<Value<'r>> {
        Ok(match e {
            Expr::Ref(r) => return self.eval_ref(r),
            Expr::Str(s) => Value::BStr(s),
            Expr::Int(i) => Value::Int(*i),
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Float(f) => Value::Float(*f),
            Expr::Interp(nodes) => {
                self.tick()?;
                let saved = std::mem::take(&mut self.out);
                self.nesting += 1;
                let r = if self.nesting > MAX_EVAL_NESTING {
                    Err(self.step_error())
                } else {
                    self.run(nodes)
                };
                self.nesting -= 1;
                let s = std::mem::replace(&mut self.out, saved);
                r?;
                Value::string(s)
            }
            Expr::List(items) => {
                self.tick()?;
                let mut v = Vec::with_capacity(items.len());
                for it in items {
                    v.push(self.expr(it)?);
                }
                self.new_list(v, false)
            }
            Expr::Map(entries) => {
                self.tick()?;
                let mut m = IndexMap::with_capacity(entries.len());
                for (k, v) in entries {
                    let k = self.expr(k)?;
                    let k = self.key_string(&k)?;
                    let v = self.expr(v)?;
                    m.insert(k, v);
                }
                let nested = m.values().any(Value::is_container);
                let v = Value::map(m, false);
                if nested {
                    self.track(&v);
                }
                v
            }
            Expr::Range(a, b, pos) => {
                self.tick()?;
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                let (Some(a), Some(b)) = (to_int(&a), to_int(&b)) else {
                    return Ok(Value::Null);
                };
                let n = a.abs_diff(b).saturating_add(1);
                let budget = self.limits.max_steps.saturating_sub(self.steps);
                if n > budget || n as usize > self.limits.max_output_bytes {
                    self.last_pos = *pos;
                    return Err(self.step_error());
                }
                self.charge(n as usize * 16)?;
                let items = if a <= b {
                    (a..=b).map(Value::Int).collect()
                } else {
                    (b..=a).rev().map(Value::Int).collect()
                };
                Value::list(items, false)
            }
            Expr::Not(x) => {
                self.tick()?;
                let v = self.expr(x)?;
                Value::Bool(!v.truthy())
            }
            Expr::Bin(op, l, r, pos) => {
                self.tick()?;
                self.enter(*pos)?;
                let res = self.binary(*op, l, r, *pos);
                self.leave();
                return res;
            }
        })
    }

    fn binary(&mut self, op: BinOp, l: &'r Expr, r: &'r Expr, pos: Pos) -> R<Value<'r>> {
        match op {
            BinOp::And => {
                let a = self.expr(l)?;
                if !a.truthy() {
                    return Ok(Value::Bool(false));
                }
                let b = self.expr(r)?;
                Ok(Value::Bool(b.truthy()))
            }
            BinOp::Or => {
                let a = self.expr(l)?;
                if a.truthy() {
                    return Ok(Value::Bool(true));
                }
                let b = self.expr(r)?;
                Ok(Value::Bool(b.truthy()))
            }
            _ => {
                let a = self.expr(l)?;
                let b = self.expr(r)?;
                match op {
                    BinOp::Eq => Ok(Value::Bool(self.vel_equals(&a, &b)?)),
                    BinOp::Ne => Ok(Value::Bool(!self.vel_equals(&a, &b)?)),
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        let ord = compare(&a, &b);
                        Ok(Value::Bool(match ord {
                            None => false,
                            Some(o) => match op {
                                BinOp::Lt => o.is_lt(),
                                BinOp::Le => o.is_le(),
                                BinOp::Gt => o.is_gt(),
                                _ => o.is_ge(),
                            },
                        }))
                    }
                    _ => self.arith(op, a, b, pos),
                }
            }
        }
    }

    fn arith(&mut self, op: BinOp, a: Value<'r>, b: Value<'r>, _pos: Pos) -> R<Value<'r>> {
        if op == BinOp::Add && (a.as_str().is_some() || b.as_str().is_some()) {
            if a.is_null() || b.is_null() {
                return Ok(Value::Null);
            }
            let mut s = self.stringify(&a)?;
            let t = self.stringify(&b)?;
            self.check_size(s.len() + t.len())?;
            s.push_str(&t);
            return Ok(Value::string(s));
        }
        Ok(match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => {
                let (x, y) = (*x, *y);
                match op {
                    BinOp::Add => x
                        .checked_add(y)
                        .map(Value::Int)
                        .unwrap_or(Value::Float(x as f64 + y as f64)),
                    BinOp::Sub => x
                        .checked_sub(y)
                        .map(Value::Int)
                        .unwrap_or(Value::Float(x as f64 - y as f64)),
                    BinOp::Mul => x
                        .checked_mul(y)
                        .map(Value::Int)
                        .unwrap_or(Value::Float(x as f64 * y as f64)),
                    BinOp::Div => {
                        if y == 0 {
                            Value::Null
                        } else {
                            x.checked_div(y).map(Value::Int).unwrap_or(Value::Null)
                        }
                    }
                    BinOp::Mod => {
                        if y == 0 {
                            Value::Null
                        } else {
                            x.checked_rem(y).map(Value::Int).unwrap_or(Value::Int(0))
                        }
                    }
                    _ => Value::Null,
                }
            }
            _ => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => match op {
                    BinOp::Add => Value::Float(x + y),
                    BinOp::Sub => Value::Float(x - y),
                    BinOp::Mul => Value::Float(x * y),
                    BinOp::Div => {
                        if y == 0.0 {
                            Value::Null
                        } else {
                            Value::Float(x / y)
                        }
                    }
                    BinOp::Mod => {
                        if y == 0.0 {
                            Value::Null
                        } else {
                            Value::Float(x % y)
                        }
                    }
                    _ => Value::Null,
                },
                _ => Value::Null,
            },
        })
    }

    /// Velocity `==`: numbers by value, same kinds by equality, otherwise by their
    /// string forms; null equals null and (API Gateway) the empty string.
    fn vel_equals(&mut self, a: &Value<'r>, b: &Value<'r>) -> R<bool> {
        match (a, b) {
            (Value::Null, Value::Null) => Ok(true),
            (Value::Null, x) | (x, Value::Null) => Ok(x.as_str() == Some("")),
            (Value::Int(x), Value::Int(y)) => Ok(x == y),
            _ if a.is_number() && b.is_number() => Ok(a.as_f64() == b.as_f64()),
            (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
            _ => {
                if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
                    return Ok(x == y);
                }
                let x = self.stringify(a)?;
                let y = self.stringify(b)?;
                Ok(x == y)
            }
        }
    }

    /// Java `equals` (used by `.equals()`, `.contains()`, `.indexOf()`).
    fn java_equals(&mut self, a: &Value<'r>, b: &Value<'r>) -> R<bool> {
        Ok(match (a, b) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            _ => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => x == y,
                (Some(_), None) | (None, Some(_)) => false,
                _ => {
                    if a.is_number() || b.is_number() {
                        false
                    } else {
                        self.stringify(a)? == self.stringify(b)?
                    }
                }
            },
        })
    }

    // ------------------------------------------------------------- formatting

    pub(crate) fn stringify(&mut self, v: &Value<'r>) -> R<String> {
        if let Some(s) = v.as_str() {
            return Ok(s.to_string());
        }
        let mut s = String::new();
        self.fmt(v, &mut s, false)?;
        Ok(s)
    }

    /// Render `v` as text. `elem`: inside a Java collection's toString (null → "null").
    fn fmt(&mut self, v: &Value<'r>, buf: &mut String, elem: bool) -> R<()> {
        self.tick()?;
        match v {
            Value::Null => {
                if elem {
                    buf.push_str("null")
                }
            }
            Value::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                java::fmt_int(*i, buf);
            }
            Value::Float(f) => java::fmt_double(*f, buf),
            Value::Str(s) => buf.push_str(s),
            Value::BStr(s) => buf.push_str(s),
            Value::Doc(d) => {
                self.fmt_json_java(*d, buf)?;
            }
            Value::List(l) => {
                let l = l.clone();
                let l = l.borrow();
                let pos = self.last_pos;
                self.enter(pos)?;
                let r = if l.json {
                    self.fmt_json_owned(v, buf)
                } else {
                    self.fmt_java_list(&l.items, buf)
                };
                self.leave();
                r?;
            }
            Value::Map(m) => {
                let m = m.clone();
                let m = m.borrow();
                if !m.hidden {
                    let pos = self.last_pos;
                    self.enter(pos)?;
                    let r = self.fmt_java_map(&m.map, buf);
                    self.leave();
                    r?;
                }
            }
            Value::Entry(e) => {
                let e = e.clone();
                let pos = self.last_pos;
                self.enter(pos)?;
                let r = self.fmt(&e.0, buf, true).and_then(|_| {
                    buf.push('=');
                    self.fmt(&e.1, buf, true)
                });
                self.leave();
                r?;
            }
            Value::Block(nodes) => {
                if self.macro_depth >= self.limits.max_recursion_depth {
                    let (line, column) = self.c.lines.line_col(self.last_pos.0 as usize);
                    return Err(Box::new(RenderError::RecursionLimit {
                        limit: self.limits.max_recursion_depth,
                        line,
                        column,
                    }));
                }
                self.macro_depth += 1;
                let saved = std::mem::replace(&mut self.out, std::mem::take(buf));
                let pos = self.last_pos;
                let r = self.enter(pos).and_then(|_| self.run(nodes));
                self.leave();
                *buf = std::mem::replace(&mut self.out, saved);
                self.macro_depth -= 1;
                r?;
            }
            Value::StageVars => {
                let stage: &'r serde_json::Map<String, J> = self.stage;
                buf.push('{');
                for (i, (k, it)) in stage.iter().enumerate() {
                    if i > 0 {
                        buf.push_str(", ");
                    }
                    buf.push_str(k);
                    buf.push('=');
                    self.fmt(&Value::from_serde(it), buf, true)?;
                }
                buf.push('}');
            }
            Value::Params => {
                buf.push_str("{path=");
                self.fmt_section(Section::Path, buf);
                buf.push_str(", querystring=");
                self.fmt_section(Section::Querystring, buf);
                buf.push_str(", header=");
                self.fmt_section(Section::Header, buf);
                buf.push('}');
            }
            Value::ParamSection(s) => self.fmt_section(*s, buf),
            Value::Loop(_) | Value::Input | Value::Util | Value::Context | Value::CtxJson(_) => {}
        }
        self.check_len(buf)
    }

    /// Java `ArrayList.toString()`: `[a, b]`.
    fn fmt_java_list(&mut self, items: &[Value<'r>], buf: &mut String) -> R<()> {
        buf.push('[');
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                buf.push_str(", ");
            }
            self.fmt(it, buf, true)?;
            self.check_len(buf)?;
        }
        buf.push(']');
        Ok(())
    }

    /// Java `Map.toString()`: `{k=v, k2=v2}`.
    fn fmt_java_map(&mut self, map: &IndexMap<String, Value<'r>>, buf: &mut String) -> R<()> {
        buf.push('{');
        for (i, (k, it)) in map.iter().enumerate() {
            if i > 0 {
                buf.push_str(", ");
            }
            buf.push_str(k);
            buf.push('=');
            self.fmt(it, buf, true)?;
            self.check_len(buf)?;
        }
        buf.push('}');
        Ok(())
    }

    fn check_len(&self, buf: &str) -> R<()> {
        if buf.len() > self.limits.max_output_bytes {
            return Err(Box::new(RenderError::OutputLimit {
                limit: self.limits.max_output_bytes,
            }));
        }
        Ok(())
    }

    fn fmt_section(&self, s: Section, buf: &mut String) {
        buf.push('{');
        let mut seen: Vec<&str> = Vec::new();
        let mut first = true;
        for (k, _) in self.section(s) {
            if seen.contains(&k.as_str()) {
                continue;
            }
            seen.push(k);
            if !first {
                buf.push_str(", ");
            }
            first = false;
            buf.push_str(k);
            buf.push('=');
            buf.push_str(self.param_in(s, k).unwrap_or(""));
        }
        buf.push('}');
    }

    /// A body JSON value as API Gateway renders it: objects as Java `Map.toString()`
    /// (`{k=v, k2=v2}`), arrays as compact JSON.
    fn fmt_json_java(&mut self, d: DRef<'r>, buf: &mut String) -> R<()> {
        match d.node() {
            DNode::Obj { len, .. } => {
                buf.push('{');
                for i in 0..len as usize {
                    if i > 0 {
                        buf.push_str(", ");
                    }
                    buf.push_str(d.key(i).unwrap_or(""));
                    buf.push('=');
                    let Some(c) = d.child(i) else { continue };
                    match c.node() {
                        DNode::Null => buf.push_str("null"),
                        DNode::Obj { .. } | DNode::Arr { .. } => self.fmt_json_java(c, buf)?,
                        _ => fmt_doc_scalar(c, buf),
                    }
                    self.check_len(buf)?;
                }
                buf.push('}');
            }
            DNode::Arr { len, .. } => {
                self.charge(len as usize * 4)?;
                write_doc_json(d, buf);
            }
            _ => fmt_doc_scalar(d, buf),
        }
        self.check_len(buf)
    }

    /// JSON text of an owned value.
    fn fmt_json_owned(&mut self, v: &Value<'r>, buf: &mut String) -> R<()> {
        self.tick()?;
        let pos = self.last_pos;
        self.enter(pos)?;
        let r = self.fmt_json_owned_inner(v, buf);
        self.leave();
        r
    }

    fn fmt_json_owned_inner(&mut self, v: &Value<'r>, buf: &mut String) -> R<()> {
        match v {
            Value::Null => buf.push_str("null"),
            Value::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                java::fmt_int(*i, buf);
            }
            Value::Float(f) => {
                if f.is_finite() {
                    java::fmt_double(*f, buf)
                } else {
                    buf.push_str("null")
                }
            }
            Value::Str(s) => json_quote(s, buf),
            Value::BStr(s) => json_quote(s, buf),
            Value::Doc(d) => write_doc_json(*d, buf),
            Value::CtxJson(j) => write_json(j, buf),
            Value::List(l) => {
                let l = l.clone();
                let l = l.borrow();
                buf.push('[');
                for (i, it) in l.items.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    self.fmt_json_owned(it, buf)?;
                    self.check_len(buf)?;
                }
                buf.push(']');
            }
            Value::Map(m) => {
                let m = m.clone();
                let m = m.borrow();
                buf.push('{');
                for (i, (k, it)) in m.map.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    json_quote(k, buf);
                    buf.push(':');
                    self.fmt_json_owned(it, buf)?;
                    self.check_len(buf)?;
                }
                buf.push('}');
            }
            other => {
                let s = self.stringify(other)?;
                json_quote(&s, buf);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------- regexes

    fn regex(&mut self, pattern: &str, pos: Pos) -> R<Rc<regex::Regex>> {
        if let Some(i) = self.regexes.iter().position(|(p, _)| p == pattern) {
            return Ok(self.regexes[i].1.clone());
        }
        self.charge(pattern.len() * 64 + 1024)?;
        let translated = java::translate_java_regex(pattern).map_err(|e| {
            self.err_at(
                pos,
                format!("unsupported regular expression {pattern:?}: {e}"),
            )
        })?;
        let re = regex::RegexBuilder::new(&translated)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .nest_limit(64)
            .build()
            .map_err(|e| {
                self.err_at(pos, format!("invalid regular expression {pattern:?}: {e}"))
            })?;
        let re = Rc::new(re);
        if self.regexes.len() >= REGEX_CACHE {
            self.regexes.remove(0);
        }
        self.regexes.push((pattern.to_string(), re.clone()));
        Ok(re)
    }

    // ------------------------------------------------------------- methods

    fn call(&mut self, recv: Value<'r>, m: &'r Method, mut a: Args<'r>, pos: Pos) -> R<Value<'r>> {
        self.tick()?;
        if m.id.is_mutating() {
            self.track(&recv);
        }
        use MethodId as M;
        let id = m.id;
        match &recv {
            Value::Null => Ok(Value::Null),
            Value::Util => self.util_call(id, &mut a, pos),
            Value::Input => self.input_call(id, &a, pos),
            Value::Str(_) | Value::BStr(_) => self.string_call(&recv, id, &a, pos),
            Value::Block(_) => {
                let s = self.stringify(&recv)?;
                self.string_call(&Value::string(s), id, &a, pos)
            }
            Value::Int(_) | Value::Float(_) => self.number_call(&recv, id, &a),
            Value::Bool(b) => Ok(match id {
                M::ToString => Value::str(if *b { "true" } else { "false" }),
                M::BooleanValue => Value::Bool(*b),
                M::Equals => Value::Bool(matches!(a.get(0), Value::Bool(x) if x == b)),
                M::HashCode => Value::Int(if *b { 1231 } else { 1237 }),
                _ => Value::Null,
            }),
            Value::Loop(l) => Ok(match id {
                M::HasNext | M::GetHasNext => Value::Bool(l.has_next.get()),
                M::IsFirst | M::GetFirst => Value::Bool(l.index.get() == 0),
                M::IsLast | M::GetLast => Value::Bool(!l.has_next.get()),
                M::GetIndex => Value::Int(l.index.get() as i64),
                M::GetCount => Value::Int(l.index.get() as i64 + 1),
                M::GetParent => l.parent.clone().map(Value::Loop).unwrap_or_default(),
                M::Get => {
                    let k = self.key_string(a.get(0))?;
                    loop_prop(l, &k)
                }
                _ => Value::Null,
            }),
            Value::Entry(e) => Ok(match id {
                M::GetKey => e.0.clone(),
                M::GetValue => e.1.clone(),
                M::ToString => {
                    let s = self.stringify(&recv)?;
                    Value::string(s)
                }
                _ => Value::Null,
            }),
            Value::List(_) => self.list_call(&recv, id, &mut a, pos),
            Value::Doc(d) if d.is_array() => self.list_call(&recv, id, &mut a, pos),
            Value::Params => Ok(match id {
                M::Get => {
                    let k = self.key_string(a.get(0))?;
                    self.prop(&recv, &k)
                }
                _ => self.map_read_call(&recv, id, &a)?,
            }),
            _ => self.map_call(&recv, id, &mut a),
        }
    }

    fn util_call(&mut self, id: MethodId, a: &mut Args<'r>, pos: Pos) -> R<Value<'r>> {
        use MethodId as M;
        let arg = a.take(0);
        if arg.is_null() {
            return Ok(Value::Null);
        }
        let s = match arg.as_str() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(self.stringify(&arg)?),
        };
        self.charge(s.len())?;
        Ok(match id {
            M::EscapeJavaScript => {
                let mut out = String::with_capacity(s.len() + 8);
                java::escape_javascript(&s, &mut out);
                Value::string(out)
            }
            M::UrlEncode => Value::string(java::url_encode(&s)),
            M::UrlDecode => Value::string(java::url_decode(&s).map_err(|e| self.err_at(pos, e))?),
            M::Base64Encode => Value::string(java::base64_encode(&s)),
            M::Base64Decode => {
                Value::string(java::base64_decode(&s).map_err(|e| self.err_at(pos, e))?)
            }
            M::ParseJson => {
                let j: J = serde_json::from_str(&s)
                    .map_err(|e| self.err_at(pos, format!("$util.parseJson: invalid JSON: {e}")))?;
                self.charge(s.len() * 4)?;
                Value::from_owned_json(j)
            }
            _ => Value::Null,
        })
    }

    fn input_call(&mut self, id: MethodId, a: &Args<'r>, pos: Pos) -> R<Value<'r>> {
        use MethodId as M;
        match id {
            M::Params => {
                if a.n == 0 {
                    return Ok(Value::Params);
                }
                if let Some(name) = a.get(0).as_str() {
                    return Ok(Value::BStr(self.input_param(name)));
                }
                let name = self.key_string(a.get(0))?;
                Ok(Value::BStr(self.input_param(&name)))
            }
            M::Path | M::Json => {
                let path = match a.get(0) {
                    Value::Null => {
                        return Ok(if id == M::Json {
                            Value::BStr("\"\"")
                        } else {
                            Value::Null
                        })
                    }
                    other => self.key_string(other)?,
                };
                let Some(root) = self.body_json() else {
                    return Ok(if id == M::Json {
                        Value::BStr("\"\"")
                    } else {
                        Value::Null
                    });
                };
                let root = root.root();
                let res = if path == "$" {
                    PathResult::Single(root)
                } else {
                    let cp = CompiledPath::parse(&path).map_err(|e| {
                        self.err_at(
                            pos,
                            format!(
                                "$input.{}: {e}",
                                if id == M::Json { "json" } else { "path" }
                            ),
                        )
                    })?;
                    cp.eval_tree(root)
                };
                if id == M::Json {
                    let mut s = String::new();
                    match res {
                        PathResult::Missing => s.push_str("\"\""),
                        PathResult::Single(v) => write_doc_json(v, &mut s),
                        PathResult::List(vs) => {
                            s.push('[');
                            for (i, v) in vs.into_iter().enumerate() {
                                if i > 0 {
                                    s.push(',');
                                }
                                write_doc_json(v, &mut s);
                            }
                            s.push(']');
                        }
                    }
                    self.check_size(s.len())?;
                    Ok(Value::string(s))
                } else {
                    Ok(match res {
                        PathResult::Missing => Value::Null,
                        PathResult::Single(v) => Value::from_doc(v),
                        PathResult::List(vs) => {
                            self.charge(vs.len() * 16)?;
                            Value::list(vs.into_iter().map(Value::from_doc).collect(), true)
                        }
                    })
                }
            }
            M::ToString => Ok(Value::str("")),
            M::Get => {
                let k = self.key_string(a.get(0))?;
                Ok(self.prop(&Value::Input, &k))
            }
            _ => Ok(Value::Null),
        }
    }

    fn number_call(&mut self, recv: &Value<'r>, id: MethodId, a: &Args<'r>) -> R<Value<'r>> {
        use MethodId as M;
        Ok(match id {
            M::ToString => Value::string(self.stringify(recv)?),
            M::IntValue | M::LongValue => match recv {
                Value::Int(i) => Value::Int(if id == M::IntValue {
                    *i as i32 as i64
                } else {
                    *i
                }),
                Value::Float(f) => Value::Int(*f as i64),
                _ => Value::Null,
            },
            M::DoubleValue | M::FloatValue => recv.as_f64().map(Value::Float).unwrap_or_default(),
            M::Equals => Value::Bool(self.java_equals(recv, a.get(0))?),
            M::CompareTo => match compare(recv, a.get(0)) {
                Some(o) => Value::Int(o as i64),
                None => Value::Null,
            },
            M::HashCode => match recv {
                Value::Int(i) => Value::Int(((*i as u64) ^ ((*i as u64) >> 32)) as i32 as i64),
                _ => Value::Int(0),
            },
            _ => Value::Null,
        })
    }

    fn string_call(
        &mut self,
        recv: &Value<'r>,
        id: MethodId,
        a: &Args<'r>,
        pos: Pos,
    ) -> R<Value<'r>> {
        use MethodId as M;
        let s: &str = recv.as_str().unwrap_or("");
        // Arguments as strings (None when the argument is null).
        let arg_str = |this: &mut Self, i: usize| -> R<Option<String>> {
            match a.get(i) {
                Value::Null => Ok(None),
                v => this.key_string(v).map(Some),
            }
        };
        let arg_int = |i: usize| -> Option<i64> { to_int(a.get(i)) };
        let oob = |this: &Self, what: &str| {
            this.err_at(pos, format!("String index out of range: {what}"))
        };
        Ok(match id {
            M::Length => Value::Int(java::utf16_len(s) as i64),
            M::ToString => recv.clone(),
            M::IsEmpty => Value::Bool(s.is_empty()),
            M::Trim => {
                let t = s.trim_matches(|c: char| c <= ' ');
                Value::str(t)
            }
            M::ToLowerCase => Value::string(s.to_lowercase()),
            M::ToUpperCase => Value::string(s.to_uppercase()),
            M::HashCode => Value::Int(i64::from(java::java_hash(s))),
            M::Substring => {
                let len = java::utf16_len(s);
                let b = arg_int(0).ok_or_else(|| oob(self, "missing begin index"))?;
                let e = if a.n >= 2 {
                    arg_int(1).ok_or_else(|| oob(self, "missing end index"))?
                } else {
                    len as i64
                };
                if b < 0 || e > len as i64 || b > e {
                    return Err(oob(self, &format!("begin {b}, end {e}, length {len}")));
                }
                let (Some(bb), Some(eb)) = (
                    java::utf16_to_byte(s, b as usize),
                    java::utf16_to_byte(s, e as usize),
                ) else {
                    return Err(oob(self, "index inside a surrogate pair"));
                };
                Value::str(&s[bb..eb])
            }
            M::IndexOf | M::LastIndexOf => {
                let Some(needle) = arg_str(self, 0)? else {
                    return Ok(Value::Null);
                };
                self.charge(s.len())?;
                let r = if id == M::IndexOf {
                    let from = arg_int(1).unwrap_or(0).max(0) as usize;
                    let fb = java::utf16_to_byte(s, from.min(java::utf16_len(s)));
                    fb.and_then(|fb| s[fb..].find(needle.as_str()).map(|i| i + fb))
                } else {
                    match arg_int(1) {
                        None => s.rfind(needle.as_str()),
                        Some(from) if from < 0 => None,
                        Some(from) => {
                            let lim =
                                java::utf16_to_byte(s, (from as usize).min(java::utf16_len(s)))
                                    .unwrap_or(s.len());
                            let end = (lim + needle.len()).min(s.len());
                            let mut end = end;
                            while !s.is_char_boundary(end) {
                                end -= 1;
                            }
                            s[..end].rfind(needle.as_str())
                        }
                    }
                };
                Value::Int(r.map(|b| java::byte_to_utf16(s, b) as i64).unwrap_or(-1))
            }
            M::Contains => match arg_str(self, 0)? {
                Some(n) => Value::Bool(s.contains(n.as_str())),
                None => Value::Null,
            },
            M::StartsWith => match arg_str(self, 0)? {
                Some(n) => {
                    let off = arg_int(1).unwrap_or(0);
                    let ok = off >= 0
                        && java::utf16_to_byte(s, off as usize)
                            .is_some_and(|b| s[b..].starts_with(n.as_str()));
                    Value::Bool(ok)
                }
                None => Value::Null,
            },
            M::EndsWith => match arg_str(self, 0)? {
                Some(n) => Value::Bool(s.ends_with(n.as_str())),
                None => Value::Null,
            },
            M::Equals => Value::Bool(a.get(0).as_str() == Some(s)),
            M::EqualsIgnoreCase => Value::Bool(match a.get(0).as_str() {
                Some(o) => o.to_lowercase() == s.to_lowercase(),
                None => false,
            }),
            M::CompareTo | M::CompareToIgnoreCase => match a.get(0).as_str() {
                Some(o) => {
                    let (x, y) = if id == M::CompareTo {
                        (s.to_string(), o.to_string())
                    } else {
                        (s.to_lowercase(), o.to_lowercase())
                    };
                    Value::Int(java_compare(&x, &y))
                }
                None => Value::Null,
            },
            M::Concat => match arg_str(self, 0)? {
                Some(o) => {
                    self.check_size(s.len() + o.len())?;
                    Value::string(format!("{s}{o}"))
                }
                None => Value::Null,
            },
            M::CharAt => {
                let i = arg_int(0).ok_or_else(|| oob(self, "missing index"))?;
                let units: Vec<u16> = if i >= 0 {
                    s.encode_utf16().skip(i as usize).take(1).collect()
                } else {
                    Vec::new()
                };
                match units.first() {
                    Some(u) => Value::string(String::from_utf16_lossy(&[*u])),
                    None => return Err(oob(self, &i.to_string())),
                }
            }
            M::Replace => {
                let (Some(from), Some(to)) = (arg_str(self, 0)?, arg_str(self, 1)?) else {
                    return Ok(Value::Null);
                };
                self.charge(s.len())?;
                let out = if from.is_empty() {
                    // Java inserts the replacement between every char and at both ends.
                    let mut o = String::with_capacity(s.len() * (to.len() + 1) + to.len());
                    o.push_str(&to);
                    for ch in s.chars() {
                        o.push(ch);
                        o.push_str(&to);
                    }
                    o
                } else {
                    let n = s.matches(from.as_str()).count();
                    self.check_size(s.len() + n.saturating_mul(to.len()))?;
                    s.replace(from.as_str(), &to)
                };
                self.check_size(out.len())?;
                Value::string(out)
            }
            M::ReplaceAll | M::ReplaceFirst => {
                let (Some(pat), Some(rep)) = (arg_str(self, 0)?, arg_str(self, 1)?) else {
                    return Ok(Value::Null);
                };
                let re = self.regex(&pat, pos)?;
                let rep =
                    java::translate_java_replacement(&rep, re.captures_len().saturating_sub(1))
                        .map_err(|e| self.err_at(pos, format!("invalid replacement: {e}")))?;
                self.charge(s.len() * 2)?;
                let out = if id == M::ReplaceAll {
                    let n = re
                        .find_iter(s)
                        .take(self.limits.max_output_bytes + 1)
                        .count();
                    self.check_size(s.len() + n.saturating_mul(rep.len() + 16))?;
                    re.replace_all(s, rep.as_str()).into_owned()
                } else {
                    re.replace(s, rep.as_str()).into_owned()
                };
                self.check_size(out.len())?;
                Value::string(out)
            }
            M::Matches => match arg_str(self, 0)? {
                Some(pat) => {
                    let re = self.regex(&format!("^(?:{pat})$"), pos)?;
                    self.charge(s.len())?;
                    Value::Bool(re.is_match(s))
                }
                None => Value::Null,
            },
            M::Split => {
                let Some(pat) = arg_str(self, 0)? else {
                    return Ok(Value::Null);
                };
                let limit = arg_int(1).unwrap_or(0);
                let re = self.regex(&pat, pos)?;
                self.charge(s.len() * 2)?;
                let parts = java_split(s, &re, limit);
                self.charge(parts.len() * 16)?;
                Value::list(parts.into_iter().map(Value::string).collect(), false)
            }
            _ => Value::Null,
        })
    }

    fn list_call(
        &mut self,
        recv: &Value<'r>,
        id: MethodId,
        a: &mut Args<'r>,
        _pos: Pos,
    ) -> R<Value<'r>> {
        use MethodId as M;
        let items: Option<DRef<'r>> = match recv {
            Value::Doc(d) if d.is_array() => Some(*d),
            _ => None,
        };
        let len = match (items, recv) {
            (Some(v), _) => v.len(),
            (None, Value::List(l)) => l.borrow().items.len(),
            _ => 0,
        };
        let get = |i: usize| -> Value<'r> {
            match (items, recv) {
                (Some(d), _) => d.child(i).map(Value::from_doc).unwrap_or_default(),
                (None, Value::List(l)) => l.borrow().items.get(i).cloned().unwrap_or_default(),
                _ => Value::Null,
            }
        };
        Ok(match id {
            M::Size => Value::Int(len as i64),
            M::IsEmpty => Value::Bool(len == 0),
            M::Get => match to_int(a.get(0)) {
                Some(i) => list_idx(len, i).map(get).unwrap_or_default(),
                None => Value::Null,
            },
            M::ToString => Value::string(self.stringify(recv)?),
            M::Contains | M::IndexOf | M::LastIndexOf => {
                let needle = a.take(0);
                let mut found: Option<usize> = None;
                let order: Box<dyn Iterator<Item = usize>> = if id == M::LastIndexOf {
                    Box::new((0..len).rev())
                } else {
                    Box::new(0..len)
                };
                for i in order {
                    self.tick()?;
                    let it = get(i);
                    if self.java_equals(&it, &needle)? {
                        found = Some(i);
                        break;
                    }
                }
                if id == M::Contains {
                    Value::Bool(found.is_some())
                } else {
                    Value::Int(found.map(|i| i as i64).unwrap_or(-1))
                }
            }
            M::Equals => {
                let other = a.take(0);
                Value::Bool(self.vel_equals(recv, &other)?)
            }
            M::HashCode => Value::Int(len as i64),
            M::SubList => {
                let (Some(f), Some(t)) = (to_int(a.get(0)), to_int(a.get(1))) else {
                    return Ok(Value::Null);
                };
                if f < 0 || t as usize > len || f > t {
                    return Ok(Value::Null);
                }
                self.charge((t - f) as usize * 16)?;
                let json = match recv {
                    Value::List(l) => l.borrow().json,
                    _ => true,
                };
                let items = (f as usize..t as usize).map(get).collect();
                self.new_list(items, json)
            }
            _ => {
                let Value::List(l) = recv else {
                    return Ok(Value::Null);
                };
                self.tick()?;
                let mut l = l.borrow_mut();
                match id {
                    M::Add => {
                        if a.n >= 2 {
                            let v = a.take(1);
                            if let Some(i) = to_int(a.get(0)) {
                                if i >= 0 && i as usize <= l.items.len() {
                                    l.items.insert(i as usize, v);
                                }
                            }
                            Value::Null
                        } else {
                            l.items.push(a.take(0));
                            Value::Bool(true)
                        }
                    }
                    M::AddAll => {
                        let other = a.take(0);
                        drop(l);
                        let vals = self.collection_values(&other);
                        self.charge(vals.len() * 16)?;
                        if let Value::List(l) = recv {
                            l.borrow_mut().items.extend(vals);
                        }
                        Value::Bool(true)
                    }
                    M::Remove => match a.get(0) {
                        Value::Int(i) => {
                            let i = *i;
                            if i >= 0 && (i as usize) < l.items.len() {
                                l.items.remove(i as usize)
                            } else {
                                Value::Null
                            }
                        }
                        _ => {
                            let needle = a.take(0);
                            let items: Vec<Value<'r>> = l.items.clone();
                            drop(l);
                            let mut pos_found = None;
                            for (i, it) in items.iter().enumerate() {
                                if self.java_equals(it, &needle)? {
                                    pos_found = Some(i);
                                    break;
                                }
                            }
                            if let (Some(i), Value::List(l)) = (pos_found, recv) {
                                let mut l = l.borrow_mut();
                                if i < l.items.len() {
                                    l.items.remove(i);
                                }
                            }
                            Value::Bool(pos_found.is_some())
                        }
                    },
                    M::Set => match to_int(a.get(0)) {
                        Some(i) if i >= 0 && (i as usize) < l.items.len() => {
                            let v = a.take(1);
                            std::mem::replace(&mut l.items[i as usize], v)
                        }
                        _ => Value::Null,
                    },
                    M::Clear => {
                        l.items.clear();
                        Value::Null
                    }
                    _ => Value::Null,
                }
            }
        })
    }

    /// Values of a list-like or map-like value (for `addAll`, `putAll`, `#foreach`).
    fn collection_values(&mut self, v: &Value<'r>) -> Vec<Value<'r>> {
        match v {
            Value::Doc(d) if d.is_array() => (0..d.len())
                .filter_map(|i| d.child(i))
                .map(Value::from_doc)
                .collect(),
            Value::List(l) => l.borrow().items.clone(),
            _ => self.map_values(v),
        }
    }

    fn map_values(&mut self, v: &Value<'r>) -> Vec<Value<'r>> {
        self.map_entries(v).into_iter().map(|(_, v)| v).collect()
    }

    /// Entries of a map-like value, in order.
    fn map_entries(&mut self, v: &Value<'r>) -> Vec<(Value<'r>, Value<'r>)> {
        match v {
            Value::Doc(d) if d.is_object() => (0..d.len())
                .filter_map(|i| Some((Value::BStr(d.key(i)?), Value::from_doc(d.child(i)?))))
                .collect(),
            Value::CtxJson(J::Object(o)) => o
                .iter()
                .map(|(k, x)| (Value::BStr(k.as_str()), Value::from_serde(x)))
                .collect(),
            Value::Map(m) => m
                .borrow()
                .map
                .iter()
                .map(|(k, x)| (Value::str(k), x.clone()))
                .collect(),
            Value::Context => {
                let ctx: &'r J = self.context;
                let overlay = self.ov();
                let overlay = overlay.borrow();
                let mut out: Vec<(Value<'r>, Value<'r>)> = Vec::new();
                if let J::Object(o) = ctx {
                    for (k, x) in o {
                        match overlay.map.get(k.as_str()) {
                            Some(ov) => out.push((Value::BStr(k.as_str()), ov.clone())),
                            None => out.push((Value::BStr(k.as_str()), Value::from_serde(x))),
                        }
                    }
                }
                for (k, x) in overlay.map.iter() {
                    if ctx.get(k.as_str()).is_none() {
                        out.push((Value::str(k), x.clone()));
                    }
                }
                out
            }
            Value::StageVars => {
                let stage: &'r serde_json::Map<String, J> = self.stage;
                stage
                    .iter()
                    .map(|(k, x)| (Value::BStr(k.as_str()), Value::from_serde(x)))
                    .collect()
            }
            Value::Params => vec![
                (Value::BStr("path"), Value::ParamSection(Section::Path)),
                (
                    Value::BStr("querystring"),
                    Value::ParamSection(Section::Querystring),
                ),
                (Value::BStr("header"), Value::ParamSection(Section::Header)),
            ],
            Value::ParamSection(s) => {
                let mut seen: Vec<&'r str> = Vec::new();
                for (k, _) in self.section(*s) {
                    if !seen.contains(&k.as_str()) {
                        seen.push(k);
                    }
                }
                seen.into_iter()
                    .map(|k| {
                        (
                            Value::BStr(k),
                            Value::BStr(self.param_in(*s, k).unwrap_or("")),
                        )
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn map_read_call(&mut self, recv: &Value<'r>, id: MethodId, a: &Args<'r>) -> R<Value<'r>> {
        use MethodId as M;
        Ok(match id {
            M::Get | M::GetOrDefault => {
                let k = self.key_string(a.get(0))?;
                let v = match recv {
                    Value::Map(m) => m.borrow().map.get(&k).cloned().unwrap_or_default(),
                    _ => self.prop(recv, &k),
                };
                if v.is_null() && id == M::GetOrDefault {
                    a.get(1).clone()
                } else {
                    v
                }
            }
            M::ContainsKey => {
                let k = self.key_string(a.get(0))?;
                let found = match recv {
                    Value::Doc(d) => d.get(&k).is_some(),
                    Value::CtxJson(J::Object(o)) => o.contains_key(&k),
                    Value::Map(m) => m.borrow().map.contains_key(&k),
                    Value::Context => {
                        self.ov().borrow().map.contains_key(&k) || self.context.get(&k).is_some()
                    }
                    Value::StageVars => self.stage.contains_key(&k),
                    Value::Params => matches!(k.as_str(), "path" | "querystring" | "header"),
                    Value::ParamSection(s) => self.param_in(*s, &k).is_some(),
                    _ => false,
                };
                Value::Bool(found)
            }
            M::Size | M::IsEmpty => {
                let n = match recv {
                    Value::Doc(d) => d.len(),
                    Value::CtxJson(J::Object(o)) => o.len(),
                    Value::Map(m) => m.borrow().map.len(),
                    _ => self.map_entries(recv).len(),
                };
                if id == M::Size {
                    Value::Int(n as i64)
                } else {
                    Value::Bool(n == 0)
                }
            }
            M::KeySet | M::Values | M::EntrySet | M::ContainsValue => {
                let entries = self.map_entries(recv);
                self.charge(entries.len() * 16)?;
                match id {
                    M::KeySet => {
                        self.new_list(entries.into_iter().map(|(k, _)| k).collect(), false)
                    }
                    M::Values => {
                        self.new_list(entries.into_iter().map(|(_, v)| v).collect(), false)
                    }
                    M::EntrySet => self.new_list(
                        entries
                            .into_iter()
                            .map(|e| Value::Entry(Rc::new(e)))
                            .collect(),
                        false,
                    ),
                    _ => {
                        let needle = a.get(0).clone();
                        let mut found = false;
                        for (_, v) in entries {
                            if self.java_equals(&v, &needle)? {
                                found = true;
                                break;
                            }
                        }
                        Value::Bool(found)
                    }
                }
            }
            M::ToString => {
                let s = self.stringify(recv)?;
                Value::string(s)
            }
            M::Equals => {
                let other = a.get(0).clone();
                Value::Bool(self.vel_equals(recv, &other)?)
            }
            M::HashCode => Value::Int(0),
            _ => Value::Null,
        })
    }

    fn map_call(&mut self, recv: &Value<'r>, id: MethodId, a: &mut Args<'r>) -> R<Value<'r>> {
        use MethodId as M;
        let target: Option<Rc<RefCell<MapObj<'r>>>> = match recv {
            Value::Map(m) => Some(m.clone()),
            Value::Context => Some(self.ov()),
            _ => None,
        };
        match (id, target) {
            (M::Put | M::PutIfAbsent, Some(m)) => {
                self.tick()?;
                let k = self.key_string(a.get(0))?;
                let v = a.take(1);
                let mut m = m.borrow_mut();
                if id == M::PutIfAbsent {
                    if let Some(old) = m.map.get(&k) {
                        if !old.is_null() {
                            return Ok(old.clone());
                        }
                    }
                }
                Ok(m.map.insert(k, v).unwrap_or_default())
            }
            (M::PutAll, Some(m)) => {
                let other = a.take(0);
                let entries = self.map_entries(&other);
                self.charge(entries.len() * 16)?;
                for (k, v) in entries {
                    let k = self.key_string(&k)?;
                    m.borrow_mut().map.insert(k, v);
                }
                Ok(Value::Null)
            }
            (M::Remove, Some(m)) => {
                let k = self.key_string(a.get(0))?;
                Ok(m.borrow_mut().map.shift_remove(&k).unwrap_or_default())
            }
            (M::Clear, Some(m)) => {
                m.borrow_mut().map.clear();
                Ok(Value::Null)
            }
            _ => self.map_read_call(recv, id, a),
        }
    }
}

// ----------------------------------------------------------------- helpers

fn loop_prop<'r>(l: &Rc<LoopInfo>, name: &str) -> Value<'r> {
    match name {
        "index" => Value::Int(l.index.get() as i64),
        "count" => Value::Int(l.index.get() as i64 + 1),
        "hasNext" => Value::Bool(l.has_next.get()),
        "first" => Value::Bool(l.index.get() == 0),
        "last" => Value::Bool(!l.has_next.get()),
        "parent" => l.parent.clone().map(Value::Loop).unwrap_or_default(),
        "topmost" => {
            let mut cur = l.clone();
            while let Some(p) = cur.parent.clone() {
                cur = p;
            }
            Value::Loop(cur)
        }
        _ => Value::Null,
    }
}

fn list_idx(len: usize, i: i64) -> Option<usize> {
    let len = len as i64;
    let j = if i < 0 { len + i } else { i };
    if j < 0 || j >= len {
        None
    } else {
        Some(j as usize)
    }
}

fn to_int(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.is_finite() => Some(*f as i64),
        Value::Str(_) | Value::BStr(_) => v.as_str().and_then(|s| s.trim().parse().ok()),
        _ => None,
    }
}

fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        _ if a.is_number() && b.is_number() => a.as_f64()?.partial_cmp(&b.as_f64()?),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => Some(java_compare(x, y).cmp(&0)),
            _ => None,
        },
    }
}

/// Java `String.compareTo` (UTF-16 code unit order).
fn java_compare(a: &str, b: &str) -> i64 {
    let mut x = a.encode_utf16();
    let mut y = b.encode_utf16();
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) if p != q => return i64::from(p) - i64::from(q),
            (Some(_), Some(_)) => {}
            (None, None) => return 0,
            (Some(_), None) => return (a.encode_utf16().count() - b.encode_utf16().count()) as i64,
            (None, Some(_)) => {
                return -((b.encode_utf16().count() - a.encode_utf16().count()) as i64)
            }
        }
    }
}

/// Java `String.split(regex, limit)`.
fn java_split(s: &str, re: &regex::Regex, limit: i64) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut last = 0;
    for m in re.find_iter(s) {
        if limit > 0 && parts.len() as i64 >= limit - 1 {
            break;
        }
        if m.end() == 0 {
            // A zero-width match at the beginning never produces a leading empty string.
            continue;
        }
        if m.start() == m.end() && m.start() >= s.len() {
            break;
        }
        parts.push(s[last..m.start()].to_string());
        last = m.end();
    }
    if parts.is_empty() && last == 0 {
        return vec![s.to_string()];
    }
    parts.push(s[last..].to_string());
    if limit == 0 {
        while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        if parts.len() == 1 && parts[0].is_empty() && !s.is_empty() {
            parts.pop();
        }
    }
    parts
}

fn fmt_doc_scalar(d: DRef<'_>, buf: &mut String) {
    match d.node() {
        DNode::Null => {}
        DNode::Bool(b) => buf.push_str(if b { "true" } else { "false" }),
        DNode::Int(i) => {
            java::fmt_int(i, buf);
        }
        DNode::Float(f) => java::fmt_double(f, buf),
        DNode::Str(_) => buf.push_str(d.str().unwrap_or("")),
        DNode::Arr { .. } | DNode::Obj { .. } => {}
    }
}

/// Compact JSON of a body node, numbers as Java prints them.
pub(crate) fn write_doc_json(d: DRef<'_>, buf: &mut String) {
    match d.node() {
        DNode::Null => buf.push_str("null"),
        DNode::Float(f) if !f.is_finite() => buf.push_str("null"),
        DNode::Str(_) => json_quote(d.str().unwrap_or(""), buf),
        DNode::Arr { len, .. } => {
            buf.push('[');
            for i in 0..len as usize {
                if i > 0 {
                    buf.push(',');
                }
                if let Some(c) = d.child(i) {
                    write_doc_json(c, buf);
                }
            }
            buf.push(']');
        }
        DNode::Obj { len, .. } => {
            buf.push('{');
            for i in 0..len as usize {
                if i > 0 {
                    buf.push(',');
                }
                json_quote(d.key(i).unwrap_or(""), buf);
                buf.push(':');
                if let Some(c) = d.child(i) {
                    write_doc_json(c, buf);
                }
            }
            buf.push('}');
        }
        _ => fmt_doc_scalar(d, buf),
    }
}

fn fmt_number(n: &serde_json::Number, buf: &mut String) {
    if let Some(i) = n.as_i64() {
        java::fmt_int(i, buf);
    } else if let Some(u) = n.as_u64() {
        let _ = write!(buf, "{u}");
    } else {
        java::fmt_double(n.as_f64().unwrap_or(0.0), buf);
    }
}

/// Compact JSON, numbers as Java prints them.
fn write_json(j: &J, buf: &mut String) {
    match j {
        J::Null => buf.push_str("null"),
        J::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => fmt_number(n, buf),
        J::String(s) => json_quote(s, buf),
        J::Array(a) => {
            buf.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    buf.push(',');
                }
                write_json(x, buf);
            }
            buf.push(']');
        }
        J::Object(o) => {
            buf.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    buf.push(',');
                }
                json_quote(k, buf);
                buf.push(':');
                write_json(x, buf);
            }
            buf.push('}');
        }
    }
}

fn deep_owned_hidden<'r>(j: &J) -> Value<'r> {
    match j {
        J::Object(o) => Value::map(
            o.iter()
                .map(|(k, v)| (k.clone(), deep_owned_hidden(v)))
                .collect(),
            true,
        ),
        other => Value::from_owned_json(other.clone()),
    }
}

/// Owned value → JSON (for `Rendered::{request,response}_override`).
fn to_json(v: &Value<'_>) -> J {
    to_json_depth(v, 0)
}

fn to_json_depth(v: &Value<'_>, depth: usize) -> J {
    if depth > MAX_VALUE_DEPTH {
        return J::Null;
    }
    let to_json = |x: &Value<'_>| to_json_depth(x, depth + 1);
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Str(s) => J::String(s.to_string()),
        Value::BStr(s) => J::String(s.to_string()),
        Value::Doc(d) => d.to_serde(),
        Value::CtxJson(j) => (*j).clone(),
        Value::List(l) => J::Array(l.borrow().items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.borrow()
                .map
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Value::Entry(e) => {
            let mut o = serde_json::Map::new();
            o.insert("key".into(), to_json(&e.0));
            o.insert("value".into(), to_json(&e.1));
            J::Object(o)
        }
        _ => J::Null,
    }
}

/// Scalar as an override string (`None` for null).
fn scalar_string(v: &Value<'_>) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => {
            let mut s = String::new();
            java::fmt_double(*f, &mut s);
            Some(s)
        }
        Value::Str(s) => Some(s.to_string()),
        Value::BStr(s) => Some(s.to_string()),
        other => match to_json(other) {
            J::Null => None,
            J::String(s) => Some(s),
            j => Some(j.to_string()),
        },
    }
}

fn multi_entries(v: Option<&Value<'_>>) -> Vec<(String, Vec<String>)> {
    let Some(Value::Map(m)) = v else {
        return Vec::new();
    };
    let m = m.borrow();
    let mut out = Vec::new();
    for (k, v) in &m.map {
        let vals: Vec<String> = match v {
            Value::List(l) => l.borrow().items.iter().filter_map(scalar_string).collect(),
            Value::Doc(d) if d.is_array() => (0..d.len())
                .filter_map(|i| d.child(i))
                .filter_map(|x| scalar_string(&Value::from_doc(x)))
                .collect(),
            other => scalar_string(other).into_iter().collect(),
        };
        if !vals.is_empty() {
            out.push((k.clone(), vals));
        }
    }
    out
}

/// `$context.responseOverride.status`: an integer 100–599 (numeric strings accepted).
fn status_of(v: &Value<'_>) -> Option<u16> {
    let n = match v {
        Value::Int(i) => *i,
        Value::Str(_) | Value::BStr(_) => v.as_str()?.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    if (100..=599).contains(&n) {
        Some(n as u16)
    } else {
        None
    }
}
