"""The researcher's command line against a real Elasticsearch: a study of 100,000 events over 3 days
and 2 experiments is exported, checked, imported back and a worker withdrawn."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from uqcrowd_log.cli import main
from uqcrowd_log.elastic import bulk_create
from uqcrowd_log.events import Prepared, document_id
from uqcrowd_log.signals import COLUMNS

DAYS = [datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=n) for n in (2, 1, 0)]
SESSION_EVENTS = 100
SESSIONS = 1000  # x 100 events = 100,000


@pytest.fixture(autouse=True)
def redis_env(redis_server, monkeypatch):
    """The commands that read the withdrawn-workers register (withdraw, import) find a real Redis, with a
    key space of this test's own."""
    monkeypatch.setenv("UQCROWD_REDIS_URL", redis_server.url)
    monkeypatch.setenv("UQCROWD_REDIS_PREFIX", f"uqt-{uuid.uuid4().hex[:10]}")


def make_session(number: int) -> list[dict]:
    """A page's events: Start Session, clicks, End Session saying how many the page made."""
    exp = "exp-A" if number % 2 else "exp-B"
    start = DAYS[number % 3] + timedelta(seconds=number)
    docs = []
    for seq in range(SESSION_EVENTS):
        moment = (start + timedelta(milliseconds=100 * seq)).isoformat(timespec="milliseconds")
        kind, sub = ("message", "Start Session") if seq == 0 else ("mouse_event", "click")
        details: dict = {"event_x": seq, "target": {"id": f"b{seq % 7}"}}
        if seq == SESSION_EVENTS - 1:
            kind, sub, details = "message", "End Session", {"events": SESSION_EVENTS}
        docs.append(
            {
                "log_type": kind,
                "sequence_number": seq,
                "browser_time": moment,
                "server_time": moment,
                "session_id": f"s{number:04d}",
                "worker_id": f"W{number % 50}",
                "hit_id": f"H{number % 10}",
                "assignment_id": f"A{number}",
                "exp_id": exp,
                "content": {kind: sub, "details": details},
            }
        )
    return docs


def study_documents() -> list[dict]:
    docs = [doc for n in range(SESSIONS) for doc in make_session(n)]
    by_session = {}
    for doc in docs:
        by_session.setdefault(doc["session_id"], []).append(doc)
    del by_session["s0001"][5]  # a gap
    by_session["s0003"].append({**by_session["s0003"][7], "browser_time": "2026-01-01T00:00:00.000Z"})  # a duplicate
    by_session["s0005"].pop()  # no End Session
    return [doc for session in by_session.values() for doc in session]


@pytest.fixture(scope="module")
def study(es):
    """The study stored as the service stores it (ids, daily indices), under its own prefix."""
    prefix = f"uqt-study-{uuid.uuid4().hex[:8]}"
    docs = study_documents()
    for start in range(0, len(docs), 2000):
        chunk = docs[start : start + 2000]
        items = [(n, prepared(d)) for n, d in enumerate(chunk)]
        outcome = bulk_create(es, prefix, items)
        assert len(outcome.done) == len(items), outcome.rejected[:3]
    es.indices.refresh(index=f"{prefix}-*")
    return {"prefix": prefix, "docs": docs}


def prepared(doc: dict) -> Prepared:
    event_id = document_id(doc)
    return Prepared(event_id, doc["server_time"][:10], orjson.dumps({**doc, "event_id": event_id}))


def run(es_server, prefix: str, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):
    runner = CliRunner()
    env = {"UQCROWD_ES_URL": es_server.url, "UQCROWD_INDEX_PREFIX": prefix, **(env or {})}
    return runner.invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


