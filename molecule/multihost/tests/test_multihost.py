"""site.yml on three hosts: lb (HAProxy), app (backends, indexer, monitors), data (Redis, Elasticsearch).

Every request crosses the private network: client -> lb -> app -> data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from harness.in_container import (
    assert_backend_count,
    http,
    listening,
    ports_of,
    post_many,
    post_with_one_backend_stopped,
    redis_probe,
    running_backends,
    tcp_probe,
    tcp_probes,
    wait_documents,
)
from harness.playbook import run, run_unchanged


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


def test_redis_is_tls_only_between_hosts_and_the_service_verifies_it_and_logs_in_as_its_own_user(app, data, addresses):
    """On its private address Redis speaks TLS only (no plain port), with a certificate from the redis
    role's CA naming that address; the service verifies it and logs in as its own user, which is refused
    CONFIG; a client without the CA, or without a password, gets nothing."""
    assert ports_of(listening(data), 6379) == {"127.0.0.1", addresses["data"]}
    ca = "/etc/uqcrowd-log/redis-ca.crt"
    answers = redis_probe(app, addresses["data"], 6379, ca)
    assert answers["plain"] in ([""], "refused: ConnectionResetError"), answers  # no plain-text Redis
    assert answers["system_cas"] == "refused: CERTIFICATE_VERIFY_FAILED", answers
    assert answers["with_ca"][0].startswith("-NOAUTH"), answers
    assert answers["as_service"][:2] == ["+OK", "+PONG"], answers
    assert answers["as_service"][2].startswith("-NOPERM"), answers
    toolkit_ca = "/etc/uqcrowd-log/toolkit-redis-ca.crt"  # roles/toolkit's copy of the same CA
    assert app.file(toolkit_ca).content_string == app.file(ca).content_string
    for env, its_ca in [("/etc/uqcrowd-log/logger.env", ca), ("/etc/uqcrowd-log/toolkit-root.env", toolkit_ca)]:
        content = app.file(env).content_string
        assert f"UQCROWD_REDIS_CA_FILE={its_ca}" in content, env
        assert re.search(rf"^UQCROWD_REDIS_URL=rediss://uqcrowd:[^@]+@{addresses['data']}:6379/0$", content, re.M), env


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
    toolkit_ca = "/etc/uqcrowd-log/toolkit-elasticsearch-ca.crt"  # roles/toolkit's copy of the same CA
    assert app.file(toolkit_ca).content_string == app.file(ca).content_string
    assert f"UQCROWD_ES_CA_FILE={toolkit_ca}" in app.file("/etc/uqcrowd-log/toolkit.env").content_string
    checks = json.loads(app.file("/etc/uqcrowd-monitor/monitor.json").content_string)
    assert checks["es_ca_file"] == "/etc/uqcrowd-monitor/elasticsearch-ca.crt"
    checked = app.run("/usr/local/bin/uqcrowd-check elasticsearch")
    assert checked.rc == 0, checked.stdout + checked.stderr


def test_the_firewall_opens_redis_elasticsearch_and_backends_only_to_the_hosts_using_them(lb, app, data, addresses):
    """Redis and its Sentinels to the loggers, Elasticsearch's HTTP to the loggers, the monitoring and its
    nodes, the backends to HAProxy's host; lb (in the inventory, needing neither) and this machine
    (outside it) get nothing."""
    clients = {"lb": lb, "app": app, "data": data, "outside": None}
    # 9201: es2's HTTP; 26380: es2's Sentinel (Redis's three hosts share data's network)
    ports = [("data", 6379, "app"), ("data", 26380, "app"), ("data", 9200, "app"), ("data", 9201, "app")]
    ports += [("app", 5001, "lb")]
    seen, expected = {}, {}
    for name, client in clients.items():  # each client tries its targets at once (a drop waits 3 s)
        targets = [(server, port, allowed) for server, port, allowed in ports if name != server]
        answers = tcp_probes(client, [(addresses[server], port) for server, port, _ in targets])
        for (server, port, allowed), answer in zip(targets, answers, strict=True):
            seen[f"{name} -> {server}:{port}"] = answer
            expected[f"{name} -> {server}:{port}"] = "open" if name == allowed else "dropped"
    assert seen == expected
    # The transport listens on loopback in this scenario (inventory/hosts.yml): its rule names the nodes only.
    table = data.check_output("nft list table inet uqcrowd_log")
    nodes = rf"set elasticsearch_transport_ipv4 {{\s*type ipv4_addr\s*elements = {{ {addresses['data']} }}"
    assert re.search(nodes, table), table


def test_the_dashboard_on_the_app_host_is_reached_through_lb_and_speaks_https_only(lb, app, data, addresses):
    """The dashboard runs on the first logger host (app), HAProxy on lb sends it /dashboard/ over HTTPS
    verified by app's CA; its port is open to lb only; its health page reads the backends' https metrics."""
    login = ("researcher", Path(os.environ["UQCROWD_DASHBOARD_LOGIN"], "researcher.password").read_text().strip())
    dashboard = f"http://{addresses['lb']}:80/dashboard/health"
    assert http(app, "GET", dashboard) == (401, "login required\n")
    status, page = http(app, "GET", dashboard, auth=login)
    assert status == 200
    assert 'data-gauge="uqcrowd_queue_depth"' in page
    assert "could not be read" not in page
    direct = f"{addresses['app']}:5100/dashboard/"
    assert http(lb, "GET", f"https://{direct}", cafile="/etc/haproxy/backends-ca.crt") == (401, "login required\n")
    plain = lb.run(f"python3 -c \"import urllib.request; urllib.request.urlopen('http://{direct}', timeout=10)\"")
    assert plain.rc != 0  # no plain HTTP: no answer a client can read
    assert "HTTP Error 401" not in plain.stderr
    assert (tcp_probe(lb, addresses["app"], 5100), tcp_probe(data, addresses["app"], 5100)) == ("open", "dropped")
    key = app.file("/etc/uqcrowd-log/dashboard-tls/dashboard.key")  # its own key, of the backends' CA
    assert (key.user, key.mode) == ("uqcrowd-dashboard", 0o600)
    assert app.run("runuser -u uqcrowd-dashboard -- cat /etc/uqcrowd-log/tls/backend.key").rc != 0


def service_secrets(app) -> list[str]:
    """Every password the loggers' host holds for Elasticsearch and Redis (its env files)."""
    secrets = []
    for env in ["logger.env", "toolkit-root.env", "toolkit-reader.env"]:
        for line in app.file(f"/etc/uqcrowd-log/{env}").content_string.splitlines():
            name, _, value = line.partition("=")
            if name.endswith("_PASSWORD") and value:
                secrets.append(value)
            if name == "UQCROWD_REDIS_URL":
                secrets.append(unquote(urlsplit(value).password or ""))
    return [secret for secret in set(secrets) if len(secret) >= 12]


