"""HAProxy as the role leaves it: only /logger/* routed, bodies over the limit refused at the edge."""

from __future__ import annotations

import json
import shlex
import time

from harness.in_container import http, listening, ports_of

FRONT = "http://127.0.0.1:80"


def reached(host) -> str:
    return host.run("cat /var/log/echo-backend-*.log 2>/dev/null").stdout


def test_service_running_and_enabled(host):
    service = host.service("haproxy")
    assert service.is_running
    assert service.is_enabled


def test_config_is_valid(host):
    assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0


def test_frontend_public_stats_on_loopback_only(host):
    addresses = listening(host)
    assert ports_of(addresses, 80) == {"*"}
    assert ports_of(addresses, 8404) == {"127.0.0.1"}


def test_posts_reach_both_backends_with_forwarded_for(host):
    ports = set()
    for _ in range(10):
        status, body = http(host, "POST", f"{FRONT}/logger/insert", {"log_type": "message"})
        assert status == 202
        assert body["xff"] == "127.0.0.1"
        ports.add(body["port"])
    assert ports == {5001, 5002}


def test_get_on_insert_is_the_backends_405(host):
    assert http(host, "GET", f"{FRONT}/logger/insert")[0] == 405


def test_paths_outside_logger_are_404_at_the_edge(host):
    before = reached(host)
    for path in ("/", "/admin", "/loggerx/insert", "/static/logger.js"):
        assert http(host, "POST", f"{FRONT}{path}", {"a": 1})[0] == 404
    assert reached(host) == before


def test_metrics_are_refused_from_outside_however_the_path_is_spelt(host):
    """From the container's own address (not loopback), as from the internet."""
    outside = host.run("hostname -I").stdout.split()[0]
    before = reached(host)
    for path in (
        "/logger/metrics",
        "/logger/%6Detrics",
        "/logger/%6detrics",
        "//logger//metrics",
        "/logger/./metrics",
        "/logger/x/../metrics",
        "/logger/metrics/",
        "/logger/%2e/metrics",
    ):
        assert http(host, "GET", f"http://{outside}:80{path}")[0] == 404, path
    assert reached(host) == before
    assert http(host, "GET", f"{FRONT}/logger/metrics")[0] == 405  # loopback reaches the (echo) backend


def test_body_over_the_limit_is_413_at_the_edge(host):
    before = reached(host)
    too_large = "json.dumps([{'pad': 'x' * 1000}] * 140)"  # 141,000 bytes: over the default 131,072
    status, _ = http(host, "POST", f"{FRONT}/logger/insert", expression=too_large)
    assert status == 413
    assert reached(host) == before


def test_a_stopped_backend_is_routed_around(host):
    assert host.run("systemctl stop echo-backend@5002").rc == 0
    try:
        results = [http(host, "POST", f"{FRONT}/logger/insert", {"n": n}) for n in range(20)]
        assert [status for status, _ in results] == [202] * 20
        assert {body["port"] for _, body in results} == {5001}
    finally:
        host.run("systemctl start echo-backend@5002")
    for _ in range(20):  # rise 2 x inter 2s: back in rotation
        if server_states(host) == {"echo-5001": "UP", "echo-5002": "UP"}:
            return
        time.sleep(1)
    raise AssertionError(f"backend did not come back: {server_states(host)}")


def server_states(host) -> dict[str, str]:
    """The stats page (127.0.0.1 only) as CSV: server name -> status."""
    status, text = http(host, "GET", "http://127.0.0.1:8404/;csv")
    assert status == 200
    rows = [line.split(",") for line in text.splitlines() if line.startswith("loggers,")]
    return {row[1]: row[17] for row in rows if row[1] not in ("BACKEND",)}


def test_the_originals_cron_check_still_finds_method_not_allowed(host):
    """Its crontab greps `curl -I http://localhost/logger/insert` for this reason phrase."""
    status_line = host.run(
        "python3 -c \"import http.client as h; c = h.HTTPConnection('127.0.0.1', 80); "
        "c.request('HEAD', '/logger/insert'); r = c.getresponse(); print(r.status, r.reason)\""
    ).stdout.strip()
    assert status_line == "405 METHOD NOT ALLOWED"


# Run inside the container: requests from one source address (a loopback alias: every 127/8 address is
# the host's own), over keep-alive connections; prints each answer's status and Retry-After.
_FROM = r"""
import http.client, json, socket, sys
source, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Connection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), 10, (source, 0))
answers, connection = [], Connection("127.0.0.1", 80)
for n in range(count):
    connection.request("POST", path, body=json.dumps({"n": n}), headers={"Content-Type": "text/plain"})
    response = connection.getresponse()
    response.read()
    answers.append([response.status, response.getheader("Retry-After")])
print(json.dumps(answers))
"""

