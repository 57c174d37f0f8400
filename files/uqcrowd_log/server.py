"""Run one HTTP backend under Granian, a production WSGI server."""

from __future__ import annotations

from pathlib import Path

from granian import Granian
from granian.constants import Interfaces

from .config import Settings


def serve(port: int, settings: Settings) -> None:
    Granian(
        "uqcrowd_log.web:app_from_env",
        factory=True,
        address=settings.bind_host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=settings.threads,
        working_dir=Path(__file__).resolve().parent.parent,
        log_access=False,
    ).serve()
