"""The durable queue: a Redis Stream with a consumer group, its counters and its side lists.

Backends append with one atomic script: refuse when the queued documents exceed the high-water
mark in bytes, else XADD per event and add their size to a byte counter (a request's events
travel as two arguments: their fields' lengths, and the fields end to end). The stream's own
entries-added figure counts accepted events, so the hot path writes nothing else.
The indexer reads with XREADGROUP; an entry leaves the stream (XACK + XDEL) only after
Elasticsearch confirmed it, so a crash re-delivers instead of losing. Acknowledging and
dead-lettering are scripts flagged allow-oom: they free memory, so they must work when Redis is
at maxmemory (a MULTI would be refused there).

Side lists: `dead-letter` holds events Elasticsearch refused for their content (bounded: when it
is full the indexer pauses rather than drop anything; replay puts them back in the stream);
`quarantine` holds events refused at the door (malformed in an otherwise good batch), capped,
oldest dropped and counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis

from .config import Settings
from .events import Invalid, Prepared

GROUP = "indexers"

# ARGV[1] the high-water mark; ARGV[2] the lengths of each event's id, day and document, ARGV[3] all of
# them end to end. Three arguments per request instead of three per event: the client packs a
# 20-event request in microseconds instead of tens of them, whatever bytes the fields hold.
_ENQUEUE = """#!lua
local queued = tonumber(redis.call('GET', KEYS[2]) or '0')
if queued > tonumber(ARGV[1]) then return -1 end
local data, fields, pos, added = ARGV[3], {}, 1, 0
for length in string.gmatch(ARGV[2], '%d+') do
  local n = tonumber(length)
  fields[#fields + 1] = string.sub(data, pos, pos + n - 1)
  pos = pos + n
  if #fields == 3 then
    redis.call('XADD', KEYS[1], '*', 'id', fields[1], 'day', fields[2], 'doc', fields[3])
    added = added + n
    fields = {}
  end
end
return redis.call('INCRBY', KEYS[2], added)
"""

# Removing entries confirmed (indexed or dead-lettered): XACK + XDEL, and their bytes off the counter.
# KEYS[2] stream, KEYS[3] byte counter; ARGV from `first`: stream id and size pairs.
_REMOVE = """
local function remove(first)
  local freed = 0
  for i = first, #ARGV, 2 do
    redis.call('XACK', KEYS[2], 'indexers', ARGV[i])
    if redis.call('XDEL', KEYS[2], ARGV[i]) == 1 then freed = freed + tonumber(ARGV[i + 1]) end
  end
  if redis.call('XLEN', KEYS[2]) == 0 then redis.call('SET', KEYS[3], 0) else redis.call('DECRBY', KEYS[3], freed) end
end
"""

# KEYS: stats, stream, bytes. ARGV: id and size pairs.
_ACK = (
    "#!lua flags=allow-oom\n"
    + _REMOVE
    + """
remove(1)
redis.call('HINCRBY', KEYS[1], 'indexed', #ARGV / 2)
"""
)

# KEYS: stats, stream, bytes, dead-letter list. ARGV: bound, number of records, records, id and size pairs.
# Returns -1, changing nothing, when the list would pass its bound.
_DEAD_LETTER = (
    "#!lua flags=allow-oom\n"
    + _REMOVE
    + """
local n = tonumber(ARGV[2])
if redis.call('LLEN', KEYS[4]) + n > tonumber(ARGV[1]) then return -1 end
for i = 3, 2 + n do redis.call('RPUSH', KEYS[4], ARGV[i]) end
redis.call('HINCRBY', KEYS[1], 'dead_lettered', n)
remove(3 + n)
return n
"""
)

# KEYS: dead-letter list, stream, bytes, stats. ARGV: how many. Moves the oldest records back into the stream.
_REPLAY = """#!lua
local records = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not records then return 0 end
local added = 0
for _, raw in ipairs(records) do
  local record = cjson.decode(raw)
  redis.call('XADD', KEYS[2], '*', 'id', record['event_id'], 'day', record['day'], 'doc', record['document'])
  added = added + #record['document']
end
redis.call('INCRBY', KEYS[3], added)
redis.call('HINCRBY', KEYS[4], 'replayed', #records)
return #records
"""


class QueueFull(Exception):
    """The queued events exceed the high-water mark (or Redis its maxmemory): retry later."""


class DeadLettersFull(Exception):
    """The dead-letter list is at its bound: the indexer pauses until someone replays or clears it."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued event, with the stream id that acknowledges it."""

    stream_id: bytes
    event: Prepared

    @property
    def size(self) -> int:
        return len(self.event.document)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def open_queue(settings: Settings) -> EventQueue:
    client = connect(settings.redis_url)
    return EventQueue(client, settings.redis_prefix, settings.dead_letter_max, settings.quarantine_max)


def _ids_and_sizes(entries: Sequence[Entry]) -> list[bytes | int]:
    args: list[bytes | int] = []
    for entry in entries:
        args += [entry.stream_id, entry.size]
    return args


class EventQueue:
    def __init__(
        self, client: redis.Redis, prefix: str, dead_letter_max: int = 100_000, quarantine_max: int = 10_000
    ) -> None:
        self.client = client
        self.stream = f"{prefix}:events"
        self.bytes = f"{prefix}:queued-bytes"
        self.stats = f"{prefix}:stats"
        self.dead_letters = f"{prefix}:dead-letter"
        self.quarantined = f"{prefix}:quarantine"
        self.faults = f"{prefix}:indexer-faults"
        self.dead_letter_max = dead_letter_max
        self.quarantine_max = quarantine_max
        self._enqueue = client.register_script(_ENQUEUE)
        self._ack = client.register_script(_ACK)
        self._dead_letter = client.register_script(_DEAD_LETTER)
        self._replay = client.register_script(_REPLAY)

    # ---- producers (the HTTP backends)
    def put(self, events: list[Prepared], high_water_bytes: int) -> int:
        """Append all events or none; returns the queued bytes after it."""
        parts = [part for e in events for part in (e.event_id.encode(), e.day.encode(), e.document)]
        lengths = " ".join(str(len(part)) for part in parts)
        args = [high_water_bytes, lengths, b"".join(parts)]
        try:
            queued = int(self._enqueue(keys=[self.stream, self.bytes], args=args))
        except redis.exceptions.OutOfMemoryError:
            raise QueueFull("redis is at its maxmemory") from None
        if queued < 0:
            raise QueueFull(f"queued events exceed {high_water_bytes} bytes")
        return queued

    def quarantine(self, invalid: list[Invalid], received: str, client_ip: str | None) -> None:
        """Keep events refused at the door, with their reason, and count them by reason."""
        records = [
            orjson.dumps(
                {
                    "stage": "ingest",
                    "reason": bad.reason,
                    "error": bad.message,
                    "received": received,
                    "client_ip": client_ip,
                    "event": bad.raw.decode(errors="replace"),
                }
            )
            for bad in invalid
        ]
        with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(self.quarantined, *records).ltrim(self.quarantined, -self.quarantine_max, -1)
            for bad in invalid:
                pipe.hincrby(self.stats, f"rejected:{bad.reason}", 1)
            pipe.hincrby(self.stats, "quarantined", len(records))
            pushed = pipe.execute()[0]
        if pushed > self.quarantine_max:
            self.count("quarantine_dropped", pushed - self.quarantine_max)

    def report_fault(self, consumer: str, what: str) -> None:
        """An indexer paused for a reason an operator must fix (read by the monitoring through metrics)."""
        self.client.hset(self.faults, consumer, orjson.dumps({"at": time.time(), "what": what}))

    def clear_fault(self, consumer: str) -> None:
        self.client.hdel(self.faults, consumer)

    def indexer_faults(self, max_age_seconds: float = 600) -> dict[str, str]:
        """The faults indexers reported and kept reporting (a stopped indexer's report ages out)."""
        faults = {}
        for consumer, raw in self.client.hgetall(self.faults).items():
            record = orjson.loads(raw)
            if time.time() - record["at"] <= max_age_seconds:
                faults[consumer.decode()] = record["what"]
        return faults

    def count(self, name: str, amount: int = 1) -> None:
        self.client.hincrby(self.stats, name, amount)

    def ping(self) -> bool:
        return bool(self.client.ping())

    # ---- observers (metrics, monitors, tools)
    def depth(self) -> int:
        return int(self.client.xlen(self.stream))

    def queued_bytes(self) -> int:
        return int(self.client.get(self.bytes) or 0)

    def dead_letter_depth(self) -> int:
        return int(self.client.llen(self.dead_letters))

    def quarantine_depth(self) -> int:
        return int(self.client.llen(self.quarantined))

    def dead_letter_records(self, start: int = 0, stop: int = -1) -> list[dict]:
        return [orjson.loads(raw) for raw in self.client.lrange(self.dead_letters, start, stop)]

    def quarantine_records(self, start: int = 0, stop: int = -1) -> list[dict]:
        return [orjson.loads(raw) for raw in self.client.lrange(self.quarantined, start, stop)]

    def counters(self) -> dict[str, int]:
        """The counters of every process; "accepted" includes what the stream says was ever added."""
        counters = {k.decode(): int(v) for k, v in self.client.hgetall(self.stats).items()}
        try:
            added = int(self.client.xinfo_stream(self.stream)["entries-added"])
        except redis.ResponseError:  # no stream yet
            added = 0
        counters["accepted"] = counters.get("accepted", 0) + added - counters.get("replayed", 0)
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

    def touch(self, consumer: str, entries: Sequence[Entry]) -> None:
        """Reset the idle time of entries this consumer still works on, so no other indexer claims them."""
        if entries:
            self.client.xclaim(self.stream, GROUP, consumer, 0, [e.stream_id for e in entries], justid=True)

    def ack(self, entries: Sequence[Entry]) -> None:
        """Elasticsearch has them: remove them from the stream (works at maxmemory)."""
        if entries:
            self._ack(keys=[self.stats, self.stream, self.bytes], args=_ids_and_sizes(entries))

    def dead_letter(self, rejected: Sequence[tuple[Prepared, str]], entries: Sequence[Entry] = ()) -> None:
        """Keep events Elasticsearch refused for their content aside, with the reason, then remove
        their stream entries, in one step. Raises DeadLettersFull, changing nothing, at the list's bound."""
        if not rejected:
            return
        records = [
            orjson.dumps({"event_id": e.event_id, "day": e.day, "error": error, "document": e.document.decode()})
            for e, error in rejected
        ]
        keys = [self.stats, self.stream, self.bytes, self.dead_letters]
        args = [self.dead_letter_max, len(records), *records, *_ids_and_sizes(entries)]
        if int(self._dead_letter(keys=keys, args=args)) < 0:
            raise DeadLettersFull(f"the dead-letter list holds its maximum of {self.dead_letter_max} events")

    def replay_dead_letters(self, count: int = 1000) -> int:
        """Put up to `count` of the oldest dead-lettered events back in the stream; returns how many."""
        return int(self._replay(keys=[self.dead_letters, self.stream, self.bytes, self.stats], args=[count]))

    @staticmethod
    def _entries(raw: list) -> list[Entry]:
        # An id without fields was deleted after its ack raced a crash: nothing left to deliver.
        return [
            Entry(stream_id, Prepared(f[b"id"].decode(), f[b"day"].decode(), f[b"doc"])) for stream_id, f in raw if f
        ]
