"""The logger role: N hardened backends and the indexer under systemd, writing into Redis."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from harness import playbook
from harness.in_container import http, listening, ports_of, running_backends, versions

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
    owners = host.run("ps -o user= -C uqcrowd-logger").stdout.split()
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


def main_pids(host, ports) -> dict[str, str]:
    units = [f"uqcrowd-logger@{port}" for port in ports] + ["uqcrowd-indexer"]
    return {unit: host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip() for unit in units}


def wait_ready(host, port: int) -> None:
    for _ in range(60):
        if http(host, "GET", f"http://127.0.0.1:{port}/logger/ready")[0] == 200:
            return
        host.run("sleep 1")
    raise AssertionError(f"nothing ready on port {port} after 60 s")


def test_the_original_guides_commands_work_as_it_prints_them(host, ports):
    """The original installation guide (its "Start and monitor the system"), each command as printed, as root."""
    stopped = host.run("/opt/uqcrowd-log/logger-stop.sh")
    assert stopped.rc == 0, stopped.stderr
    assert set(main_pids(host, ports).values()) == {"0"}
    started = host.run("/opt/uqcrowd-log/logger-start.sh")
    assert started.rc == 0, started.stderr
    for port in ports:
        wait_ready(host, port)
    before = main_pids(host, ports)
    assert "0" not in before.values()
    # "the logger-start.sh script will take no action if there are running backends"
    assert host.run("/opt/uqcrowd-log/logger-start.sh").rc == 0
    assert main_pids(host, ports) == before
    # Its cron line, `30 * * * * root /opt/uqcrowd-log/logger-start.sh`, brings back a backend that died.
    assert host.run(f"systemctl stop uqcrowd-logger@{ports[1]}").rc == 0
    assert host.run("sh -c /opt/uqcrowd-log/logger-start.sh").rc == 0
    wait_ready(host, ports[1])
    # One more backend by hand: `python /opt/uqcrowd-log/logger.py 5005 &`, with this host's configuration.
    extra = max(ports) + 1
    try:
        assert host.run(f"python /opt/uqcrowd-log/logger.py {extra} &").rc == 0
        wait_ready(host, extra)
        pid = host.run(f"systemctl show -p MainPID --value uqcrowd-logger@{extra}").stdout.strip()
        assert host.run(f"ps -o user= -p {pid}").stdout.strip() == "uqcrowd"
        event = {"log_type": "message", "session_id": "by-hand"}
        assert http(host, "POST", f"http://127.0.0.1:{extra}/logger/insert", event)[0] == 202
    finally:
        host.run(f"systemctl stop uqcrowd-logger@{extra}")
    refused = host.run("python /opt/uqcrowd-log/logger.py 70000")
    assert refused.rc == 1
    assert "'70000' is neither a port (1-65535) nor 'indexer' nor 'dashboard'" in refused.stderr


def test_a_maintenance_stop_holds_until_the_operator_starts_again(host, ports):
    """stop.sh stops for maintenance: the hourly job (start.sh --unless-stopped, roles/monitoring's cron)
    leaves it stopped; start.sh ends it. The mark is in memory (/run): after a reboot everything starts."""
    assert host.run("/opt/uqcrowd-log/stop.sh indexer").rc == 0
    try:
        assert host.service("uqcrowd-indexer").is_running is False
        hourly = host.run("/opt/uqcrowd-log/start.sh --unless-stopped")
        assert hourly.rc == 0, hourly.stderr
        assert "indexer: stopped for maintenance by stop.sh" in hourly.stdout
        assert host.service("uqcrowd-indexer").is_running is False
        assert "0" not in [pid for unit, pid in main_pids(host, ports).items() if unit != "uqcrowd-indexer"]
        assert host.run("findmnt -n -o FSTYPE --target /run/uqcrowd-log/stopped").stdout.strip() == "tmpfs"
    finally:
        started = host.run("/opt/uqcrowd-log/start.sh indexer")
    assert started.rc == 0, started.stderr
    assert host.service("uqcrowd-indexer").is_running
    assert host.run("/opt/uqcrowd-log/start.sh --unless-stopped").stdout == ""
    assert host.run("/opt/uqcrowd-log/stop.sh everything").rc == 2


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
    for unit in [f"uqcrowd-logger@{port}" for port in ports] + ["uqcrowd-indexer", "uqcrowd-dashboard"]:
        pid = host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        command = host.file(f"/proc/{pid}/cmdline").content_string.replace("\0", " ")
        assert command.startswith(f"{RELEASES}/{release}/venv/bin/python"), command
        assert f" {RELEASES}/{release}/venv/bin/uqcrowd-logger " in command, command
    # The researcher's command (roles/toolkit) runs the release the services run.
    wrapper = host.file("/usr/local/bin/uqcrowd-log").content_string
    assert "exec /opt/uqcrowd-log/current/venv/bin/uqcrowd-log " in wrapper
    assert host.run("readlink -f /opt/uqcrowd-log/current/venv/bin/uqcrowd-log").stdout.strip() == (
        f"{RELEASES}/{release}/venv/bin/uqcrowd-log"
    )
    # The package is installed in the release's virtualenv, from the wheel beside it, at the version named.
    where = host.run(f"{RELEASES}/{release}/venv/bin/python -c 'import uqcrowd_log; print(uqcrowd_log.__file__)'")
    assert where.stdout.startswith(f"{RELEASES}/{release}/venv/lib/"), where.stdout + where.stderr
    version = release.split("-")[0]
    assert host.file(f"{RELEASES}/{release}/uqcrowd_log-{version}-py3-none-any.whl").exists
    assert not host.file("/opt/uqcrowd-log/app").exists
    assert not host.file("/opt/uqcrowd-log/venv").exists


def test_new_versions_are_releases_beside_the_running_one_and_the_oldest_are_deleted(host, ports, tmp_path):
    """Last in this file: it leaves the scenario on another version, with one backend fewer. Two new
    versions with logger_keep_releases=2: each is built beside the one running, every backend switches
    to it; the first release is deleted once two newer ones are there. The second converge also lowers
    the backend count (as the inventory's uqcrowd_backend_count does): the last backend is stopped and
    disabled. A release not on the host is refused."""
    first = running(host)
    for version, count in (("9.0.1", len(ports)), ("9.0.2", len(ports) - 1)):
        source = playbook.service_release(tmp_path, version)
        options = [f"logger_source_dir={source}", "logger_keep_releases=2", f"logger_backend_count={count}"]
        playbook.run(CONVERGE, *[arg for option in options for arg in ("-e", option)])
        assert versions(host, ports[:count]) == [version] * count
        assert running_backends(host) == [f"uqcrowd-logger@{port}.service" for port in ports[:count]]
        assert running(host).startswith(f"{version}-")
        dashboard = host.run("systemctl show -p ExecStart --value uqcrowd-dashboard").stdout
        assert f"{RELEASES}/{running(host)}/venv/bin/uqcrowd-logger" in dashboard  # roles/dashboard follows
    assert [name.split("-")[0] for name in releases(host)] == ["9.0.1", "9.0.2"]
    assert first not in releases(host)
    refused = playbook.attempt(CONVERGE, "-e", "logger_release=1.0.0-0123456789")
    assert refused.returncode != 0
    assert (
        "logger_release 1.0.0-0123456789 is not a complete release in /opt/uqcrowd-log/releases"
        in refused.stdout + refused.stderr
    )
    assert not host.service(f"uqcrowd-logger@{ports[-1]}").is_enabled
    assert versions(host, ports[:-1]) == ["9.0.2"] * (len(ports) - 1)  # the refusal changed nothing


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
    cgroups the container's systemd has no cpu controller of its own to apply them
    (docs/operators/cluster.md#tested-here-and-not); on a Debian host (cgroup v2) they become the units' cpu.weight."""
    weights = {
        unit: host.run(f"systemctl show -p CPUWeight --value {unit}").stdout.strip()
        for unit in ["uqcrowd-dashboard.service", "uqcrowd-logger@5001.service"]
    }
    assert weights == {"uqcrowd-dashboard.service": "20", "uqcrowd-logger@5001.service": "[not set]"}
