"""HAProxy as the role leaves it: only /logger/* routed, bodies over the limit refused at the edge."""

from __future__ import annotations

import time

from tests.support.in_container import http, listening, ports_of

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
    status, _ = http(host, "POST", f"{FRONT}/logger/insert", [{"pad": "x" * 100}] * 30)
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
