"""Three Redis hosts as roles/redis leaves them with redis_peers and a Sentinel on each: the first the
primary, the others its replicas in sync, over TLS verified with the hosts' CAs; the Sentinels agree on
the primary, and when it is cut off from the others (a partition: its Redis and its Sentinel on the
minority side, a backend still reaching it) promote a replica, while the old primary acknowledges
nothing; healed, the old primary is a replica of the new one; the next converge writes down what the
Sentinels decided without restarting Redis, and the one after changes nothing. (A primary killed is
tests/service/test_failover.py's case, three times a run, and the whole stack's in molecule/multihost.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.playbook import run, run_unchanged
from harness.report import record

TRUSTED = "/etc/redis/tls/trusted.crt"  # the three hosts' CAs
SERVICE = "uqcrowd"
CONVERGE = "roles/redis/molecule/default/converge.yml"


def secret(name: str) -> str:
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name).read_text().strip()


def redis(host, *args: str, port: int = 6379, password: str = "") -> str:
    """redis-cli over TLS to this host's Redis (or its Sentinel: port 26379), as the default user."""
    password = password or secret("redis-password" if port == 6379 else "sentinel-password")
    command = f"REDISCLI_AUTH=%s redis-cli --tls --cacert {TRUSTED} -p {port} " + " ".join(["%s"] * len(args))
    return host.run(command, password, *args).stdout.strip()


def sentinel(host, *args: str) -> str:
    return redis(host, "SENTINEL", *args, port=26379)


def address(host) -> str:
    facts = host.ansible("ansible.builtin.setup", "filter=ansible_default_ipv4")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


def info(host) -> dict[str, str]:
    lines = redis(host, "INFO", "replication").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def primary_by(host) -> str:
    """The primary this host's Sentinel names, "address:port" ("" if it names none)."""
    return ":".join(sentinel(host, "get-master-addr-by-name", SERVICE).split())


