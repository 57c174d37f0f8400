"""Redis as the role leaves it: a durable, password-protected queue over TLS only. On the scenario's
first host (the primary), the Sentinels told to wait (no_failover) while these tests stop and restart it."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from harness.in_container import listening, ports_of

pytestmark = pytest.mark.usefixtures("no_failover")

CA = "/etc/redis/tls/ca.crt"
CLI = f"redis-cli --tls --cacert {CA}"  # TLS only, verified with the role's CA


def secret(name: str) -> str:
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name).read_text().strip()


def test_service_running_and_enabled(host):
    service = host.service("redis-server")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_loopback_and_the_private_address_only(host):
    private = host.ansible("ansible.builtin.setup", "filter=ansible_default_ipv4")["ansible_facts"]
    assert ports_of(listening(host), 6379) == {"127.0.0.1", private["ansible_default_ipv4"]["address"]}


def test_refuses_commands_without_the_password(host, cli):
    assert "NOAUTH" in host.run(f"{CLI} ping").stdout
    wrong = host.run(f"{CLI} -a wrong --no-auth-warning ping")
    assert "WRONGPASS" in wrong.stderr
    assert "PONG" not in wrong.stdout
    assert cli("ping") == "PONG"


def test_the_services_acl_user_has_its_keys_and_no_dangerous_command(host, cli):
    """The service's user (redis_users) queues and reads its stream, and is refused everything else:
    other keys, CONFIG, FLUSHALL, KEYS, ACL, SAVE; redis.conf keeps its password's SHA-256 only."""
    password = secret("service-password")

    def service(*args: str) -> str:
        command = f"REDISCLI_AUTH=%s {CLI} --user uqcrowd --no-raw " + " ".join(["%s"] * len(args))
        return host.run(command, password, *args).stdout.strip()

    assert service("XADD", "uqcrowd-log:acl-test", "*", "event", "{}").startswith('"')  # an entry id
    assert service("XLEN", "uqcrowd-log:acl-test") == "(integer) 1"
    assert service("EVAL", "return redis.call('XLEN', KEYS[1])", "1", "uqcrowd-log:acl-test") == "(integer) 1"
    for refused in (
        ["SET", "other-app:key", "1"],
        ["EVAL", "return redis.call('GET', KEYS[1])", "1", "other-app:key"],
        ["CONFIG", "GET", "requirepass"],
        ["FLUSHALL"],
        ["KEYS", "*"],
        ["ACL", "LIST"],
        ["SAVE"],
    ):
        assert "NOPERM" in service(*refused), refused
    wrong = host.run(f"REDISCLI_AUTH=wrong {CLI} --user uqcrowd ping")
    assert "WRONGPASS" in wrong.stdout + wrong.stderr
    config = host.file("/etc/redis/redis.conf").content_string
    assert password not in config
    assert f"#{hashlib.sha256(password.encode()).hexdigest()}" in config
    cli("DEL", "uqcrowd-log:acl-test")


def test_tls_only_verified_with_the_roles_ca_naming_the_host(host):
    """No plain port; the certificate from the role's CA (its key root-only), TLS 1.0/1.1 refused."""
    assert "NOAUTH" not in host.run("redis-cli -p 6379 ping 2>&1").stdout  # plain TCP to the TLS port: nothing
    assert "port 0" in host.file("/etc/redis/redis.conf").content_string.splitlines()
    chain = host.run(f"openssl verify -CAfile {CA} /etc/redis/tls/redis.crt")
    assert chain.rc == 0, chain.stdout + chain.stderr
    names = host.run("openssl x509 -noout -ext subjectAltName -in /etc/redis/tls/redis.crt").stdout
    assert "IP Address:127.0.0.1" in names
    assert "DNS:localhost" in names
    for path, owner in (("/etc/redis-ca/ca.key", "root"), ("/etc/redis/tls/redis.key", "redis")):
        key = host.file(path)
        assert (key.user, key.mode) == (owner, 0o600), path
    unverified = host.run("redis-cli --tls ping 2>&1")  # the system's CAs only
    assert "certificate verify failed" in unverified.stdout.lower(), unverified.stdout
    old = host.run("echo | openssl s_client -connect 127.0.0.1:6379 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>&1")
    assert "Cipher is (NONE)" in old.stdout or "no protocols available" in old.stdout, old.stdout


