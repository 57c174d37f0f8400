"""Pure tests of parsing, ids and index days: no service, milliseconds each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from uqcrowd_log.events import (
    BadInput,
    Batch,
    document_id,
    drop_workers,
    index_day,
    parse_batch,
    prepare,
    worker_ids,
    worker_of,
)

GOOD = {"log_type": "message", "session_id": "s", "sequence_number": 1, "browser_time": "2026-11-28T10:00:00Z"}


def body(value: object) -> bytes:
    return orjson.dumps(value)


def test_a_bad_event_is_refused_alone_with_its_position_and_reason():
    events = [{**GOOD, "sequence_number": n} for n in range(499)]
    events.insert(250, {**GOOD, "event_id": 7})
    batch = parse_batch(body(events), 500, 20)
    assert len(batch.events) == 499
    [bad] = batch.invalid
    assert (bad.position, bad.reason) == (250, "bad_event_id")
    assert bad.message.startswith("event 250: event_id must be a string")
    assert orjson.loads(bad.raw)["event_id"] == 7


@pytest.mark.parametrize(
    ("event", "reason"),
    [(1, "not_event"), ([GOOD], "not_event"), ({"a": [[[[1]]]]}, "too_deep"), ({"event_id": ""}, "bad_event_id")],
)
def test_each_kind_of_bad_event_is_named(event, reason):
    batch = parse_batch(body([GOOD, event]), 500, 4)
    assert [b.reason for b in batch.invalid] == [reason]
    assert batch.events == [GOOD]


@pytest.mark.parametrize(
    ("event", "deep"), [({"a": [[[1]]]}, False), ({"a": [[[[1]]]]}, True), ({"a": [1, {}]}, False)]
)
def test_the_depth_limit_counts_each_container_level(event, deep):
    batch = parse_batch(body([event]), 500, 4)
    assert [b.reason for b in batch.invalid] == (["too_deep"] if deep else [])


@pytest.mark.parametrize(
    ("raw", "reason"), [(b"", "empty"), (b"[]", "empty"), (b"{x", "not_json"), (body([GOOD] * 3), "batch_too_large")]
)
def test_a_body_that_is_not_a_batch_is_refused_whole(raw, reason):
    with pytest.raises(BadInput) as caught:
        parse_batch(raw, 2, 20)
    assert caught.value.reason == reason


def test_a_client_event_id_counts_within_its_session():
    one = document_id({"session_id": "a", "event_id": "1"})
    assert one == document_id({"session_id": "a", "event_id": "1", "content": {"other": True}})
    assert one != document_id({"session_id": "b", "event_id": "1"})
    assert document_id({"event_id": "1"}) != one


def test_an_event_without_a_client_id_is_identified_by_what_it_is():
    assert document_id(GOOD) == document_id(dict(GOOD))
    assert document_id(GOOD) != document_id({**GOOD, "sequence_number": 2})
    assert document_id({"log_type": "message"}) != document_id({"log_type": "message"})  # nothing to go on


def test_the_index_day_follows_browser_time_so_a_retry_after_midnight_keeps_its_day():
    event = {**GOOD, "browser_time": "2026-11-28T23:59:59.900Z"}
    before = datetime(2026, 11, 28, 23, 59, 59, 950000, tzinfo=UTC)
    after = before + timedelta(seconds=5)  # the retry, on the server's next day
    assert index_day(event, before) == index_day(event, after) == "2026-11-28"
    [first], [retry] = prepare([event], before, "192.0.2.1"), prepare([event], after, "192.0.2.1")
    assert (first.event_id, first.day) == (retry.event_id, retry.day)


@pytest.mark.parametrize(
    "browser_time", [None, "yesterday", "2026-11-28T10:00:00", "2020-01-01T00:00:00Z", "2031-01-01T00:00:00Z", True]
)
def test_an_unusable_or_implausible_browser_time_gives_the_server_day(browser_time):
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert index_day({"browser_time": browser_time}, now) == "2026-11-28"


def test_browser_time_in_epoch_milliseconds_and_with_an_offset():
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert index_day({"browser_time": int(datetime(2026, 11, 27, 23, tzinfo=UTC).timestamp() * 1000)}, now) == (
        "2026-11-27"
    )
    assert index_day({"browser_time": "2026-11-28T09:30:00+10:00"}, now) == "2026-11-27"


def test_prepare_stamps_server_fields_and_keeps_the_client_id():
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    [event] = prepare([{**GOOD, "event_id": "1"}], now, "192.0.2.1")
    doc = orjson.loads(event.document)
    assert doc["event_id"] == event.event_id != "1"
    assert doc["client_event_id"] == "1"
    assert (doc["server_time"], doc["client_ip"]) == ("2026-11-28T12:00:00.000+00:00", "192.0.2.1")
    [anonymous] = prepare([GOOD], now, None)
    assert "client_ip" not in orjson.loads(anonymous.document)


def test_the_events_of_withdrawn_workers_are_taken_out_of_a_batch_in_order():
    batch = Batch(
        events=[{"worker_id": "W1"}, {"worker_id": "W2"}, {}, {"worker_id": 7}, {"worker_id": "W1"}],
        positions=[0, 2, 3, 4, 6],
    )
    assert worker_ids(batch.events) == {"W1", "W2", "7"}
    assert drop_workers(batch, {"W1", "7"}) == 3
    assert (batch.events, batch.positions) == ([{"worker_id": "W2"}, {}], [2, 3])
    assert drop_workers(batch, set()) == 0


@pytest.mark.parametrize(
    ("event", "worker"),
    [
        ({"worker_id": "A1B2"}, "A1B2"),
        ({"worker_id": None}, ""),
        ({}, ""),
        ({"worker_id": {"x": 1}}, ""),
        ({"worker_id": 5}, "5"),
    ],
)
def test_the_worker_of_an_event_is_its_worker_id_as_text(event, worker):
    assert worker_of(event) == worker
