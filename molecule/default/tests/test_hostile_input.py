"""Hostile input at the edge (through HAProxy as deployed): never a 5xx, a crash or a stuck backend."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from harness.in_container import connection_flood, http, oom_kills
from harness.report import record

FRONT = "http://127.0.0.1:80/logger/insert"
NORMAL = {"log_type": "message", "session_id": "after-hostile", "sequence_number": 0}

_RAW = r"""
import json, socket, sys, time
payload, wait = json.loads(sys.argv[1])
sock = socket.create_connection(("127.0.0.1", 80), timeout=30)
started = time.monotonic()
try:
    sock.sendall(payload.encode("latin-1"))
except OSError:  # the proxy may answer and close before reading everything
    pass
if wait:
    time.sleep(wait)
    try:
        sock.sendall(b"X-Slow: 1\r\n")
    except OSError:
        pass
answer = b""
try:
    while chunk := sock.recv(65536):
        answer += chunk
        if b"\r\n\r\n" in answer:
            break
except OSError:
    pass
status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else 0
print(json.dumps([status, round(time.monotonic() - started, 1)]))
"""


def raw(host, payload: str, wait: float = 0) -> tuple[int, float]:
    """Send raw bytes over one TCP connection; (status of the answer or 0 when closed, seconds)."""
    result = host.run(f"python3 -c {shlex.quote(_RAW)} {shlex.quote(json.dumps([payload, wait]))}")
    assert result.rc == 0, result.stderr
    return tuple(json.loads(result.stdout))


@pytest.fixture(scope="module")
def pids(host):
    return {
        u: host.run(f"systemctl show -p MainPID --value {u}").stdout.strip()
        for u in ("uqcrowd-logger@5001", "uqcrowd-logger@5002", "uqcrowd-indexer")
    }


def still_serving(host) -> int:
    return http(host, "POST", FRONT, NORMAL, content_type="text/plain")[0]


CASES = {
    "malformed JSON": '{"log_type": "message", ',
    "invalid UTF-8": '{"a": "\udcff\udcfe"}',  # lone surrogates: sent as the raw bytes ff fe
    "JSON nested 10,000 deep": "[" * 10_000 + "]" * 10_000,
    "huge number (1e400)": '{"log_type": "message", "x": 1e400}',
    "NaN": '{"log_type": "message", "x": NaN}',
    "duplicate keys": '{"log_type": "message", "log_type": "mouse_event", "session_id": "dup"}',
    "integer beyond 64 bits": '{"log_type": "message", "sequence_number": 123456789012345678901234567890}',
}
BUILT = {  # built inside the container: too large for a command line
    "10,000 distinct field names": 'json.dumps({"log_type": "message", **{f"field_{n}": n for n in range(10_000)}})',
}


@pytest.mark.parametrize("case", [*CASES, *BUILT])
def test_hostile_body(host, pids, case):
    if case in BUILT:
        status = http(host, "POST", FRONT, content_type="text/plain", expression=BUILT[case])[0]
    else:
        status = http(host, "POST", FRONT, CASES[case], content_type="text/plain")[0]
    after = still_serving(host)
    record(
        f"hostile: {case}",
        {"sent": 1, "failed": 0 if status < 300 else 1, "accepted": int(status < 300), "lost": 0, "duplicated": 0},
        f"answered {status}; next normal event {after}",
    )
    assert status < 500
    assert after == 202


def test_ten_thousand_field_names_do_not_grow_the_mapping(host):
    password = host.file("/etc/elasticsearch/elastic-password").content_string.strip()
    status, mapping = http(host, "GET", "http://127.0.0.1:9200/uqcrowd-log-*/_mapping", auth=("elastic", password))
    assert status == 200
    for index in mapping.values():
        assert len(index["mappings"]["properties"]) < 20


def test_body_over_the_limit_is_413_before_any_backend(host):
    metrics = http(host, "GET", "http://127.0.0.1:5001/logger/metrics")[1]
    # 2 MiB announced, the first 64 kB sent: HAProxy refuses it from its Content-Length, before any backend.
    head = "POST /logger/insert HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"
    status, _ = raw(host, head + "x" * 65536)
    assert status == 413
    assert http(host, "GET", "http://127.0.0.1:5001/logger/metrics")[1].count("body_too_large") == metrics.count(
        "body_too_large"
    )  # no backend counted it: HAProxy refused it
    record(
        "hostile: body of 2 MiB (limit 128 KiB)",
        {"sent": 1, "failed": 1, "accepted": 0, "lost": 0, "duplicated": 0},
        f"413 at HAProxy; next normal event {still_serving(host)}",
    )


def test_very_long_headers(host):
    status, _ = raw(host, "POST /logger/insert HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 100_000 + "\r\n\r\n")
    assert status < 500
    record(
        "hostile: 100 kB header",
        {"sent": 1, "failed": 1, "accepted": 0, "lost": 0, "duplicated": 0},
        f"answered {status} by HAProxy; next normal event {still_serving(host)}",
    )


def test_slow_client_is_cut_by_timeout_http_request(host):
    status, seconds = raw(host, "POST /logger/insert HTTP/1.1\r\nHost: x\r\n", wait=12)
    assert status in (0, 408)
    assert seconds < 20
    record(
        "hostile: slowloris (headers never finished)",
        {"sent": 1, "failed": 1, "accepted": 0, "lost": 0, "duplicated": 0},
        f"cut after {seconds:.0f} s (HTTP {status or 'closed'}); next normal event {still_serving(host)}",
    )


def test_no_process_crashed_or_restarted(host, pids):
    for unit, pid in pids.items():
        assert host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip() == pid, unit


def test_the_counters_are_not_served_outside_by_any_spelling_of_the_path(host):
    """From the container's own address through HAProxy, and straight to a backend as if through it."""
    outside = host.run("hostname -I").stdout.split()[0]
    spellings = ["/logger/metrics", "/logger/%6Detrics", "/logger/%6detrics", "//logger//metrics", "/logger/./metrics"]
    answers = {path: http(host, "GET", f"http://{outside}:80{path}") for path in spellings}
    assert all(status == 404 and "uqcrowd_" not in str(body) for status, body in answers.values()), answers
    direct = "http://127.0.0.1:5001/logger/%6Detrics"  # the backend decodes it: the real path
    assert http(host, "GET", direct)[0] == 200  # loopback, no proxy hop: the monitoring on this host
    proxied = http(host, "GET", direct, headers={"X-Forwarded-For": "198.51.100.7"})
    assert proxied[0] == 403  # a client behind HAProxy, whatever path reached the backend
    record(
        "hostile: /logger/%6Detrics and 4 other spellings from outside",
        {"sent": len(spellings), "failed": len(spellings), "accepted": 0, "lost": 0, "duplicated": 0},
        f"404 at HAProxy for each; 403 at the backend for a proxied client; next normal event {still_serving(host)}",
    )


