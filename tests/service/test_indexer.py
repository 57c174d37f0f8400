"""The indexer and direct mode against real Redis and Elasticsearch processes."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
import redis
import requests

from tests.service.conftest import env_of
from tests.support.services import wait_until


def today_index(settings) -> str:
    return f"{settings.index_prefix}-{datetime.now(UTC):%Y-%m-%d}"


def event(n: int, session: str = "s1", **extra) -> dict:
    return {
        "log_type": "message",
        "sequence_number": n,
        "session_id": session,
        "browser_time": "2026-11-28T01:02:03Z",
        "content": {"message": f"event {n}"},
        **extra,
    }


def count(es, settings) -> int:
    index = f"{settings.index_prefix}-*"
    es.indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
    return es.count(index=index, allow_no_indices=True, ignore_unavailable=True)["count"]


def wait_for_count(es, settings, expected: int, timeout: float = 60) -> None:
    wait_until(lambda: count(es, settings) >= expected, timeout, f"{expected} documents", interval=0.5)
    time.sleep(0.5)  # anything extra (a duplicate) would arrive now
    assert count(es, settings) == expected


def held(queue) -> int:
    """Entries an indexer read and has not acknowledged (0 before any indexer ran)."""
    try:
        return queue.client.xpending(queue.stream, "indexers")["pending"]
    except redis.ResponseError:
        return 0


def post_all(url: str, events: list[dict], batch: int = 100) -> None:
    with requests.Session() as session:
        for start in range(0, len(events), batch):
            response = session.post(
                f"{url}/logger/insert",
                data=orjson.dumps(events[start : start + batch]),
                headers={"Content-Type": "text/plain"},
                timeout=10,
            )
            assert response.status_code == 202, response.text


def test_batch_of_500_becomes_500_documents_with_the_templates_mappings(es, es_server, settings, spawn):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [event(n) for n in range(500)], batch=500)
    wait_for_count(es, settings, 500)
    hit = es.search(index=today_index(settings), query={"term": {"sequence_number": 42}})["hits"]["hits"][0]
    assert hit["_id"] == hit["_source"]["event_id"]
    assert hit["_source"]["content"] == {"message": "event 42"}
    mapping = es.indices.get_mapping(index=today_index(settings))[today_index(settings)]["mappings"]
    assert mapping["properties"]["session_id"]["type"] == "keyword"
    assert mapping["properties"]["server_time"]["type"] == "date"


def test_the_same_event_posted_twice_is_one_document(es, es_server, settings, spawn):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [event(1)])
    wait_for_count(es, settings, 1)
    post_all(backend.url, [event(1), event(2)])  # a retry of event 1, and a new one
    wait_for_count(es, settings, 2)


def test_elasticsearch_down_while_5000_posted_then_all_indexed_exactly_once(es, es_server, settings, spawn, queue):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    indexer = spawn(env, "indexer")
    es_server.stop()
    try:
        post_all(backend.url, [event(n) for n in range(5000)])
        time.sleep(2)  # the indexer tries, fails and backs off; nothing may leave Redis
        assert queue.depth() == 5000
    finally:
        es_server.start()
    wait_for_count(es, settings, 5000, timeout=90)
    wait_until(lambda: queue.depth() == 0, 10, "queue drained")
    log = indexer.log.read_text()
    assert log.count("indexing paused") == 1, log  # one line per state change, not per retry
    assert log.count("indexing resumed") == 1, log


def test_indexer_killed_mid_batch_loses_and_duplicates_nothing(es, es_server, settings, spawn, queue):
    env = env_of(replace(settings, indexer_linger_ms=0), es_server.url)
    backend = spawn(env)
    total = 20_000
    post_all(backend.url, [event(n, session=f"s{n % 7}") for n in range(total)], batch=500)
    env["UQCROWD_INDEXER_BATCH_EVENTS"] = "500"
    first = spawn(env, "indexer")
    wait_until(lambda: count(es, settings) > 0, 30, "first documents", interval=0.02)
    first.signal(signal.SIGKILL)
    first.proc.wait()
    killed_at = count(es, settings)
    assert 0 < killed_at < total, "the kill should land mid-stream"
    assert held(queue) > 0  # it held a batch when killed
    spawn(env, "indexer")  # same consumer name: re-delivers what the dead one held
    wait_for_count(es, settings, total, timeout=90)
    wait_until(lambda: queue.depth() == 0, 10, "queue drained")
    assert queue.dead_letter_depth() == 0


def test_rejected_document_goes_to_dead_letter_while_the_rest_flow(es, es_server, settings, spawn, queue):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    bad = event(2, sequence_number="not a number")
    post_all(backend.url, [event(1), bad, event(3), event(4, browser_time="yesterday-ish")])
    wait_for_count(es, settings, 2)
    wait_until(lambda: queue.dead_letter_depth() == 2, 10, "dead letters")
    letters = [orjson.loads(x) for x in queue.client.lrange(queue.dead_letters, 0, -1)]
    assert {orjson.loads(x["document"])["sequence_number"] for x in letters} == {"not a number", 4}
    assert all(x["error"].startswith("400 document_parsing_exception") for x in letters)
    assert queue.counters()["dead_lettered"] == 2
    post_all(backend.url, [event(5)])  # the queue is not blocked
    wait_for_count(es, settings, 3)


def test_sigterm_exits_cleanly_and_hands_back_its_batch(es_server, settings, spawn, queue):
    env = env_of(settings, "http://127.0.0.1:9")  # nothing listens: the batch stays held, in backoff
    backend = spawn(env)
    post_all(backend.url, [event(n) for n in range(50)])
    indexer = spawn(env, "indexer")
    wait_until(lambda: held(queue) == 50, 10, "batch held")
    started = time.monotonic()
    assert indexer.stop() == 0
    assert time.monotonic() - started < 5
    assert queue.depth() == 50
    assert "unconfirmed events stay queued" in indexer.log.read_text()


def test_sigterm_while_idle_exits_0(es_server, settings, spawn):
    indexer = spawn(env_of(settings, es_server.url), "indexer")  # started: its SIGTERM handler is in place
    assert indexer.stop() == 0


def test_direct_mode_indexes_before_answering(es, es_server, settings, spawn):
    env = {**env_of(settings, es_server.url), "UQCROWD_MODE": "direct"}
    backend = spawn(env)
    post_all(backend.url, [event(n) for n in range(10)] + [event(3)])
    assert count(es, settings) == 10
    assert requests.get(f"{backend.url}/logger/ready", timeout=5).status_code == 200
    dead = requests.post(f"{backend.url}/logger/insert", data=orjson.dumps(event(99, sequence_number="x")), timeout=5)
    assert dead.status_code == 202


def test_direct_mode_with_elasticsearch_unreachable_is_503(settings, spawn):
    backend = spawn({**env_of(settings, "http://127.0.0.1:9"), "UQCROWD_MODE": "direct"})
    response = requests.post(f"{backend.url}/logger/insert", data=orjson.dumps(event(1)), timeout=10)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert requests.get(f"{backend.url}/logger/ready", timeout=5).status_code == 503


def test_metrics_are_the_same_from_every_backend(es, es_server, settings, spawn):
    env = env_of(settings, es_server.url)
    one, two = spawn(env), spawn(env)
    post_all(one.url, [event(n) for n in range(7)])
    requests.post(f"{two.url}/logger/insert", data=b"nope", timeout=5)
    texts = [requests.get(f"{b.url}/logger/metrics", timeout=5).text for b in (one, two)]
    counted = [[line for line in text.splitlines() if "lag_seconds " not in line] for text in texts]
    assert counted[0] == counted[1]
    assert "uqcrowd_events_accepted_total 7.0" in texts[0]
    assert 'uqcrowd_requests_rejected_total{reason="not_json"} 1.0' in texts[0]
    assert "uqcrowd_queue_depth 7.0" in texts[0]
    assert "uqcrowd_indexer_lag_seconds" in texts[0]
    spawn(env, "indexer")
    wait_for_count(es, settings, 7)
    wait_until(
        lambda: "uqcrowd_events_indexed_total 7.0" in requests.get(f"{one.url}/logger/metrics").text,
        10,
        "indexed counter",
    )


@pytest.mark.parametrize("port_arg", ["0", "70000", "abc"])
def test_entry_point_rejects_bad_ports(port_arg):
    import subprocess
    import sys

    from tests.support.services import LOGGER

    result = subprocess.run([sys.executable, str(LOGGER), port_arg], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "neither a port" in result.stderr
