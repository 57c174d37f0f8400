"""Redis's appendfsync: always (the redis role's: a 202 once its events are on disk) against everysec
(answered first, synced every second), on the same runs."""

from __future__ import annotations

import statistics
import time

from bench.ceilings import sink_ceiling
from bench.stack import DEFAULT_N, HALF_RATE_SECONDS, TRACKER_BATCH, WARM_UP_EVENTS, Bench, role_fsync

# The runs above use the redis role's appendfsync (always: a 202 once its events are on disk); these
# runs, named with this suffix, the other policy (everysec: answered first, synced every second).
EVERYSEC = ", appendfsync everysec"


def fsync_everysec(bench: Bench, results: list[dict], half_rate: float, held: dict | None) -> None:
    """The same runs under everysec, against the role's always above: (b), (c), (b) at the same half
    rate, and the sustained rate always held."""
    bench.fsync("everysec")
    try:
        results.append(bench.run(f"(b) stack N={DEFAULT_N}, one event/request{EVERYSEC}", "stack", DEFAULT_N))
        results.append(
            bench.run(f"(c) stack N={DEFAULT_N}, {TRACKER_BATCH} events/request{EVERYSEC}", "stack", DEFAULT_N,
                      batch=TRACKER_BATCH)
        )  # fmt: skip
        results.append(
            bench.run(f"(b) stack N={DEFAULT_N} at ~50% of top rate, {HALF_RATE_SECONDS} s{EVERYSEC}", "stack",
                      DEFAULT_N, seconds=HALF_RATE_SECONDS, rate=half_rate)
        )  # fmt: skip
        if held:
            rate = held["events_per_s"]
            results.append(
                bench.run(f"sustained: {rate:,.0f} events/s asked, {TRACKER_BATCH} events/request, "
                          f"{HALF_RATE_SECONDS} s{EVERYSEC}", "stack", DEFAULT_N, batch=TRACKER_BATCH,
                          seconds=HALF_RATE_SECONDS, rate=rate / TRACKER_BATCH)
            )  # fmt: skip
    finally:
        bench.fsync(role_fsync())


def only(bench: Bench, results: list[dict]) -> None:
    """`python -m bench fsync`: (b) and (c) under always and everysec, interleaved (always, everysec,
    everysec, always), then (b) at half of always's rate under each."""
    warm = sink_ceiling(bench.es_server.url, f"bench-warm-up-{int(time.time())}", WARM_UP_EVENTS)
    print(f"  Elasticsearch warmed up: {warm['events']:,} events in {warm['seconds']:.0f} s", flush=True)
    for policy in ("always", "everysec", "everysec", "always"):
        bench.fsync(policy)
        suffix = EVERYSEC if policy == "everysec" else ""
        results.append(bench.run(f"(b) stack N={DEFAULT_N}, one event/request{suffix}", "stack", DEFAULT_N))
        results.append(
            bench.run(f"(c) stack N={DEFAULT_N}, {TRACKER_BATCH} events/request{suffix}", "stack", DEFAULT_N,
                      batch=TRACKER_BATCH)
        )  # fmt: skip
    top = statistics.mean(r["requests_per_s"] for r in results if r["batch"] == 1 and EVERYSEC not in r["name"])
    for policy in ("always", "everysec"):
        bench.fsync(policy)
        suffix = EVERYSEC if policy == "everysec" else ""
        results.append(
            bench.run(f"(b) stack N={DEFAULT_N} at ~50% of top rate, {HALF_RATE_SECONDS} s{suffix}", "stack",
                      DEFAULT_N, seconds=HALF_RATE_SECONDS, rate=top / 2)
        )  # fmt: skip
    bench.fsync(role_fsync())
