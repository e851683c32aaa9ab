'use strict';
// A minimal Node.js Lambda runtime for Turnpike: the Runtime API loop AWS's nodejs runtime runs
// (GET /invocation/next, call the handler, POST .../response or .../error) and nothing else.
// Like AWS's runtime, which talks to the Runtime API through a native HTTP client rather than
// Node's `http` module, it speaks HTTP/1.1 itself over one keep-alive socket.
// Usage: node runtime.js FILE.EXPORT   (AWS_LAMBDA_RUNTIME_API is set by Turnpike)
const net = require('net');
const path = require('path');

const spec = process.argv[2] || process.env._HANDLER;
const dot = spec.lastIndexOf('.');
const handler = require(path.resolve(spec.slice(0, dot)))[spec.slice(dot + 1)];
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
const BASE = '/2018-06-01/runtime/invocation/';

const sock = net.connect(Number(port), host);
sock.setNoDelay(true);
let buf = Buffer.alloc(0);
let waiting = null; // resolve of the response being read

sock.on('data', (d) => {
  buf = buf.length ? Buffer.concat([buf, d]) : d;
  parse();
});
sock.on('error', (e) => { console.error(e); process.exit(1); });
sock.on('close', () => process.exit(0));

// One response at a time: status line, headers (names lower-cased), Content-Length body.
function parse() {
  if (!waiting) return;
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return;
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    headers[lines[i].slice(0, c).toLowerCase()] = lines[i].slice(c + 1).trim();
  }
  const len = Number(headers['content-length'] || 0);
  if (buf.length < end + 4 + len) return;
  const body = buf.toString('utf8', end + 4, end + 4 + len);
  buf = buf.subarray(end + 4 + len);
  const resolve = waiting;
  waiting = null;
  resolve({ status: Number(lines[0].split(' ')[1]), headers, body });
}

function call(method, p, body) {
  return new Promise((resolve) => {
    waiting = resolve;
    const b = body === undefined ? '' : body;
    sock.write(`${method} ${BASE}${p} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n`
      + `Content-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`);
    parse();
  });
}

async function main() {
  for (;;) {
    const next = await call('GET', 'next');
    if (next.status !== 200) process.exit(0);
    const id = next.headers['lambda-runtime-aws-request-id'];
    const deadline = Number(next.headers['lambda-runtime-deadline-ms']);
    const context = {
      awsRequestId: id,
      invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    try {
      const result = await handler(JSON.parse(next.body), context);
      await call('POST', `${id}/response`, JSON.stringify(result === undefined ? null : result));
    } catch (e) {
      const err = { errorType: (e && e.name) || 'Error', errorMessage: String(e && e.message), stackTrace: [] };
      await call('POST', `${id}/error`, JSON.stringify(err));
    }
  }
}

sock.on('connect', () => main().catch((e) => { console.error(e); process.exit(1); }));
