"""The default sink: a request's events are one entry of the Redis stream, on disk before the 202."""

from __future__ import annotations

from collections.abc import Collection

import redis

from ..events import Prepared
from ..queue.producer import Producer, Unreplicated
from ..unavailable import StoreUnavailable


class QueueSink:
    def __init__(self, producer: Producer, high_water_bytes: int) -> None:
        self.producer = producer
        self.high_water_bytes = high_water_bytes

    def put(self, events: list[Prepared], workers: Collection[str] = ()) -> None:
        try:  # the register is checked by the insert's own script: one round trip a request
            self.producer.put(events, self.high_water_bytes, workers)
        except (redis.RedisError, Unreplicated) as exc:
            raise StoreUnavailable(f"redis: {exc}") from None

    def unready(self) -> str:
        return self.producer.unwritable()
