"""Per-session behavioural signals: is this a person doing the task?

From one session's stored events (in any order; times are the browser's, consistent within a page):

- active_seconds: from Start Session to the session's last event, minus hidden_seconds;
- hidden_seconds: the page's time hidden (visibility_hidden to the next visibility_visible, or to the
  session's last event);
- away_count: how many times the worker left the page (hidden, or the window blurred), once per leave;
- typed_chars: characters inserted by typing: a typing event's typed_chars (InputEvent.data of its
  insertText edits); an `input` event of earlier trackers (one per key, no data) counts 1 for an
  insertText;
- deletions: edits that deleted (a typing event's deletions; an earlier `input` event of a delete* type);
- pastes, pasted_chars: paste events and the characters they carried (text_length, kept when masked);
- paste_share: pasted_chars / (pasted_chars + typed_chars), empty when both are 0;
- copies: copy and cut events;
- first_input_seconds: from Start Session to the first typing or paste;
- typing_cpm: typed characters per minute of active time.

An event stored twice (in two daily indices, sent again after its day's window) counts once. Without a
Start Session, the session starts at its first event (or at the first key of a typing burst that
began before it).

Pure, like completeness.py: documents in, a row out; the `sessions` command, its CSV and the stored
session reports use this one definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

COLUMNS = (
    "active_seconds",
    "hidden_seconds",
    "away_count",
    "typed_chars",
    "deletions",
    "pastes",
    "pasted_chars",
    "paste_share",
    "copies",
    "first_input_seconds",
    "typing_cpm",
)
LEAVE = {("browser_event", "visibility_hidden"), ("browser_event", "window_blur")}
RETURN = {("browser_event", "visibility_visible"), ("browser_event", "window_focus")}


@dataclass(frozen=True)
class Signals:
    active_seconds: float | None = None
    hidden_seconds: float = 0.0
    away_count: int = 0
    typed_chars: int = 0
    deletions: int = 0
    pastes: int = 0
    pasted_chars: int = 0
    paste_share: float | None = None
    copies: int = 0
    first_input_seconds: float | None = None
    typing_cpm: float | None = None

    def as_row(self) -> dict[str, Any]:
        return {name: "" if value is None else value for name, value in asdict(self).items()}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Signals:
        """The signals of a row of `as_row` (a stored session report): "" is None again."""
        return cls(**{name: None if row.get(name) in ("", None) else row[name] for name in COLUMNS})


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class SessionSignals:
    """What one session's documents say, gathered one document at a time, then `signals()`."""

    def __init__(self) -> None:
        self.start: datetime | None = None
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.presence: list[tuple[datetime, str]] = []  # (time, "leave" | "return" | "hidden" | "visible")
        self.first_input: datetime | None = None
        self.typed = self.deletions = self.pastes = self.pasted = self.copies = 0
        self.seen: set[tuple[Any, ...]] = set()

    def add(self, doc: dict[str, Any]) -> None:
        moment = _moment(doc.get("browser_time")) or _moment(doc.get("server_time"))
        if moment is None or self._again(doc):
            return
        self.first = min(moment, self.first or moment)
        self.last = max(moment, self.last or moment)
        log_type = str(doc.get("log_type") or "")
        content = doc.get("content") if isinstance(doc.get("content"), dict) else {}
        kind = str(content.get(log_type) or "")
        details = content.get("details") if isinstance(content.get("details"), dict) else {}
        if (log_type, kind) == ("message", "Start Session"):
            self.start = min(moment, self.start or moment)
        elif (log_type, kind) in LEAVE or (log_type, kind) in RETURN:
            self.presence.append((moment, "leave" if (log_type, kind) in LEAVE else "return"))
            if kind.startswith("visibility_"):
                self.presence.append((moment, kind.removeprefix("visibility_")))
        elif log_type == "keyboard_event":
            self._keyboard(kind, details, moment)

    def _again(self, doc: dict[str, Any]) -> bool:
        """Whether this event was added already: the same event stored twice (in two daily indices, when
        it was sent again after its day's window) counts once. An event is known by its id, or its
        sequence number, type and browser time (what the service's document id hashes)."""
        number = doc.get("sequence_number")
        if not doc.get("event_id") and not isinstance(number, int):
            return False  # nothing tells two such events apart: each counts
        key = (doc.get("event_id"), number, doc.get("log_type"), doc.get("browser_time"))
        if key in self.seen:
            return True
        self.seen.add(key)
        return False

    def _keyboard(self, kind: str, details: dict[str, Any], moment: datetime) -> None:
        if kind == "typing":
            typed = _count(details.get("typed_chars"))
            self.typed += typed
            self.deletions += _count(details.get("deletions"))
            if typed or details.get("edits"):
                self._input_at(_moment(details.get("started")) or moment)
        elif kind == "input":  # earlier trackers: one event per key, without what it inserted
            input_type = str(details.get("input_type") or "")
            self.typed += input_type == "insertText"
            self.deletions += input_type.startswith("delete")
            self._input_at(moment)
        elif kind == "paste":
            self.pastes += 1
            self.pasted += _count(details.get("text_length"))
            self._input_at(moment)
        elif kind in ("copy", "cut"):
            self.copies += 1

    def _input_at(self, moment: datetime) -> None:
        self.first_input = min(moment, self.first_input or moment)

    def signals(self) -> Signals:
        # Without a Start Session, the session began at its first event, or at the first typing if a
        # burst began before the event that carried it.
        start, last = self.start, self.last
        if start is None and self.first is not None:
            start = min(self.first, self.first_input or self.first)
        if start is None or last is None:
            return Signals()
        hidden, away, since, present = 0.0, 0, None, True
        for moment, what in sorted(self.presence, key=lambda mark: mark[0]):
            if what == "hidden" and since is None:
                since = moment
            elif what == "visible" and since is not None:
                hidden += (moment - since).total_seconds()
                since = None
            elif what == "leave" and present:
                away, present = away + 1, False
            elif what == "return":
                present = True
        if since is not None:
            hidden += (last - since).total_seconds()
        active = max(0.0, (last - start).total_seconds() - hidden)
        both = self.pasted + self.typed
        return Signals(
            active_seconds=round(active, 3),
            hidden_seconds=round(hidden, 3),
            away_count=away,
            typed_chars=self.typed,
            deletions=self.deletions,
            pastes=self.pastes,
            pasted_chars=self.pasted,
            paste_share=round(self.pasted / both, 4) if both else None,
            copies=self.copies,
            first_input_seconds=round((self.first_input - start).total_seconds(), 3) if self.first_input else None,
            typing_cpm=round(self.typed / (active / 60), 1) if active > 0 else None,
        )
