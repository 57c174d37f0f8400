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

Side lists: `dead-letter` holds events Elasticsearch refused for their content (replay puts them back in
the stream); `quarantine` holds events refused at the door (malformed in an otherwise good batch). Each
is bounded in records and in bytes, its oldest dropped and counted beyond either, and its bytes count
against the queue's high-water mark: whatever one client sends that is refused, it cannot take the room
of another client's good events, nor stop indexing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis

from .config import Settings
from .events import Invalid, Prepared
from .withdrawn import Register

GROUP = "indexers"

# KEYS: stream, queued bytes, queued events, stats, quarantine bytes, dead-letter bytes. ARGV[1] the
# high-water mark; ARGV[2] the lengths of each event's id, day and document, ARGV[3] all of them end to
# end; ARGV[4] how many events. The side lists' bytes count against the mark with the queued ones.
_ENQUEUE = """#!lua
local counted = redis.call('MGET', KEYS[2], KEYS[5], KEYS[6])
local used = tonumber(counted[1] or '0') + tonumber(counted[2] or '0') + tonumber(counted[3] or '0')
if used > tonumber(ARGV[1]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'lengths', ARGV[2], 'events', ARGV[3])
local n = tonumber(ARGV[4])
redis.call('INCRBY', KEYS[3], n)
if n > 1 then redis.call('HINCRBY', KEYS[4], 'accepted', n - 1) end
return redis.call('INCRBY', KEYS[2], #ARGV[3])
"""

# A side list (quarantine, dead letters) and the counter of its bytes: records appended, then the oldest
# dropped while the list holds more records or bytes than its bounds. Returns how many were dropped.
_APPEND_BOUNDED = """
local function append_bounded(list, bytes_key, max_records, max_bytes, records)
  local added = 0
  for _, record in ipairs(records) do
    redis.call('RPUSH', list, record)
    added = added + #record
  end
  local bytes = tonumber(redis.call('INCRBY', bytes_key, added))
  local length = redis.call('LLEN', list)
  local dropped = 0
  while length > 0 and (length > max_records or bytes > max_bytes) do
    bytes = bytes - #redis.call('LPOP', list)
    length, dropped = length - 1, dropped + 1
  end
  if length == 0 or bytes < 0 then bytes = 0 end  -- a list written before its bytes were counted
  redis.call('SET', bytes_key, bytes)
  return dropped
end
"""

# KEYS: quarantine list, its bytes, stats. ARGV: most records kept, most bytes kept, then the records.
_QUARANTINE = (
    "#!lua"
    + _APPEND_BOUNDED
    + """
local dropped = append_bounded(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), {unpack(ARGV, 3)})
redis.call('HINCRBY', KEYS[3], 'quarantined', #ARGV - 2)
if dropped > 0 then redis.call('HINCRBY', KEYS[3], 'quarantine_dropped', dropped) end
return dropped
"""
)

# Settling entries: their refused events onto the dead-letter list (its oldest dropped beyond its
# bounds, counted), then XACK + XDEL, their bytes and events off the counters. KEYS: stats, stream,
# queued bytes, queued events, dead-letter list, its bytes. ARGV: the list's most records and most
# bytes, number of records, events indexed, events of withdrawn workers dropped, the records, then
# (id, bytes, events) per entry.
_SETTLE = (
    "#!lua flags=allow-oom"
    + _APPEND_BOUNDED
    + """
local records, indexed, withdrawn = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if records > 0 then
  local dropped = append_bounded(KEYS[5], KEYS[6], tonumber(ARGV[1]), tonumber(ARGV[2]), {unpack(ARGV, 6, 5 + records)})
  redis.call('HINCRBY', KEYS[1], 'dead_lettered', records)
  if dropped > 0 then redis.call('HINCRBY', KEYS[1], 'dead_letter_dropped', dropped) end
end
local freed, events = 0, 0
for i = 6 + records, #ARGV, 3 do
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
if withdrawn > 0 then redis.call('HINCRBY', KEYS[1], 'withdrawn', withdrawn) end
return records
"""
)

# KEYS: dead-letter list, stream, queued bytes, queued events, stats, the list's bytes. ARGV: how many.
# Moves the oldest records back into the stream, one entry each.
_REPLAY = """#!lua
local records = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not records then return 0 end
local added, taken = 0, 0
for _, raw in ipairs(records) do
  local r = cjson.decode(raw)
  local lengths = #r['event_id'] .. ' ' .. #r['day'] .. ' ' .. #r['document']
  local events = r['event_id'] .. r['day'] .. r['document']
  redis.call('XADD', KEYS[2], '*', 'lengths', lengths, 'events', events)
  added, taken = added + #events, taken + #raw
end
redis.call('INCRBY', KEYS[3], added)
redis.call('INCRBY', KEYS[4], #records)
redis.call('HINCRBY', KEYS[5], 'replayed', #records)
if redis.call('DECRBY', KEYS[6], taken) < 0 or redis.call('LLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[6], 0) end
return #records
"""


