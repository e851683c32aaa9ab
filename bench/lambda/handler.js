'use strict';
// The trivial echo function of bench/lambda-bench.py, run unchanged by both sides: a REST API
// Lambda proxy (payload 1.0) answer that echoes the request path.
module.exports.echo = async (event) => ({
  statusCode: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ ok: true, path: event.path }),
});
