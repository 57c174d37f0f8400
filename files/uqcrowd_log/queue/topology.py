"""Which Redis is the primary, and how many replicas are in sync with it, as the Sentinels see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.sentinel import Sentinel


@dataclass(frozen=True, slots=True)
class Topology:
    primary: str  # "address:port"
    replicas: int  # the replicas the Sentinels know of
    in_sync: int  # of them, those up, connected to the primary, their link up
    sentinels: int  # the Sentinels that know the primary (the one asked and the others it knows)


def _in_sync(replica: dict[str, Any]) -> bool:
    down = replica.get("is_sdown") or replica.get("is_odown") or replica.get("is_disconnected")
    return not down and replica.get("master-link-status") == "ok"


def read(sentinels: Sentinel, service: str) -> Topology:
    """What the first Sentinel that answers says; redis.RedisError if none does."""
    failure: redis.RedisError = redis.ConnectionError("no Sentinel given")
    for sentinel in sentinels.sentinels:
        try:
            primary = sentinel.sentinel_master(service)
            replicas = sentinel.sentinel_slaves(service)
        except redis.RedisError as exc:
            failure = exc
            continue
        return Topology(
            primary=f"{primary['ip']}:{primary['port']}",
            replicas=len(replicas),
            in_sync=sum(_in_sync(replica) for replica in replicas),
            sentinels=int(primary.get("num-other-sentinels", 0)) + 1,
        )
    raise failure
