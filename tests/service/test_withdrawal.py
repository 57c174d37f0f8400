"""A withdrawal that sticks: once `uqcrowd-log withdraw` has run, nothing of the worker's is stored again,
by any path (ingest, the queue, dead letters, replay, import), and `--undo` lets new events in again.
Against a real Redis, Elasticsearch, backend and indexer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
import requests
from click.testing import CliRunner

from harness.services import wait_until
from tests.service.conftest import env_of
from tests.service.test_indexer import all_documents, closed_today, event, post_all, wait_for_count
from uqcrowd_log.cli import main
from uqcrowd_log.events import Invalid, Prepared, prepare
from uqcrowd_log.queue.producer import WorkerWithdrawn

W = "A1WITHDRAWN0W"  # an MTurk worker id
PROLIFIC = "5f1e2d3c4b5a69788796a5b4"  # a Prolific PID: the same field


@pytest.fixture
def audit(tmp_path):
    path = tmp_path / "audit.log"
    path.touch(mode=0o600)  # the role creates it, root-only
    return path


def cli(settings, es_server, audit, *args: str):
    env = {**env_of(settings, es_server.url), "UQCROWD_AUDIT_LOG": str(audit)}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def of(worker: str, n: int, session: str = "s") -> dict:
    return event(n, session=f"{session}-{worker}", worker_id=worker)


def workers(docs: list[dict]) -> dict[str, int]:
    found: dict[str, int] = {}
    for doc in docs:
        found[doc.get("worker_id")] = found.get(doc.get("worker_id"), 0) + 1
    return found


def counter(url: str, name: str) -> float:
    text = requests.get(f"{url}/logger/metrics", timeout=5).text
    line = next((x for x in text.splitlines() if x.startswith(f"{name} ")), f"{name} 0")
    return float(line.split()[1])


def test_events_queued_before_the_withdrawal_are_dropped_when_elasticsearch_takes_events_again(
    es, es_server, settings, spawn, queue, audit
):
    """W's events and another worker's wait in the queue, held by an indexer that Elasticsearch refuses
    (today's index closed); W withdraws; the index opened again: the same indexer, trying again,
    indexes the other worker's events and drops W's."""
    index = closed_today(es, settings)
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [of(W, n) for n in range(100)] + [of("B2OTHER", n) for n in range(100)], batch=50)
    wait_until(
        lambda: "uqcrowd_indexer_fault{" in requests.get(f"{backend.url}/logger/metrics", timeout=5).text, 30, "held"
    )
    done = cli(settings, es_server, audit, "withdraw", "--worker-id", W)
    assert done.exit_code == 0, done.output
    es.indices.open(index=index)
    wait_for_count(es, settings, 100, timeout=90)
    wait_until(lambda: queue.depth() == 0, 30, "queue drained")
    assert workers(all_documents(es, settings)) == {"B2OTHER": 100}
    assert counter(backend.url, "uqcrowd_events_withdrawn_total") == 100


def test_a_withdrawn_workers_events_are_answered_and_never_stored(es, es_server, settings, spawn, queue, audit):
    """After the withdrawal, a page of W (e.g. one that was offline and sends what it kept) is answered
    202 (so it forgets them) and nothing is stored; a Prolific PID works the same; others' events are."""
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    for worker in (W, PROLIFIC):
        assert cli(settings, es_server, audit, "withdraw", "--worker-id", worker).exit_code == 0
    mixed = [of(W, 1), of("B2OTHER", 1), of(PROLIFIC, 1), of(W, 2)]
    answer = requests.post(f"{backend.url}/logger/insert", data=orjson.dumps(mixed), timeout=10)
    assert (answer.status_code, answer.json()["accepted"]) == (202, 4)
    only = requests.post(f"{backend.url}/logger/insert", data=orjson.dumps([of(W, 3)]), timeout=10)
    assert (only.status_code, only.json()) == (202, {"accepted": 1, "rejected": 0})
    wait_for_count(es, settings, 1)
    assert workers(all_documents(es, settings)) == {"B2OTHER": 1}
    assert counter(backend.url, "uqcrowd_events_withdrawn_total") == 4
    assert counter(backend.url, "uqcrowd_events_accepted_total") == 1  # dropped at the door: never queued


def test_the_insert_checks_the_register_in_the_same_step_and_queues_nothing_of_a_withdrawn_worker(queue):
    """The backends' one round trip: the insert's script reads the register before appending, so a
    withdrawal that lands between a backend's check and its insert cannot let the events through."""
    queue.client.sadd(queue.keys.withdrawn, W)
    events = prepare([of("B2OTHER", 1), of(W, 1)], datetime.now(UTC), None)
    with pytest.raises(WorkerWithdrawn):
        queue.producer.put(events, 10**9, ["B2OTHER", W])
    assert (queue.depth(), queue.queued_bytes(), queue.counters().get("accepted", 0)) == (0, 0, 0)
    assert queue.producer.put(events[:1], 10**9, ["B2OTHER"]) > 0
    assert queue.depth() == 1


def test_the_direct_mode_stores_nothing_of_a_withdrawn_worker_either(es, es_server, settings, spawn, audit):
    """UQCROWD_MODE=direct (the original's: indexed before the answer) reads the same register."""
    backend = spawn({**env_of(settings, es_server.url), "UQCROWD_MODE": "direct"})
    assert cli(settings, es_server, audit, "withdraw", "--worker-id", W).exit_code == 0
    mixed = [of(W, 1), of("B2OTHER", 1), of(W, 2)]
    answer = requests.post(f"{backend.url}/logger/insert", data=orjson.dumps(mixed), timeout=10)
    assert (answer.status_code, answer.json()["accepted"]) == (202, 3)
    wait_for_count(es, settings, 1)
    assert workers(all_documents(es, settings)) == {"B2OTHER": 1}


def test_the_withdrawal_empties_the_side_lists_and_replay_and_import_bring_nothing_back(
    es, es_server, settings, spawn, queue, audit, tmp_path
):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [of(W, n) for n in range(10)] + [of("B2OTHER", n) for n in range(10)])
    wait_for_count(es, settings, 20)
    exported = tmp_path / "before.ndjson"
    assert cli(settings, es_server, audit, "export", "-o", str(exported)).exit_code == 0
    # W's and another worker's events set aside: refused by Elasticsearch (dead letters), or at the door.
    queue.side_lists.dead_letter([(_prepared(of(W, 50)), "400 refused"), (_prepared(of("B2OTHER", 50)), "400 refused")])
    raw = {"worker_id": W, "log_type": 7}
    queue.producer.quarantine(
        [Invalid(0, "bad_field", "log_type", orjson.dumps(raw)), Invalid(1, "not_json", "x", b'{"a":1')], "t", None
    )
    queue.producer.quarantine(
        [Invalid(0, "not_json", "truncated", f'{{"worker_id": "{W}", "log_ty'.encode())], "t", None
    )
    done = cli(settings, es_server, audit, "withdraw", "--worker-id", W)
    assert done.exit_code == 0, done.output
    assert "removed 10 documents of worker A1WITHDRAWN0W (0 remain), 1 dead letters and 2 quarantined" in done.output
    assert [json.loads(r["document"])["worker_id"] for r in queue.side_lists.dead_letter_records()] == ["B2OTHER"]
    assert [r["event"] for r in queue.side_lists.quarantine_records()] == ['{"a":1']
    started, finished = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (started["event"], started["planned"]) == ("withdrawal started", 10)
    assert (finished["deleted"], finished["dead_letters"], finished["quarantine"]) == (10, 1, 2)
    replayed = cli(settings, es_server, audit, "dead-letters", "replay")
    assert "1 dead letters back in the queue" in replayed.output
    imported = cli(settings, es_server, audit, "import", str(exported))
    assert "10 of withdrawn workers left out" in imported.output, imported.output
    wait_for_count(es, settings, 11)  # the other worker's 10 and their dead letter replayed; nothing of W
    assert workers(all_documents(es, settings)) == {"B2OTHER": 11}


def test_undo_lets_the_workers_new_events_in_and_brings_nothing_back(es, es_server, settings, spawn, audit):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    post_all(backend.url, [of(W, n) for n in range(5)])
    wait_for_count(es, settings, 5)
    assert cli(settings, es_server, audit, "withdraw", "--worker-id", W).exit_code == 0
    undone = cli(settings, es_server, audit, "withdraw", "--undo", W)
    assert undone.exit_code == 0, undone.output
    assert f"worker {W} taken out of the withdrawn register" in undone.output
    post_all(backend.url, [of(W, n, session="new") for n in range(3)])
    wait_for_count(es, settings, 3)
    assert {doc["session_id"] for doc in all_documents(es, settings)} == {f"new-{W}"}  # the deleted stay deleted
    assert [json.loads(line)["event"] for line in audit.read_text().splitlines()] == [
        "withdrawal started",
        "withdrawal done",
        "withdrawal undone",
    ]
    neither = cli(settings, es_server, audit, "withdraw")
    assert neither.exit_code == 2
    assert "give either --worker-id or --undo" in neither.output


def _prepared(document: dict) -> Prepared:
    return prepare([document], datetime.now(UTC), None)[0]
