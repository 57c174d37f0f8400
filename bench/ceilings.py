"""The two ceilings `make bench` reads the stack against, measured in the same run on the same machine:

- L1, the web stack's: a minimal Flask app on Granian (bench/minimal_app.py), the same number of
  backends behind the same HAProxy configuration, the same wrk load of single events;
- L2, the sink's: Elasticsearch's own bulk indexing rate for the stack's documents, loaded directly with
  ideal settings (a fresh index, no replica, refresh off, bodies built beforehand, two bulks in flight).

Also each process's resident memory (RSS) and CPU time, its children included, read from /proc.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

from harness.services import Process, free_port
from uqcrowd_log.events import prepare

ROOT = Path(__file__).resolve().parents[1]
L2_EVENTS = int(os.environ.get("BENCH_L2_EVENTS", "300000"))
L2_BULK = 5000


class MinimalBackend(Process):
    """bench/minimal_app.py on its own port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        super().__init__(workdir / f"minimal-{self.port}.out")

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "bench" / "minimal_app.py"), str(self.port)]

    def ready(self) -> bool:
        return requests.get(f"http://127.0.0.1:{self.port}/logger/ready", timeout=2).status_code == 200


def stack_documents(count: int) -> list[tuple[str, str, bytes]]:
    """(id, day, JSON) of `count` events shaped like wrk's (bench/wrk/post.lua), prepared by the service's
    own code, as the indexer receives them."""
    now = datetime.now(UTC)
    events = [
        {
            "log_type": "mouse_event",
            "sequence_number": n,
            "browser_time": "2026-11-28T00:00:00.000Z",
            "session_id": f"l2-{n // 1000}",
            "worker_id": "W1",
            "hit_id": "H1",
            "assignment_id": "A1",
            "exp_id": "bench",
            "content": {"mouse_event": "click", "details": {"event_x": 100, "event_y": 400, "tag": "button"}},
        }
        for n in range(count)
    ]
    return [(p.event_id, p.day, p.document) for p in prepare(events, now, "127.0.0.1")]


def sink_ceiling(es_url: str, index: str, events: int = L2_EVENTS) -> dict:
    """L2: documents per second Elasticsearch indexes on its own (the index is created here, matching
    the bench's index template, with refresh off and no replica)."""
    session = requests.Session()
    settings = {"settings": {"number_of_replicas": 0, "refresh_interval": "-1"}}
    session.put(f"{es_url}/{index}", json=settings, timeout=60).raise_for_status()
    docs = stack_documents(events)
    bodies = []
    for start in range(0, len(docs), L2_BULK):
        lines = []
        for doc_id, _, source in docs[start : start + L2_BULK]:
            lines.append(orjson.dumps({"create": {"_index": index, "_id": doc_id}}))
            lines.append(source)
        bodies.append(b"\n".join(lines) + b"\n")

    def send(body: bytes) -> None:
        answer = requests.post(
            f"{es_url}/_bulk?filter_path=errors",
            data=body,
            headers={"Content-Type": "application/x-ndjson"},
            timeout=120,
        )
        answer.raise_for_status()
        assert answer.json() == {"errors": False}, answer.text[:500]

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, bodies))
    seconds = time.monotonic() - started
    session.post(f"{es_url}/{index}/_refresh", timeout=120).raise_for_status()
    stored = session.get(f"{es_url}/{index}/_count", timeout=60).json()["count"]
    assert stored == events, (stored, events)
    session.delete(f"{es_url}/{index}", timeout=60)
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds, "bulk": L2_BULK, "in_flight": 2}


def _family(pid: int) -> list[int]:
    """A process and all its descendants (an Elasticsearch launcher and its JVM)."""
    family, todo = [], [pid]
    while todo:
        current = todo.pop()
        family.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return family


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its live descendants, from /proc."""
    total = 0
    for member in _family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total = 0
    for member in _family(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024
