"""The firewall role's table, seen from outside the container (this machine, its gateway) and from inside."""

from __future__ import annotations

import re
import socket

import pytest

PORTS = [7001, 7002, 7003, 7004]


@pytest.fixture(scope="module")
def address(host) -> str:
    """The container's address, with a listener on each port (gone with the container)."""
    for port in PORTS:
        host.run(f"systemd-run --unit=listener-{port} python3 -m http.server --bind 0.0.0.0 {port}")
    for port in PORTS:
        assert host.run(f"timeout 10 sh -c 'until ss -Htln sport = :{port} | grep -q .; do sleep 0.2; done'").rc == 0
    return host.check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1")


def reachable(address: str, port: int) -> bool:
    """True when a TCP connection from this machine is accepted within 3 s (a dropped packet: False)."""
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def test_allowed_source_gets_in_and_every_other_is_dropped(address):
    assert [reachable(address, port) for port in PORTS] == [True, False, False, False]


def test_the_host_itself_reaches_every_port(host, address):
    for port in PORTS:
        assert host.run(f"python3 -c 'import socket; socket.create_connection((\"{address}\", {port}), 3)'").rc == 0


def dropped(host) -> int:
    """Packets the "nobody" rule has dropped so far (its counter)."""
    ruleset = host.check_output("nft list table inet uqcrowd_log")
    match = re.search(r'counter packets (\d+) bytes \d+ drop comment "nobody"', ruleset)
    assert match, ruleset
    return int(match.group(1))


def test_the_table_is_loaded_at_boot_and_counts_what_it_drops(host, address):
    unit = host.service("uqcrowd-firewall")
    assert unit.is_enabled
    assert unit.is_running  # active (exited): a oneshot that stays active while its table is loaded
    before = dropped(host)
    assert not reachable(address, 7003)
    assert dropped(host) > before  # the SYN and its retries


def test_a_reload_of_the_hosts_own_ruleset_which_flushes_everything_loads_the_table_again(host, address):
    assert "flush ruleset" in host.file("/etc/nftables.conf").content_string  # Debian's, as installed
    assert host.run("systemctl restart nftables").rc == 0
    assert host.run("nft list table inet uqcrowd_log").rc == 0
    assert not reachable(address, 7002)
    assert host.run("systemctl reload nftables").rc == 0
    assert host.run("nft list table inet uqcrowd_log").rc == 0
    assert not reachable(address, 7002)


def test_stopping_the_unit_opens_the_ports_again(host, address):
    """What firewall_enabled: false does (its tasks stop the unit and remove its files)."""
    assert host.run("systemctl stop uqcrowd-firewall").rc == 0
    try:
        assert reachable(address, 7002)
    finally:
        assert host.run("systemctl start uqcrowd-firewall").rc == 0
    assert not reachable(address, 7002)
