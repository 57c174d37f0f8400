"""The monitoring's replication and load-balancers checks (roles/monitoring/files/uqcrowd-check.py) on
servers on loopback: healthy with every replica in sync, one incident for a failover (with the replicas
it lacks), cleared once they are back, and an incident when no Sentinel answers; the shared address of
the load balancers moving is one incident too, and one that does not answer is named."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def serving(status: int, headers: Callable[[], dict[str, str]], body: Callable[[], str]) -> Iterator[int]:
    """An HTTP server on loopback answering every GET with `status`, and the headers and body the
    callables give at that moment; its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body().encode()
            self.send_response(status)
            for name, value in headers().items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@pytest.fixture
def served() -> Iterator[tuple[list[str], str]]:
    """A metrics endpoint answering the last text put in the list."""
    texts: list[str] = []
    with serving(200, dict, lambda: texts[-1]) as port:
        yield texts, f"http://127.0.0.1:{port}/logger/metrics"


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


@pytest.fixture
def shared_address() -> Iterator[tuple[list[str], str]]:
    """The shared address's HAProxy: naming the lb host that answered (the last name put in the list)."""
    holder: list[str] = []
    # 503: its backends down, the logger check's business, not this one's.
    with serving(503, lambda: {"X-UQCrowd-LB": holder[-1]}, str) as port:
        yield holder, f"http://127.0.0.1:{port}/logger"


def test_the_shared_address_moving_is_one_incident_and_a_silent_standby_is_named(served, shared_address):
    check = load_check()
    texts, lb1 = served
    texts.append("")
    holder, shared = shared_address
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        lb2 = f"http://127.0.0.1:{closed.getsockname()[1]}/logger/health"  # bound, never listening
        config, state, seen = {"lb_urls": {"lb1": lb1, "lb2": lb2}, "logger_url": shared}, {}, []
        for name in ("lb2", "lb1", "lb1"):  # lb2 lost: the address on lb1; lb2 still silent
            holder.append(name)
            config["lb_urls"] = {"lb1": lb1, "lb2": lb2} if name == "lb1" else {"lb1": lb1, "lb2": lb1}
            seen.append(check.check_load_balancers(config, state))
    config["lb_urls"] = {"lb1": lb1, "lb2": lb1}  # lb2 back
    seen.append(check.check_load_balancers(config, state))
    assert seen[0] == (True, "the shared address on lb2, HAProxy answering on lb1, lb2")
    assert seen[1] == (
        False,
        "the shared address moved to lb1, was on lb2; no answer from HAProxy on lb2: the shared address has no"
        " standby there; the shared address on lb1, HAProxy answering on lb1",
    )
    assert seen[2][0] is False
    assert not seen[2][1].startswith("the shared address moved")  # said once
    assert seen[3] == (True, "the shared address on lb1, HAProxy answering on lb1, lb2")
    assert state["holder"] == "lb1"
