"""L1 of `make bench`: the least a Flask app on Granian does per request, served the way the
backends are (files/uqcrowd_log/server.py: one worker, the same blocking threads), so that the stack's
single-event rate can be read against the ceiling of the web stack it is built on.

    python bench/minimal_app.py PORT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, Response, request
from granian import Granian
from granian.constants import Interfaces

ACCEPTED = b'{"accepted":1,"rejected":0}\n'


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/logger/insert")
    def insert() -> Response:
        request.get_data(cache=False)  # read the body, as the service does; keep nothing
        return Response(ACCEPTED, status=202, mimetype="application/json")

    @app.get("/logger/ready")
    @app.get("/logger/health")
    def ready() -> Response:
        return Response(b'{"status":"ready"}\n', mimetype="application/json")

    return app


if __name__ == "__main__":
    Granian(
        "minimal_app:create_app",
        factory=True,
        address="127.0.0.1",
        port=int(sys.argv[1]),
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=int(os.environ.get("UQCROWD_THREADS", "8")),
        working_dir=Path(__file__).resolve().parent,
        log_access=False,
    ).serve()
