"""The researcher's export measured: 1,000,000 events over 3 days loaded into Elasticsearch, then
`uqcrowd-log export` run as a researcher runs it (NDJSON and CSV to a file), its rate and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from elasticsearch import Elasticsearch

from uqcrowd_log.elastic import bulk_create_split
from uqcrowd_log.events import Prepared

EVENTS = 1_000_000
PER_SESSION = 100
PREFIX = "bench-export"


def load(es: Elasticsearch, events: int = EVENTS) -> float:
    """Index the study; returns the seconds it took."""
    started = time.monotonic()
    base = datetime.now(UTC).replace(microsecond=0)
    batch: list[tuple[int, Prepared]] = []
    for n in range(events):
        session, seq = divmod(n, PER_SESSION)
        moment = base - timedelta(days=session % 3, seconds=session)
        doc = {
            "event_id": f"e{n:08d}",
            "log_type": "mouse_event",
            "sequence_number": seq,
            "session_id": f"s{session:06d}",
            "worker_id": f"W{session % 500}",
            "exp_id": f"exp-{session % 2}",
            "browser_time": moment.isoformat(),
            "server_time": moment.isoformat(),
            "content": {"mouse_event": "click", "details": {"event_x": seq, "event_y": n % 700, "id": "answer"}},
        }
        batch.append((n, Prepared(doc["event_id"], f"{moment:%Y-%m-%d}", orjson.dumps(doc))))
        if len(batch) == 5000:
            bulk_create_split(es, PREFIX, batch)
            batch = []
    bulk_create_split(es, PREFIX, batch)
    es.indices.refresh(index=f"{PREFIX}-*")
    return time.monotonic() - started


# Started by the bench, the command would carry the bench's own high-water mark of memory: Linux keeps a
# process's peak RSS across fork and exec, and the bench holds the run's figures. So a fresh interpreter,
# which has touched nothing, starts the command and reports that child's peak (ru_maxrss of wait4).
LAUNCHER = """
import json, os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "peak_rss_kb": usage.ru_maxrss}))
"""


def export(es_url: str, fmt: str) -> dict:
    """Run the command as a researcher does; its wall time and its own peak RSS."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / f"export.{fmt}"
        env = {**os.environ, "UQCROWD_ES_URL": es_url, "UQCROWD_INDEX_PREFIX": PREFIX}
        command = [str(Path(sys.executable).with_name("uqcrowd-log")), "export", "--format", fmt, "-o", str(out)]
        started = time.monotonic()
        ran = subprocess.run([sys.executable, "-c", LAUNCHER, *command], env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        outcome = json.loads(ran.stdout)
        assert outcome["exit"] == 0, ran.stderr
        lines = sum(1 for _ in out.open("rb")) if fmt != "parquet" else None
        size = out.stat().st_size
    rows = lines - (1 if fmt == "csv" else 0) if lines is not None else EVENTS
    return {
        "format": fmt,
        "events": rows,
        "seconds": round(wall, 1),
        "events_per_s": round(rows / wall),
        "peak_rss_mb": round(outcome["peak_rss_kb"] / 1024, 1),
        "file_mb": round(size / 1024**2, 1),
    }


def measure(es: Elasticsearch, es_url: str) -> dict:
    loaded = load(es)
    runs = [export(es_url, fmt) for fmt in ("ndjson", "csv", "parquet")]
    return {"events": EVENTS, "load_s": round(loaded, 1), "exports": runs}


def table(figures: dict) -> str:
    lines = [
        f"export of {figures['events']:,} events (loaded in {figures['load_s']} s):",
        "| format | events | seconds | events/s | peak RSS (MB) | file (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for run in figures["exports"]:
        lines.append(
            f"| {run['format']} | {run['events']:,} | {run['seconds']} | {run['events_per_s']:,} "
            f"| {run['peak_rss_mb']} | {run['file_mb']} |"
        )
    return "\n".join(lines)
