"""A session as a person reads it: the events in order, typing merged per burst, lengths only."""

from __future__ import annotations

import random

from tests.unit.test_signals import at, event
from uqcrowd_log.transcript import lines

FIELD = {"tag": "textarea", "id": "summary"}


def typing(n: int, sent: float, started: float, chars: int, boundary: str = "") -> dict:
    details = {**FIELD, "started": at(started), "typed_chars": chars, "edits": [[0, "insertText", "x"]] * chars}
    return event(n, sent, "keyboard_event", "typing", **details, **({"boundary": boundary} if boundary else {}))


SESSION = [
    event(0, 0, "message", "Start Session"),
    typing(1, 3, 2, 50),  # cut at 50 edits: the burst goes on
    typing(2, 5, 3, 20, "pause"),  # ...and ends at a pause: one line, 70 characters, from 0:02
    typing(3, 20, 15, 5, "blur"),  # a new burst after the pause
    event(4, 41, "keyboard_event", "paste", **FIELD, text_length=236, masked="length"),
    event(5, 52, "browser_event", "visibility_hidden"),
    event(6, 182, "browser_event", "visibility_visible"),
    event(7, 183, "mouse_event", "click", tag="button", id="submit"),
    event(8, 184, "message", "End Session", events=9),
]


def test_a_session_reads_as_a_person_would_say_it():
    assert [(line.at, line.what) for line in lines(SESSION)] == [
        ("0:00", "Start Session"),
        ("0:02", "typed 70 characters into textarea#summary"),
        ("0:15", "typed 5 characters into textarea#summary"),
        ("0:41", "pasted 236 characters in textarea#summary"),
        ("0:52", "left the page for 2 min 10 s"),
        ("3:03", "clicked button#submit"),
        ("3:04", "End Session"),
    ]


def test_the_order_documents_come_in_does_not_matter():
    shuffled = SESSION[:]
    random.Random(3).shuffle(shuffled)
    assert lines(shuffled) == lines(SESSION)


def test_an_earlier_tracker_s_keys_merge_until_a_pause_and_no_text_is_shown():
    keys = [event(n, 1 + n * 0.2, "keyboard_event", "input", **FIELD, input_type="insertText", value="secret"[:n])
            for n in range(1, 6)]  # fmt: skip
    later = event(9, 10, "keyboard_event", "input", **FIELD, input_type="insertText", value="secret")
    shown = [line.what for line in lines([event(0, 0, "message", "Start Session"), *keys, later])]
    assert shown == [
        "Start Session",
        "typed 5 characters into textarea#summary",
        "typed 1 character into textarea#summary",
    ]
    assert "secret" not in str(shown)


def test_a_page_left_for_good_says_so_and_nothing_without_a_time_is_shown():
    gone = [event(0, 0, "message", "Start Session"), event(1, 5, "browser_event", "visibility_hidden")]
    assert [line.what for line in lines(gone)] == ["Start Session", "left the page, and did not come back"]
    assert lines([{"log_type": "message"}]) == []


def test_deletions_are_said_with_their_burst_and_a_burst_of_deletions_alone_as_such():
    deleting = {
        **FIELD,
        "started": at(9),
        "typed_chars": 0,
        "deletions": 3,
        "edits": [[0, "deleteContentBackward", None]] * 3,
    }
    session = [
        event(0, 0, "message", "Start Session"),
        event(1, 3, "keyboard_event", "typing", **FIELD, started=at(1), typed_chars=6, deletions=1, boundary="pause"),
        event(2, 10, "keyboard_event", "typing", **deleting, boundary="pause"),
        event(3, 12, "keyboard_event", "input", **FIELD, input_type="deleteContentBackward"),  # an earlier tracker's
    ]
    assert [line.what for line in lines(session)] == [
        "Start Session",
        "typed 6 characters into textarea#summary, deleted 1",
        "deleted 3 characters in textarea#summary",
        "deleted 1 character in textarea#summary",
    ]
