"""The indexer and direct mode against real Redis and Elasticsearch processes."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime

import orjson
import redis
import requests

from harness.services import RedisServer, free_port, wait_until
from harness.watermarks import free_space_watermarks, unset
from tests.service.conftest import env_of
from uqcrowd_log.completeness import session_reports
from uqcrowd_log.events import Prepared
from uqcrowd_log.queue.keys import GROUP

# The browser time of every test event: the index day follows it (so does today_index).
BROWSER_TIME = datetime.now(UTC)


def today_index(settings) -> str:
    return f"{settings.es.index_prefix}-{BROWSER_TIME:%Y-%m-%d}"


def event(n: int, session: str = "s1", **extra) -> dict:
    return {
        "log_type": "message",
        "sequence_number": n,
        "session_id": session,
        "browser_time": BROWSER_TIME.isoformat(timespec="milliseconds"),
        "content": {"message": f"event {n}"},
        **extra,
    }


def all_documents(es, settings) -> list[dict]:
    """Every stored document of the test, in constant memory per page (search_after on the id)."""
    index = f"{settings.es.index_prefix}-*"
    es.indices.refresh(index=index)
    found, after = [], None
    while True:
        page = es.search(index=index, size=5000, sort=[{"event_id": "asc"}], search_after=after)["hits"]["hits"]
        if not page:
            return found
        found += [hit["_source"] for hit in page]
        after = page[-1]["sort"]


def count(es, settings) -> int:
    """Documents stored so far (wait_until reads a 503, an index whose shard is still starting, as not yet)."""
    index = f"{settings.es.index_prefix}-*"
    once = es.options(max_retries=0)  # the callers poll: a retry's backoff would only delay the next look
    once.indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
    return once.count(index=index, allow_no_indices=True, ignore_unavailable=True)["count"]


def wait_for_count(es, settings, expected: int, timeout: float = 60) -> None:
    wait_until(lambda: count(es, settings) >= expected, timeout, f"{expected} documents", interval=0.5)
    time.sleep(0.5)  # anything extra (a duplicate) would arrive now
    assert count(es, settings) == expected


def held(queue) -> int:
    """Entries an indexer read and has not acknowledged (0 before any indexer ran)."""
    try:
        return queue.client.xpending(queue.stream, GROUP)["pending"]
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


def test_with_one_node_of_the_list_down_the_indexer_uses_the_next(es, es_server, settings, spawn, queue):
    """UQCROWD_ES_URL lists a cluster's nodes: one that nothing answers (first) costs no event."""
    env = env_of(settings, f"http://127.0.0.1:{free_port()},{es_server.url}")
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [event(n) for n in range(200)], batch=50)
    wait_for_count(es, settings, 200)
    assert count(es, settings) == 200
    assert queue.dead_letter_depth() == 0


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
    env = env_of(settings.changed(indexer={"linger_ms": 0}), es_server.url)
    backend = spawn(env)
    total = 20_000
    post_all(backend.url, [event(n, session=f"s{n % 7}") for n in range(total)], batch=500)
    env["UQCROWD_INDEXER_BATCH_EVENTS"] = "500"
    first = spawn(env, "indexer")
    wait_until(lambda: count(es, settings) > 0, 60, "first documents", interval=0.02)
    # Frozen, then killed, while it holds a batch it read and has not acknowledged (between two batches
    # it holds none: let it run a few milliseconds more).
    for _ in range(500):
        first.signal(signal.SIGSTOP)
        if held(queue) > 0:
            break
        first.signal(signal.SIGCONT)
        time.sleep(0.005)
    assert held(queue) > 0, "the indexer never held a batch"
    first.signal(signal.SIGKILL)
    first.proc.wait()
    killed_at = count(es, settings)
    assert 0 < killed_at < total, "the kill should land mid-stream"
    assert held(queue) > 0  # the batch it held when killed
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
    letters = [orjson.loads(x) for x in queue.client.lrange(queue.keys.dead_letters, 0, -1)]
    assert {orjson.loads(x["document"])["sequence_number"] for x in letters} == {"not a number", 4}
    assert all(x["error"].startswith("400 document_parsing_exception") for x in letters)
    assert queue.counters()["dead_lettered"] == 2
    post_all(backend.url, [event(5)])  # the queue is not blocked
    wait_for_count(es, settings, 3)


