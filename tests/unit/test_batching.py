"""Pure tests of the indexer's byte cap."""

from __future__ import annotations

from uqcrowd_log.events import Prepared
from uqcrowd_log.indexer import within_bytes
from uqcrowd_log.redis_queue import Entry


def entries(*sizes: int) -> list[Entry]:
    return [Entry(f"{n}-0".encode(), Prepared(str(n), "2026-11-28", b"x" * size)) for n, size in enumerate(sizes)]


def test_a_batch_stops_before_the_byte_cap():
    assert len(within_bytes(entries(40, 40, 40), 100)) == 2
    assert len(within_bytes(entries(40, 40, 20), 100)) == 3


def test_one_event_over_the_cap_still_goes_alone():
    assert len(within_bytes(entries(500, 10), 100)) == 1