def test_durable_and_never_evicting(cli):
    assert cli("config", "get", "appendonly").splitlines()[-1].endswith('"yes"')
    assert cli("config", "get", "appendfsync").splitlines()[-1].endswith('"always"')
    assert cli("config", "get", "maxmemory-policy").splitlines()[-1].endswith('"noeviction"')


def test_config_file_is_not_world_readable_nor_redis_s_to_rewrite(host):
    """Root's: a Sentinel's CONFIG REWRITE after a failover cannot change it (replication.conf says who
    the primary was at the last converge)."""
    config = host.file("/etc/redis/redis.conf")
    assert (config.user, config.group, config.mode) == ("root", "redis", 0o640)


def test_queued_entries_survive_a_restart(host, cli):
    cli("del", "survivor")
    cli("xadd", "survivor", "*", "doc", "before-restart")
    assert host.run("systemctl restart redis-server").rc == 0
    for _ in range(50):
        if host.run(f"{CLI} ping").rc == 0:
            break
    entries = cli("xrange", "survivor", "-", "+")
    assert "before-restart" in entries


def test_a_full_disk_stops_redis_until_there_is_room_and_loses_nothing_acknowledged(host, cli):
    """With appendfsync always Redis exits when its append-only file cannot be written; systemd keeps
    starting it (never giving up), and once the disk has room it serves again with every entry it
    acknowledged. The data directory is moved onto a 4 MB tmpfs for the test."""
    assert host.run("systemctl stop redis-server").rc == 0
    setup = (
        "cp -a /var/lib/redis /var/lib/redis.before && mount -t tmpfs -o size=4m,mode=0750 tmpfs /var/lib/redis"
        " && cp -a /var/lib/redis.before/. /var/lib/redis/ && chown redis:redis /var/lib/redis"
    )
    assert host.run(setup).rc == 0, host.run("mount").stdout
    try:
        assert host.run("systemctl start redis-server").rc == 0
        wait_for_pong(host)
        wait_for_a_replica(host)  # min-replicas-to-write 1: until one has caught up, writes are refused
        cli("del", "full-disk")
        fill = (  # 1,000 entries of 10 kB in one session: the 4 MB are full long before the end
            "pad=$(head -c 10000 /dev/zero | tr '\\0' x); for n in $(seq 1000); do"
            f' echo "xadd full-disk * n $n pad $pad"; done | REDISCLI_AUTH=%s {CLI} 2>&1'
        )
        answers = host.run(fill, password()).stdout.split()
        acknowledged = sum(bool(re.fullmatch(r"[0-9]+-[0-9]+", answer)) for answer in answers)
        assert 0 < acknowledged < 1000
        restarts = int(host.run("systemctl show -p NRestarts --value redis-server").stdout)
        time.sleep(12)  # over the 10 s in which systemd would give up after 5 starts
        assert int(host.run("systemctl show -p NRestarts --value redis-server").stdout) > restarts
        assert host.run("systemctl is-failed redis-server").stdout.strip() != "failed"
        assert host.run("mount -o remount,size=64m /var/lib/redis").rc == 0  # space freed
        wait_for_pong(host, 30)
        assert int(cli("xlen", "full-disk").split()[-1]) >= acknowledged
        wait_for_a_replica(host)
        assert "-" in cli("xadd", "full-disk", "*", "n", "after")
    finally:
        host.run("systemctl stop redis-server; umount /var/lib/redis; rm -rf /var/lib/redis.before")
        host.run("systemctl start redis-server")
    wait_for_pong(host)


def password() -> str:
    return secret("redis-password")


def wait_for_a_replica(host, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "state=online" in host.run(f"REDISCLI_AUTH=%s {CLI} INFO replication", password()).stdout:
            return
        time.sleep(0.5)
    raise AssertionError("no replica in sync")


def wait_for_pong(host, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "PONG" in host.run(f"REDISCLI_AUTH=%s {CLI} ping", password()).stdout:
            return
        time.sleep(0.5)
    raise AssertionError("Redis does not answer")
