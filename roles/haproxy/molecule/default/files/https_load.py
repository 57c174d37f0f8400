#!/usr/bin/env python3
"""Steady load over HTTPS, verifying the served certificate with a CA file: `rate` POSTs a second, each
on a new connection (so some land while HAProxy reloads) from one of ten loopback addresses in turn
(each well under the scenario's per-client limit), until SIGTERM; then the counts as JSON.
argv: host name (resolving to loopback), CA file, rate, output file."""

import http.client
import json
import signal
import ssl
import sys
import time

name, cafile, rate, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
context = ssl.create_default_context(cafile=cafile)
counts = {"sent": 0, "ok": 0, "failed": {}}
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
start = time.monotonic()
while running:
    source = (f"127.0.0.{10 + counts['sent'] % 10}", 0)
    counts["sent"] += 1
    connection = http.client.HTTPSConnection(name, 443, timeout=10, context=context, source_address=source)
    try:
        connection.request("POST", "/logger/insert", body=b'{"log_type": "message"}')
        status = connection.getresponse().status
        why = "" if status == 202 else str(status)
    except OSError as error:
        why = type(error).__name__
    finally:
        connection.close()
    if why:
        counts["failed"][why] = counts["failed"].get(why, 0) + 1
    else:
        counts["ok"] += 1
    time.sleep(max(0.0, start + counts["sent"] / rate - time.monotonic()))
with open(out, "w") as result:
    json.dump(counts, result)
