"""The queue on more than one Redis: a 202 only once a replica holds the insert (WAIT), a primary cut
off from its replicas refusing writes (min-replicas-to-write), and Sentinel promoting a replica when the
primary dies, while a backend and two indexers (two logger hosts), which find the primary through the
Sentinels, go on; the entries a killed indexer held are claimed by the other across a promotion.
Real redis-server and redis-sentinel processes on loopback; a host's death is SIGKILL of its Redis."""

from __future__ import annotations

import contextlib
import itertools
import signal
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.report import record
from harness.services import RedisServer, SentinelServer, wait_until
from tests.service.conftest import env_of
from tests.service.test_indexer import all_documents, event
from uqcrowd_log.config import Settings
from uqcrowd_log.queue.keys import GROUP, Keys
from uqcrowd_log.web import create_app

PASSWORD = "queue-secret"
SERVICE = "uqcrowd"


def replica_of(primary: RedisServer, workdir: Path) -> RedisServer:
    return RedisServer(workdir, PASSWORD, ("--replicaof", "127.0.0.1", str(primary.port), "--masterauth", PASSWORD))


def client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5)


def replicating(primary: RedisServer, count: int) -> Callable[[], bool]:
    """`count` replicas in sync with the primary (not only connected: a replica loading its first copy is not)."""

    def check() -> bool:
        info = client(primary).info("replication")
        return sum(info.get(f"slave{i}", {}).get("state") == "online" for i in range(count + 2)) >= count

    return check


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary", PASSWORD, ("--masterauth", PASSWORD))
    primary.start()
    replica = replica_of(primary, tmp_path / "replica")
    replica.start()
    wait_until(replicating(primary, 1), 20, "the replica")
    yield primary, replica
    replica.signal(signal.SIGCONT)
    replica.stop()
    primary.stop()


def insert(app_client, n: int) -> tuple[int, dict]:
    answer = app_client.post("/logger/insert", json=event(n, "replicated"))
    return answer.status_code, answer.get_json()


def test_an_insert_is_answered_once_a_replica_holds_it_and_refused_when_none_does(pair):
    primary, replica = pair
    base = Settings.from_env({}).changed(redis={"url": primary.url, "replicas": 1, "replica_wait_ms": 500})
    refusing = create_app(base).test_client()
    accepting = create_app(base.changed(redis={"without_replica": "accept"})).test_client()
    stream = f"{base.redis.prefix}:events"
    assert insert(refusing, 0)[0] == 202
    assert client(replica).xlen(stream) == 1  # already there when the 202 was sent

    replica.signal(signal.SIGSTOP)  # the replica stops acknowledging (a host hung, or cut off)
    started = time.monotonic()
    status, body = insert(refusing, 1)
    waited = time.monotonic() - started
    assert (status, body["error"]) == (503, "the event store is unavailable, retry later"), body
    assert 0.5 <= waited < 5  # it waited for the replica, then gave up
    status, _ = insert(accepting, 2)
    assert status == 202  # the operator's choice: the primary's copy alone, counted
    metrics = accepting.get("/logger/metrics").get_data(as_text=True)
    assert "uqcrowd_inserts_unreplicated_total 1.0" in metrics, metrics

    replica.signal(signal.SIGCONT)
    wait_until(lambda: client(replica).xlen(stream) == 3, 10, "the replica catching up")


def test_a_primary_without_a_recent_replica_refuses_writes_even_when_accepting(pair):
    """min-replicas-to-write: the primary itself refuses, so a backend that still reaches it after it was
    cut off from its replicas (and the Sentinels promoted one) acknowledges nothing a promotion would drop."""
    primary, replica = pair
    client(primary).config_set("min-replicas-to-write", 1)
    client(primary).config_set("min-replicas-max-lag", 2)
    settings = Settings.from_env({}).changed(redis={"url": primary.url, "without_replica": "accept"})
    app = create_app(settings).test_client()
    assert insert(app, 0)[0] == 202
    replica.signal(signal.SIGSTOP)
    wait_until(lambda: insert(app, 1)[0] == 503, 20, "the primary refusing writes")  # once its lag is over 2 s
    with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
        client(primary).xadd(f"{settings.redis.prefix}:events", {"e": "1"})
    replica.signal(signal.SIGCONT)
    wait_until(lambda: insert(app, 2)[0] == 202, 20, "writes again")


