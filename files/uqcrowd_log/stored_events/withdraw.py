"""Honouring a withdrawal of consent, so that it sticks: the worker into the withdrawn-workers register
(every path that stores events checks it: ingest, the indexer, replay, import), the worker's events out
of the dead letters and the quarantine, then out of every index, checked. Audited in a log only root
reads: a line (when, which worker, how many) written and synced to disk before anything is changed (a
withdrawal that cannot be audited does not start), and a second once none remain, saying how many went
from where. `undo` takes a worker out of the register (audited); nothing deleted comes back."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from elasticsearch import Elasticsearch

from ..queue.consumer import wait_for_delivered
from ..queue.side_lists import SideLists
from ..withdrawn import Register
from .selection import delete_matching

# How long a withdrawal waits for the events an indexer read before the register had the worker (on
# their way to Elasticsearch unchecked) to be settled, before it deletes.
IN_FLIGHT_SECONDS = 30.0


@dataclass
class Withdrawal:
    worker_id: str
    by_index: dict[str, int]
    set_aside: dict[str, int] | None = None  # removed from the dead letters and the quarantine

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


def withdraw(
    client: Elasticsearch, register: Register, side_lists: SideLists, indices: str, worker_id: str, audit_log: Path
) -> Withdrawal:
    """Audit, register, purge the side lists, delete, verify none remain, audit again; raises
    AuditUnwritable (nothing changed) when the audit log cannot be written, NotAllRemoved when
    documents remain."""
    before = plan(client, indices, worker_id)
    line = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker_id": worker_id,
        "planned": before.total,
        "by_index": before.by_index,
        "by": getpass.getuser(),
    }
    _audit(audit_log, {"event": "withdrawal started", **line})
    register.add(worker_id)  # from now on, nothing of the worker's is stored
    before.set_aside = side_lists.purge_worker(worker_id)
    wait_for_delivered(side_lists.client, side_lists.keys, IN_FLIGHT_SECONDS)
    if before.total:
        delete_matching(client, indices, {"term": {"worker_id": worker_id}})
    left = plan(client, indices, worker_id)
    if left.total:
        raise NotAllRemoved(f"{left.total} documents of worker {worker_id} remain in {', '.join(left.by_index)}")
    at = datetime.now(UTC).isoformat(timespec="seconds")
    done = {"event": "withdrawal done", "at": at, "worker_id": worker_id, "deleted": before.total}
    _audit(audit_log, {**done, "by_index": before.by_index, **before.set_aside})
    return before


def undo(register: Register, worker_id: str, audit_log: Path) -> bool:
    """Take a worker out of the register (a withdrawal made by mistake): their new events are stored
    again; nothing deleted comes back. Audited first. False if the worker was not in it."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    _audit(audit_log, {"event": "withdrawal undone", "at": at, "worker_id": worker_id, "by": getpass.getuser()})
    return register.remove(worker_id)


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
