"""The indexer: moves queued events from Redis into Elasticsearch, at least once, never twice.

Loop: take a batch (first what this consumer still holds from before a crash, then entries idle
at a dead consumer, then new ones), bulk-create it, acknowledge what Elasticsearch confirmed,
dead-letter what it refused for its content, and keep the rest for the next try with capped
exponential backoff. SIGTERM lets the current step finish; unacknowledged entries stay in
Redis and are re-delivered to the next indexer.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import redis
from elasticsearch import Elasticsearch

from . import elastic, redis_queue
from .config import Settings
from .elastic import StoreUnavailable, bulk_create
from .redis_queue import Entry, EventQueue

log = logging.getLogger("uqcrowd_log.indexer")


class Backoff:
    """Capped exponential delay: 0.5 s, 1 s, 2 s ... up to `cap`; reset after a success."""

    def __init__(self, cap: float, first: float = 0.5) -> None:
        self.cap, self.first, self.delay = cap, first, 0.0

    def next(self) -> float:
        self.delay = min(self.cap, self.delay * 2 if self.delay else self.first)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class Indexer:
    def __init__(self, settings: Settings, queue: EventQueue, client: Elasticsearch) -> None:
        self.settings = settings
        self.queue = queue
        self.client = client
        self.stopping = threading.Event()
        self.held: list[Entry] = []  # read from Redis, not yet confirmed by Elasticsearch
        self.backoff = Backoff(settings.indexer_backoff_max_seconds)
        self.trouble: str | None = None  # the current problem, logged once when it starts and ends
        self.group_ready = False  # the consumer group exists (checked again after any Redis error)

    def run(self) -> None:
        log.info(
            "indexer %s started: %s -> %s", self.settings.indexer_consumer, self.queue.stream, self.settings.es_url
        )
        while not self.stopping.is_set():
            try:
                self.step()
            except (redis.RedisError, StoreUnavailable) as exc:
                self.group_ready = self.group_ready and not isinstance(exc, redis.RedisError)
                self._problem(f"{type(exc).__name__}: {exc}")
                self.stopping.wait(self.backoff.next())
        log.info("indexer stopped; %d unconfirmed events stay queued for the next start", len(self.held))

    def step(self) -> None:
        """One batch: read, index, acknowledge."""
        if not self.group_ready:
            self.queue.ensure_group()
            self.group_ready = True
        if not self.held:
            self.held = self._next_batch()
        if not self.held:
            return
        outcome = bulk_create(self.client, self.settings.index_prefix, [(e, e.event) for e in self.held])
        self.queue.ack(outcome.done)
        self.queue.dead_letter(
            [(e.event, err) for e, err in outcome.rejected], [e.stream_id for e, _ in outcome.rejected]
        )
        for entry, error in outcome.rejected:
            log.warning("dead-lettered event %s: %s", entry.event.event_id, error)
        self.held = outcome.retry
        if outcome.retry:
            self._problem(f"elasticsearch asked to retry {len(outcome.retry)} events")
            self.stopping.wait(self.backoff.next())
        else:
            self._recovered()

    def _next_batch(self) -> list[Entry]:
        s, consumer = self.settings, self.settings.indexer_consumer
        batch = self.queue.read(consumer, s.indexer_batch_events, None, held=True)
        batch = batch or self.queue.claim_idle(consumer, s.indexer_claim_idle_ms, s.indexer_batch_events)
        if batch:
            return batch
        size, deadline = 0, None
        while len(batch) < s.indexer_batch_events and size < s.indexer_batch_bytes and not self.stopping.is_set():
            wait_ms = 1000 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                break
            got = self.queue.read(consumer, s.indexer_batch_events - len(batch), wait_ms)
            if not got:
                break
            batch += got
            size += sum(len(e.event.document) for e in got)
            if deadline is None:
                deadline = time.monotonic() + s.indexer_linger_ms / 1000
        return batch

    def _problem(self, what: str) -> None:
        if self.trouble is None:
            log.warning("indexing paused, events stay in Redis: %s", what)
        self.trouble = what

    def _recovered(self) -> None:
        if self.trouble is not None:
            log.info("indexing resumed after: %s", self.trouble)
        self.trouble = None
        self.backoff.reset()

    def stop(self, *_: object) -> None:
        self.stopping.set()


def main(settings: Settings | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or Settings.from_env()
    queue = redis_queue.EventQueue(redis_queue.connect(settings.redis_url), settings.redis_prefix)
    indexer = Indexer(settings, queue, elastic.connect(settings))
    signal.signal(signal.SIGTERM, indexer.stop)
    signal.signal(signal.SIGINT, indexer.stop)
    indexer.run()
    return 0
