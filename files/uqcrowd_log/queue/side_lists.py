"""The side lists, for the operator and the researcher's command line: what they hold, putting
dead letters back in the stream, and taking a withdrawn worker's records out.

`dead-letter` holds events Elasticsearch refused for their content (replay puts them back in the
stream); `quarantine` holds events refused at the door (malformed in an otherwise good batch). Each
is bounded in records and in bytes, its oldest dropped and counted beyond either, and its bytes count
against the queue's high-water mark: whatever one client sends that is refused, it cannot take the room
of another client's good events, nor stop indexing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis

from ..config import Settings
from ..events import Prepared
from . import records, scripts
from .connection import client_of
from .entries import pack
from .keys import GROUP, Keys


@dataclass(frozen=True, slots=True)
class SideLimits:
    """A side list's bounds: beyond either, its oldest records are dropped (and counted)."""

    records: int
    bytes: int

    @classmethod
    def dead_letters(cls, settings: Settings) -> SideLimits:
        return cls(settings.queue.dead_letter_max, settings.queue.dead_letter_max_bytes)

    @classmethod
    def quarantine(cls, settings: Settings) -> SideLimits:
        return cls(settings.queue.quarantine_max, settings.queue.quarantine_max_bytes)


class SideLists:
    def __init__(self, client: redis.Redis, keys: Keys, dead_letter_limits: SideLimits) -> None:
        self.client = client
        self.keys = keys
        self.dead_letter_limits = dead_letter_limits
        self._settle = scripts.load(client, "settle")
        self._purge_worker = scripts.load(client, "purge_worker")

    @classmethod
    def from_settings(cls, settings: Settings) -> SideLists:
        client = client_of(settings)
        return cls(client, Keys.of(settings.redis.prefix), SideLimits.dead_letters(settings))

    def dead_letter(self, rejected: Sequence[tuple[Prepared, str]]) -> None:
        """Keep events Elasticsearch refused for their content aside, with the reason (direct mode, where
        nothing was queued): the settling script, without entries."""
        if not rejected:
            return
        k, limits = self.keys, self.dead_letter_limits
        keys = [k.stats, k.stream, k.queued_bytes, k.queued_events, k.dead_letters, k.dead_letter_bytes]
        dead = records.dead_letters(rejected)
        self._settle(keys=keys, args=[GROUP, limits.records, limits.bytes, len(dead), 0, 0, *dead])

    def dead_letter_records(self, start: int = 0, stop: int = -1) -> list[dict]:
        return [orjson.loads(raw) for raw in self.client.lrange(self.keys.dead_letters, start, stop)]

    def quarantine_records(self, start: int = 0, stop: int = -1) -> list[dict]:
        return [orjson.loads(raw) for raw in self.client.lrange(self.keys.quarantine, start, stop)]

    def dead_letter_depth(self) -> int:
        return int(self.client.llen(self.keys.dead_letters))

    def quarantine_depth(self) -> int:
        return int(self.client.llen(self.keys.quarantine))

    def replay_dead_letters(self, count: int = 1000) -> int:
        """Put up to `count` of the oldest dead-lettered events back in the stream, an entry each, in one
        transaction (retried if the list changed meanwhile); returns how many."""
        k = self.keys
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k.dead_letters, k.dead_letter_bytes)
                    raw = pipe.lrange(k.dead_letters, 0, count - 1)
                    if not raw:
                        return 0
                    left = int(pipe.llen(k.dead_letters)) - len(raw)
                    held = int(pipe.get(k.dead_letter_bytes) or 0) - sum(len(r) for r in raw)
                    pipe.multi()
                    pipe.ltrim(k.dead_letters, len(raw), -1)
                    added = 0
                    for record in raw:
                        lengths, data = pack([records.event_of_dead_letter(record)])
                        pipe.xadd(k.stream, {"lengths": lengths, "events": data})
                        added += len(data)
                    pipe.incrby(k.queued_bytes, added)
                    pipe.incrby(k.queued_events, len(raw))
                    pipe.hincrby(k.stats, "replayed", len(raw))
                    pipe.set(k.dead_letter_bytes, max(0, held) if left else 0)
                    pipe.execute()
                    return len(raw)
                except redis.WatchError:
                    continue

    def purge_worker(self, worker_id: str) -> dict[str, int]:
        """Remove one worker's events from the dead letters and the quarantine; how many from each."""
        k = self.keys
        return {
            "dead_letters": int(self._purge_worker(keys=[k.dead_letters, k.dead_letter_bytes], args=[worker_id])),
            "quarantine": int(self._purge_worker(keys=[k.quarantine, k.quarantine_bytes], args=[worker_id])),
        }
