"""Loading NDJSON back into the daily indices: an export of this system (ids and days kept), or a
file the original system's export.py wrote (one `_source` per line, no ids: they are derived the
way the service derives them). Idempotent: events are created under their ids, so a second import
of the same file adds nothing. Events of workers in the withdrawn-workers register are left out
(checked per batch, against the register as it is then), counted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from elasticsearch import Elasticsearch

from ..elastic import bulk_create_split
from ..events import Prepared, browser_datetime, document_id, index_day, worker_ids, worker_of
from ..withdrawn import Register

BATCH = 1000


@dataclass
class ImportResult:
    read: int = 0
    created: int = 0
    present: int = 0  # already stored (a repeat of an earlier import)
    withdrawn: int = 0  # of withdrawn workers: left out
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def _received(document: dict[str, Any]) -> datetime:
    """When the server received the event: its server_time, else its browser_time, else now."""
    for value in (document.get("server_time"), document.get("browser_time")):
        moment = browser_datetime(value)
        if moment is not None:
            return moment
    return datetime.now(UTC)


def prepared(document: dict[str, Any]) -> Prepared:
    """The id and index day the service gave (or would have given) this event."""
    event_id = document.get("event_id")  # an export of this system: the id it was stored under
    if not (isinstance(event_id, str) and event_id):
        event_id = document_id(document)
    day = index_day(document, _received(document))
    return Prepared(event_id, day, orjson.dumps({**document, "event_id": event_id}))


def _lines(source: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, f"not JSON: {exc}"
            continue
        yield number, document if isinstance(document, dict) else "not a JSON object"


def import_ndjson(client: Elasticsearch, prefix: str, source: IO[bytes], register: Register) -> ImportResult:
    result = ImportResult()
    batch: list[tuple[int, dict[str, Any]]] = []
    for number, item in _lines(source):
        result.read += 1
        if isinstance(item, str):
            result.refused.append((number, item))
            continue
        batch.append((number, item))
        if len(batch) == BATCH:
            _send(client, prefix, batch, register, result)
            batch = []
    _send(client, prefix, batch, register, result)
    return result


def _send(
    client: Elasticsearch,
    prefix: str,
    batch: Iterable[tuple[int, dict[str, Any]]],
    register: Register,
    result: ImportResult,
) -> None:
    documents = list(batch)
    withdrawn = register.among(worker_ids(d for _, d in documents))
    items = [(number, prepared(d)) for number, d in documents if worker_of(d) not in withdrawn]
    result.withdrawn += len(documents) - len(items)
    if not items:
        return
    outcome = bulk_create_split(client, prefix, items)
    result.created += len(outcome.done) - outcome.present
    result.present += outcome.present
    problems = outcome.rejected + outcome.faults + [(n, "elasticsearch was busy") for n in outcome.retry]
    result.refused.extend(problems)
