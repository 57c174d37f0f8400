"""The scenario's three Redis hosts, each as a testinfra host; the single-Redis tests use the first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.scenario import hosts_and_first, pytest_collection_modifyitems, pytest_configure  # noqa: F401 (hooks)

# The first: the primary when set up.
hosts, host = hosts_and_first("uqcrowd-redis", "uqcrowd-redis-2", "uqcrowd-redis-3")


@pytest.fixture(scope="module")
def no_failover(hosts) -> Iterator[None]:
    """The Sentinels wait an hour before deeming the primary down, while tests stop and restart it (the
    single-Redis tests): an operator's maintenance window. The scenario's 2 s again afterwards."""
    password = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "sentinel-password").read_text().strip()

    def down_after(ms: int) -> None:
        for host in hosts.values():
            command = "REDISCLI_AUTH=%s redis-cli --tls --cacert /etc/redis/tls/trusted.crt -p 26379 SENTINEL SET"
            result = host.run(f"{command} uqcrowd down-after-milliseconds {ms}", password)
            assert result.stdout.strip() == "OK", result.stdout + result.stderr

    down_after(3_600_000)
    yield
    down_after(2000)


@pytest.fixture(scope="session")
def cli(host):
    """redis-cli on the first host as the default user, over TLS verified with the role's CA."""
    password = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "redis-password").read_text().strip()

    def run(*args: str) -> str:
        cli = "REDISCLI_AUTH=%s redis-cli --tls --cacert /etc/redis/tls/ca.crt --no-raw"
        command = " ".join([cli] + ["%s"] * len(args))
        result = host.run(command, password, *args)
        assert result.rc == 0, result.stderr
        return result.stdout.strip()

    return run
