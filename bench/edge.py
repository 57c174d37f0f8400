"""HAProxy's protections against none, in one run: L1 (the minimal app, N backends) behind the role's
HAProxy as it is (the per-client stick table tracking every request, its limits set above wrk's load
from one address; the body limit; the whole body buffered before a backend sees it, a slow one cut;
buffers sized to the tracker's largest request) and behind the same file without them (no stick table,
no body limit, no wait-for-body, HAProxy's default buffers). Interleaved A, B, B, A: a drift of the
machine during the run falls on both. The figure: HAProxy's CPU per request, with over without.
`make bench-edge` then takes each protection out alone, twice: which of them costs what."""

from __future__ import annotations

import statistics

from bench.stack import DEFAULT_N, UNREACHED_CLIENT_LIMITS, Bench

WITHOUT_LIMITS = {name: 0 for name in UNREACHED_CLIENT_LIMITS}  # 0 turns a limit off: no stick table at all
WITHOUT_BODY_PROTECTIONS = ("http-request wait-for-body", "http-request deny deny_status 413", "tune.bufsize",
                            "tune.buffers.limit")  # fmt: skip
ON, OFF, ONLY = ", every protection on", ", without protections", ", without only "
# `make bench-edge` also takes each protection out alone (the others kept): which costs what.
ONE_AT_A_TIME = {
    "the per-client stick table": (WITHOUT_LIMITS, ()),
    "the body limit (413)": (UNREACHED_CLIENT_LIMITS, ("http-request deny deny_status 413",)),
    "wait-for-body": (UNREACHED_CLIENT_LIMITS, ("http-request wait-for-body",)),
    "the buffers sized to the tracker": (UNREACHED_CLIENT_LIMITS, ("tune.bufsize", "tune.buffers.limit")),
}


def _run(bench: Bench, label: str, settings: dict, without: tuple[str, ...]) -> dict:
    name = f"L1 minimal app N={DEFAULT_N} behind HAProxy{label}"
    return bench.run(name, "minimal", DEFAULT_N, proxy_settings=settings, proxy_without=without)


def run(bench: Bench, results: list[dict]) -> None:
    on, off = (ON, UNREACHED_CLIENT_LIMITS, ()), (OFF, WITHOUT_LIMITS, WITHOUT_BODY_PROTECTIONS)
    for label, settings, without in (on, off, off, on):
        results.append(_run(bench, label, settings, without))


def breakdown(bench: Bench, results: list[dict]) -> None:
    """Each protection taken out alone, twice, after the comparison (whose runs with all of them on are
    the baseline)."""
    for _ in range(2):
        for what, (settings, without) in ONE_AT_A_TIME.items():
            results.append(_run(bench, f"{ONLY}{what}", settings, without))


def summary(results: list[dict]) -> dict:
    """req/s and HAProxy's CPU per request, each the mean of its two runs, and the ratio on / off."""
    runs = [r for r in results if r["kind"] == "minimal" and "behind HAProxy" in r["name"]]
    if not runs:
        return {}
    halves = {"on": [r for r in runs if r["name"].endswith(ON)], "off": [r for r in runs if r["name"].endswith(OFF)]}
    halves |= {what: [r for r in runs if r["name"].endswith(f"{ONLY}{what}")] for what in ONE_AT_A_TIME}
    figures: dict = {}
    for label, chosen in halves.items():
        if not chosen:
            continue
        figures[label] = {
            "requests_per_s": round(statistics.mean(r["requests_per_s"] for r in chosen)),
            "haproxy_us_per_request": round(statistics.mean(r["cpu_us_per_request"]["haproxy"] for r in chosen), 1),
        }
    figures["cpu_ratio"] = round(figures["on"]["haproxy_us_per_request"] / figures["off"]["haproxy_us_per_request"], 2)
    return figures


def table(figures: dict) -> str:
    if not figures:
        return ""
    return "\n".join([
        f"HAProxy's protections (L1, N={DEFAULT_N}, interleaved on, off, off, on; the mean of each pair):",
        "| HAProxy | requests/s | HAProxy's CPU per request (µs) |",
        "|---|---|---|",
        *(f"| {label} | {figures[key]['requests_per_s']:,} | {figures[key]['haproxy_us_per_request']} |"
          for label, key in (("every protection on", "on"), ("without them", "off"),
                             *((f"without only {what}", what) for what in ONE_AT_A_TIME))
          if key in figures),
        f"\nCPU per request with / without: {figures['cpu_ratio']} (goal <= 1.2)",
    ])  # fmt: skip
