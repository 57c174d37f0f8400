"""The durable queue: a Redis Stream with a consumer group, its counters and its dead-letter list.

Backends append with one atomic script (high-water check, then XADD per event); the stream's own
entries-added figure counts accepted events, so the hot path writes nothing else.
The indexer reads with XREADGROUP; an entry leaves the stream (XACK + XDEL) only after
Elasticsearch confirmed it, so a crash re-delivers instead of losing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
import redis

from .events import Prepared

GROUP = "indexers"

_ENQUEUE = """
local depth = redis.call('XLEN', KEYS[1])
if depth > tonumber(ARGV[1]) then return -1 end
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'day', ARGV[i + 1], 'doc', ARGV[i + 2])
end
return depth + (#ARGV - 1) / 3
"""


class QueueFull(Exception):
    """The stream holds more than the high-water mark: the client should retry later."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued event, with the stream id that acknowledges it."""

    stream_id: bytes
    event: Prepared


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


class EventQueue:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.stream = f"{prefix}:events"
        self.stats = f"{prefix}:stats"
        self.dead_letters = f"{prefix}:dead-letter"
        self._enqueue = client.register_script(_ENQUEUE)

    # ---- producers (the HTTP backends)
    def put(self, events: list[Prepared], high_water: int) -> int:
        """Append all events or none; returns the new depth."""
        args: list[str | bytes | int] = [high_water]
        for event in events:
            args += [event.event_id, event.day, event.document]
        depth = int(self._enqueue(keys=[self.stream], args=args))
        if depth < 0:
            raise QueueFull(f"queue holds more than {high_water} events")
        return depth

    def count(self, name: str, amount: int = 1) -> None:
        self.client.hincrby(self.stats, name, amount)

    def ping(self) -> bool:
        return bool(self.client.ping())

    # ---- observers (metrics, monitors)
    def depth(self) -> int:
        return int(self.client.xlen(self.stream))

    def dead_letter_depth(self) -> int:
        return int(self.client.llen(self.dead_letters))

    def counters(self) -> dict[str, int]:
        """The counters of every process; "accepted" includes what the stream says was ever added."""
        counters = {k.decode(): int(v) for k, v in self.client.hgetall(self.stats).items()}
        try:
            added = int(self.client.xinfo_stream(self.stream)["entries-added"])
        except redis.ResponseError:  # no stream yet
            added = 0
        counters["accepted"] = counters.get("accepted", 0) + added
        return counters

    def oldest_age_seconds(self) -> float:
        """Age of the oldest event not yet confirmed by Elasticsearch (0 when empty)."""
        oldest = self.client.xrange(self.stream, count=1)
        if not oldest:
            return 0.0
        millis = int(oldest[0][0].split(b"-")[0])
        return max(0.0, time.time() - millis / 1000)

    # ---- the consumer (the indexer)
    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int | None, held: bool = False) -> list[Entry]:
        """New entries (or, with held=True, those this consumer read but never acknowledged)."""
        reply = self.client.xreadgroup(
            GROUP, consumer, {self.stream: "0" if held else ">"}, count=count, block=None if held else block_ms
        )
        return self._entries(reply[0][1] if reply else [])

    def claim_idle(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries another consumer read and then left (it crashed or was renamed)."""
        reply = self.client.xautoclaim(self.stream, GROUP, consumer, min_idle_ms, "0-0", count=count)
        return self._entries(reply[1])

    def ack(self, entries: list[Entry]) -> None:
        if not entries:
            return
        ids = [e.stream_id for e in entries]
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, *ids).xdel(self.stream, *ids)
            pipe.hincrby(self.stats, "indexed", len(ids)).execute()

    def dead_letter(self, rejected: list[tuple[Prepared, str]], stream_ids: list[bytes] | None = None) -> None:
        """Keep events Elasticsearch refused for their content aside, with the reason (and ack them)."""
        if not rejected:
            return
        records = [
            orjson.dumps({"event_id": e.event_id, "day": e.day, "error": error, "document": e.document.decode()})
            for e, error in rejected
        ]
        with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self.dead_letters, *records)
            if stream_ids:
                pipe.xack(self.stream, GROUP, *stream_ids).xdel(self.stream, *stream_ids)
            pipe.hincrby(self.stats, "dead_lettered", len(records)).execute()

    @staticmethod
    def _entries(raw: list) -> list[Entry]:
        # An id without fields was deleted after its ack raced a crash: nothing left to deliver.
        return [
            Entry(stream_id, Prepared(f[b"id"].decode(), f[b"day"].decode(), f[b"doc"])) for stream_id, f in raw if f
        ]
