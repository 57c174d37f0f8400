"""The stream's entry format: one entry holds one request's events.

An entry has two fields: `lengths`, the lengths of each event's id, day and document, and `events`,
those fields end to end (whatever bytes a field holds, the next one does not shift). A 20-event request
is then one XADD, one entry to read and one id to acknowledge. Entries of one event each (`id`, `day`,
`doc`), written by versions before entries held requests, are still read, and drain as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import Prepared


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry (one request's events), with the stream id that acknowledges it."""

    stream_id: bytes
    events: tuple[Prepared, ...]
    size: int  # the bytes the queue counted for it
    counted: int  # the events the queue's depth counted for it (0 for an entry of the earlier format)


def pack(events: Sequence[Prepared]) -> tuple[bytes, bytes]:
    """A request's events as an entry's two fields: `lengths` and `events`."""
    parts = [part for e in events for part in (e.event_id.encode(), e.day.encode(), e.document)]
    return " ".join(str(len(part)) for part in parts).encode(), b"".join(parts)


def unpack(lengths: bytes, data: bytes) -> tuple[Prepared, ...]:
    """The events `pack` wrote. Raises ValueError if the fields do not match each other."""
    try:
        sizes = [int(n) for n in lengths.split()]
    except ValueError:
        raise ValueError(f"an entry's lengths are not numbers: {lengths[:80]!r}") from None
    if len(sizes) % 3 or sum(sizes) != len(data):
        raise ValueError(f"an entry's lengths ({len(sizes)} of them) do not match its {len(data)} bytes")
    fields, pos = [], 0
    for n in sizes:
        fields.append(data[pos : pos + n])
        pos += n
    return tuple(Prepared(fields[i].decode(), fields[i + 1].decode(), fields[i + 2]) for i in range(0, len(fields), 3))


def read(raw: list) -> list[Entry]:
    """The entries of an XREADGROUP, XAUTOCLAIM or XRANGE reply's (id, fields) pairs."""
    entries = []
    for stream_id, f in raw:
        if not f:  # an id without fields was deleted after its ack raced a crash: nothing left to deliver
            continue
        if b"events" in f:
            events = unpack(f[b"lengths"], f[b"events"])
            entries.append(Entry(stream_id, events, len(f[b"events"]), len(events)))
        else:  # one event, written before entries held requests
            event = Prepared(f[b"id"].decode(), f[b"day"].decode(), f[b"doc"])
            entries.append(Entry(stream_id, (event,), len(f[b"doc"]), 0))
    return entries
