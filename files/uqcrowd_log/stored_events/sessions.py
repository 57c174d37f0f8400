"""Per-session reports read from Elasticsearch, and the daily session index the cron job keeps
(`uqcrowd-session-YYYY-MM-DD`, one document per session, replaced on every run)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, helpers

from ..completeness import SessionReport, session_reports
from ..flags import Rule, flags
from ..signals import COLUMNS, Signals
from .selection import Selection, delete_matching, hits, stream


def read_reports(client: Elasticsearch, index: str, selection: Selection) -> list[SessionReport]:
    return session_reports(hit["_source"] for hit in stream(client, index, selection))


def rows(reports: list[SessionReport], rules: Mapping[str, tuple[Rule, ...]]) -> list[dict[str, Any]]:
    """Each report as a row: completeness, signals, and the flags its experiment's rules raise."""
    return [{**r.as_row(), "flags": " ".join(flags(r.signals, r.exp_id, rules))} for r in reports]


@dataclass(frozen=True)
class StoredSignals:
    """A session's signals as a stored report has them, and how many of its events that report read
    (fewer than are stored now: the session went on after the report was written)."""

    signals: Signals
    stored: int
    stored_at: str


def stored_signals(client: Elasticsearch, index: str, exp_id: str) -> dict[str, StoredSignals]:
    """The signals the session reports (`index`: their indices) hold for the experiment's sessions, by
    session id: the report that read most of a session's events (one crossing midnight has one a day).
    Reads the reports only, never an event: what the experiment's page shows at a study's scale."""
    fields = ["session_id", "stored", "stored_at", *COLUMNS]
    query = {"term": {"exp_id.keyword": exp_id}}  # the reports' index has no mapping: strings are text + keyword
    found: dict[str, StoredSignals] = {}
    for hit in hits(client, index, query, ["_shard_doc"], source=fields):
        row = hit["_source"]
        session_id, stored = str(row.get("session_id") or ""), int(row.get("stored") or 0)
        if session_id in found and found[session_id].stored >= stored:
            continue
        found[session_id] = StoredSignals(Signals.from_row(row), stored, str(row.get("stored_at") or ""))
    return found


def store(client: Elasticsearch, index: str, reports: list[dict[str, Any]]) -> int:
    """Write one document per session (a row of `rows`) under its session id, then remove what an
    earlier run wrote and this one did not (a withdrawn worker's session): a re-run replaces, never
    doubles."""
    run = uuid.uuid4().hex
    stored_at = datetime.now(UTC).isoformat(timespec="seconds")
    actions = (
        {
            "_op_type": "index",
            "_index": index,
            "_id": report["session_id"] or "(none)",
            "_source": {**report, "run": run, "stored_at": stored_at},
        }
        for report in reports
    )
    written, _ = helpers.bulk(client, actions, refresh="wait_for", raise_on_error=True)
    if client.indices.exists(index=index):
        delete_matching(client, index, {"bool": {"must_not": {"term": {"run.keyword": run}}}})
    return int(written)
