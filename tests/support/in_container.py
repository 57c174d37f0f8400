"""Helpers for testinfra tests: HTTP requests made from inside the container under test."""

from __future__ import annotations

import json
import shlex
from typing import Any

_CLIENT = r"""
import base64, json, sys, urllib.request, urllib.error
method, url, body, user, password, content_type, expression = json.loads(sys.argv[1])
if expression:  # a body too big for a command line is built here
    body = eval(expression)
data = body.encode("utf-8", "surrogateescape") if body is not None else None  # lone surrogates = raw bytes
request = urllib.request.Request(url, method=method, data=data)
request.add_header("Content-Type", content_type)
if user:
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        status, text = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read().decode()
except OSError as error:  # nothing answered: status 0
    status, text = 0, str(getattr(error, "reason", error))
print(json.dumps([status, text]))
"""


def http(
    host: Any,
    method: str,
    url: str,
    body: Any = None,
    auth: tuple[str, str] | None = None,
    content_type: str = "application/json",
    expression: str = "",
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a request sent by python3 inside the container (status 0: no answer).

    `expression`: Python (json is imported) that builds a body too large for a command line."""
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    user, password = auth or ("", "")
    args = json.dumps([method, url, body, user, password, content_type, expression])
    result = host.run(f"python3 -c {shlex.quote(_CLIENT)} {shlex.quote(args)}")
    assert result.rc == 0, result.stderr
    status, text = json.loads(result.stdout)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def listening(host: Any) -> set[str]:
    """TCP listen addresses as "ip:port" (IPv4-mapped IPv6 shown as IPv4; "*" for any address)."""
    result = host.run("ss -Htln")
    assert result.rc == 0, result.stderr
    addresses = set()
    for line in result.stdout.splitlines():
        local = line.split()[3]
        ip, _, port = local.rpartition(":")
        ip = ip.strip("[]").removeprefix("::ffff:").split("%")[0]
        addresses.add(f"{'*' if ip in ('0.0.0.0', '::', '*') else ip}:{port}")
    return addresses


def ports_of(addresses: set[str], port: int) -> set[str]:
    """The addresses listening on one port."""
    return {a.rpartition(":")[0] for a in addresses if a.endswith(f":{port}")}


_BURST = r"""
import json, sys, urllib.request, urllib.error
url, body, count = json.loads(sys.argv[1])
statuses = []
for n in range(count):
    data = json.dumps(dict(body, sequence_number=n)).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            statuses.append(response.status)
    except urllib.error.HTTPError as error:
        statuses.append(error.code)
    except OSError:
        statuses.append(0)
print(json.dumps(statuses))
"""


def post_many(host: Any, url: str, event: dict[str, Any], count: int) -> list[int]:
    """POST `count` copies of an event (sequence_number 0..count-1) in a row; their HTTP statuses."""
    args = json.dumps([url, event, count])
    result = host.run(f"python3 -c {shlex.quote(_BURST)} {shlex.quote(args)}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)
