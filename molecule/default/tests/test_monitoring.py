"""The monitoring on the whole stack: cron entries, and checks that alert the webhook (standing in for
Slack) once per incident, remind, and say when it recovered."""

from __future__ import annotations

import json
import re
import time

import pytest

from harness import load
from harness.in_container import http
from harness.report import record
from harness.watermarks import free_space_watermarks, unset

FRONT = "http://127.0.0.1:80/logger/insert"
ES = "http://127.0.0.1:9200"

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
    assert "30 * * * * root /opt/uqcrowd-log/start.sh --unless-stopped" in cron
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


def hourly_start(host) -> None:
    """The cron job that starts the backends, exactly as /etc/cron.d/uqcrowd-log has it."""
    cron = host.file("/etc/cron.d/uqcrowd-log").content_string
    job = next(line for line in cron.splitlines() if line.startswith("30 * * * * root ")).split(" root ", 1)[1]
    assert host.run(job).rc == 0


def test_reminder_after_the_repeat_interval(host):
    """The indexer stopped for maintenance (stop.sh) stays down through the hourly start (once this
    test failed when the cron job at :30 started it again between the two checks)."""
    assert host.run("/opt/uqcrowd-log/stop.sh indexer").rc == 0
    try:
        check(host, "indexer")
        hourly_start(host)
        state = json.loads(host.file("/var/lib/uqcrowd-monitor/indexer.json").content_string)
        state["alerted"] -= 61 * 60  # as if the warning went out 61 minutes ago
        host.run(f"echo '{json.dumps(state)}' > /var/lib/uqcrowd-monitor/indexer.json")
        check(host, "indexer")
    finally:
        assert host.run("/opt/uqcrowd-log/start.sh indexer").rc == 0
    check(host, "indexer")
    indexer = [m for m in messages(host) if ": indexer:" in m]
    assert [m.split()[0] for m in indexer] == ["[WARNING]", "[STILL", "[RECOVERED]"]


def test_redis_refusing_writes_is_one_incident_with_its_reason(host):
    """Redis at its maxmemory answers PING but refuses every insert: the logger check alerts once, with
    the backends' reason; the queue and dead-letter checks, which read Redis, leave it to that one."""
    redis = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/redis.conf) redis-cli"
    limit = host.run(f"{redis} config get maxmemory").stdout.split()[-1]
    before = check(host, "logger", "queue", "dead-letters")
    assert before.rc == 0, before.stdout
    host.run(f"rm -f {PAYLOADS}")
    assert host.run(f"{redis} config set maxmemory 1").rc == 0
    try:  # straight to a backend: HAProxy's checks take the backends out of rotation meanwhile
        event = {"log_type": "message", "session_id": "full-redis"}
        assert http(host, "POST", "http://127.0.0.1:5001/logger/insert", event)[0] == 503
        assert check(host, "logger", "queue", "dead-letters").rc == 1
        assert check(host, "logger", "queue", "dead-letters").rc == 1  # still: no second alert
    finally:
        assert host.run(f"{redis} config set maxmemory {limit}").rc == 0
    warnings = [m for m in messages(host) if m.startswith("[WARNING]")]
    assert len(warnings) == 1, warnings
    assert ": logger:" in warnings[0]
    assert "redis refuses writes (OutOfMemoryError)" in warnings[0]
    after = check(host, "logger", "queue", "dead-letters")
    assert after.rc == 0, after.stdout
    assert [m.split()[0] for m in messages(host)][-1] == "[RECOVERED]"


