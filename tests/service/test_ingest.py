"""POST /logger/insert and the other HTTP endpoints, against a real Redis."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime

import orjson
import pytest
import redis
from flask.testing import FlaskClient

from harness.queue_view import QueueView
from harness.report import record
from harness.services import RedisServer, wait_until
from uqcrowd_log import __version__
from uqcrowd_log.config import Settings
from uqcrowd_log.events import Prepared
from uqcrowd_log.queue.entries import unpack
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


def queued(queue: QueueView) -> list[dict]:
    entries = queue.client.xrange(queue.stream)
    return [orjson.loads(e.document) for _, f in entries for e in unpack(f[b"lengths"], f[b"events"])]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "text/plain;charset=UTF-8"])
def test_one_event_is_queued_with_server_fields(client, queue, content_type):
    response = post(client, EVENT, content_type, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 1, "rejected": 0}
    [doc] = queued(queue)
    assert {k: doc[k] for k in EVENT} == EVENT
    assert datetime.fromisoformat(doc["server_time"]).utcoffset().total_seconds() == 0
    assert doc["server_time"].endswith("+00:00")
    assert doc["client_ip"] == "203.0.113.9"
    assert len(doc["event_id"]) == 40


# A batch at the event limit (500 of these events: about 130 kB) is over the default body limit (128 KiB,
# twice the tracker's largest request): these tests raise the body limit to test the batch limit.
WIDE = {"max_body_bytes": 1024 * 1024}


def test_a_batch_of_500_is_500_queued_events(settings, queue):
    client = create_app(settings.changed(ingest=WIDE)).test_client()
    batch = [{**EVENT, "sequence_number": n} for n in range(500)]
    response = post(client, batch)
    assert (response.status_code, response.get_json()) == (202, {"accepted": 500, "rejected": 0})
    assert queue.depth() == 500
    assert queue.client.xlen(queue.stream) == 1  # one stream entry per request
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
    "only_a_scalar_event": json.dumps([1]).encode(),
    "only_a_nested_array": json.dumps([[EVENT]]).encode(),
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
def test_bad_input_is_400_and_queues_nothing(settings, queue, body):
    client = create_app(settings.changed(ingest=WIDE)).test_client()  # 501 events: over the batch limit only
    before = queue.depth()
    response = post(client, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error
    assert "\n" not in error
    assert queue.depth() == before == 0
    assert any(k.startswith("rejected:") for k in queue.counters())


def test_one_bad_event_costs_only_itself_and_is_quarantined_with_its_reason(settings, queue):
    client = create_app(settings.changed(ingest=WIDE)).test_client()
    batch = [{**EVENT, "sequence_number": n} for n in range(500)]
    batch[137] = {**EVENT, "event_id": 42}
    response = post(client, batch, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 202
    answer = response.get_json()
    assert (answer["accepted"], answer["rejected"]) == (499, 1)
    assert answer["errors"] == [
        {"index": 137, "reason": "bad_event_id", "error": "event 137: event_id must be a string of 1..512 bytes"}
    ]
    assert sorted(d["sequence_number"] for d in queued(queue)) == [n for n in range(500) if n != 137]
    [record] = queue.quarantine_records()
    assert (record["stage"], record["reason"], record["client_ip"]) == ("ingest", "bad_event_id", "203.0.113.9")
    assert json.loads(record["event"])["event_id"] == 42
    counters = queue.counters()
    assert (counters["quarantined"], counters["rejected:bad_event_id"], counters["accepted"]) == (1, 1, 499)


def test_a_batch_of_only_bad_events_is_400_and_every_one_is_quarantined(client, queue):
    response = post(client, [1, "two", {**EVENT, "event_id": ""}])
    assert response.status_code == 400
    answer = response.get_json()
    assert (answer["accepted"], answer["rejected"]) == (0, 3)
    assert answer["error"] == "event 0: not a JSON object"
    assert [r["reason"] for r in queue.quarantine_records()] == ["not_event", "not_event", "bad_event_id"]
    assert queue.depth() == 0


def test_the_quarantine_is_capped_and_says_how_many_it_dropped(settings, queue):
    client = create_app(settings.changed(queue={"quarantine_max": 3})).test_client()
    post(client, [EVENT, 1, 2])
    post(client, [EVENT, 3, 4])
    assert [json.loads(r["event"]) for r in queue.quarantine_records()] == [2, 3, 4]
    assert queue.counters()["quarantine_dropped"] == 1


def test_the_quarantine_is_bounded_in_bytes_too_and_counts_against_the_high_water_mark(settings, queue):
    client = create_app(
        settings.changed(queue={"quarantine_max_bytes": 50_000, "high_water_bytes": 60_000})
    ).test_client()
    for n in range(20):  # 20 refused events of 10 kB: the quarantine keeps the newest that fit in 50 kB
        assert post(client, [{**EVENT, "event_id": "", "pad": "q" * 10_000, "n": n}]).status_code == 400
    records = queue.quarantine_records()
    assert [json.loads(r["event"])["n"] for r in records] == list(range(16, 20))
    quarantined, _ = queue.side_bytes()
    assert quarantined == sum(len(orjson.dumps(r)) for r in records) <= 50_000
    assert queue.counters()["quarantine_dropped"] == 16
    # What the quarantine holds counts against the mark: after 20 kB of good events (queued: 20 kB of
    # the 60,000), the ~40 kB the quarantine holds fill it.
    assert post(client, {**EVENT, "pad": "g" * 20_000}).status_code == 202
    assert post(client, {**EVENT, "sequence_number": 4}).status_code == 503


def test_one_clients_refused_events_never_take_the_room_of_anothers_good_events(tmp_path, settings):
    """2,000 refused events of 60 kB (120 MB) from one address, into a Redis of 32 MB: the other
    client's events are all accepted, Redis never reaches its maxmemory, the dropped ones are counted."""
    own = RedisServer(tmp_path / "redis", options=("--maxmemory", "32mb", "--maxmemory-policy", "noeviction"))
    own.start()
    try:
        mark = 16 * 1024 * 1024  # half of maxmemory, as the roles set it; each side list an eighth of it
        small = settings.changed(
            redis={"url": own.url}, queue={"high_water_bytes": mark, "quarantine_max_bytes": mark // 8}
        )
        client = create_app(small).test_client()
        bad = orjson.dumps([{**EVENT, "event_id": "", "pad": "b" * 60_000}])
        good_statuses, peak = [], 0
        for n in range(2000):
            assert post(client, bad, environ_base={"REMOTE_ADDR": "203.0.113.66"}).status_code == 400
            if n % 20 == 0:
                good = {**EVENT, "sequence_number": n, "session_id": "good"}
                good_statuses.append(post(client, good, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code)
                peak = max(peak, int(own_client(own).info("memory")["used_memory"]))
        assert good_statuses == [202] * 100
        assert peak < 32 * 1024 * 1024
        queue = QueueView(own_client(own), settings.redis.prefix)
        assert queue.depth() == 100
        counters = queue.counters()
        assert counters["quarantined"] == 2000
        assert counters["quarantine_dropped"] == 2000 - queue.quarantine_depth() > 1900
        assert "rejected:queue_full" not in counters
        assert "rejected:store_unavailable" not in counters
        record(
            "2,000 refused events of 60 kB (120 MB) into a Redis of 32 MB; the other client an event every 20",
            {"sent": 2000, "failed": "2,000 (400, quarantined)", "accepted": "100 of 100", "lost": 0},
            f"Redis's peak {peak / 2**20:.1f} MB of its 32; the quarantine kept the newest"
            f" {queue.quarantine_depth()} (its bound: 2 MiB), {counters['quarantine_dropped']:,} dropped and counted",
            table="internet",
        )
    finally:
        own.stop()


def own_client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def test_body_over_the_limit_is_413_and_stores_nothing(settings, queue):
    client = create_app(settings.changed(ingest={"max_body_bytes": 1000})).test_client()
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


def test_listed_origins_are_the_only_pages_whose_events_are_stored(settings, queue):
    client = create_app(settings.changed(ingest={"allowed_origins": ("https://ok.example",)})).test_client()
    ok = post(client, EVENT, headers={"Origin": "https://ok.example"})
    other = post(client, {**EVENT, "sequence_number": 4}, headers={"Origin": "https://evil.example"})
    sandboxed = post(client, {**EVENT, "sequence_number": 5}, headers={"Origin": "null"})
    assert ok.status_code == 202
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    assert "Origin" in ok.headers["Vary"]
    assert (other.status_code, sandboxed.status_code) == (403, 403)
    assert other.get_json() == {"error": "events from pages of https://evil.example are not accepted here"}
    assert "Access-Control-Allow-Origin" not in other.headers
    assert post(client, {**EVENT, "sequence_number": 6}).status_code == 202  # no Origin: not a browser's page
    assert sorted(d["sequence_number"] for d in queued(queue)) == [3, 6]
    assert queue.counters()["rejected:origin"] == 2


def test_any_origin_is_accepted_when_origins_are_a_star(client, queue):
    response = post(client, EVENT, headers={"Origin": "https://anywhere.example"})
    assert response.status_code == 202
    assert len(queued(queue)) == 1


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
    post(client, {**EVENT, "session_id": "s2", "event_id": "client-chosen-1"})  # another page, same number
    ids = [d["event_id"] for d in queued(queue)]
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]
    assert queued(queue)[3]["client_event_id"] == "client-chosen-1"
    assert ids[4] != ids[5]
    assert ids[6] != ids[3]


def test_the_queue_keeps_each_field_byte_for_byte_whatever_it_holds(queue):
    """Events travel to Redis as their fields' lengths and the fields end to end: spaces, newlines,
    digits and multi-byte text inside a field do not shift the next one."""
    events = [
        Prepared("id with space", "2026-11-28", b'{"a":"line\nbreak 12 34"}'),
        Prepared("7", "2026-11-29", '{"é":"日本"}'.encode()),
        Prepared("x" * 512, "2026-11-30", b"{}"),
    ]
    consumer = queue.consumer("reader")
    consumer.ensure_group()
    queue.producer.put(events, 10**9)
    [entry] = consumer.read(10, None)
    assert list(entry.events) == events
    assert queue.queued_bytes() == entry.size == sum(len(e.event_id) + len(e.day) + len(e.document) for e in events)


def test_backpressure_above_high_water_bytes_is_503_with_retry_after(settings, queue):
    client = create_app(settings.changed(queue={"high_water_bytes": 2000})).test_client()
    assert post(client, [EVENT] * 6).status_code == 202  # 0 -> about 2,400 bytes queued
    assert queue.queued_bytes() == sum(len(f[b"events"]) for _, f in queue.client.xrange(queue.stream))
    response = post(client, EVENT)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert queue.depth() == 6
    assert queue.counters()["rejected:queue_full"] == 1


def test_metrics_are_refused_to_any_client_behind_the_proxy_and_served_to_loopback(client):
    served = client.get("/logger/metrics")  # the monitoring on this host
    assert served.status_code == 200
    assert f'uqcrowd_build_info{{version="{__version__}"}} 1.0' in served.get_data(as_text=True)
    through_proxy = client.get("/logger/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert through_proxy.status_code == 403
    assert "error" in through_proxy.get_json()
    assert client.get("/logger/metrics", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 403


def test_the_tracker_is_told_the_servers_limits(settings):
    client = create_app(settings.changed(ingest={"max_batch": 321, "max_body_bytes": 65432})).test_client()
    script = client.get("/logger/logger.js").get_data(as_text=True)
    assert '{"maxBatch": 321, "maxBytes": 65432}' in script
    assert "/*SERVER_LIMITS*/" not in script


def test_redis_unreachable_is_503_and_not_ready(settings):
    closed = settings.changed(redis={"url": "redis://127.0.0.1:9/0"})
    client = create_app(closed).test_client()
    response = post(client, EVENT)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert client.get("/logger/ready").status_code == 503
    assert client.get("/logger/health").status_code == 200


def test_not_ready_while_redis_refuses_writes_at_its_maxmemory_or_unable_to_persist(tmp_path, settings):
    """A PING still answers at maxmemory: readiness writes, as an insert would."""
    own = RedisServer(tmp_path / "redis", options=("--save", "3600 1", "--enable-protected-configs", "yes"))
    own.start()
    redis_client = own_client(own)
    client = create_app(settings.changed(redis={"url": own.url})).test_client()
    try:
        assert client.get("/logger/ready").status_code == 200
        redis_client.config_set("maxmemory", 1)  # far below what it holds
        refused = client.get("/logger/ready")
        assert refused.status_code == 503
        assert refused.get_json()["error"].startswith("redis refuses writes (OutOfMemoryError)")
        assert post(client, EVENT).status_code == 503
        assert QueueView(redis_client, settings.redis.prefix).counters()["rejected:queue_full"] == 1  # counted
        redis_client.config_set("maxmemory", 0)
        assert client.get("/logger/ready").status_code == 200
        redis_client.config_set("dir", "/proc")  # the next snapshot fails: Redis then refuses writes
        redis_client.bgsave()
        wait_until(lambda: client.get("/logger/ready").status_code == 503, 10, "MISCONF seen")
        assert "MISCONF" in client.get("/logger/ready").get_json()["error"]
        assert "uqcrowd_redis_writable 0.0" in client.get("/logger/metrics").get_data(as_text=True)
        redis_client.config_set("dir", str(tmp_path / "redis"))
        redis_client.bgsave()  # may be refused while the last one is failing; the wait below retries
        wait_until(lambda: _saved(redis_client) and client.get("/logger/ready").status_code == 200, 10, "ready")
        assert "uqcrowd_redis_writable 1.0" in client.get("/logger/metrics").get_data(as_text=True)
    finally:
        own.stop()


def _saved(redis_client) -> bool:
    if redis_client.info("persistence")["rdb_last_bgsave_status"] != "ok":
        with contextlib.suppress(Exception):
            redis_client.bgsave()
        return False
    return True


def test_ready_follows_redis(tmp_path, settings):
    own = RedisServer(tmp_path / "redis")
    own.start()
    client = create_app(settings.changed(redis={"url": own.url})).test_client()
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
    assert Settings.from_env({"UQCROWD_TRUSTED_PROXIES": "10.0.0.0/8"}).ingest.trusted_proxies[0].num_addresses == 2**24


@pytest.mark.parametrize(
    ("mode", "peer", "stored"),
    [
        ("full", "203.0.113.9", "203.0.113.9"),
        ("truncated", "203.0.113.9", "203.0.113.0"),
        ("truncated", "2001:db8:1234:5678::9", "2001:db8:1234::"),
        ("none", "203.0.113.9", None),
    ],
)
def test_client_ip_is_stored_as_the_privacy_setting_says(settings, queue, mode, peer, stored):
    client = create_app(settings.changed(ingest={"client_ip": mode})).test_client()
    assert post(client, EVENT, environ_base={"REMOTE_ADDR": peer}).status_code == 202
    assert queued(queue)[0].get("client_ip") == stored
    assert ("client_ip" in queued(queue)[0]) is (stored is not None)


def test_the_experiment_allow_list_refuses_other_experiments_and_wrong_tokens(settings, queue):
    client = create_app(settings.changed(ingest={"experiments": {"e1": "", "secret-study": "t0ken"}})).test_client()
    mixed = [EVENT, {**EVENT, "exp_id": "other"}, {**EVENT, "exp_id": "secret-study", "sequence_number": 9}]
    answer = post(client, mixed).get_json()
    assert (answer["accepted"], answer["rejected"]) == (1, 2)
    assert [e["reason"] for e in answer["errors"]] == ["unknown_experiment", "bad_token"]
    refused = post(client, {**EVENT, "exp_id": "other"})
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "event 0: experiment 'other' is not accepted here"
    with_token = client.post("/logger/insert?token=t0ken", data=json.dumps(mixed[2]), content_type="text/plain")
    assert with_token.status_code == 202
    assert [d["exp_id"] for d in queued(queue)] == ["e1", "secret-study"]
    assert queue.quarantine_depth() == 0  # refused events of other studies are not kept
    counters = queue.counters()
    assert (counters["rejected:unknown_experiment"], counters["rejected:bad_token"]) == (2, 1)
