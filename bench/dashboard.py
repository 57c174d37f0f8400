"""The researchers' dashboard measured on the export's 1,000,000 events (two experiments of 5,000
sessions each): how long its pages take (Elasticsearch's aggregations, no document read), the
experiment page again once the nightly job has stored its sessions' reports (their signals shown), and
the stack's ingest rate (b) with five experiment pages open (each polling live.json every 5 s, as the
page does) against none, in the same run."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests
from elasticsearch import Elasticsearch
from werkzeug.security import generate_password_hash

from bench import export
from harness.services import Process, free_port
from uqcrowd_log.dashboard.app import LIVE_SECONDS
from uqcrowd_log.stored_events.selection import Selection
from uqcrowd_log.stored_events.sessions import read_reports, rows, store

LOGIN = ("bench", "a bench password, not a secret")
PAGES = {
    "experiments (overview)": "/dashboard/",
    "one experiment": "/dashboard/experiment/exp-0",
    "its live.json (every 5 s)": "/dashboard/experiment/exp-0/live.json",
}
WITH_SIGNALS = {"one experiment, with its sessions' nightly signals": PAGES["one experiment"]}
LIVE = "/dashboard/experiment/exp-0/live.json"
REPORTS = "bench-session"  # the nightly session reports' indices (outside the events' bench-export-*)
VIEWERS = 5
POLL_SECONDS = 5.0


class Dashboard(Process):
    """`python -m uqcrowd_log dashboard` on the export's indices."""

    def __init__(self, work: Path, es_url: str) -> None:
        users = work / "dashboard-users"
        users.write_text(f"{LOGIN[0]}:{generate_password_hash(LOGIN[1])}\n")
        self.port = free_port()
        super().__init__(work / "dashboard.out")
        self.env = {
            "UQCROWD_ES_URL": es_url,
            "UQCROWD_INDEX_PREFIX": export.PREFIX,
            "UQCROWD_SESSION_INDEX_PREFIX": REPORTS,
            "UQCROWD_DASHBOARD_USERS_FILE": str(users),
            "UQCROWD_DASHBOARD_PORT": str(self.port),
            "UQCROWD_THREADS": "4",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uqcrowd_log", "dashboard"]

    def popen_options(self) -> dict[str, object]:
        return {"env": {**os.environ, **self.env}}

    def ready(self) -> bool:
        return requests.get(f"{self.url}/dashboard/", timeout=2).status_code == 401


def timed(url: str) -> float:
    started = time.monotonic()
    answer = requests.get(url, auth=LOGIN, timeout=600)
    answer.raise_for_status()
    return time.monotonic() - started


def pages(dashboard: Dashboard, shown: dict[str, str] = PAGES, runs: int = 3) -> list[dict]:
    """Each page's response time: the median and the slowest of `runs` after one not counted, each
    counted afresh (after LIVE_SECONDS: live.json's shared answer expired)."""

    def fresh(url: str) -> float:
        time.sleep(LIVE_SECONDS)
        return timed(url)

    figures = []
    for name, path in shown.items():
        timed(dashboard.url + path)  # Elasticsearch's caches warm, as on a page a researcher keeps open
        seconds = [fresh(dashboard.url + path) for _ in range(runs)]
        median, slowest = round(statistics.median(seconds), 2), round(max(seconds), 2)
        figures.append({"page": name, "median_s": median, "max_s": slowest})
    return figures


def store_reports(es_url: str) -> dict:
    """What the nightly job (`uqcrowd-log sessions --store`) writes for exp-0's sessions: their reports,
    signals included, read from their events. Timed."""
    client = Elasticsearch(es_url, request_timeout=600)
    started = time.monotonic()
    reports = read_reports(client, f"{export.PREFIX}-*", Selection(exp_id="exp-0"))
    written = store(client, f"{REPORTS}-{datetime.now(UTC).date()}", rows(reports, {}))
    return {"reports": written, "seconds": round(time.monotonic() - started, 1)}


def with_viewers(dashboard: Dashboard, run: Callable[[], dict]) -> tuple[dict, dict]:
    """`run` (a bench run) while VIEWERS pages poll live.json every POLL_SECONDS; the run, and the
    polls' count and response times."""
    stop = threading.Event()
    times: list[float] = []

    def viewer() -> None:
        while not stop.is_set():
            took = timed(dashboard.url + LIVE)
            times.append(took)
            stop.wait(max(POLL_SECONDS - took, 0))

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(VIEWERS)]
    for thread in threads:
        thread.start()
        time.sleep(POLL_SECONDS / VIEWERS)  # their polls spread, as pages opened at different times
    try:
        result = run()
    finally:
        stop.set()
        for thread in threads:
            thread.join(600)
    polls = {"polls": len(times), "median_s": round(statistics.median(times), 2) if times else None}
    return result, polls


