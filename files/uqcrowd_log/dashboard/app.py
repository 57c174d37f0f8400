"""The dashboard's pages and the original's JSON lookups, every one behind the login (auth.py)."""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cachetools import TTLCache
from elastic_transport import TransportError
from elasticsearch import Elasticsearch
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request, send_file
from markupsafe import Markup

from .. import elastic, flags, transcript
from ..completeness import SessionReport, session_reports
from ..config import Settings
from ..signals import COLUMNS
from ..stored_events import formats, sessions
from ..stored_events.selection import Selection, stream
from ..stored_events.sessions import StoredSignals, read_reports
from . import charts, queries
from .auth import allowed, read_users
from .health import SHOWN, read_health
from .screening import screening

pages = Blueprint("dashboard", __name__, url_prefix="/dashboard", static_folder="static")
lookups = Blueprint("analytics", __name__, url_prefix="/analytics")
REALM = 'Basic realm="UQCrowd-Log dashboard", charset="UTF-8"'
# How long one answer of live.json is given again: its page polls every 5 s, so five researchers watching
# one experiment cost Elasticsearch one count of its sessions every 3 s, not five every 5 s.
LIVE_SECONDS = 3.0
# Every answer: nothing kept by a browser or a proxy (the pages name participants), nothing run or loaded
# but the dashboard's own script and stylesheet, never inside another site's frame, no Referer sent on.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Context:
    """What every page reads: Elasticsearch (as the reader user), the events' indices, the researchers'
    logins, and how long an unfinished session stays in progress."""

    client: Elasticsearch
    index: str
    users: Mapping[str, str]
    idle: timedelta
    settings: Settings
    reports: str = ""  # the nightly session reports' indices (`uqcrowd-log sessions --store`)
    rules: Mapping[str, tuple[flags.Rule, ...]] = field(default_factory=dict)  # the researchers' flags
    live_seconds: float = LIVE_SECONDS
    live_views: TTLCache = field(init=False)
    live_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        object.__setattr__(self, "live_views", TTLCache(maxsize=256, ttl=self.live_seconds))


def _context() -> Context:
    return current_app.extensions["dashboard"]


def _client() -> Elasticsearch:
    return _context().client


def _index() -> str:
    return _context().index


def _idle() -> timedelta:
    return _context().idle


def _login_required() -> Response | None:
    if request.blueprint == screening.name:  # asked by task pages: answers a yes or no only
        return None
    if allowed(_context().users, request.authorization):
        return None
    return Response("login required\n", 401, {"WWW-Authenticate": REALM, "Content-Type": "text/plain"})


@pages.get("/")
def experiments() -> str:
    now = datetime.now(UTC)
    return render_template("experiments.html", experiments=queries.experiments(_client(), _index(), now, _idle()))


# The signals the experiment's sessions table shows (every one: the signals page and its CSV).
SHOWN_SIGNALS = ("active_seconds", "hidden_seconds", "away_count", "typed_chars", "pastes", "paste_share")


@dataclass(frozen=True)
class SessionRow:
    """A line of an experiment's sessions table: the session's report (Elasticsearch's aggregations,
    now), its status, and its signals and flags from its nightly report (None: not reported yet)."""

    report: SessionReport
    status: queries.Status
    stored: StoredSignals | None
    flags: list[str]

    @property
    def partial(self) -> bool:
        """The report read fewer events than are stored now (the session went on after it)."""
        return self.stored is not None and self.stored.stored < self.report.stored


def _session_row(report: SessionReport, now: datetime, stored: StoredSignals | None) -> SessionRow:
    marks = flags.flags(stored.signals, report.exp_id, _context().rules) if stored else []
    return SessionRow(report, queries.status(report, now, _idle()), stored, marks)


