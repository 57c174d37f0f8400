"""The indexer's side of the queue: read entries in the consumer group, claim those a dead indexer
left, settle them once Elasticsearch answered, and report the faults that pause indexing.

An entry leaves the stream (XACK + XDEL) only after Elasticsearch confirmed every event of it, or
refused some for their content and those are dead-lettered in the same step, so a crash re-delivers
instead of losing (a repeat of a stored event is stored once: it is created under its id).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import redis

from ..config import Settings
from ..events import Prepared
from . import entries, records, scripts
from .connection import client_of
from .entries import Entry
from .keys import GROUP, Keys
from .side_lists import SideLimits


class Consumer:
    def __init__(self, client: redis.Redis, keys: Keys, name: str, dead_letter_limits: SideLimits) -> None:
        self.client = client
        self.keys = keys
        self.name = name
        self.dead_letter_limits = dead_letter_limits
        self._settle = scripts.load(client, "settle")

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> Consumer:
        client = client or client_of(settings)
        keys = Keys.of(settings.redis.prefix)
        return cls(client, keys, settings.indexer.consumer, SideLimits.dead_letters(settings))

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int, block_ms: int | None, held: bool = False) -> list[Entry]:
        """New entries (or, with held=True, those this consumer read but never acknowledged)."""
        reply = self.client.xreadgroup(
            GROUP, self.name, {self.keys.stream: "0" if held else ">"}, count=count, block=None if held else block_ms
        )
        return entries.read(reply[0][1] if reply else [])

    def claim_idle(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries another consumer read and then left (it crashed or was renamed)."""
        reply = self.client.xautoclaim(self.keys.stream, GROUP, self.name, min_idle_ms, "0-0", count=count)
        return entries.read(reply[1])

    def touch(self, held: Sequence[Entry]) -> None:
        """Reset the idle time of entries this consumer still works on, so no other indexer claims them."""
        if held:
            self.client.xclaim(self.keys.stream, GROUP, self.name, 0, [e.stream_id for e in held], justid=True)

    def settle(self, done: Sequence[Entry], rejected: Sequence[tuple[Prepared, str]] = (), withdrawn: int = 0) -> None:
        """Elasticsearch has every event of these entries, apart from `rejected`, which it refused for their
        content, and the `withdrawn` events of withdrawn workers, never sent to it: keep the refused aside
        with the reason (the list's oldest dropped beyond its bounds, counted), count the withdrawn, and
        remove the entries, in one step (works at maxmemory)."""
        if not done:
            return
        k, limits = self.keys, self.dead_letter_limits
        indexed = sum(len(e.events) for e in done) - len(rejected) - withdrawn
        dead = records.dead_letters(rejected)
        settled = [arg for entry in done for arg in (entry.stream_id, entry.size, entry.counted)]
        self._settle(
            keys=[k.stats, k.stream, k.queued_bytes, k.queued_events, k.dead_letters, k.dead_letter_bytes],
            args=[GROUP, limits.records, limits.bytes, len(dead), indexed, withdrawn, *dead, *settled],
        )

    def report_fault(self, what: str) -> None:
        """This indexer paused for a reason an operator must fix (read by the monitoring through metrics)."""
        self.client.hset(self.keys.faults, self.name, orjson.dumps({"at": time.time(), "what": what}))

    def clear_fault(self) -> None:
        self.client.hdel(self.keys.faults, self.name)


def wait_for_delivered(client: redis.Redis, keys: Keys, timeout: float) -> bool:
    """Wait until every entry an indexer has read so far is settled (none is then on its way to
    Elasticsearch unchecked); False if some still were after `timeout` (an indexer waiting to retry
    checks them again before each try)."""
    try:
        groups = {g["name"].decode(): g for g in client.xinfo_groups(keys.stream)}
    except redis.ResponseError:  # no stream yet: nothing was ever read
        return True
    if GROUP not in groups:
        return True
    mark = groups[GROUP]["last-delivered-id"]
    deadline = time.monotonic() + timeout
    while client.xpending_range(keys.stream, GROUP, min="-", max=mark, count=1):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