def table(figures: dict) -> str:
    lines = [
        f"dashboard on {figures['events']:,} events ({figures['sessions']:,} sessions in exp-0):",
        "| page | median (s) | slowest (s) |",
        "|---|---|---|",
        *(f"| {p['page']} | {p['median_s']} | {p['max_s']} |" for p in figures["pages"]),
        "",
        *signals_lines(figures),
        f"(b) with {VIEWERS} experiment pages open against none, same run:",
        "| dashboards open | requests/s | p99 (ms) | live.json polls | their median (s) |",
        "|---|---|---|---|---|",
    ]
    runs = [("none", figures["without"]), (str(VIEWERS), figures["with"]), ("none, again", figures["without_after"])]
    for name, run in runs:
        polls = figures["polls"] if name == str(VIEWERS) else {"polls": "-", "median_s": "-"}
        lines.append(
            f"| {name} | {run['requests_per_s']:,.0f} | {run['p99_ms']:.1f} | {polls['polls']} | {polls['median_s']} |"
        )
    alone = (figures["without"]["requests_per_s"] + figures["without_after"]["requests_per_s"]) / 2
    ratio = figures["with"]["requests_per_s"] / alone
    lines.append(f"\nratio with / without (the mean of the two runs without): {ratio:.2f}")
    return "\n".join(lines)


def signals_lines(figures: dict) -> list[str]:
    """The experiment page with its sessions' signals against without (no report stored yet), same run."""
    if "reports" not in figures:  # a run before the page showed them
        return []
    by_name = {p["page"]: p["median_s"] for p in figures["pages"]}
    [with_signals] = WITH_SIGNALS
    ratio = by_name[with_signals] / by_name["one experiment"]
    reports = figures["reports"]
    return [
        f"the nightly job stored {reports['reports']:,} session reports in {reports['seconds']} s; the experiment "
        f"page with their signals / without: {ratio:.2f} (medians; goal <= 1.5)",
        "",
    ]


def measure(work: Path, es_url: str, run_b: Callable[[str], dict]) -> dict:
    """On the export's events (loaded before): the pages' times, then (b) without and with viewers;
    `run_b(label)` is one (b) run of the stack."""
    dashboard = Dashboard(work, es_url)
    dashboard.start(60)
    try:
        figures = {"events": export.EVENTS, "sessions": export.EVENTS // export.PER_SESSION // 2}
        figures["pages"] = pages(dashboard)  # before any session report: no signal shown
        figures["reports"] = store_reports(es_url)
        figures["pages"] += pages(dashboard, WITH_SIGNALS)
        # Interleaved (none, five, none): Elasticsearch still merging the load affects the first run most.
        figures["without"] = run_b("no dashboard open")
        figures["with"], figures["polls"] = with_viewers(dashboard, lambda: run_b(f"{VIEWERS} dashboards open"))
        figures["without_after"] = run_b("no dashboard open, again")
    finally:
        dashboard.stop()
    return figures