@pytest.mark.timeout(300)
def test_a_capture_of_the_private_network_finds_nothing_in_clear(app, data, addresses, elastic, tmp_path):
    """tcpdump on the scenario's bridge (every packet between its hosts) while events go through HAProxy
    to the backends, the queue and Elasticsearch, and a toolkit export reads them back. Between the hosts
    no password, no Authorization header and no event text is in clear. The clients' side (the load
    generator to HAProxy's port 80: HTTPS from browsers in production) carries the same text in clear:
    the capture does see payloads."""
    bridge = subprocess.check_output(
        ["podman", "network", "inspect", "uqcrowd-multihost", "--format", "{{.NetworkInterface}}"], text=True
    ).strip()
    capture = tmp_path / "bridge.pcap"
    command = ["tcpdump", "-i", bridge, "-s", "0", "-U", "-w", str(capture), "tcp"]
    tcpdump = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        assert b"listening on" in tcpdump.stderr.readline()
        marker = f"in-clear-{uuid.uuid4().hex}"
        session = f"mh-capture-{uuid.uuid4().hex[:8]}"
        event = {"log_type": "message", "session_id": session, "content": {"message": marker}}
        assert post_many(app, f"{front(addresses)}/insert", event, 100) == [202] * 100
        assert len(wait_documents(data, es(addresses), elastic, session, 100, timeout=30)) == 100
        exported = app.run(f"uqcrowd-log export --session-id {session} -o -")
        assert exported.rc == 0, exported.stderr
        assert exported.stdout.count(marker) == 100
        time.sleep(1)
    finally:
        tcpdump.terminate()
        tcpdump.wait(30)

    def packets(expression: str) -> bytes:
        part = tmp_path / f"{expression.replace(' ', '_')}.pcap"
        subprocess.run(["tcpdump", "-r", str(capture), "-w", str(part), expression], check=True, capture_output=True)
        return part.read_bytes()

    clients_side = packets("tcp port 80")
    between_hosts = packets("not tcp port 80")
    assert marker.encode() in clients_side  # a payload in clear is seen where there is one
    # Each link was there: HAProxy -> backends, backends and indexer -> Redis, indexer and toolkit -> Elasticsearch.
    for link in ("tcp portrange 5001-5099", "tcp port 6379", "tcp port 9200"):
        assert len(packets(link)) > 2_000, link  # a TLS handshake and more (a capture file alone: 24 bytes)
    assert marker.encode() not in between_hosts
    assert b"authorization:" not in between_hosts.lower()
    secrets = service_secrets(app)
    assert len(secrets) >= 3
    assert [secret for secret in secrets if secret.encode() in between_hosts] == []


