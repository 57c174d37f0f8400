"""The stack under load, as `make bench` runs it: real Redis (its appendfsync as the redis role sets it)
and Elasticsearch (the integ-test-zip), the service's backends and indexers, the original design's
backends (seed_logger.py) or the minimal app, behind Debian's HAProxy rendered from the haproxy role's
template, driven by wrk (wrk/post.lua), all local processes on loopback. `Bench.run` is one run: its
rates, latencies, lost and duplicated events, indexing lag, and each process's CPU and memory."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests
import yaml
from elasticsearch import Elasticsearch

from bench.ceilings import MinimalBackend, cpu_seconds, rss_mb
from harness.queue_view import QueueView
from harness.services import (
    ElasticsearchServer,
    HaproxyServer,
    LoggerProcess,
    Process,
    RedisServer,
    free_port,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
DURATION = int(os.environ.get("BENCH_SECONDS", "10"))
HALF_RATE_SECONDS = int(os.environ.get("BENCH_HALF_RATE_SECONDS", "60"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
INDEXERS = int(os.environ.get("BENCH_INDEXERS", "1"))
WARM_UP_EVENTS = 100_000
TRACKER_BATCH = 20  # logger.js sends up to FLUSH_EVENTS = 20 events per request
CORES = os.cpu_count() or 1
# The roles' default rule (roles/logger/defaults/main.yml); BENCH_BACKENDS sets another, e.g. for the
# study at one backend per vCPU (the (b) runs name theirs: 1, 2, 4, 8).
DEFAULT_N = int(os.environ.get("BENCH_BACKENDS") or max(2, 2 * CORES))


class SeedBackend(Process):
    """bench/seed_logger.py: the original design on Flask's development server."""

    def __init__(self, workdir: Path, env: dict[str, str], mode: str) -> None:
        self.port, self.env, self.mode = free_port(), env, mode
        super().__init__(workdir / f"seed-{self.port}.out")

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "bench" / "seed_logger.py"), str(self.port), self.mode]

    def popen_options(self) -> dict[str, object]:
        return {"env": {**os.environ, **self.env}}

    def ready(self) -> bool:
        return requests.get(f"http://127.0.0.1:{self.port}/logger/insert", timeout=2).status_code == 405


# The role's HAProxy with its per-client limits far above wrk's load, which comes from one address: the
# tracking is measured, no request is refused by it (docs/performance/index.md).
UNREACHED_CLIENT_LIMITS = {
    "haproxy_client_max_requests": 10**9,
    "haproxy_client_max_connections": 10**6,
    "haproxy_client_max_bytes": 10**12,
}

WRK_THREADS = 2


