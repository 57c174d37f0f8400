"""Settings from the environment: what is refused at start, in one line."""

from __future__ import annotations

import pytest

from uqcrowd_log.config import ConfigError, Settings


@pytest.mark.parametrize("given", [{"UQCROWD_TLS_CERT": "/c.pem"}, {"UQCROWD_TLS_KEY": "/k.pem"}])
def test_a_certificate_without_its_key_or_a_key_without_its_certificate_is_refused(given):
    with pytest.raises(ConfigError, match="UQCROWD_TLS_CERT and UQCROWD_TLS_KEY go together"):
        Settings.from_env(given)


def test_https_is_off_unless_both_are_given():
    assert (Settings.from_env({}).server.tls_cert_file, Settings.from_env({}).server.tls_key_file) == ("", "")
    both = Settings.from_env({"UQCROWD_TLS_CERT": "/c.pem", "UQCROWD_TLS_KEY": "/k.pem"})
    assert (both.server.tls_cert_file, both.server.tls_key_file) == ("/c.pem", "/k.pem")


def test_seen_groups_name_their_experiments():
    groups = Settings.from_env({"UQCROWD_SEEN_GROUPS": "study-a=a1|a2, study-b=b1"}).dashboard.seen_groups
    assert groups == {"study-a": ("a1", "a2"), "study-b": ("b1",)}
    assert Settings.from_env({}).dashboard.seen_groups == {}


@pytest.mark.parametrize("raw", ["study-a", "study-a=", "=a1", "study-a=|"])
def test_a_seen_group_without_experiments_is_refused(raw):
    with pytest.raises(ConfigError, match=r"UQCROWD_SEEN_GROUPS: .* is not group=experiment"):
        Settings.from_env({"UQCROWD_SEEN_GROUPS": raw})


def test_the_command_lines_users_are_read_with_the_rest():
    toolkit = Settings.from_env(
        {
            "UQCROWD_TOOLKIT_READER_USERNAME": "uqcrowd_reader",
            "UQCROWD_TOOLKIT_READER_PASSWORD": "r-secret",
            "UQCROWD_TOOLKIT_WITHDRAWER_USERNAME": "uqcrowd_withdrawer",
            "UQCROWD_TOOLKIT_CURATOR_PASSWORD": "a password without its user",
            "UQCROWD_AUDIT_LOG": "/tmp/audit.log",
        }
    ).toolkit
    assert toolkit.users == {"reader": ("uqcrowd_reader", "r-secret"), "withdrawer": ("uqcrowd_withdrawer", "")}
    assert (toolkit.audit_log, toolkit.session_index_prefix) == ("/tmp/audit.log", "uqcrowd-session")
    assert "r-secret" not in repr(toolkit)
    defaults = Settings.from_env({}).toolkit
    assert (defaults.users, defaults.audit_log) == ({}, "/var/log/uqcrowd-log/withdrawals.log")


def test_settings_change_by_group_and_refuse_a_name_no_group_has():
    settings = Settings.from_env({"UQCROWD_REDIS_PREFIX": "study"})
    changed = settings.changed(redis={"url": "redis://elsewhere:6379/0"}, queue={"quarantine_max": 3})
    assert (changed.redis.url, changed.redis.prefix, changed.queue.quarantine_max) == (
        "redis://elsewhere:6379/0",
        "study",
        3,
    )
    assert settings.redis.url == "redis://127.0.0.1:6379/0"  # the original is untouched
    with pytest.raises(TypeError):
        settings.changed(redis={"max_batch": 3})


def test_flags_are_read_as_experiment_to_rules_and_bad_json_is_refused_in_one_line():
    raw = '{"study-a": ["paste_share > 0.5"], "*": ["active_seconds < 60"]}'
    assert Settings.from_env({"UQCROWD_FLAGS": raw}).toolkit.flags == {
        "study-a": ("paste_share > 0.5",),
        "*": ("active_seconds < 60",),
    }
    assert Settings.from_env({}).toolkit.flags == {}  # nothing flagged until the researcher says
    for bad in ("{", '["paste_share > 0.5"]', '{"study": "paste_share > 0.5"}'):
        with pytest.raises(ConfigError, match="UQCROWD_FLAGS") as refused:
            Settings.from_env({"UQCROWD_FLAGS": bad})
        assert "\n" not in str(refused.value)


def test_sentinels_are_host_port_pairs_and_a_bad_one_is_named():
    redis = Settings.from_env(
        {"UQCROWD_REDIS_SENTINELS": "10.0.0.1:26379, [fd00::2]:26380", "UQCROWD_REDIS_REPLICAS": "1"}
    ).redis
    assert redis.sentinels == (("10.0.0.1", 26379), ("fd00::2", 26380))
    assert (redis.replicas, redis.without_replica) == (1, "refuse")  # the safe default: 503, the page keeps it
    with pytest.raises(ConfigError, match=r"UQCROWD_REDIS_SENTINELS: '10\.0\.0\.3' is not host:port"):
        Settings.from_env({"UQCROWD_REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.3"})
    with pytest.raises(ConfigError, match="UQCROWD_REDIS_WITHOUT_REPLICA='drop' must be one of: refuse, accept"):
        Settings.from_env({"UQCROWD_REDIS_WITHOUT_REPLICA": "drop"})


@pytest.mark.parametrize(
    ("variable", "allowed"),
    [("UQCROWD_MODE", "queue, direct"), ("UQCROWD_CLIENT_IP", "full, truncated, none")],
)
def test_a_choice_outside_its_values_is_refused_with_the_values_named(variable, allowed):
    with pytest.raises(ConfigError, match=f"{variable}='sometimes' must be one of: {allowed}$"):
        Settings.from_env({variable: "sometimes"})
    assert Settings.from_env({variable: " "}) == Settings.from_env({})  # blank: the default
