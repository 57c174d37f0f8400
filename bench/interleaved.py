"""Two settings of the stack compared on the same runs: (b) and (c) under each, interleaved (A, B, B,
A: a drift of the machine during the run falls on both), then (b) at half of A's rate under each (the
latency). The runs under B are named with its marker."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.ceilings import sink_ceiling
from bench.stack import DEFAULT_N, HALF_RATE_SECONDS, TRACKER_BATCH, WARM_UP_EVENTS, Bench


def compare(bench: Bench, results: list[dict], switch: Callable[[bool], None], marker: str) -> None:
    """`switch(False)` sets A, `switch(True)` B; A again at the end."""
    warm = sink_ceiling(bench.es_server.url, f"bench-warm-up-{int(time.time())}", WARM_UP_EVENTS)
    print(f"  Elasticsearch warmed up: {warm['events']:,} events in {warm['seconds']:.0f} s", flush=True)
    for b in (False, True, True, False):
        switch(b)
        suffix = marker if b else ""
        results.append(bench.run(f"(b) stack N={DEFAULT_N}, one event/request{suffix}", "stack", DEFAULT_N))
        results.append(
            bench.run(f"(c) stack N={DEFAULT_N}, {TRACKER_BATCH} events/request{suffix}", "stack", DEFAULT_N,
                      batch=TRACKER_BATCH)
        )  # fmt: skip
    top = statistics.mean(r["requests_per_s"] for r in results if r["batch"] == 1 and marker not in r["name"])
    for b in (False, True):
        switch(b)
        suffix = marker if b else ""
        results.append(
            bench.run(f"(b) stack N={DEFAULT_N} at ~50% of top rate, {HALF_RATE_SECONDS} s{suffix}", "stack",
                      DEFAULT_N, seconds=HALF_RATE_SECONDS, rate=top / 2)
        )  # fmt: skip
    switch(False)
