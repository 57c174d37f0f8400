"""The withdrawn-workers register: the ids of the workers (an MTurk worker id or a Prolific PID: the
events' `worker_id`) who withdrew their consent, and nothing else about them.

It is a Redis set beside the queue, because every path that stores events already reads Redis and
must check it before storing: the backends at ingest (the insert's own script checks it, in the same
round trip: queue/lua/enqueue.lua; the direct mode asks SMISMEMBER), the indexer before
each bulk (what was queued before the withdrawal), `dead-letters replay` (through the indexer) and
`uqcrowd-log import`. Redis keeps it as durably as the queue (its append-only file, synced on every
write by default). `uqcrowd-log withdraw` writes it before deleting anything; `withdraw --undo`
takes an id out again. Events of a withdrawn worker are dropped and counted (`withdrawn`), never stored.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from .config import Settings
from .queue.connection import client_of
from .queue.keys import Keys


class Register:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> Register:
        client = client or client_of(settings)
        return cls(client, Keys.of(settings.redis.prefix).withdrawn)

    def add(self, worker_id: str) -> bool:
        """True if the worker was not in the register yet."""
        return bool(self.client.sadd(self.key, worker_id))

    def remove(self, worker_id: str) -> bool:
        """True if the worker was in the register."""
        return bool(self.client.srem(self.key, worker_id))

    def among(self, worker_ids: Iterable[str]) -> set[str]:
        """Those of these workers who withdrew (one round trip; none when no id is given)."""
        ids = sorted(set(worker_ids))
        if not ids:
            return set()
        return {
            worker for worker, withdrawn in zip(ids, self.client.smismember(self.key, ids), strict=True) if withdrawn
        }

    def size(self) -> int:
        return int(self.client.scard(self.key))
