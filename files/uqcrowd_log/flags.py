"""Flags a researcher sets per experiment: thresholds on the session signals (signals.py), such as
`paste_share > 0.5`, `active_seconds < 60` or `hidden_seconds > 300`. None is set by default: nothing
is flagged until the researcher says what to look for (toolkit_flags, UQCROWD_FLAGS)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .signals import COLUMNS, Signals

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
RULE = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")
EVERY_EXPERIMENT = "*"


@dataclass(frozen=True)
class Rule:
    signal: str
    op: str
    threshold: float

    def met(self, signals: Signals) -> bool:
        value = getattr(signals, self.signal)
        return value is not None and OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.signal}{self.op}{self.threshold:g}"


def parse(text: str) -> Rule:
    """`paste_share > 0.5` -> Rule; ValueError in one line when it is not a signal, an operator, a number."""
    found = RULE.match(text)
    if not found:
        raise ValueError(f"flag {text!r} is not '<signal> <|<=|>|>= <number>'")
    if found.group(1) not in COLUMNS:
        raise ValueError(f"flag {text!r}: {found.group(1)} is not a signal ({', '.join(COLUMNS)})")
    return Rule(found.group(1), found.group(2), float(found.group(3)))


def rules_by_experiment(raw: Mapping[str, Sequence[str]]) -> dict[str, tuple[Rule, ...]]:
    return {experiment: tuple(parse(rule) for rule in rules) for experiment, rules in raw.items()}


def flags(signals: Signals, experiment: str, rules: Mapping[str, tuple[Rule, ...]]) -> list[str]:
    """The rules of the session's experiment (and those of every experiment, "*") that it meets."""
    chosen = [*rules.get(EVERY_EXPERIMENT, ()), *rules.get(experiment, ())]
    return [str(rule) for rule in chosen if rule.met(signals)]
