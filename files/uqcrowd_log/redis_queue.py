"""The durable queue: a Redis Stream with a consumer group, its counters and its side lists.

One stream entry holds one request's events (the fields `lengths` and `events`: each event's id, day
and document lengths, and those fields end to end), so a 20-event request is one XADD, one entry to
read and one id to acknowledge. Backends append with one atomic script: refuse when the queued
documents exceed the high-water mark in bytes, else add the entry and count its bytes and events
(the queue's depth in events). The stream's own entries-added figure counts one accepted event per
entry; the script adds a request's other events to the "accepted" counter.
The indexer reads with XREADGROUP; an entry leaves the stream (XACK + XDEL) only after Elasticsearch
confirmed every event of it, or refused some for their content and those are dead-lettered in the same
step, so a crash re-delivers instead of losing (a repeat of a stored event is stored once: it is
created under its id). Settling entries is a script flagged allow-oom: it frees memory, so it must
work when Redis is at maxmemory (a MULTI would be refused there).
Entries of one event each (`id`, `day`, `doc`), written by versions before entries held requests,
are still read, and drain as before.

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

# KEYS: stream, queued bytes, queued events, stats. ARGV[1] the high-water mark; ARGV[2] the lengths of
# each event's id, day and document, ARGV[3] all of them end to end; ARGV[4] how many events.
_ENQUEUE = """#!lua
local queued = tonumber(redis.call('GET', KEYS[2]) or '0')
if queued > tonumber(ARGV[1]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'lengths', ARGV[2], 'events', ARGV[3])
local n = tonumber(ARGV[4])
redis.call('INCRBY', KEYS[3], n)
if n > 1 then redis.call('HINCRBY', KEYS[4], 'accepted', n - 1) end
return redis.call('INCRBY', KEYS[2], #ARGV[3])
"""

# Settling entries: their refused events onto the dead-letter list, then XACK + XDEL, their bytes and
# events off the counters. KEYS: stats, stream, queued bytes, queued events, dead-letter list.
# ARGV: the list's bound, number of records, events indexed, the records, then (id, bytes, events) per entry.
# Returns -1, changing nothing, when the list would pass its bound.
_SETTLE = """#!lua flags=allow-oom
local records, indexed = tonumber(ARGV[2]), tonumber(ARGV[3])
if records > 0 then
  if redis.call('LLEN', KEYS[5]) + records > tonumber(ARGV[1]) then return -1 end
  for i = 4, 3 + records do redis.call('RPUSH', KEYS[5], ARGV[i]) end
  redis.call('HINCRBY', KEYS[1], 'dead_lettered', records)
end
local freed, events = 0, 0
for i = 4 + records, #ARGV, 3 do
  redis.call('XACK', KEYS[2], 'indexers', ARGV[i])
  if redis.call('XDEL', KEYS[2], ARGV[i]) == 1 then
    freed = freed + tonumber(ARGV[i + 1])
    events = events + tonumber(ARGV[i + 2])
  end
end
if redis.call('XLEN', KEYS[2]) == 0 then
  redis.call('SET', KEYS[3], 0)
  redis.call('SET', KEYS[4], 0)
else
  redis.call('DECRBY', KEYS[3], freed)
  redis.call('DECRBY', KEYS[4], events)
end
if indexed > 0 then redis.call('HINCRBY', KEYS[1], 'indexed', indexed) end
return records
"""

# KEYS: dead-letter list, stream, queued bytes, queued events, stats. ARGV: how many. Moves the oldest
# records back into the stream, one entry each.
_REPLAY = """#!lua
local records = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not records then return 0 end
local added = 0
for _, raw in ipairs(records) do
  local r = cjson.decode(raw)
  local lengths = #r['event_id'] .. ' ' .. #r['day'] .. ' ' .. #r['document']
  local events = r['event_id'] .. r['day'] .. r['document']
  redis.call('XADD', KEYS[2], '*', 'lengths', lengths, 'events', events)
  added = added + #events
end
redis.call('INCRBY', KEYS[3], added)
redis.call('INCRBY', KEYS[4], #records)
redis.call('HINCRBY', KEYS[5], 'replayed', #records)
return #records
"""


class QueueFull(Exception):
    """The queued events exceed the high-water mark (or Redis its maxmemory): retry later."""


class DeadLettersFull(Exception):
    """The dead-letter list is at its bound: the indexer pauses until someone replays or clears it."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry (one request's events), with the stream id that acknowledges it."""

    stream_id: bytes
    events: tuple[Prepared, ...]
    size: int  # the bytes the queue counted for it
    counted: int  # the events the queue's depth counted for it (0 for an entry of the earlier format)


def pack(events: Sequence[Prepared]) -> tuple[bytes, bytes]:
    """A request's events as a stream entry's two fields: the lengths of each event's id, day and
    document, and those fields end to end (whatever bytes a field holds, the next one does not shift)."""
    parts = [part for e in events for part in (e.event_id.encode(), e.day.encode(), e.document)]
    return " ".join(str(len(part)) for part in parts).encode(), b"".join(parts)


def unpack(lengths: bytes, data: bytes) -> tuple[Prepared, ...]:
    """The events `pack` wrote. Raises ValueError if the fields do not match each other."""
    try:
        sizes = [int(n) for n in lengths.split()]
    except ValueError:
        raise ValueError(f"an entry's lengths are not numbers: {lengths[:80]!r}") from None
    if len(sizes) % 3 or sum(sizes) != len(data):
        raise ValueError(f"an entry's lengths ({len(sizes)} of them) do not match its {len(data)} bytes")
    fields, pos = [], 0
    for n in sizes:
        fields.append(data[pos : pos + n])
        pos += n
    return tuple(Prepared(fields[i].decode(), fields[i + 1].decode(), fields[i + 2]) for i in range(0, len(fields), 3))


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def open_queue(settings: Settings) -> EventQueue:
    client = connect(settings.redis_url)
    return EventQueue(client, settings.redis_prefix, settings.dead_letter_max, settings.quarantine_max)


def _entry_args(entries: Sequence[Entry]) -> list[bytes | int]:
    args: list[bytes | int] = []
    for entry in entries:
        args += [entry.stream_id, entry.size, entry.counted]
    return args


class EventQueue:
    def __init__(
        self, client: redis.Redis, prefix: str, dead_letter_max: int = 100_000, quarantine_max: int = 10_000
    ) -> None:
        self.client = client
        self.stream = f"{prefix}:events"
        self.bytes = f"{prefix}:queued-bytes"
        self.queued = f"{prefix}:queued-events"
        self.stats = f"{prefix}:stats"
        self.dead_letters = f"{prefix}:dead-letter"
        self.quarantined = f"{prefix}:quarantine"
        self.faults = f"{prefix}:indexer-faults"
        self.dead_letter_max = dead_letter_max
        self.quarantine_max = quarantine_max
        self._enqueue = client.register_script(_ENQUEUE)
        self._settle = client.register_script(_SETTLE)
        self._replay = client.register_script(_REPLAY)

    # ---- producers (the HTTP backends)
    def put(self, events: list[Prepared], high_water_bytes: int) -> int:
        """Append all events, as one entry, or none; returns the queued bytes after it."""
        lengths, data = pack(events)
        keys = [self.stream, self.bytes, self.queued, self.stats]
        try:
            queued = int(self._enqueue(keys=keys, args=[high_water_bytes, lengths, data, len(events)]))
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
        """Events waiting for Elasticsearch. Entries of the earlier format (an event each) are not in the
        events counter; at least the number of entries, so the depth is never 0 while any is queued."""
        with self.client.pipeline(transaction=False) as pipe:
            counted, entries = pipe.get(self.queued).xlen(self.stream).execute()
        return max(int(counted or 0), int(entries))

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
        """The counters of every process; "accepted" includes the entries the stream says were ever added
        (the enqueue script counts a request's other events)."""
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

    def settle(self, entries: Sequence[Entry], rejected: Sequence[tuple[Prepared, str]] = ()) -> None:
        """Elasticsearch has every event of these entries, apart from `rejected`, which it refused for their
        content: keep those aside with the reason, and remove the entries, in one step (works at
        maxmemory). Raises DeadLettersFull, changing nothing, when the list would pass its bound."""
        indexed = sum(len(e.events) for e in entries) - len(rejected)
        self._remove(entries, rejected, indexed)

    def dead_letter(self, rejected: Sequence[tuple[Prepared, str]]) -> None:
        """Keep events Elasticsearch refused for their content aside, with the reason (direct mode, where
        nothing was queued). Raises DeadLettersFull, changing nothing, at the list's bound."""
        self._remove((), rejected, 0)

    def _remove(self, entries: Sequence[Entry], rejected: Sequence[tuple[Prepared, str]], indexed: int) -> None:
        if not entries and not rejected:
            return
        records = [
            orjson.dumps({"event_id": e.event_id, "day": e.day, "error": error, "document": e.document.decode()})
            for e, error in rejected
        ]
        keys = [self.stats, self.stream, self.bytes, self.queued, self.dead_letters]
        args = [self.dead_letter_max, len(records), indexed, *records, *_entry_args(entries)]
        if int(self._settle(keys=keys, args=args)) < 0:
            raise DeadLettersFull(f"the dead-letter list holds its maximum of {self.dead_letter_max} events")

    def replay_dead_letters(self, count: int = 1000) -> int:
        """Put up to `count` of the oldest dead-lettered events back in the stream; returns how many."""
        keys = [self.dead_letters, self.stream, self.bytes, self.queued, self.stats]
        return int(self._replay(keys=keys, args=[count]))

    @staticmethod
    def _entries(raw: list) -> list[Entry]:
        entries = []
        for stream_id, f in raw:
            if not f:  # an id without fields was deleted after its ack raced a crash: nothing left to deliver
                continue
            if b"events" in f:
                events = unpack(f[b"lengths"], f[b"events"])
                entries.append(Entry(stream_id, events, len(f[b"events"]), len(events)))
            else:  # one event, written before entries held requests
                event = Prepared(f[b"id"].decode(), f[b"day"].decode(), f[b"doc"])
                entries.append(Entry(stream_id, (event,), len(f[b"doc"]), 0))
        return entries
