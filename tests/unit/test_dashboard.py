"""The dashboard's pure parts: a session's status, the SVG chart, the users file and the login check."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug.datastructures import Authorization
from werkzeug.security import generate_password_hash

from uqcrowd_log.completeness import session_reports
from uqcrowd_log.dashboard.auth import UsersFileError, allowed, read_users
from uqcrowd_log.dashboard.charts import bars
from uqcrowd_log.dashboard.health import lb_holder, open_faults, parse_metrics
from uqcrowd_log.dashboard.queries import count_by_status, status

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)


def session(session_id: str, minutes_ago: int, events: int, end: bool) -> list[dict]:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    docs = [
        {"session_id": session_id, "sequence_number": n, "log_type": "message", "server_time": at}
        for n in range(events)
    ]
    if end:
        docs.append(
            {
                **docs[0],
                "sequence_number": events,
                "content": {"message": "End Session", "details": {"events": events + 1}},
            }
        )
    return docs


ROOT = Path(__file__).resolve().parents[2]


def test_a_session_is_complete_in_progress_or_incomplete():
    reports = {
        r.session_id: r
        for r in session_reports(
            session("done", 60, 3, True) + session("going", 5, 3, False) + session("cut", 45, 3, False)
        )
    }
    assert {name: status(r, NOW, IDLE) for name, r in reports.items()} == {
        "done": "complete",
        "going": "in progress",
        "cut": "incomplete",
    }
    assert count_by_status(reports.values(), NOW, IDLE) == {"in progress": 1, "complete": 1, "incomplete": 1}


def test_the_chart_has_one_bar_per_point_its_count_in_it_and_escapes_labels():
    svg = bars([("2026-12-01", 5), ("<b>", 0), ("2026-12-03", 12)])
    assert [int(n) for n in re.findall(r'data-count="(\d+)"', svg)] == [5, 0, 12]
    assert "<b>" not in svg
    assert "&lt;b&gt;" in svg
    assert bars([]) == '<p class="empty">No events yet.</p>'


def test_the_users_file_is_name_colon_hash_and_a_bad_line_is_refused_with_its_number(tmp_path):
    good = generate_password_hash("s3cret")
    path = tmp_path / "users"
    path.write_text(f"# researchers\nalice:{good}\n\n")
    assert read_users(path) == {"alice": good}
    path.write_text(f"alice:{good}\nbob:plaintext\n")
    with pytest.raises(UsersFileError, match=r"users:2: expected name:password-hash"):
        read_users(path)


@pytest.mark.parametrize(
    ("login", "expected"),
    [
        (Authorization("basic", {"username": "alice", "password": "s3cret"}), True),
        (Authorization("basic", {"username": "alice", "password": "S3cret"}), False),
        (Authorization("basic", {"username": "mallory", "password": "s3cret"}), False),
        (Authorization("basic", {"username": "alice", "password": ""}), False),
        (Authorization("bearer", token="s3cret"), False),
        (None, False),
    ],
)
def test_only_a_listed_user_with_the_right_password_is_allowed(login, expected):
    assert allowed({"alice": generate_password_hash("s3cret")}, login) is expected


METRICS = """# HELP uqcrowd_queue_depth Events waiting for Elasticsearch
# TYPE uqcrowd_queue_depth gauge
uqcrowd_queue_depth 42.0
# HELP uqcrowd_indexer_fault 1 per indexer paused by a fault an operator must fix
# TYPE uqcrowd_indexer_fault gauge
uqcrowd_indexer_fault{consumer="app",what="flood stage"} 1.0
uqcrowd_indexer_fault{consumer="app",what="refused set-up"} 0.0
# HELP uqcrowd_events_accepted_total Events accepted by the backends
# TYPE uqcrowd_events_accepted_total counter
uqcrowd_events_accepted_total 7.0
"""


def test_the_health_page_reads_the_gauges_it_shows_and_the_indexers_open_faults():
    assert parse_metrics(METRICS) == ({"uqcrowd_queue_depth": 42.0}, ["app: flood stage"], "")
    replicated = METRICS + 'uqcrowd_redis_primary{address="10.0.0.12:6379"} 1.0\nuqcrowd_redis_replicas_in_sync 2.0\n'
    gauges, _, primary = parse_metrics(replicated)
    assert (gauges["uqcrowd_redis_replicas_in_sync"], primary) == (2.0, "10.0.0.12:6379")


def test_open_incidents_are_the_monitorings_bad_checks_oldest_first(tmp_path):
    (tmp_path / "disk.json").write_text('{"bad": true, "since": 200, "alerted": 1, "last": {"seen": "9% free"}}')
    (tmp_path / "queue.json").write_text('{"bad": false, "last": {"seen": "0 queued"}}')
    (tmp_path / "logger.json").write_text('{"bad": true, "since": 100, "last": {"seen": "503"}}')
    (tmp_path / "broken.json").write_text("{")
    assert [(f.check, f.seen) for f in open_faults(tmp_path)] == [("logger", "503"), ("disk", "9% free")]
    assert open_faults(tmp_path / "absent") == []


def test_the_lb_host_holding_the_shared_address_is_the_load_balancers_checks_last_view(tmp_path):
    assert lb_holder(tmp_path) == ""  # one lb host: no such check
    (tmp_path / "load-balancers.json").write_text('{"bad": false, "holder": "lb-2", "last": {"seen": "..."}}')
    assert lb_holder(tmp_path) == "lb-2"
    (tmp_path / "load-balancers.json").write_text("[]")
    assert lb_holder(tmp_path) == ""


def test_the_dashboard_reads_the_state_files_the_monitorings_check_writes(tmp_path):
    """One format, two programs: the monitoring's uqcrowd-check (roles/monitoring) writes
    STATE_DIR/<check>.json, the health page reads it. Run the real check against metrics that do not
    answer; the page then shows its incident, with what the check saw."""
    config = tmp_path / "monitor.json"
    state = tmp_path / "state"
    config.write_text(
        json.dumps(
            {
                "metrics_url": "http://127.0.0.1:9/logger/metrics",
                "state_dir": str(state),
                "repeat_minutes": 60,
                "notifier": "/bin/true",
            }
        )
    )
    check = ROOT / "roles/monitoring/files/uqcrowd-check.py"
    ran = subprocess.run(
        [sys.executable, str(check), "queue"], env={**os.environ, "UQCROWD_MONITOR_CONFIG": str(config)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    [fault] = open_faults(state)
    assert fault.check == "queue"
    assert fault.seen == "check could not run: ValueError: http://127.0.0.1:9/logger/metrics answered nothing"
    assert abs(fault.since.timestamp() - time.time()) < 60
