"""Where accepted events go: the Redis queue (default) or straight into Elasticsearch."""

from __future__ import annotations

import logging
from typing import Protocol

import redis
from elasticsearch import Elasticsearch

from .elastic import StoreUnavailable, bulk_create, ping
from .events import Prepared
from .redis_queue import EventQueue

log = logging.getLogger(__name__)


class Sink(Protocol):
    def put(self, events: list[Prepared]) -> None:
        """Store all events durably before returning; raise QueueFull or StoreUnavailable."""

    def ready(self) -> bool:
        """True while the store this sink writes to answers."""


class QueueSink:
    def __init__(self, queue: EventQueue, high_water: int) -> None:
        self.queue = queue
        self.high_water = high_water

    def put(self, events: list[Prepared]) -> None:
        try:
            self.queue.put(events, self.high_water)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from None

    def ready(self) -> bool:
        try:
            return self.queue.ping()
        except redis.RedisError:
            return False


class DirectSink:
    """The original's behaviour: each request is indexed before it is answered."""

    def __init__(self, client: Elasticsearch, index_prefix: str, queue: EventQueue) -> None:
        self.client = client
        self.index_prefix = index_prefix
        self.queue = queue  # for counters and the dead-letter list

    def put(self, events: list[Prepared]) -> None:
        outcome = bulk_create(self.client, self.index_prefix, [(e, e) for e in events])
        if outcome.retry:
            raise StoreUnavailable(f"elasticsearch is busy: {len(outcome.retry)} events not stored")
        try:
            self.queue.dead_letter(outcome.rejected)
            self.queue.count("accepted", len(events))
            self.queue.count("indexed", len(outcome.done))
        except redis.RedisError as exc:
            for event, error in outcome.rejected:
                log.error("dead letter not recorded (%s): %s %s", exc, error, event.document[:1000])

    def ready(self) -> bool:
        return ping(self.client)