def wait(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {seconds:.0f} s")


def in_sync(primary, replicas: int) -> bool:
    now = info(primary)
    return now.get("role") == "master" and sum("state=online" in now.get(f"slave{i}", "") for i in range(3)) == replicas


def test_the_first_host_is_primary_with_two_replicas_in_sync_over_tls(hosts):
    first, *others = hosts.values()
    wait(lambda: in_sync(first, 2), 30, "two replicas in sync")
    assert written(first, "uqcrowd-log:replicated")
    for replica in others:
        now = info(replica)
        assert (now["role"], now["master_host"], now["master_link_status"]) == ("slave", address(first), "up")
        wait(lambda r=replica: redis(r, "XLEN", "uqcrowd-log:replicated") == "1", 10, "the entry on the replica")
        assert "READONLY" in redis(replica, "XADD", "uqcrowd-log:replicated", "*", "n", "2")
        trusted = replica.file(TRUSTED).content_string
        assert trusted.count("BEGIN CERTIFICATE") == 3  # its own CA and its two peers'
        assert first.file("/etc/redis/tls/ca.crt").content_string in trusted
    redis(first, "DEL", "uqcrowd-log:replicated")


def test_every_sentinel_names_the_first_host_and_knows_the_others_and_asks_a_password(hosts):
    first = next(iter(hosts.values()))
    for host in hosts.values():
        assert primary_by(host) == f"{address(first)}:6379"
        fields = sentinel(host, "master", SERVICE).splitlines()
        known = dict(zip(fields[::2], fields[1::2], strict=False))
        assert (known["num-slaves"], known["num-other-sentinels"], known["quorum"]) == ("2", "2", "2"), known
        refused = host.run(f"redis-cli --tls --cacert {TRUSTED} -p 26379 SENTINEL masters")
        assert "NOAUTH" in refused.stdout + refused.stderr
        plain = host.run("redis-cli -p 26379 PING")
        assert "PONG" not in plain.stdout


def test_the_primary_refuses_writes_while_no_replica_is_connected(hosts):
    """min-replicas-to-write 1: a primary cut off from its replicas acknowledges nothing (NOREPLICAS),
    so nothing it answered can be dropped by a promotion on the other side."""
    first, *others = hosts.values()
    for replica in others:
        assert replica.run("systemctl stop redis-server").rc == 0
    try:
        wait(lambda: "NOREPLICAS" in redis(first, "SET", "uqcrowd-log:x", "1"), 15, "the primary refusing writes")
    finally:
        for replica in others:
            replica.run("systemctl start redis-server")
    wait(lambda: in_sync(first, 2), 30, "the replicas back in sync")
    assert redis(first, "SET", "uqcrowd-log:x", "1") == "OK"
    redis(first, "DEL", "uqcrowd-log:x")


def written(host, key: str) -> str:
    """The id of an entry appended to `key` on this host's Redis ("" if refused)."""
    answer = redis(host, "XADD", key, "*", "n", "1")
    return answer if answer.count("-") == 1 and " " not in answer else ""


def acknowledged(host, key: str, n: int) -> tuple[str, int]:
    """A backend's insert on this host's Redis: the entry appended, then `WAIT 1 500` on the same
    connection, as the service does before its 202. (the XADD's answer, the replicas holding it: WAIT's
    answer, which counts every replica that has it by then, so 1 or 2 once one has)."""
    commands = f"XADD {key} * n {n}\nWAIT 1 500\n"
    command = f"printf %s | REDISCLI_AUTH=%s redis-cli --tls --cacert {TRUSTED} -p 6379"
    answers = host.run(command, commands, secret("redis-password")).stdout.strip().splitlines()
    return answers[0], int(answers[-1])


# A failover's longest way, twice: down-after (2 s) and a split vote's retry, twice the failover-timeout
# (8 s) after the first try (roles/redis/molecule/default/molecule.yml), then the replica's resync.
PROMOTED_WITHIN = 2 * (2 + 2 * 8 + 10)


def elections(hosts) -> str:
    """What these hosts' Sentinels logged of the failover (their votes, a split vote's abort, the
    promotion), for a failure's message."""
    marks = "odown|vote|leader|elected|failover|promoted|switch-master|slave"
    command = f"grep -E '{marks}' /var/log/redis/redis-sentinel.log | tail -n 15"
    return "\n".join(host.run(command).stdout for host in hosts)


def cut(host, *others, undo: bool = False) -> None:
    """Drop every packet between this host and the others (a blackhole route to each: both ends are cut,
    as a switch's fault would)."""
    for other in others:
        result = host.run(f"ip route {'del' if undo else 'add'} blackhole {address(other)}/32")
        assert result.rc == 0, result.stderr


@pytest.mark.leaves_changes
def test_the_primary_cut_off_from_the_others_refuses_writes_and_loses_nothing_it_acknowledged(hosts):
    """A partition: the primary's host (its Redis and its Sentinel) cut off from the two others, still
    reached by a backend on its own side. The two Sentinels on the other side promote a replica; the
    old primary takes writes no replica acknowledges (the service answers them 503: the page sends them
    again), then refuses every write once its replicas are min-replicas-max-lag behind; healed, it
    becomes a replica of the new primary. Every entry acknowledged by a replica is kept."""
    address_of = {f"{address(host)}:6379": host for host in hosts.values()}
    old = address_of[primary_by(next(iter(hosts.values())))]
    others = [host for host in hosts.values() if host is not old]
    key = "uqcrowd-log:partition"
    kept = []
    for n in range(5):
        entry, replicas = acknowledged(old, key, n)
        assert replicas >= 1, (entry, replicas)
        kept.append(entry)
    cut(old, *others)
    for other in others:
        cut(other, old)
    started = time.monotonic()
    try:
        unacknowledged, refused_after, promoted, promoted_after, written_after = 0, 0.0, "", 0.0, 0.0
        for n in range(5, 500):  # the old primary's side writing, the other side watched meanwhile
            if not refused_after:
                entry, replicas = acknowledged(old, key, n)
                if "NOREPLICAS" in entry:
                    refused_after = time.monotonic() - started
                else:
                    assert replicas == 0, (entry, replicas)  # nothing reaches a replica now
                    unacknowledged += 1
            if not promoted and (now := primary_by(others[0])) not in ("", f"{address(old)}:6379"):
                promoted, promoted_after = now, time.monotonic() - started
            if promoted and not written_after:  # a backend on the other side writes to the new primary
                entry, replicas = acknowledged(address_of[promoted], key, 1000 + n)
                if replicas >= 1:
                    kept.append(entry)
                    written_after = time.monotonic() - started
            if (refused_after and written_after) or time.monotonic() - started > PROMOTED_WITHIN:
                break
        assert refused_after, "the cut-off primary never refused a write"
        assert refused_after < 2 * 10, refused_after  # within min-replicas-max-lag (10 s), on a noisy machine
        assert written_after, (promoted, promoted_after, "no write acknowledged on the other side", elections(others))
        new = address_of[promoted]
    finally:
        cut(old, *others, undo=True)
        for other in others:
            cut(other, old, undo=True)
    healed = time.monotonic()
    wait(lambda: info(old).get("master_link_status") == "up", 90, "the old primary back as a replica")
    rejoined_after = time.monotonic() - healed
    assert info(old)["role"] == "slave"
    for host in hosts.values():  # every acknowledged entry on every host, the unacknowledged on none
        wait(lambda h=host: redis(h, "XLEN", key) == str(len(kept)), 30, f"{len(kept)} entries on each host")
        assert redis(host, "XRANGE", key, "-", "+").split().count("n") == len(kept)
        assert all(entry in redis(host, "XRANGE", key, "-", "+") for entry in kept)
    redis(new, "DEL", key)

    for host in hosts.values():  # the Sentinels' CONFIG REWRITE was refused: Ansible's file, untouched
        assert host.file("/etc/redis/redis.conf").user == "root"
    output = run(CONVERGE)  # writes down the Sentinels' decision (replication.conf), restarting nothing
    assert "RUNNING HANDLER [redis : Restart redis]" not in output
    assert f"replicaof {promoted.replace(':', ' ')}" in old.file("/etc/redis/replication.conf").content_string
    assert "This host is the primary" in new.file("/etc/redis/replication.conf").content_string
    run_unchanged(CONVERGE)
    record(
        "the primary's host cut off from the two others (blackhole routes both ways), a client on its side"
        " inserting as a backend does (XADD, then WAIT 1)",
        {
            "promoted": f"{promoted_after:.1f} s",
            "written": f"{written_after:.1f} s",
            "rejoined": f"{rejoined_after:.1f} s after the heal",
        },
        f"the old primary refused every write {refused_after:.1f} s after the cut, after {unacknowledged} that"
        f" no replica acknowledged (the service's 503); after the heal the {len(kept)} acknowledged entries on"
        " each host, the unacknowledged on none; the next converge wrote replication.conf down without"
        " restarting Redis, the one after changed=0",
        table="redis-hosts",
    )
