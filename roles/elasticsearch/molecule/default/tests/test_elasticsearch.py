"""Elasticsearch as the role leaves it: secured, on loopback, with the event template."""

from __future__ import annotations

import json
import os
import secrets
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.in_container import http, listening, ports_of
from tests.support.playbook import run

API = "http://127.0.0.1:9200"
SCENARIO_CONVERGE = "roles/elasticsearch/molecule/default/converge.yml"

# Run inside a node: a plain TCP client, a TLS client without a certificate, and one with this node's
# certificate, against a node's transport port.
_TRANSPORT_PROBE = r"""
import json, socket, ssl, sys
address = (sys.argv[1], 9300)
result = {}
plain = socket.create_connection(address, 10)
plain.settimeout(10)
plain.sendall(b"ES\x00\x00\x00\x1a" + bytes(26))  # the start of a transport message, unencrypted
try:
    result["plain_reply"] = plain.recv(64).hex()
except OSError as error:
    result["plain_reply"] = type(error).__name__
context = ssl.create_default_context(cafile="/etc/elasticsearch/certs/ca.crt")
context.check_hostname = False
def handshake(ctx):
    try:
        tls = ctx.wrap_socket(socket.create_connection(address, 10))
    except (ssl.SSLError, OSError) as error:
        return "refused: " + type(error).__name__
    with tls:
        tls.settimeout(3)
        try:
            if not tls.recv(1):  # TLS 1.3: a refused client certificate shows here, as an alert
                return "refused: closed"
        except TimeoutError:  # accepted: the node waits for a transport message
            return [item for part in tls.getpeercert()["issuer"] for item in part]
        except (ssl.SSLError, OSError) as error:
            return "refused: " + type(error).__name__
        return "unexpected data"
result["without_certificate"] = handshake(context)
context.load_cert_chain("/etc/elasticsearch/certs/transport.crt", "/etc/elasticsearch/certs/transport.key")
result["with_certificate"] = handshake(context)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def elastic(host):
    return ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())


def test_service_running_and_enabled(host):
    service = host.service("elasticsearch")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_loopback_only(host):
    addresses = listening(host)
    assert ports_of(addresses, 9200) == {"127.0.0.1"}
    assert ports_of(addresses, 9300) == {"127.0.0.1"}


def test_password_file_is_root_only(host):
    secret = host.file("/etc/elasticsearch/elastic-password")
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)


def test_heap_is_pinned(host):
    options = host.file("/etc/elasticsearch/jvm.options.d/heap.options").content_string
    assert "-Xms512m" in options
    assert "-Xmx512m" in options


def test_health_needs_credentials_and_is_yellow_or_green(host, elastic):
    assert http(host, "GET", f"{API}/_cluster/health")[0] == 401
    status, health = http(host, "GET", f"{API}/_cluster/health", auth=elastic)
    assert status == 200
    assert health["status"] in ("yellow", "green")


def test_event_document_gets_the_templates_mappings(host, elastic):
    index = f"uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    event = {
        "log_type": "message",
        "session_id": "s1",
        "sequence_number": 1,
        "server_time": "2026-11-28T00:00:00Z",
        "browser_time": 1764288000000,
        "content": {"message": "hi", "details": {"a": {"b": 1}}},
        "extra": 1,
    }
    status, _ = http(host, "PUT", f"{API}/{index}/_create/verify-1?refresh=true", event, auth=elastic)
    assert status in (201, 409)
    status, mapping = http(host, "GET", f"{API}/{index}/_mapping", auth=elastic)
    props = mapping[index]["mappings"]["properties"]
    assert props["session_id"]["type"] == "keyword"
    assert props["server_time"]["type"] == "date"
    assert props["content"]["type"] == "flattened"
    assert "extra" not in props  # unknown fields are kept in _source but never grow the mapping
    settings = http(host, "GET", f"{API}/{index}/_settings", auth=elastic)[1][index]["settings"]["index"]
    assert settings["number_of_replicas"] == "0"


def test_writer_user_may_create_events_and_nothing_more(host):
    password = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "writer-password").read_text().strip()
    writer = ("uqcrowd_writer", password)
    index = f"uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    assert http(host, "PUT", f"{API}/{index}/_create/writer-1", {"log_type": "message"}, auth=writer)[0] in (201, 409)
    assert http(host, "GET", f"{API}/_cluster/health", auth=writer)[0] == 200
    assert http(host, "DELETE", f"{API}/{index}", auth=writer)[0] == 403
    assert http(host, "PUT", f"{API}/other-index/_create/1", {"a": 1}, auth=writer)[0] == 403
    assert http(host, "GET", f"{API}/{index}/_search", auth=writer)[0] == 403


def test_transport_is_tls_with_a_certificate_of_the_certutil_ca(host):
    """Forced on here (a cluster turns it on): a plain TCP connection gets no transport handshake; TLS
    needs a certificate signed by the CA the role made with elasticsearch-certutil."""
    result = host.run(f"python3 -c {shlex.quote(_TRANSPORT_PROBE)} 127.0.0.1")
    assert result.rc == 0, result.stderr
    probe = json.loads(result.stdout)
    assert not probe["plain_reply"].startswith("4553"), probe  # "ES": a node would answer in plain text
    assert probe["without_certificate"].startswith("refused"), probe
    assert "Elastic Certificate Tool Autogenerated CA" in str(probe["with_certificate"]), probe  # certutil's CA
    ca_key = host.file("/etc/elasticsearch-ca/ca/ca.key")
    assert (ca_key.user, ca_key.mode) == ("root", 0o600)
    key = host.file("/etc/elasticsearch/certs/transport.key")
    assert (key.user, key.group, key.mode) == ("root", "elasticsearch", 0o640)


def test_the_daily_snapshot_job_snapshots_the_event_indices(host, elastic):
    assert "/usr/local/bin/uqcrowd-es-snapshot" in host.file("/etc/cron.d/uqcrowd-es-snapshot").content_string
    taken = host.run("/usr/local/bin/uqcrowd-es-snapshot")
    assert taken.rc == 0, taken.stdout + taken.stderr
    name = taken.stdout.split()[1].rstrip(":")
    status, found = http(host, "GET", f"{API}/_snapshot/uqcrowd/{name}", auth=elastic)
    assert status == 200, found
    assert found["snapshots"][0]["state"] == "SUCCESS"
    assert host.file("/etc/elasticsearch/snapshot.json").mode == 0o600


def test_a_new_elastic_password_in_the_vault_is_set_on_the_next_run(host):
    """Runs last: the password it sets is the role's from now on (the file follows)."""
    old = host.file("/etc/elasticsearch/elastic-password").content_string.strip()
    new = secrets.token_hex(16)
    output = run(SCENARIO_CONVERGE, "-e", f"elasticsearch_elastic_password={new}")
    assert new not in output
    assert host.file("/etc/elasticsearch/elastic-password").content_string.strip() == new
    assert http(host, "GET", f"{API}/_security/_authenticate", auth=("elastic", new))[0] == 200
    assert http(host, "GET", f"{API}/_security/_authenticate", auth=("elastic", old))[0] == 401
