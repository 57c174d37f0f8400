"""Per-session behavioural signals and the flags researchers set on them, from documents alone."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from uqcrowd_log.completeness import session_reports
from uqcrowd_log.flags import flags, parse, rules_by_experiment
from uqcrowd_log.signals import COLUMNS, SessionSignals, Signals

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def event(n: int, seconds: float, log_type: str, kind: str, **details: object) -> dict:
    return {
        "session_id": "s1",
        "exp_id": "study-a",
        "sequence_number": n,
        "browser_time": at(seconds),
        "log_type": log_type,
        "content": {log_type: kind, "details": details},
    }


SESSION = [
    event(0, 0, "message", "Start Session"),
    event(1, 8, "keyboard_event", "typing", started=at(5), typed_chars=10, deletions=2, edits=[[0, "insertText", "a"]]),
    event(2, 10, "browser_event", "window_blur"),
    event(3, 10, "browser_event", "visibility_hidden"),  # the same leave as the blur before it
    event(4, 40, "browser_event", "visibility_visible"),
    event(5, 40, "browser_event", "window_focus"),
    event(6, 50, "browser_event", "window_blur"),
    event(7, 55, "browser_event", "window_focus"),
    event(8, 60, "keyboard_event", "paste", text_length=90, masked="length"),
    event(9, 61, "keyboard_event", "copy", text_length=4),
    event(10, 62, "keyboard_event", "cut", text_length=4),
    event(11, 70, "message", "End Session", events=12),
]


def signals_of(documents: list[dict]) -> Signals:
    gathered = SessionSignals()
    for doc in documents:
        gathered.add(doc)
    return gathered.signals()


def test_a_session_s_signals():
    s = signals_of(SESSION)
    assert (s.hidden_seconds, s.active_seconds, s.away_count) == (30.0, 40.0, 2)
    assert (s.typed_chars, s.deletions, s.pastes, s.pasted_chars, s.copies) == (10, 2, 1, 90, 2)
    assert s.paste_share == pytest.approx(0.9)
    assert s.first_input_seconds == 5.0  # the typing burst's first edit, not when it was sent
    assert s.typing_cpm == 15.0  # 10 characters in 40 s of active time


def test_the_order_documents_come_in_does_not_matter():
    shuffled = SESSION[:]
    random.Random(7).shuffle(shuffled)
    assert signals_of(shuffled) == signals_of(SESSION)


def test_an_event_stored_twice_counts_once():
    """The same event in two daily indices (sent again after its day's window): one paste, not two."""
    assert signals_of([*SESSION, SESSION[8], SESSION[1]]) == signals_of(SESSION)
    again = {**SESSION[8], "sequence_number": 12, "browser_time": at(65)}  # a second paste: counted
    assert signals_of([*SESSION, again]).pastes == 2


def test_without_a_start_session_the_first_event_is_the_start():
    s = signals_of(SESSION[1:])
    assert (s.active_seconds, s.first_input_seconds) == (35.0, 0.0)  # from the burst's first key (5 s)


def test_earlier_trackers_input_events_count_one_character_per_insert():
    keys = [event(n + 1, n + 1, "keyboard_event", "input", input_type="insertText", value="x" * n) for n in range(3)]
    keys.append(event(4, 4, "keyboard_event", "input", input_type="deleteContentBackward"))
    s = signals_of([event(0, 0, "message", "Start Session"), *keys])
    assert (s.typed_chars, s.deletions, s.first_input_seconds, s.paste_share) == (3, 1, 1.0, 0.0)


def test_a_page_hidden_to_the_end_is_hidden_until_the_last_event():
    s = signals_of([event(0, 0, "message", "Start Session"), event(1, 20, "browser_event", "visibility_hidden"),
                    event(2, 50, "message", "End Session", events=3)])  # fmt: skip
    assert (s.hidden_seconds, s.active_seconds, s.away_count, s.typing_cpm) == (30.0, 20.0, 1, 0.0)


def test_nothing_typed_nor_pasted_leaves_the_share_empty_and_no_time_leaves_everything_empty():
    s = signals_of([event(0, 0, "message", "Start Session")])
    assert (s.paste_share, s.first_input_seconds, s.typing_cpm) == (None, None, None)
    assert signals_of([{"session_id": "x", "log_type": "message"}]) == Signals()
    assert Signals().as_row()["paste_share"] == ""  # an empty cell in the CSV


def test_session_reports_carry_the_signals_in_their_rows():
    [report] = session_reports(SESSION)
    row = report.as_row()
    assert report.complete
    assert [row[c] for c in COLUMNS] == [40.0, 30.0, 2, 10, 2, 1, 90, 0.9, 2, 5.0, 15.0]


def test_a_stored_reports_row_gives_the_same_signals_back_empty_cells_included():
    """The experiment's page reads the signals from the stored reports' rows (their JSON), not the events."""
    for signals in (signals_of(SESSION), Signals(), Signals(active_seconds=3.0, typed_chars=4)):
        assert Signals.from_row(json.loads(json.dumps({"session_id": "x", **signals.as_row()}))) == signals


def test_flags_mark_the_sessions_their_experiment_s_rules_say():
    s = signals_of(SESSION)
    rules = rules_by_experiment({"study-a": ["paste_share > 0.5", "active_seconds<60"], "*": ["hidden_seconds >= 31"]})
    assert flags(s, "study-a", rules) == ["paste_share>0.5", "active_seconds<60"]
    assert flags(s, "study-b", rules) == []  # another experiment: only the "*" rules, not met
    assert flags(Signals(), "study-a", rules) == []  # an empty signal never meets a rule
    assert flags(s, "study-a", {}) == []  # nothing set: nothing flagged


@pytest.mark.parametrize("bad", ["paste_share", "paste_share >> 1", "pasted > 1", "paste_share > x", ""])
def test_a_rule_that_is_not_one_is_refused_in_one_line(bad):
    with pytest.raises(ValueError, match="flag") as refused:
        parse(bad)
    assert "\n" not in str(refused.value)