def test_the_export_of_one_experiment_holds_exactly_its_events_in_order(es_server, study, tmp_path):
    wanted = [d for d in study["docs"] if d["exp_id"] == "exp-A"]
    result = run(es_server, study["prefix"], "export", "--exp-id", "exp-A", "-o", str(tmp_path / "a.ndjson"))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "a.ndjson").read_text().splitlines()]
    assert len(lines) == len(wanted) == 49_999  # 500 sessions x 100: a gap, a duplicate, a missing End Session
    assert {d["exp_id"] for d in lines} == {"exp-A"}
    keys = [(d["session_id"], d["sequence_number"]) for d in lines]
    assert keys == sorted(keys)
    assert {d["event_id"] for d in lines} == {document_id(d) for d in wanted}


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_each_format_reads_back_in_pandas_with_every_row(es_server, study, tmp_path, fmt):
    path = tmp_path / f"b.{fmt}"
    args = ["export", "--exp-id", "exp-B", "--since", DAYS[1].date().isoformat(), "--format", fmt, "-o", str(path)]
    result = run(es_server, study["prefix"], *args)
    assert result.exit_code == 0, result.output
    since = DAYS[1].replace(hour=0)
    expected = [
        d for d in study["docs"] if d["exp_id"] == "exp-B" and datetime.fromisoformat(d["server_time"]) >= since
    ]
    reader = {"ndjson": lambda p: pd.read_json(p, lines=True), "csv": pd.read_csv, "parquet": pd.read_parquet}[fmt]
    frame = reader(path)
    assert len(frame) == len(expected) > 0
    if fmt != "ndjson":  # nested fields flattened to dotted names
        assert "content.details.target.id" in frame.columns
        assert list(frame.columns[:3]) == ["event_id", "session_id", "sequence_number"]


def test_an_export_imports_back_identical_and_a_second_import_adds_nothing(es, es_server, study, tmp_path):
    exported = tmp_path / "one.ndjson"
    assert run(es_server, study["prefix"], "export", "--worker-id", "W7", "-o", str(exported)).exit_code == 0
    other = f"uqt-copy-{uuid.uuid4().hex[:8]}"
    first = run(es_server, other, "import", str(exported))
    assert first.exit_code == 0, first.output
    again = run(es_server, other, "import", str(exported))
    assert "0 imported" in again.output
    assert f"{len(exported.read_text().splitlines())} already stored" in again.output
    es.indices.refresh(index=f"{other}-*")
    copy = tmp_path / "copy.ndjson"
    assert run(es_server, other, "export", "-o", str(copy)).exit_code == 0
    assert copy.read_bytes() == exported.read_bytes()
    assert sorted(es.indices.get_alias(index=f"{other}-*")) == [f"{other}-{day:%Y-%m-%d}" for day in DAYS]


def test_a_file_from_the_original_export_script_imports_once(es, es_server, tmp_path):
    """The original's export.py wrote each `_source` as a line: no event_id, server_time in +10:00."""
    original = [
        {
            "log_type": "mouse_event",
            "sequence_number": n,
            "browser_time": "2019-05-02T03:04:05.000Z",
            "server_time": "2019-05-02T13:04:05.123+10:00",
            "session_id": "old-1",
            "worker_id": "OLD",
            "hit_id": "h",
            "assignment_id": "a",
            "exp_id": "2019-study",
            "content": {"mouse_event": "click", "details": {"event_x": 1}},
        }
        for n in range(20)
    ]
    path = tmp_path / "original.jl"
    path.write_text("".join(json.dumps(d) + "\n" for d in original))
    prefix = f"uqt-old-{uuid.uuid4().hex[:8]}"
    assert "20 imported" in run(es_server, prefix, "import", str(path)).output
    assert "0 imported, 20 already stored" in run(es_server, prefix, "import", str(path)).output
    es.indices.refresh(index=f"{prefix}-*")
    assert list(es.indices.get_alias(index=f"{prefix}-*")) == [f"{prefix}-2019-05-02"]
    assert es.count(index=f"{prefix}-*")["count"] == 20


def test_the_sessions_report_finds_the_gap_the_duplicate_and_the_missing_end(es_server, study):
    result = run(es_server, study["prefix"], "sessions", "--csv")
    assert result.exit_code == 0, result.output
    rows = {r["session_id"]: r for r in pd.read_csv(io.StringIO(result.stdout)).to_dict("records")}
    assert len(rows) == SESSIONS
    assert (rows["s0001"]["missing"], rows["s0001"]["complete"]) == (1, False)
    assert (rows["s0003"]["duplicates"], rows["s0003"]["complete"]) == (1, False)
    assert (rows["s0005"]["end_sessions"], rows["s0005"]["complete"]) == (0, False)
    assert sum(r["complete"] for r in rows.values()) == SESSIONS - 3
    assert rows["s0002"]["duration_seconds"] == pytest.approx(9.9)
    assert rows["s0002"]["events_by_type"] == "message=2 mouse_event=98"
    table = run(es_server, study["prefix"], "sessions", "--exp-id", "exp-A")
    assert "497 of 500 sessions complete" in table.output  # the three faulty ones are all exp-A


