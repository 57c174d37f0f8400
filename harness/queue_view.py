"""The queue as tests and the bench look at it, through the service's own parts (snapshot, side lists,
producer, consumer): what a test asserts is what the metrics and the command line would say."""

from __future__ import annotations

import redis

from uqcrowd_log.config import Settings
from uqcrowd_log.queue import snapshot
from uqcrowd_log.queue.consumer import Consumer
from uqcrowd_log.queue.keys import Keys
from uqcrowd_log.queue.producer import Producer
from uqcrowd_log.queue.side_lists import SideLimits, SideLists


class QueueView:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.stream = self.keys.stream
        defaults = Settings()
        self.side_lists = SideLists(client, self.keys, SideLimits.dead_letters(defaults))
        self.producer = Producer(client, self.keys, SideLimits.quarantine(defaults))

    def consumer(self, name: str) -> Consumer:
        return Consumer(self.client, self.keys, name, self.side_lists.dead_letter_limits)

    def now(self) -> snapshot.Snapshot:
        return snapshot.take(self.client, self.keys)

    def depth(self) -> int:
        return self.now().depth

    def counters(self) -> dict[str, int]:
        return self.now().counters

    def queued_bytes(self) -> int:
        return self.now().queued_bytes

    def oldest_age_seconds(self) -> float:
        return self.now().oldest_age_seconds

    def side_bytes(self) -> tuple[int, int]:
        """Bytes in the quarantine, and in the dead-letter list."""
        now = self.now()
        return now.quarantine_bytes, now.dead_letter_bytes

    def quarantine_records(self) -> list[dict]:
        return self.side_lists.quarantine_records()

    def quarantine_depth(self) -> int:
        return self.side_lists.quarantine_depth()

    def dead_letter_depth(self) -> int:
        return self.side_lists.dead_letter_depth()