def wrk(
    url: str,
    prefix: str,
    batch: int,
    seconds: int,
    connections: int,
    rate: float = 0,
    script: str = "post.lua",
    script_env: dict[str, str] | None = None,
) -> dict:
    """wrk with bench/wrk/post.lua: as fast as `connections` go, or `rate` requests/s on a fixed schedule
    (or with another script of bench/wrk/ and its environment)."""
    interval_ms = WRK_THREADS * 1000 / rate if rate else 0  # each thread's share of the schedule
    env = {**os.environ, "BATCH": str(batch), "PREFIX": prefix, "INTERVAL_MS": str(interval_ms), **(script_env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench/wrk" / script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
    figures = json.loads(line.removeprefix("BENCH "))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures["wrk_cpu_share"] = cpu / (wall * CORES)
    return figures


def role_fsync() -> str:
    """The redis role's appendfsync (always: a 202 once its events are on disk)."""
    return yaml.safe_load((ROOT / "roles/redis/defaults/main.yml").read_text())["redis_appendfsync"]


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.redis = RedisServer(work / "redis", options=("--appendfsync", role_fsync()))  # as the role sets it
        self.redis.start()
        archive = subprocess.run(
            [str(ROOT / "scripts/fetch-elasticsearch.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
        es_home = Path(tempfile.mkdtemp(prefix="uqcrowd-bench-es-", dir="/var/tmp"))
        es_home.chmod(0o755)
        self.es_home = es_home
        self.es_server = ElasticsearchServer(Path(archive), es_home)
        self.es_server.start()
        self.es = Elasticsearch(self.es_server.url, request_timeout=60)
        mappings = json.loads((ROOT / "roles/elasticsearch/files/event-mappings.json").read_text())
        self.es.indices.put_index_template(
            name="bench",
            index_patterns=["bench-*"],
            template={"settings": {"number_of_replicas": 0, "number_of_shards": 1}, "mappings": mappings},
        )
        self.r = redis.Redis.from_url(self.redis.url)
        self.replica: RedisServer | None = None  # started by replicate(True)
        self.waiting = False

    def replicate(self, wait: bool) -> None:
        """From now on the backends answer once a second Redis (a replica, started the first time) holds
        each insert too (UQCROWD_REDIS_REPLICAS=1), or once the primary alone has it."""
        if wait and self.replica is None:
            options = ("--appendfsync", role_fsync(), "--replicaof", "127.0.0.1", str(self.redis.port))
            self.replica = RedisServer(self.work / "replica", options=options)
            self.replica.start()
            in_sync = lambda: self.r.info("replication").get("slave0", {}).get("state") == "online"  # noqa: E731
            wait_until(in_sync, 30, "the replica in sync")
        self.waiting = wait

    def fsync(self, policy: str) -> None:
        """Redis's appendfsync from now on: `always` (a 202 only once its events are on disk) or `everysec`."""
        self.r.config_set("appendfsync", policy)

    def close(self) -> None:
        self.es_server.stop()
        if self.replica:
            self.replica.stop()
        self.redis.stop()
        shutil.rmtree(self.es_home, ignore_errors=True)

    def env(self, prefix: str) -> dict[str, str]:
        return {
            "UQCROWD_REDIS_URL": self.redis.url,
            "UQCROWD_ES_URL": self.es_server.url,
            "UQCROWD_INDEX_PREFIX": prefix,
            "UQCROWD_REDIS_PREFIX": prefix,
            "UQCROWD_INDEXER_CONSUMER": "bench",
            "UQCROWD_QUEUE_HIGH_WATER_BYTES": str(8 * 1024**3),
            "UQCROWD_REDIS_REPLICAS": "1" if self.waiting else "0",
        }

    def stored(self, prefix: str) -> tuple[int, int]:
        """(documents, distinct (session_id, sequence_number) among them) under prefix."""
        index = f"{prefix}-*"
        self.es.indices.refresh(index=index, allow_no_indices=True)
        docs = self.es.count(index=index, allow_no_indices=True)["count"]
        distinct, after = 0, None
        while True:
            composite = {
                "size": 10000,
                "sources": [{"s": {"terms": {"field": "session_id"}}}, {"n": {"terms": {"field": "sequence_number"}}}],
            }
            if after:
                composite["after"] = after
            result = self.es.search(index=index, size=0, aggs={"ids": {"composite": composite}}, allow_no_indices=True)
            buckets = result.get("aggregations", {}).get("ids", {})
            distinct += len(buckets.get("buckets", []))
            after = buckets.get("after_key")
            if not after:
                return docs, distinct

    def run(
        self,
        name: str,
        kind: str,
        n: int,
        batch: int = 1,
        seconds: int = DURATION,
        connections: int = CONNECTIONS,
        rate: float = 0,
        script: str = "post.lua",
        script_env: dict[str, str] | None = None,
        proxy_settings: dict[str, object] | None = None,
        proxy_without: tuple[str, ...] = (),
    ) -> dict:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("'", "p")).strip("-")[:40]
        prefix = f"bench-{slug}-{int(time.time())}"
        env = self.env(prefix)
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        if kind == "stack":
            backends = [LoggerProcess(logs, env) for _ in range(n)]
            workers = [
                LoggerProcess(logs, env | {"UQCROWD_INDEXER_CONSUMER": f"bench-{i + 1}"}, "indexer")
                for i in range(INDEXERS)
            ]
        elif kind == "minimal":
            backends, workers = [MinimalBackend(logs) for _ in range(n)], []
        else:
            backends = [SeedBackend(logs, env, kind) for _ in range(n)]
            workers = []
        for process in backends + workers:
            process.start()
        proxy = HaproxyServer(
            logs,
            [b.port for b in backends],
            UNREACHED_CLIENT_LIMITS if proxy_settings is None else proxy_settings,
            proxy_without,
        )
        proxy.start()
        queue = QueueView(self.r, prefix)  # the service's own view of the queue: depth, oldest event's age
        backlog: list[int] = []
        lags: list[float] = []
        sampling = threading.Event()
        watched = {f"backend {i + 1}": b.proc.pid for i, b in enumerate(backends)}
        watched |= {f"indexer {i + 1}": w.proc.pid for i, w in enumerate(workers)}
        watched |= {"redis": self.redis.proc.pid, "elasticsearch": self.es_server.proc.pid}
        if self.waiting and self.replica and self.replica.proc:
            watched["redis replica"] = self.replica.proc.pid
        watched["haproxy"] = proxy.proc.pid
        rss: dict[str, float] = {}
        cpu_before = {what: cpu_seconds(pid) for what, pid in watched.items()}

        def sample() -> None:
            while not sampling.wait(1):
                now = queue.now()
                backlog.append(now.depth)
                if kind == "stack":  # indexing lag: how long the oldest unconfirmed event has been queued
                    lags.append(now.oldest_age_seconds)
                for what, pid in watched.items():
                    rss[what] = max(rss.get(what, 0.0), rss_mb(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            load = wrk(proxy.url, prefix, batch, seconds, connections, rate, script, script_env)
        finally:
            cpu = {what: cpu_seconds(pid) - cpu_before[what] for what, pid in watched.items()}
            sampling.set()
        drain_started = time.monotonic()
        if kind == "stack":
            wait_until(lambda: queue.depth() == 0, 300, "queue drained", interval=0.2)
        drain = time.monotonic() - drain_started
        for process in [proxy, *backends, *workers]:
            process.stop()
        accepted = load.get("events", load["ok"] * batch)  # a script that counts the events answered says how many
        docs, distinct = self.stored(prefix) if kind != "minimal" else (accepted, accepted)  # L1 keeps nothing
        result = {
            "name": name,
            "kind": kind,
            "backends": n,
            "batch": batch,
            "connections": connections,
            "seconds": load["seconds"],
            "requests_per_s": load["ok"] / load["seconds"],
            "events_per_s": accepted / load["seconds"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "non_2xx": load["non_2xx"],
            "socket_errors": load["errors"],
            "statuses": load.get("statuses", {}),  # by code, from the scripts that count them
            "error_kinds": load.get("error_kinds", {}),
            "events_accepted": accepted,
            "documents": docs,
            "lost": max(0, accepted - distinct),
            "duplicated": docs - distinct,
            "stored_unconfirmed": max(0, distinct - accepted),
            "drain_s": drain,
            "lag_p95_s": p95(lags) if kind == "stack" else None,
            "wrk_cpu_share": load["wrk_cpu_share"],
            "backlog_max": max(backlog, default=0),
            "backlog_samples": backlog,
            "backlog_growth_per_s": growth(backlog),
            "peak_rss_mb": {what: round(mb, 1) for what, mb in rss.items()},
            "cpu_share": {what: round(used / (load["seconds"] * CORES), 3) for what, used in cpu.items()},
            "cpu_us_per_request": {what: round(used * 1e6 / max(1, load["ok"]), 1) for what, used in cpu.items()},
        }
        if kind == "cache":
            result["left_in_redis_list"] = int(self.r.llen(f"{prefix}:seed-cache"))
        print(
            f"  {name}: {result['requests_per_s']:.0f} req/s, {result['events_per_s']:.0f} events/s, "
            f"p99 {result['p99_ms']:.1f} ms, lost {result['lost']}, dup {result['duplicated']}",
            flush=True,
        )
        return result


def p95(samples: list[float]) -> float | None:
    if len(samples) < 2:
        return samples[0] if samples else None
    return statistics.quantiles(samples, n=20)[-1]


def growth(samples: list[int]) -> float:
    """Events per second the queue grew by over the run (least squares over the 1 s samples)."""
    if len(samples) < 3:
        return 0.0
    return statistics.linear_regression(range(len(samples)), samples).slope
