"""The backends' side of the queue: append a request's events, keep refused ones aside, count, and
say whether Redis takes writes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import redis

from ..config import Settings
from ..events import Invalid, Prepared
from . import records, scripts
from .connection import client_of
from .entries import pack
from .keys import Keys
from .side_lists import SideLimits


class QueueFull(Exception):
    """The queued events exceed the high-water mark (or Redis its maxmemory): retry later."""


class WorkerWithdrawn(Exception):
    """A worker of the insert is in the withdrawn-workers register: nothing was stored."""


class Unreplicated(Exception):
    """Fewer replicas than asked for acknowledged an insert in time (the primary holds it)."""


@dataclass(frozen=True)
class Replication:
    """How many replicas must hold an insert before it is answered, how long to wait for them, and
    whether to answer anyway (counted) when they do not."""

    replicas: int = 0
    wait_ms: int = 1000
    accept_without: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Replication:
        r = settings.redis
        return cls(r.replicas, r.replica_wait_ms, r.without_replica == "accept")


class Producer:
    def __init__(
        self, client: redis.Redis, keys: Keys, quarantine_limits: SideLimits, replication: Replication = Replication()
    ) -> None:
        self.client = client
        self.keys = keys
        self.quarantine_limits = quarantine_limits
        self.replication = replication
        self._enqueue = scripts.load(client, "enqueue")
        self._quarantine = scripts.load(client, "quarantine")
        self._count = scripts.load(client, "count")

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> Producer:
        client = client or client_of(settings)
        keys, limits = Keys.of(settings.redis.prefix), SideLimits.quarantine(settings)
        return cls(client, keys, limits, Replication.of(settings))

    def put(self, events: list[Prepared], high_water_bytes: int, workers: Collection[str] = ()) -> int:
        """Append all events, as one entry, or none; returns the queued bytes after it. WorkerWithdrawn
        if one of `workers` (the events' workers) is in the withdrawn-workers register, checked by the
        same script. With replicas asked for, it returns once they hold the entry too (WAIT on the same
        connection, in the same round trip); Unreplicated if they do not in time, unless the replication
        accepts that."""
        lengths, data = pack(events)
        k, replication = self.keys, self.replication
        keys = [k.stream, k.queued_bytes, k.queued_events, k.stats]
        keys += [k.quarantine_bytes, k.dead_letter_bytes, k.withdrawn]
        args = [high_water_bytes, lengths, data, len(events), *workers]
        try:
            if not replication.replicas:
                queued, acknowledged = self._enqueue(keys=keys, args=args), []
            else:
                with self.client.pipeline(transaction=False) as pipe:
                    self._enqueue(keys=keys, args=args, client=pipe)
                    pipe.execute_command("WAIT", replication.replicas, replication.wait_ms)
                    queued, *acknowledged = pipe.execute()
        except redis.exceptions.OutOfMemoryError:
            raise QueueFull("redis is at its maxmemory") from None
        if int(queued) == -2:
            raise WorkerWithdrawn("a worker of these events withdrew")
        if int(queued) < 0:
            raise QueueFull(f"queued and set-aside events exceed {high_water_bytes} bytes")
        if acknowledged and int(acknowledged[0]) < replication.replicas:
            if not replication.accept_without:
                raise Unreplicated(f"{acknowledged[0]} of {replication.replicas} replicas hold the insert")
            self.count("unreplicated")
        return int(queued)

    def quarantine(self, invalid: list[Invalid], received: str, client_ip: str | None) -> None:
        """Keep events refused at the door, with their reason, and count them by reason."""
        kept = [records.quarantined(bad, received, client_ip) for bad in invalid]
        k, limits = self.keys, self.quarantine_limits
        with self.client.pipeline(transaction=False) as pipe:
            self._quarantine(
                keys=[k.quarantine, k.quarantine_bytes, k.stats],
                args=[limits.records, limits.bytes, *kept],
                client=pipe,
            )
            for bad in invalid:
                pipe.hincrby(k.stats, f"rejected:{bad.reason}", 1)
            pipe.execute()

    def count(self, name: str, amount: int = 1) -> None:
        """Add to one of the counters (works at maxmemory; not while Redis cannot persist: MISCONF)."""
        self._count(keys=[self.keys.stats], args=[name, amount])

    def unwritable(self) -> str:
        """Why Redis would refuse an insert now ("" when it takes one): unreachable, at its maxmemory
        (OOM), or unable to persist (MISCONF). A PING answers in all three; a write does not."""
        try:
            self.client.set(self.keys.probe, b"1")
        except redis.RedisError as exc:
            return refusal(exc)
        return ""


def refusal(exc: BaseException) -> str:
    """A Redis error refusing a write, in one line."""
    return f"redis refuses writes ({type(exc).__name__}): {str(exc).splitlines()[0][:200]}"
