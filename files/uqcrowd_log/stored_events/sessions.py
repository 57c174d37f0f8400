"""Per-session reports read from Elasticsearch, and the daily session index the cron job keeps
(`uqcrowd-session-YYYY-MM-DD`, one document per session, replaced on every run)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, helpers

from ..completeness import SessionReport, session_reports
from ..flags import Rule, flags
from .selection import Selection, delete_matching, stream


def read_reports(client: Elasticsearch, index: str, selection: Selection) -> list[SessionReport]:
    return session_reports(hit["_source"] for hit in stream(client, index, selection))


def rows(reports: list[SessionReport], rules: Mapping[str, tuple[Rule, ...]]) -> list[dict[str, Any]]:
    """Each report as a row: completeness, signals, and the flags its experiment's rules raise."""
    return [{**r.as_row(), "flags": " ".join(flags(r.signals, r.exp_id, rules))} for r in reports]


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