def test_the_access_log_reaches_the_journal_without_the_write_token(host):
    """On Debian 13 too (HAProxy 3.0, no rsyslog): the request's line, its query string left out."""
    marker = f"token-{time.time_ns()}"
    assert http(host, "POST", f"{FRONT}?token={marker}", NORMAL)[0] == 202
    for _ in range(20):
        log = host.run("journalctl -u haproxy --no-pager -o cat --since -2min").stdout
        if '"POST /logger/insert HTTP/1.1"' in log:
            break
        time.sleep(0.5)
    assert '"POST /logger/insert HTTP/1.1"' in log, log[-2000:]
    assert marker not in host.run("journalctl --no-pager -o cat --since -2min").stdout
    record(
        "access log: a request with ?token= in the URL",
        {"sent": 1, "failed": 0, "accepted": 1, "lost": 0, "duplicated": 0},
        "its line in the journal (haproxy.service), the query string and token left out",
    )


def test_a_connection_flood_at_haproxys_maxconn_on_the_4_gb_host_kills_nothing(host, pids):
    """As many slow connections as HAProxy takes (maxconn), each holding 120 kB of headers: its buffers
    stay within haproxy_buffers_memory_mb (the memory budget counts that and 64 MB), nothing is killed,
    and the service takes events again once the flood ends: while every buffer is held, HAProxy's own
    health checks wait for one too and may mark the backends down, which then answers 503 (the tracker
    keeps its events and retries) until the checks pass again."""
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    maxconn = int(re.search(r"^\s*maxconn (\d+)$", config, re.M).group(1))
    bound_mb = (
        int(re.search(r"^\s*tune.buffers.limit (\d+)$", config, re.M).group(1))
        * int(re.search(r"^\s*tune.bufsize (\d+)$", config, re.M).group(1))
        // 2**20
    )
    kills = oom_kills(host)
    flood = connection_flood(host, 80, maxconn, hold=8)
    ended = time.monotonic()
    statuses = [still_serving(host)]
    while statuses[-1] != 202 and time.monotonic() - ended < 60:  # the checks' rise: a few seconds here
        time.sleep(1)
        statuses.append(still_serving(host))
    back = time.monotonic() - ended
    record(
        f"hostile: {maxconn:,} slow connections at once (HAProxy's maxconn), 120 kB of headers each",
        {"sent": flood["opened"], "failed": flood["opened"], "accepted": 0, "lost": 0, "duplicated": 0},
        f"HAProxy's memory at most {flood['peak_rss_mb']} MB (its buffers' bound {bound_mb} MB); nothing killed; "
        f"events accepted again {back:.0f} s after the flood (answered {sorted(set(statuses))} meanwhile)",
    )
    assert flood["opened"] > maxconn // 2
    assert flood["peak_rss_mb"] <= bound_mb + 64
    assert oom_kills(host) == kills
    assert statuses[-1] == 202, statuses
    assert set(statuses) <= {202, 503}, statuses  # refused with Retry-After meanwhile, never an error
    assert {u: host.run(f"systemctl show -p MainPID --value {u}").stdout.strip() for u in pids} == pids
