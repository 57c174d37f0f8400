"""The processes' log format, in one place: one line per record to stderr, which systemd's journal
stamps with the time and the unit."""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup() -> None:
    """Log INFO and above (called first by each process: a backend's or the dashboard's worker, the indexer)."""
    logging.basicConfig(level=logging.INFO, format=FORMAT)
