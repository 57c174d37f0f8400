"""Test backend for the haproxy scenario: answers like a logger backend and records what reached it."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
LOG = f"/var/log/echo-backend-{PORT}.log"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path} {length}\n")
        return length

    def do_GET(self) -> None:
        if self.path == "/logger/ready":
            self._answer(200, {"status": "ready"})
            return
        self._record()
        self._answer(405, {"error": "method not allowed"})

    def do_HEAD(self) -> None:  # as the logger: only POST on /logger/insert
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = self._record()
        self._answer(202, {"port": PORT, "xff": self.headers.get("X-Forwarded-For"), "length": length})

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
