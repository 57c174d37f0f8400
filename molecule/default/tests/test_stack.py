"""The whole stack from site.yml: HAProxy -> backends -> Redis -> indexer -> Elasticsearch."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.in_container import http, post_many

FRONT = "http://127.0.0.1:80/logger"
ES = "http://127.0.0.1:9200"
SITE = Path(__file__).resolve().parents[3] / "site.yml"


@pytest.fixture(scope="module")
def elastic(host):
    return ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())


def search(host, elastic, session_id: str) -> list[dict]:
    index = f"uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    http(host, "POST", f"{ES}/{index}/_refresh", auth=elastic)
    status, result = http(
        host,
        "POST",
        f"{ES}/{index}/_search",
        {"query": {"term": {"session_id": session_id}}, "size": 1000},
        auth=elastic,
    )
    return [hit["_source"] for hit in result["hits"]["hits"]] if status == 200 else []


def backends(host) -> tuple[list[str], list[str]]:
    """(server lines in haproxy.cfg, running uqcrowd-logger instances)."""
    servers = [
        line
        for line in host.file("/etc/haproxy/haproxy.cfg").content_string.splitlines()
        if line.strip().startswith("server ")
    ]
    running = host.run("systemctl list-units --state=running --plain --no-legend 'uqcrowd-logger@*'").stdout.split("\n")
    return servers, [line.split()[0] for line in running if line.strip()]


def test_an_event_posted_through_haproxy_is_in_todays_index_within_10s(host, elastic):
    session = f"stack-{uuid.uuid4().hex[:8]}"
    event = {"log_type": "message", "session_id": session, "sequence_number": 0, "content": {"message": "hi"}}
    assert http(host, "POST", f"{FRONT}/insert", event, content_type="text/plain") == (202, {"accepted": 1})
    deadline = time.monotonic() + 10
    while not (docs := search(host, elastic, session)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [d["content"] for d in docs] == [{"message": "hi"}]
    assert docs[0]["client_ip"] == "127.0.0.1"


def test_get_on_insert_through_haproxy_is_405(host):
    assert http(host, "GET", f"{FRONT}/insert")[0] == 405


def test_with_one_backend_stopped_100_requests_all_succeed(host, elastic):
    first = backends(host)[1][0]
    assert host.run(f"systemctl stop {first}").rc == 0
    try:
        session = f"stopped-{uuid.uuid4().hex[:8]}"
        statuses = post_many(host, f"{FRONT}/insert", {"log_type": "message", "session_id": session}, 100)
        assert statuses == [202] * 100
    finally:
        assert host.run(f"systemctl start {first}").rc == 0
    time.sleep(2)
    assert len(search(host, elastic, session)) == 100


def converge(**extra: str) -> None:
    """site.yml again on the scenario's inventory, with extra variables."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SITE)]
    for key, value in extra.items():
        command += ["-e", f"{key}={value}"]
    result = subprocess.run([*command, "-v"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    secrets = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / ".secrets"
    for secret in secrets.iterdir():  # Ansible's own output (-v) shows no secret
        assert secret.read_text().strip() not in result.stdout + result.stderr, secret.name


def test_backend_count_grows_and_shrinks_in_both_roles(host):
    converge(uqcrowd_backend_count="3")
    servers, running = backends(host)
    assert len(servers) == 3
    assert sorted(running) == [f"uqcrowd-logger@{p}.service" for p in (5001, 5002, 5003)]
    converge(uqcrowd_backend_count="2")
    servers, running = backends(host)
    assert len(servers) == 2
    assert sorted(running) == [f"uqcrowd-logger@{p}.service" for p in (5001, 5002)]
    assert not host.service("uqcrowd-logger@5003").is_enabled
    assert http(host, "GET", f"{FRONT}/insert")[0] == 405
