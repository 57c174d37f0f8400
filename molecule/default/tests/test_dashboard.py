"""The researchers' dashboard as deployed (roles/logger, its own process) behind HAProxy: the login,
what a researcher sees of a new experiment, its own least-privilege user, and the opt-in screening."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.in_container import http, wait_documents

FRONT = "http://127.0.0.1:80"
ES = "http://127.0.0.1:9200"
# The login scripts/dashboard-login.sh made for inventory/demo (scripts/molecule.sh exports where).
LOGIN = ("researcher", Path(os.environ["UQCROWD_DASHBOARD_LOGIN"], "researcher.password").read_text().strip())


@pytest.fixture(scope="module")
def elastic(host):
    return ("elastic", host.file("/etc/elasticsearch/elastic-password").content_string.strip())


def _send(host, elastic, events: list[dict]) -> None:
    assert http(host, "POST", f"{FRONT}/logger/insert", events, content_type="text/plain")[0] == 202
    assert len(wait_documents(host, ES, elastic, events[0]["session_id"], len(events))) == len(events)


@pytest.mark.parametrize(
    ("method", "path", "source"),
    [  # each from its own address: HAProxy counts an address's refused logins
        ("GET", "/dashboard/", "127.0.1.1"),
        ("GET", "/dashboard/health", "127.0.1.2"),
        ("GET", "/dashboard/experiment/any/events.ndjson", "127.0.1.3"),
        ("POST", "/analytics/session/worker/W1", "127.0.1.4"),
        ("POST", "/analytics/session/client/abc", "127.0.1.5"),
    ],
)
def test_every_dashboard_url_refuses_a_request_without_the_right_login(host, method, path, source):
    for auth in [None, ("researcher", "not-the-password"), ("nobody", LOGIN[1])]:
        answer = http(host, method, f"{FRONT}{path}", auth=auth, source=source)
        assert answer == (401, "login required\n"), (path, auth)


def test_an_address_guessing_logins_is_refused_before_the_dashboard_checks_another(host):
    """After haproxy_dashboard_max_failed_logins (10) refused logins, HAProxy answers 429 to that address,
    even with the right password; the researcher's address and the tracker's events are not affected."""
    guesser = "127.0.0.2"
    for n in range(10):
        answer = http(host, "GET", f"{FRONT}/dashboard/", auth=("researcher", f"guess-{n}"), source=guesser)
        assert answer == (401, "login required\n"), n
    refused = (429, "too many refused logins from this address, retry later\n")
    assert http(host, "GET", f"{FRONT}/dashboard/", auth=LOGIN, source=guesser) == refused
    assert http(host, "POST", f"{FRONT}/analytics/session/worker/W1", auth=LOGIN, source=guesser) == refused
    assert http(host, "GET", f"{FRONT}/dashboard/", auth=LOGIN)[0] == 200
    event = {"log_type": "message", "session_id": f"guesser-{uuid.uuid4().hex[:8]}", "sequence_number": 0}
    assert http(host, "POST", f"{FRONT}/logger/insert", [event], content_type="text/plain", source=guesser)[0] == 202


def test_the_researcher_sees_a_new_experiment_its_session_and_the_service_health(host, elastic):
    exp_id, session = f"dash-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    events = [
        {"log_type": "message", "exp_id": exp_id, "session_id": session, "worker_id": "W-dash", "sequence_number": n}
        for n in range(3)
    ]
    _send(host, elastic, events)
    status, overview = http(host, "GET", f"{FRONT}/dashboard/", auth=LOGIN)
    assert status == 200
    assert f'<tr data-exp="{exp_id}">' in overview
    status, page = http(host, "GET", f"{FRONT}/dashboard/experiment/{exp_id}", auth=LOGIN)
    assert (status, f'data-session="{session}"' in page) == (200, True)
    assert "not reported yet" in page.split(f'data-session="{session}"')[1].split("</tr>")[0]
    today = datetime.now(UTC).date().isoformat()
    stored = host.run(f"uqcrowd-log sessions --store --day {today}")  # the nightly job, now
    assert stored.rc == 0, stored.stderr
    page = http(host, "GET", f"{FRONT}/dashboard/experiment/{exp_id}", auth=LOGIN)[1]
    row = page.split(f'data-session="{session}"')[1].split("</tr>")[0]
    assert "not reported yet" not in row  # its signals, read by the dashboard's reader from the reports
    status, found = http(host, "POST", f"{FRONT}/analytics/session/worker/W-dash", auth=LOGIN)
    assert (status, [s["session_id"] for s in found if s["exp_id"] == exp_id]) == (200, [session])
    status, download = http(host, "GET", f"{FRONT}/dashboard/experiment/{exp_id}/events.ndjson", auth=LOGIN)
    assert (status, len(download.splitlines())) == (200, 3)
    status, health = http(host, "GET", f"{FRONT}/dashboard/health", auth=LOGIN)
    assert status == 200
    assert 'data-gauge="uqcrowd_queue_depth"' in health  # it reads a backend's metrics
    assert "could not be read" not in health
    backend = "http://127.0.0.1:5001"
    assert f'<tr data-backend="{backend}"><td>{backend}</td><td class="complete">up</td>' in health  # each probed


def test_the_dashboard_runs_as_its_own_user_with_the_readers_credentials_only(host):
    assert host.service("uqcrowd-dashboard").is_running
    assert host.run("ps -o user= -C uqcrowd-logger | sort -u").stdout.split().count("uqcrowd-dashboard") == 1
    settings = host.file("/etc/uqcrowd-log/dashboard.env")
    assert (settings.user, settings.group, settings.mode) == ("root", "uqcrowd-dashboard", 0o640)
    assert "UQCROWD_ES_USERNAME=uqcrowd_reader\n" in settings.content_string
    users = host.file("/etc/uqcrowd-log/dashboard-users")
    assert (users.group, users.mode) == ("uqcrowd-dashboard", 0o640)
    assert LOGIN[1] not in users.content_string  # a hash, not the password
    others = [("uqcrowd-dashboard", "logger.env"), ("uqcrowd", "dashboard.env")]  # each the other's credentials
    for user, name in others:
        refused = host.run(f"runuser -u {user} -- cat /etc/uqcrowd-log/{name}")
        assert refused.rc != 0, (user, name)
        assert "Permission denied" in refused.stderr, (user, name)


def test_seen_answers_a_task_page_whether_a_worker_took_part_in_the_group(host, elastic):
    worker = f"W-{uuid.uuid4().hex[:8]}"
    event = {"log_type": "message", "exp_id": "pilot-2", "session_id": f"seen-{worker}", "worker_id": worker}
    _send(host, elastic, [{**event, "sequence_number": 0}])

    def seen(worker_id: str, group: str) -> tuple[int, object]:
        return http(host, "GET", f"{FRONT}/logger/seen?worker_id={worker_id}&group={group}")

    assert seen(worker, "pilot") == (200, {"seen": True})  # no login: a task page asks it
    assert seen("W-never", "pilot") == (200, {"seen": False})
    assert seen(worker, "pilot-2") == (404, {"error": "no such group"})  # an experiment is not a group
