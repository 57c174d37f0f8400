"""The host's CA and the server certificate it signs, as a TLS client sees them."""

from __future__ import annotations

import shlex

import pytest

CERTS = "/etc/uqcrowd-tls"

# A TLS server on the role's certificate (openssl s_server), and a Python client that verifies it.
_CLIENT = r"""
import socket, ssl, sys
cafile, name = sys.argv[1] or None, sys.argv[2]
context = ssl.create_default_context(cafile=cafile)
try:
    with socket.create_connection(("127.0.0.1", 7443), 5) as raw, context.wrap_socket(raw, server_hostname=name):
        print("verified")
except ssl.SSLError as error:
    print(error.reason)
"""


@pytest.fixture(scope="module")
def server(host):
    serve = f"openssl s_server -accept 7443 -cert {CERTS}/probe.crt -key {CERTS}/probe.key -www"
    started = host.run(f"systemd-run --unit=tls-probe {serve}")
    assert started.rc == 0, started.stderr
    assert host.run("timeout 10 sh -c 'until ss -Htln sport = :7443 | grep -q .; do sleep 0.2; done'").rc == 0
    yield
    host.run("systemctl stop tls-probe")


def client(host, cafile: str, name: str) -> str:
    return host.check_output(f"python3 -c {shlex.quote(_CLIENT)} {shlex.quote(cafile)} {shlex.quote(name)}")


def test_the_cas_key_is_root_only_and_the_servers_key_its_owners_only(host):
    assert (host.file("/etc/uqcrowd-ca").user, host.file("/etc/uqcrowd-ca").mode) == ("root", 0o700)
    ca_key = host.file("/etc/uqcrowd-ca/ca.key")
    assert (ca_key.user, ca_key.group, ca_key.mode) == ("root", "root", 0o600)
    key = host.file(f"{CERTS}/probe.key")
    assert (key.user, key.group, key.mode) == ("tlsservice", "tlsservice", 0o600)
    assert not host.file(f"{CERTS}/ca.key").exists


def test_a_client_with_the_ca_verifies_the_server_by_each_of_its_names(host, server):
    assert client(host, f"{CERTS}/ca.crt", "uqcrowd-local-ca") == "verified"
    assert client(host, f"{CERTS}/ca.crt", "127.0.0.1") == "verified"
    sans = host.check_output(f"openssl x509 -in {CERTS}/probe.crt -noout -ext subjectAltName")
    assert "IP Address:10.99.0.7" in sans


def test_a_client_without_the_ca_or_asking_for_another_name_is_refused(host, server):
    assert client(host, "", "uqcrowd-local-ca") == "CERTIFICATE_VERIFY_FAILED"  # the system's CAs
    assert client(host, f"{CERTS}/ca.crt", "elsewhere.example") == "CERTIFICATE_VERIFY_FAILED"  # name mismatch
