"""The reliability table: rows recorded by the Molecule fault tests, written into the README."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"


def _rows_file() -> Path:
    return Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "reliability-rows.json"


def record(case: str, row: dict, recovery: str) -> None:
    """Add one case's figures, then rewrite the README's table with every case recorded so far."""
    rows = json.loads(_rows_file().read_text()) if _rows_file().exists() else []
    rows = [r for r in rows if r["case"] != case] + [{"case": case, **row, "recovery": recovery}]
    _rows_file().write_text(json.dumps(rows))
    lines = [
        "| fault or input | requests sent | failed | accepted | lost | duplicated | recovery |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kinds = ", ".join(f"{status}: {count}" for status, count in r.get("failures", {}).items())
        failed = f"{r['failed']} ({kinds})" if kinds else f"{r['failed']}"
        lines.append(
            f"| {r['case']} | {r['sent']} | {failed} | {r['accepted']} | {r['lost']} | {r['duplicated']} "
            f"| {r['recovery']} |"
        )
    text = README.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        README.write_text(head + START + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])