# A withdrawal: the records of one worker's events out of a side list, its bytes counted again. A
# record's event (a dead letter's `document`, a quarantined `event`) is the worker's if its worker_id is
# the worker's; a quarantined event that is not JSON is, if it holds the worker's id anywhere (it may
# not be taken for another's). KEYS: the list, its bytes. ARGV: the worker id. Returns how many went.
_PURGE_WORKER = """#!lua flags=allow-oom
local kept, removed, bytes = {}, 0, 0
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local record = cjson.decode(raw)
  local text = record['document'] or record['event'] or ''
  local parsed, event = pcall(cjson.decode, text)
  local mine
  if parsed and type(event) == 'table' then
    mine = event['worker_id'] ~= nil and tostring(event['worker_id']) == ARGV[1]
  else
    mine = string.find(text, ARGV[1], 1, true) ~= nil
  end
  if mine then removed = removed + 1 else kept[#kept + 1] = raw; bytes = bytes + #raw end
end
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #kept, 1000 do redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept))) end
  redis.call('SET', KEYS[2], bytes)
end
return removed
"""


# A counter: allowed at maxmemory (a field that exists grows nothing), so the 503s of a full Redis are
# counted too. KEYS: stats. ARGV: the counter, the amount.
_COUNT = """#!lua flags=allow-oom
return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
"""


class QueueFull(Exception):
    """The queued events exceed the high-water mark (or Redis its maxmemory): retry later."""


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


def connect(url: str, ca_file: str = "") -> redis.Redis:
    """A client of Redis at `url`; a rediss:// one verifies the server's certificate (with `ca_file` if
    given, else the system's CAs) and its name."""
    verify = {"ssl_ca_certs": ca_file or None, "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    tls = verify if url.startswith("rediss://") else {}
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30, **tls)


def open_queue(settings: Settings) -> EventQueue:
    return EventQueue(
        connect(settings.redis_url, settings.redis_ca_file),
        settings.redis_prefix,
        SideLimits(settings.dead_letter_max, settings.dead_letter_max_bytes),
        SideLimits(settings.quarantine_max, settings.quarantine_max_bytes),
    )


@dataclass(frozen=True, slots=True)
class SideLimits:
    """A side list's bounds: beyond either, its oldest records are dropped (and counted)."""

    records: int
    bytes: int


# Settings' defaults.
DEAD_LETTER_LIMITS = SideLimits(Settings.dead_letter_max, Settings.dead_letter_max_bytes)
QUARANTINE_LIMITS = SideLimits(Settings.quarantine_max, Settings.quarantine_max_bytes)


def _entry_args(entries: Sequence[Entry]) -> list[bytes | int]:
    args: list[bytes | int] = []
    for entry in entries:
        args += [entry.stream_id, entry.size, entry.counted]
    return args


