#!/usr/bin/env python3
"""A tiny stand-in backend for the README walkthrough: prints every request it gets and
answers 200. Run: python3 examples/receiver.py [port] (default 9000, on 127.0.0.1)."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length)
        print(f"--> {self.command} {self.path}", flush=True)
        for name in ("idempotency-key", "x-stripe-event-id", "x-stripe-event-type",
                     "webhook-id", "webhook-signature"):
            if self.headers.get(name):
                print(f"    {name}: {self.headers[name]}", flush=True)
        print(f"    {body.decode('utf-8', 'replace')}", flush=True)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
print(f"receiver listening on http://127.0.0.1:{port}", flush=True)
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
