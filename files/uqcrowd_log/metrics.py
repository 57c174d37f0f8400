"""Prometheus exposition of the counters every backend and the indexer keep in Redis.

The counters live in Redis (one hash per installation), so every backend process answers
/logger/metrics with the same totals, however many processes or hosts there are.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__
from .redis_queue import EventQueue

REJECTED = "rejected:"


class QueueCollector:
    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("uqcrowd_build_info", "The version of the process that answered", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        up = GaugeMetricFamily("uqcrowd_redis_up", "1 when the metrics could be read from Redis")
        try:
            counters = self.queue.counters()
            depth, dead, lag = self.queue.depth(), self.queue.dead_letter_depth(), self.queue.oldest_age_seconds()
            queued_bytes, quarantined = self.queue.queued_bytes(), self.queue.quarantine_depth()
            quarantine_bytes, dead_letter_bytes = self.queue.side_bytes()
            faults = self.queue.indexer_faults()
            unwritable = self.queue.unwritable()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "uqcrowd_redis_writable",
            "1 when Redis takes writes (0: at its maxmemory, or its disk full)",
            value=int(not unwritable),
        )
        for name, key, text in (
            ("uqcrowd_events_accepted", "accepted", "Events accepted by the backends"),
            ("uqcrowd_events_indexed", "indexed", "Events confirmed by Elasticsearch"),
            (
                "uqcrowd_events_dead_lettered",
                "dead_lettered",
                "Events Elasticsearch refused, kept in the dead-letter list",
            ),
            ("uqcrowd_events_quarantined", "quarantined", "Invalid events of a batch, refused and kept aside"),
            ("uqcrowd_events_replayed", "replayed", "Dead-lettered events put back in the queue"),
            (
                "uqcrowd_events_withdrawn",
                "withdrawn",
                "Events of withdrawn workers dropped (at ingest, or queued before the withdrawal), never stored",
            ),
            (
                "uqcrowd_events_quarantine_dropped",
                "quarantine_dropped",
                "Quarantined events dropped, oldest first, beyond the list's bounds",
            ),
            (
                "uqcrowd_events_dead_letter_dropped",
                "dead_letter_dropped",
                "Dead-lettered events dropped, oldest first, beyond the list's bounds",
            ),
        ):
            yield CounterMetricFamily(name, text, value=counters.get(key, 0))
        rejected = CounterMetricFamily(
            "uqcrowd_requests_rejected", "Requests or events refused, by reason", labels=["reason"]
        )
        for key, value in sorted(counters.items()):
            if key.startswith(REJECTED):
                rejected.add_metric([key.removeprefix(REJECTED)], value)
        yield rejected
        yield GaugeMetricFamily("uqcrowd_queue_depth", "Events waiting for Elasticsearch", value=depth)
        yield GaugeMetricFamily("uqcrowd_queue_bytes", "Bytes of the queued events", value=queued_bytes)
        yield GaugeMetricFamily("uqcrowd_dead_letter_depth", "Events in the dead-letter list", value=dead)
        yield GaugeMetricFamily(
            "uqcrowd_dead_letter_limit",
            "Events the dead-letter list holds before its oldest are dropped",
            value=self.queue.dead_letter_limits.records,
        )
        yield GaugeMetricFamily("uqcrowd_dead_letter_bytes", "Bytes in the dead-letter list", value=dead_letter_bytes)
        yield GaugeMetricFamily("uqcrowd_quarantine_depth", "Events in the quarantine list", value=quarantined)
        yield GaugeMetricFamily("uqcrowd_quarantine_bytes", "Bytes in the quarantine list", value=quarantine_bytes)
        paused = GaugeMetricFamily(
            "uqcrowd_indexer_fault", "1 per indexer paused by a fault an operator must fix", labels=["consumer", "what"]
        )
        for consumer, what in sorted(faults.items()):
            paused.add_metric([consumer, what], 1)
        yield paused
        yield GaugeMetricFamily("uqcrowd_indexer_lag_seconds", "Age of the oldest event not yet indexed", value=lag)


def render(queue: EventQueue) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(queue))
    return generate_latest(registry)
