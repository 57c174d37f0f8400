"""Writing events to Elasticsearch daily indices with the bulk API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import elastic_transport
import orjson
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.serializer import OrjsonSerializer

from .config import Settings
from .events import Prepared
from .unavailable import StoreUnavailable

K = TypeVar("K")


class ConfigurationFault(StoreUnavailable):
    """Elasticsearch refuses these credentials, rights or indices: retrying will not help until an
    operator fixes the set-up, and the events are not at fault."""


class BatchRefused(Exception):
    """Elasticsearch refused the bulk request as a whole (413 over http.max_content_length, a 400):
    one of its events is the cause, and the request must be split to find it."""


# Per-event answers that say the set-up is wrong, not the event (401/403: credentials or rights,
# 404: the index cannot be created, a closed index).
CONFIGURATION_ERRORS = ("index_closed_exception", "index_not_found_exception", "security_exception")
# An index blocked for writes: at the disk's flood-stage watermark Elasticsearch makes every index on
# the node read-only-allow-delete (429), and lifts it once the disk is below the high watermark again.
BLOCKS = ("cluster_block_exception",)


@dataclass
class BulkOutcome(Generic[K]):
    done: list[K] = field(default_factory=list)  # stored now, or already stored by an earlier try
    retry: list[K] = field(default_factory=list)  # Elasticsearch was busy: send again later
    rejected: list[tuple[K, str]] = field(default_factory=list)  # refused for its content
    faults: list[tuple[K, str]] = field(default_factory=list)  # refused for the set-up: keep, alert
    present: int = 0  # of `done`, how many were stored before (409 to create)

    def merge(self, other: BulkOutcome[K]) -> BulkOutcome[K]:
        return BulkOutcome(
            self.done + other.done,
            self.retry + other.retry,
            self.rejected + other.rejected,
            self.faults + other.faults,
            self.present + other.present,
        )


def node_urls(es_url: str) -> list[str]:
    """The nodes of UQCROWD_ES_URL: one URL, or several separated by commas (a cluster)."""
    return [url.strip() for url in es_url.split(",") if url.strip()]


def connect(settings: Settings) -> Elasticsearch:
    """A client of every node given: a request that cannot reach one node goes to the next (a bulk is
    safe to resend: each event is `create`d under its own id)."""
    nodes = node_urls(settings.es.url)
    options: dict[str, Any] = {
        "request_timeout": 30,
        "max_retries": len(nodes) - 1,
        "serializer": OrjsonSerializer(),  # answers parsed in C, as the documents are made
    }
    if settings.es.api_key:
        options["api_key"] = settings.es.api_key
    elif settings.es.username:
        options["basic_auth"] = (settings.es.username, settings.es.password)
    if settings.es.ca_file:
        options["ca_certs"] = settings.es.ca_file
    return Elasticsearch(nodes, **options)


def index_name(prefix: str, day: str) -> str:
    return f"{prefix}-{day}"


def bulk_create(client: Elasticsearch, prefix: str, items: Sequence[tuple[K, Prepared]]) -> BulkOutcome[K]:
    """`create` each event under its id: a repeat of a stored event is a 409, counted as done."""
    outcome: BulkOutcome[K] = BulkOutcome()
    if not items:
        return outcome
    lines: list[bytes] = []
    for _, event in items:
        lines.append(orjson.dumps({"create": {"_index": index_name(prefix, event.day), "_id": event.event_id}}))
        lines.append(event.document)
    try:
        response = client.bulk(operations=lines, filter_path="errors,items.*.status,items.*.error")
    except ApiError as exc:
        status = exc.meta.status
        if status in (401, 403):
            raise ConfigurationFault(_one_line(exc)) from None
        if status in (400, 413):
            raise BatchRefused(f"HTTP {status}, the request refused whole: {_one_line(exc)}") from None
        raise StoreUnavailable(_one_line(exc)) from None
    except elastic_transport.TransportError as exc:
        raise StoreUnavailable(_one_line(exc)) from None
    for (key, _), result in zip(items, response["items"], strict=True):
        status = result["create"]["status"]
        if status < 300 or status == 409:
            outcome.done.append(key)
            outcome.present += status == 409
            continue
        error = result["create"].get("error", {})
        why = f"{status} {error.get('type', '')}: {error.get('reason', '')}"
        if error.get("type") in BLOCKS:  # kept, retried with backoff, and alerted: it lasts until space is freed
            outcome.faults.append((key, why))
        elif status == 429 or status >= 500:
            outcome.retry.append(key)
        elif status in (401, 403, 404) or error.get("type") in CONFIGURATION_ERRORS:
            outcome.faults.append((key, why))
        else:
            outcome.rejected.append((key, why))
    return outcome


def bulk_create_split(client: Elasticsearch, prefix: str, items: Sequence[tuple[K, Prepared]]) -> BulkOutcome[K]:
    """bulk_create, halving a request Elasticsearch refuses whole until the event at fault stands
    alone: it alone is rejected (with the reason), every other event is stored."""
    try:
        return bulk_create(client, prefix, items)
    except BatchRefused as exc:
        if len(items) == 1:
            return BulkOutcome(rejected=[(items[0][0], f"refused alone: {exc}")])
    half = len(items) // 2
    return bulk_create_split(client, prefix, items[:half]).merge(bulk_create_split(client, prefix, items[half:]))


def ping(client: Elasticsearch) -> bool:
    """True while the cluster answers and can take writes (health yellow or green)."""
    try:
        health = client.options(request_timeout=3).cluster.health()
    except (elastic_transport.TransportError, ApiError):
        return False
    return health["status"] in ("green", "yellow")


def _one_line(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
