"""The logger role: N hardened backends and the indexer under systemd, writing into Redis."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.support.in_container import http, listening, ports_of


@pytest.fixture(scope="module")
def ports(host):
    cores = int(host.run("nproc").stdout)
    return list(range(5001, 5001 + max(2, 2 * cores)))


def test_service_user_has_no_login_shell(host):
    user = host.user("uqcrowd")
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000


def test_config_is_readable_by_the_service_group_only(host):
    env = host.file("/etc/uqcrowd-log/logger.env")
    assert (env.user, env.group, env.mode) == ("root", "uqcrowd", 0o640)
    assert "UQCROWD_REDIS_URL=redis://:" in env.content_string


def test_backends_sized_to_the_cores_run_as_the_service_user(host, ports):
    for port in ports:
        service = host.service(f"uqcrowd-logger@{port}")
        assert service.is_running
        assert service.is_enabled
    assert not host.service(f"uqcrowd-logger@{ports[-1] + 1}").is_running
    owners = host.run("ps -o user= -C python").stdout.split()
    assert owners
    assert set(owners) == {"uqcrowd"}


def test_backends_listen_on_loopback(host, ports):
    addresses = listening(host)
    for port in ports:
        assert ports_of(addresses, port) == {"127.0.0.1"}


def test_indexer_runs(host):
    indexer = host.service("uqcrowd-indexer")
    assert indexer.is_running
    assert indexer.is_enabled


def test_a_posted_event_is_queued_in_redis(host, ports):
    status, body = http(
        host,
        "POST",
        f"http://127.0.0.1:{ports[0]}/logger/insert",
        {"log_type": "message", "session_id": "molecule", "sequence_number": 1},
        content_type="text/plain",
    )
    assert (status, body) == (202, {"accepted": 1, "rejected": 0})
    status, _ = http(host, "GET", f"http://127.0.0.1:{ports[1]}/logger/insert")
    assert status == 405
    metrics = http(host, "GET", f"http://127.0.0.1:{ports[1]}/logger/metrics")[1]
    assert re.search(r"^uqcrowd_events_accepted_total [1-9]", metrics, re.M)


def test_start_script_leaves_running_backends_alone(host, ports):
    before = host.run(f"systemctl show -p MainPID --value uqcrowd-logger@{ports[0]}").stdout.strip()
    assert host.run("/opt/uqcrowd-log/start.sh").rc == 0
    after = host.run(f"systemctl show -p MainPID --value uqcrowd-logger@{ports[0]}").stdout.strip()
    assert before == after != "0"


def test_a_killed_backend_is_restarted_by_systemd(host, ports):
    pid = host.run(f"systemctl show -p MainPID --value uqcrowd-logger@{ports[1]}").stdout.strip()
    assert host.run(f"kill -9 {pid}").rc == 0
    for _ in range(30):
        status = http(host, "GET", f"http://127.0.0.1:{ports[1]}/logger/ready")[0] if _ else 0
        if status == 200:
            break
        host.run("sleep 1")
    new_pid = host.run(f"systemctl show -p MainPID --value uqcrowd-logger@{ports[1]}").stdout.strip()
    assert new_pid not in (pid, "0")


def test_a_backend_is_started_once_it_serves(host, ports):
    """Type=notify: `systemctl restart` returns once the backend answers (a simple unit returns once the
    process exists, seconds before Granian has loaded the app), and at boot HAProxy starts after it."""
    unit = f"uqcrowd-logger@{ports[0]}"
    assert host.run(f"systemctl show -p Type --value {unit}").stdout.strip() == "notify"
    assert "haproxy.service" in host.run(f"systemctl show -p Before --value {unit}").stdout.split()
    health = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{ports[0]}/logger/health').status)"
    restart = host.run(f"systemctl restart {unit} && python3 -c {shlex.quote(health)}")
    assert (restart.rc, restart.stdout.strip()) == (0, "200"), restart.stderr


@pytest.mark.parametrize("unit", ["uqcrowd-logger@5001.service", "uqcrowd-indexer.service"])
def test_units_are_hardened(host, unit):
    result = host.run(f"systemd-analyze security --json=short {unit}")
    assert result.rc == 0, result.stderr
    exposure = host.run(f"systemd-analyze security {unit} | tail -1").stdout
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", exposure).group(1))
    assert score <= 4.0, exposure
    assert json.loads(result.stdout)