class Load:
    """A page's way of sending: batches of 5 events, each sent again after a failure (0.2 s later) until
    answered 202; the time of every 202 and the count of every failure, by status."""

    def __init__(self, url: str) -> None:
        self.url, self.session = url, f"failover-{uuid.uuid4().hex[:8]}"
        self.accepted: list[float] = []
        self.failures: Counter[str] = Counter()
        self.sent = self.events = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        http = requests.Session()
        while not self.stop.is_set():
            body = orjson.dumps([event(self.events + i, self.session) for i in range(5)])
            while True:
                self.sent += 1
                try:
                    status = http.post(f"{self.url}/logger/insert", data=body, timeout=10).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                if status == 202:
                    self.accepted.append(time.monotonic())
                    self.events += 5
                    break
                self.failures[str(status)] += 1
                time.sleep(0.2)
            time.sleep(0.02)

    def longest_gap_around(self, moment: float) -> float:
        """The longest time with no 202, among the gaps that span `moment` or follow it within 30 s."""
        times = [t for t in self.accepted if moment - 5 <= t <= moment + 30]
        return max((b - a for a, b in itertools.pairwise(times) if b >= moment), default=0.0)


def topology(backend) -> tuple[str, int, int]:
    """(the primary, the replicas in sync, the Sentinels) as a backend's metrics say."""
    text = requests.get(f"{backend.url}/logger/metrics", timeout=10).text
    found = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    value = {sample.name: sample.value for sample in found}
    primary = next(sample.labels["address"] for sample in found if sample.name == "uqcrowd_redis_primary")
    return primary, int(value["uqcrowd_redis_replicas_in_sync"]), int(value["uqcrowd_redis_sentinels"])


def primary_port(sentinel: SentinelServer) -> int:
    sentinels = redis.Redis(port=sentinel.port, socket_timeout=2)
    return int(sentinels.sentinel_get_master_addr_by_name(SERVICE)[1])


