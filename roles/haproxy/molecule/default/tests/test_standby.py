"""Two lb hosts sharing an address (keepalived, VRRP), as roles/haproxy leaves them with
haproxy_virtual_address: one holds it; it moves to the other within seconds when the holder's HAProxy
stops or the holder is lost (its network gone, then its services: a container killed and started again
would come back at another address, which a real host does not), under a steady load from this machine
and with a worker's page open in headless Chromium; it stays there when the old holder returns. Their
stick tables are shared (HAProxy's peers)."""

from __future__ import annotations

import ipaddress
import itertools
import json
import shlex
import ssl
import statistics
import threading
import time
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib import error, request

import pytest

from harness.browser import chromium
from harness.report import record
from uqcrowd_log.completeness import SessionReport, session_reports

LOADERS = 2  # each a request at a time, 0.3 s apart: about 6 a second, under the scenario's 100 per 10 s
# HTTPS (plain HTTP from another host is redirected), to an address: the name is not what is tested here.
UNVERIFIED = ssl._create_unverified_context()


def post(url: str, body: bytes = b"{}", timeout: float = 5) -> int:
    """The status of an insert posted from this machine (0: no answer), on a new connection."""
    headers = {"Content-Type": "application/json", "Connection": "close"}
    try:
        with request.urlopen(request.Request(url, body, headers), timeout=timeout, context=UNVERIFIED) as answer:
            return answer.status
    except error.HTTPError as refused:
        return refused.code
    except OSError:
        return 0


def address_of(host) -> str:
    return host.check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n1 | cut -d/ -f1")


@pytest.fixture(scope="module")
def shared(hosts) -> str:
    """The shared address: .250 of the scenario's network (molecule.yml)."""
    network = ipaddress.ip_interface(
        next(iter(hosts.values())).check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n1")
    ).network
    return str(network.network_address + 250)


def holders(hosts, shared: str) -> list[str]:
    return [name for name, host in hosts.items() if f" {shared}/" in host.check_output("ip -4 -o addr show dev eth0")]


def wait_for_one_holder(hosts, shared: str, seconds: float, other_than: str = "") -> tuple[str, float]:
    """The one host holding the address (not `other_than`), and the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        now = holders(hosts, shared)
        if len(now) == 1 and now[0] != other_than:
            return now[0], time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"the shared address: held by {holders(hosts, shared)} after {seconds:.0f} s")


def admin(host, command: str) -> str:
    """HAProxy's runtime API on this host (its admin socket)."""
    script = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
        " s.sendall(sys.argv[1].encode() + b'\\n'); print(s.makefile().read())"
    )
    return host.check_output(f"python3 -c {shlex.quote(script)} {shlex.quote(command)}")


class Load:
    """Inserts posted to the shared address from this machine, each with an id of its own, a new
    connection each time (as browsers meeting a lost host do)."""

    def __init__(self, shared: str) -> None:
        self.url = f"https://{shared}/logger/insert"
        self.answers: list[tuple[float, int, str]] = []  # (when answered, status, id)
        self.running = threading.Event()
        self.threads = [threading.Thread(target=self._post, daemon=True) for _ in range(LOADERS)]

    def _post(self) -> None:
        while self.running.is_set():
            event_id = uuid.uuid4().hex
            body = json.dumps({"log_type": "message", "event_id": event_id}).encode()
            status = post(self.url, body, timeout=1.5)
            self.answers.append((time.monotonic(), status, event_id))
            time.sleep(0.3)

    def __enter__(self) -> Load:
        self.running.set()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        for thread in self.threads:
            thread.join(5)

    def accepted(self) -> list[tuple[float, int, str]]:
        return [answer for answer in self.answers if answer[1] == 202]

    def longest_gap(self) -> float:
        """The longest time without a 202 while it ran (about 0.3 s when nothing is wrong)."""
        times = sorted(when for when, _, _ in self.accepted())
        return max((later - earlier for earlier, later in itertools.pairwise(times)), default=0.0)


DOMAIN = "uqcrowd-haproxy.test"  # each host's certificate names it (its own pebble: prepare.yml)
PAGE = """<!doctype html>
<html><head><title>task</title><script src="https://{domain}/logger/logger.js"></script></head>
<body><input id="name" type="text"><a id="next" href="done.html">next</a></body></html>
"""


