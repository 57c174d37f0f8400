"""Steady load for the fault tests, run inside the container: unique events at a fixed rate.

    python3 loadgen.py URL SESSION RATE SECONDS OUT.json

Each request is one event (session_id=SESSION, sequence_number=n), sent once, never retried.
SIGTERM ends the load early (the requests in flight finish and are counted).
OUT.json gets the sequence numbers answered 2xx and the count of every other outcome.
"""

import json
import signal
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, session, rate, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]


def send(n: int) -> tuple[int, int]:
    event = {"log_type": "message", "session_id": session, "sequence_number": n, "content": {"message": "load"}}
    request = urllib.request.Request(url, data=json.dumps(event).encode(), headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return n, response.status
    except urllib.error.HTTPError as error:
        return n, error.code
    except OSError:
        return n, 0


stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
started, futures = time.monotonic(), []
with ThreadPoolExecutor(max_workers=32) as pool:
    n = 0
    while (elapsed := time.monotonic() - started) < seconds and not stopping:
        if n < elapsed * rate:
            futures.append(pool.submit(send, n))
            n += 1
        else:
            time.sleep(0.002)
results = [f.result() for f in futures]
accepted = sorted(n for n, status in results if 200 <= status < 300)
failed = {}
for _, status in results:
    if not 200 <= status < 300:
        failed[str(status)] = failed.get(str(status), 0) + 1
with open(out, "w") as handle:
    json.dump({"sent": len(results), "accepted": accepted, "failed": failed}, handle)
