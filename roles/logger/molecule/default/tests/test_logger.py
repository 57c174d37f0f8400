"""The logger role: N hardened backends and the indexer under systemd, writing into Redis."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from tests.support import playbook
from tests.support.in_container import http, listening, ports_of, versions

CONVERGE = "roles/logger/molecule/default/converge.yml"
RELEASES = "/opt/uqcrowd-log/releases"


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
    assert set(owners) == {"uqcrowd", "uqcrowd-dashboard"}  # the backends and the indexer; the dashboard


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


@pytest.mark.parametrize("unit", [f"uqcrowd-{name}.service" for name in ("logger@5001", "indexer", "dashboard")])
def test_units_are_hardened(host, unit):
    result = host.run(f"systemd-analyze security --json=short {unit}")
    assert result.rc == 0, result.stderr
    exposure = host.run(f"systemd-analyze security {unit} | tail -1").stdout
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", exposure).group(1))
    assert score <= 4.0, exposure
    assert json.loads(result.stdout)


def releases(host) -> list[str]:
    return sorted(host.file(RELEASES).listdir())


def running(host) -> str:
    return Path(host.run("readlink /opt/uqcrowd-log/current").stdout.strip()).name


def test_the_services_run_from_their_own_release(host, ports):
    release = running(host)
    assert re.fullmatch(r"\d+\.\d+\.\d+-[0-9a-f]{10}", release), release
    assert releases(host) == [release]
    for unit in [f"uqcrowd-logger@{port}" for port in ports] + ["uqcrowd-indexer"]:
        pid = host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        assert f"{RELEASES}/{release}/venv/bin/python {RELEASES}/{release}/app/" in host.file(
            f"/proc/{pid}/cmdline"
        ).content_string.replace("\0", " ")
    assert f"{RELEASES}/{release}/" in host.file("/usr/local/bin/uqcrowd-log").content_string
    assert not host.file("/opt/uqcrowd-log/app").exists
    assert not host.file("/opt/uqcrowd-log/venv").exists


def test_new_versions_are_releases_beside_the_running_one_and_the_oldest_are_deleted(host, ports, tmp_path):
    """Last in this file: it leaves the scenario on another version. Two new versions with
    logger_keep_releases=2: each is built beside the one running, every backend switches to it; the
    first release is deleted once two newer ones are there. A release not on the host is refused."""
    first = running(host)
    for version in ("9.0.1", "9.0.2"):
        source = playbook.service_release(tmp_path, version)
        playbook.run(CONVERGE, "-e", f"logger_source_dir={source}", "-e", "logger_keep_releases=2")
        assert versions(host, ports) == [version] * len(ports)
        assert running(host).startswith(f"{version}-")
    assert [name.split("-")[0] for name in releases(host)] == ["9.0.1", "9.0.2"]
    assert first not in releases(host)
    refused = playbook.attempt(CONVERGE, "-e", "logger_release=1.0.0-0123456789")
    assert refused.returncode != 0
    assert (
        "logger_release 1.0.0-0123456789 is not a complete release in /opt/uqcrowd-log/releases"
        in refused.stdout + refused.stderr
    )
    assert versions(host, ports) == ["9.0.2"] * len(ports)  # the refusal changed nothing


def test_the_dashboard_asks_for_the_login_and_runs_as_its_own_user(host):
    password = Path(os.environ["UQCROWD_DASHBOARD_LOGIN"], "researcher.password").read_text().strip()
    url = "http://127.0.0.1:5100/dashboard/health"  # the page that needs no Elasticsearch
    assert http(host, "GET", url)[0] == 401
    assert http(host, "GET", url, auth=("researcher", password + "x"))[0] == 401
    status, page = http(host, "GET", url, auth=("researcher", password))
    assert (status, 'data-gauge="uqcrowd_queue_depth"' in page) == (200, True)
    assert ports_of(listening(host), 5100) == {"127.0.0.1"}
    owner = host.run("systemctl show -p MainPID --value uqcrowd-dashboard | xargs ps -o user= -p").stdout.strip()
    assert owner == "uqcrowd-dashboard"


def test_the_dashboard_gets_a_fifth_of_a_backends_cpu_share(host):
    """The weights systemd holds for the two units (CPUWeight). Only systemd's: on this machine's hybrid
    cgroups the container's systemd has no cpu controller of its own to apply them (README, "Tested here,
    and not"); on a Debian host (cgroup v2) they become the units' cpu.weight."""
    weights = {
        unit: host.run(f"systemctl show -p CPUWeight --value {unit}").stdout.strip()
        for unit in ["uqcrowd-dashboard.service", "uqcrowd-logger@5001.service"]
    }
    assert weights == {"uqcrowd-dashboard.service": "20", "uqcrowd-logger@5001.service": "[not set]"}