def test_a_primary_killed_three_times_a_replica_is_promoted_and_every_202_is_stored_once(
    tmp_path, es, es_server, spawn, settings
):
    nodes = [RedisServer(tmp_path / "redis-0", PASSWORD, ("--masterauth", PASSWORD))]
    nodes[0].start()
    nodes += [replica_of(nodes[0], tmp_path / f"redis-{i}") for i in (1, 2)]
    sentinels = [SentinelServer(tmp_path / "sentinels", nodes[0].port, SERVICE, PASSWORD) for _ in range(3)]
    try:
        for process in [*nodes[1:], *sentinels]:
            process.start()
        wait_until(replicating(nodes[0], 2), 20, "two replicas")
        addresses = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        env = {
            **env_of(settings.changed(redis={"url": nodes[0].url.replace(str(nodes[0].port), "1")}), es_server.url),
            "UQCROWD_REDIS_SENTINELS": addresses,
            "UQCROWD_REDIS_SERVICE": SERVICE,
            "UQCROWD_REDIS_REPLICAS": "1",
        }  # the URL's port is unused (1): the Sentinels name the primary
        backend = spawn(env)
        claim = {"UQCROWD_INDEXER_CLAIM_IDLE_MS": "1500"}
        spawn({**env, **claim, "UQCROWD_INDEXER_CONSUMER": "logger-0"}, "indexer")
        doomed = spawn({**env, **claim, "UQCROWD_INDEXER_CONSUMER": "logger-1"}, "indexer")
        assert topology(backend) == (f"127.0.0.1:{nodes[0].port}", 2, 3)
        load = Load(backend.url)
        load.thread.start()
        wait_until(lambda: len(load.accepted) >= 20, 20, "the load")
        stream = Keys.of(settings.redis.prefix).stream
        gaps, promotions, held = [], [], []
        for round_ in range(1, 4):
            old = next(n for n in nodes if n.port == primary_port(sentinels[0]))
            # A logger host dies with entries read, then the primary: the other indexer claims them from
            # the new primary; the host rebuilt, its indexer reads under a new name.
            held.append(kill_holding(doomed, lambda o=old, r=round_: pending(client(o), stream, f"logger-{r}")))
            doomed = spawn({**env, **claim, "UQCROWD_INDEXER_CONSUMER": f"logger-{round_ + 1}"}, "indexer")
            killed = time.monotonic()
            old.proc.kill()  # the primary's host dies
            wait_until(lambda old=old: primary_port(sentinels[0]) != old.port, 30, "a promotion", interval=0.05)
            promotions.append(time.monotonic() - killed)
            wait_until(lambda k=killed: any(t > k for t in load.accepted), 30, "a 202 after the kill")
            time.sleep(3)
            gaps.append(load.longest_gap_around(killed))
            old.start()  # it returns: the Sentinels make it a replica of the new primary
            new = next(n for n in nodes if n.port == primary_port(sentinels[0]))
            wait_until(replicating(new, 2), 30, "the old primary back as a replica")
            assert client(old).info("replication")["role"] == "slave"
        load.stop.set()
        load.thread.join(30)
        wait_until(lambda: topology(backend) == (f"127.0.0.1:{primary_port(sentinels[0])}", 2, 3), 30, "in sync")
        stored = all_documents_when(es, settings, load.events)
        primary = client(next(n for n in nodes if n.port == primary_port(sentinels[0])))
        left = sum(pending(primary, stream, f"logger-{r}") for r in (1, 2, 3))
    finally:
        for process in [*sentinels, *nodes]:
            process.stop()
    ids = Counter((d["session_id"], d["sequence_number"]) for d in stored)
    lost = load.events - len(ids)
    duplicated = sum(n - 1 for n in ids.values())
    assert (lost, duplicated, left) == (0, 0, 0)
    record(
        "the primary killed (SIGKILL), three times: three Redis, three Sentinels (down after 1 s), WAIT for 1 replica",
        {"sent": load.sent, "failed": sum(load.failures.values()), "failures": dict(load.failures),
         "accepted": f"{load.events:,} events", "lost": lost, "duplicated": duplicated},
        f"promoted after {', '.join(f'{p:.1f}' for p in promotions)} s; no 202 for"
        f" {', '.join(f'{g:.1f}' for g in gaps)} s (median {statistics.median(gaps):.1f});"
        f" the old primary back as a replica each time; an indexer killed holding {', '.join(map(str, held))}"
        " entries just before each promotion: claimed by another after it",
        table="failover",
    )  # fmt: skip


def pending(primary: redis.Redis, stream: str, consumer: str) -> int:
    """The entries `consumer` read and has not acknowledged."""
    return len(primary.xpending_range(stream, GROUP, "-", "+", 10_000, consumername=consumer))


def kill_holding(indexer, held: Callable[[], int]) -> int:
    """SIGKILL the indexer at a moment it holds entries (stopped to look, let go on if it holds none):
    what it held is then left for another to claim. The number of entries it held."""
    for _ in range(200):
        indexer.signal(signal.SIGSTOP)
        if count := held():
            indexer.signal(signal.SIGKILL)
            return count
        indexer.signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the indexer never held an entry")


def all_documents_when(es, settings, expected: int, timeout: float = 120) -> list[dict]:
    documents: list[dict] = []

    def enough() -> bool:
        documents[:] = all_documents(es, settings)
        return len({d["sequence_number"] for d in documents}) >= expected

    with contextlib.suppress(TimeoutError):  # the assertion says what is missing
        wait_until(enough, timeout, f"{expected} documents", interval=1)
    time.sleep(1)
    return all_documents(es, settings)
