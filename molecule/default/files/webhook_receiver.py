"""Test stand-in for Slack: accepts webhook POSTs on loopback and records each payload, one JSON per line."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/var/lib/webhook-receiver/payloads.jsonl"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(LOG, "a") as log:
            log.write(json.dumps({"payload": json.loads(body)}) + "\n")  # not the path: it holds the token
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
