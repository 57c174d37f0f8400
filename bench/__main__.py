"""`make bench`: the stack against the original design, side by side on this machine (README.md).

    python -m bench            every scenario: the study (W workers held), throughput (with the
                               sustained rate and appendfsync everysec), HAProxy's protections, the
                               export, the dashboard
    python -m bench study      only the study: W held by this stack and by the original design
    python -m bench export     only the researcher's export of 1,000,000 events
    python -m bench dashboard  only the dashboard on 1,000,000 events
    python -m bench fsync      only appendfsync always against everysec
    python -m bench replica    only a 202 once a replica holds the insert against the primary alone
    python -m bench edge       only HAProxy's protections against none (its CPU per request)

Writes bench/results/<UTC date and time>[-<scenario>].json and prints its tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import dashboard, edge, export, fsync, replica, report, study, throughput
from bench.stack import CORES, DURATION, ROOT, Bench

SCENARIOS = ("all", "study", "export", "dashboard", "fsync", "replica", "edge")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("scenario", nargs="?", default="all", choices=SCENARIOS)
    scenario = parser.parse_args(argv).scenario
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the study's wrk and HAProxy: a socket per worker
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="uqcrowd-bench-"))
    bench = Bench(work)
    results: list[dict] = []
    limits: dict = {}
    exported: dict = {}
    viewed: dict = {}
    try:
        if scenario in ("all", "study"):
            study.run(bench, results, limits)
        if scenario == "all":
            throughput.run(bench, results, limits)
        if scenario in ("all", "edge"):
            edge.run(bench, results)
        if scenario == "edge":
            edge.breakdown(bench, results)
        if scenario == "fsync":
            fsync.only(bench, results)
        if scenario == "replica":
            replica.only(bench, results)
        if scenario in ("all", "export"):
            print(f"export: loading {export.EVENTS:,} events, then exporting them in 3 formats", flush=True)
            exported = export.measure(bench.es, bench.es_server.url)
        if scenario == "dashboard":
            print(f"dashboard: loading {export.EVENTS:,} events", flush=True)
            export.load(bench.es)
        if scenario in ("all", "dashboard"):
            print("dashboard: its pages, then (b) with and without five of them open", flush=True)
            viewed = dashboard.measure(bench.work, bench.es_server.url, lambda label: throughput.b_run(bench, label))
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": CORES,
        "python": platform.python_version(),
        "elasticsearch": bench.es_server.home.name,
        "duration_s": DURATION,
        "wall_s": time.monotonic() - started,
        "results": results,
        "limits": limits,
        "export": exported,
        "dashboard": viewed,
    }
    suffix = "" if scenario == "all" else f"-{scenario}"
    out = ROOT / "bench/results" / f"{datetime.now(UTC):%Y-%m-%dT%H%MZ}{suffix}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print()
    print(report.tables(results, limits, exported, viewed))
    print(f"\n{len(results)} runs in {figures['wall_s']:.0f} s; figures in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main(sys.argv[1:]))