def test_sessions_carry_their_signals_and_the_flags_the_researcher_set(es, es_server, study):
    plain = run(es_server, study["prefix"], "sessions", "--csv", "--exp-id", "exp-B")
    rows = {r["session_id"]: r for r in csv.DictReader(io.StringIO(plain.stdout))}
    assert (rows["s0002"]["active_seconds"], rows["s0002"]["typed_chars"], rows["s0002"]["paste_share"]) == (
        "9.9",
        "0",
        "",  # nothing typed nor pasted
    )
    assert {r["flags"] for r in rows.values()} == {""}  # no rule set: nothing flagged
    flags = {"UQCROWD_FLAGS": '{"exp-A": ["active_seconds < 60"], "*": ["pastes > 0"]}'}
    only = run(es_server, study["prefix"], "sessions", "--csv", "--flagged", env=flags)
    flagged = list(csv.DictReader(io.StringIO(only.stdout)))
    assert len(flagged) == 500  # every session of exp-A (10 s each), none of exp-B
    assert {(r["exp_id"], r["flags"]) for r in flagged} == {("exp-A", "active_seconds<60")}
    none = run(es_server, study["prefix"], "sessions", "--flagged", "--exp-id", "exp-B", env=flags)
    assert (none.exit_code, none.stdout, none.stderr.strip()) == (0, "", "none of the 500 sessions is flagged")
    bad = run(es_server, study["prefix"], "sessions", env={"UQCROWD_FLAGS": '{"exp-A": ["pasted > 1"]}'})
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "Error: configuration: flag 'pasted > 1': pasted is not a signal (" + ", ".join(COLUMNS) + ")"
    ]
    day, target = DAYS[0].date().isoformat(), f"uqs-{uuid.uuid4().hex[:8]}"
    stored = run(es_server, study["prefix"], "sessions", "--store", "--day", day, "--session-index-prefix", target,
                 env=flags)  # fmt: skip
    assert stored.exit_code == 0, stored.output
    es.indices.refresh(index=f"{target}-{day}")
    kept = es.search(index=f"{target}-{day}", size=1000)["hits"]["hits"]
    assert {h["_source"]["flags"] for h in kept if h["_source"]["exp_id"] == "exp-A"} == {"active_seconds<60"}
    assert {"active_seconds", "paste_share", "typing_cpm"} <= set(kept[0]["_source"])


def test_sessions_store_writes_one_document_per_session_and_a_rerun_replaces(es, es_server, study):
    day = DAYS[0].date().isoformat()
    target = f"uqs-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        result = run(es_server, study["prefix"], "sessions", "--store", "--day", day, "--session-index-prefix", target)
        assert result.exit_code == 0, result.output
    es.indices.refresh(index=f"{target}-{day}")
    sessions_that_day = len({d["session_id"] for d in study["docs"] if d["server_time"].startswith(day)})
    assert es.count(index=f"{target}-{day}")["count"] == sessions_that_day


def test_withdraw_removes_every_event_of_one_worker_and_audits_it(es, es_server, tmp_path):
    prefix = f"uqt-wd-{uuid.uuid4().hex[:8]}"
    docs = [d for n in range(20) for d in make_session(n)]  # workers W0..W19, 2,000 events
    bulk_create(es, prefix, [(n, prepared(d)) for n, d in enumerate(docs)])
    es.indices.refresh(index=f"{prefix}-*")
    audit = tmp_path / "audit.log"
    audit.touch(mode=0o600)  # the role creates it, root-only
    env = {"UQCROWD_AUDIT_LOG": str(audit)}
    dry = run(es_server, prefix, "withdraw", "--worker-id", "W3", "--dry-run", env=env)
    assert "100 documents of worker W3 would be removed" in dry.output
    assert es.count(index=f"{prefix}-*")["count"] == 2000
    assert audit.read_text() == ""
    done = run(es_server, prefix, "withdraw", "--worker-id", "W3", env=env)
    assert done.exit_code == 0, done.output
    assert es.count(index=f"{prefix}-*", query={"term": {"worker_id": "W3"}})["count"] == 0
    assert es.count(index=f"{prefix}-*")["count"] == 1900
    started, finished = [json.loads(x) for x in audit.read_text().splitlines()]
    assert (started["event"], started["worker_id"], started["planned"]) == ("withdrawal started", "W3", 100)
    assert (finished["event"], finished["worker_id"], finished["deleted"]) == ("withdrawal done", "W3", 100)


