"""Where a backend puts the events it accepted: the Redis queue (`queue.py`, the default) or straight
into Elasticsearch before answering (`direct.py`, the original's behaviour). Only the direct sink
imports Elasticsearch's client (and the pyarrow and numpy it loads when they are installed: about 90 MB
a process), so a backend of the queue stays without it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ..events import Prepared


class Sink(Protocol):
    def put(self, events: list[Prepared], workers: Collection[str] = ()) -> None:
        """Store all events durably before returning, or none: WorkerWithdrawn if one of `workers` (the
        events' workers) is in the withdrawn-workers register; QueueFull or StoreUnavailable."""

    def unready(self) -> str:
        """Why an insert would fail now, in one line; "" while the store takes events."""
