"""Helpers for testinfra tests: requests made from inside a container under test, and what it runs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

# Where the roles install the Elasticsearch cluster's CA: on its nodes, on its clients' hosts.
ES_CA_FILES = ["/etc/elasticsearch/certs/ca.crt", "/etc/uqcrowd-log/elasticsearch-ca.crt"]

_CLIENT = r"""
import base64, json, os, socket, ssl, sys, urllib.request, urllib.error
method, url, body, user, password, content_type, expression, headers, cafiles, source = json.loads(sys.argv[1])
if source:  # connect from this local address (another client, as HAProxy counts them)
    connect = socket.create_connection
    socket.create_connection = lambda address, timeout=None, _=None: connect(address, timeout, (source, 0))
found = [path for path in cafiles if os.path.exists(path)]  # the first CA file there, else the system's CAs
context = ssl.create_default_context(cafile=found[0] if found else None)
if expression:  # a body too big for a command line is built here
    body = eval(expression)
data = body.encode("utf-8", "surrogateescape") if body is not None else None  # lone surrogates = raw bytes
request = urllib.request.Request(url, method=method, data=data)
request.add_header("Content-Type", content_type)
for name, value in headers.items():
    request.add_header(name, value)
if user:
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=20, context=context) as response:
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
    headers: dict[str, str] | None = None,
    cafile: str | None = None,
    source: str = "",
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a request sent by python3 inside the container (status 0: no answer,
    or an https server whose certificate does not verify). https is verified with `cafile`, by default the
    Elasticsearch cluster's CA if the host has it (ES_CA_FILES); "": the system's CAs only.

    `expression`: Python (json is imported) that builds a body too large for a command line. `source`: the
    local address to connect from (a loopback one, 127.0.0.2, is another client to HAProxy)."""
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    user, password = auth or ("", "")
    cafiles = ES_CA_FILES if cafile is None else [cafile] if cafile else []
    args = json.dumps([method, url, body, user, password, content_type, expression, headers or {}, cafiles, source])
    result = host.run(f"python3 -c {shlex.quote(_CLIENT)} {shlex.quote(args)}")
    assert result.rc == 0, result.stderr
    status, text = json.loads(result.stdout)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def session_documents(
    host: Any, es_url: str, auth: tuple[str, str], session_id: str, fields: list[str] | None = None
) -> list[dict[str, Any]]:
    """The `_source` (or only `fields`) of every document of one session in today's index; [] if none yet."""
    index = f"{es_url}/uqcrowd-log-{datetime.now(UTC):%Y-%m-%d}"
    http(host, "POST", f"{index}/_refresh", auth=auth)
    query: dict[str, Any] = {
        "query": {"term": {"session_id": session_id}},
        "size": 10000,
        "sort": [{"sequence_number": "asc"}, {"event_id": "asc"}],
    }
    if fields is not None:
        query["_source"] = fields
    documents: list[dict[str, Any]] = []
    while True:  # pages of 10,000 (a long run under load has more)
        status, result = http(host, "POST", f"{index}/_search", query, auth=auth)
        hits = result["hits"]["hits"] if status == 200 else []
        documents += [hit["_source"] for hit in hits]
        if len(hits) < query["size"]:
            return documents
        query["search_after"] = hits[-1]["sort"]


