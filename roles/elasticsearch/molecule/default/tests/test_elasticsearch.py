"""Elasticsearch as the role leaves it: secured, on loopback, with the event template."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.in_container import http, listening, ports_of

API = "http://127.0.0.1:9200"


@pytest.fixture(scope="module")
def elastic(host):
    return ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())


def test_service_running_and_enabled(host):
    service = host.service("elasticsearch")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_loopback_only(host):
    addresses = listening(host)
    assert ports_of(addresses, 9200) == {"127.0.0.1"}
    assert ports_of(addresses, 9300) == {"127.0.0.1"}


def test_password_file_is_root_only(host):
    secret = host.file("/etc/elasticsearch/elastic-password")
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)


def test_heap_is_pinned(host):
    options = host.file("/etc/elasticsearch/jvm.options.d/heap.options").content_string
    assert "-Xms512m" in options
    assert "-Xmx512m" in options


def test_health_needs_credentials_and_is_yellow_or_green(host, elastic):
    assert http(host, "GET", f"{API}/_cluster/health")[0] == 401
    status, health = http(host, "GET", f"{API}/_cluster/health", auth=elastic)
    assert status == 200
    assert health["status"] in ("yellow", "green")


def test_event_document_gets_the_templates_mappings(host, elastic):
    index = f"uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    event = {
        "log_type": "message",
        "session_id": "s1",
        "sequence_number": 1,
        "server_time": "2026-11-28T00:00:00Z",
        "browser_time": 1764288000000,
        "content": {"message": "hi", "details": {"a": {"b": 1}}},
        "extra": 1,
    }
    status, _ = http(host, "PUT", f"{API}/{index}/_create/verify-1?refresh=true", event, auth=elastic)
    assert status in (201, 409)
    status, mapping = http(host, "GET", f"{API}/{index}/_mapping", auth=elastic)
    props = mapping[index]["mappings"]["properties"]
    assert props["session_id"]["type"] == "keyword"
    assert props["server_time"]["type"] == "date"
    assert props["content"]["type"] == "flattened"
    assert "extra" not in props  # unknown fields are kept in _source but never grow the mapping
    settings = http(host, "GET", f"{API}/{index}/_settings", auth=elastic)[1][index]["settings"]["index"]
    assert settings["number_of_replicas"] == "0"


def test_writer_user_may_create_events_and_nothing_more(host):
    password = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "writer-password").read_text().strip()
    writer = ("uqcrowd_writer", password)
    index = f"uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    assert http(host, "PUT", f"{API}/{index}/_create/writer-1", {"log_type": "message"}, auth=writer)[0] in (201, 409)
    assert http(host, "GET", f"{API}/_cluster/health", auth=writer)[0] == 200
    assert http(host, "DELETE", f"{API}/{index}", auth=writer)[0] == 403
    assert http(host, "PUT", f"{API}/other-index/_create/1", {"a": 1}, auth=writer)[0] == 403
    assert http(host, "GET", f"{API}/{index}/_search", auth=writer)[0] == 403
