"""Per-session reports read from Elasticsearch, and the daily session index the cron job keeps
(`uqcrowd-session-YYYY-MM-DD`, one document per session, replaced on every run)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from elasticsearch import Elasticsearch, helpers

from ..completeness import SessionReport, session_reports
from .selection import Selection, delete_matching, stream


def read_reports(client: Elasticsearch, index: str, selection: Selection) -> list[SessionReport]:
    return session_reports(hit["_source"] for hit in stream(client, index, selection))


def store(client: Elasticsearch, index: str, reports: list[SessionReport]) -> int:
    """Write one document per session under its session id, then remove what an earlier run wrote
    and this one did not (a withdrawn worker's session): a re-run replaces, never doubles."""
    run = uuid.uuid4().hex
    stored_at = datetime.now(UTC).isoformat(timespec="seconds")
    actions = (
        {
            "_op_type": "index",
            "_index": index,
            "_id": report.session_id or "(none)",
            "_source": {**report.as_row(), "run": run, "stored_at": stored_at},
        }
        for report in reports
    )
    written, _ = helpers.bulk(client, actions, refresh="wait_for", raise_on_error=True)
    if client.indices.exists(index=index):
        delete_matching(client, index, {"bool": {"must_not": {"term": {"run.keyword": run}}}})
    return int(written)
