"""Turn a request body into events ready to store: parse, validate, stamp, identify."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

MAX_ID_BYTES = 512  # Elasticsearch's limit for a document _id


class BadInput(Exception):
    """The body cannot be accepted; `reason` is the metrics label, the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Prepared:
    """One event as stored: its document id, the UTC day of its index, its JSON document."""

    event_id: str
    day: str
    document: bytes


def parse_events(body: bytes, max_batch: int, max_depth: int) -> list[dict[str, Any]]:
    """One JSON event object, or an array of 1..max_batch of them; anything else is BadInput."""
    if not body.strip():
        raise BadInput("empty", "request body is empty")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput("not_json", f"body is not valid JSON: {exc}") from None
    events = data if isinstance(data, list) else [data]
    if not events:
        raise BadInput("empty", "the batch holds no events")
    if len(events) > max_batch:
        raise BadInput("batch_too_large", f"a batch holds at most {max_batch} events, got {len(events)}")
    for position, event in enumerate(events):
        if not isinstance(event, dict):
            raise BadInput("not_event", f"event {position} is not a JSON object")
        if _depth(event) > max_depth:
            raise BadInput("too_deep", f"event {position} is nested deeper than {max_depth} levels")
        _check_event_id(event.get("event_id"), position)
    return events


def _depth(value: Any) -> int:
    """Nesting depth of JSON containers, without recursion (an object holding scalars is 1)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _check_event_id(event_id: Any, position: int) -> None:
    if event_id is None:
        return
    if not isinstance(event_id, str) or not event_id or len(event_id.encode()) > MAX_ID_BYTES:
        raise BadInput("bad_event_id", f"event {position}: event_id must be a string of 1..{MAX_ID_BYTES} bytes")


def document_id(event: dict[str, Any]) -> str:
    """The client's event_id, else a hash of the event's identity, else a random id."""
    if event.get("event_id"):
        return str(event["event_id"])
    session, sequence = event.get("session_id"), event.get("sequence_number")
    if session not in (None, "") and sequence is not None:
        identity = orjson.dumps([session, sequence, event.get("log_type"), event.get("browser_time")])
        return hashlib.sha256(identity).hexdigest()[:40]
    return uuid.uuid4().hex


def prepare(events: list[dict[str, Any]], now: datetime, client_ip: str) -> list[Prepared]:
    """Stamp every event with server_time (UTC, ISO 8601), client_ip and its document id."""
    server_time = now.isoformat(timespec="milliseconds")
    day = now.strftime("%Y-%m-%d")
    prepared = []
    for event in events:
        event_id = document_id(event)
        document = {**event, "event_id": event_id, "server_time": server_time, "client_ip": client_ip}
        prepared.append(Prepared(event_id, day, orjson.dumps(document)))
    return prepared
