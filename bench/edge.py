"""HAProxy's protections against none, in one run: L1 (the minimal app, N backends) behind the role's
HAProxy as it is (the per-client stick table tracking every request, its limits set above wrk's load
from one address; the body limit; the whole body buffered before a backend sees it, a slow one cut;
buffers sized to the tracker's largest request) and behind the same file without them (no stick table,
no body limit, no wait-for-body, HAProxy's default buffers). Interleaved A, B, B, A: a drift of the
machine during the run falls on both. The figure: HAProxy's CPU per request, with over without."""

from __future__ import annotations

import statistics

from bench.stack import DEFAULT_N, UNREACHED_CLIENT_LIMITS, Bench

WITHOUT_LIMITS = {name: 0 for name in UNREACHED_CLIENT_LIMITS}  # 0 turns a limit off: no stick table at all
WITHOUT_BODY_PROTECTIONS = ("http-request wait-for-body", "http-request deny deny_status 413", "tune.bufsize",
                            "tune.buffers.limit")  # fmt: skip
OFF = ", without protections"


def run(bench: Bench, results: list[dict]) -> None:
    for off in (False, True, True, False):
        name = f"L1 minimal app N={DEFAULT_N} behind HAProxy{OFF if off else ', every protection on'}"
        settings, without = (WITHOUT_LIMITS, WITHOUT_BODY_PROTECTIONS) if off else (UNREACHED_CLIENT_LIMITS, ())
        results.append(bench.run(name, "minimal", DEFAULT_N, proxy_settings=settings, proxy_without=without))


def summary(results: list[dict]) -> dict:
    """req/s and HAProxy's CPU per request, each the mean of its two runs, and the ratio on / off."""
    runs = [r for r in results if r["kind"] == "minimal" and "behind HAProxy" in r["name"]]
    if not runs:
        return {}
    halves = {"on": [r for r in runs if OFF not in r["name"]], "off": [r for r in runs if OFF in r["name"]]}
    figures: dict = {}
    for label, chosen in halves.items():
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
          for label, key in (("every protection on", "on"), ("without them", "off"))),
        f"\nCPU per request with / without: {figures['cpu_ratio']} (goal <= 1.2)",
    ])  # fmt: skip
