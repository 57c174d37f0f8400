"""The browser tracker in headless Chromium: a task page on another origin records a session."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.service.conftest import env_of
from tests.service.test_indexer import count
from tests.support.services import free_port, wait_until

PAGE = """<!doctype html>
<html><head><title>task</title>
<script>var exp_id_preDefined = "exp-42";</script>
<script src="{backend}/logger/fingerprint.js"></script>
<script src="{backend}/logger/logger.js"></script>
</head><body>
<button id="answer">Answer</button>
<select id="choice"><option>a</option><option>b</option></select>
</body></html>
"""


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
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are missing: run scripts/install-test-deps.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield chrome
    chrome.quit()


def test_page_with_tracker_records_start_click_and_end_of_session(es, es_server, settings, spawn, task_page, browser):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    directory, origin = task_page
    (directory / "task.html").write_text(PAGE.format(backend=backend.url))

    browser.get(f"{origin}/task.html?workerId=W1&hitId=H1&assignmentId=A1")
    session_id = browser.execute_script("return window.session_id")
    browser.find_element(By.ID, "answer").click()
    browser.get("about:blank")  # pagehide: End Session goes out with sendBeacon

    index = f"{settings.index_prefix}-*"
    wait_until(lambda: count(es, settings) >= 4, 30, "tracker events", interval=0.5)
    wait_until(lambda: _kinds(es, index) >= {"Start Session", "click", "End Session"}, 15, "end of session")
    hits = es.search(index=index, size=100, query={"term": {"session_id": session_id}})["hits"]["hits"]
    docs = [h["_source"] for h in hits]
    assert {d["worker_id"] for d in docs} == {"W1"}
    assert {d["assignment_id"] for d in docs} == {"A1"}
    assert {d["exp_id"] for d in docs} == {"exp-42"}
    click = next(d for d in docs if d["log_type"] == "mouse_event")
    assert click["content"]["mouse_event"] == "click"
    assert click["content"]["details"]["id"] == "answer"
    sequence = sorted(d["sequence_number"] for d in docs)
    assert sequence == list(range(len(docs)))  # nothing lost between the browser and Elasticsearch
    assert any(d["content"].get("browser_event") == "fingerprint" for d in docs)


def _kinds(es, index: str) -> set[str]:
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=100)["hits"]["hits"]
    kinds = set()
    for hit in hits:
        content = hit["_source"]["content"]
        kinds.add(content.get(hit["_source"]["log_type"]))
    return kinds