@pages.get("/experiment/<exp_id>")
def experiment(exp_id: str) -> str:
    now = datetime.now(UTC)
    worker_id = request.args.get("worker_id", "").strip()
    reports = queries.sessions(_client(), _index(), exp_id, worker_id)
    if not reports and not worker_id:
        abort(404)
    reports.sort(key=lambda report: report.first_time or datetime.min.replace(tzinfo=UTC), reverse=True)  # newest first
    days = queries.events_per_day(_client(), _index(), exp_id)
    stored = sessions.stored_signals(_client(), _context().reports, exp_id)
    rows = [_session_row(report, now, stored.get(report.session_id)) for report in reports]
    flagged = request.args.get("flagged") == "1"
    return render_template(
        "experiment.html",
        exp_id=exp_id,
        worker_id=worker_id,
        flagged=flagged,
        rows=[row for row in rows if row.flags or not flagged],
        with_signals=sum(row.stored is not None for row in rows),
        total=len(rows),
        columns=SHOWN_SIGNALS,
        by_status=queries.count_by_status(reports, now, _idle()),
        per_day=Markup(charts.bars(days)),
    )


@pages.get("/health")
def health() -> str:
    settings = _context().settings
    state = read_health(
        settings.dashboard.metrics_url,
        settings.dashboard.metrics_ca_file,
        Path(settings.dashboard.monitor_state_dir),
        settings.dashboard.backends,
    )
    return render_template("health.html", health=state, shown=SHOWN)


@pages.get("/experiment/<exp_id>/live.json")
def live(exp_id: str) -> Response:
    """What the experiment's page redraws every few seconds: events per minute over the last hour and
    its sessions by status. Counted once per LIVE_SECONDS, one count at a time: requests meanwhile wait
    for it and share it, so the viewers never add up on Elasticsearch."""
    context = _context()
    with context.live_lock:
        view = context.live_views.get(exp_id)
        if view is None:
            view = context.live_views[exp_id] = _live_view(exp_id)
    return jsonify(view)


def _live_view(exp_id: str) -> dict[str, object]:
    now = datetime.now(UTC)
    reports = queries.sessions(_client(), _index(), exp_id)
    minutes = queries.events_per_minute(_client(), _index(), exp_id, now)
    return {
        "per_minute": minutes,
        "chart": charts.bars(minutes),
        "sessions": queries.count_by_status(reports, now, _idle()),
        "events": sum(report.stored for report in reports),
    }


