"""The monitoring on the whole stack: cron entries, and checks that alert the webhook (standing in for
Slack) once per incident, remind, and say when it recovered."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.in_container import http

PAYLOADS = "/var/lib/webhook-receiver/payloads.jsonl"


def messages(host) -> list[str]:
    text = host.run(f"cat {PAYLOADS} 2>/dev/null").stdout
    return [json.loads(line)["payload"]["text"] for line in text.splitlines() if line.strip()]


def check(host, *names: str):
    return host.run("/usr/local/bin/uqcrowd-check " + " ".join(names))


@pytest.fixture(scope="module", autouse=True)
def quiet_start(host):
    host.run(f"rm -f {PAYLOADS} /var/lib/uqcrowd-monitor/*.json")


def test_cron_entries_keep_the_original_schedules(host):
    cron = host.file("/etc/cron.d/uqcrowd-log").content_string
    assert "30 * * * * root /opt/uqcrowd-log/start.sh" in cron
    assert "*/5 * * * * root /usr/local/bin/uqcrowd-check elasticsearch" in cron
    assert "*/5 * * * * root /usr/local/bin/uqcrowd-check logger queue dead-letters indexer disk" in cron
    assert host.service("cron").is_running


def test_job_errors_go_to_the_journal_not_to_a_mail_server(host):
    jobs = [line for line in host.file("/etc/cron.d/uqcrowd-log").content_string.splitlines() if " root " in line]
    assert len(jobs) == 3
    assert all(job.endswith("2>&1 >/dev/null | systemd-cat -t uqcrowd-monitor") for job in jobs)
    assert not host.package("exim4-base").is_installed


def test_everything_up_sends_nothing(host):
    result = check(host, "elasticsearch", "logger", "queue", "dead-letters", "indexer", "disk")
    assert result.rc == 0, result.stdout + result.stderr
    assert messages(host) == []


def test_one_warning_per_incident_and_one_recovery(host):
    assert host.run("systemctl stop elasticsearch").rc == 0
    try:
        assert check(host, "elasticsearch").rc == 1
        first = messages(host)
        assert len(first) == 1
        assert first[0].startswith("[WARNING] uqcrowd-stack: elasticsearch:")
        assert "Elasticsearch" in first[0]
        assert check(host, "elasticsearch").rc == 1  # still down: no second message
        assert messages(host) == first
    finally:
        assert host.run("systemctl start elasticsearch").rc == 0
    for _ in range(60):
        if check(host, "elasticsearch").rc == 0:
            break
        time.sleep(2)
    after = messages(host)
    assert len(after) == 2
    assert after[1].startswith("[RECOVERED] uqcrowd-stack: elasticsearch:")
    assert check(host, "elasticsearch").rc == 0
    assert len(messages(host)) == 2


def test_reminder_after_the_repeat_interval(host):
    assert host.run("systemctl stop uqcrowd-indexer").rc == 0
    try:
        check(host, "indexer")
        state = json.loads(host.file("/var/lib/uqcrowd-monitor/indexer.json").content_string)
        state["alerted"] -= 61 * 60  # as if the warning went out 61 minutes ago
        host.run(f"echo '{json.dumps(state)}' > /var/lib/uqcrowd-monitor/indexer.json")
        check(host, "indexer")
    finally:
        host.run("systemctl start uqcrowd-indexer")
    check(host, "indexer")
    indexer = [m for m in messages(host) if ": indexer:" in m]
    assert [m.split()[0] for m in indexer] == ["[WARNING]", "[STILL", "[RECOVERED]"]


def test_inserts_answered_503_are_an_incident_even_while_every_process_runs(host):
    """Redis at its maxmemory (or unable to persist) answers PING but refuses every insert."""
    redis = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/redis.conf) redis-cli"
    limit = host.run(f"{redis} config get maxmemory").stdout.split()[-1]
    assert check(host, "queue").rc == 0
    assert host.run(f"{redis} config set maxmemory 1").rc == 0
    try:  # straight to a backend: HAProxy's checks take the backends out of rotation meanwhile
        event = {"log_type": "message", "session_id": "full-redis"}
        assert http(host, "POST", "http://127.0.0.1:5001/logger/insert", event)[0] == 503
        assert check(host, "queue").rc == 1
    finally:
        assert host.run(f"{redis} config set maxmemory {limit}").rc == 0
    warning = [m for m in messages(host) if ": queue:" in m]
    assert len(warning) == 1
    assert "requests answered 503 since the last check" in warning[0]
    assert check(host, "queue").rc == 0  # none since
    assert [m.split()[0] for m in messages(host) if ": queue:" in m] == ["[WARNING]", "[RECOVERED]"]


def test_an_indexing_lag_over_its_threshold_is_an_incident(host):
    """The indexer stopped: events wait in Redis, accepted; the queue check says how long the oldest has."""
    tweak = (
        "import json; c = json.load(open('/etc/uqcrowd-monitor/monitor.json')); "
        "c.update(lag_threshold=2, state_dir='/tmp/lag-state'); json.dump(c, open('/tmp/lag.json', 'w'))"
    )
    assert host.run(f'mkdir -p /tmp/lag-state && python3 -c "{tweak}" && chmod 600 /tmp/lag.json').rc == 0
    lagging = "UQCROWD_MONITOR_CONFIG=/tmp/lag.json /usr/local/bin/uqcrowd-check queue"
    assert host.run("systemctl stop uqcrowd-indexer").rc == 0
    try:
        event = {"log_type": "message", "session_id": "lag"}
        assert http(host, "POST", "http://127.0.0.1:80/logger/insert", event)[0] == 202
        time.sleep(4)  # twice the threshold
        late = host.run(lagging)
        assert late.rc == 1, late.stdout
        assert "threshold 2 s" in late.stdout
    finally:
        assert host.run("systemctl start uqcrowd-indexer").rc == 0
    for _ in range(30):
        if host.run(lagging).rc == 0:
            break
        time.sleep(1)
    assert host.run(lagging).rc == 0
    host.run("rm -rf /tmp/lag.json /tmp/lag-state")
