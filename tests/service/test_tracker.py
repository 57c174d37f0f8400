"""The browser tracker in headless Chromium: a task page on another origin records a session, and
nothing is lost between the page and Elasticsearch at the edges (offline, navigation, reloads,
503s, bursts), through HAProxy, with the per-session completeness report as the judge.
Each edge case adds a row to the browser table (docs/results/browser.md) (harness/report.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import time

import orjson
import pytest
import requests
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from harness.report import record
from harness.services import HaproxyServer, wait_until
from tests.service.conftest import env_of
from tests.service.test_indexer import count
from uqcrowd_log import transcript
from uqcrowd_log.cli import main
from uqcrowd_log.completeness import SessionReport, session_reports

PAGE = """<!doctype html>
<html><head><title>task</title>
<script>var exp_id_preDefined = "exp-42";</script>
<script src="{backend}/logger/fingerprint.js"></script>
<script src="{backend}/logger/logger.js"></script>
</head><body>
<button id="answer">Answer</button>
<select id="choice"><option>a</option><option>b</option></select>
</body></html>
"""


def test_page_with_tracker_records_start_click_and_end_of_session(es, es_server, settings, spawn, task_page, browser):
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    directory, origin = task_page
    (directory / "task.html").write_text(PAGE.format(backend=backend.url))

    browser.get(f"{origin}/task.html?workerId=W1&hitId=H1&assignmentId=A1")
    session_id = browser.execute_script("return window.session_id")
    browser.find_element(By.ID, "answer").click()
    browser.get("about:blank")  # pagehide: End Session goes out with sendBeacon

    index = f"{settings.es.index_prefix}-*"
    wait_until(lambda: count(es, settings) >= 4, 30, "tracker events", interval=0.5)
    wait_until(lambda: _kinds(es, index) >= {"Start Session", "click", "End Session"}, 15, "end of session")
    hits = es.search(index=index, size=100, query={"term": {"session_id": session_id}})["hits"]["hits"]
    docs = [h["_source"] for h in hits]
    assert {d["worker_id"] for d in docs} == {"W1"}
    assert {d["assignment_id"] for d in docs} == {"A1"}
    assert {d["exp_id"] for d in docs} == {"exp-42"}
    click = next(d for d in docs if d["log_type"] == "mouse_event")
    assert click["content"]["mouse_event"] == "click"
    assert click["content"]["details"]["id"] == "answer"
    sequence = sorted(d["sequence_number"] for d in docs)
    assert sequence == list(range(len(docs)))  # nothing lost between the browser and Elasticsearch
    assert any(d["content"].get("browser_event") == "fingerprint" for d in docs)


def _kinds(es, index: str) -> set[str]:
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=100)["hits"]["hits"]
    kinds = set()
    for hit in hits:
        content = hit["_source"]["content"]
        kinds.add(content.get(hit["_source"]["log_type"]))
    return kinds


# A task page on its own origin, through HAProxy. The first script is the test's own probe: it
# notes the size of every request the tracker makes (fetch or beacon), before the tracker loads.
EDGE_PAGE = """<!doctype html>
<html><head><title>{title}</title>
<script>
window.__requests = [];
(function () {{
  var fetch = window.fetch;
  window.__statuses = [];  // what the server answered each fetch (0: no answer the page could read)
  window.fetch = function (url, options) {{
    window.__requests.push(new Blob([(options && options.body) || ""]).size);
    return fetch.apply(this, arguments).then(
      function (response) {{ window.__statuses.push(response.status); return response; }},
      function (error) {{ window.__statuses.push(0); throw error; }});
  }};
  var beacon = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = function (url, data) {{ window.__requests.push(data.size); return beacon(url, data); }};
}})();
var exp_id_preDefined = "edge";
</script>
<script src="{front}/logger/logger.js"></script>
</head><body>
<input id="name" type="text">
<input id="secret" type="password">
<div data-uqcrowd-mask><textarea id="essay"></textarea></div>
<textarea id="summary"></textarea>
<a id="next" href="{next}">next</a>
</body></html>
"""
PRODUCE = "for (var i = 0; i < arguments[0]; i++) { send_log('message', 'tick', {n: i, pad: arguments[1]}); }"


@pytest.fixture
def edge(es, es_server, settings, spawn, task_page, browser, workdir):
    """A backend and an indexer behind HAProxy, and two pages of one task on the page server."""
    env = env_of(settings, es_server.url)
    backend = spawn(env)
    spawn(env, "indexer")
    front = HaproxyServer(workdir / "haproxy", [backend.port])  # the role's template and defaults
    front.start()
    directory, origin = task_page
    for name, following in (("task.html", "page2.html"), ("page2.html", "done.html"), ("done.html", "done.html")):
        (directory / name).write_text(EDGE_PAGE.format(title=name, front=front.url, next=following))
    yield {
        "backend": backend,
        "origin": origin,
        "directory": directory,
        "settings": settings,
        "es": es,
        "es_url": es_server.url,
        "browser": browser,
        "front": front,
    }
    front.stop()


def documents(es, settings, session: str | None = None) -> list[dict]:
    index = f"{settings.es.index_prefix}-*"
    es.indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
    query = {"term": {"session_id": session}} if session else {"match_all": {}}
    hits = es.search(index=index, size=10_000, query=query, allow_no_indices=True, ignore_unavailable=True)
    return [hit["_source"] for hit in hits["hits"]["hits"]]


def report_of(edge, session: str) -> SessionReport:
    reports = session_reports(documents(edge["es"], edge["settings"], session))
    return reports[0] if reports else SessionReport(session)


def wait_complete(edge, sessions: list[str], timeout: float) -> list[SessionReport]:
    """Wait until every session's report says complete; then nothing more may arrive."""
    with contextlib.suppress(TimeoutError):  # the assertion below says what is missing
        wait_until(lambda: all(report_of(edge, s).complete for s in sessions), timeout, "complete sessions", interval=1)
    time.sleep(1)
    reports = [report_of(edge, s) for s in sessions]
    assert all(r.complete for r in reports), [str(r) for r in reports]
    return reports


