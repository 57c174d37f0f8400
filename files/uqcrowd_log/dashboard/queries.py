"""What the dashboard shows, read from Elasticsearch: the studies at a glance, one experiment's
sessions (the completeness reports of stored_events.sessions, as `uqcrowd-log sessions` gives them), its events over
time, and the original's two lookups (sessions of a worker, of a browser fingerprint)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from elasticsearch import Elasticsearch

from ..completeness import END_SESSION, SessionReport, count_gaps, session_reports
from ..stored_events.selection import Selection, stream
from ..stored_events.sessions import read_reports

Status = Literal["complete", "in progress", "incomplete"]
# The tracker's fingerprint event (static/logger.js: browser_event "fingerprint", details.hash).
FINGERPRINT_EVENT = {"term": {"content.browser_event": "fingerprint"}}
END_SESSION_EVENT = {
    "bool": {"filter": [{"term": {"log_type": "message"}}, {"term": {"content.message": END_SESSION}}]}
}
# What one session's report needs, counted by Elasticsearch. Distinct sequence numbers by cardinality:
# up to its precision_threshold Elasticsearch counts by linear counting, which can only undercount (two
# numbers' hashes colliding), never overcount. So a session with as many distinct numbers as numbered
# events, and no more of them than the threshold, is counted exactly; any other (an apparent duplicate, a
# longer session) is recounted from its documents. Each bucket of a page reserves about 8 bytes per unit of
# the threshold: 500 x 3,000 x 8 bytes = 12 MB a shard (40,000 tripped a 512 MB heap's circuit breaker).
EXACT_UP_TO = 3000
PAGE = 500
SESSION_AGGS: dict[str, Any] = {
    "first": {"min": {"field": "server_time"}},
    "last": {"max": {"field": "server_time"}},
    "types": {"terms": {"field": "log_type", "size": 100, "missing": ""}},
    "sequenced": {
        "filter": {"range": {"sequence_number": {"gte": 0}}},
        "aggs": {
            "distinct": {"cardinality": {"field": "sequence_number", "precision_threshold": EXACT_UP_TO}},
            "highest": {"max": {"field": "sequence_number"}},
        },
    },
    "ends": {
        "filter": END_SESSION_EVENT,
        "aggs": {"counts": {"terms": {"field": "content.details.events", "size": 20}}},
    },
    **{name: {"terms": {"field": name, "size": 1}} for name in ("worker_id", "exp_id", "hit_id", "assignment_id")},
}


def status(report: SessionReport, now: datetime, idle: timedelta) -> Status:
    """Complete (its End Session's count all stored, once), in progress (not yet, and its last event
    less than `idle` ago), or incomplete."""
    if report.complete:
        return "complete"
    if report.last_time is not None and now - report.last_time < idle:
        return "in progress"
    return "incomplete"


@dataclass(frozen=True)
class Experiment:
    """One experiment at a glance."""

    exp_id: str
    events_total: int
    events_today: int
    last_event: datetime | None
    sessions: dict[Status, int]


def count_by_status(reports: Iterable[SessionReport], now: datetime, idle: timedelta) -> dict[Status, int]:
    counts: dict[Status, int] = {"in progress": 0, "complete": 0, "incomplete": 0}
    for report in reports:
        counts[status(report, now, idle)] += 1
    return counts


def experiments(client: Elasticsearch, index: str, now: datetime, idle: timedelta) -> list[Experiment]:
    """Every experiment with events, the most recently active first."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    answer = client.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        aggs={
            "experiments": {
                "terms": {"field": "exp_id", "size": 1000, "missing": ""},
                "aggs": {
                    "last": {"max": {"field": "server_time"}},
                    "today": {"filter": {"range": {"server_time": {"gte": today.isoformat()}}}},
                },
            }
        },
    )
    found = []
    for bucket in answer.get("aggregations", {}).get("experiments", {}).get("buckets", []):
        reports = summaries(client, index, Selection(exp_id=bucket["key"])) if bucket["key"] else []
        last = bucket["last"].get("value")
        found.append(
            Experiment(
                exp_id=bucket["key"],
                events_total=bucket["doc_count"],
                events_today=bucket["today"]["doc_count"],
                last_event=datetime.fromtimestamp(last / 1000, UTC) if last is not None else None,
                sessions=count_by_status(reports, now, idle),
            )
        )
    return sorted(found, key=lambda e: e.last_event or datetime.min.replace(tzinfo=UTC), reverse=True)


