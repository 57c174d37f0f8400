"""HTTPS on day one: a certificate from an ACME CA (the scenario's pebble, prepare.yml) got through
HAProxy itself, Mozilla's intermediate TLS settings, plain HTTP redirected, and a forced renewal under
load over HTTPS that fails nothing."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

DOMAIN = "uqcrowd-haproxy.test"
PEM = "/etc/haproxy/certs/uqcrowd.pem"
ROOT = "/tmp/pebble-root.pem"


def served(host) -> dict[str, str]:
    """Issuer and serial of the certificate HAProxy serves for the domain."""
    command = (
        f"echo | openssl s_client -connect 127.0.0.1:443 -servername {DOMAIN} 2>/dev/null"
        " | openssl x509 -noout -issuer -serial"
    )
    result = host.run(command)
    assert result.rc == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.strip().splitlines())


def handshake(host, option: str) -> str:
    """The protocol a TLS handshake with this version only agreed on ("" if refused). The client's own
    floor lowered (SECLEVEL=0): the refusal tested is the server's."""
    client = f"openssl s_client -connect 127.0.0.1:443 -servername {DOMAIN} {option} -cipher 'DEFAULT:@SECLEVEL=0'"
    out = host.run(f"echo | {client} 2>&1").stdout
    found = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M) or re.search(r"^New, (TLSv[\d.]+),", out, re.M)
    return "" if "Cipher is (NONE)" in out or not found else found.group(1)


def plain(host, address: str, method: str, path: str) -> tuple[int, str]:
    """Status and Location of one plain-HTTP request (redirects not followed)."""
    script = (
        "import http.client, sys; c = http.client.HTTPConnection(sys.argv[1], 80, timeout=10); "
        "c.request(sys.argv[2], sys.argv[3], body=b'{}'); r = c.getresponse(); "
        "print(r.status, r.getheader('Location') or '')"
    )
    out = host.run(f"python3 -c {shlex.quote(script)} {address} {method} {shlex.quote(path)}").stdout.split()
    return int(out[0]), out[1] if len(out) > 1 else ""


@pytest.fixture(scope="module")
def pebble_root(host):
    """The ACME server's root (it makes a new one each time it starts): what a browser would trust."""
    fetch = (
        "import ssl, urllib.request; c = ssl.create_default_context(cafile='/etc/pebble/cert.pem'); "
        f"open('{ROOT}', 'wb').write(urllib.request.urlopen('https://127.0.0.1:15000/roots/0', context=c).read())"
    )
    assert host.run(f"python3 -c {shlex.quote(fetch)}").rc == 0
    return ROOT


def test_the_certificate_was_issued_by_the_acme_server_through_haproxy(host, pebble_root):
    assert served(host)["issuer"].startswith("CN = Pebble Intermediate")
    chain = host.run(f"openssl verify -CAfile {pebble_root} -untrusted {PEM} {PEM}")
    assert chain.rc == 0, chain.stdout + chain.stderr
    for path in (PEM, f"{PEM}.key"):
        secret = host.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)
    renewal = host.file("/etc/letsencrypt/renewal/uqcrowd.conf").content_string
    assert "authenticator = standalone" in renewal
    assert "http01_address = 127.0.0.1" in renewal
    assert "/usr/local/sbin/uqcrowd-haproxy-certificate" in renewal  # the deploy hook, for renewals too
    timer = host.service("certbot.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_tls_1_0_and_1_1_are_refused_1_2_and_1_3_accepted(host):
    assert handshake(host, "-tls1") == ""
    assert handshake(host, "-tls1_1") == ""
    assert handshake(host, "-tls1_2") == "TLSv1.2"
    assert handshake(host, "-tls1_3") == "TLSv1.3"


def test_plain_http_is_redirected_308_but_not_the_acme_challenge_nor_this_hosts_monitoring(host):
    outside = host.run("hostname -I").stdout.split()[0]  # another client than loopback
    assert plain(host, outside, "POST", "/logger/insert") == (308, f"https://{outside}/logger/insert")
    status, location = plain(host, outside, "GET", "/.well-known/acme-challenge/token")
    assert status != 308  # to certbot (not listening now: 503)
    assert location == ""
    assert plain(host, "127.0.0.1", "POST", "/logger/insert")[0] == 202


def test_https_answers_with_hsts_and_plain_http_without(host, pebble_root):
    script = (
        f"import http.client, ssl; context = ssl.create_default_context(cafile='{pebble_root}'); "
        f"c = http.client.HTTPSConnection('{DOMAIN}', 443, context=context); "
        "c.request('POST', '/logger/insert', body=b'{}'); r = c.getresponse(); "
        "print(r.status, r.getheader('Strict-Transport-Security'))"
    )
    assert host.run(f"python3 -c {shlex.quote(script)}").stdout.split() == ["202", "max-age=600"]


@pytest.mark.timeout(300)
def test_a_forced_renewal_under_50_requests_a_second_over_https_fails_nothing(host, pebble_root):
    before = served(host)["serial"]
    host.run("rm -f /tmp/https-load.json")
    started = host.run(
        "systemd-run --unit=https-load --collect /usr/bin/python3 /usr/local/bin/https_load.py "
        f"{DOMAIN} {pebble_root} 50 /tmp/https-load.json"
    )
    assert started.rc == 0, started.stderr
    try:
        time.sleep(3)
        # Without a terminal certbot renew first sleeps up to 8 minutes (spreading the CA's load): not here.
        renew = "certbot renew --force-renewal --no-random-sleep-on-renew --cert-name uqcrowd --non-interactive"
        renewed = host.run(f"REQUESTS_CA_BUNDLE=/etc/pebble/cert.pem {renew}")
        assert renewed.rc == 0, renewed.stdout + renewed.stderr
        time.sleep(3)  # requests on the new certificate too
    finally:
        host.run("systemctl kill -s TERM https-load")
    for _ in range(30):
        if host.file("/tmp/https-load.json").exists:
            break
        time.sleep(1)
    counts = json.loads(host.file("/tmp/https-load.json").content_string)
    assert served(host)["serial"] != before
    assert counts["failed"] == {}, counts
    assert counts["ok"] == counts["sent"] > 200, counts
