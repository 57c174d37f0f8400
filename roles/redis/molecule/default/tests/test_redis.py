"""Redis as the role leaves it: a durable, password-protected queue on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.in_container import listening, ports_of


@pytest.fixture(scope="module")
def cli(host):
    password = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "redis-password").read_text().strip()

    def run(*args: str) -> str:
        result = host.run("REDISCLI_AUTH=%s redis-cli --no-raw " + " ".join(["%s"] * len(args)), password, *args)
        assert result.rc == 0, result.stderr
        return result.stdout.strip()

    return run


def test_service_running_and_enabled(host):
    service = host.service("redis-server")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_loopback_only(host):
    assert ports_of(listening(host), 6379) == {"127.0.0.1"}


def test_refuses_commands_without_the_password(host, cli):
    assert "NOAUTH" in host.run("redis-cli ping").stdout
    wrong = host.run("redis-cli -a wrong --no-auth-warning ping")
    assert "WRONGPASS" in wrong.stderr
    assert "PONG" not in wrong.stdout
    assert cli("ping") == "PONG"


def test_durable_and_never_evicting(cli):
    assert cli("config", "get", "appendonly").splitlines()[-1].endswith('"yes"')
    assert cli("config", "get", "appendfsync").splitlines()[-1].endswith('"always"')
    assert cli("config", "get", "maxmemory-policy").splitlines()[-1].endswith('"noeviction"')


def test_config_file_is_not_world_readable(host):
    config = host.file("/etc/redis/redis.conf")
    assert (config.user, config.group, config.mode) == ("redis", "redis", 0o640)


def test_queued_entries_survive_a_restart(host, cli):
    cli("del", "survivor")
    cli("xadd", "survivor", "*", "doc", "before-restart")
    assert host.run("systemctl restart redis-server").rc == 0
    for _ in range(50):
        if host.run("redis-cli ping").rc == 0:
            break
    entries = cli("xrange", "survivor", "-", "+")
    assert "before-restart" in entries
