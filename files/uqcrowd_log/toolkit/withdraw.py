"""Honouring a withdrawal of consent: every event of one worker removed from every index, checked,
and an audit line (when, which worker, how many) appended to a log only root reads."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from elasticsearch import Elasticsearch

from .selection import delete_matching


@dataclass
class Withdrawal:
    worker_id: str
    by_index: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_index.values())


class NotAllRemoved(RuntimeError):
    """Documents of the worker are still there after the deletion."""


def plan(client: Elasticsearch, indices: str, worker_id: str) -> Withdrawal:
    """How many documents of the worker each index holds."""
    response = client.search(
        index=indices,
        size=0,
        query={"term": {"worker_id": worker_id}},
        aggs={"indices": {"terms": {"field": "_index", "size": 10_000}}},
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    buckets = response.get("aggregations", {}).get("indices", {}).get("buckets", [])
    return Withdrawal(worker_id, {b["key"]: int(b["doc_count"]) for b in buckets})


def withdraw(client: Elasticsearch, indices: str, worker_id: str, audit_log: Path) -> Withdrawal:
    """Delete, verify none remain, then write the audit line; raises NotAllRemoved otherwise."""
    before = plan(client, indices, worker_id)
    if before.total:
        delete_matching(client, indices, {"term": {"worker_id": worker_id}})
    left = plan(client, indices, worker_id)
    if left.total:
        raise NotAllRemoved(f"{left.total} documents of worker {worker_id} remain in {', '.join(left.by_index)}")
    line = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker_id": worker_id,
        "deleted": before.total,
        "by_index": before.by_index,
        "by": getpass.getuser(),
    }
    with audit_log.open("ab") as audit:
        audit.write(orjson.dumps(line) + b"\n")
    return before