def seconds_until_stored(edge, session: str, count: int, timeout: float = 120) -> float:
    """How long until the session has `count` documents (fails after `timeout` seconds)."""
    started = time.monotonic()
    wait_until(lambda: len(documents(edge["es"], edge["settings"], session)) >= count, timeout, "events", interval=1)
    return time.monotonic() - started


def leave(edge) -> None:
    """The task's last page on the same origin: it sends whatever an earlier page left behind."""
    edge["browser"].get(f"{edge['origin']}/done.html")


def open_task(edge, query: str = "workerId=W1&hitId=H1&assignmentId=A1", page: str = "task.html") -> str:
    edge["browser"].get(f"{edge['origin']}/{page}?{query}")
    return edge["browser"].execute_script("return window.session_id")


def row(case: str, reports: list[SessionReport], requests_: int | str, recovery: str) -> None:
    made = sum(r.declared or 0 for r in reports)
    record(
        case,
        {
            "sent": requests_,
            "failed": "",
            "accepted": made,
            "lost": sum(r.missing for r in reports),
            "duplicated": sum(r.duplicates for r in reports),
        },
        recovery,
        table="browser",
    )


def test_offline_for_15_s_while_the_page_makes_2000_events(edge):
    browser = edge["browser"]
    session = open_task(edge)
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    browser.execute_script(PRODUCE, 2000, "x" * 100)
    time.sleep(15)
    stored_offline = len(documents(edge["es"], edge["settings"], session))
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    recovered = seconds_until_stored(edge, session, 2001)
    requests_made = len(browser.execute_script("return window.__requests"))
    leave(edge)
    [report] = wait_complete(edge, [session], 60)
    assert report.declared >= 2002  # Start Session, 2,000 ticks, End Session (and visibility events)
    row(
        "offline 15 s while the page makes 2,000 events",
        [report],
        requests_made,
        f"{stored_offline} stored while offline; all {report.stored} stored {recovered:.0f} s after back online",
    )


def test_the_next_page_and_a_reload_in_the_middle_of_a_batch_lose_nothing(edge):
    browser = edge["browser"]
    sessions = [open_task(edge)]
    browser.execute_script(PRODUCE, 300, "y" * 200)  # ~90 kB: more than one request, one in flight
    requests_made = len(browser.execute_script("return window.__requests"))
    browser.find_element(By.ID, "next").click()  # the task's second page, at once
    sessions.append(browser.execute_script("return window.session_id"))
    browser.execute_script(PRODUCE, 300, "z" * 200)
    requests_made += len(browser.execute_script("return window.__requests"))
    browser.refresh()
    sessions.append(browser.execute_script("return window.session_id"))
    leave(edge)
    assert len(set(sessions)) == 3
    started = time.monotonic()
    reports = wait_complete(edge, sessions, 90)
    assert all(r.declared >= 302 for r in reports[:2])
    row(
        "next page and a reload, each in the middle of a batch",
        reports,
        requests_made,
        f"3 pages, all {sum(r.stored for r in reports)} events stored {time.monotonic() - started:.0f} s after",
    )


