"""The original's behaviour (UQCROWD_MODE=direct): each request indexed before it is answered."""

from __future__ import annotations

import logging
from collections.abc import Collection

import redis
from elasticsearch import Elasticsearch

from ..elastic import bulk_create_split, ping
from ..events import Prepared
from ..queue.producer import Producer, WorkerWithdrawn
from ..queue.side_lists import SideLists
from ..unavailable import StoreUnavailable
from ..withdrawn import Register

log = logging.getLogger(__name__)


class DirectSink:
    """The original's behaviour: each request is indexed before it is answered."""

    def __init__(
        self, client: Elasticsearch, index_prefix: str, producer: Producer, side_lists: SideLists, withdrawn: Register
    ) -> None:
        self.client = client
        self.index_prefix = index_prefix
        self.producer = producer  # for the counters
        self.side_lists = side_lists  # for the dead letters
        self.withdrawn = withdrawn

    def put(self, events: list[Prepared], workers: Collection[str] = ()) -> None:
        try:
            if self.withdrawn.among(workers):
                raise WorkerWithdrawn("a worker of these events withdrew")
        except redis.RedisError as exc:
            raise StoreUnavailable(f"withdrawn-workers register unreadable: {exc}") from None
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
