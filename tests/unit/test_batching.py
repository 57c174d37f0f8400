"""Pure tests of the queue's entries: how a request's events travel, and how the indexer batches and
settles entries."""

from __future__ import annotations

import pytest

from uqcrowd_log.elastic import BulkOutcome
from uqcrowd_log.events import Prepared
from uqcrowd_log.indexer import fitting, split_by_answer
from uqcrowd_log.queue.entries import Entry, pack, unpack


def entry(n: int, *sizes: int) -> Entry:
    """Entry n holding one event per size (document of that many bytes)."""
    events = tuple(Prepared(f"{n}.{i}", "2026-11-28", b"x" * size) for i, size in enumerate(sizes))
    return Entry(f"{n}-0".encode(), events, sum(sizes), len(sizes))


def test_a_batch_stops_before_the_byte_cap():
    assert len(fitting([entry(0, 40), entry(1, 40), entry(2, 40)], 100, 100)) == 2
    assert len(fitting([entry(0, 40), entry(1, 40), entry(2, 20)], 100, 100)) == 3


def test_a_batch_stops_before_the_event_cap_counting_each_entrys_events():
    assert len(fitting([entry(0, 1, 1, 1), entry(1, 1, 1), entry(2, 1)], 5, 10**6)) == 2
    assert len(fitting([entry(0, 1, 1, 1), entry(1, 1, 1)], 6, 10**6)) == 2


def test_one_entry_over_a_cap_still_goes_alone():
    assert len(fitting([entry(0, 500), entry(1, 10)], 100, 100)) == 1
    assert len(fitting([entry(0, 1, 1, 1), entry(1, 1)], 2, 10**6)) == 1


def test_each_field_comes_back_byte_for_byte_whatever_it_holds():
    events = [
        Prepared("id with space", "2026-11-28", b'{"a":"line\nbreak 12 34"}'),
        Prepared("7", "2026-11-29", '{"é":"日本"}'.encode()),
        Prepared("x" * 512, "2026-11-30", b""),
    ]
    assert unpack(*pack(events)) == tuple(events)


@pytest.mark.parametrize(("lengths", "data"), [(b"1 1", b"ab"), (b"1 1 1", b"ab"), (b"1 1 x", b"abc")])
def test_fields_that_do_not_match_their_lengths_are_refused(lengths, data):
    with pytest.raises(ValueError, match="an entry's lengths"):
        unpack(lengths, data)


def test_an_entry_is_settled_only_when_elasticsearch_answered_for_all_its_events():
    held = [entry(0, 1, 1), entry(1, 1, 1), entry(2, 1), entry(3, 1, 1)]
    outcome = BulkOutcome(
        done=[(0, 0), (1, 0), (3, 0)],
        rejected=[((0, 1), "400 bad"), ((1, 1), "400 bad too")],
        retry=[(2, 0)],
        faults=[((3, 1), "403 security_exception")],
    )
    done, rejected, kept = split_by_answer(held, outcome)
    assert done == held[:2]
    assert rejected == [(held[0].events[1], "400 bad"), (held[1].events[1], "400 bad too")]
    assert kept == held[2:]


def test_a_refused_event_of_an_entry_kept_for_a_retry_is_not_dead_lettered_yet():
    held = [entry(0, 1, 1)]
    done, rejected, kept = split_by_answer(held, BulkOutcome(rejected=[((0, 0), "400 bad")], retry=[(0, 1)]))
    assert (done, rejected, kept) == ([], [], held)
