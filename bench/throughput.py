"""The main runs: the ceilings (L1, L2), the original's two modes, the stack at N = 1, 2, 4, 8, the
tracker's 20-event batches, half of the top rate, and the highest rate of batches it sustains."""

from __future__ import annotations

import time

from bench.ceilings import sink_ceiling
from bench.fsync import fsync_everysec
from bench.stack import CORES, DEFAULT_N, DURATION, HALF_RATE_SECONDS, TRACKER_BATCH, WARM_UP_EVENTS, Bench
from bench.sustained import sustained


def b_run(bench: Bench, label: str) -> dict:
    """One (b) run (the stack at the default N, one event a request), named with `label` (kept with the
    dashboard's figures, not in the tables of the runs above)."""
    return bench.run(f"(b) stack N={DEFAULT_N}, one event/request, {label}", "stack", DEFAULT_N)


def run(bench: Bench, results: list[dict], limits: dict) -> None:
    """The ceilings (L1, L2), the original's two modes, the stack at N = 1, 2, 4, 8 (and BENCH_BACKENDS'
    count), batches, half rate, and the highest rate it sustains."""
    print(f"make bench: {CORES} vCPUs, N = {DEFAULT_N} backends by default, {DURATION} s per run", flush=True)
    # A server that has run for a day has compiled its indexing code; a fresh JVM would compile it during
    # the first runs, on the vCPUs they share. Not measured.
    warm = sink_ceiling(bench.es_server.url, f"bench-warm-up-{int(time.time())}", WARM_UP_EVENTS)
    print(f"  Elasticsearch warmed up: {warm['events']:,} events in {warm['seconds']:.0f} s", flush=True)
    l1 = bench.run(f"L1 minimal Flask on Granian N={DEFAULT_N}, one event/request", "minimal", DEFAULT_N)
    results.append(l1)
    results.append(bench.run("(a) original: dev server, index per event", "index", DEFAULT_N))
    results.append(bench.run("(a') original cache mode: dev server, LPUSH", "cache", DEFAULT_N))
    for n in sorted({1, 2, 4, 8, DEFAULT_N}):  # BENCH_BACKENDS among them: the report compares at it
        results.append(bench.run(f"(b) stack N={n}, one event/request", "stack", n))
    results.append(
        bench.run(f"(c) stack N={DEFAULT_N}, {TRACKER_BATCH} events/request", "stack", DEFAULT_N, batch=TRACKER_BATCH)
    )
    top = max(r["requests_per_s"] for r in results if r["kind"] == "stack" and r["batch"] == 1)
    results.append(
        bench.run(
            f"(b) stack N={DEFAULT_N} at ~50% of top rate, {HALF_RATE_SECONDS} s",
            "stack",
            DEFAULT_N,
            seconds=HALF_RATE_SECONDS,
            rate=top / 2,
        )
    )
    # L2 after the throughput runs (its 300,000 documents keep Elasticsearch merging for a while).
    limits["l2"] = sink_ceiling(bench.es_server.url, f"bench-l2-{int(time.time())}")
    print(f"  L2 Elasticsearch bulk alone: {limits['l2']['events_per_s']:,.0f} events/s", flush=True)
    burst = next(r for r in results if r["batch"] == TRACKER_BATCH)["events_per_s"]
    limits["sustained"] = sustained(bench, results, limits["l2"]["events_per_s"], burst)
    fsync_everysec(bench, results, top / 2, limits["sustained"])
