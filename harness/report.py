"""The result tables the tests write as they measure: docs/results/<table>.md, which the documentation
quotes (never README.md itself): "reliability" (the Molecule fault tests, on the deployed stack),
"operations" (molecule/multihost), "browser" (the tracker's edge cases in headless Chromium), "power"
(power cuts), "failover" (a Redis primary lost, tests/service), "redis-hosts" (roles/redis's three
hosts), "lb-hosts" (roles/haproxy's two hosts sharing an address) and "internet" (one address attacking
while another client posts, tests/service)."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
FIGURES = ["failed", "accepted", "lost", "duplicated", "recovery"]  # after what was sent
HEADERS = {
    "reliability": ["fault or input", "requests sent", *FIGURES],
    "operations": ["operation (molecule/multihost)", "requests sent", *FIGURES],
    "browser": ["edge case (headless Chromium)", "requests", "events made", "lost", "duplicated", "recovery"],
    "power": ["power cut (tests/service/test_power_loss.py)", "answered 202", *FIGURES],
    "failover": ["Redis primary lost (tests/service/test_failover.py)", "requests sent", *FIGURES],
    "redis-hosts": [
        "Redis primary lost to the others (roles/redis/molecule: three hosts, down after 2 s)",
        "promoted after",
        "first write acknowledged on the new primary after",
        "the old primary a replica again",
        "what was refused and kept; the next converge",
    ],
    "lb-hosts": ["lb host lost (roles/haproxy/molecule: two hosts, keepalived)", "requests sent", *FIGURES],
    "internet": [
        "one address attacks, another client posts (the role's HAProxy, a real backend)",
        "attacker's requests",
        "refused",
        "the other client's events accepted",
        "lost",
        "how",
    ],
}


def rows_file(table: str) -> Path:
    return Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / f"{table}-rows.json"


def _cells(table: str, r: dict) -> list[object]:
    if table == "redis-hosts":
        return [r["case"], r["promoted"], r["written"], r["rejoined"], r["recovery"]]
    if table == "browser":
        return [r["case"], r["sent"], r["accepted"], r["lost"], r["duplicated"], r["recovery"]]
    if table == "internet":
        return [r["case"], r["sent"], r["failed"], r["accepted"], r["lost"], r["recovery"]]
    kinds = ", ".join(f"{status}: {count}" for status, count in r.get("failures", {}).items())
    failed = f"{r['failed']} ({kinds})" if kinds else f"{r['failed']}"
    return [r["case"], r["sent"], failed, r["accepted"], r["lost"], r["duplicated"], r["recovery"]]


def record(case: str, row: dict, recovery: str, table: str = "reliability") -> None:
    """Add one case's figures, then rewrite docs/results/<table>.md with every case recorded so far."""
    path = rows_file(table)
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if r["case"] != case] + [{"case": case, **row, "recovery": recovery}]
    path.write_text(json.dumps(rows))
    lines = ["| " + " | ".join(HEADERS[table]) + " |", "|" + "---|" * len(HEADERS[table])]
    lines += ["| " + " | ".join(str(cell) for cell in _cells(table, r)) + " |" for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{table}.md").write_text("\n".join(lines) + "\n")
