"""Pure tests of the per-session completeness report."""

from __future__ import annotations

from uqcrowd_log.completeness import session_reports


def page(session: str, count: int, worker: str = "W1") -> list[dict]:
    """What a tracker stores for a page that made `count` events, End Session last."""
    docs = [
        {"session_id": session, "worker_id": worker, "log_type": "mouse_event", "sequence_number": n}
        for n in range(count - 1)
    ]
    end = {"log_type": "message", "content": {"message": "End Session", "details": {"events": count}}}
    return [*docs, {"session_id": session, "worker_id": worker, "sequence_number": count - 1, **end}]


def test_a_whole_session_is_complete():
    [report] = session_reports(page("s1", 5))
    assert (report.stored, report.declared, report.missing, report.duplicates) == (5, 5, 0, 0)
    assert report.complete
    assert report.as_row()["worker_id"] == "W1"


def test_a_missing_event_a_duplicate_or_no_end_session_is_incomplete():
    docs = page("gap", 6)
    del docs[2]
    [gap] = session_reports(docs)
    assert (gap.missing, gap.first_missing, gap.complete) == (1, [2], False)

    [dup] = session_reports([*page("dup", 3), {"session_id": "dup", "sequence_number": 1}])
    assert (dup.duplicates, dup.complete) == (1, False)

    [open_] = session_reports(page("open", 4)[:-1])
    assert (open_.declared, open_.complete) == (None, False)


def test_lost_events_at_the_end_are_found_through_the_declared_count():
    docs = page("tail", 10)
    tail = [*docs[:5], docs[-1]]  # 5..8 never arrived
    [report] = session_reports(tail)
    assert (report.missing, report.first_missing[:4]) == (4, [5, 6, 7, 8])


def test_sessions_are_reported_apart_and_a_huge_sequence_number_costs_nothing():
    reports = session_reports([*page("b", 2), *page("a", 3), {"session_id": "c", "sequence_number": 10**12}])
    assert [r.session_id for r in reports] == ["a", "b", "c"]
    assert [r.complete for r in reports] == [True, True, False]
    assert reports[2].missing == 10**12
