"""POST /logger/insert and the other HTTP endpoints, against a real Redis."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import orjson
import pytest
from flask.testing import FlaskClient

from tests.support.services import RedisServer
from uqcrowd_log.config import Settings
from uqcrowd_log.redis_queue import EventQueue
from uqcrowd_log.web import create_app

EVENT = {
    "log_type": "mouse_event",
    "sequence_number": 3,
    "browser_time": "2026-11-28T01:02:03.456Z",
    "session_id": "s1",
    "worker_id": "w1",
    "hit_id": "h1",
    "assignment_id": "a1",
    "exp_id": "e1",
    "content": {"mouse_event": "click", "details": {"event_x": 100, "event_y": 400}},
}


def post(client: FlaskClient, body: bytes | str | object, content_type: str = "text/plain", **kw):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/logger/insert", data=data, content_type=content_type, **kw)


def queued(queue: EventQueue) -> list[dict]:
    return [orjson.loads(fields[b"doc"]) for _, fields in queue.client.xrange(queue.stream)]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "text/plain;charset=UTF-8"])
def test_one_event_is_queued_with_server_fields(client, queue, content_type):
    response = post(client, EVENT, content_type, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 1}
    [doc] = queued(queue)
    assert {k: doc[k] for k in EVENT} == EVENT
    assert datetime.fromisoformat(doc["server_time"]).utcoffset().total_seconds() == 0
    assert doc["server_time"].endswith("+00:00")
    assert doc["client_ip"] == "203.0.113.9"
    assert len(doc["event_id"]) == 40


def test_a_batch_of_500_is_500_queued_events(client, queue):
    batch = [{**EVENT, "sequence_number": n} for n in range(500)]
    response = post(client, batch)
    assert (response.status_code, response.get_json()) == (202, {"accepted": 500})
    assert queue.depth() == 500
    assert sorted(d["sequence_number"] for d in queued(queue)) == list(range(500))


BAD_BODIES = {
    "not_json": b"{not json",
    "invalid_utf8": b'{"a": "\xff\xfe"}',
    "scalar": b"42",
    "string": b'"hello"',
    "null": b"null",
    "empty_body": b"",
    "blank_body": b"  \n ",
    "empty_array": b"[]",
    "array_with_scalar": json.dumps([EVENT, 1]).encode(),
    "nested_array": json.dumps([[EVENT]]).encode(),
    "batch_over_limit": json.dumps([EVENT] * 501).encode(),
    "too_deep": ('{"a":' * 25 + "1" + "}" * 25).encode(),
    "nested_10000_deep": ("[" * 10_000 + "]" * 10_000).encode(),
    "nan": b'{"a": NaN}',
    "infinity_by_overflow": b'{"a": 1e400}',
    "lone_surrogate": b'{"a": "\\ud800"}',
    "event_id_not_string": json.dumps({**EVENT, "event_id": 5}).encode(),
    "event_id_too_long": json.dumps({**EVENT, "event_id": "x" * 513}).encode(),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_is_400_and_stores_nothing(client, queue, body):
    before = queue.depth()
    response = post(client, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error
    assert "\n" not in error
    assert queue.depth() == before == 0
    assert any(k.startswith("rejected:") for k in queue.counters())


def test_body_over_the_limit_is_413_and_stores_nothing(settings, queue):
    client = create_app(replace(settings, max_body_bytes=1000)).test_client()
    response = post(client, [EVENT] * 10)
    assert response.status_code == 413
    assert "error" in response.get_json()
    assert queue.depth() == 0
    assert queue.counters().get("rejected:body_too_large") == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_other_methods_on_insert_are_405(client, method):
    response = client.open("/logger/insert", method=method)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/", "/logger/", "/logger/nope", "/insert", "/logger/insert/x"])
def test_unknown_paths_are_404_json(client, path):
    response = client.post(path, data="{}")
    assert response.status_code == 404
    assert response.get_json()["error"]


def test_preflight_and_cors_headers(client):
    response = client.options(
        "/logger/insert",
        headers={
            "Origin": "https://tasks.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "content-type"
    assert post(client, EVENT).headers["Access-Control-Allow-Origin"] == "*"


def test_cors_origin_allow_list(settings):
    client = create_app(replace(settings, allowed_origins=("https://ok.example",))).test_client()
    ok = post(client, EVENT, headers={"Origin": "https://ok.example"})
    other = post(client, EVENT, headers={"Origin": "https://evil.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    assert "Origin" in ok.headers["Vary"]
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),  # untrusted peer: its header is ignored
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),  # HAProxy on loopback: believed
        ("127.0.0.1", "198.51.100.7, 127.0.0.1", "198.51.100.7"),  # a chain of trusted proxies
        ("127.0.0.1", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # a spoofed left part is not believed
        ("127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies(client, queue, peer, forwarded, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert post(client, EVENT, headers=headers, environ_base={"REMOTE_ADDR": peer}).status_code == 202
    assert queued(queue)[0]["client_ip"] == expected


def test_document_ids_make_retries_harmless(client, queue):
    post(client, EVENT)
    post(client, EVENT)  # a retry: same identity, same id
    post(client, {**EVENT, "sequence_number": 4})
    post(client, {**EVENT, "event_id": "client-chosen-1"})
    post(client, {"log_type": "message"})  # no identity: random ids
    post(client, {"log_type": "message"})
    ids = [d["event_id"] for d in queued(queue)]
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]
    assert ids[3] == "client-chosen-1"
    assert ids[4] != ids[5]


def test_backpressure_above_high_water_is_503_with_retry_after(settings, queue):
    client = create_app(replace(settings, queue_high_water=5)).test_client()
    assert post(client, [EVENT] * 6).status_code == 202  # depth 0 -> 6
    response = post(client, EVENT)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert queue.depth() == 6
    assert queue.counters()["rejected:queue_full"] == 1


def test_redis_unreachable_is_503_and_not_ready(settings):
    closed = replace(settings, redis_url="redis://127.0.0.1:9/0")
    client = create_app(closed).test_client()
    response = post(client, EVENT)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert client.get("/logger/ready").status_code == 503
    assert client.get("/logger/health").status_code == 200


def test_ready_follows_redis(tmp_path, settings):
    own = RedisServer(tmp_path / "redis")
    own.start()
    client = create_app(replace(settings, redis_url=own.url)).test_client()
    try:
        assert client.get("/logger/ready").status_code == 200
        own.stop()
        assert client.get("/logger/ready").status_code == 503
        assert post(client, EVENT).status_code == 503
        own.start()
        assert client.get("/logger/ready").status_code == 200
        assert post(client, EVENT).status_code == 202
    finally:
        own.stop()


def test_tracker_scripts_are_served(client):
    for name, marker in (("logger.js", "send_log"), ("fingerprint.js", "uqcrowdFingerprint")):
        response = client.get(f"/logger/{name}")
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
        assert marker in response.get_data(as_text=True)


def test_config_rejects_bad_values():
    from uqcrowd_log.config import ConfigError

    with pytest.raises(ConfigError, match="UQCROWD_MODE"):
        Settings.from_env({"UQCROWD_MODE": "fast"})
    with pytest.raises(ConfigError, match="UQCROWD_MAX_BATCH"):
        Settings.from_env({"UQCROWD_MAX_BATCH": "lots"})
    assert Settings.from_env({"UQCROWD_TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies[0].num_addresses == 2**24