def test_a_queue_left_by_the_one_entry_per_event_format_drains_and_counts_right(es, es_server, settings, spawn, queue):
    """Before an entry held a request's events, each event was an entry of its own (`id`, `day`, `doc`),
    counted as accepted by the stream's entries-added: such a queue drains beside new entries."""
    day = f"{BROWSER_TIME:%Y-%m-%d}"
    for n in range(3):
        document = orjson.dumps(event(n, session="earlier"))
        queue.client.xadd(queue.stream, {"id": f"earlier-{n}", "day": day, "doc": document})
        queue.client.incrby(queue.keys.queued_bytes, len(document))
    assert queue.depth() == 3  # not in the events counter: the entries' number
    env = env_of(settings, es_server.url)
    post_all(spawn(env).url, [event(n) for n in range(5)])
    assert (queue.client.xlen(queue.stream), queue.depth()) == (4, 5)  # the earlier events are not counted
    spawn(env, "indexer")
    wait_for_count(es, settings, 8)
    wait_until(lambda: queue.client.xlen(queue.stream) == 0, 10, "queue drained")
    assert (queue.depth(), queue.queued_bytes()) == (0, 0)
    counters = queue.counters()
    assert (counters["accepted"], counters["indexed"]) == (8, 8)


def test_sigterm_exits_cleanly_and_hands_back_its_batch(es_server, settings, spawn, queue):
    env = env_of(settings, "http://127.0.0.1:9")  # nothing listens: the batch stays held, in backoff
    backend = spawn(env)
    post_all(backend.url, [event(n) for n in range(50)], batch=10)
    indexer = spawn(env, "indexer")
    wait_until(lambda: held(queue) == 5, 10, "batch held")  # 5 requests, 5 entries
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


def test_a_bulk_refused_whole_is_split_and_only_the_culprit_is_dead_lettered(es, es_server, settings, spawn, queue):
    """Elasticsearch refuses requests over http.max_content_length (2 MB here) whole, with a 413."""
    now = f"{BROWSER_TIME:%Y-%m-%d}"
    events = [
        Prepared(f"e{n}", now, orjson.dumps({**event(n if n < 300 else n + 1), "pad": "x" * 10_000}))
        for n in range(600)
    ]
    giant = Prepared("giant", now, orjson.dumps({**event(300), "pad": "y" * 2_500_000}))
    queue.producer.put([*events[:300], giant, *events[300:]], 10**10)
    indexer = spawn(env_of(settings, es_server.url), "indexer")  # 5 MiB batches: refused whole
    wait_for_count(es, settings, 600, timeout=120)
    wait_until(lambda: queue.depth() == 0, 30, "queue drained")
    [letter] = queue.side_lists.dead_letter_records()
    assert letter["event_id"] == "giant"
    [report] = session_reports(all_documents(es, settings))
    assert (report.stored, report.missing, report.first_missing, report.duplicates) == (600, 1, [300], 0)
    assert letter["error"].startswith("refused alone: HTTP 413")
    assert "dead-lettered event giant" in indexer.log.read_text()


def closed_today(es, settings) -> str:
    """Today's index, created and closed: Elasticsearch refuses its events (a set-up fault) until opened."""
    index = today_index(settings)
    es.indices.create(index=index)
    es.indices.close(index=index)
    return index


