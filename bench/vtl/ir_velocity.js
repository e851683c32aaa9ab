#!/usr/bin/env node
// Instruction-count driver for bench/vtl/ir.sh: compile the template once with
// velocityjs and render it N times (the `pre-parsed` mode of the peer kit's
// bench_velocity.js), printing nothing. The $input/$util/$context shim is a copy of
// the one in shared/peers/vtl/bench_velocity.js (same semantics), which cannot be
// imported (it runs its benchmark on load).
//
// usage: ir_velocity.js TEMPLATE REQUEST_JSON N   (VELOCITY_DIR: where velocityjs is)
'use strict';
const fs = require('fs');
const velocity = require(require.resolve('velocityjs', { paths: [process.env.VELOCITY_DIR] }));
const [tplPath, reqPath, nStr] = process.argv.slice(2);
function jsonPath(doc, expr) {
  if (expr === '$' || !expr) return doc;
  let cur = doc;
  for (const part of expr.replace(/^\$\.?/, '').replace(/\[/g, '.').replace(/\]/g, '').split('.')) {
    if (part === '') continue;
    if (cur === null || typeof cur !== 'object') return null;
    cur = Array.isArray(cur) ? cur[Number(part)] : cur[part];
  }
  return cur === undefined ? null : cur;
}
function escapeJs(s) {
  if (s === null || s === undefined) return '';
  s = String(s);
  let out = '';
  for (const ch of s) {
    switch (ch) {
      case '\\': out += '\\\\'; break;
      case '"': out += '\\"'; break;
      case "'": out += "\\'"; break;
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\t': out += '\\t'; break;
      default:
        out += ch.charCodeAt(0) < 0x20 ? '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0') : ch;
    }
  }
  return out;
}
const req = JSON.parse(fs.readFileSync(reqPath, 'utf8'));
const params = req.params;
const ctx = {
  input: {
    path: (e) => jsonPath(req.body, e),
    json: (e) => JSON.stringify(jsonPath(req.body, e)),
    params: (name) => {
      if (name === undefined) return params;
      for (const where of ['path', 'querystring', 'header']) {
        const v = (params[where] || {})[name];
        if (v !== undefined && v !== null) return v;
      }
      return '';
    },
  },
  util: { escapeJavaScript: escapeJs, parseJson: JSON.parse },
  context: { ...req.context },
};
const compiled = new velocity.Compile(velocity.parse(fs.readFileSync(tplPath, 'utf8')), { escape: false });
let len = 0;
for (let i = 0; i < Number(nStr); i++) len += compiled.render(ctx, null, true).length;
if (len === 0) console.log('empty');