def test_redis_on_a_full_disk_refuses_with_503_alerts_once_and_heals_when_space_is_freed(host, tmp_path):
    """Redis's directory on a small filesystem (tmpfs) under 20 requests/s; the filesystem filled:
    Redis, syncing every write, exits rather than answer one it could not store (systemd starts it
    again every few seconds), so the browsers get 503 with Retry-After and keep their events; the
    logger check alerts once. Space freed: Redis starts, inserts are accepted again, nobody stepping
    in; every event answered 202 is in Elasticsearch once."""
    redis = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/redis.conf) redis-cli"
    load.install(host)
    host.run(f"rm -f {PAYLOADS}")
    host.run(f"{redis} bgrewriteaof")  # a small append-only file to move onto the small filesystem
    wait_for(lambda: "aof_rewrite_in_progress:0" in host.run(f"{redis} info persistence").stdout, 120)
    size_mb = int(host.run("du -sm /var/lib/redis").stdout.split()[0]) + 48
    moved = host.run(
        "systemctl stop redis-server && rm -rf /tmp/redis-disk && cp -a /var/lib/redis /tmp/redis-disk && "
        f"mount -t tmpfs -o size={size_mb}m,mode=0750 tmpfs /var/lib/redis && cp -a /tmp/redis-disk/. /var/lib/redis/ "
        "&& systemctl start redis-server"
    )
    assert moved.rc == 0, moved.stderr
    session = f"full-disk-{int(time.time())}"
    try:
        load.start(host, FRONT, session, 20, 300)
        time.sleep(3)
        host.run("dd if=/dev/zero of=/var/lib/redis/filler bs=1M")  # until the filesystem is full
        wait_for(lambda: http(host, "GET", "http://127.0.0.1:5001/logger/ready")[0] == 503, 60)
        assert http(host, "POST", "http://127.0.0.1:5001/logger/insert", {"log_type": "x", "session_id": "s"})[0] == 503
        assert retry_after(host, FRONT).isdigit()  # HAProxy's own 503: every backend is out of rotation
        assert check(host, "logger", "queue", "dead-letters", "indexer").rc == 1
        time.sleep(6)  # Redis tried again meanwhile
        assert check(host, "logger", "queue", "dead-letters", "indexer").rc == 1
        host.run("rm -f /var/lib/redis/filler")
        wait_for(lambda: check(host, "logger", "queue", "dead-letters", "indexer").rc == 0, 90)
        time.sleep(5)  # accepted again, under the same load
    finally:
        load.stop(host, session)
        restored = host.run(
            "systemctl stop redis-server && rm -rf /tmp/redis-disk && cp -a /var/lib/redis /tmp/redis-disk && "
            "umount /var/lib/redis && rm -rf /var/lib/redis/* && cp -a /tmp/redis-disk/. /var/lib/redis/ "
            "&& rm -f /var/lib/redis/filler && systemctl start redis-server"
        )
        assert restored.rc == 0, restored.stderr
    outcome = load.result(host, session)
    auth = ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())
    docs, _ = load.wait_stored(host, ES, auth, session, outcome["accepted"], timeout=180)
    row = load.verdict(outcome, docs)
    warnings = [m for m in messages(host) if m.startswith("[WARNING]") and ": disk:" not in m]  # the cause, its own
    record(
        "Redis's disk full under 20 req/s (a tmpfs filled), then space freed",
        row,
        f"refused 503 while full ({', '.join(f'{k}: {v}' for k, v in outcome['failed'].items())}); "
        f"{len(warnings)} alert; accepted again with nobody stepping in",
    )
    assert len(warnings) == 1, warnings
    assert ": logger:" in warnings[0]
    assert row["failed"] > 0, row  # the disk was full: the browsers were told to retry
    assert set(outcome["failed"]) <= {"503"}, outcome["failed"]
    assert row["accepted"] > 0, row
    assert row["lost"] == row["duplicated"] == 0, row


def flood_stage(host, auth, on: bool) -> None:
    """Elasticsearch's disk at its flood stage (writes blocked), or with room again (it lifts the block)."""
    settings = {"persistent": free_space_watermarks("1000tb" if on else "1kb")}
    assert http(host, "PUT", f"{ES}/_cluster/settings", settings, auth=auth)[0] == 200


