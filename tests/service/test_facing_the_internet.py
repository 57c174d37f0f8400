"""One client on the internet cannot stop a study for everyone: the haproxy role's per-client limits
and whole-body buffering, in front of a real backend, indexer and Elasticsearch, with a real worker's
page in headless Chromium from another address (every 127/8 address is this host's own; the abuser
binds 127.0.0.9, the browser and the worker's client are on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import requests

from harness.report import record
from harness.services import HaproxyServer
from tests.service.test_tracker import (  # noqa: F401 (fixtures)
    EDGE_PAGE,
    PRODUCE,
    edge,
    leave,
    open_task,
    row,
    seconds_until_stored,
    wait_complete,
)

ABUSER = "127.0.0.9"


# The abuser: its own process (its threads must not slow the test's browser driving), `connections`
# keep-alive connections from ABUSER posting for `seconds`; prints the count of each status.
_FLOOD = r"""
import collections, http.client, json, socket, sys, threading, time
source, port, connections, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
statuses, deadline = collections.Counter(), time.monotonic() + seconds
body = b'{"log_type": "message", "session_id": "flood", "content": {"message": "x"}}'
class Connection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), 10, (source, 0))
def one():
    connection = Connection("127.0.0.1", port, timeout=10)
    while time.monotonic() < deadline:
        try:
            connection.request("POST", "/logger/insert", body=body, headers={"Content-Type": "text/plain"})
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
        except OSError:
            statuses[0] += 1
            connection.close()
