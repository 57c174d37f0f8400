"""The question a researcher asks: how many workers can take my study at once on this server, without
losing an event? W workers (wrk/study.lua: one connection each, each its own address through a trusted
front proxy's X-Forwarded-For, the role's HAProxy with its default per-client limits), each a session
of the tracker's shape: a request every 2 s on average (exponential gaps) of 1 to 20 events of the
tracker's sizes. W is *held* when STUDY_SECONDS (120) of it get no refused request (no 429 nor 503,
no socket error), p99 <= 100 ms, the indexing lag's p95 <= 5 s, a queue that does not grow, and every
accepted event stored once.

In the same run, the original design (Flask's development server indexing one event per request, as
the seed's guide runs it, behind the same HAProxy), driven as the original tracker sent: one event a
request, as many events per worker-second; its W held by the same rules (it has no queue: no lag).
"""

from __future__ import annotations

import os
import re

import yaml

from bench.report import failures
from bench.stack import CORES, DEFAULT_N, ROOT, WRK_THREADS, Bench

STUDY_SECONDS = int(os.environ.get("BENCH_STUDY_SECONDS", "120"))
MEAN_GAP_MS = 2000
EVENTS_MIN, EVENTS_MAX = 1, 20
EVENTS_PER_REQUEST = (EVENTS_MIN + EVENTS_MAX) / 2
EVENTS_PER_WORKER_SECOND = EVENTS_PER_REQUEST * 1000 / MEAN_GAP_MS  # 5.25
TRUSTED_FRONT = {"haproxy_trusted_proxies": ["127.0.0.1"]}  # wrk is the front proxy; limits at their defaults


def idle_cut_ms() -> int:
    """A gap 1 s shorter than HAProxy's idle timeouts (keep-alive, and a new connection's first request),
    as the role sets them: wrk/study.lua says why its gaps are cut."""
    defaults = yaml.safe_load((ROOT / "roles/haproxy/defaults/main.yml").read_text())
    timeouts = [defaults[f"haproxy_timeout_{name}"] for name in ("http_keep_alive", "http_request")]
    seconds = [int(re.fullmatch(r"(\d+)s", str(t)).group(1)) for t in timeouts]  # type: ignore[union-attr]
    return (min(seconds) - 1) * 1000


MAX_GAP_MS = idle_cut_ms()
MAX_WORKERS = 3800  # under HAProxy's maxconn (4096): one connection a worker
P99_MS, LAG_P95_S = 100.0, 5.0


def holds(run: dict) -> bool:
    lag_ok = run["lag_p95_s"] is None or run["lag_p95_s"] <= LAG_P95_S
    steady = run["backlog_growth_per_s"] <= 0.02 * max(run["events_per_s"], 1.0)
    clean = run["non_2xx"] + run["socket_errors"] + run["lost"] + run["duplicated"] == 0
    return clean and run["p99_ms"] <= P99_MS and lag_ok and steady


def probe(bench: Bench, design: str, workers: int) -> dict:
    """One run of `workers` workers against the stack ("stack") or the original design ("index")."""
    original = design == "index"
    env = {
        "WORKERS": str(workers),
        "THREADS": str(WRK_THREADS),
        "MEAN_GAP_MS": str(MEAN_GAP_MS / EVENTS_PER_REQUEST if original else MEAN_GAP_MS),
        "MAX_GAP_MS": str(MAX_GAP_MS),
        "EVENTS_MIN": "1" if original else str(EVENTS_MIN),
        "EVENTS_MAX": "1" if original else str(EVENTS_MAX),
        "SESSION_REQUESTS": str(60 * int(EVENTS_PER_REQUEST) if original else 60),
    }
    label = "original design" if original else "the stack"
    run = bench.run(
        f"study: {workers} workers, {label}",
        design,
        DEFAULT_N,
        seconds=STUDY_SECONDS,
        connections=workers,
        script="study.lua",
        script_env=env,
        proxy_settings=TRUSTED_FRONT,
    )
    run["workers"], run["held"] = workers, holds(run)
    print(
        f"    {'held' if run['held'] else 'not held'}: failed {failures(run)}, lag p95 {run['lag_p95_s']}", flush=True
    )
    return run


def held(bench: Bench, results: list[dict], design: str, first: int, attempts: int = 6) -> dict | None:
    """The largest W held, in at most `attempts` runs: from `first`, up by 2x while it holds (a first
    guess can be far off), down by 0.75x while it does not, then halving the gap (geometrically) between
    the largest held and the smallest not, until they are within 10 %."""
    workers, best, failed = first, None, MAX_WORKERS + 1
    for _ in range(attempts):
        run = probe(bench, design, min(workers, MAX_WORKERS))
        results.append(run)
        if run["held"]:
            best = run if best is None or run["workers"] > best["workers"] else best
        else:
            failed = min(failed, run["workers"])
        low = best["workers"] if best else 0
        if low and failed <= MAX_WORKERS:
            if failed / low < 1.1 or failed - low <= 2:
                break  # within 10 %: close enough on a machine this noisy
            workers = int((low * failed) ** 0.5)
        elif low:
            if low >= MAX_WORKERS:
                break
            workers = int(low * 2)
        else:
            workers = max(1, int(workers * 0.75))
    return best


def run(bench: Bench, results: list[dict], limits: dict) -> None:
    """W held by the stack and by the original design, from first guesses made of this run's figures."""
    print(f"study: W workers, a request every {MEAN_GAP_MS / 1000:.0f} s of {EVENTS_MIN}-{EVENTS_MAX} events each, "
          f"{STUDY_SECONDS} s a run", flush=True)  # fmt: skip
    sustained = limits.get("sustained") or {}
    guess = int(0.8 * sustained.get("events_per_s", 10_000) / EVENTS_PER_WORKER_SECOND)
    ours = held(bench, results, "stack", min(guess, MAX_WORKERS))
    original_rate = next((r["events_per_s"] for r in results if r["kind"] == "index"), 500.0)
    theirs = held(bench, results, "index", max(1, int(0.8 * original_rate / EVENTS_PER_WORKER_SECOND)))
    limits["study"] = {
        "events_per_worker_second": EVENTS_PER_WORKER_SECOND,
        "ours": ours["workers"] if ours else 0,
        "original": theirs["workers"] if theirs else 0,
        "ours_run": ours["name"] if ours else None,
        "per_vcpu": (ours["workers"] / CORES) if ours else 0,
        "held_runs": [run["name"] for run in (ours, theirs) if run],
    }
