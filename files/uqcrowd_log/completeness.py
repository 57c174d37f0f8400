"""Per-session completeness of stored events: what a researcher checks before trusting a session
(with the session's behavioural signals, signals.py).

The tracker numbers each page's events 0, 1, 2 ... (sequence_number) and its End Session event
says how many the page made (details.events). From the stored documents alone this reports, per
session: events stored, the sequence numbers missing, the duplicates (one sequence number stored
under several ids), and whether End Session's count matches what is stored -> complete or not.
Pure: it takes documents (dicts) from anywhere, an Elasticsearch scroll, an export file or a test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .signals import SessionSignals, Signals

END_SESSION = "End Session"


@dataclass
class SessionReport:
    session_id: str
    worker_id: str = ""
    exp_id: str = ""
    hit_id: str = ""
    assignment_id: str = ""
    first_time: datetime | None = None  # server_time of the first and last event stored
    last_time: datetime | None = None
    by_type: Counter[str] = field(default_factory=Counter)  # events per log_type
    stored: int = 0  # documents stored for the session
    declared: int | None = None  # events the page said it made (largest End Session count)
    end_sessions: int = 0
    missing: int = 0  # sequence numbers up to the highest (or the declared count) never stored
    first_missing: list[int] = field(default_factory=list)  # the first few of them
    duplicates: int = 0  # documents beyond the first for one sequence number
    without_sequence: int = 0
    signals: Signals = field(default_factory=Signals)  # is this a person doing the task? (signals.py)

    @property
    def complete(self) -> bool:
        distinct = self.stored - self.duplicates - self.without_sequence
        return self.declared is not None and self.missing == 0 and self.duplicates == 0 and distinct == self.declared

    @property
    def duration_seconds(self) -> float | None:
        if self.first_time is None or self.last_time is None:
            return None
        return round((self.last_time - self.first_time).total_seconds(), 3)

    def as_row(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "worker_id": self.worker_id,
            "exp_id": self.exp_id,
            "hit_id": self.hit_id,
            "assignment_id": self.assignment_id,
            "first_time": self.first_time.isoformat() if self.first_time else "",
            "last_time": self.last_time.isoformat() if self.last_time else "",
            "duration_seconds": self.duration_seconds,
            "events_by_type": " ".join(f"{kind}={n}" for kind, n in sorted(self.by_type.items())),
            "stored": self.stored,
            "declared": self.declared,
            "end_sessions": self.end_sessions,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "complete": self.complete,
            **self.signals.as_row(),
        }


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def _declared_count(doc: dict[str, Any]) -> int | None:
    content = doc.get("content")
    if doc.get("log_type") != "message" or not isinstance(content, dict) or content.get("message") != END_SESSION:
        return None
    details = content.get("details")
    count = details.get("events") if isinstance(details, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else -1


def _first_missing(seen: Counter[int], highest: int, count: int) -> list[int]:
    found, number = [], 0
    for present in sorted(seen):
        while number < present and len(found) < count:
            found.append(number)
            number += 1
        number = present + 1
    while number <= highest and len(found) < count:
        found.append(number)
        number += 1
    return found


def session_reports(documents: Iterable[dict[str, Any]]) -> list[SessionReport]:
    """One report per session_id, in order of session id."""
    reports: dict[str, SessionReport] = {}
    sequences: dict[str, Counter[int]] = defaultdict(Counter)
    behaviour: dict[str, SessionSignals] = defaultdict(SessionSignals)
    for doc in documents:
        session = str(doc.get("session_id") or "")
        report = reports.setdefault(session, SessionReport(session))
        report.stored += 1
        behaviour[session].add(doc)
        for name in ("worker_id", "exp_id", "hit_id", "assignment_id"):
            if not getattr(report, name) and doc.get(name):
                setattr(report, name, str(doc[name]))
        report.by_type[str(doc.get("log_type") or "")] += 1
        moment = _moment(doc.get("server_time"))
        if moment is not None:
            report.first_time = min(moment, report.first_time or moment)
            report.last_time = max(moment, report.last_time or moment)
        number = doc.get("sequence_number")
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            sequences[session][number] += 1
        declared = _declared_count(doc)
        if declared is not None:
            report.end_sessions += 1
            report.declared = max(declared, report.declared if report.declared is not None else declared)
    for session, report in reports.items():
        seen = sequences[session]
        expected = count_gaps(report, distinct=len(seen), highest=max(seen, default=-1), sequenced=sum(seen.values()))
        report.first_missing = _first_missing(seen, expected, 10)
        report.signals = behaviour[session].signals()
    return [reports[s] for s in sorted(reports)]


def count_gaps(report: SessionReport, distinct: int, highest: int, sequenced: int) -> int:
    """The session's missing numbers and duplicates from what its documents carry: `distinct` sequence
    numbers, the `highest` of them (-1: none), `sequenced` documents with one. The one rule, whoever
    counted: session_reports from the documents, the dashboard from Elasticsearch's aggregations.
    Returns the highest number the session should have (-1: none)."""
    if report.declared is not None:
        highest = max(highest, report.declared - 1)
    report.missing = highest + 1 - distinct
    report.duplicates = sequenced - distinct
    report.without_sequence = report.stored - sequenced
    return highest