def wait_documents(
    host: Any, es_url: str, auth: tuple[str, str], session_id: str, count: int, timeout: float = 10
) -> list[dict[str, Any]]:
    """The session's documents once there are at least `count`, or what is there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while len(docs := session_documents(host, es_url, auth, session_id)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return docs


def haproxy_servers(host: Any, backend: str = "loggers") -> list[str]:
    """The `server` lines of one backend section of the host's haproxy.cfg (the loggers' by default)."""
    servers, inside = [], False
    for line in host.file("/etc/haproxy/haproxy.cfg").content_string.splitlines():
        if line and not line[0].isspace():  # a section starts
            inside = line.split()[:2] == ["backend", backend]
        elif inside and line.strip().startswith("server "):
            servers.append(line.strip())
    return servers


def running_backends(host: Any) -> list[str]:
    """The running uqcrowd-logger@PORT.service units, sorted."""
    result = host.run("systemctl list-units --state=running --plain --no-legend 'uqcrowd-logger@*'")
    return sorted(line.split()[0] for line in result.stdout.splitlines() if line.strip())


def assert_backend_count(lb: Any, loggers: Any, count: int) -> None:
    """HAProxy on `lb` has `count` server lines; `loggers` runs exactly backends 5001.. of that count."""
    assert len(haproxy_servers(lb)) == count
    assert running_backends(loggers) == [f"uqcrowd-logger@{5001 + n}.service" for n in range(count)]
    assert not loggers.service(f"uqcrowd-logger@{5001 + count}").is_enabled


def post_with_one_backend_stopped(loggers: Any, client: Any, url: str, session: str, count: int) -> list[int]:
    """Stop the first running backend on `loggers`, POST `count` events from `client`, start it again."""
    first = running_backends(loggers)[0]
    assert loggers.run(f"systemctl stop {first}").rc == 0
    try:
        return post_many(client, url, {"log_type": "message", "session_id": session}, count)
    finally:
        assert loggers.run(f"systemctl start {first}").rc == 0


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


# Run inside a node: a plain TCP client, a TLS client without a certificate, and one with this node's
# certificate, against a node's transport port (argv: address, port).
_TRANSPORT_PROBE = r"""
import json, socket, ssl, sys
address = (sys.argv[1], int(sys.argv[2]))
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
context.load_cert_chain("/etc/elasticsearch/certs/node.crt", "/etc/elasticsearch/certs/node.key")
result["with_certificate"] = handshake(context)
print(json.dumps(result))
"""


_SERVICE_REDIS_URL = r"s|^UQCROWD_REDIS_URL=rediss\?://\([^:]*\):\([^@]*\)@.*|{}|p"


def redis_as_service(host: Any, *args: str) -> str:
    """redis-cli's answer as the service: its Redis user and password read from its env file inside the
    container, the password through REDISCLI_AUTH (never on a command line)."""
    read = "$(sed -n '{}' /etc/uqcrowd-log/logger.env)"
    user, password = read.format(_SERVICE_REDIS_URL.format(r"\1")), read.format(_SERVICE_REDIS_URL.format(r"\2"))
    command = f'REDISCLI_AUTH="{password}" redis-cli --user "{user}" ' + " ".join(["%s"] * len(args))
    return host.run(command, *args).stdout.strip()


_REDIS_PROBE = r"""
import json, socket, ssl, sys, urllib.parse
address, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def talk(sock, commands):
    replies = []
    for command in commands:
        words = [word.encode() for word in command]
        sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        replies.append(sock.recv(200).decode(errors="replace").strip())
    return replies
def ask(context, commands):
    try:
        with socket.create_connection((address, port), 5) as raw:
            if context is None:
                return talk(raw, commands)
            with context.wrap_socket(raw, server_hostname=address) as tls:
                return talk(tls, commands)
    except (ssl.SSLError, OSError) as error:
        return "refused: " + (getattr(error, "reason", None) or type(error).__name__)
lines = open("/etc/uqcrowd-log/logger.env").read().splitlines()
login = urllib.parse.urlsplit(next(line.split("=", 1)[1] for line in lines if line.startswith("UQCROWD_REDIS_URL=")))
user, password = urllib.parse.unquote(login.username), urllib.parse.unquote(login.password)
service = [["AUTH", user, password], ["PING"], ["CONFIG", "GET", "dir"]]
print(json.dumps({
    "plain": ask(None, [["PING"]]),
    "system_cas": ask(ssl.create_default_context(), [["PING"]]),
    "with_ca": ask(ssl.create_default_context(cafile=cafile), [["PING"]]),
    "as_service": ask(ssl.create_default_context(cafile=cafile), service),
}))
"""


_TCP_PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def probe(target):
    address, port = target.rsplit(":", 1)
    try:
        socket.create_connection((address, int(port)), 3).close()
        return "open"
    except TimeoutError:
        return "dropped"
    except OSError as error:
        return type(error).__name__

with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print(json.dumps(list(pool.map(probe, sys.argv[1:]))))
"""


def tcp_probes(host: Any, targets: list[tuple[str, int]]) -> list[str]:
    """The answer to a TCP connection from `host` to each `(address, port)`, all tried at once: "open",
    "dropped" (no answer in 3 s: a firewall) or the error's name (e.g. ConnectionRefusedError). `host`
    None: from this machine (outside the inventory)."""
    command = ["python3", "-c", _TCP_PROBE, *(f"{address}:{port}" for address, port in targets)]
    if host is None:
        return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return json.loads(host.check_output(shlex.join(command)))


def tcp_probe(host: Any, address: str, port: int) -> str:
    """tcp_probes for one target."""
    return tcp_probes(host, [(address, port)])[0]


