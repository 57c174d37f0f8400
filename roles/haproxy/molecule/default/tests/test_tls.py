"""HTTPS on day one: a certificate from an ACME CA (the scenario's pebble, prepare.yml) got through
HAProxy itself, Mozilla's intermediate TLS settings, plain HTTP redirected, and a forced renewal under
load over HTTPS that fails nothing."""

from __future__ import annotations

import json
import re
import shlex
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from harness.browser import chromium
from harness.certificates import make_ca_and_server
from harness.services import wait_until

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
    address = host.check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n1 | cut -d/ -f1")
    assert f"http01_address = {address}" in renewal  # where the other lb host's HAProxy can pass a challenge
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


@pytest.fixture
def https_task_page(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """A task page on its own HTTPS origin on this machine (as MTurk's or Prolific's would be), which loads
    the tracker from the domain HAProxy has its ACME certificate for: (URL, the page's CA, experiment id)."""
    experiment = f"https-{uuid.uuid4().hex[:8]}"
    page = (
        f'<!doctype html><html><head><title>task</title><script>var exp_id_preDefined = "{experiment}";</script>'
        f'<script src="https://{DOMAIN}/logger/logger.js"></script></head>'
        '<body><button id="answer">Answer</button></body></html>'
    ).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    tls = make_ca_and_server(tmp_path / "page-tls", "127.0.0.1", "IP:127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls["cert"], tls["key"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/task.html", tls["ca"], experiment
    server.shutdown()


def test_chromium_on_an_https_task_page_loads_the_tracker_and_posts_over_https(
    host, pebble_root, https_task_page, tmp_path
):
    """No mixed content: the page, the tracker and its POST are HTTPS, verified by the browser against the
    ACME CA's root (and the page's own CA), as a browser trusts Let's Encrypt's; the backend's 202 is read
    (CORS) and the tracker forgets what it sent."""
    url, page_ca, experiment = https_task_page
    root = tmp_path / "pebble-root.pem"
    root.write_text(host.file(pebble_root).content_string)
    address = host.run("hostname -I").stdout.split()[0]
    resolve = f"--host-resolver-rules=MAP {DOMAIN} {address}"  # the name, as DNS would give it, to the container
    browser = chromium(tmp_path / "chromium", resolve, trusted_cas=(root, page_ca))
    try:
        browser.get(url)
        wait_until(lambda: browser.execute_script("return typeof window.uqcrowdLogger !== 'undefined'"), 20, "tracker")
        assert browser.execute_script("return window.isSecureContext && location.protocol") == "https:"
        browser.find_element(By.ID, "answer").click()
        posted = f"cat /var/log/echo-backend-*.bodies 2>/dev/null | grep -c {experiment}"
        wait_until(lambda: host.run(posted).stdout.strip() not in ("", "0"), 20, "an insert through HAProxy")
        pending = "return Object.keys(localStorage).filter(k => k.startsWith('uqcrowd-log:e:')).length"
        wait_until(lambda: browser.execute_script(pending) == 0, 20, "the tracker confirmed by the 202")
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert f"https://{DOMAIN}/logger/logger.js" in fetched
        assert f"https://{DOMAIN}/logger/insert" in fetched
        assert [name for name in fetched if not name.startswith("https://")] == [], fetched  # no mixed content
    finally:
        browser.quit()


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


@pytest.mark.timeout(300)
def test_a_renewal_on_the_host_not_holding_the_shared_address_passes_through_the_holder(hosts):
    """The ACME server reaching the name at the shared address (as DNS would give it), while the other
    host holds it: that host's HAProxy passes the challenge on to the certbot that asked."""
    held = {name: "secondary" in host.check_output("ip -4 -o addr show dev eth0") for name, host in hosts.items()}
    standby = next(name for name, holds in held.items() if not holds)
    holder = next(name for name, holds in held.items() if holds)
    shared = "ip -4 -o addr show dev eth0 | grep secondary | awk '{print $4}' | cut -d/ -f1"
    address = hosts[holder].check_output(shared)
    host = hosts[standby]
    before = served(host)["serial"]

    def resolve(old: str, new: str) -> None:  # /etc/hosts is a bind mount: rewritten, not replaced
        rewritten = f"sed 's/^{old} {DOMAIN}$/{new} {DOMAIN}/' /etc/hosts"
        host.check_output(f"{rewritten} > /tmp/hosts && cat /tmp/hosts > /etc/hosts")

    resolve("127.0.0.1", address)
    try:
        renew = "certbot renew --force-renewal --no-random-sleep-on-renew --cert-name uqcrowd --non-interactive"
        renewed = host.run(f"REQUESTS_CA_BUNDLE=/etc/pebble/cert.pem {renew}")
    finally:
        resolve(address, "127.0.0.1")
    assert renewed.rc == 0, renewed.stdout + renewed.stderr
    assert served(host)["serial"] != before
    passed_on = hosts[holder].run(f"journalctl -u haproxy --no-pager -o cat | grep -c ' acme/certbot-{standby} '")
    assert int(passed_on.stdout.strip() or 0) >= 1
