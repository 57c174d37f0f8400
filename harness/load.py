"""Steady load inside a container (harness/loadgen.py run as a transient unit) and its verdict:
what was sent, failed, accepted, and of the accepted what Elasticsearch lost or holds twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.in_container import session_documents

LOADGEN = "/usr/local/bin/uqcrowd-loadgen.py"
_SOURCE = Path(__file__).resolve().parent / "loadgen.py"

Auth = tuple[str, str]


def install(host: Any) -> None:
    host.ansible("ansible.builtin.copy", f"src={_SOURCE} dest={LOADGEN} mode=0755", check=False, become=False)


def start(host: Any, url: str, session: str, rate: int, seconds: int) -> None:
    """`rate` single-event requests per second to `url` for `seconds`, in the background."""
    result = host.run(
        f"systemd-run --unit=load-{session} --collect python3 {LOADGEN} {url} {session} "
        f"{rate} {seconds} /tmp/{session}.json"
    )
    assert result.rc == 0, result.stderr


def stop(host: Any, session: str) -> None:
    """End the load now (it writes its result as if its time were up)."""
    host.run(f"systemctl kill -s TERM load-{session}")


def result(host: Any, session: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = host.file(f"/tmp/{session}.json")
        if out.exists:
            return json.loads(out.content_string)
        time.sleep(1)
    raise AssertionError(f"load generator {session} did not finish")


def stored(host: Any, es: str, auth: Auth, session: str) -> list[int]:
    """sequence_number of every document of the session (a duplicate appears twice)."""
    return [doc["sequence_number"] for doc in session_documents(host, es, auth, session, ["sequence_number"])]


def wait_stored(
    host: Any, es: str, auth: Auth, session: str, accepted: list[int], timeout: float = 180
) -> tuple[list[int], float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        docs = stored(host, es, auth, session)
        if set(accepted) <= set(docs):
            return docs, time.monotonic() - started
        time.sleep(1)
    return stored(host, es, auth, session), time.monotonic() - started


def verdict(load: dict, docs: list[int]) -> dict:
    lost = len(set(load["accepted"]) - set(docs))
    duplicated = len(docs) - len(set(docs))
    failed = sum(load["failed"].values())
    return {
        "sent": load["sent"],
        "failed": failed,
        "accepted": len(load["accepted"]),
        "lost": lost,
        "duplicated": duplicated,
        "failures": load["failed"],
    }
