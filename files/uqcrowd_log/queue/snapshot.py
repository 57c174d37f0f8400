"""The queue's figures for the metrics, read in one pipelined round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson
import redis

from .keys import Keys
from .producer import refusal

FAULT_MAX_AGE_SECONDS = 600  # a fault an indexer stopped reporting (it stopped) ages out


@dataclass(frozen=True, slots=True)
class Snapshot:
    counters: dict[str, int]  # every process's counters; "accepted" with the stream's own count
    depth: int  # events waiting for Elasticsearch
    queued_bytes: int
    dead_letter_depth: int
    dead_letter_bytes: int
    quarantine_depth: int
    quarantine_bytes: int
    oldest_age_seconds: float  # of the oldest event not yet confirmed by Elasticsearch (0 when empty)
    indexer_faults: dict[str, str] = field(default_factory=dict)  # indexer -> the fault it reports
    unwritable: str = ""  # why Redis refuses writes ("" when it takes them)


def take(client: redis.Redis, keys: Keys) -> Snapshot:
    """Every figure at once. Raises redis.RedisError when Redis cannot be read."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stats).xinfo_stream(keys.stream).get(keys.queued_events).xlen(keys.stream)
        pipe.get(keys.queued_bytes).llen(keys.dead_letters).llen(keys.quarantine)
        pipe.mget(keys.dead_letter_bytes, keys.quarantine_bytes).xrange(keys.stream, count=1)
        pipe.hgetall(keys.faults).set(keys.probe, b"1")
        stats, stream, counted, entries, queued, dead, quarantined, side, oldest, faults, probe = pipe.execute(
            raise_on_error=False
        )
    for reply in (stats, counted, entries, queued, dead, quarantined, side, oldest, faults):
        if isinstance(reply, Exception):
            raise reply
    counters = {k.decode(): int(v) for k, v in stats.items()}
    added = 0 if isinstance(stream, redis.ResponseError) else int(stream["entries-added"])  # no stream yet
    # The enqueue script counts a request's other events; replayed events were counted when accepted.
    counters["accepted"] = counters.get("accepted", 0) + added - counters.get("replayed", 0)
    now = time.time()
    return Snapshot(
        counters=counters,
        # Entries of the earlier format (an event each) are not in the events counter: at least the
        # number of entries, so the depth is never 0 while any is queued.
        depth=max(int(counted or 0), int(entries)),
        queued_bytes=int(queued or 0),
        dead_letter_depth=int(dead),
        dead_letter_bytes=int(side[0] or 0),
        quarantine_depth=int(quarantined),
        quarantine_bytes=int(side[1] or 0),
        oldest_age_seconds=max(0.0, now - int(oldest[0][0].split(b"-")[0]) / 1000) if oldest else 0.0,
        indexer_faults={
            consumer.decode(): record["what"]
            for consumer, record in ((c, orjson.loads(raw)) for c, raw in faults.items())
            if now - record["at"] <= FAULT_MAX_AGE_SECONDS
        },
        unwritable=refusal(probe) if isinstance(probe, Exception) else "",
    )
