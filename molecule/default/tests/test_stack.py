"""The whole stack from site.yml: HAProxy -> backends -> Redis -> indexer -> Elasticsearch."""

from __future__ import annotations

import uuid

import pytest

from harness.in_container import http, post_with_one_backend_stopped, wait_documents

FRONT = "http://127.0.0.1:80/logger"
ES = "http://127.0.0.1:9200"


@pytest.fixture(scope="module")
def elastic(host):
    return ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())


def test_an_event_posted_through_haproxy_is_in_todays_index_within_10s(host, elastic):
    session = f"stack-{uuid.uuid4().hex[:8]}"
    event = {"log_type": "message", "session_id": session, "sequence_number": 0, "content": {"message": "hi"}}
    assert http(host, "POST", f"{FRONT}/insert", event, content_type="text/plain") == (
        202,
        {"accepted": 1, "rejected": 0},
    )
    docs = wait_documents(host, ES, elastic, session, 1)
    assert [d["content"] for d in docs] == [{"message": "hi"}]
    assert docs[0]["client_ip"] == "127.0.0.1"


def test_get_on_insert_through_haproxy_is_405(host):
    assert http(host, "GET", f"{FRONT}/insert")[0] == 405


def test_with_one_backend_stopped_100_requests_all_succeed(host, elastic):
    session = f"stopped-{uuid.uuid4().hex[:8]}"
    assert post_with_one_backend_stopped(host, host, f"{FRONT}/insert", session, 100) == [202] * 100
    assert len(wait_documents(host, ES, elastic, session, 100)) == 100
