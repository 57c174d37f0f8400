"""Pure tests of what is kept of an address, of the allow-lists (addresses, origins), of the side lists' bounds
and of retention's choice."""

from __future__ import annotations

from datetime import date

import pytest

from uqcrowd_log.config import ConfigError, Settings
from uqcrowd_log.origins import origin_allowed
from uqcrowd_log.proxies import client_ip, recorded_ip
from uqcrowd_log.stored_events.retention import expired


@pytest.mark.parametrize(
    ("address", "mode", "kept"),
    [
        ("198.51.100.77", "full", "198.51.100.77"),
        ("198.51.100.77", "truncated", "198.51.100.0"),
        ("2001:db8:abcd:12::1", "truncated", "2001:db8:abcd::"),
        ("198.51.100.77", "none", None),
        ("not-an-address", "truncated", None),
    ],
)
def test_recorded_ip(address, mode, kept):
    assert recorded_ip(address, mode) == kept


LOOPBACK = Settings.from_env({"UQCROWD_REDIS_URL": "redis://r", "UQCROWD_ES_URL": "http://e"}).ingest.trusted_proxies


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", "2001:DB8::0001", "2001:db8::1"),  # kept in its canonical form
        ("127.0.0.1", "x" * 5000, "127.0.0.1"),  # junk from the client: the proxy's own address, as before
        ("127.0.0.1", "198.51.100.7, " + "9" * 46, "127.0.0.1"),
        ("203.0.113.9", None, "203.0.113.9"),
    ],
)
def test_client_ip_walks_only_trusted_hops_and_keeps_addresses_only(peer, forwarded, expected):
    for _ in range(2):  # the second time from the cache
        assert client_ip(peer, forwarded, LOOPBACK) == expected


def test_settings_read_the_privacy_variables():
    settings = Settings.from_env({"UQCROWD_CLIENT_IP": "truncated", "UQCROWD_EXPERIMENTS": "a, b=tok ,,"})
    assert settings.ingest.client_ip == "truncated"
    assert dict(settings.ingest.experiments) == {"a": "", "b": "tok"}
    with pytest.raises(ConfigError, match="UQCROWD_CLIENT_IP"):
        Settings.from_env({"UQCROWD_CLIENT_IP": "hashed"})


def test_retention_picks_daily_indices_older_than_n_days_of_its_prefixes_only():
    names = [
        "uqcrowd-log-2026-11-28", "uqcrowd-log-2026-10-29", "uqcrowd-log-2026-10-28", "uqcrowd-log-2025-01-01",
        "uqcrowd-session-2026-01-01", "uqcrowd-log-notes", "other-2020-01-01", "uqcrowd-log-x-2020-01-01",
        "uqcrowd-log-2026-13-45",
    ]  # fmt: skip
    doomed = expired(names, ["uqcrowd-log", "uqcrowd-session"], 30, date(2026, 11, 28))
    assert doomed == ["uqcrowd-log-2025-01-01", "uqcrowd-log-2026-10-28", "uqcrowd-session-2026-01-01"]


@pytest.mark.parametrize(
    ("origin", "allowed", "taken"),
    [
        ("https://tasks.example.org", ("*",), True),
        ("https://tasks.example.org", ("https://tasks.example.org",), True),
        ("https://tasks.example.org.evil.example", ("https://tasks.example.org",), False),
        ("http://tasks.example.org", ("https://tasks.example.org",), False),  # another scheme, another origin
        ("null", ("https://tasks.example.org",), False),  # a sandboxed page or a file
    ],
)
def test_an_origin_is_taken_only_when_listed_exactly_or_any_is(origin, allowed, taken):
    assert origin_allowed(origin, allowed) is taken


def test_the_side_lists_bounds_default_to_an_eighth_of_the_high_water_mark_each():
    settings = Settings.from_env({"UQCROWD_QUEUE_HIGH_WATER_BYTES": "8000000"})
    assert (settings.queue.quarantine_max_bytes, settings.queue.dead_letter_max_bytes) == (1_000_000, 1_000_000)
    own = Settings.from_env({"UQCROWD_QUARANTINE_MAX_BYTES": "5", "UQCROWD_DEAD_LETTER_MAX_BYTES": "7"})
    assert (own.queue.quarantine_max_bytes, own.queue.dead_letter_max_bytes) == (5, 7)
    with pytest.raises(ConfigError, match="UQCROWD_QUARANTINE_MAX_BYTES"):
        Settings.from_env({"UQCROWD_QUARANTINE_MAX_BYTES": "0"})
