"""A backend tells systemd it serves (Type=notify) the way sd_notify(3) does: one datagram, READY=1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from uqcrowd_log.server import notify_ready


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_is_sent_to_the_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, abstract: bool) -> None:
    path = str(tmp_path / "notify")
    address, env = (f"\0uqcrowd-{tmp_path.name}", f"@uqcrowd-{tmp_path.name}") if abstract else (path, path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(address)
        systemd.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", env)
        notify_ready()
        assert systemd.recv(64) == b"READY=1"


def test_nothing_is_sent_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notify_ready()  # run by hand or by the tests: no socket to tell, and no error
