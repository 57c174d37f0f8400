"""Where accepted events go: the Redis queue (default) or straight into Elasticsearch."""

from __future__ import annotations

import logging
from typing import Protocol

import redis
from elasticsearch import Elasticsearch

from .elastic import StoreUnavailable, bulk_create_split, ping
from .events import Prepared
from .queue.producer import Producer
from .queue.side_lists import SideLists

log = logging.getLogger(__name__)


class Sink(Protocol):
    def put(self, events: list[Prepared]) -> None:
        """Store all events durably before returning; raise QueueFull or StoreUnavailable."""

    def unready(self) -> str:
        """Why an insert would fail now, in one line; "" while the store takes events."""


class QueueSink:
    def __init__(self, producer: Producer, high_water_bytes: int) -> None:
        self.producer = producer
        self.high_water_bytes = high_water_bytes

    def put(self, events: list[Prepared]) -> None:
        try:
            self.producer.put(events, self.high_water_bytes)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from None

    def unready(self) -> str:
        return self.producer.unwritable()


class DirectSink:
    """The original's behaviour: each request is indexed before it is answered."""

    def __init__(self, client: Elasticsearch, index_prefix: str, producer: Producer, side_lists: SideLists) -> None:
        self.client = client
        self.index_prefix = index_prefix
        self.producer = producer  # for the counters
        self.side_lists = side_lists  # for the dead letters

    def put(self, events: list[Prepared]) -> None:
        outcome = bulk_create_split(self.client, self.index_prefix, [(e, e) for e in events])
        if outcome.faults:
            raise StoreUnavailable(f"elasticsearch refuses the set-up: {outcome.faults[0][1]}")
        if outcome.retry:
            raise StoreUnavailable(f"elasticsearch is busy: {len(outcome.retry)} events not stored")
        try:
            self.side_lists.dead_letter(outcome.rejected)
            self.producer.count("accepted", len(events))
            self.producer.count("indexed", len(outcome.done))
        except redis.RedisError as exc:
            for event, error in outcome.rejected:
                log.error("dead letter not recorded (%s): %s %s", exc, error, event.document[:1000])

    def unready(self) -> str:
        return "" if ping(self.client) else "elasticsearch is not answering"
