"""Least privilege on the deployed stack: unprivileged users, hardened units, loopback, secrets in their place."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.in_container import listening, redis_as_service
from harness.report import record

SECRETS_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "inventory" / ".secrets"
ROOT_ONLY = "/etc/uqcrowd-log/toolkit-root.env"
ALLOWED = {
    # Redis's: the operator's (the default user) in its configuration only; the service's ACL user's
    # where the service and the toolkit read it (redis.conf keeps its SHA-256).
    "redis-password": {"/etc/redis/redis.conf"},
    "redis-service-password": {"/etc/uqcrowd-log/logger.env", ROOT_ONLY},
    "writer-password": {"/etc/uqcrowd-log/logger.env", ROOT_ONLY, "/etc/uqcrowd-monitor/monitor.json"},
    # The toolkit's users: the reader's for the researchers' group and the dashboard, the others for root only.
    "reader-password": {"/etc/uqcrowd-log/toolkit-reader.env", "/etc/uqcrowd-log/dashboard.env"},
    "curator-password": {ROOT_ONLY},
    "withdrawer-password": {ROOT_ONLY},
    "retention-password": {ROOT_ONLY},
}


@pytest.mark.parametrize(
    ("process", "users"),
    [
        ("java", {"elasticsearch"}),
        ("redis-server", {"redis"}),
        ("haproxy", {"haproxy"}),
        ("uqcrowd-logger", {"uqcrowd", "uqcrowd-dashboard"}),  # the backends and the indexer; the dashboard
    ],
)
def test_services_run_unprivileged(host, process, users):
    owners = set(host.run(f"ps -o user= -C {process}").stdout.split())
    if process == "haproxy":
        owners.discard("root")  # the master process only; its worker serves requests
    assert owners == users


@pytest.mark.parametrize("unit", [f"uqcrowd-{name}.service" for name in ("logger@5001", "indexer", "dashboard")])
def test_hardened_units(host, unit):
    text = host.run(f"systemd-analyze security {unit}").stdout
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", text).group(1))
    record(
        f"least privilege: systemd-analyze security {unit}",
        {"sent": 0, "failed": 0, "accepted": 0, "lost": 0, "duplicated": 0},
        f"exposure {score} (limit 4.0)",
    )
    assert score <= 4.0


def test_only_haproxy_listens_beyond_loopback(host):
    public = {a for a in listening(host) if not a.startswith(("127.0.0.1:", "::1:"))}
    assert public == {"*:80"}


def test_redis_refuses_commands_without_password(host):
    assert "NOAUTH" in host.run("redis-cli ping").stdout


def test_the_services_redis_user_cannot_reconfigure_flush_or_list_redis(host):
    """With the service's own credentials (its env file): its stream yes; CONFIG, FLUSHALL, KEYS, another key no."""
    assert redis_as_service(host, "XLEN", "uqcrowd-log:events").isdigit()
    for refused in (["CONFIG", "SET", "appendonly", "no"], ["FLUSHALL"], ["KEYS", "*"], ["GET", "another:key"]):
        assert "NOPERM" in redis_as_service(host, *refused), refused


@pytest.mark.parametrize("secret", sorted(ALLOWED))
def test_secrets_only_in_root_only_files(host, secret):
    value = (SECRETS_DIR / secret).read_text().strip()
    # The pattern is joined by the shell: the command line (which the journal records) never holds the secret.
    half = len(value) // 2
    search = f'a={value[:half]}; b={value[half:]}; grep -rlF -- "$a$b" /etc /opt /var /tmp /usr/local /root'
    found = set(host.run(search + " 2>/dev/null").stdout.split())
    assert found == ALLOWED[secret]
    for path in found:
        f = host.file(path)
        assert f.mode & 0o007 == 0, path
    assert value not in host.run("ps -eo args").stdout
    assert value not in host.run("journalctl --no-pager").stdout
