"""The monitoring's replication and load-balancers checks (roles/monitoring/files/uqcrowd-check.py) on
servers on loopback: healthy with every replica in sync, one incident for a failover (with the replicas
it lacks), cleared once they are back, and an incident when no Sentinel answers; a load balancer that
does not answer named."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "roles/monitoring/files/uqcrowd-check.py"


def load_check():
    spec = importlib.util.spec_from_file_location("uqcrowd_check", CHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exposition(primary: str, in_sync: int, sentinels: int = 3) -> str:
    lines = [f"uqcrowd_redis_sentinels {sentinels}.0"]
    if sentinels:
        lines += [f'uqcrowd_redis_primary{{address="{primary}"}} 1.0', "uqcrowd_redis_replicas 2.0"]
        lines += [f"uqcrowd_redis_replicas_in_sync {in_sync}.0"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def served() -> Iterator[tuple[list[str], str]]:
    """A metrics endpoint answering the last text put in the list."""
    texts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = texts[-1].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield texts, f"http://127.0.0.1:{server.server_address[1]}/logger/metrics"
    server.shutdown()


def test_a_failover_is_one_incident_cleared_once_the_replicas_are_back_in_sync(served):
    check = load_check()
    texts, url = served
    config, state = {"metrics_url": url, "redis_replicas": 2}, {}
    seen = []
    for text in (
        exposition("10.0.0.1:6379", 2),
        exposition("10.0.0.2:6379", 1),  # the primary lost: a replica promoted, one replica left
        exposition("10.0.0.2:6379", 1),  # the old primary not back yet
        exposition("10.0.0.2:6379", 2),  # back, as a replica
        exposition("", 0, sentinels=0),
    ):
        texts.append(text)
        seen.append(check.check_replication(config, state))
    assert [healthy for healthy, _ in seen] == [True, False, False, True, False]
    assert seen[0][1] == "Redis primary 10.0.0.1:6379, 2 of 2 replicas in sync, 3 Sentinels"
    assert seen[1][1].startswith("failover: the primary is now 10.0.0.2:6379, was 10.0.0.1:6379; 1 of 2 replicas")
    assert not seen[2][1].startswith("failover")  # said once; what is left is the missing replica
    assert seen[4][1].startswith("no Sentinel answers")
    assert state["primary"] == "10.0.0.2:6379"  # remembered through the Sentinels' silence


def test_a_load_balancer_that_does_not_answer_is_named_and_any_http_answer_counts(served):
    """Each lb host's own HAProxy: one answering 503 (its backends down: the logger check's business)
    still stands by; a closed port does not."""
    check = load_check()
    texts, url = served
    texts.append("")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        silent = f"http://127.0.0.1:{closed.getsockname()[1]}/logger/health"  # bound, never listening
        config = {"lb_urls": {"lb1": url, "lb2": silent}}
        assert check.check_load_balancers(config, {}) == (
            False,
            "no answer from HAProxy on lb2: the shared address has no standby there",
        )
    config = {"lb_urls": {"lb1": url}}
    assert check.check_load_balancers(config, {}) == (True, "HAProxy answers on lb1")
