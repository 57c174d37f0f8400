"""site.yml on three hosts: lb (HAProxy), app (backends, indexer, monitors), data (Redis, Elasticsearch).

Every request crosses the private network: client -> lb -> app -> data."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.in_container import (
    assert_backend_count,
    haproxy_servers,
    http,
    listening,
    ports_of,
    post_with_one_backend_stopped,
    running_backends,
    wait_documents,
)
from tests.support.playbook import converge, run_unchanged

_REDIS_PING = (
    "import socket, sys; s = socket.create_connection((sys.argv[1], 6379), 5); "
    "s.sendall(b'PING\\r\\n'); print(s.recv(200).decode().strip())"
)


def front(addresses) -> str:
    return f"http://{addresses['lb']}:80/logger"


def es(addresses) -> str:
    return f"https://{addresses['data']}:9200"


def test_each_host_runs_only_its_part(lb, app, data):
    assert lb.service("haproxy").is_running
    assert app.service("uqcrowd-logger@5001").is_running
    assert app.service("uqcrowd-indexer").is_running
    assert data.service("redis-server").is_running
    assert data.service("elasticsearch").is_running
    for host, absent in [(lb, ["redis-server", "java", "python3"]), (app, ["redis-server", "java", "haproxy"])]:
        for process in absent:
            assert host.run(f"pgrep -x {process}").rc == 1, f"{process} on {host.backend.host}"
    assert data.run("pgrep -x haproxy").rc == 1
    assert not data.file("/opt/uqcrowd-log").exists


def test_an_event_from_another_host_is_stored_with_the_callers_address(app, data, addresses, elastic):
    session = f"mh-{uuid.uuid4().hex[:8]}"
    event = {"log_type": "message", "session_id": session, "sequence_number": 0, "content": {"message": "hi"}}
    answer = http(app, "POST", f"{front(addresses)}/insert", event, content_type="text/plain")
    assert answer == (202, {"accepted": 1, "rejected": 0})
    docs = wait_documents(data, es(addresses), elastic, session, 1)
    assert [d["content"] for d in docs] == [{"message": "hi"}]
    # HAProxy's X-Forwarded-For is trusted because lb is a trusted proxy: the caller, not HAProxy, is recorded.
    assert docs[0]["client_ip"] == addresses["app"]


def test_get_on_insert_through_haproxy_is_405(app, addresses):
    assert http(app, "GET", f"{front(addresses)}/insert")[0] == 405


def test_backends_listen_on_the_private_address_and_haproxy_sees_them_up(lb, app, addresses):
    assert ports_of(listening(app), 5001) == {addresses["app"]}
    status, csv = http(lb, "GET", "http://127.0.0.1:8404/;csv")
    assert status == 200
    rows = [line.split(",") for line in csv.splitlines() if line.startswith("loggers,uqcrowd-mh-app-")]
    assert len(rows) == len(running_backends(app)) >= 2
    assert {row[17] for row in rows} == {"UP"}


def test_redis_listens_on_the_private_address_and_refuses_commands_without_password(app, data, addresses):
    assert ports_of(listening(data), 6379) == {"127.0.0.1", addresses["data"]}
    answer = app.run(f'python3 -c "{_REDIS_PING}" {addresses["data"]}')
    assert answer.rc == 0, answer.stderr
    assert answer.stdout.startswith("-NOAUTH")


def test_elasticsearch_listens_on_the_private_address_and_refuses_anonymous_requests(app, data, addresses):
    assert ports_of(listening(data), 9200) == {addresses["data"]}
    assert http(app, "GET", f"{es(addresses)}/_cluster/health")[0] == 401


def test_elasticsearch_is_https_between_hosts_and_its_clients_verify_it_with_the_clusters_ca(app, addresses, elastic):
    """The loggers' host reaches it with the CA the roles gave the service, the toolkit and the monitoring;
    a client without that CA, or in plain HTTP, gets nothing."""
    status, text = http(app, "GET", f"{es(addresses)}/_cluster/health", auth=elastic, cafile="")  # system CAs
    assert (status, "CERTIFICATE_VERIFY_FAILED" in text) == (0, True), text
    plain = es(addresses).replace("https://", "http://")
    assert http(app, "GET", f"{plain}/_cluster/health", auth=elastic)[0] == 0
    ca = "/etc/uqcrowd-log/elasticsearch-ca.crt"
    assert http(app, "GET", f"{es(addresses)}/_cluster/health", auth=elastic, cafile=ca)[0] == 200
    service = app.file("/etc/uqcrowd-log/logger.env").content_string
    assert f"UQCROWD_ES_CA_FILE={ca}" in service
    assert f"UQCROWD_ES_URL={es(addresses)}," in service  # every node, https
    assert f"UQCROWD_ES_CA_FILE={ca}" in app.file("/etc/uqcrowd-log/toolkit.env").content_string
    checks = json.loads(app.file("/etc/uqcrowd-monitor/monitor.json").content_string)
    assert checks["es_ca_file"] == "/etc/uqcrowd-monitor/elasticsearch-ca.crt"
    checked = app.run("/usr/local/bin/uqcrowd-check elasticsearch")
    assert checked.rc == 0, checked.stdout + checked.stderr


def cron_checks(host) -> list[str]:
    """What each job of the host's /etc/cron.d/uqcrowd-log runs (without its output redirection)."""
    cron = host.file("/etc/cron.d/uqcrowd-log")
    lines = cron.content_string.splitlines() if cron.exists else []
    return [line.split(" root ", 1)[1].split(" 2>&1")[0] for line in lines if " root " in line]