def test_elasticsearch_at_its_flood_stage_under_load_is_one_alert_and_heals_by_itself(host):
    """Elasticsearch's disk at its flood stage (its own monitor, watermarks above the free space) under
    20 requests/s: inserts go on (they wait in Redis), the indexer pauses on the block and the indexer
    check alerts once; room again: Elasticsearch lifts the block, everything is indexed, nothing dead-lettered."""
    load.install(host)
    auth = ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())
    host.run(f"rm -f {PAYLOADS}")
    dead_letters = dead_letter_depth(host)
    session = f"flood-{int(time.time())}"
    load.start(host, FRONT, session, 20, 300)
    try:
        time.sleep(3)
        flood_stage(host, auth, on=True)
        wait_for(
            lambda: "uqcrowd_indexer_fault{" in str(http(host, "GET", "http://127.0.0.1:5001/logger/metrics")[1]), 90
        )
        assert check(host, "logger", "queue", "dead-letters", "indexer").rc == 1
        time.sleep(3)
        assert check(host, "logger", "queue", "dead-letters", "indexer").rc == 1
    finally:
        flood_stage(host, auth, on=False)
    wait_for(lambda: check(host, "indexer").rc == 0, 90)
    load.stop(host, session)
    outcome = load.result(host, session)
    docs, drained = load.wait_stored(host, ES, auth, session, outcome["accepted"], timeout=180)
    http(host, "PUT", f"{ES}/_cluster/settings", {"persistent": unset()}, auth=auth)
    row = load.verdict(outcome, docs)
    warnings = [m for m in messages(host) if m.startswith("[WARNING]")]
    record(
        "Elasticsearch's disk at its flood stage under 20 req/s, then room again",
        row,
        f"indexing paused on the block, {len(warnings)} alert; the block lifted by Elasticsearch, "
        f"the backlog indexed {drained:.0f} s later, 0 dead-lettered",
    )
    assert len(warnings) == 1, warnings
    assert ": indexer:" in warnings[0]
    assert "cluster_block_exception" in warnings[0]
    assert dead_letter_depth(host) == dead_letters  # none of these
    assert row["failed"] == 0, row  # accepted throughout
    assert row["lost"] == row["duplicated"] == 0, row


def dead_letter_depth(host) -> float:
    _, text = http(host, "GET", "http://127.0.0.1:5001/logger/metrics")
    return float(re.search(r"^uqcrowd_dead_letter_depth (\S+)$", str(text), re.M).group(1))


def retry_after(host, url: str) -> str:
    """The Retry-After header of the answer to an insert (empty if none)."""
    script = (
        "import urllib.request, urllib.error\n"
        f"request = urllib.request.Request('{url}', data=b'{{}}', method='POST')\n"
        "try:\n    print(urllib.request.urlopen(request, timeout=10).headers.get('Retry-After', ''))\n"
        "except urllib.error.HTTPError as error:\n    print(error.headers.get('Retry-After', ''))\n"
    )
    return host.run("python3 -c %s", script).stdout.strip()


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)


def test_an_indexing_lag_over_its_threshold_is_an_incident(host):
    """The indexer stopped: events wait in Redis, accepted; the queue check says how long the oldest has."""
    tweak = (
        "import json; c = json.load(open('/etc/uqcrowd-monitor/monitor.json')); "
        "c.update(lag_threshold=2, state_dir='/tmp/lag-state'); json.dump(c, open('/tmp/lag.json', 'w'))"
    )
    assert host.run(f'mkdir -p /tmp/lag-state && python3 -c "{tweak}" && chmod 600 /tmp/lag.json').rc == 0
    lagging = "UQCROWD_MONITOR_CONFIG=/tmp/lag.json /usr/local/bin/uqcrowd-check queue"
    assert host.run("/opt/uqcrowd-log/stop.sh indexer").rc == 0
    try:
        event = {"log_type": "message", "session_id": "lag"}
        assert http(host, "POST", "http://127.0.0.1:80/logger/insert", event)[0] == 202
        time.sleep(4)  # twice the threshold
        late = host.run(lagging)
        assert late.rc == 1, late.stdout
        assert "threshold 2 s" in late.stdout
    finally:
        assert host.run("/opt/uqcrowd-log/start.sh indexer").rc == 0
    for _ in range(30):
        if host.run(lagging).rc == 0:
            break
        time.sleep(1)
    assert host.run(lagging).rc == 0
    host.run("rm -rf /tmp/lag.json /tmp/lag-state")