def test_the_server_answering_503_for_10_s_loses_nothing(edge):
    browser, backend = edge["browser"], edge["backend"]
    session = open_task(edge)
    backend.stop()  # HAProxy has no backend: 503 to every request
    browser.execute_script(PRODUCE, 500, "w" * 100)
    time.sleep(10)
    refused = len(browser.execute_script("return window.__requests"))
    backend.start()
    recovered = seconds_until_stored(edge, session, 501, 90)
    leave(edge)
    [report] = wait_complete(edge, [session], 60)
    assert report.declared >= 502
    row(
        "server answers 503 for 10 s",
        [report],
        refused,
        f"{refused} requests refused, retried with backoff; all stored {recovered:.0f} s after",
    )


def test_a_burst_of_200_events_of_1_kb_goes_in_requests_of_at_most_60_kib(edge):
    browser = edge["browser"]
    session = open_task(edge)
    browser.execute_script(PRODUCE, 200, "k" * 1000)
    wait_until(lambda: len(documents(edge["es"], edge["settings"], session)) >= 201, 60, "events", interval=1)
    sizes = browser.execute_script("return window.__requests")
    assert max(sizes) <= 60 * 1024
    assert sum(sizes) > 200 * 1000  # every event went, in several requests
    leave(edge)
    [report] = wait_complete(edge, [session], 60)
    row("burst of 200 events of 1 kB", [report], len(sizes), f"largest request {max(sizes):,} bytes (limit 61,440)")


def typing_of(docs: list[dict]) -> dict[str, list[dict]]:
    """The typing events of each field (by its id), in order."""
    bursts: dict[str, list[dict]] = {}
    for doc in sorted(docs, key=lambda d: d["sequence_number"]):
        if doc["content"].get("keyboard_event") == "typing":
            bursts.setdefault(doc["content"]["details"]["id"], []).append(doc["content"]["details"])
    return bursts


def test_passwords_are_never_recorded_and_masked_fields_only_by_length(edge):
    browser = edge["browser"]
    session = open_task(edge)
    browser.find_element(By.ID, "name").send_keys("Ada")
    browser.find_element(By.ID, "secret").send_keys("hunter2")
    browser.find_element(By.ID, "essay").send_keys("private words")
    leave(edge)
    [report] = wait_complete(edge, [session], 60)
    docs = documents(edge["es"], edge["settings"], session)
    bursts = typing_of(docs)
    assert bursts["name"][-1]["value"] == "Ada"
    assert [edit[2] for burst in bursts["name"] for edit in burst["edits"]] == ["A", "d", "a"]
    assert "secret" not in bursts  # no edit, no length, no value
    secret = [d["content"]["details"] for d in docs if d["content"].get("details", {}).get("id") == "secret"]
    assert secret  # its focus, blur and change: the field named, nothing of what it holds
    assert not [d for d in secret if {"value", "value_length", "edits", "typed_chars"} & set(d)]
    essay = bursts["essay"]
    assert all("value" not in d and d["masked"] == "length" for d in essay if "boundary" in d)
    assert [edit[2] for burst in essay for edit in burst["edits"]] == [1] * len("private words")  # lengths only
    assert essay[-1]["value_length"] == len("private words")
    assert "private" not in str(docs)
    assert report.complete


def test_typing_costs_bytes_per_character_and_the_last_text_is_kept(edge):
    """2,000 characters typed into a textarea, then the field left: one event per burst of edits (not
    per key), the keystrokes' timing and text kept, the field's whole value at the boundary."""
    browser = edge["browser"]
    session = open_task(edge)
    text = ("The quick brown fox jumps over the lazy dog. " * 50)[:2000]
    field = browser.find_element(By.ID, "summary")
    for start in range(0, len(text), 200):  # as a worker types: in bursts
        field.send_keys(text[start : start + 200])
    browser.find_element(By.ID, "next").click()  # the field blurred, the page left
    [report] = wait_complete(edge, [session], 60)
    docs = documents(edge["es"], edge["settings"], session)
    bursts = typing_of(docs)["summary"]
    assert sum(b["typed_chars"] for b in bursts) == len(text)
    assert "".join(edit[2] for b in bursts for edit in b["edits"]) == text
    for burst in bursts:  # each edit's time since the burst's first, in order
        times = [edit[0] for edit in burst["edits"]]
        assert times == sorted(times)
    assert bursts[-1]["value"] == text
    assert bursts[-1]["boundary"] in ("blur", "hidden")
    typing_docs = [d for d in docs if d["content"].get("keyboard_event") == "typing"]
    stored = sum(len(orjson.dumps(d)) for d in typing_docs)
    assert stored / len(text) <= 150, f"{stored / len(text):.0f} bytes per character typed"
    assert report.complete
    record(
        "typing 2,000 characters into a textarea, then leaving the page",
        {
            "sent": len(typing_docs),
            "failed": "",
            "accepted": report.stored,
            "lost": report.missing,
            "duplicated": report.duplicates,
        },
        f"{len(typing_docs)} typing events, {stored:,} bytes stored: {stored / len(text):.0f} bytes per character "
        "(one event per key with the whole value: about 1,530); the last text kept",
        table="browser",
    )