def sessions(client: Elasticsearch, index: str, exp_id: str, worker_id: str = "") -> list[SessionReport]:
    """The experiment's sessions (of one worker if given), by session id: the reports `uqcrowd-log
    sessions` gives, from Elasticsearch's aggregations (first_missing empty unless recounted)."""
    return summaries(client, index, Selection(exp_id=exp_id, worker_id=worker_id))


def summaries(client: Elasticsearch, index: str, selection: Selection) -> list[SessionReport]:
    """Each selected session's report, counted per session by a composite aggregation, page by page;
    the few the aggregation cannot count exactly are read from their documents (`read_reports`)."""
    reports: list[SessionReport] = []
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {
            "size": PAGE,
            "sources": [{"session_id": {"terms": {"field": "session_id", "missing_bucket": True}}}],
            **({"after": after} if after else {}),
        }
        answer = client.search(
            index=index,
            size=0,
            ignore_unavailable=True,
            query=selection.query(),
            aggs={"sessions": {"composite": composite, "aggs": SESSION_AGGS}},
        )
        found = answer.get("aggregations", {}).get("sessions", {})
        for bucket in found.get("buckets", []):
            session_id = bucket["key"]["session_id"]
            if exact(bucket) or not session_id:  # events without a session: no document query selects them
                reports.append(_report(bucket))
            else:
                reports.extend(read_reports(client, index, replace(selection, session_id=str(session_id))))
        after = found.get("after_key")
        if not after or not found.get("buckets"):
            return sorted(reports, key=lambda report: report.session_id)


def exact(bucket: dict[str, Any]) -> bool:
    """Whether the bucket's distinct count is exact: one distinct number per numbered event, no more of
    them than the threshold (linear counting undercounts only)."""
    sequenced = bucket["sequenced"]
    return sequenced["doc_count"] <= EXACT_UP_TO and sequenced["distinct"]["value"] == sequenced["doc_count"]


def _report(bucket: dict[str, Any]) -> SessionReport:
    report = SessionReport(str(bucket["key"]["session_id"] or ""), stored=bucket["doc_count"])
    for name in ("worker_id", "exp_id", "hit_id", "assignment_id"):
        values = bucket[name]["buckets"]
        setattr(report, name, str(values[0]["key"]) if values else "")
    report.first_time, report.last_time = _time(bucket["first"]), _time(bucket["last"])
    for kind in bucket["types"]["buckets"]:
        report.by_type[str(kind["key"])] = kind["doc_count"]
    ends = bucket["ends"]
    if ends["doc_count"]:
        report.end_sessions = ends["doc_count"]
        counts = [(_integer(c["key"]), c["doc_count"]) for c in ends["counts"]["buckets"]]
        declared = [n for n, _ in counts if n is not None]
        counted = sum(times for n, times in counts if n is not None)
        report.declared = max(declared + ([-1] if counted < ends["doc_count"] else []))  # -1: no count said
    sequenced = bucket["sequenced"]
    highest = sequenced["highest"]["value"]
    count_gaps(
        report,
        distinct=sequenced["distinct"]["value"],
        highest=int(highest) if highest is not None else -1,
        sequenced=sequenced["doc_count"],
    )
    return report


def _time(value: dict[str, Any]) -> datetime | None:
    return datetime.fromtimestamp(value["value"] / 1000, UTC) if value.get("value") is not None else None


def _integer(text: Any) -> int | None:
    """An End Session's count as the flattened field keeps it (text): an integer, or None."""
    try:
        return int(str(text))
    except ValueError:
        return None


def events_per_day(client: Elasticsearch, index: str, exp_id: str) -> list[tuple[str, int]]:
    """(YYYY-MM-DD, events stored that day, UTC) from the experiment's first day to its last."""
    answer = client.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        query=Selection(exp_id=exp_id).query(),
        aggs={"days": {"date_histogram": {"field": "server_time", "calendar_interval": "day", "format": "yyyy-MM-dd"}}},
    )
    buckets = answer.get("aggregations", {}).get("days", {}).get("buckets", [])
    return [(bucket["key_as_string"], bucket["doc_count"]) for bucket in buckets]


def events_per_minute(client: Elasticsearch, index: str, exp_id: str, now: datetime) -> list[tuple[str, int]]:
    """(HH:MM, events stored that minute, UTC) for each of the last 60 minutes, empty ones too."""
    start = now.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=59)
    answer = client.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        query={"bool": {"filter": [*Selection(exp_id=exp_id).query()["bool"]["filter"], _since(start)]}},
        aggs={"minutes": {"date_histogram": {"field": "server_time", "fixed_interval": "1m"}}},
    )
    stored = {
        datetime.fromtimestamp(bucket["key"] / 1000, UTC): bucket["doc_count"]
        for bucket in answer.get("aggregations", {}).get("minutes", {}).get("buckets", [])
    }
    minutes = [start + timedelta(minutes=n) for n in range(60)]
    return [(minute.strftime("%H:%M"), stored.get(minute, 0)) for minute in minutes]


