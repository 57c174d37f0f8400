"""Turn a request body into events ready to store: parse, validate each event, stamp, identify."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MAX_ID_BYTES = 512  # Elasticsearch's limit for a document _id
MAX_QUARANTINED_BYTES = 64 * 1024  # what is kept of one refused event
# The index day follows the event's own browser_time when that is plausible: a retry, however late,
# then lands in the same daily index as the first try. Outside this window the server's day is used.
DAY_FROM_BROWSER_BEFORE = timedelta(days=7)
DAY_FROM_BROWSER_AFTER = timedelta(days=1)


class BadInput(Exception):
    """The body as a whole cannot be accepted; `reason` is the metrics label, the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Invalid:
    """One event of a batch refused on its own: where it was, why, and what was sent."""

    position: int
    reason: str
    message: str
    raw: bytes


@dataclass(slots=True)
class Batch:
    """The valid events of a body (in order) and the refused ones."""

    events: list[dict[str, Any]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # of each valid event in the body
    invalid: list[Invalid] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One event as stored: its document id, the UTC day of its index, its JSON document."""

    event_id: str
    day: str
    document: bytes


def parse_batch(body: bytes, max_batch: int, max_depth: int) -> Batch:
    """One JSON event object, or an array of 1..max_batch of them. A body that is not that is
    BadInput; inside a batch, each event is valid or refused on its own."""
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
    batch = Batch()
    for position, event in enumerate(events):
        problem = _problem(event, max_depth)
        if problem is None:
            batch.events.append(event)
            batch.positions.append(position)
        else:
            reason, message = problem
            raw = orjson.dumps(event)[:MAX_QUARANTINED_BYTES]
            batch.invalid.append(Invalid(position, reason, f"event {position}: {message}", raw))
    return batch


def screen_experiments(batch: Batch, experiments: Mapping[str, str], token: str) -> list[Invalid]:
    """Take out of the batch the events of experiments this server does not accept, or whose write
    token is wrong (an empty allow-list accepts every experiment). They are refused, never kept."""
    if not experiments:
        return []
    refused: list[Invalid] = []
    kept = Batch(invalid=batch.invalid)
    for position, event in zip(batch.positions, batch.events, strict=True):
        exp_id = str(event.get("exp_id") or "")
        if exp_id not in experiments:
            why = ("unknown_experiment", f"event {position}: experiment {exp_id!r} is not accepted here")
        elif experiments[exp_id] and not hmac.compare_digest(experiments[exp_id].encode(), token.encode()):
            why = ("bad_token", f"event {position}: wrong write token for experiment {exp_id!r}")
        else:
            kept.events.append(event)
            kept.positions.append(position)
            continue
        refused.append(Invalid(position, *why, b""))
    batch.events, batch.positions = kept.events, kept.positions
    return refused


def worker_of(event: Mapping[str, Any]) -> str:
    """The worker an event is of (its `worker_id`: an MTurk worker id or a Prolific PID), "" if none."""
    worker = event.get("worker_id")
    return "" if worker is None or isinstance(worker, dict | list) else str(worker)


def worker_ids(events: Iterable[Mapping[str, Any]]) -> set[str]:
    return {worker for worker in map(worker_of, events) if worker}


def drop_workers(batch: Batch, withdrawn: set[str]) -> int:
    """Take out of the batch the events of workers who withdrew; how many were taken out."""
    if not withdrawn:
        return 0
    kept = [(p, e) for p, e in zip(batch.positions, batch.events, strict=True) if worker_of(e) not in withdrawn]
    dropped = len(batch.events) - len(kept)
    batch.positions, batch.events = [p for p, _ in kept], [e for _, e in kept]
    return dropped


def _problem(event: Any, max_depth: int) -> tuple[str, str] | None:
    if not isinstance(event, dict):
        return "not_event", "not a JSON object"
    if _deeper_than(event, max_depth):
        return "too_deep", f"nested deeper than {max_depth} levels"
    event_id = event.get("event_id")
    if event_id is not None and not (isinstance(event_id, str) and 0 < len(event_id.encode()) <= MAX_ID_BYTES):
        return "bad_event_id", f"event_id must be a string of 1..{MAX_ID_BYTES} bytes"
    return None


def _deeper_than(node: dict | list, levels: int) -> bool:
    """True if the JSON containers nest more than `levels` deep (an object holding scalars is 1).
    Visits containers only and stops at the first too deep; recursion is bounded by `levels`.
    orjson makes exact dicts and lists: `type(...) is` is the cheap test (this runs for every event)."""
    if levels <= 0:
        return True
    for child in node.values() if type(node) is dict else node:
        if (type(child) is dict or type(child) is list) and _deeper_than(child, levels - 1):
            return True
    return False


def document_id(event: dict[str, Any]) -> str:
    """The same id for every try of one event, different ids for different events.

    A client's event_id counts within its session (two pages may both number events 1, 2 ...);
    without one, the event's identity (session, sequence number, type, browser time) is hashed;
    without that either, the id is random."""
    session = event.get("session_id")
    if event.get("event_id"):
        identity = orjson.dumps(["event_id", "" if session is None else str(session), event["event_id"]])
    elif session not in (None, "") and event.get("sequence_number") is not None:
        identity = orjson.dumps([session, event["sequence_number"], event.get("log_type"), event.get("browser_time")])
    else:
        return uuid.uuid4().hex
    return hashlib.sha256(identity).hexdigest()[:40]


def browser_datetime(value: Any) -> datetime | None:
    """browser_time as sent (ISO 8601 with an offset, or epoch milliseconds) in UTC; None if neither."""
    try:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            return parsed.astimezone(UTC) if parsed.tzinfo else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def index_day(event: dict[str, Any], now: datetime) -> str:
    """The UTC day of the event's browser_time if it lies within a week before to a day after the
    server's clock (a retry keeps its day), else the server's UTC day."""
    moment = browser_datetime(event.get("browser_time"))
    if moment is None or not now - DAY_FROM_BROWSER_BEFORE <= moment <= now + DAY_FROM_BROWSER_AFTER:
        moment = now
    return moment.date().isoformat()  # YYYY-MM-DD, several times faster than strftime


def prepare(events: list[dict[str, Any]], now: datetime, client_ip: str | None) -> list[Prepared]:
    """Stamp every event with server_time (UTC, ISO 8601), client_ip (None: not stored) and its id."""
    server_time = now.isoformat(timespec="milliseconds")
    prepared = []
    for event in events:
        event_id = document_id(event)
        document = {**event, "event_id": event_id, "server_time": server_time}
        if event.get("event_id"):
            document["client_event_id"] = event["event_id"]
        if client_ip is not None:
            document["client_ip"] = client_ip
        prepared.append(Prepared(event_id, index_day(event, now), orjson.dumps(document)))
    return prepared
