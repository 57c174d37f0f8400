"""Test backend for the haproxy scenario: answers like a logger backend and records what reached it
(each request in LOG, the body of each insert in BODIES), and serves the real tracker's scripts."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(sys.argv[1])
LOG = f"/var/log/echo-backend-{PORT}.log"
BODIES = f"/var/log/echo-backend-{PORT}.bodies"
SCRIPTS = Path("/usr/local/share/echo-backend")  # the repository's files/uqcrowd_log/static (prepare.yml)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: dict | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.headers.get("Origin"):  # as the logger answers a task page on another origin
            self.send_header("Access-Control-Allow-Origin", self.headers["Origin"])
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path} {length}\n")
        if self.path.startswith("/logger/insert") and self.command == "POST":
            with open(BODIES, "a") as bodies:
                bodies.write(body.decode(errors="replace") + "\n")
        return length

    def do_GET(self) -> None:
        if self.path == "/logger/ready":
            self._answer(200, {"status": "ready"})
            return
        script = SCRIPTS / self.path.removeprefix("/logger/")
        if self.path in ("/logger/logger.js", "/logger/fingerprint.js") and script.exists():
            self._answer(200, script.read_bytes(), "application/javascript")
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