@pytest.mark.parametrize("audit", ["missing/audit.log", "a-directory"])
def test_a_withdrawal_that_cannot_be_audited_deletes_nothing(es, es_server, tmp_path, audit):
    prefix = f"uqt-wd-{uuid.uuid4().hex[:8]}"
    docs = [d for n in range(2) for d in make_session(n)]
    bulk_create(es, prefix, [(n, prepared(d)) for n, d in enumerate(docs)])
    es.indices.refresh(index=f"{prefix}-*")
    (tmp_path / "a-directory").mkdir()
    refused = run(es_server, prefix, "withdraw", "--worker-id", "W1", env={"UQCROWD_AUDIT_LOG": str(tmp_path / audit)})
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: the audit log {tmp_path / audit} cannot be written (")
    assert refused.output.strip().endswith("): nothing was deleted")
    assert len(refused.output.strip().splitlines()) == 1
    es.indices.refresh(index=f"{prefix}-*")
    assert es.count(index=f"{prefix}-*", query={"term": {"worker_id": "W1"}})["count"] == 100


def test_the_audit_log_is_the_servers_not_the_callers(es_server):
    assert "--audit-log" not in run(es_server, "uqt-x", "withdraw", "--help").output


def test_retention_deletes_only_indices_older_than_n_days_session_reports_too(es, es_server):
    """The daily job's command: event indices and session reports (which hold worker ids) alike."""
    prefix = f"uqt-ret-{uuid.uuid4().hex[:8]}"
    reports = f"{prefix}-sessions"
    today = datetime.now(UTC).date()
    ages = [0, 5, 30, 31, 400]
    for age in ages:
        es.indices.create(index=f"{prefix}-{today - timedelta(days=age)}")
        es.indices.create(index=f"{reports}-{today - timedelta(days=age)}")
    es.indices.create(index=f"{prefix}-notes")
    result = run(es_server, prefix, "retention", "--days", "30", "--session-index-prefix", reports)
    assert result.exit_code == 0, result.output
    assert "4 indices older than 30 days deleted" in result.output
    left = sorted(es.indices.get_alias(index=f"{prefix}-*"))
    kept = [f"{p}-{today - timedelta(days=a)}" for p in (prefix, reports) for a in (0, 5, 30)]
    assert left == sorted([f"{prefix}-notes", *kept])


def test_failures_are_one_line_and_exit_non_zero(es_server, study):
    unknown = run(es_server, study["prefix"], "export", "--exp-id", "no-such-study")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: no events match exp_id=no-such-study"
    runner = CliRunner()
    down = runner.invoke(main, ["--es-url", "http://127.0.0.1:9", "sessions"], env={})
    assert down.exit_code == 1
    assert down.output.startswith("Error: Elasticsearch at http://127.0.0.1:9 is unreachable")
    assert len(down.output.strip().splitlines()) == 1
    assert run(es_server, study["prefix"], "export", "--since", "yesterday").exit_code == 2
    assert "--worker-id" in run(es_server, study["prefix"], "withdraw", "--help").output


def test_dead_letters_are_listed_with_their_reason_and_replayed(settings, queue):
    event = prepared({"session_id": "dl", "sequence_number": 1, "log_type": "message", "server_time": "x"})
    queue.producer.put([event], 10**9)
    consumer = queue.consumer("cli-test")
    consumer.ensure_group()
    [entry] = consumer.read(10, None)
    consumer.settle([entry], [(event, "400 document_parsing_exception: server_time")])
    env = {"UQCROWD_REDIS_URL": settings.redis.url, "UQCROWD_REDIS_PREFIX": settings.redis.prefix}
    listed = CliRunner().invoke(main, ["dead-letters", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (record["event_id"], record["error"]) == (event.event_id, "400 document_parsing_exception: server_time")
    replayed = CliRunner().invoke(main, ["dead-letters", "replay"], env=env)
    assert "1 dead letters back in the queue" in replayed.output
    assert (queue.dead_letter_depth(), queue.depth()) == (0, 1)