DOWNLOADS = {"ndjson": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


@pages.get("/experiment/<exp_id>/events.<fmt>")
def download(exp_id: str, fmt: str) -> Response:
    """The experiment's events as `uqcrowd-log export --exp-id` writes them (the same writers), spooled
    to a temporary file (constant memory) and sent from it."""
    if fmt not in DOWNLOADS:
        abort(404)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - send_file closes it once sent
    hits = stream(_client(), _index(), Selection(exp_id=exp_id))
    formats.WRITERS[fmt]((hit["_source"] for hit in hits), spool)
    spool.seek(0)
    return send_file(spool, mimetype=DOWNLOADS[fmt], as_attachment=True, download_name=f"{exp_id}.{fmt}")


def _csv_download(text: str, name: str) -> Response:
    """CSV as an attachment named after `name` (ids come from task pages: only safe characters kept)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120]
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{safe}.csv"'})


def _signal_rows(exp_id: str) -> list[dict[str, Any]]:
    """Every session of the experiment with its signals and flags, from its documents (the same rows as
    `uqcrowd-log sessions`): read on demand, as an export reads them."""
    reports = read_reports(_client(), _index(), Selection(exp_id=exp_id))
    if not reports:
        abort(404)
    return sessions.rows(reports, _context().rules)


@pages.get("/experiment/<exp_id>/signals")
def signals(exp_id: str) -> str:
    rows = _signal_rows(exp_id)
    flagged = request.args.get("flagged") == "1"
    shown = [row for row in rows if row["flags"] or not flagged]
    rules = [str(rule) for rule in (*_context().rules.get("*", ()), *_context().rules.get(exp_id, ()))]
    return render_template(
        "signals.html", exp_id=exp_id, rows=shown, total=len(rows), flagged=flagged, rules=rules, columns=COLUMNS
    )


@pages.get("/experiment/<exp_id>/signals.csv")
def signals_csv(exp_id: str) -> Response:
    rows = _signal_rows(exp_id)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return _csv_download(out.getvalue(), f"{exp_id}-sessions")


@pages.get("/experiment/<exp_id>/repeats")
def repeat_participants(exp_id: str) -> str:
    return render_template("repeats.html", exp_id=exp_id, repeats=queries.repeats(_client(), _index(), exp_id))


def _session_documents(exp_id: str, session_id: str) -> list[dict[str, Any]]:
    documents = [hit["_source"] for hit in stream(_client(), _index(), Selection(exp_id=exp_id, session_id=session_id))]
    if not documents:
        abort(404)
    return documents


@pages.get("/experiment/<exp_id>/session/<session_id>")
def session(exp_id: str, session_id: str) -> str:
    # From its documents: which sequence numbers are missing, not only how many; its signals; what the
    # worker did, in order.
    documents = _session_documents(exp_id, session_id)
    [report] = session_reports(documents)
    timeline = queries.session_timeline(_client(), _index(), exp_id, report)
    return render_template(
        "session.html",
        exp_id=exp_id,
        report=report,
        signals=report.signals.as_row(),
        transcript=transcript.lines(documents),
        status=queries.status(report, datetime.now(UTC), _idle()),
        timeline={kind: Markup(charts.bars(points, height=90)) for kind, points in sorted(timeline.items())},
    )


@pages.get("/experiment/<exp_id>/session/<session_id>/transcript.csv")
def session_transcript(exp_id: str, session_id: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at", "seconds", "what"])
    for line in transcript.lines(_session_documents(exp_id, session_id)):
        writer.writerow([line.at, round(line.seconds, 3), line.what])
    return _csv_download(out.getvalue(), f"{exp_id}-{session_id}-transcript")


@lookups.post("/session/worker/<worker_id>")
def by_worker(worker_id: str) -> Response:
    return jsonify([r.as_row() for r in queries.sessions_of_worker(_client(), _index(), worker_id)])


@lookups.post("/session/client/<fingerprint>")
def by_fingerprint(fingerprint: str) -> Response:
    return jsonify([r.as_row() for r in queries.sessions_of_fingerprint(_client(), _index(), fingerprint)])


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _elasticsearch_unavailable(error: TransportError) -> Response:
    logging.getLogger(__name__).warning("Elasticsearch: %s", error)
    return Response(
        "Elasticsearch is not answering: try again in a minute\n",
        503,
        {"Retry-After": "30", "Content-Type": "text/plain"},
    )


def create_dashboard(
    settings: Settings,
    users: Mapping[str, str],
    client: Elasticsearch | None = None,
    live_seconds: float = LIVE_SECONDS,
) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.extensions["dashboard"] = Context(
        client=client or elastic.connect(settings),
        index=elastic.index_name(settings.es.index_prefix, "*"),
        reports=elastic.index_name(settings.toolkit.session_index_prefix, "*"),
        users=dict(users),
        idle=timedelta(seconds=settings.dashboard.idle_seconds),
        settings=settings,
        rules=flags.rules_by_experiment(settings.toolkit.flags),  # a bad rule stops the start, in one line
        live_seconds=live_seconds,
    )
    app.before_request(_login_required)
    app.after_request(_secured)
    app.register_blueprint(pages)
    app.register_blueprint(lookups)
    app.register_blueprint(screening)
    app.register_error_handler(TransportError, _elasticsearch_unavailable)
    return app


def dashboard_from_env() -> Flask:
    """The dashboard of UQCROWD_* settings, for the users of UQCROWD_DASHBOARD_USERS_FILE."""
    settings = Settings.from_env()
    return create_dashboard(settings, read_users(Path(settings.dashboard.users_file)))