def redis_probe(host: Any, address: str, port: int, cafile: str) -> dict[str, Any]:
    """What Redis at `address` answers, from `host` (a logger host: the service's login is read from its
    env file there, never put on a command line): `plain` to PING in plain TCP, `system_cas` and `with_ca`
    to PING over TLS verified with the system's CAs or with `cafile`, `as_service` to AUTH as the service,
    PING and CONFIG GET over TLS ("refused: ..." when the connection fails; else the replies)."""
    result = host.run(f"python3 -c {shlex.quote(_REDIS_PROBE)} {address} {port} {cafile}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def transport_probe(host: Any, address: str, port: int) -> dict[str, Any]:
    """What a node's transport port answers, from `host`: `plain_reply` (hex) to a plain TCP client,
    `without_certificate` / `with_certificate` ("refused: ..." or the server certificate's issuer)."""
    result = host.run(f"python3 -c {shlex.quote(_TRANSPORT_PROBE)} {address} {port}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def versions(host: Any, ports: list[int]) -> list[str]:
    """The version each backend on `ports` answers with (uqcrowd_build_info in its /logger/metrics)."""
    found = []
    for port in ports:
        _, text = http(host, "GET", f"http://127.0.0.1:{port}/logger/metrics")
        match = re.search(r'uqcrowd_build_info\{version="([^"]+)"\}', str(text))
        found.append(match.group(1) if match else "")
    return found


# Run inside a container: batches of events posted straight to the backends (no per-client limit) from
# four threads until the queue refuses `stop_after` requests in a row with 503; what was accepted.
_FILL = r"""
import itertools, json, sys, threading, urllib.request, urllib.error
urls, session, batch, pad, stop_after = json.loads(sys.argv[1])
numbers, lock = itertools.count(), threading.Lock()
accepted, statuses, refused_in_a_row = [], {}, [0]
def worker(url):
    while refused_in_a_row[0] < stop_after:
        with lock:
            first = next(numbers) * batch
        events = [{"log_type": "message", "session_id": session, "sequence_number": first + i,
                   "content": {"message": "x" * pad}} for i in range(batch)]
        request = urllib.request.Request(url, data=json.dumps(events).encode(), headers={"Content-Type": "text/plain"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            if status == 202:
                accepted.extend(range(first, first + batch))
                refused_in_a_row[0] = 0
            elif status == 503:
                refused_in_a_row[0] += 1
threads = [threading.Thread(target=worker, args=(urls[i % len(urls)],)) for i in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps({"accepted": accepted, "statuses": statuses}))
"""


def fill_queue(host: Any, urls: list[str], session: str, batch: int = 100, pad: int = 500) -> dict[str, Any]:
    """Events posted to the backends at `urls` until the queue is at its mark (503s in a row):
    {"accepted": sequence numbers answered 202, "statuses": {status: requests}}."""
    args = json.dumps([urls, session, batch, pad, 20])
    result = host.run(f"python3 -c {shlex.quote(_FILL)} {shlex.quote(args)}")
    assert result.rc == 0, result.stderr
    outcome = json.loads(result.stdout)
    outcome["statuses"] = {int(status): count for status, count in outcome["statuses"].items()}
    return outcome


def oom_kills(host: Any) -> int:
    """Processes the kernel's OOM killer has killed in this container (its memory cgroup, v2 or v1)."""
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        if host.file(path).exists:
            return int(re.search(rf"^{key} (\d+)$", host.file(path).content_string, re.M).group(1))
    raise AssertionError("no memory cgroup in the container")


# A connection flood: `count` connections at once to HAProxy, each sending 120 kB of a request's headers
# and never the end of them (what a flood of slow clients costs HAProxy: a buffer each), held `hold`
# seconds, while HAProxy's resident memory (all its processes) is sampled; then the connections closed.
_FLOOD = r"""
import json, resource, socket, sys, threading, time
port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))

def haproxy_rss_kb():
    total = 0
    for status in __import__("glob").glob("/proc/[0-9]*/status"):
        try:
            text = open(status).read()
        except OSError:
            continue
        if "\nName:\thaproxy\n" in "\n" + text:
            total += int(next(l.split()[1] for l in text.splitlines() if l.startswith("VmRSS:")))
    return total

peak, done = [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], haproxy_rss_kb())
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
head = b"POST /logger/insert HTTP/1.1\r\nHost: flood\r\nContent-Type: text/plain\r\nX-Pad: " + b"p" * 120000
socks, refused = [], 0
for _ in range(count):
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        try:
            sock.send(head)
        except OSError:
            pass
        socks.append(sock)
    except OSError:
        refused += 1
time.sleep(hold)
for sock in socks:
    sock.close()
time.sleep(1)
done.set()
print(json.dumps({"opened": len(socks), "refused": refused, "peak_rss_mb": peak[0] // 1024}))
"""


def connection_flood(host: Any, port: int, count: int, hold: float) -> dict[str, Any]:
    """`count` slow connections to HAProxy at once: how many opened, and HAProxy's peak RSS in MB."""
    result = host.run(f"python3 -c {shlex.quote(_FLOOD)} {port} {count} {hold}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)
