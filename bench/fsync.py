"""Redis's appendfsync: always (the redis role's: a 202 once its events are on disk) against everysec
(answered first, synced every second), on the same runs."""

from __future__ import annotations

from bench.interleaved import compare
from bench.stack import DEFAULT_N, HALF_RATE_SECONDS, TRACKER_BATCH, Bench, role_fsync

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
    """`python -m bench fsync`: always, the role's (A), against everysec (B)."""
    compare(bench, results, lambda everysec: bench.fsync("everysec" if everysec else "always"), EVERYSEC)
    bench.fsync(role_fsync())
