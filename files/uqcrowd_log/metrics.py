"""Prometheus exposition of the counters every backend and the indexer keep in Redis.

The counters live in Redis (one hash per installation), so every backend process answers
/logger/metrics with the same totals, however many processes or hosts there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__
from .queue import snapshot
from .queue.keys import Keys
from .queue.topology import Topology

REJECTED = "rejected:"


class QueueCollector:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        dead_letter_limit: int,
        topology: Callable[[], Topology] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.dead_letter_limit = dead_letter_limit
        self.topology = topology  # with Sentinels: which Redis is the primary, its replicas

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("uqcrowd_build_info", "The version of the process that answered", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        if self.topology is not None:
            yield from replication(self.topology)
        up = GaugeMetricFamily("uqcrowd_redis_up", "1 when the metrics could be read from Redis")
        try:
            now = snapshot.take(self.client, self.keys)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "uqcrowd_redis_writable",
            "1 when Redis takes writes (0: at its maxmemory, or its disk full)",
            value=int(not now.unwritable),
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
                "uqcrowd_inserts_unreplicated",
                "unreplicated",
                "Inserts answered 202 though fewer replicas than asked for held them (without_replica: accept)",
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
            yield CounterMetricFamily(name, text, value=now.counters.get(key, 0))
        rejected = CounterMetricFamily(
            "uqcrowd_requests_rejected", "Requests or events refused, by reason", labels=["reason"]
        )
        for key, value in sorted(now.counters.items()):
            if key.startswith(REJECTED):
                rejected.add_metric([key.removeprefix(REJECTED)], value)
        yield rejected
        yield GaugeMetricFamily("uqcrowd_queue_depth", "Events waiting for Elasticsearch", value=now.depth)
        yield GaugeMetricFamily("uqcrowd_queue_bytes", "Bytes of the queued events", value=now.queued_bytes)
        yield GaugeMetricFamily(
            "uqcrowd_dead_letter_depth", "Events in the dead-letter list", value=now.dead_letter_depth
        )
        yield GaugeMetricFamily(
            "uqcrowd_dead_letter_limit",
            "Events the dead-letter list holds before its oldest are dropped",
            value=self.dead_letter_limit,
        )
        yield GaugeMetricFamily(
            "uqcrowd_dead_letter_bytes", "Bytes in the dead-letter list", value=now.dead_letter_bytes
        )
        yield GaugeMetricFamily("uqcrowd_quarantine_depth", "Events in the quarantine list", value=now.quarantine_depth)
        yield GaugeMetricFamily("uqcrowd_quarantine_bytes", "Bytes in the quarantine list", value=now.quarantine_bytes)
        paused = GaugeMetricFamily(
            "uqcrowd_indexer_fault", "1 per indexer paused by a fault an operator must fix", labels=["consumer", "what"]
        )
        for consumer, what in sorted(now.indexer_faults.items()):
            paused.add_metric([consumer, what], 1)
        yield paused
        yield GaugeMetricFamily(
            "uqcrowd_indexer_lag_seconds", "Age of the oldest event not yet indexed", value=now.oldest_age_seconds
        )


def replication(topology: Callable[[], Topology]) -> Iterator[Metric]:
    """The Sentinels' view: 0 Sentinels answering when none does."""
    sentinels = GaugeMetricFamily("uqcrowd_redis_sentinels", "Sentinels that know the primary (0: none answers)")
    try:
        now = topology()
    except redis.RedisError:
        sentinels.add_metric([], 0)
        yield sentinels
        return
    sentinels.add_metric([], now.sentinels)
    yield sentinels
    primary = GaugeMetricFamily("uqcrowd_redis_primary", "The Redis the Sentinels name the primary", labels=["address"])
    primary.add_metric([now.primary], 1)
    yield primary
    yield GaugeMetricFamily("uqcrowd_redis_replicas", "Replicas the Sentinels know of", value=now.replicas)
    yield GaugeMetricFamily(
        "uqcrowd_redis_replicas_in_sync", "Replicas linked to the primary (the Sentinels' view)", value=now.in_sync
    )


def render(
    client: redis.Redis, keys: Keys, dead_letter_limit: int, topology: Callable[[], Topology] | None = None
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(client, keys, dead_letter_limit, topology))
    return generate_latest(registry)