def test_a_malformed_escape_in_the_url_does_not_stop_the_tracker(edge):
    session = open_task(edge, "workerId=W%2&hitId=%E0%A4%A&assignmentId=A+1&exp_id=x%ZZ")
    leave(edge)
    [report] = wait_complete(edge, [session], 60)
    docs = documents(edge["es"], edge["settings"], session)
    assert {(d["worker_id"], d["hit_id"], d["assignment_id"]) for d in docs} == {("W%2", "%E0%A4%A", "A 1")}
    assert report.complete


def test_mturk_and_prolific_parameters_become_named_fields(edge):
    mturk = open_task(edge, "workerId=AW1&assignmentId=AS1&hitId=HT1&turkSubmitTo=https%3A%2F%2Fsubmit.example.org")
    prolific = open_task(edge, "PROLIFIC_PID=5f1a&STUDY_ID=st-9&SESSION_ID=ps-3")
    leave(edge)
    wait_complete(edge, [mturk, prolific], 60)
    [m] = {(d["worker_id"], d["assignment_id"], d["hit_id"], d["turk_submit_to"], d["platform"])
           for d in documents(edge["es"], edge["settings"], mturk)}  # fmt: skip
    assert m == ("AW1", "AS1", "HT1", "https://submit.example.org", "mturk")
    [p] = {(d["worker_id"], d["prolific_pid"], d["prolific_study_id"], d["prolific_session_id"], d["platform"])
           for d in documents(edge["es"], edge["settings"], prolific)}  # fmt: skip
    assert p == ("5f1a", "5f1a", "st-9", "ps-3", "prolific")


def test_a_withdrawn_workers_page_that_was_offline_sends_what_it_kept_and_none_of_it_is_stored(edge, tmp_path):
    """W's page goes offline and keeps its events (localStorage); W withdraws meanwhile; back online,
    the page sends them: answered, so it forgets them, and never stored (the counter says how many)."""
    browser, worker = edge["browser"], "A2WITHDRAWNBYPAGE"
    session = open_task(edge, f"workerId={worker}&hitId=H1&assignmentId=A9")
    seconds_until_stored(edge, session, 1)  # Start Session, sent before the network went
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    browser.execute_script(PRODUCE, 200, "x")
    kept = "return Object.keys(localStorage).filter(function (k) { return k.indexOf('uqcrowd-log:e:') === 0; }).length"
    assert browser.execute_script(kept) >= 200
    audit = tmp_path / "audit.log"
    audit.touch(mode=0o600)
    env = {**env_of(edge["settings"], edge["es_url"]), "UQCROWD_AUDIT_LOG": str(audit)}
    withdrawn = CliRunner().invoke(main, ["withdraw", "--worker-id", worker], env=env, catch_exceptions=False)
    assert withdrawn.exit_code == 0, withdrawn.output
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    wait_until(lambda: browser.execute_script(kept) == 0, 60, "the page's stored events sent and forgotten")
    metrics = requests.get(f"{edge['backend'].url}/logger/metrics", timeout=5).text
    dropped = float(re.search(r"^uqcrowd_events_withdrawn_total (\S+)$", metrics, re.M).group(1))
    time.sleep(2)  # anything indexed would be there now
    assert documents(edge["es"], edge["settings"], session) == []
    assert dropped >= 200


