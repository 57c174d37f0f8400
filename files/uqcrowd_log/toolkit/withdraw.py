"""Honouring a withdrawal of consent: every event of one worker removed from every index, checked,
and audited in a log only root reads: a line (when, which worker, how many) written and synced to disk
before anything is deleted (a withdrawal that cannot be audited does not start), and a second once none
remain."""

from __future__ import annotations

import getpass
import os
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


class AuditUnwritable(RuntimeError):
    """The audit log cannot be written: the withdrawal does not start."""


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
    """Audit, delete, verify none remain, audit again; raises AuditUnwritable (nothing deleted) when the
    audit log cannot be written, NotAllRemoved when documents remain."""
    before = plan(client, indices, worker_id)
    line = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker_id": worker_id,
        "planned": before.total,
        "by_index": before.by_index,
        "by": getpass.getuser(),
    }
    _audit(audit_log, {"event": "withdrawal started", **line})
    if before.total:
        delete_matching(client, indices, {"term": {"worker_id": worker_id}})
    left = plan(client, indices, worker_id)
    if left.total:
        raise NotAllRemoved(f"{left.total} documents of worker {worker_id} remain in {', '.join(left.by_index)}")
    at = datetime.now(UTC).isoformat(timespec="seconds")
    _audit(audit_log, {"event": "withdrawal done", "at": at, "worker_id": worker_id, "deleted": before.total})
    return before


def _audit(audit_log: Path, line: dict[str, object]) -> None:
    """Append one line and sync it to disk (the file must exist: the role creates it, root-only)."""
    try:
        with audit_log.open("r+b") as audit:
            audit.seek(0, os.SEEK_END)
            audit.write(orjson.dumps(line) + b"\n")
            audit.flush()
            os.fsync(audit.fileno())
    except OSError as exc:
        raise AuditUnwritable(
            f"the audit log {audit_log} cannot be written ({exc.strerror or exc}): nothing was deleted"
        ) from None
