"""Operating Elasticsearch: an upgrade from the previous 8.x release with a new elastic password, under
steady load, a snapshot and a restore.

Runs after test_multihost.py (file order): the upgrade leaves Elasticsearch, and the scenario's
inventory, on the current release."""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import ES_NODES

from harness import load
from harness.in_container import http
from harness.playbook import converge, run_unchanged
from harness.report import record

ES_HOSTS = tuple(ES_NODES)


def versions(data, addresses, elastic) -> dict[str, str]:
    url = f"https://{addresses['data']}:9200/_cat/nodes?format=json&h=name,version"
    status, nodes = http(data, "GET", url, auth=elastic)
    assert status == 200, nodes
    return {node["name"]: node["version"] for node in nodes}


def count(data, addresses, elastic, index: str) -> int:
    es = f"https://{addresses['data']}:9200"
    http(data, "POST", f"{es}/{index}/_refresh", auth=elastic)
    status, answer = http(data, "GET", f"{es}/{index}/_count", auth=elastic)
    return answer["count"] if status == 200 else -status


@pytest.mark.timeout(1200)
def test_an_upgrade_with_a_new_elastic_password_under_load_loses_nothing(app, data, es_hosts, addresses, elastic):
    current = os.environ["UQCROWD_ES_ARCHIVE_CURRENT"]
    target = re.search(r"[0-9]+\.[0-9]+\.[0-9]+", Path(current).name).group(0)
    before = versions(data, addresses, elastic)
    assert len(before) == len(ES_HOSTS), before
    assert target not in before.values(), before
    # The operator raises the version in the inventory (here: the scenario's host_vars).
    host_vars = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    for name in ES_HOSTS:
        (host_vars / f"{name}.yml").write_text(f"---\nelasticsearch_archive_src: {current}\n")

    load.install(app)
    session = f"upgrade-{uuid.uuid4().hex[:6]}"
    load.start(app, f"http://{addresses['lb']}:80/logger/insert", session, rate=50, seconds=1200)
    time.sleep(3)
    started = time.monotonic()
    # The same run takes a new elastic password from the vault: each node's keystore gets it, and the
    # node knows it from its (single) restart on; the password file follows.
    new_password = secrets.token_hex(16)
    output = converge("elasticsearch", elasticsearch_elastic_password=new_password)
    took = time.monotonic() - started
    assert new_password not in output
    new = ("elastic", new_password)
    load.stop(app, session)
    outcome = load.result(app, session, timeout=120)
    docs, _ = load.wait_stored(data, f"https://{addresses['data']}:9200", new, session, outcome["accepted"])
    row = load.verdict(outcome, docs)
    after = versions(data, addresses, new)
    # Each node restarted once, in turn, the cluster green again before the next one.
    steps = re.findall(
        r"\[elasticsearch : (Restart the service on \S+|Wait for green before the next node)\].*\n"
        r"(?:(?!.*\[elasticsearch : ).*\n)*?(changed|ok|skipping): ",
        output,
    )
    record(
        f"Elasticsearch upgraded {sorted(set(before.values()))[0]} -> {target} under 50 req/s"
        " (3 nodes in turn, archive side by side), a new elastic password with it",
        row,
        f"{took:.0f} s (converge); on {target}; the backlog indexed from Redis",
        table="operations",
    )
    restarted = [step.rsplit(" ", 1)[1] for step, result in steps if step.startswith("Restart") and result == "changed"]
    assert sorted(restarted) == sorted(ES_HOSTS), steps
    assert [result for _, result in steps] == ["changed", "ok"] * len(ES_HOSTS), steps
    assert set(after.values()) == {target}, after
    for name, (port, _) in ES_NODES.items():  # each node checks the password against its own keystore
        node = f"https://{addresses['data']}:{port}/_security/_authenticate"
        assert http(data, "GET", node, auth=new)[0] == 200, name
        assert http(data, "GET", node, auth=elastic)[0] == 401, name
        assert es_hosts[name].file("/etc/elasticsearch/elastic-password").content_string.strip() == new_password
    assert row["failed"] == 0, row["failures"]  # by status: 0 = no answer (a timeout, a reset)
    assert row["lost"] == row["duplicated"] == 0, row


def test_a_deleted_daily_index_comes_back_from_the_snapshot(app, data, es_hosts, addresses, elastic):
    """The daily job's snapshot (run now), a daily index deleted by mistake, restored with every document."""
    day = datetime.now(UTC) - timedelta(days=2)
    index = f"uqcrowd-log-{day:%Y-%m-%d}"
    session = f"snap-{uuid.uuid4().hex[:6]}"
    events = [
        {"log_type": "message", "session_id": session, "sequence_number": n,
         "browser_time": day.isoformat(timespec="milliseconds"), "content": {"message": "kept"}}
        for n in range(200)
    ]  # fmt: skip
    assert http(app, "POST", f"http://{addresses['lb']}:80/logger/insert", events, content_type="text/plain")[0] == 202
    deadline = time.monotonic() + 60
    while count(data, addresses, elastic, index) < 200:
        assert time.monotonic() < deadline, "events not indexed"
        time.sleep(1)
    stored = count(data, addresses, elastic, index)
    # The daily job runs on the first node of the group only.
    jobs = [host for host in es_hosts.values() if host.file("/etc/cron.d/uqcrowd-es-snapshot").exists]
    assert len(jobs) == 1
    taken = jobs[0].run("/usr/local/bin/uqcrowd-es-snapshot")
    assert taken.rc == 0, taken.stdout + taken.stderr
    snapshot = re.match(r"snapshot (\S+): ", taken.stdout).group(1)

    es = f"https://{addresses['data']}:9200"
    assert http(data, "DELETE", f"{es}/{index}", auth=elastic)[0] == 200
    assert count(data, addresses, elastic, index) == -404
    started = time.monotonic()
    status, answer = http(
        data, "POST", f"{es}/_snapshot/uqcrowd/{snapshot}/_restore?wait_for_completion=true",
        {"indices": index}, auth=elastic,
    )  # fmt: skip
    assert status == 200, answer
    restored = count(data, addresses, elastic, index)
    record(
        "snapshot by the daily job, a daily index deleted, restored",
        {"sent": 1, "failed": 0, "accepted": stored, "lost": stored - restored, "duplicated": 0},
        f"{restored} of {stored} documents back in {time.monotonic() - started:.1f} s ({snapshot})",
        table="operations",
    )
    assert restored == stored


@pytest.mark.timeout(1200)
def test_site_yml_in_check_mode_changes_nothing():
    """On the upgraded deployment, a dry run (its -v output scanned for secrets). Real second runs are
    proven unchanged by the default scenario's idempotence step and the --limit test."""
    run_unchanged("site.yml", "--check", "--diff")
