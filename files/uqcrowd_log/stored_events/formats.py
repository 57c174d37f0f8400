"""Writing exported events: NDJSON (as stored), CSV and Parquet (nested fields flattened to dotted
column names). CSV and Parquet need every column before the first row: the events go through a
temporary NDJSON file once to learn them, so memory stays constant whatever the export's size."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import orjson

FORMATS = ("ndjson", "csv", "parquet")
FIRST_COLUMNS = [
    "event_id", "session_id", "sequence_number", "log_type", "exp_id", "worker_id", "hit_id", "assignment_id",
    "browser_time", "server_time", "client_ip",
]  # fmt: skip
INTEGER_COLUMNS = {"sequence_number"}
ROWS_PER_GROUP = 10_000


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"content": {"details": {"x": 1}}} -> {"content.details.x": 1}; lists as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | dict):
            flat[name] = orjson.dumps(value).decode()
        else:
            flat[name] = value
    return flat


def columns_of(names: set[str]) -> list[str]:
    return [c for c in FIRST_COLUMNS if c in names] + sorted(names.difference(FIRST_COLUMNS))


def write_ndjson(documents: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    written = 0
    for document in documents:
        out.write(orjson.dumps(document) + b"\n")
        written += 1
    return written


@contextmanager
def _spooled(documents: Iterable[dict[str, Any]]) -> Iterator[tuple[IO[bytes], list[str], int]]:
    """The flattened rows in a temporary file, their columns and their number."""
    with tempfile.TemporaryFile() as spool:
        names: set[str] = set()
        written = 0
        for document in documents:
            flat = flatten(document)
            names.update(flat)
            spool.write(orjson.dumps(flat) + b"\n")
            written += 1
        spool.seek(0)
        yield spool, columns_of(names), written


def _rows(spool: IO[bytes]) -> Iterator[dict[str, Any]]:
    for line in spool:
        yield orjson.loads(line)


def write_csv(documents: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    with _spooled(documents) as (spool, columns, written):
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_rows(spool))
        text.detach()
    return written


def write_parquet(documents: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("Parquet needs pyarrow: pip install -r files/requirements-parquet.txt") from None
    with _spooled(documents) as (spool, columns, written):
        schema = pa.schema([(c, pa.int64() if c in INTEGER_COLUMNS else pa.string()) for c in columns])
        with pq.ParquetWriter(out, schema) as writer:
            group: list[dict[str, Any]] = []
            for row in _rows(spool):
                group.append({c: _cell(c, row.get(c)) for c in columns})
                if len(group) == ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(group, schema))
                    group = []
            if group or not written:
                writer.write_table(pa.Table.from_pylist(group, schema))
    return written


def _cell(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in INTEGER_COLUMNS:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


WRITERS = {"ndjson": write_ndjson, "csv": write_csv, "parquet": write_parquet}
