"""The records of the side lists, as JSON: what was refused, why, and the event itself.

A quarantine record (refused at the door): stage, reason, error, received, client_ip and `event`, the
event as it came. A dead-letter record (refused by Elasticsearch for its content): event_id, day,
error and `document`, the event as it was prepared. lua/purge_worker.lua reads `event` and `document`.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ..events import Invalid, Prepared


def quarantined(bad: Invalid, received: str, client_ip: str | None) -> bytes:
    return orjson.dumps(
        {
            "stage": "ingest",
            "reason": bad.reason,
            "error": bad.message,
            "received": received,
            "client_ip": client_ip,
            "event": bad.raw.decode(errors="replace"),
        }
    )


def dead_letter(event: Prepared, error: str) -> bytes:
    return orjson.dumps(
        {"event_id": event.event_id, "day": event.day, "error": error, "document": event.document.decode()}
    )


def dead_letters(rejected: Sequence[tuple[Prepared, str]]) -> list[bytes]:
    return [dead_letter(event, error) for event, error in rejected]


def event_of_dead_letter(raw: bytes) -> Prepared:
    """The event a dead-letter record holds, as it was queued."""
    record = orjson.loads(raw)
    return Prepared(record["event_id"], record["day"], record["document"].encode())
