"""The tables `make bench` prints, from one run's results (bench/results/<time>.json)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench import dashboard, edge, export
from bench.fsync import EVERYSEC
from bench.replica import REPLICA
from bench.stack import CORES, DEFAULT_N, TRACKER_BATCH
from bench.sustained import holds


def table(results: list[dict]) -> str:
    head = (
        "| run | backends | events/request | req/s | events/s | p50 ms | p99 ms | non-2xx | lost | duplicated "
        "| drain s | lag p95 s | wrk CPU |"
    )
    rows = [head, "|" + "---|" * 13]
    for r in results:
        lag = f"{r['lag_p95_s']:.2f}" if r["lag_p95_s"] is not None else "-"
        rows.append(
            f"| {r['name']} | {r['backends']} | {r['batch']} | {r['requests_per_s']:,.0f} | "
            f"{r['events_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['non_2xx'] + r['socket_errors']} | "
            f"{r['lost']} | {r['duplicated']} | {r['drain_s']:.1f} | {lag} | {r['wrk_cpu_share']:.0%} |"
        )
    return "\n".join(rows)


def limits_table(results: list[dict], limits: dict) -> str:
    """The targets of the run, each against its ceiling or baseline measured in this same run, with what
    the row says."""
    l1 = next(r for r in results if r["kind"] == "minimal")
    cache = next(r for r in results if r["kind"] == "cache")
    single = next(r for r in results if r["name"] == f"(b) stack N={DEFAULT_N}, one event/request")
    batch = next(r for r in results if r["batch"] == TRACKER_BATCH and r["name"].startswith("(c)"))
    half = next(r for r in results if "50% of top rate" in r["name"])
    l2 = limits["l2"]["events_per_s"]
    held = limits.get("sustained")
    rows = [
        "| measure | this run | against | ratio | target | met | what it says |",
        "|---|---|---|---|---|---|---|",
        f"| L1: minimal Flask app on Granian, N={DEFAULT_N}, behind the same HAProxy | "
        f"{l1['requests_per_s']:,.0f} req/s | - | - | the web stack's ceiling | - | "
        "what the web stack does when a request does nothing |",
        f"| L2: Elasticsearch's bulk alone (ideal settings) | {l2:,.0f} events/s | - | - | the sink's ceiling | - | "
        "what Elasticsearch indexes with the machine to itself |",
    ]

    def row(what: str, value: str, against: str, ratio: float | None, target: str, met: bool, says: str) -> None:
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        rows.append(f"| {what} | {value} | {against} | {shown} | {target} | {'yes' if met else 'no'} | {says} |")

    r1 = single["requests_per_s"] / l1["requests_per_s"]
    row("(b) single events vs L1", f"{single['requests_per_s']:,.0f} req/s", "L1", r1, ">= 0.80", r1 >= 0.8,
        "the share of the web stack's rate left once a request is checked, queued durably and indexed")  # fmt: skip
    r2 = single["requests_per_s"] / cache["requests_per_s"]
    row("(b) single events vs (a') cache mode", f"{single['requests_per_s']:,.0f} req/s",
        f"{cache['requests_per_s']:,.0f} req/s", r2, ">= 2", r2 >= 2,
        "against the original at its fastest, which never indexed what it cached")  # fmt: skip
    row(f"(c) {TRACKER_BATCH} events/request", f"{batch['events_per_s']:,.0f} events/s", "-", None,
        ">= 60,000 events/s", batch["events_per_s"] >= 60000,
        "events accepted per second from the tracker's batches, for 10 s (a burst: the queue grows)")  # fmt: skip
    if held:
        r3 = held["events_per_s"] / l2
        row("sustained 60 s (lag p95 <= 5 s, queue not growing) vs L2", f"{held['events_per_s']:,.0f} events/s",
            "L2", r3, ">= 0.60", r3 >= 0.6,
            "the share of Elasticsearch's own rate the whole pipeline holds on the same vCPUs")  # fmt: skip
        indexer = of_kind(held["peak_rss_mb"], "indexer", max)
        row("indexer's peak RSS in the sustained run", f"{indexer:.0f} MB", "-", None, "< 300 MB", indexer < 300,
            "the indexer's memory at its busiest")  # fmt: skip
    else:
        rows.append("| sustained 60 s vs L2 | no tried rate held | L2 | - | >= 0.60 | no | - |")
    row("p99 at half of (b)'s rate", f"{half['p99_ms']:.1f} ms", "-", None, "<= 25 ms", half["p99_ms"] <= 25,
        "how long a worker's page waits when the server is not saturated")  # fmt: skip
    clean = all(r["lost"] == 0 and r["duplicated"] == 0 for r in results if r["kind"] == "stack")
    row("lost and duplicated, every stack run", "0" if clean else "not 0", "-", None, "0", clean,
        "every accepted event stored exactly once")  # fmt: skip
    return "\n".join(rows)


def of_kind(figures: dict[str, float], kind: str, combine: Callable[[list[float]], float]) -> float:
    """The figures of every process of a kind ("backend 1", "backend 2" ...), combined (sum, max)."""
    return combine([value for what, value in figures.items() if what.startswith(kind)] or [0.0])


def cpu_table(results: list[dict]) -> str:
    """Where the CPU went: microseconds of CPU per request, per part (the backends summed), from /proc."""
    parts = ["backends", "indexers", "redis", "elasticsearch", "haproxy"]
    rows = ["| run | " + " | ".join(parts) + " | all | machine busy |", "|---" * (len(parts) + 3) + "|"]
    for r in results:
        if r["kind"] not in ("stack", "minimal"):
            continue
        per_request = r["cpu_us_per_request"]
        figures = {
            "backends": of_kind(per_request, "backend", sum),
            "indexers": of_kind(per_request, "indexer", sum) if r["kind"] == "stack" else None,
        } | {what: per_request.get(what) for what in parts[2:]}
        shown = [f"{figures[what]:,.0f}" if figures[what] is not None else "-" for what in parts]
        busy = sum(r["cpu_share"].values()) + r["wrk_cpu_share"]
        total = sum(v or 0 for v in figures.values())
        rows.append(f"| {r['name']} | " + " | ".join(shown) + f" | {total:,.0f} | {busy:.0%} |")
    return "\n".join(rows)


def memory_table(results: list[dict]) -> str:
    """Peak RSS of each process (MB) in the stack's runs."""
    rows = ["| run | each backend (max) | each indexer (max) | Redis | Elasticsearch |", "|---|---|---|---|---|"]
    for r in results:
        if r["kind"] != "stack":
            continue
        rss = r["peak_rss_mb"]
        backend = of_kind(rss, "backend", max)
        rows.append(
            f"| {r['name']} | {backend:.0f} | {of_kind(rss, 'indexer', max):.0f} | {rss.get('redis', 0):.0f} "
            f"| {rss.get('elasticsearch', 0):.0f} |"
        )
    return "\n".join(rows)


