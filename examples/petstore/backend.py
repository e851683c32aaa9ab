#!/usr/bin/env python3
"""A tiny HTTP backend for the PetStore example's /proxy/{proxy+} route.

Answers every request with JSON describing what it received, so you can see what API Gateway
(Turnpike) forwarded. Usage: python3 examples/petstore/backend.py [PORT]   (default 8000)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        payload = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body},
            indent=2,
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write("backend: " + fmt % args + "\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"backend listening on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