def session_timeline(
    client: Elasticsearch, index: str, exp_id: str, report: SessionReport, points: int = 40
) -> dict[str, list[tuple[str, int]]]:
    """A session's events over time by type: for each log_type, (HH:MM:SS, events stored then, UTC) in
    about `points` equal steps (a second at the least) from its first event to its last, empty ones too."""
    if report.first_time is None or report.last_time is None:
        return {}
    first, last = (int(moment.timestamp() * 1000) for moment in (report.first_time, report.last_time))
    step = max(1000, -(-(last - first) // points))  # milliseconds, rounded up
    over_time = {
        "date_histogram": {
            "field": "server_time",
            "fixed_interval": f"{step}ms",
            "min_doc_count": 0,
            "extended_bounds": {"min": first, "max": last},
        }
    }
    answer = client.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        query=Selection(exp_id=exp_id, session_id=report.session_id).query(),
        aggs={"types": {**SESSION_AGGS["types"], "aggs": {"time": over_time}}},
    )
    return {
        kind["key"]: [
            (datetime.fromtimestamp(bucket["key"] / 1000, UTC).strftime("%H:%M:%S"), bucket["doc_count"])
            for bucket in kind["time"]["buckets"]
        ]
        for kind in answer.get("aggregations", {}).get("types", {}).get("buckets", [])
    }


def _since(moment: datetime) -> dict[str, Any]:
    return {"range": {"server_time": {"gte": moment.isoformat()}}}


@dataclass(frozen=True)
class Repeats:
    """Who took part more than once: workers with several sessions in the experiment, and browser
    fingerprints seen under several worker ids (the same person, or browser, twice)."""

    workers: dict[str, int]  # worker id -> its sessions
    fingerprints: dict[str, list[str]]  # fingerprint -> the worker ids it came with


def repeats(client: Elasticsearch, index: str, exp_id: str) -> Repeats:
    # Buckets of more than one are kept here (bucket_selector is in a module not every distribution has).
    answer = client.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        query=Selection(exp_id=exp_id).query(),
        aggs={
            "workers": {
                "terms": {"field": "worker_id", "size": 10000},
                "aggs": {"n": {"cardinality": {"field": "session_id"}}},
            },
            "fingerprints": {
                "filter": FINGERPRINT_EVENT,
                "aggs": {
                    "hashes": {
                        "terms": {"field": "content.details.hash", "size": 10000},
                        "aggs": {
                            "n": {"cardinality": {"field": "worker_id"}},
                            "workers": {"terms": {"field": "worker_id", "size": 100}},
                        },
                    }
                },
            },
        },
    )
    found = answer.get("aggregations", {})
    by_worker = found.get("workers", {}).get("buckets", [])
    workers = {b["key"]: b["n"]["value"] for b in by_worker if b["key"] and b["n"]["value"] > 1}
    hashes = found.get("fingerprints", {}).get("hashes", {}).get("buckets", [])
    fingerprints = {b["key"]: sorted(w["key"] for w in b["workers"]["buckets"]) for b in hashes if b["n"]["value"] > 1}
    return Repeats(workers=workers, fingerprints=fingerprints)


def sessions_of_worker(client: Elasticsearch, index: str, worker_id: str) -> list[SessionReport]:
    """Every session of the worker, in any experiment (the original's lookup by worker id)."""
    return read_reports(client, index, Selection(worker_id=worker_id))


def sessions_of_fingerprint(client: Elasticsearch, index: str, fingerprint: str) -> list[SessionReport]:
    """Every session whose browser sent this fingerprint (the tracker's fingerprint event), whatever
    worker id it gave (the original's lookup by client)."""
    answer = client.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        query={"bool": {"filter": [FINGERPRINT_EVENT, {"term": {"content.details.hash": fingerprint}}]}},
        aggs={"sessions": {"terms": {"field": "session_id", "size": 1000}}},
    )
    ids = [bucket["key"] for bucket in answer.get("aggregations", {}).get("sessions", {}).get("buckets", [])]
    documents: list[dict[str, Any]] = []
    for session_id in ids:
        documents.extend(hit["_source"] for hit in stream(client, index, Selection(session_id=session_id)))
    return session_reports(documents)