def fsync_table(results: list[dict]) -> str:
    """Each measure under always (the role's) against everysec, from this run (means of repeated runs)."""
    rows = compared(
        results, EVERYSEC, "| measure | appendfsync always (the role's) | appendfsync everysec | always / everysec |"
    )
    for run in (r for r in results if r["name"].startswith("sustained") and EVERYSEC in r["name"]):
        verdict = "held" if holds(run) else "not held"
        rows.append(
            f"| sustained {run['events_per_s']:,.0f} events/s, 60 s | held (the highest tried) | {verdict} "
            f"(lag p95 {run['lag_p95_s'] or 0:.1f} s, p99 {run['p99_ms']:.1f} ms) | - |"
        )
    lost = sum(r["lost"] + r["duplicated"] for r in results if r["kind"] == "stack")
    rows.append(f"| lost and duplicated, every stack run | {lost} | {lost} | - |")
    return "\n".join(rows)


def replica_table(results: list[dict]) -> str:
    """Each measure with a 202 only once a replica holds the insert (WAIT) against the primary alone."""
    rows = compared(
        results, REPLICA, "| measure | the primary alone | WAIT for 1 replica (a second Redis) | alone / WAIT |"
    )
    lost = sum(r["lost"] + r["duplicated"] for r in results if r["kind"] == "stack")
    rows.append(f"| lost and duplicated, every stack run | {lost} | {lost} | - |")
    return "\n".join(rows)


def compared(results: list[dict], marker: str, head: str) -> list[str]:
    """(b), (c) and the latency at half rate of the runs without `marker` in their name against those
    with it (means of repeated runs), as table rows under `head`."""

    def of(marked: bool, start: str, field: str) -> float | None:
        runs = [r for r in results if r["name"].startswith(start) and (marker in r["name"]) == marked]
        return statistics.mean(r[field] for r in runs) if runs else None

    rows = [head, "|---|---|---|---|"]
    for label, start, field, unit in (
        ("(b) single events", f"(b) stack N={DEFAULT_N}, one event/request", "requests_per_s", "req/s"),
        (f"(c) {TRACKER_BATCH} events/request", f"(c) stack N={DEFAULT_N}, ", "events_per_s", "events/s"),
        ("p50 at half of (b)'s rate", f"(b) stack N={DEFAULT_N} at ~50%", "p50_ms", "ms"),
        ("p99 at half of (b)'s rate", f"(b) stack N={DEFAULT_N} at ~50%", "p99_ms", "ms"),
    ):
        without, marked = of(False, start, field), of(True, start, field)
        if without is not None and marked is not None:
            rows.append(f"| {label} | {without:,.1f} {unit} | {marked:,.1f} {unit} | {without / marked:.2f} |")
    return rows


