"""The monitoring role on a bare host: what it installs, and one alert per incident for what is missing."""

from __future__ import annotations

import json
import time

SECRET = "molecule-secret-4f9d2c"
PAYLOADS = "/var/lib/webhook-receiver/payloads.jsonl"


def messages(host) -> list[str]:
    text = host.run(f"cat {PAYLOADS} 2>/dev/null").stdout
    return [json.loads(line)["payload"]["text"] for line in text.splitlines() if line.strip()]


def test_cron_runs_only_the_checks_this_host_needs_into_the_journal(host):
    cron = host.file("/etc/cron.d/uqcrowd-log").content_string
    jobs = [line for line in cron.splitlines() if " root " in line]
    assert jobs == [
        "*/5 * * * * root /usr/local/bin/uqcrowd-check elasticsearch 2>&1 >/dev/null | systemd-cat -t uqcrowd-monitor",
        "*/5 * * * * root /usr/local/bin/uqcrowd-check indexer 2>&1 >/dev/null | systemd-cat -t uqcrowd-monitor",
    ]  # no start.sh here, no "disk" where Elasticsearch keeps no data
    assert host.service("cron").is_running
    assert not host.package("exim4-base").is_installed


def test_a_missing_service_is_one_warning_however_often_checked(host):
    host.run(f"rm -f {PAYLOADS} /var/lib/uqcrowd-monitor/*.json")
    for _ in range(3):
        assert host.run("/usr/local/bin/uqcrowd-check elasticsearch").rc == 1
    [warning] = messages(host)
    assert warning.startswith("[WARNING] uqcrowd-monitoring: elasticsearch: Elasticsearch unreachable")


def test_notifier_fails_fast_and_loudly_without_the_webhook(host):
    assert host.run("systemctl stop webhook-receiver").rc == 0
    try:
        started = time.monotonic()
        result = host.run("echo '[WARNING] test' | timeout 60 /opt/tools/send-slack-message.py")
        elapsed = time.monotonic() - started
    finally:
        host.run("systemctl start webhook-receiver")
    assert result.rc == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not delivered" in result.stderr
    assert SECRET not in result.stderr
    assert elapsed < 30


def test_webhook_url_only_in_the_root_only_file(host):
    config = host.file("/etc/uqcrowd-monitor/slack.json")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)
    assert SECRET in config.content_string
    half = len(SECRET) // 2  # joined by the shell: the command line (which the journal records) never holds it
    found = host.run(
        f'a={SECRET[:half]}; b={SECRET[half:]}; grep -rlF "$a$b" /etc /opt /usr/local /var/log /var/lib '
        "/tmp --exclude-dir=webhook-receiver 2>/dev/null"
    ).stdout.split()
    assert found == ["/etc/uqcrowd-monitor/slack.json"]
    assert SECRET not in host.run("journalctl --no-pager").stdout