class Worker:
    """A worker's task page in headless Chromium, loading the tracker from the name DNS gives the shared
    address (both hosts' ACME roots trusted), typing and sending events every half second while it runs."""

    def __init__(self, shared: str, roots: list[Path], directory: Path) -> None:
        (directory / "site").mkdir()
        for name in ("task.html", "done.html"):
            (directory / "site" / name).write_text(PAGE.format(domain=DOMAIN))
        handler = partial(SimpleHTTPRequestHandler, directory=str(directory / "site"))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        resolve = f"--host-resolver-rules=MAP {DOMAIN} {shared}"
        self.browser = chromium(directory / "chromium", resolve, trusted_cas=tuple(roots))
        self.browser.get(f"http://127.0.0.1:{self.server.server_address[1]}/task.html?workerId=W1&hitId=H1")
        self.session = self.browser.execute_script("return window.session_id")
        self.typing = threading.Event()
        self.thread: threading.Thread | None = None

    def _type(self) -> None:
        field = self.browser.find_element("id", "name")
        while self.typing.is_set():
            field.send_keys("abc")
            self.browser.execute_script("for (var i = 0; i < 5; i++) { send_log('message', 'busy', {n: i}); }")
            time.sleep(0.5)

    def start(self) -> None:
        self.typing.set()
        self.thread = threading.Thread(target=self._type, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.typing.clear()
        if self.thread:
            self.thread.join(10)

    def finish(self, seconds: float) -> None:
        """Its End Session (the next page), then until the tracker holds nothing unacknowledged."""
        self.browser.find_element("id", "next").click()
        pending = "return Object.keys(localStorage).filter(k => k.startsWith('uqcrowd-log:e:')).length"
        deadline = time.monotonic() + seconds
        while self.browser.execute_script(pending):
            assert time.monotonic() < deadline, "the page still holds events"
            time.sleep(0.5)

    def quit(self) -> None:
        self.browser.quit()
        self.server.shutdown()


@pytest.fixture
def worker(hosts, shared, tmp_path):
    roots = []
    for name, host in hosts.items():
        fetch = (
            "import ssl, urllib.request; c = ssl.create_default_context(cafile='/etc/pebble/cert.pem');"
            " print(urllib.request.urlopen('https://127.0.0.1:15000/roots/0', context=c).read().decode())"
        )
        roots.append(tmp_path / f"{name}-root.pem")
        roots[-1].write_text(host.check_output(f"python3 -c {shlex.quote(fetch)}"))
    page = Worker(shared, roots, tmp_path)
    yield page
    page.quit()


def page_report(hosts, session: str) -> SessionReport:
    """The session as the backends received it, each event once (Elasticsearch's id is the session's
    and the event's sequence number: one sent twice is stored once)."""
    events = {}
    for host in hosts.values():
        for line in host.run("cat /var/log/echo-backend-*.bodies").stdout.splitlines():
            try:
                batch = json.loads(line)
            except ValueError:
                continue
            for event in batch if isinstance(batch, list) else []:
                if isinstance(event, dict) and event.get("session_id") == session:
                    events[event.get("sequence_number")] = event
    reports = session_reports(events.values())
    return reports[0] if reports else SessionReport(session)


def test_one_host_holds_the_address_and_answers_on_it(hosts, shared):
    for host in hosts.values():
        assert host.service("keepalived").is_running
        assert host.service("keepalived").is_enabled
        assert host.file("/etc/keepalived/keepalived.conf").mode == 0o600  # its VRRP password
    wait_for_one_holder(hosts, shared, 20)
    assert post(f"https://{shared}/logger/insert") == 202


def test_the_lb_host_that_answered_is_named_to_the_installations_hosts_only(hosts, shared):
    """X-UQCrowd-LB (the monitoring's way to tell which host holds the address) to haproxy_name_to only."""
    named = (
        "import urllib.request, urllib.error\n"
        "try:\n    r = urllib.request.urlopen('http://127.0.0.1/logger/ready', timeout=5)\n"
        "except urllib.error.HTTPError as e:\n    r = e\n"
        "print(r.headers.get('X-UQCrowd-LB', ''))"
    )
    for name, host in hosts.items():
        assert host.check_output(f"python3 -c {shlex.quote(named)}") == name
    answer = request.urlopen(f"https://{shared}/logger/ready", timeout=5, context=UNVERIFIED)
    assert answer.status == 200
    assert answer.headers.get("X-UQCrowd-LB") is None  # this machine is not one of the installation's


def test_the_per_client_counts_are_shared_with_the_other_host(hosts):
    first, second = hosts.values()
    for _ in range(5):
        assert post(f"https://{address_of(first)}/logger/insert") == 202
    mine = address_of(first).rsplit(".", 1)[0] + ".1"  # this machine: the network's gateway
    table = admin(second, "show table uqcrowd")
    entry = next((line for line in table.splitlines() if f"key=::ffff:{mine} " in line), "")
    assert entry, table
    assert int(entry.split("http_req_rate(10000)=")[1].split()[0]) >= 5  # counted on the first, known to the second


def test_the_address_leaves_a_host_whose_haproxy_stops_and_stays_away_when_it_returns(hosts, shared):
    holder, _ = wait_for_one_holder(hosts, shared, 20)
    try:
        hosts[holder].check_output("systemctl stop haproxy")
        other, moved = wait_for_one_holder(hosts, shared, 20, other_than=holder)
    finally:
        hosts[holder].check_output("systemctl start haproxy")
    time.sleep(4)  # its checks pass again (2 s) and it hears the other's adverts (one a second)
    assert holders(hosts, shared) == [other]
    none = {"sent": "-", "failed": "-", "accepted": "-", "lost": "-", "duplicated": "-"}
    record(
        "HAProxy stopped on the host holding the address",
        none,
        f"the address moved after {moved:.1f} s; it stayed there once HAProxy was started again",
        table="lb-hosts",
    )


def lose(host) -> None:
    """The host gone from the network at once, then its services stopped (nothing of it is heard)."""
    host.check_output("ip link set eth0 down && systemctl stop keepalived haproxy")


def bring_back(host, gateway: str) -> None:
    host.check_output(f"ip link set eth0 up && ip route replace default via {gateway}")
    host.check_output("systemctl start haproxy keepalived")


def bodies(hosts) -> list[str]:
    ids = []
    for host in hosts.values():
        for line in host.run("cat /var/log/echo-backend-*.bodies").stdout.splitlines():
            try:
                ids.append(json.loads(line).get("event_id", ""))
            except (ValueError, AttributeError):
                continue
    return ids


@pytest.mark.timeout(400)
def test_the_holder_lost_under_load_three_times(hosts, shared, worker):
    """Each time: the holder lost while this machine posts to the shared address and a worker types; the
    other takes the address; every insert answered 202 reached a backend once; the lost host returns as
    the standby. Then the worker's session is complete: every event the page made, once."""
    gateway = address_of(next(iter(hosts.values()))).rsplit(".", 1)[0] + ".1"
    moves, gaps, sent, accepted, failures = [], [], 0, set(), []
    worker.start()
    for _ in range(3):
        holder, _ = wait_for_one_holder(hosts, shared, 20)
        with Load(shared) as load:
            time.sleep(2)
            lost_at = time.monotonic()
            lose(hosts[holder])
            other, moved = wait_for_one_holder(hosts, shared, 30, other_than=holder)
            time.sleep(3)
        bring_back(hosts[holder], gateway)
        moves.append(moved)
        gaps.append(load.longest_gap())
        sent += len(load.answers)
        failures += [status for _, status, _ in load.answers if status != 202]
        accepted |= {event_id for _, _, event_id in load.accepted()}
        assert any(when > lost_at + moved for when, _, _ in load.accepted()), "no 202 once the address moved"
        time.sleep(4)  # the returned host hears the holder's adverts and stays a standby
        assert holders(hosts, shared) == [other]
    worker.stop()
    worker.finish(60)
    report = page_report(hosts, worker.session)
    seen = bodies(hosts)
    lost = accepted - set(seen)
    duplicated = {event_id for event_id in accepted if seen.count(event_id) > 1}
    record(
        "the host holding the address lost (network down, then its services), 3 times",
        {
            "sent": sent,
            "failed": len(failures),
            "failures": {str(status or "no answer"): failures.count(status) for status in sorted(set(failures))},
            "accepted": len(accepted),
            "lost": len(lost),
            "duplicated": len(duplicated),
        },
        f"the address moved after {', '.join(f'{m:.1f}' for m in moves)} s; no 202 for"
        f" {', '.join(f'{g:.1f}' for g in gaps)} s (p50 {statistics.median(gaps):.1f}, max {max(gaps):.1f});"
        f" the lost host back as the standby each time; a worker's page in Chromium: its session complete"
        f" ({report.stored} events)",
        table="lb-hosts",
    )
    assert (len(lost), len(duplicated)) == (0, 0)
    assert report.complete, str(report)
