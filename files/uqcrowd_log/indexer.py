"""The indexer: moves queued events from Redis into Elasticsearch, at least once, never twice.

Loop: take a batch of entries, each one request's events (first what this consumer still holds
from before a crash, then entries idle at a dead consumer, then new ones; never more than the
event and byte caps, unless one entry alone passes them), bulk-create their events, settle each
entry Elasticsearch confirmed whole: remove it, dead-lettering in the same step the events it
refused for their content (a request refused whole is split until the event at fault stands
alone). An entry with an event to retry is kept whole for the next try, with capped exponential
backoff: its events already stored come back as 409s, stored once. While it waits, it keeps its
entries claimed so that no other indexer takes them. A configuration fault (credentials, rights, a
closed or missing index) or a full dead-letter list pauses indexing, is reported to the monitoring
through Redis, and loses nothing. SIGTERM lets the current step finish; unacknowledged entries
stay in Redis and are re-delivered to the next indexer.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time

import orjson
import redis
from elasticsearch import Elasticsearch

from . import elastic, logs
from .config import Settings
from .elastic import BulkOutcome, ConfigurationFault, bulk_create_split
from .events import Prepared, worker_of
from .queue.consumer import Consumer
from .queue.entries import Entry
from .unavailable import StoreUnavailable
from .withdrawn import Register

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


def fitting(entries: list[Entry], max_events: int, max_bytes: int) -> list[Entry]:
    """The first entries whose events fit in both caps (always at least one entry)."""
    events = size = 0
    for position, entry in enumerate(entries):
        events += len(entry.events)
        size += entry.size
        if (events > max_events or size > max_bytes) and position > 0:
            return entries[:position]
    return entries


def split_by_answer(
    held: list[Entry], outcome: BulkOutcome[tuple[int, int]]
) -> tuple[list[Entry], list[tuple[Prepared, str]], list[Entry]]:
    """The held entries split by a bulk's outcome, whose keys are (entry, event) positions: the entries
    Elasticsearch answered for whole (each event stored, or refused for its content), the events it
    refused among those, with why, and the entries kept whole for the next try (an event to retry, or
    refused for the set-up)."""
    waiting = {p for p, _ in outcome.retry} | {p for (p, _), _ in outcome.faults}
    done = [entry for p, entry in enumerate(held) if p not in waiting]
    rejected = [(held[p].events[i], error) for (p, i), error in outcome.rejected if p not in waiting]
    kept = [entry for p, entry in enumerate(held) if p in waiting]
    return done, rejected, kept


class Indexer:
    def __init__(self, settings: Settings, queue: Consumer, withdrawn: Register, client: Elasticsearch) -> None:
        self.settings = settings
        self.queue = queue
        self.withdrawn = withdrawn
        self.client = client
        self.stopping = threading.Event()
        self.held: list[Entry] = []  # read from Redis, not yet confirmed by Elasticsearch
        self.backoff = Backoff(settings.indexer.backoff_max_seconds)
        self.trouble: str | None = None  # the current problem, logged once when it starts and ends
        self.group_ready = False  # the consumer group exists (checked again after any Redis error)
        self.per_entry = 1  # events per entry in the last batch: how many entries to ask for next

    def run(self) -> None:
        log.info("indexer %s started: %s -> %s", self.queue.name, self.queue.keys.stream, self.settings.es.url)
        while not self.stopping.is_set():
            try:
                self.step()
            except (redis.RedisError, StoreUnavailable) as exc:
                self.group_ready = self.group_ready and not isinstance(exc, redis.RedisError)
                fault = isinstance(exc, ConfigurationFault)
                self._problem(f"{type(exc).__name__}: {exc}", fault)
                self._wait(self.backoff.next())
        unconfirmed = sum(len(e.events) for e in self.held)
        log.info("indexer stopped; %d unconfirmed events stay queued for the next start", unconfirmed)

    def step(self) -> None:
        """One batch: read, index, acknowledge."""
        if not self.group_ready:
            self.queue.ensure_group()
            self.group_ready = True
        if not self.held:
            self.held = self._next_batch()
        if not self.held:
            return
        withdrawn = self._withdrawn()  # checked again at every try: a withdrawal may come while one waits
        items = [
            ((p, i), event)
            for p, entry in enumerate(self.held)
            for i, event in enumerate(entry.events)
            if (p, i) not in withdrawn
        ]
        outcome = bulk_create_split(self.client, self.settings.es.index_prefix, items) if items else BulkOutcome()
        done, rejected, kept = split_by_answer(self.held, outcome)
        finished = {id(entry) for entry in done}
        dropped = sum(1 for p, _ in withdrawn if id(self.held[p]) in finished)
        self.queue.settle(done, rejected, dropped)
        self.held = kept
        for event, error in rejected:
            log.warning("dead-lettered event %s: %s", event.event_id, error)
        if outcome.faults:
            self._problem(f"elasticsearch refuses the set-up: {outcome.faults[0][1]}", fault=True)
            self._wait(self.backoff.next())
        elif outcome.retry:
            self._problem(f"elasticsearch asked to retry {len(outcome.retry)} events")
            self._wait(self.backoff.next())
        else:
            self._recovered()

    def _withdrawn(self) -> set[tuple[int, int]]:
        """The (entry, event) positions of the held events whose workers withdrew: dropped, not indexed.
        Documents are read only while the register holds anyone."""
        if not self.withdrawn.size():
            return set()
        workers = {
            (p, i): worker_of(orjson.loads(event.document))
            for p, entry in enumerate(self.held)
            for i, event in enumerate(entry.events)
        }
        gone = self.withdrawn.among(worker for worker in workers.values() if worker)
        return {position for position, worker in workers.items() if worker in gone}

    def _next_batch(self) -> list[Entry]:
        s = self.settings
        ask = max(1, s.indexer.batch_events // self.per_entry)  # entries: each holds one request's events
        batch = self.queue.read(ask, None, held=True)
        batch = batch or self.queue.claim_idle(s.indexer.claim_idle_ms, ask)
        if batch:
            return fitting(batch, s.indexer.batch_events, s.indexer.batch_bytes)  # the rest: read again as held
        events, size, deadline = 0, 0, None
        while events < s.indexer.batch_events and size < s.indexer.batch_bytes and not self.stopping.is_set():
            wait_ms = 1000 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                break
            got = self.queue.read(max(1, (s.indexer.batch_events - events) // self.per_entry), wait_ms)
            if not got:
                break
            batch += got
            events += sum(len(e.events) for e in got)
            size += sum(e.size for e in got)
            self.per_entry = max(1, events // len(batch))
            if deadline is None:
                deadline = time.monotonic() + s.indexer.linger_ms / 1000
        return fitting(batch, s.indexer.batch_events, s.indexer.batch_bytes)

    def _wait(self, seconds: float) -> None:
        """Sleep (until stopped), renewing the claim on held entries well before another indexer
        could take them as abandoned."""
        renew = self.settings.indexer.claim_idle_ms / 3000
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            if self.held:
                with contextlib.suppress(redis.RedisError):  # Redis down: nobody can claim them either
                    self.queue.touch(self.held)
            left = deadline - time.monotonic()
            if left <= 0 or self.stopping.wait(min(left, renew)):
                return

    def _problem(self, what: str, fault: bool = False) -> None:
        if self.trouble is None:
            log.warning("indexing paused, events stay in Redis: %s", what)
        self.trouble = what
        if fault:
            with contextlib.suppress(redis.RedisError):
                self.queue.report_fault(what)

    def _recovered(self) -> None:
        if self.trouble is not None:
            log.info("indexing resumed after: %s", self.trouble)
            with contextlib.suppress(redis.RedisError):
                self.queue.clear_fault()
        self.trouble = None
        self.backoff.reset()

    def stop(self, *_: object) -> None:
        self.stopping.set()


def main(settings: Settings | None = None) -> int:
    logs.setup()
    settings = settings or Settings.from_env()
    consumer = Consumer.from_settings(settings)
    indexer = Indexer(settings, consumer, Register.from_settings(settings, consumer.client), elastic.connect(settings))
    signal.signal(signal.SIGTERM, indexer.stop)
    signal.signal(signal.SIGINT, indexer.stop)
    indexer.run()
    return 0
