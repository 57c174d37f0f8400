"""Run one HTTP backend under Granian, a production WSGI server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from flask import Flask
from granian import Granian
from granian.constants import Interfaces

from . import logs
from .config import Settings


def serve(port: int, settings: Settings, factory: str = "uqcrowd_log.server:serving_app") -> None:
    """Serve the app `factory` makes (an ingest backend's by default) on `port`: HTTPS when the settings
    name a certificate and its key, else HTTP."""
    tls = {"ssl_cert": Path(settings.server.tls_cert_file), "ssl_key": Path(settings.server.tls_key_file)}
    Granian(
        factory,
        factory=True,
        address=settings.server.bind_host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=settings.server.threads,
        working_dir=Path(__file__).resolve().parent.parent,
        log_access=False,
        **(tls if settings.server.tls_cert_file else {}),
    ).serve()


def serving_app() -> Flask:
    """The WSGI factory Granian's worker calls. Granian's main process has bound the port before it
    starts the worker, so once the app exists the backend serves: systemd is told so."""
    from .web import app_from_env  # here: a backend loads neither the dashboard nor Elasticsearch's client

    logs.setup()
    app = app_from_env()
    notify_ready()
    return app


def serving_dashboard() -> Flask:
    """The WSGI factory of the dashboard's process (uqcrowd-logger dashboard)."""
    from .dashboard.app import dashboard_from_env

    logs.setup()
    app = dashboard_from_env()
    notify_ready()
    return app


def notify_ready() -> None:
    """sd_notify(READY=1) for a Type=notify unit (started under systemd only when NOTIFY_SOCKET is set):
    `systemctl start` returns, and units ordered after this one (HAProxy) start, once it serves."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")