class EventQueue:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        dead_letter_limits: SideLimits = DEAD_LETTER_LIMITS,
        quarantine_limits: SideLimits = QUARANTINE_LIMITS,
    ) -> None:
        self.client = client
        self.stream = f"{prefix}:events"
        self.bytes = f"{prefix}:queued-bytes"
        self.queued = f"{prefix}:queued-events"
        self.stats = f"{prefix}:stats"
        self.dead_letters = f"{prefix}:dead-letter"
        self.dead_letter_bytes = f"{prefix}:dead-letter-bytes"
        self.quarantined = f"{prefix}:quarantine"
        self.quarantine_bytes = f"{prefix}:quarantine-bytes"
        self.probe = f"{prefix}:write-probe"
        self.faults = f"{prefix}:indexer-faults"
        self.dead_letter_limits = dead_letter_limits
        self.quarantine_limits = quarantine_limits
        self.withdrawn = Register(client, prefix)
        self._enqueue = client.register_script(_ENQUEUE)
        self._quarantine = client.register_script(_QUARANTINE)
        self._count = client.register_script(_COUNT)
        self._settle = client.register_script(_SETTLE)
        self._replay = client.register_script(_REPLAY)
        self._purge_worker = client.register_script(_PURGE_WORKER)

    # ---- producers (the HTTP backends)
    def put(self, events: list[Prepared], high_water_bytes: int) -> int:
        """Append all events, as one entry, or none; returns the queued bytes after it."""
        lengths, data = pack(events)
        keys = [self.stream, self.bytes, self.queued, self.stats, self.quarantine_bytes, self.dead_letter_bytes]
        try:
            queued = int(self._enqueue(keys=keys, args=[high_water_bytes, lengths, data, len(events)]))
        except redis.exceptions.OutOfMemoryError:
            raise QueueFull("redis is at its maxmemory") from None
        if queued < 0:
            raise QueueFull(f"queued and set-aside events exceed {high_water_bytes} bytes")
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
        limits = self.quarantine_limits
        with self.client.pipeline(transaction=False) as pipe:
            self._quarantine(
                keys=[self.quarantined, self.quarantine_bytes, self.stats],
                args=[limits.records, limits.bytes, *records],
                client=pipe,
            )
            for bad in invalid:
                pipe.hincrby(self.stats, f"rejected:{bad.reason}", 1)
            pipe.execute()

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
        """Add to one of the counters (works at maxmemory; not while Redis cannot persist: MISCONF)."""
        self._count(keys=[self.stats], args=[name, amount])

    def unwritable(self) -> str:
        """Why Redis would refuse an insert now ("" when it takes one): unreachable, at its maxmemory
        (OOM), or unable to persist (MISCONF). A PING answers in all three; a write does not."""
        try:
            self.client.set(self.probe, b"1")
        except redis.RedisError as exc:
            return f"redis refuses writes ({type(exc).__name__}): {str(exc).splitlines()[0][:200]}"
        return ""

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

    def side_bytes(self) -> tuple[int, int]:
        """Bytes held in the quarantine and in the dead-letter list (they count against the high-water mark)."""
        quarantined, dead = self.client.mget(self.quarantine_bytes, self.dead_letter_bytes)
        return int(quarantined or 0), int(dead or 0)

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

    def settle(
        self, entries: Sequence[Entry], rejected: Sequence[tuple[Prepared, str]] = (), withdrawn: int = 0
    ) -> None:
        """Elasticsearch has every event of these entries, apart from `rejected`, which it refused for their
        content, and the `withdrawn` events of withdrawn workers, never sent to it: keep the refused aside
        with the reason (the list's oldest dropped beyond its bounds, counted), count the withdrawn, and
        remove the entries, in one step (works at maxmemory)."""
        indexed = sum(len(e.events) for e in entries) - len(rejected) - withdrawn
        self._remove(entries, rejected, indexed, withdrawn)

    def dead_letter(self, rejected: Sequence[tuple[Prepared, str]]) -> None:
        """Keep events Elasticsearch refused for their content aside, with the reason (direct mode, where
        nothing was queued)."""
        self._remove((), rejected, 0)

    def _remove(
        self, entries: Sequence[Entry], rejected: Sequence[tuple[Prepared, str]], indexed: int, withdrawn: int = 0
    ) -> None:
        if not entries and not rejected:
            return
        records = [
            orjson.dumps({"event_id": e.event_id, "day": e.day, "error": error, "document": e.document.decode()})
            for e, error in rejected
        ]
        keys = [self.stats, self.stream, self.bytes, self.queued, self.dead_letters, self.dead_letter_bytes]
        limits = self.dead_letter_limits
        self._settle(
            keys=keys,
            args=[limits.records, limits.bytes, len(records), indexed, withdrawn, *records, *_entry_args(entries)],
        )

    def purge_worker(self, worker_id: str) -> dict[str, int]:
        """Remove one worker's events from the dead letters and the quarantine; how many from each."""
        return {
            "dead_letters": int(self._purge_worker(keys=[self.dead_letters, self.dead_letter_bytes], args=[worker_id])),
            "quarantine": int(self._purge_worker(keys=[self.quarantined, self.quarantine_bytes], args=[worker_id])),
        }

    def wait_for_delivered(self, timeout: float) -> bool:
        """Wait until every entry an indexer has read so far is settled (none is then on its way to
        Elasticsearch unchecked); False if some still were after `timeout` (an indexer waiting to retry
        checks them again before each try)."""
        try:
            groups = {g["name"].decode(): g for g in self.client.xinfo_groups(self.stream)}
        except redis.ResponseError:  # no stream yet: nothing was ever read
            return True
        if GROUP not in groups:
            return True
        mark = groups[GROUP]["last-delivered-id"]
        deadline = time.monotonic() + timeout
        while self.client.xpending_range(self.stream, GROUP, min="-", max=mark, count=1):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def replay_dead_letters(self, count: int = 1000) -> int:
        """Put up to `count` of the oldest dead-lettered events back in the stream; returns how many."""
        keys = [self.dead_letters, self.stream, self.bytes, self.queued, self.stats, self.dead_letter_bytes]
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