def test_each_host_monitors_what_concerns_it(lb, app, data):
    assert cron_checks(lb) == []
    assert cron_checks(app) == [
        "/opt/uqcrowd-log/start.sh",
        "/usr/local/bin/uqcrowd-check elasticsearch",
        "/usr/local/bin/uqcrowd-check logger queue dead-letters indexer",
    ]
    assert cron_checks(data) == ["/usr/local/bin/uqcrowd-check disk"]


def test_monitors_reach_elasticsearch_and_redis_across_hosts(app, data):
    for host, checks in [(app, cron_checks(app)[1:]), (data, cron_checks(data))]:
        for command in checks:
            result = host.run(command)
            assert result.rc == 0, f"{command}: {result.stdout}{result.stderr}"


def test_with_one_backend_stopped_100_requests_all_succeed(app, data, addresses, elastic):
    session = f"mh-stopped-{uuid.uuid4().hex[:8]}"
    assert post_with_one_backend_stopped(app, app, f"{front(addresses)}/insert", session, 100) == [202] * 100
    assert len(wait_documents(data, es(addresses), elastic, session, 100)) == 100


@pytest.mark.leaves_changes  # one converge, not two: nothing runs after it to need the inventory's count back
@pytest.mark.timeout(600)  # a converge of the logger and lb plays: about 50 s on this machine
def test_backend_count_on_the_logger_host_drives_haproxy_on_the_lb_host(lb, app, addresses):
    assert default_backend_count(app) != 3
    converge("logger,haproxy", uqcrowd_backend_count="3")
    assert_backend_count(lb, app, 3)
    assert [line.split()[2] for line in haproxy_servers(lb)] == [f"{addresses['app']}:{p}" for p in (5001, 5002, 5003)]
    assert http(app, "GET", f"{front(addresses)}/insert")[0] == 405


def default_backend_count(app) -> int:
    """The README's rule, unless the inventory sets uqcrowd_backend_count: two per vCPU, at least two."""
    return max(2, 2 * int(app.run("nproc").stdout))


def test_playbooks_alone_limited_to_lb_and_by_tags_change_nothing(lb, app):
    """HAProxy's backends come from the inventory and every host's facts, not from the logger play."""
    run_unchanged("playbooks/haproxy.yml", "--limit", "lb")
    run_unchanged("site.yml", "--limit", "lb", "--tags", "config,service")
    assert_backend_count(lb, app, default_backend_count(app))