def test_a_closed_index_pauses_indexing_with_an_alert_and_loses_nothing(es, es_server, settings, spawn, queue):
    index = closed_today(es, settings)
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [event(n) for n in range(50)])
    metrics = f"{backend.url}/logger/metrics"
    wait_until(lambda: "uqcrowd_indexer_fault{" in requests.get(metrics, timeout=5).text, 30, "fault reported")
    assert "index_closed_exception" in requests.get(metrics, timeout=5).text
    assert (queue.depth(), queue.dead_letter_depth()) == (50, 0)  # a set-up fault is not the events' fault
    es.indices.open(index=index)
    wait_for_count(es, settings, 50, timeout=90)
    wait_until(lambda: "uqcrowd_indexer_fault{" not in requests.get(metrics, timeout=5).text, 30, "fault cleared")


def test_a_disk_at_its_flood_stage_pauses_indexing_with_an_alert_and_heals_by_itself(
    es, es_server, settings, spawn, queue
):
    """Elasticsearch's own disk monitor, its watermarks set above the disk's free space: at the flood
    stage it blocks writes to the node's indices; once the disk has room again (watermarks below the
    free space) it lifts the block itself, and indexing resumes with nobody stepping in."""
    index = today_index(settings)
    es.indices.create(index=index)
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    try:
        disk_watermarks(es, flood="1000tb")  # less free than that: the flood stage, always
        wait_until(lambda: write_blocked(es, index), 60, "flood-stage block")
        post_all(backend.url, [event(n) for n in range(50)])  # accepted meanwhile: they wait in Redis
        metrics = f"{backend.url}/logger/metrics"
        wait_until(lambda: "uqcrowd_indexer_fault{" in requests.get(metrics, timeout=5).text, 30, "fault reported")
        assert "cluster_block_exception" in requests.get(metrics, timeout=5).text
        assert (queue.depth(), queue.dead_letter_depth()) == (50, 0)  # kept: not the events' fault
        disk_watermarks(es, flood="1kb")  # space freed
        wait_until(lambda: not write_blocked(es, index), 60, "block lifted")
    finally:
        disk_watermarks(es, flood="1kb")
        wait_until(lambda: not write_blocked(es, index), 60, "block lifted")
        es.cluster.put_settings(persistent=unset())
    wait_for_count(es, settings, 50, timeout=90)
    wait_until(lambda: "uqcrowd_indexer_fault{" not in requests.get(metrics, timeout=5).text, 30, "fault cleared")
    assert queue.dead_letter_depth() == 0


def disk_watermarks(es, flood: str) -> None:
    es.cluster.put_settings(persistent=free_space_watermarks(flood))


def write_blocked(es, index: str) -> bool:
    blocks = es.indices.get_settings(index=index, name="index.blocks.*").get(index, {}).get("settings", {})
    return blocks.get("index", {}).get("blocks", {}).get("read_only_allow_delete") == "true"


def test_a_full_dead_letter_list_drops_its_oldest_counted_and_indexing_goes_on(es, es_server, settings, spawn, queue):
    """Events anyone can make Elasticsearch refuse must not stop indexing for everyone else."""
    env = {**env_of(settings, es_server.url), "UQCROWD_DEAD_LETTER_MAX": "2"}
    backend = spawn(env)
    spawn(env, "indexer")
    bad = [event(n, sequence_number=f"bad {n}") for n in range(3)]
    post_all(backend.url, [*bad, event(10), event(11)])
    wait_for_count(es, settings, 2)
    wait_until(lambda: queue.depth() == 0, 30, "queue drained")
    kept = [orjson.loads(r["document"])["sequence_number"] for r in queue.side_lists.dead_letter_records()]
    assert kept == ["bad 1", "bad 2"]  # the oldest went
    metrics = requests.get(f"{backend.url}/logger/metrics", timeout=5).text
    assert "uqcrowd_events_dead_letter_dropped_total 1.0" in metrics
    assert "uqcrowd_dead_letter_limit 2.0" in metrics
    assert "uqcrowd_indexer_fault{" not in metrics
    _, dead_bytes = queue.side_bytes()
    assert dead_bytes == sum(len(orjson.dumps(r)) for r in queue.side_lists.dead_letter_records())


