"""Which events a command works on (experiment, worker, session, time range) and how to read them
all from Elasticsearch in constant memory: a point-in-time and search_after, in a stable order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from elasticsearch import Elasticsearch

ORDER = [
    {"session_id": {"order": "asc", "missing": "_last"}},
    {"sequence_number": {"order": "asc", "missing": "_last"}},
]


@dataclass(frozen=True)
class Selection:
    """Events of one experiment, worker and/or session, stored between two moments (UTC)."""

    exp_id: str = ""
    worker_id: str = ""
    session_id: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        terms = {"exp_id": self.exp_id, "worker_id": self.worker_id, "session_id": self.session_id}
        filters: list[dict[str, Any]] = [{"term": {name: value}} for name, value in terms.items() if value]
        if self.since or self.until:
            bounds = {"format": "strict_date_optional_time"}
            if self.since:
                bounds["gte"] = self.since.isoformat()
            if self.until:
                bounds["lt"] = self.until.isoformat()
            filters.append({"range": {"server_time": bounds}})
        return {"bool": {"filter": filters}} if filters else {"match_all": {}}

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in vars(self).items() if value]
        return ", ".join(str(p) for p in parts) or "every event"


def parse_moment(text: str) -> datetime:
    """A date (UTC midnight), an ISO 8601 time (UTC unless it says otherwise), or epoch milliseconds
    (what the original's export took)."""
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def count(client: Elasticsearch, index: str, selection: Selection) -> int:
    return int(client.count(index=index, query=selection.query(), ignore_unavailable=True)["count"])


def hits(
    client: Elasticsearch, index: str, query: dict[str, Any], sort: list[Any], page: int = 5000, source: Any = True
) -> Iterator[dict[str, Any]]:
    """Every hit of `query` in `sort` order, read a page at a time through a point in time (a snapshot:
    documents written or deleted meanwhile change nothing); `source` as the search API's `_source`."""
    pit = client.open_point_in_time(index=index, keep_alive="2m", ignore_unavailable=True)["id"]
    after: list[Any] | None = None
    try:
        while True:
            response = client.search(
                pit={"id": pit, "keep_alive": "2m"}, query=query, sort=sort, size=page, search_after=after,
                source=source, track_total_hits=False,
            )  # fmt: skip
            pit = response.get("pit_id", pit)
            found = response["hits"]["hits"]
            yield from found
            if len(found) < page:
                return
            after = found[-1]["sort"]
    finally:
        client.close_point_in_time(id=pit)


def stream(client: Elasticsearch, index: str, selection: Selection, page: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching hit (_id, _index, _source), by session then sequence number; one page in memory."""
    return hits(client, index, selection.query(), ORDER, page)


def delete_matching(client: Elasticsearch, index: str, query: dict[str, Any], page: int = 1000) -> int:
    """Delete every document matching `query` (read with a point in time, deleted in bulk pages, then
    refreshed): the same on every distribution, with or without the reindex module's delete-by-query."""
    deleted, found = 0, hits(client, index, query, ["_shard_doc"], page, source=False)
    while operations := [{"delete": {"_index": hit["_index"], "_id": hit["_id"]}} for hit in islice(found, page)]:
        result = client.bulk(operations=operations, filter_path="items.*.status")
        deleted += sum(item["delete"]["status"] == 200 for item in result["items"])
    client.indices.refresh(index=index, ignore_unavailable=True)
    return deleted
