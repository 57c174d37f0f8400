"""A 202 only once a replica holds the insert (the backends' WAIT, UQCROWD_REDIS_REPLICAS=1, against a
second Redis on this machine) against the primary alone, on the same runs."""

from __future__ import annotations

from bench.interleaved import compare
from bench.stack import Bench

# The runs with a replica wait are named with this suffix.
REPLICA = ", WAIT for 1 replica"


def only(bench: Bench, results: list[dict]) -> None:
    """`python -m bench replica`: the primary alone (A) against a 202 once a replica has it (B)."""
    compare(bench, results, bench.replicate, REPLICA)
