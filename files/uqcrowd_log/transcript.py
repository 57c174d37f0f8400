"""A session as a person reads it: its events in order, with the time since the start.

    0:05  typed 37 characters into textarea#summary
    0:41  pasted 236 characters into textarea#summary
    0:52  left the page for 2 min 10 s
    3:03  clicked button#submit

Typing is one line per burst of it in a field, with its deletions ("typed 6 characters into
textarea#summary, deleted 1"; "deleted 3 characters in ..." for a burst of deletions alone): the
tracker's typing events up to the one that ended at a boundary (a pause of 2 s, a paste, the field
left), or an earlier tracker's input events (one per key) up to a pause of 2 s. Only counts and
lengths are shown, never what was typed or pasted: what masking hides stays hidden, and what it does
not is in the export, not here. Pure: documents in (any order), lines out; the dashboard's session
page and its CSV use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

PAUSE_SECONDS = 2.0  # the tracker's: a pause this long ends a burst of typing
CLICKS = {"click": "clicked", "dblclick": "double-clicked", "contextmenu": "right-clicked"}


@dataclass(frozen=True)
class Line:
    seconds: float  # since the session's first event
    what: str

    @property
    def at(self) -> str:
        minutes, seconds = divmod(int(self.seconds), 60)
        return f"{minutes}:{seconds:02d}"


def _moment(doc: dict[str, Any]) -> datetime | None:
    for name in ("browser_time", "server_time"):
        try:
            moment = datetime.fromisoformat(str(doc.get(name)))
        except (TypeError, ValueError):
            continue
        if moment.tzinfo:
            return moment
    return None


def _target(details: dict[str, Any]) -> str:
    tag = str(details.get("tag") or "page")
    ident = str(details.get("id") or "")
    return f"{tag}#{ident}" if ident else (f"{tag}[name={details['name']}]" if details.get("name") else tag)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _characters(n: int) -> str:
    return f"{n} character{'' if n == 1 else 's'}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass
class _Burst:
    """Typing in one field until a boundary: when it began, its characters and deletions, when its last
    edit came, and whether it may go on (its last typing event was cut at the tracker's 50 edits)."""

    field: str
    at: float
    chars: int
    deleted: int
    last: datetime
    goes_on: bool

    def said(self) -> str:
        if self.deleted and not self.chars:
            return f"deleted {_characters(self.deleted)} in {self.field}"
        deleted = f", deleted {self.deleted}" if self.deleted else ""
        return f"typed {_characters(self.chars)} into {self.field}{deleted}"


class _Reader:
    def __init__(self, start: datetime) -> None:
        self.start = start
        self.lines: list[Line] = []
        self.typing: _Burst | None = None
        self.away_since: datetime | None = None

    def since(self, moment: datetime) -> float:
        return max(0.0, (moment - self.start).total_seconds())

    def typed(self, field: str, began: datetime, last: datetime, edits: tuple[int, int], goes_on: bool) -> None:
        """A typing event's (or an earlier tracker's key's) `edits`: characters inserted, deletions."""
        burst = self.typing
        if burst and burst.field == field and burst.goes_on and (began - burst.last).total_seconds() < PAUSE_SECONDS:
            burst.chars, burst.deleted = burst.chars + edits[0], burst.deleted + edits[1]
            burst.last, burst.goes_on = last, goes_on
        else:
            self.end_typing()
            self.typing = _Burst(field, self.since(began), *edits, last, goes_on)

    def end_typing(self) -> None:
        if self.typing:
            self.lines.append(Line(self.typing.at, self.typing.said()))
            self.typing = None

    def say(self, moment: datetime, what: str) -> None:
        self.end_typing()
        self.lines.append(Line(self.since(moment), what))

    def read(self, doc: dict[str, Any], moment: datetime) -> None:
        log_type = str(doc.get("log_type") or "")
        content = doc.get("content") if isinstance(doc.get("content"), dict) else {}
        kind = str(content.get(log_type) or "")
        details = content.get("details") if isinstance(content.get("details"), dict) else {}
        if log_type == "keyboard_event" and kind == "typing":
            started = _moment({"browser_time": details.get("started")}) or moment
            cut = not details.get("boundary")  # at 50 edits: the burst goes on in the next event
            edits = (_count(details.get("typed_chars")), _count(details.get("deletions")))
            self.typed(_target(details), started, moment, edits, cut)
        elif log_type == "keyboard_event" and kind == "input":
            input_type = str(details.get("input_type") or "")
            edits = (int(input_type == "insertText"), int(input_type.startswith("delete")))
            self.typed(_target(details), moment, moment, edits, True)
        elif log_type == "keyboard_event" and kind in ("paste", "copy", "cut"):
            verb = {"paste": "pasted", "copy": "copied", "cut": "cut"}[kind]
            self.say(moment, f"{verb} {_characters(_count(details.get('text_length')))} in {_target(details)}")
        elif log_type == "mouse_event" and kind in CLICKS:
            self.say(moment, f"{CLICKS[kind]} {_target(details)}")
        elif (log_type, kind) == ("browser_event", "visibility_hidden") and self.away_since is None:
            self.end_typing()
            self.away_since = moment
        elif (log_type, kind) == ("browser_event", "visibility_visible") and self.away_since is not None:
            self.say(self.away_since, f"left the page for {_duration((moment - self.away_since).total_seconds())}")
            self.away_since = None
        elif log_type == "html_event" and kind in ("change", "select_change"):
            self.say(moment, f"changed {_target(details)}")
        elif log_type == "message" and kind in ("Start Session", "End Session"):
            self.say(moment, kind)


def lines(documents: list[dict[str, Any]]) -> list[Line]:
    """The session's transcript (the documents of one session, in any order)."""
    timed = [(moment, doc) for doc in documents if (moment := _moment(doc)) is not None]
    timed.sort(key=lambda pair: (pair[0], _count(pair[1].get("sequence_number"))))
    if not timed:
        return []
    reader = _Reader(timed[0][0])
    for moment, doc in timed:
        reader.read(doc, moment)
    if reader.away_since is not None:
        reader.say(reader.away_since, "left the page, and did not come back")
    reader.end_typing()
    return reader.lines