def failures(run: dict) -> str:
    """The answers that were not 2xx, by status, and the socket errors by kind: "0" for none."""
    shown = [f"{count} x {code}" for code, count in sorted(run.get("statuses", {}).items()) if not code.startswith("2")]
    shown += [f"{count} {kind}" for kind, count in sorted(run.get("error_kinds", {}).items()) if count]
    return ", ".join(shown) or str(run["non_2xx"] + run["socket_errors"])


def study_table(results: list[dict], limits: dict) -> str:
    """W held, ours against the original design's, every try of the search, and where the CPU went per
    event in each design's held run."""
    study = limits["study"]
    l2 = limits.get("l2", {}).get("events_per_s")  # measured after the study: read when the table is drawn
    ceiling = f"{l2 / study['events_per_worker_second']:,.0f}" if l2 else "-"
    tries = [r for r in results if "workers" in r]
    ours_n = next((r["backends"] for r in tries if r["kind"] == "stack"), DEFAULT_N)
    theirs_n = next((r["backends"] for r in tries if r["kind"] == "index"), DEFAULT_N)
    rows = [
        f"W held (a request every 2 s of 1-20 events: {study['events_per_worker_second']:.2f} events a worker-second):",
        "| design | backends | W held | per vCPU | against the original | the ceiling from L2 |",
        "|---|---|---|---|---|---|",
        f"| this stack | {ours_n} | {study['ours']:,} | {study['per_vcpu']:,.0f} | "
        f"{study['ours'] / study['original'] if study['original'] else float('inf'):.1f}x | "
        f"{ceiling} |",
        f"| the original design | {theirs_n} | {study['original']:,} | "
        f"{study['original'] / max(1, CORES):,.0f} | 1x | - |",
        "",
        "| try | workers | held | req/s | events/s | p99 ms | failed | lag p95 s | queue growth/s | lost | dup |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in tries:
        lag = f"{r['lag_p95_s']:.2f}" if r["lag_p95_s"] is not None else "-"
        rows.append(
            f"| {r['name']} | {r['workers']:,} | {'yes' if r['held'] else 'no'} | {r['requests_per_s']:,.0f} | "
            f"{r['events_per_s']:,.0f} | {r['p99_ms']:.1f} | {failures(r)} | {lag} | "
            f"{r['backlog_growth_per_s']:,.0f} | {r['lost']} | {r['duplicated']} |"
        )
    held_runs = [r for r in results if "workers" in r and r["held"] and r["name"] in study.get("held_runs", ())]
    if held_runs:
        parts = ["backends", "indexers", "redis", "haproxy", "elasticsearch"]
        rows += ["", "CPU per event in the held runs (µs; the backends summed):", ""]
        rows += ["| run | " + " | ".join(parts) + " | all but Elasticsearch / Elasticsearch |", "|---" * 7 + "|"]
        for r in held_runs:
            per_event = r["requests_per_s"] / max(r["events_per_s"], 1e-9)
            used = r["cpu_us_per_request"]
            figures = {
                "backends": of_kind(used, "backend", sum),
                "indexers": of_kind(used, "indexer", sum),
            } | {what: used.get(what, 0.0) for what in parts[2:]}
            figures = {what: (value or 0.0) * per_event for what, value in figures.items()}
            rest = sum(value for what, value in figures.items() if what != "elasticsearch")
            shown = " | ".join(f"{figures[what]:,.1f}" for what in parts)
            rows.append(f"| {r['name']} | {shown} | {rest / max(figures['elasticsearch'], 1e-9):.1f} |")
    return "\n".join(rows)


def tables(results: list[dict], limits: dict, exported: dict, viewed: dict) -> str:
    """Every table the run has figures for, in the order docs/performance/index.md gives them."""
    shown = [study_table(results, limits)] if "study" in limits else []
    results = [r for r in results if "workers" not in r]
    if results and limits:
        shown += [table(results), limits_table(results, limits), memory_table(results), cpu_table(results)]
    if any(EVERYSEC in r["name"] for r in results):
        shown.append(fsync_table(results))
    if any(REPLICA in r["name"] for r in results):
        shown.append(replica_table(results))
    if edged := edge.summary(results):
        shown.append(edge.table(edged))
    if exported:
        shown.append(export.table(exported))
    if viewed:
        shown.append(dashboard.table(viewed))
    return "\n\n".join(shown)
