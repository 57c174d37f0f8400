"""Fixtures: one real Redis and one real Elasticsearch per test session; per-test key and index prefixes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from elasticsearch import Elasticsearch
from flask.testing import FlaskClient
from selenium import webdriver

from harness.browser import chromium
from harness.queue_view import QueueView
from harness.report import rows_file
from harness.services import ROOT, ElasticsearchServer, LoggerProcess, RedisServer, free_port
from uqcrowd_log.config import Settings
from uqcrowd_log.web import create_app

TEST_INDEX_PATTERN = "uqt-*"
MAPPINGS = ROOT / "roles" / "elasticsearch" / "files" / "event-mappings.json"


def pytest_configure(config: pytest.Config) -> None:
    """The browser and internet tables (docs/results/) hold this run's rows only (the controller clears them
    before any worker starts)."""
    if not hasattr(config, "workerinput"):
        rows_file("browser").unlink(missing_ok=True)
        rows_file("internet").unlink(missing_ok=True)
        rows_file("power").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def es_server(workdir: Path) -> Iterator[ElasticsearchServer]:
    archive = (
        os.environ.get("UQCROWD_ES_ARCHIVE")
        or subprocess.run(
            [str(ROOT / "scripts" / "fetch-elasticsearch.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    # Not under pytest's tmp dir: that is root-only, and Elasticsearch runs as an unprivileged user.
    home = Path(tempfile.mkdtemp(prefix="uqcrowd-es-", dir="/var/tmp"))
    home.chmod(0o755)
    # 2 MB, below the indexer's 5 MiB batches, as an operator might set it: big bulks are refused whole.
    server = ElasticsearchServer(Path(archive), home, max_content_length="2mb", quick_start=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def es(es_server: ElasticsearchServer) -> Elasticsearch:
    client = Elasticsearch(es_server.url, request_timeout=30)
    # The same mappings the elasticsearch role installs, for the test indices.
    client.indices.put_index_template(
        name="uqcrowd-test",
        index_patterns=[TEST_INDEX_PATTERN],
        template={
            "settings": {"number_of_replicas": 0, "number_of_shards": 1},
            "mappings": json.loads(MAPPINGS.read_text()),
        },
    )
    return client


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    """A fresh key space and index prefix per test, so tests never see each other's events."""
    tag = uuid.uuid4().hex[:10]
    return Settings.from_env({}).changed(
        redis={"url": redis_server.url, "prefix": f"uqt-{tag}"},
        es={"index_prefix": f"uqt-{tag}"},
        indexer={"consumer": "test-indexer", "linger_ms": 50, "backoff_max_seconds": 2.0},
    )


@pytest.fixture
def queue(settings: Settings) -> QueueView:
    return QueueView(redis.Redis.from_url(settings.redis.url), settings.redis.prefix)


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def env_of(settings: Settings, es_url: str = "") -> dict[str, str]:
    """The UQCROWD_* environment that makes a process use these settings."""
    return {
        "UQCROWD_MODE": settings.ingest.mode,
        "UQCROWD_REDIS_URL": settings.redis.url,
        "UQCROWD_REDIS_PREFIX": settings.redis.prefix,
        "UQCROWD_INDEX_PREFIX": settings.es.index_prefix,
        "UQCROWD_ES_URL": es_url or settings.es.url,
        "UQCROWD_INDEXER_CONSUMER": settings.indexer.consumer,
        "UQCROWD_INDEXER_LINGER_MS": str(settings.indexer.linger_ms),
        "UQCROWD_INDEXER_BACKOFF_MAX_SECONDS": str(int(settings.indexer.backoff_max_seconds)),
        "UQCROWD_QUEUE_HIGH_WATER_BYTES": str(settings.queue.high_water_bytes),
    }


@pytest.fixture
def spawn(workdir: Path) -> Iterator[Callable[..., LoggerProcess]]:
    """Start logger processes (backends or indexers); all are stopped after the test."""
    started: list[LoggerProcess] = []

    def start(env: dict[str, str], what: str = "backend") -> LoggerProcess:
        process = LoggerProcess(workdir / "logger", env, what)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def task_page(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static page server on its own port, so the tracker posts cross-origin as in real tasks."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    chrome = chromium(tmp_path)
    yield chrome
    chrome.quit()