def careful_worker(edge, page: str, away: float) -> str:
    """Types a known text key by key, with a pause, deletes three characters, spends `away` seconds in
    another tab, comes back, and finishes: 17 characters typed, 3 deletions, one leave."""
    browser = edge["browser"]
    session = open_task(edge, "workerId=W-careful&hitId=H1&assignmentId=A-careful", page)
    field = browser.find_element(By.ID, "summary")
    field.click()
    for text in ("Hello world", " again"):
        for key in text:
            field.send_keys(key)
            time.sleep(0.05)
        time.sleep(4)  # a pause: the burst ends (TYPING_PAUSE_MS 2 s; twice that, for a slow timer)
    field.send_keys(Keys.BACKSPACE * 3)
    task = browser.current_window_handle
    browser.switch_to.new_window("tab")  # the task's page hidden
    time.sleep(away)
    browser.close()
    browser.switch_to.window(task)
    time.sleep(0.5)  # visible again
    leave(edge)
    return session


def pasting_worker(edge, page: str, text: str) -> str:
    """Copies a known text, pastes it into the answer through the browser's clipboard, types two
    characters and finishes at once: one copy, one paste of len(text), 2 characters typed."""
    browser = edge["browser"]
    session = open_task(edge, "workerId=W-paster&hitId=H1&assignmentId=A-paster", page)
    source = browser.find_element(By.ID, "name")
    browser.execute_script("arguments[0].value = arguments[1]; arguments[0].select();", source, text)  # no input event
    source.send_keys(Keys.CONTROL, "c")
    answer = browser.find_element(By.ID, "summary")
    answer.click()
    answer.send_keys(Keys.CONTROL, "v")
    answer.send_keys("ok")
    leave(edge)
    return session


@pytest.mark.parametrize("masked", [False, True], ids=["values", "masked"])
def test_the_signals_of_a_careful_and_a_pasting_worker_are_their_scripts_counts(edge, masked):
    """Two scripted workers in Chromium, through the tracker and the whole path: the `sessions` CSV's
    counts equal what each did, the time hidden is the time spent in the other tab (within 1 s), and a
    flag on paste_share picks the pasting worker alone. The same with every value masked."""
    page = "task.html"
    if masked:
        page = "masked.html"
        html = (edge["directory"] / "task.html").read_text()
        mask = '<script>window.uqcrowd_mask_values = true;</script>\n<script src="'
        html = html.replace('<script src="', mask, 1)  # before the tracker loads
        (edge["directory"] / page).write_text(html)
    away, text = 3.0, "A summary written by someone else, 65 characters long, pasted in."
    careful, paster = careful_worker(edge, page, away), pasting_worker(edge, page, text)
    wait_complete(edge, [careful, paster], 60)
    settings = edge["settings"]
    env = {"UQCROWD_ES_URL": edge["es_url"], "UQCROWD_INDEX_PREFIX": settings.es.index_prefix,
           "UQCROWD_FLAGS": '{"edge": ["paste_share > 0.5"]}'}  # fmt: skip
    result = CliRunner().invoke(main, ["sessions", "--csv"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {row["session_id"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    counted = ("typed_chars", "deletions", "pastes", "pasted_chars", "copies", "away_count")
    assert [rows[careful][name] for name in counted] == ["17", "3", "0", "0", "0", "1"]
    assert [rows[paster][name] for name in counted] == ["2", "0", "1", str(len(text)), "1", "0"]
    assert abs(float(rows[careful]["hidden_seconds"]) - away) <= 1.0, rows[careful]["hidden_seconds"]
    assert float(rows[paster]["hidden_seconds"]) == 0.0
    flagged = {session: row["flags"] for session, row in rows.items() if row["flags"]}  # done.html's too
    assert flagged == {paster: "paste_share>0.5"}
    docs = documents(edge["es"], settings)
    assert (text in str(docs), "Hello" in str(docs)) == (not masked, not masked)  # masked: lengths only
    said = {
        session: [line.what for line in transcript.lines(documents(edge["es"], settings, session))
                  if line.what.startswith(("typed", "deleted", "pasted", "copied", "left"))]
        for session in (careful, paster)
    }  # fmt: skip
    assert said[careful][:3] == [
        "typed 11 characters into textarea#summary",
        "typed 6 characters into textarea#summary",
        "deleted 3 characters in textarea#summary",
    ]
    assert re.fullmatch(r"left the page for [34] s", said[careful][3]), said[careful]
    assert said[paster][1:] == [
        f"pasted {len(text)} characters in textarea#summary",
        "typed 2 characters into textarea#summary",
    ]
    assert re.fullmatch(r"copied \d+ characters? in input#name", said[paster][0]), said[paster]
