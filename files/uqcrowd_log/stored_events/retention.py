"""Retention without index lifecycle management: daily indices whose day is more than N days
ago are deleted (the date is the one in the index name, `<prefix>-YYYY-MM-DD`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta

from elasticsearch import Elasticsearch

DAY = re.compile(r"-(\d{4}-\d{2}-\d{2})$")


def expired(indices: Iterable[str], prefixes: Iterable[str], days: int, today: date) -> list[str]:
    """The daily indices of these prefixes older than `days` days (today's index is 0 days old)."""
    oldest_kept = today - timedelta(days=days)
    found = []
    for name in indices:
        match = DAY.search(name)
        if not match or not any(name == f"{prefix}-{match.group(1)}" for prefix in prefixes):
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if day < oldest_kept:
            found.append(name)
    return sorted(found)


def apply(client: Elasticsearch, prefixes: list[str], days: int, today: date, dry_run: bool = False) -> list[str]:
    pattern = ",".join(f"{prefix}-*" for prefix in prefixes)
    names = client.indices.get_alias(index=pattern, expand_wildcards="open,closed", ignore_unavailable=True)
    doomed = expired(names, prefixes, days, today)
    if doomed and not dry_run:
        for name in doomed:
            client.indices.delete(index=name)
    return doomed
