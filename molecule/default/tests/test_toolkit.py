"""The researcher's command line on the deployed host, with the role's least-privilege users."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.in_container import http, wait_documents

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
    return host.run(f"set -a; . /etc/uqcrowd-log/toolkit-reader.env; set +a; uqcrowd-log {reader}{args}")


@pytest.fixture(scope="module")
def accounts(host):
    """A researcher (in the researchers' group) and a member of the backends' group (uqcrowd)."""
    for name, group in (("ada-researcher", "uqcrowd-researchers"), ("svc-member", "uqcrowd")):
        if host.run(f"id {name}").rc != 0:
            assert host.run(f"useradd --no-create-home -G {group} {name}").rc == 0
    return {"researcher": "ada-researcher", "service": "svc-member"}


def test_credentials_by_least_privilege(host):
    reader, root_only = host.file("/etc/uqcrowd-log/toolkit-reader.env"), host.file("/etc/uqcrowd-log/toolkit-root.env")
    assert (reader.user, reader.group, reader.mode) == ("root", "uqcrowd-researchers", 0o640)
    assert (root_only.user, root_only.group, root_only.mode) == ("root", "root", 0o600)
    assert "PASSWORD" not in host.file("/etc/uqcrowd-log/toolkit.env").content_string
    for path in (reader.path, root_only.path):  # the backends' user reads neither
        refused = host.run(f"runuser -u uqcrowd -- cat {path}")
        assert refused.rc != 0
        assert "Permission denied" in refused.stderr
    assert "uqcrowd-researchers" not in host.run("id -Gn uqcrowd").stdout.split()
    assert host.file("/etc/logrotate.d/uqcrowd-log").contains("/var/log/uqcrowd-log/withdrawals.log")


def test_a_researcher_lists_the_sessions_the_flags_of_the_inventory_mark(host, worker, accounts):
    """toolkit_flags (the demo inventory: toolkit-study's sessions under an hour) reach the command."""
    listed = host.run(
        f"runuser -u {accounts['researcher']} -- uqcrowd-log sessions --exp-id toolkit-study"
        f" --session-id {worker['session']} --flagged --csv"
    )
    assert listed.rc == 0, listed.stderr
    [row] = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert (row["session_id"], row["flags"], row["typed_chars"]) == (worker["session"], "active_seconds<3600", "0")


def test_a_researcher_exports_and_a_service_group_member_cannot_withdraw(host, worker, accounts):
    researcher = accounts["researcher"]
    exported = host.run(f"runuser -u {researcher} -- uqcrowd-log export --worker-id {worker['worker']} -o -")
    assert exported.rc == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 30
    for who in (accounts["service"], accounts["researcher"]):
        refused = host.run(f"runuser -u {who} -- uqcrowd-log withdraw --worker-id {worker['worker']}")
        assert refused.rc == 1
        assert refused.stderr.startswith("Error: Elasticsearch refused the credentials of (no user)"), refused.stderr
    assert len(host.run(f"uqcrowd-log export --worker-id {worker['worker']} -o -").stdout.splitlines()) == 30


def test_the_withdrawer_cannot_delete_an_index_nor_the_retention_user_a_document(host, worker):
    secrets = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / ".secrets"
    withdrawer = ("uqcrowd_withdrawer", (secrets / "withdrawer-password").read_text().strip())
    retention = ("uqcrowd_retention", (secrets / "retention-password").read_text().strip())
    index = f"{ES}/uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    status, body = http(host, "DELETE", index, auth=withdrawer)
    assert status == 403, body
    status, body = http(host, "DELETE", f"{index}/_doc/any-document", auth=retention)
    assert status == 403, body
    assert http(host, "DELETE", f"{index}/_doc/any-document", auth=withdrawer)[0] == 404  # its own job ...
    assert http(host, "GET", f"{index}/_count", auth=retention)[0] == 403  # ... and the other cannot read


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
    [row] = list(csv.DictReader(io.StringIO(report.stdout)))
    assert (row["complete"], row["stored"], row["flags"]) == ("True", "30", "active_seconds<3600")
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


def test_the_reader_cannot_withdraw_and_root_does_with_an_audit_line(host, worker):
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
    started, done_line = [json.loads(line) for line in audit.content_string.splitlines()[-2:]]
    assert (started["event"], started["worker_id"]) == ("withdrawal started", worker["worker"])
    assert (done_line["event"], done_line["worker_id"]) == ("withdrawal done", worker["worker"])
    assert done_line["deleted"] >= 30