def test_an_indexer_in_backoff_keeps_its_entries_from_being_claimed(es, es_server, settings, spawn, queue):
    claim = {"UQCROWD_INDEXER_CLAIM_IDLE_MS": "1500"}
    stuck_env = {**env_of(settings, "http://127.0.0.1:9"), **claim, "UQCROWD_INDEXER_CONSUMER": "stuck"}
    backend = spawn(stuck_env)
    post_all(backend.url, [event(n) for n in range(30)], batch=10)
    stuck = spawn(stuck_env, "indexer")
    wait_until(lambda: held(queue) == 3, 10, "batch held")
    spawn({**env_of(settings, es_server.url), **claim, "UQCROWD_INDEXER_CONSUMER": "healthy"}, "indexer")
    time.sleep(5)  # over three claim periods: the stuck indexer renews its claim meanwhile
    owners = queue.client.xpending_range(queue.stream, GROUP, "-", "+", 100)
    assert {o["consumer"] for o in owners} == {b"stuck"}
    assert count(es, settings) == 0
    stuck.stop()  # gone for good: now its entries are claimed and indexed
    wait_for_count(es, settings, 30, timeout=60)


def test_dead_letters_replayed_after_a_fix_are_indexed(es, es_server, settings, spawn, queue):
    strict = {"dynamic": "strict", "properties": {"a": {"type": "long"}}}
    es.indices.create(index=today_index(settings), mappings=strict)
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [event(n, note="a field the strict mapping refuses") for n in range(5)])
    wait_until(lambda: queue.dead_letter_depth() == 5, 30, "dead letters")
    es.indices.delete(index=today_index(settings))  # the fix: the template's mappings (dynamic: false) again
    assert queue.side_lists.replay_dead_letters() == 5
    wait_for_count(es, settings, 5)
    counters = queue.counters()
    assert (counters["accepted"], counters["indexed"], counters["replayed"]) == (5, 5, 5)


def test_redis_at_maxmemory_answers_503_then_recovers_by_itself(es, es_server, settings, spawn, tmp_path):
    """Elasticsearch stopped while pages keep sending: Redis fills to maxmemory; once Elasticsearch
    is back the indexer drains it (acknowledging works at maxmemory) and the backends accept again."""
    own = RedisServer(tmp_path / "redis")
    own.start()
    try:
        own_settings = settings.changed(redis={"url": own.url})
        client = redis.Redis.from_url(own.url)
        client.config_set("maxmemory", client.info("memory")["used_memory"] + 4 * 1024 * 1024)
        client.config_set("maxmemory-policy", "noeviction")
        env = env_of(own_settings, es_server.url)
        backend = spawn(env)
        spawn(env, "indexer")
        es_server.stop()
        accepted, refusal = 0, None
        with requests.Session() as http:
            for start in range(0, 100_000, 100):
                batch = [event(n, pad="z" * 400) for n in range(start, start + 100)]
                response = http.post(f"{backend.url}/logger/insert", data=orjson.dumps(batch), timeout=10)
                if response.status_code != 202:
                    refusal = response
                    break
                accepted += 100
        assert refusal is not None, "Redis never filled"
        assert refusal.status_code == 503
        assert int(refusal.headers["Retry-After"]) > 0
        assert "maxmemory" in refusal.json()["error"]
        es_server.start()
        wait_for_count(es, own_settings, accepted, timeout=120)
        end = event(
            accepted, log_type="message", content={"message": "End Session", "details": {"events": accepted + 1}}
        )
        late = requests.post(f"{backend.url}/logger/insert", data=orjson.dumps(end), timeout=10)
        assert late.status_code == 202  # nobody stepped in
        wait_for_count(es, own_settings, accepted + 1)
        [report] = session_reports(all_documents(es, own_settings))
        assert report.complete, report
    finally:
        if not es_server.proc or es_server.proc.poll() is not None:
            es_server.start()
        own.stop()
