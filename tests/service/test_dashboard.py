"""The researchers' dashboard (files/uqcrowd_log/dashboard) on real Elasticsearch, with sessions made by
the real tracker in headless Chromium: the login, the experiments and sessions it lists (the same
completeness reports as `uqcrowd-log sessions`), its chart, and the original's two lookups."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from selenium.webdriver.common.by import By
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from harness.services import wait_until
from tests.service.conftest import env_of
from tests.service.test_indexer import count
from tests.service.test_toolkit import run
from tests.service.test_tracker import PAGE
from uqcrowd_log.dashboard.app import create_dashboard

PASSWORD = "correct horse battery staple"
USERS = {"researcher": generate_password_hash(PASSWORD)}


@pytest.fixture
def users() -> dict[str, str]:
    return USERS


@pytest.fixture
def dashboard(settings, es, users):
    return create_dashboard(settings.changed(dashboard={"idle_seconds": 3}), users, client=es).test_client()


def login(password: str = PASSWORD, user: str = "researcher") -> dict[str, tuple[str, str]]:
    return {"auth": (user, password)}


URLS = [
    ("GET", "/dashboard/"),
    ("GET", "/dashboard/experiment/exp-42"),
    ("GET", "/dashboard/experiment/exp-42/session/s"),
    ("POST", "/analytics/session/worker/W1"),
    ("POST", "/analytics/session/client/abc"),
    ("GET", "/dashboard/no-such-page"),
]


@pytest.mark.parametrize(("method", "url"), URLS)
def test_every_url_refuses_a_request_without_the_right_login(dashboard, method, url):
    for options in [{}, login("wrong"), login(user="nobody"), {"headers": {"Authorization": "Bearer x"}}]:
        answer = dashboard.open(url, method=method, **options)
        assert answer.status_code == 401, (url, options)
        assert answer.headers["WWW-Authenticate"].startswith("Basic ")
        assert answer.get_data(as_text=True) == "login required\n"


def test_the_right_login_is_accepted(dashboard):
    assert dashboard.get("/dashboard/", **login()).status_code == 200


@pytest.mark.parametrize(
    ("url", "options", "status"),
    [
        ("/dashboard/", login(), 200),
        ("/dashboard/", {}, 401),
        ("/dashboard/static/live.js", login(), 200),
        ("/dashboard/static/live.js", {}, 401),
        ("/dashboard/experiment/none/events.csv", login(), 200),
    ],
)
def test_no_answer_is_kept_by_a_browser_or_framed_by_another_site(dashboard, url, options, status):
    answer = dashboard.get(url, **options)
    assert answer.status_code == status
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["Content-Security-Policy"].split(";"))
    assert (policy["default-src"], policy["script-src"], policy["frame-ancestors"]) == ("'none'", "'self'", "'none'")
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_elasticsearch_down_is_a_503_in_one_line(settings, users):
    down = create_dashboard(settings.changed(es={"url": "http://127.0.0.1:9"}), users).test_client()
    answer = down.get("/dashboard/", **login())
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "30")
    assert answer.get_data(as_text=True) == "Elasticsearch is not answering: try again in a minute\n"


def _session(browser, origin: str, worker: str, backend=None) -> str:
    """One task page of `worker` in the browser: Start Session, its fingerprint, a click, then End
    Session as the page goes; when `backend` is given it is stopped first, and the worker never comes
    back (the page's stored events cleared): the session is cut short."""
    browser.get(f"{origin}/task.html?workerId={worker}&hitId=H-{worker}&assignmentId=A-{worker}")
    session_id = browser.execute_script("return window.session_id")
    browser.find_element(By.ID, "answer").click()
    pending = "return Object.keys(localStorage).filter(k => k.startsWith('uqcrowd-log:e:')).length"
    wait_until(lambda: browser.execute_script(pending) == 0, 20, "the page's events sent")
    if backend is not None:
        backend.stop()
    browser.get(f"{origin}/")  # pagehide: End Session (lost when the backend is down); no tracker here
    if backend is not None:
        browser.execute_script("localStorage.clear()")
    return session_id


def test_three_tracked_sessions_one_cut_short_as_the_cli_reports_them(
    es, es_server, settings, spawn, task_page, browser, dashboard
):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    directory, origin = task_page
    (directory / "task.html").write_text(PAGE.format(backend=backend.url))
    ids = [_session(browser, origin, "W1"), _session(browser, origin, "W2"), _session(browser, origin, "W3", backend)]
    wait_until(lambda: count(es, settings) >= 3 * 3 + 2, 30, "the sessions indexed", interval=0.5)
    time.sleep(3)  # dashboard_idle_seconds: the cut-short session is no longer in progress

    page = dashboard.get("/dashboard/experiment/exp-42", **login()).get_data(as_text=True)
    statuses = dict(re.findall(r'data-session="([^"]+)" data-status="([^"]+)"', page))
    assert statuses == {ids[0]: "complete", ids[1]: "complete", ids[2]: "incomplete"}
    assert list(statuses) == ids[::-1]  # the newest session first

    cli = run(es_server, settings.es.index_prefix, "sessions", "--exp-id", "exp-42", "--csv")
    rows = {row["session_id"]: row for row in csv.DictReader(io.StringIO(cli.stdout))}
    for session_id in ids:
        shown = re.search(rf'data-session="{session_id}".*?</tr>', page, re.S).group(0)
        cells = re.findall(r'<td class="n">([^<]*)</td>', shown)  # duration, events, missing, duplicates
        assert cells[1:] == [rows[session_id][name] for name in ("stored", "missing", "duplicates")]
        assert (statuses[session_id] == "complete") == (rows[session_id]["complete"] == "True")

    overview = dashboard.get("/dashboard/", **login()).get_data(as_text=True)
    row = re.search(r'<tr data-exp="exp-42">(.*?)</tr>', overview, re.S).group(1)
    numbers = [int(n) for n in re.findall(r'<td class="n[^"]*">(\d+)</td>', row)]
    stored = count(es, settings)
    assert numbers == [stored, stored, 0, 2, 1]  # today, in total, in progress, complete, incomplete

    points = [int(n) for n in re.findall(r'data-count="(\d+)"', page)]
    assert sum(points) == stored  # the chart's points sum to what is stored

    for fmt, rows_of in [("ndjson", _ndjson_rows), ("csv", _csv_rows), ("parquet", _parquet_rows)]:
        download = dashboard.get(f"/dashboard/experiment/exp-42/events.{fmt}", **login())
        assert download.status_code == 200, fmt
        assert len(rows_of(download.data)) == stored, fmt  # as `uqcrowd-log export` writes them

    live = dashboard.get("/dashboard/experiment/exp-42/live.json", **login()).get_json()
    assert sum(n for _, n in live["per_minute"]) == live["events"] == stored  # every event of the last hour
    late = spawn(env)  # a new event, through a backend and the indexer: seen live within 10 s
    event = {"log_type": "message", "exp_id": "exp-42", "session_id": "late", "sequence_number": 0}
    assert requests.post(f"{late.url}/logger/insert", json=event, timeout=10).status_code == 202

    def live_events() -> int:
        return dashboard.get("/dashboard/experiment/exp-42/live.json", **login()).get_json()["events"]

    wait_until(lambda: live_events() == stored + 1, 10, "the new event in the live view within 10 s")

    repeats = dashboard.get("/dashboard/experiment/exp-42/repeats", **login()).get_data(as_text=True)
    fingerprint = _fingerprint(es, settings, ids[0])
    assert re.findall(r'<tr data-fingerprint="([^"]+)"><td>[^<]*</td><td>([^<]*)</td>', repeats) == [
        (fingerprint, "W1, W2, W3")  # one browser under three worker ids
    ]
    assert 'data-worker="' not in repeats  # each worker took part once

    by_worker = dashboard.post("/analytics/session/worker/W2", **login()).get_json()
    assert [s["session_id"] for s in by_worker] == [ids[1]]
    by_client = dashboard.post(f"/analytics/session/client/{fingerprint}", **login()).get_json()
    assert sorted(s["session_id"] for s in by_client) == sorted(ids)  # one browser, three worker ids

    shown = settings.changed(  # the health page of a running pipeline: the late backend up, the stopped one down
        dashboard={"idle_seconds": 3, "metrics_url": f"{late.url}/logger/metrics", "backends": (late.url, backend.url)}
    )
    _screenshots(browser, create_dashboard(shown, USERS, client=es), ids[2])


ARTIFACTS = Path(os.environ.get("UQCROWD_ARTIFACTS", Path(__file__).parents[2] / ".cache" / "artifacts"))
SCREENSHOTS = ARTIFACTS / "dashboard"
PAGES = {
    "experiments": "/dashboard/",
    "experiment": "/dashboard/experiment/exp-42",
    "session": "/dashboard/experiment/exp-42/session/{cut_short}",
    "signals": "/dashboard/experiment/exp-42/signals",
    "repeats": "/dashboard/experiment/exp-42/repeats",
    "health": "/dashboard/health",
}


def _screenshots(browser, app, cut_short: str) -> None:
    """Each page as Chromium draws it, kept in SCREENSHOTS (docs/researchers/dashboard.md shows them)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"127.0.0.1:{server.server_port}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        browser.set_window_size(1280, 1400)  # the sessions table in view too
        browser.get(f"http://researcher:{quote(PASSWORD)}@{origin}/dashboard/")
        for name, path in PAGES.items():
            browser.get(f"http://{origin}{path.format(cut_short=cut_short)}")
            assert browser.find_element(By.TAG_NAME, "h1").text, name  # drawn, not an error page
            if name == "experiment":
                wait_until(lambda: "events" in _shown(browser), 20, "the live view drawn")
            assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png")), name
    finally:
        server.shutdown()


def _ndjson_rows(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


def _csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _parquet_rows(data: bytes) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pylist()


def _fingerprint(es, settings, session_id: str) -> str:
    query = {"bool": {"filter": [{"term": {"session_id": session_id}}, {"term": {"log_type": "browser_event"}}]}}
    hits = es.search(index=f"{settings.es.index_prefix}-*", query=query)["hits"]["hits"]
    return next(
        h["_source"]["content"]["details"]["hash"]
        for h in hits
        if h["_source"]["content"].get("browser_event") == "fingerprint"
    )


def test_the_experiment_page_redraws_itself_in_the_browser_as_events_arrive(es, settings, users, browser):
    """The page's own script reads live.json every 5 s: a new event shows within 10 s, no reload."""
    app = create_dashboard(settings, users, client=es)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"{settings.es.index_prefix}-live"
    try:
        for n in range(2):
            es.index(index=index, document=_event(n), refresh=True)
        origin = f"127.0.0.1:{server.server_port}"
        browser.get(f"http://researcher:{quote(PASSWORD)}@{origin}/dashboard/")  # the login, as a prompt would
        browser.get(f"http://{origin}/dashboard/experiment/exp-live")  # (a URL with a login cannot fetch())
        wait_until(lambda: "2 events" in _shown(browser), 20, "the live view")  # its script, as the CSP allows
        header = "return getComputedStyle(document.querySelector('header')).backgroundColor"
        assert browser.execute_script(header) == "rgb(29, 35, 48)"  # its stylesheet, as the CSP allows
        es.index(index=index, document=_event(2), refresh=True)
        wait_until(lambda: "3 events" in _shown(browser), 10, "the new event without a reload")
        assert browser.execute_script("return performance.getEntriesByType('navigation')[0].type") == "navigate"
    finally:
        server.shutdown()


def _shown(browser) -> str:
    return browser.find_element(By.ID, "live-at").text


def _event(n: int) -> dict:
    now = datetime.now(UTC).isoformat()
    return {
        "log_type": "message",
        "exp_id": "exp-live",
        "session_id": "s-live",
        "sequence_number": n,
        "server_time": now,
    }


def test_viewers_of_one_experiment_share_one_count_of_it(es, settings, users, monkeypatch):
    """Five live.json polls at once cost Elasticsearch what one costs; within LIVE_SECONDS the same
    answer is given again (the page's freshness within 10 s is the tracked-sessions test's)."""
    index = f"{settings.es.index_prefix}-live"
    es.index(index=index, document={**_event(0), "exp_id": "exp-shared"}, refresh=True)
    searches: list[str] = []
    search = es.search

    def counted(**kwargs):
        searches.append(kwargs.get("index", ""))
        return search(**kwargs)

    monkeypatch.setattr(es, "search", counted)

    def polls(viewers: int) -> list[int]:
        client = create_dashboard(settings, users, client=es, live_seconds=60).test_client()
        answers: list[int] = []

        def poll() -> None:
            answers.append(client.get("/dashboard/experiment/exp-shared/live.json", **login()).get_json()["events"])

        threads = [threading.Thread(target=poll) for _ in range(viewers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return answers

    assert polls(1) == [1]
    one = len(searches)
    searches.clear()
    assert polls(5) == [1] * 5
    assert len(searches) == one  # not 5 x one

    client = create_dashboard(settings, users, client=es, live_seconds=60).test_client()
    assert client.get("/dashboard/experiment/exp-shared/live.json", **login()).get_json()["events"] == 1
    es.index(index=index, document={**_event(1), "exp_id": "exp-shared"}, refresh=True)
    assert client.get("/dashboard/experiment/exp-shared/live.json", **login()).get_json()["events"] == 1  # shared


def test_a_sessions_page_draws_its_events_over_time_by_type(es, settings, dashboard):
    """One chart per log_type from the session's first event to its last: each chart's points sum to that
    type's stored events, and the events of minute 2 fall in the chart's second half."""
    index = f"{settings.es.index_prefix}-timeline"
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    moments = {"message": [0, 1, 150], "mouse_event": [10, 20, 130, 140, 150]}  # seconds after the start
    for kind, seconds in moments.items():
        for n, second in enumerate(seconds):
            at = (start + timedelta(seconds=second)).isoformat()
            es.index(index=index, document={**_event(n), "log_type": kind, "session_id": "s-t", "server_time": at})
    es.indices.refresh(index=index)
    page = dashboard.get("/dashboard/experiment/exp-live/session/s-t", **login()).get_data(as_text=True)
    charts = dict(re.findall(r'<h3 data-type="([^"]+)">.*?</h3>\s*(<svg.*?</svg>)', page, re.S))
    assert sorted(charts) == sorted(moments)
    for kind, svg in charts.items():
        points = [int(n) for n in re.findall(r'data-count="(\d+)"', svg)]
        assert sum(points) == len(moments[kind]), kind
        assert len(points) > 10, kind  # over time, not one total
        late = sum(1 for second in moments[kind] if second >= 120)
        assert sum(points[len(points) // 2 :]) >= late, kind
    first_label = re.search(r'data-label="([^"]+)"', charts["message"]).group(1)
    assert first_label == "09:00:00"


def test_a_worker_with_two_sessions_is_a_repeat_participant(es, settings, dashboard):
    index = f"{settings.es.index_prefix}-repeats"
    for worker, session_id in [("R", "r-1"), ("R", "r-2"), ("S", "s-1")]:
        document = {**_event(0), "exp_id": "exp-rep", "worker_id": worker, "session_id": session_id}
        es.index(index=index, document=document, refresh=True)
    page = dashboard.get("/dashboard/experiment/exp-rep/repeats", **login()).get_data(as_text=True)
    assert re.findall(r'<tr data-worker="([^"]+)">.*?<td class="n">(\d+)</td>', page) == [("R", "2")]


def test_the_health_page_shows_the_queue_and_the_monitorings_open_incidents(settings, es, users, spawn, tmp_path):
    backend = spawn(env_of(settings))  # no indexer: what it accepts waits in the queue
    for n in range(3):
        event = {"log_type": "message", "session_id": "h", "sequence_number": n}
        assert requests.post(f"{backend.url}/logger/insert", json=event, timeout=10).status_code == 202
    (tmp_path / "disk.json").write_text('{"bad": true, "since": 1796280000, "last": {"seen": "free 9%"}}')
    watched = settings.changed(
        dashboard={
            "metrics_url": f"{backend.url}/logger/metrics",
            "monitor_state_dir": str(tmp_path),
            "backends": (backend.url, "http://127.0.0.1:9"),
        }
    )
    page = (
        create_dashboard(watched, users, client=es)
        .test_client()
        .get("/dashboard/health", **login())
        .get_data(as_text=True)
    )
    gauges = dict(re.findall(r'<tr data-gauge="([^"]+)"><td>[^<]*</td><td class="n">([^<]*)</td>', page))
    assert (gauges["uqcrowd_queue_depth"], gauges["uqcrowd_redis_up"]) == ("3", "1")
    assert re.findall(r'<tr data-check="([^"]+)">.*?<td>([^<]*)</td></tr>', page) == [("disk", "free 9%")]
    states = dict(re.findall(r'<tr data-backend="([^"]+)"><td>[^<]*</td><td class="[^"]*">([^<]*)</td>', page))
    assert states[backend.url] == "up"
    assert states["http://127.0.0.1:9"].startswith("down: ")

    gone = watched.changed(dashboard={"metrics_url": "http://127.0.0.1:9/logger/metrics"})
    page = (
        create_dashboard(gone, users, client=es)
        .test_client()
        .get("/dashboard/health", **login())
        .get_data(as_text=True)
    )
    assert "The service's metrics could not be read: http://127.0.0.1:9/logger/metrics" in page


def test_seen_answers_only_whether_a_worker_took_part_in_the_group(es, settings, users):
    """GET /logger/seen, no login (a task page asks it): true for a worker with a session in an
    experiment of the group, false otherwise, 404 for a group that is not configured."""
    index = f"{settings.es.index_prefix}-seen"
    for exp_id, worker in [("study-a1", "W-old"), ("study-b", "W-other")]:
        es.index(index=index, document={**_event(0), "exp_id": exp_id, "worker_id": worker}, refresh=True)
    groups = {"study-a": ("study-a1", "study-a2"), "empty": ("study-z",)}
    client = create_dashboard(settings.changed(dashboard={"seen_groups": groups}), users, client=es).test_client()

    def seen(worker: str, group: str):
        return client.get("/logger/seen", query_string={"worker_id": worker, "group": group})

    assert seen("W-old", "study-a").get_json() == {"seen": True}
    assert seen("W-other", "study-a").get_json() == {"seen": False}  # took part, but in another study
    assert seen("W-new", "study-a").get_json() == {"seen": False}
    assert seen("W-old", "empty").get_json() == {"seen": False}
    for group in ["study-b", "", "study-a1"]:  # an experiment's name is not a group
        answer = seen("W-old", group)
        assert (answer.status_code, answer.get_json()) == (404, {"error": "no such group"}), group
    missing = client.get("/logger/seen", query_string={"group": "study-a"})
    assert missing.status_code == 400
    assert seen("W-old", "study-a").headers["Cache-Control"] == "no-store"
    assert seen("W-old", "study-a").headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/dashboard/", query_string={"group": "study-a"}).status_code == 401  # still behind the login


def test_the_aggregations_give_the_clis_reports_for_every_kind_of_session(es, settings):
    """The dashboard counts sessions by aggregations; each report equals the one `uqcrowd-log sessions`
    makes from the documents: complete, a gap, a duplicate, no End Session, an End Session without a
    count or with a wrong one, events without a sequence number, and a session longer than the distinct
    count is exact for (one number missing, one twice: recounted from its documents)."""
    from elasticsearch.helpers import bulk

    from uqcrowd_log.dashboard.queries import EXACT_UP_TO, summaries
    from uqcrowd_log.signals import COLUMNS
    from uqcrowd_log.stored_events.selection import Selection
    from uqcrowd_log.stored_events.sessions import read_reports

    def end(count) -> dict:
        return {"log_type": "message", "content": {"message": "End Session", "details": {"events": count}}}

    shapes = {
        "complete": [{}, {}, end(3)],
        "gap": [{}, None, {}, end(4)],
        "duplicate": [{}, {}, "again", end(3)],
        "no-end": [{}, {}],
        "end-without-count": [{}, {**end(0), "content": {"message": "End Session"}}],
        "wrong-count": [{}, end("three")],
        "unnumbered": [{}, "unnumbered", end(2)],
        # Beyond its threshold, the cardinality is an estimate (HyperLogLog): counted from the documents.
        "long": [{}, None, {}, "again", *([{}] * 4 * EXACT_UP_TO), end(4 * EXACT_UP_TO + 5)],
    }
    index = f"{settings.es.index_prefix}-aggs"
    actions = []
    for session_id, events in shapes.items():
        for number, shape in enumerate(events):
            if shape is None:
                continue  # never stored
            document = {**_event(number), "exp_id": "exp-aggs", "session_id": session_id, "worker_id": "W"}
            if shape == "again":
                document["sequence_number"] = number - 1
            elif shape == "unnumbered":
                del document["sequence_number"]
            elif shape:
                document.update(shape)
            actions.append(document)
    bulk(es, actions, index=index, refresh=True)

    selection = Selection(exp_id="exp-aggs")
    expected = {r.session_id: r.as_row() for r in read_reports(es, index, selection)}
    counted = {r.session_id: r.as_row() for r in summaries(es, index, selection)}
    assert sorted(counted) == sorted(shapes)
    assert {s: row["complete"] for s, row in counted.items()} == {s: s in ("complete",) for s in shapes}
    for rows in (expected, counted):
        for row in rows.values():
            del row["duration_seconds"], row["first_time"], row["last_time"]  # ms in Elasticsearch, µs in the text
            for signal in COLUMNS:  # the signals come from a session's documents: its page, not the table
                del row[signal]
    assert counted == expected


def test_a_sessions_page_gives_its_signals_and_what_the_worker_did_lengths_only(es, settings, dashboard):
    """The signals (signals.py) and the transcript (transcript.py) of one session, on its page and as
    CSV: a paste of 236 characters in a masked field shows its length, never its text."""
    index = f"{settings.es.index_prefix}-transcript"
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    field = {"tag": "textarea", "id": "summary"}

    def doc(n: int, second: float, log_type: str, kind: str, **details: object) -> dict:
        at = (start + timedelta(seconds=second)).isoformat(timespec="milliseconds")
        return {**_event(n), "session_id": "s-w", "log_type": log_type, "browser_time": at, "server_time": at,
                "content": {log_type: kind, "details": details}}  # fmt: skip

    started = (start + timedelta(seconds=2)).isoformat(timespec="milliseconds")
    for document in (
        doc(0, 0, "message", "Start Session"),
        doc(1, 6, "keyboard_event", "typing", **field, started=started, typed_chars=37, boundary="pause"),
        doc(2, 41, "keyboard_event", "paste", **field, text_length=236, masked="length"),
        doc(3, 52, "browser_event", "visibility_hidden"),
        doc(4, 182, "browser_event", "visibility_visible"),
        doc(5, 183, "mouse_event", "click", tag="button", id="submit"),
    ):
        es.index(index=index, document=document)
    es.indices.refresh(index=index)
    page = dashboard.get("/dashboard/experiment/exp-live/session/s-w", **login()).get_data(as_text=True)
    signals = dict(re.findall(r"<tr><td>(\w+)</td><td class=\"n\">([^<]*)</td></tr>", page.split('id="signals"')[1]))
    assert (signals["paste_share"], signals["hidden_seconds"], signals["away_count"]) == ("0.8645", "130.0", "1")
    said = re.findall(r'<tr><td class="n">([0-9:]+)</td><td>([^<]+)</td></tr>', page.split('id="transcript"')[1])
    assert said == [
        ("0:00", "Start Session"),
        ("0:02", "typed 37 characters into textarea#summary"),
        ("0:41", "pasted 236 characters in textarea#summary"),
        ("0:52", "left the page for 2 min 10 s"),
        ("3:03", "clicked button#submit"),
    ]
    download = dashboard.get("/dashboard/experiment/exp-live/session/s-w/transcript.csv", **login())
    assert download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"] == 'attachment; filename="exp-live-s-w-transcript.csv"'
    assert download.get_data(as_text=True).splitlines()[:2] == ["at,seconds,what", "0:00,0.0,Start Session"]
    assert dashboard.get("/dashboard/experiment/exp-live/session/none/transcript.csv", **login()).status_code == 404


def test_the_signals_page_marks_and_filters_the_sessions_the_flags_mark_and_downloads_them(es, settings, users):
    """Two sessions of one experiment: one pasted its answer. With the researcher's flag on paste_share,
    the page marks that one, lists it alone when asked, and its CSV carries every signal and the flags."""
    index = f"{settings.es.index_prefix}-signals"
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for session, kind, details in (
        ("s-typed", "typing", {"typed_chars": 400, "started": start.isoformat()}),
        ("s-pasted", "paste", {"text_length": 900}),
    ):
        for n, (log_type, sub, extra) in enumerate(
            [
                ("message", "Start Session", {}),
                ("keyboard_event", kind, details),
                ("message", "End Session", {"events": 3}),
            ]
        ):
            at = (start + timedelta(seconds=30 * n)).isoformat()
            document = {**_event(n), "exp_id": "exp-flags", "session_id": session, "log_type": log_type}
            document |= {"browser_time": at, "server_time": at, "content": {log_type: sub, "details": extra}}
            es.index(index=index, document=document)
    es.indices.refresh(index=index)
    flagged = settings.changed(toolkit={"flags": {"exp-flags": ("paste_share > 0.5",), "*": ("hidden_seconds > 60",)}})
    client = create_dashboard(flagged, users, client=es).test_client()
    page = client.get("/dashboard/experiment/exp-flags/signals", **login()).get_data(as_text=True)
    assert re.findall(r'<tr data-session="([^"]+)" class="flagged">', page) == ["s-pasted"]
    assert "hidden_seconds&gt;60, paste_share&gt;0.5" in page  # the rules in force, "*" first
    only = client.get("/dashboard/experiment/exp-flags/signals?flagged=1", **login()).get_data(as_text=True)
    assert re.findall(r'<tr data-session="([^"]+)"', only) == ["s-pasted"]
    download = client.get("/dashboard/experiment/exp-flags/signals.csv", **login())
    rows = {r["session_id"]: r for r in csv.DictReader(io.StringIO(download.get_data(as_text=True)))}
    assert download.headers["Content-Disposition"] == 'attachment; filename="exp-flags-sessions.csv"'
    assert (rows["s-pasted"]["paste_share"], rows["s-pasted"]["flags"]) == ("1.0", "paste_share>0.5")
    assert (rows["s-typed"]["typed_chars"], rows["s-typed"]["flags"]) == ("400", "")
    assert client.get("/dashboard/experiment/none/signals", **login()).status_code == 404
    with pytest.raises(ValueError, match="is not a signal"):  # a flag that is not one stops the start
        create_dashboard(settings.changed(toolkit={"flags": {"*": ("pasted > 1",)}}), users, client=es)


def test_the_experiment_page_shows_the_nightly_reports_signals_marks_and_filters_the_flagged(
    es, es_server, settings, users
):
    """The experiment's sessions table reads each session's signals from the reports the nightly job
    stores (`uqcrowd-log sessions --store`, run here as cron runs it), never from its events: a session
    reported before it went on is marked partial, one not reported yet says so, and the researcher's
    flag marks, and alone lists, the session that pasted its answer."""
    day, start = "2026-12-01", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    index, reports = f"{settings.es.index_prefix}-{day}", f"uqs-{uuid.uuid4().hex[:10]}"

    def store(session: str, n: int, second: int, log_type: str, kind: str, **details: object) -> None:
        at = (start + timedelta(seconds=second)).isoformat()
        document = {**_event(n), "exp_id": "exp-nightly", "session_id": session, "log_type": log_type}
        es.index(index=index, document=document | {"browser_time": at, "server_time": at,
                                                  "content": {log_type: kind, "details": details}})  # fmt: skip

    for session, offset, kind, details in (
        ("s-typed", 0, "typing", {"typed_chars": 400, "started": start.isoformat()}),
        ("s-pasted", 100, "paste", {"text_length": 900}),
    ):
        store(session, 0, offset, "message", "Start Session")
        store(session, 1, offset + 30, "keyboard_event", kind, **details)
    es.indices.refresh(index=index)
    stored = run(es_server, settings.es.index_prefix, "sessions", "--store", "--day", day,
                 "--session-index-prefix", reports)  # fmt: skip
    assert stored.exit_code == 0, stored.output
    store("s-pasted", 2, 170, "mouse_event", "click", tag="button", id="submit")  # after its report
    store("s-new", 0, 200, "message", "Start Session")  # no report yet
    es.indices.refresh(index=index)
    flagged = settings.changed(
        toolkit={"session_index_prefix": reports, "flags": {"exp-nightly": ("paste_share > 0.5",)}}
    )
    client = create_dashboard(flagged, users, client=es).test_client()
    page = client.get("/dashboard/experiment/exp-nightly", **login()).get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-session="([^"]+)"[^>]*>(.*?)</tr>', page, re.DOTALL))
    assert list(rows) == ["s-new", "s-pasted", "s-typed"]  # newest first
    assert re.findall(r'<tr data-session="([^"]+)"[^>]* class="flagged">', page) == ["s-pasted"]
    cells = {session: re.findall(r'<td class="n">([^<]*)</td>', row)[4:] for session, row in rows.items()}
    # active_seconds, hidden_seconds, away_count, typed_chars, pastes, paste_share: as the reports hold them
    assert cells["s-typed"] == ["30.0", "0.0", "0", "400", "0", "0.0"]
    assert cells["s-pasted"] == ["30.0", "0.0", "0", "0", "1", "1.0"]
    assert re.search(r'class="flags">paste_share&gt;0.5 <span class="partial"', rows["s-pasted"])
    assert (("partial" in rows["s-typed"]), ("not reported yet" in rows["s-new"])) == (False, True)
    assert "2 of 3 sessions have one" in page
    assert 'id="sessions-csv" href="/dashboard/experiment/exp-nightly/signals.csv"' in page  # every signal, as CSV
    only = client.get("/dashboard/experiment/exp-nightly?flagged=1", **login()).get_data(as_text=True)
    assert re.findall(r'<tr data-session="([^"]+)"', only) == ["s-pasted"]