threads = [threading.Thread(target=one) for _ in range(connections)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(statuses))
"""


def start_flood(port: int, connections: int, seconds: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", _FLOOD, ABUSER, str(port), str(connections), str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def test_a_flood_from_one_address_is_answered_429_while_a_workers_page_loses_nothing(edge):  # noqa: F811
    chrome, front = edge["browser"], edge["front"]
    session = open_task(edge)
    flooding = start_flood(front.port, 32, 10)
    name = chrome.find_element("id", "name")
    rounds = 0
    while flooding.poll() is None:  # a worker typing and sending events meanwhile, for the flood's 10 s:
        name.send_keys("abc")  # each round sends at once and waits for its answer (not the 2 s timer,
        answered = len(chrome.execute_script("return window.__statuses"))  # which a busy machine stretches)
        chrome.execute_script("for (var i = 0; i < 5; i++) { send_log('message', 'busy', {n: i}); }")
        chrome.execute_script("window.uqcrowdLogger.flush()")
        deadline = time.monotonic() + 10
        while len(chrome.execute_script("return window.__statuses")) == answered and time.monotonic() < deadline:
            time.sleep(0.05)
        rounds += flooding.poll() is None
        time.sleep(0.5)
    flooded = Counter({int(status): n for status, n in json.loads(flooding.communicate(timeout=30)[0]).items()})
    during = list(chrome.execute_script("return window.__statuses"))
    leave(edge)
    [report] = wait_complete(edge, [session], 60)
    statuses = during
    assert flooded[429] > flooded[202] > 0
    assert flooded[202] <= 600  # in 10 s (haproxy_client_max_requests)
    assert rounds >= 3, statuses  # the worker's page sent, and was answered, while the flood went on
    assert set(statuses) == {202}, statuses  # and met no 429 nor 503
    assert front.counter("haproxy_backend_http_requests_total", "limit_requests") == flooded[429]
    internet_row(
        "flood: 32 connections for 10 s; the other client a worker's page in Chromium, typing",
        sent=sum(flooded.values()),
        refused=f"{flooded[429]:,} (429)",
        accepted=f"{report.stored} of {report.declared} (its {len(statuses)} requests all 202)",
        lost=report.missing,
        how=f"{flooded[202]} of the flood's requests accepted (the limit: 600 per 10 s); the session complete",
    )


def slow_bodies(port: int, count: int, results: list[tuple[str, float]]) -> None:
    """`count` connections that each send 20 kB of a 200 kB body, then a byte every 2 s, until HAProxy
    answers or closes; (its status line or "closed", seconds after the start) for each."""

    def one() -> None:
        started = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", port), 10, (ABUSER, 0))
        head = b"POST /logger/insert HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        sock.sendall(head + b"[" + b" " * 20_000)
        sock.settimeout(2)
        outcome = "no answer"
        while time.monotonic() - started < 60:
            try:
                answer = sock.recv(200)
                outcome = answer.split(b"\r\n")[0].decode() if answer else "closed"
                break
            except TimeoutError:
                try:
                    sock.send(b" ")
                except OSError:
                    outcome = "closed"
                    break
            except OSError:
                outcome = "closed"
                break
        sock.close()
        results.append((outcome, time.monotonic() - started))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_slow_bodies_take_no_backend_and_are_cut_while_another_client_is_served(edge):  # noqa: F811
    front = edge["front"]
    results: list[tuple[str, float]] = []
    abuser = threading.Thread(target=slow_bodies, args=(front.port, 96, results))
    abuser.start()
    time.sleep(1)  # every slow connection has sent its 20 kB
    latencies, statuses = [], []
    for n in range(20):  # the other client: one event every 0.5 s
        started = time.monotonic()
        event = {"log_type": "message", "session_id": "worker", "sequence_number": n, "content": {"message": "hi"}}
        statuses.append(requests.post(f"{front.url}/logger/insert", json=event, timeout=10).status_code)
        latencies.append(time.monotonic() - started)
        time.sleep(max(0.0, 0.5 - latencies[-1]))
    abuser.join()
    assert statuses == [202] * 20
    assert max(latencies) < 2
    outcomes = Counter(outcome for outcome, _ in results)
    assert outcomes == {"HTTP/1.1 429 Too Many Requests": 56, "HTTP/1.1 408 Request Time-out": 40}, outcomes
    held = [seconds for outcome, seconds in results if outcome.startswith("HTTP/1.1 408")]
    assert max(held) < 20  # timeout http-request 10 s, measured from the connection
    assert requests.get(f"{edge['backend'].url}/logger/metrics", timeout=5).status_code == 200
    internet_row(
        "96 slow bodies (20 kB of 100 kB, then a byte every 2 s); the other client an event every 0.5 s",
        sent=96,
        refused="56 (429 at once), 40 (408)",
        accepted="20 of 20",
        lost=0,
        how=f"no backend saw a slow body; the 40 held cut after {max(held):.0f} s at most;"
        f" the other client's slowest answer {max(latencies) * 1000:.0f} ms",
    )


def internet_row(case: str, sent: int, refused: str, accepted: str, lost: int, how: str) -> None:
    record(case, {"sent": sent, "failed": refused, "accepted": accepted, "lost": lost}, how, table="internet")


def test_a_page_over_its_own_limit_is_answered_429_and_loses_nothing(edge, workdir):  # noqa: F811
    """The tracker backs off on 429 and keeps its events: everything is stored once the rate allows."""
    strict = {"haproxy_client_max_requests": 2, "haproxy_client_window": "2s"}
    front = HaproxyServer(workdir / "haproxy-strict", [edge["backend"].port], strict)
    front.start()
    try:
        page = EDGE_PAGE.format(title="strict", front=front.url, next="done.html")
        (edge["directory"] / "strict.html").write_text(page)
        chrome = edge["browser"]
        chrome.get(f"{edge['origin']}/strict.html?workerId=W9&hitId=H9&assignmentId=A9")
        session = chrome.execute_script("return window.session_id")
        chrome.execute_script(PRODUCE, 2000, "s" * 100)  # about 300 kB: several requests in a row
        recovered = seconds_until_stored(edge, session, 2001)
        statuses = list(chrome.execute_script("return window.__statuses"))
        leave(edge)
        [report] = wait_complete(edge, [session], 60)
    finally:
        front.stop()
    assert statuses.count(429) >= 1, statuses  # the page met its limit ...
    assert report.declared >= 2002  # ... and every event it made is stored, once
    row(
        "the page over its own limit (2 requests per 2 s)",
        [report],
        len(statuses),
        f"{statuses.count(429)} requests answered 429, retried with backoff; all stored {recovered:.0f} s after",
    )