def cron_checks(host) -> list[str]:
    """What each job of the host's /etc/cron.d/uqcrowd-log runs (without its output redirection)."""
    cron = host.file("/etc/cron.d/uqcrowd-log")
    lines = cron.content_string.splitlines() if cron.exists else []
    return [line.split(" root ", 1)[1].split(" 2>&1")[0] for line in lines if " root " in line]


def test_each_host_monitors_what_concerns_it(lb, app, data):
    assert cron_checks(lb) == []
    assert cron_checks(app) == [
        "/opt/uqcrowd-log/start.sh --unless-stopped",
        "/usr/local/bin/uqcrowd-check elasticsearch",
        "/usr/local/bin/uqcrowd-check logger queue dead-letters indexer replication",
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


def test_backend_count_on_the_logger_host_drives_haproxy_on_the_lb_host(lb, app, addresses):
    """uqcrowd_backend_count set for the logger host (its host_vars): the lb play alone, in check mode,
    would add that many servers to HAProxy on the lb host. That the logger host then runs exactly that
    many backends is roles/logger's scenario's (its release test lowers the count)."""
    count = default_backend_count(app) + 1
    host_vars = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    own = host_vars / "uqcrowd-mh-app.yml"
    own.write_text(f"---\nuqcrowd_backend_count: {count}\n")
    try:
        output = run("playbooks/haproxy.yml", "--limit", "lb", "--check", "--diff")
    finally:
        own.unlink()
    assert re.findall(r"^\+\s*server \S+ (\S+)", output, re.M) == [f"{addresses['app']}:{5000 + count}"]
    assert_backend_count(lb, app, default_backend_count(app))  # check mode: nothing changed


def default_backend_count(app) -> int:
    """The rule of docs/operators/sizing.md#backend-count, unless the inventory sets uqcrowd_backend_count:
    two per vCPU, at least two."""
    return max(2, 2 * int(app.run("nproc").stdout))


def test_playbooks_alone_limited_to_lb_and_by_tags_change_nothing(lb, app):
    """HAProxy's backends come from the inventory and every host's facts, not from the logger play."""
    run_unchanged("playbooks/haproxy.yml", "--limit", "lb")
    run_unchanged("site.yml", "--limit", "lb", "--tags", "config,service")
    assert_backend_count(lb, app, default_backend_count(app))