# Connections from one source that send their headers and 10 bytes of a 1,000-byte body, then nothing:
# prints, for each, the status line HAProxy answers with and after how many seconds.
_SLOW_BODIES = r"""
import json, socket, sys, threading, time
source, count = sys.argv[1], int(sys.argv[2])
results = []
def slow():
    sock = socket.create_connection(("127.0.0.1", 80), 10, (source, 0))
    sock.sendall(b"POST /logger/insert HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    started = time.monotonic()
    sock.settimeout(30)
    line = sock.recv(200).split(b"\r\n")[0].decode()
    results.append([line, round(time.monotonic() - started, 1)])
threads = [threading.Thread(target=slow) for _ in range(count)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(sorted(results)))
"""


def from_source(host, source: str, count: int, path: str = "/logger/insert") -> list[list]:
    result = host.run(f"python3 -c {shlex.quote(_FROM)} {source} {count} {shlex.quote(path)}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_one_address_beyond_its_request_rate_gets_429_with_retry_after_and_others_do_not(host):
    answers = from_source(host, "127.0.0.30", 130)  # haproxy_client_max_requests: 100 per 10 s
    assert [status for status, _ in answers[:100]] == [202] * 100
    assert answers[100:] == [[429, "5"]] * 30
    assert [status for status, _ in from_source(host, "127.0.0.31", 10)] == [202] * 10  # another client


def test_slow_bodies_never_reach_a_backend_and_are_cut_beyond_the_connection_limit_at_once(host):
    before = reached(host)
    started = time.monotonic()
    result = host.run(f"python3 -c {shlex.quote(_SLOW_BODIES)} 127.0.0.40 8")
    assert result.rc == 0, result.stderr
    answers = json.loads(result.stdout)
    refused = [seconds for line, seconds in answers if line == "HTTP/1.1 429 Too Many Requests"]
    cut = [seconds for line, seconds in answers if line == "HTTP/1.1 408 Request Time-out"]
    assert len(refused) == 3  # haproxy_client_max_connections: 5
    assert max(refused) < 2  # at once
    assert len(cut) == 5
    assert all(2.5 < seconds < 8 for seconds in cut)  # timeout http-request 3s
    assert time.monotonic() - started < 20
    assert reached(host) == before  # no partial body went to a backend


def test_the_limits_are_counted_per_limit_in_haproxys_prometheus_metrics(host):
    status, text = http(host, "GET", "http://127.0.0.1:8404/metrics")
    assert status == 200
    counts = {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("haproxy_backend_http_requests_total{") and '"limit_' in line
    }
    assert counts["limit_requests"] >= 30
    assert counts["limit_connections"] >= 3
    assert "limit_bytes" in counts


def test_the_access_log_reaches_the_journal_with_the_masked_address_and_no_query_string(host):
    [[status, _]] = from_source(host, "127.1.2.77", 1, "/logger/insert?token=SECRET-TOKEN-77")
    assert status == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = host.run("journalctl -u haproxy --no-pager -o cat").stdout
        lines = [line for line in log.splitlines() if line.startswith("127.1.2.0 ")]
        if lines:
            break
        time.sleep(0.5)
    assert lines, log[-2000:]
    assert '"POST /logger/insert HTTP/1.1"' in lines[-1]
    assert "SECRET-TOKEN-77" not in log
    assert "127.1.2.77" not in log


def test_with_no_backend_up_the_answer_is_503_with_retry_after(host):
    assert host.run("systemctl stop echo-backend@5001 echo-backend@5002").rc == 0
    try:
        for _ in range(20):  # fall 2 x inter 2s: both out of rotation
            if server_states(host) == {"echo-5001": "DOWN", "echo-5002": "DOWN"}:
                break
            time.sleep(1)
        answer = host.run(
            "python3 -c \"import http.client as h; c = h.HTTPConnection('127.0.0.1', 80); "
            "c.request('POST', '/logger/insert', '{}'); r = c.getresponse(); "
            "print(r.status, r.getheader('Retry-After'), r.getheader('Content-Type'))\""
        ).stdout.split()
        assert answer == ["503", "5", "application/json"]
    finally:
        host.run("systemctl start echo-backend@5001 echo-backend@5002")
    for _ in range(20):
        if server_states(host) == {"echo-5001": "UP", "echo-5002": "UP"}:
            return
        time.sleep(1)
    raise AssertionError(f"backends did not come back: {server_states(host)}")
