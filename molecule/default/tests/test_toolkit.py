"""The researcher's command line on the deployed host, with the role's least-privilege users."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.support.in_container import http, wait_documents

FRONT = "http://127.0.0.1:80/logger/insert"
ES = "http://127.0.0.1:9200"


@pytest.fixture(scope="module")
def worker(host):
    """One page's 30 events from a fresh worker, End Session last, all indexed."""
    worker, session = f"W-{uuid.uuid4().hex[:8]}", f"toolkit-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    events = [
        {"log_type": "mouse_event", "sequence_number": n, "session_id": session, "worker_id": worker,
         "exp_id": "toolkit-study", "browser_time": now, "content": {"mouse_event": "click", "details": {"x": n}}}
        for n in range(29)
    ]  # fmt: skip
    events.append({**events[0], "log_type": "message", "sequence_number": 29,
                   "content": {"message": "End Session", "details": {"events": 30}}})  # fmt: skip
    assert http(host, "POST", FRONT, events, content_type="text/plain")[0] == 202
    password = host.file("/etc/elasticsearch/elastic-password").content_string.strip()
    assert len(wait_documents(host, ES, ("elastic", password), session, 30, timeout=30)) == 30
    return {"worker": worker, "session": session}


def cli(host, args: str, as_reader: bool = False):
    """Run uqcrowd-log as root (or with the reader's credentials for every command)."""
    reader = (
        '--es-username "$UQCROWD_TOOLKIT_READER_USERNAME" --es-password "$UQCROWD_TOOLKIT_READER_PASSWORD" '
        if as_reader
        else ""
    )
    return host.run(f"set -a; . /etc/uqcrowd-log/toolkit.env; set +a; uqcrowd-log {reader}{args}")


def test_credentials_are_readable_by_root_and_the_service_group_only(host):
    env = host.file("/etc/uqcrowd-log/toolkit.env")
    assert (env.user, env.group, env.mode) == ("root", "uqcrowd", 0o640)
    outsider = host.run("runuser -u nobody -- /usr/local/bin/uqcrowd-log --help")
    assert outsider.rc != 0
    assert "Permission denied" in outsider.stderr
    assert host.run("/usr/local/bin/uqcrowd-log --help").rc == 0


def test_export_sessions_and_parquet_on_the_host(host, worker):
    lines = host.run(f"uqcrowd-log export --worker-id {worker['worker']}")
    assert lines.rc == 0, lines.stderr
    docs = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [d["sequence_number"] for d in docs] == list(range(30))
    parquet = host.run(f"uqcrowd-log export --worker-id {worker['worker']} --format parquet -o /tmp/w.parquet")
    assert parquet.rc == 0, parquet.stderr
    assert host.file("/tmp/w.parquet").content[:4] == b"PAR1"
    report = host.run(f"uqcrowd-log sessions --session-id {worker['session']} --csv")
    assert report.rc == 0, report.stderr
    assert report.stdout.splitlines()[1].endswith(",True")
    assert host.run("uqcrowd-log export --exp-id no-such-study").stderr.strip() == (
        "Error: no events match exp_id=no-such-study"
    )


def test_sessions_store_runs_daily_and_a_rerun_replaces(host, worker):
    assert "uqcrowd-log sessions --store" in host.file("/etc/cron.d/uqcrowd-log-toolkit").content_string
    today = datetime.now(UTC).date().isoformat()
    for _ in range(2):
        stored = host.run(f"uqcrowd-log sessions --store --day {today}")
        assert stored.rc == 0, stored.stderr
    password = host.file("/etc/elasticsearch/elastic-password").content_string.strip()
    status, found = http(
        host, "POST", f"{ES}/uqcrowd-session-{today}/_search",
        {"query": {"term": {"session_id.keyword": worker["session"]}}}, auth=("elastic", password),
    )  # fmt: skip
    assert status == 200
    assert found["hits"]["total"]["value"] == 1


def test_the_reader_cannot_withdraw_and_the_curator_does_with_an_audit_line(host, worker):
    refused = cli(host, f"withdraw --worker-id {worker['worker']}", as_reader=True)
    assert refused.rc == 1
    assert "uqcrowd_reader lacks the rights" in refused.stderr
    dry = host.run(f"uqcrowd-log withdraw --worker-id {worker['worker']} --dry-run")
    assert "30 documents of worker" in dry.stderr or "31 documents of worker" in dry.stderr, dry.stderr
    done = host.run(f"uqcrowd-log withdraw --worker-id {worker['worker']}")
    assert done.rc == 0, done.stderr
    assert host.run(f"uqcrowd-log export --worker-id {worker['worker']}").rc == 1  # nothing left
    audit = host.file("/var/log/uqcrowd-log/withdrawals.log")
    assert (audit.user, audit.mode) == ("root", 0o600)
    line = json.loads(audit.content_string.splitlines()[-1])
    assert line["worker_id"] == worker["worker"]
    assert line["deleted"] >= 30
