"""The HTTP API under /logger: ingest, health, readiness, metrics and the browser tracker."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import orjson
import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from .config import Settings
from .events import (
    BadInput,
    Batch,
    Invalid,
    Prepared,
    drop_workers,
    parse_batch,
    prepare,
    screen_experiments,
    worker_ids,
)
from .metrics import render
from .origins import allow_origin, origin_allowed
from .proxies import client_ip, in_networks, recorded_ip
from .queue.connection import client_of, sentinels_of
from .queue.keys import Keys
from .queue.producer import Producer, QueueFull, WorkerWithdrawn
from .queue.side_lists import SideLimits, SideLists
from .queue.topology import read as read_topology
from .sinks import Sink
from .sinks.queue import QueueSink
from .unavailable import StoreUnavailable
from .withdrawn import Register

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
api = Blueprint("logger", __name__, url_prefix="/logger")


def _settings() -> Settings:
    return current_app.extensions["uqcrowd"]["settings"]


def _sink() -> Sink:
    return current_app.extensions["uqcrowd"]["sink"]


def _producer() -> Producer:
    return current_app.extensions["uqcrowd"]["producer"]


def _withdrawn() -> Register:
    return current_app.extensions["uqcrowd"]["withdrawn"]


def _client_address(settings: Settings) -> str:
    """The request's real client, through the trusted proxies' X-Forwarded-For."""
    return client_ip(request.remote_addr or "", request.headers.get("X-Forwarded-For"), settings.ingest.trusted_proxies)


def _error(status: int, message: str, reason: str | None = None) -> Response:
    if reason:
        with contextlib.suppress(redis.RedisError):  # counting is best effort; the answer must not wait on it
            _producer().count(f"rejected:{reason}")
    response = jsonify(error=message)
    response.status_code = status
    if status in (429, 503):
        response.headers["Retry-After"] = str(_settings().ingest.retry_after_seconds)
    return response


@api.post("/insert")
def insert() -> Response:
    """Store the valid events of a batch, quarantine the invalid ones, and say how many of each."""
    settings = _settings()
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, settings.ingest.allowed_origins):
        # A browser says which page sent this: one not listed is another site's (or a copy's). Anything
        # that is not a browser can forge the header: this keeps other pages out, it is not authentication.
        return _error(403, f"events from pages of {origin[:200]} are not accepted here", "origin")
    try:
        batch = parse_batch(request.get_data(cache=False), settings.ingest.max_batch, settings.ingest.max_depth)
    except BadInput as exc:
        return _error(400, str(exc), exc.reason)
    refused = screen_experiments(batch, settings.ingest.experiments, request.args.get("token", ""))
    now = datetime.now(UTC)
    ip = recorded_ip(_client_address(settings), settings.ingest.client_ip)
    try:
        prepared, withdrawn = _store(batch, now, ip)
    except QueueFull as exc:
        return _error(503, str(exc), "queue_full")
    except (StoreUnavailable, redis.RedisError) as exc:
        log.warning("store unavailable: %s", exc)
        return _error(503, "the event store is unavailable, retry later", "store_unavailable")
    if batch.invalid:
        _quarantine(batch.invalid, now.isoformat(timespec="milliseconds"), ip)
    if refused or withdrawn:  # events of experiments not accepted here, or of withdrawn workers: only counted
        with contextlib.suppress(redis.RedisError):
            for bad in refused:
                _producer().count(f"rejected:{bad.reason}")
            if withdrawn:
                _producer().count("withdrawn", withdrawn)
    problems = sorted(batch.invalid + refused, key=lambda bad: bad.position)
    accepted = len(prepared) + withdrawn  # the page may forget them: they are not to be sent again
    body: dict[str, object] = {"accepted": accepted, "rejected": len(problems)}
    if problems:
        body["errors"] = [{"index": bad.position, "reason": bad.reason, "error": bad.message} for bad in problems]
    if not accepted:
        body["error"] = problems[0].message
    status = 202 if accepted else 403 if refused and not batch.invalid else 400
    return Response(orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE), status, mimetype="application/json")


def _store(batch: Batch, now: datetime, ip: str | None) -> tuple[list[Prepared], int]:
    """Stamp and store the batch's events, but never a withdrawn worker's (e.g. a page's kept events,
    sent again: answered, not stored). The sink refuses a batch holding one (it checks the register in
    the insert itself): only then is the register read, those workers' events taken out, and the rest
    stored. The events stored, and how many were taken out."""
    withdrawn = 0
    while prepared := prepare(batch.events, now, ip):
        workers = worker_ids(batch.events)
        try:
            _sink().put(prepared, workers)
            break
        except WorkerWithdrawn:
            withdrawn += drop_workers(batch, _withdrawn().among(workers))
    return prepared, withdrawn


def _quarantine(invalid: list[Invalid], received: str, ip: str | None) -> None:
    try:
        _producer().quarantine(invalid, received, ip)
    except redis.RedisError as exc:  # the answer still tells the client; the server log keeps the events
        for bad in invalid:
            log.error("quarantine not recorded (%s): %s %s", exc, bad.message, bad.raw[:1000])


@api.get("/health")
def health() -> Response:
    return jsonify(status="ok")


@api.get("/ready")
def ready() -> Response:
    problem = _sink().unready()
    if not problem:
        return jsonify(status="ready")
    return _error(503, problem)


@api.get("/metrics")
def metrics() -> Response:
    """For the operator's monitoring: refused to any client outside UQCROWD_METRICS_ALLOWED, judged by
    its real address (through trusted proxies), whatever path encoding got the request here."""
    settings = _settings()
    if not in_networks(_client_address(settings), settings.ingest.metrics_allowed):
        return _error(403, "metrics are only served to the monitoring hosts")
    producer = _producer()
    sentinels = current_app.extensions["uqcrowd"]["sentinels"]
    topology = partial(read_topology, sentinels, settings.redis.service) if sentinels else None
    return Response(
        render(producer.client, producer.keys, settings.queue.dead_letter_max, topology), mimetype=CONTENT_TYPE_LATEST
    )


@api.get("/logger.js")
def tracker() -> Response:
    """The tracker, told this server's limits (rendered once at start-up)."""
    response = Response(current_app.extensions["uqcrowd"]["tracker"], mimetype="text/javascript")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@api.get("/fingerprint.js")
def fingerprint() -> Response:
    return send_from_directory(STATIC, "fingerprint.js", mimetype="text/javascript", max_age=300)


def render_tracker(settings: Settings) -> bytes:
    limits = f'{{"maxBatch": {settings.ingest.max_batch}, "maxBytes": {settings.ingest.max_body_bytes}}}'
    return (STATIC / "logger.js").read_bytes().replace(b"/*SERVER_LIMITS*/null", limits.encode())


def _cors(response: Response) -> Response:
    allow_origin(response, request.headers.get("Origin"), _settings().ingest.allowed_origins)
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Content-Type"
        )
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


def _http_error(exc: HTTPException) -> Response:
    reason = "body_too_large" if exc.code == 413 else None
    response = _error(exc.code or 500, (exc.description or exc.name).split("\n")[0], reason)
    if exc.code == 405:
        response.headers["Allow"] = "POST, OPTIONS"
    return response


def create_app(settings: Settings, sink: Sink | None = None) -> Flask:
    sentinels = sentinels_of(settings.redis)  # also asked by the metrics: which Redis is primary
    client = client_of(settings, sentinels)  # one pool for every part the backend plays
    producer = Producer.from_settings(settings, client)
    if sink is None:
        if settings.ingest.mode == "direct":  # imported here: a backend of the queue never loads Elasticsearch's client
            from . import elastic
            from .sinks.direct import DirectSink

            side_lists = SideLists(client, Keys.of(settings.redis.prefix), SideLimits.dead_letters(settings))
            register = Register.from_settings(settings, client)
            sink = DirectSink(elastic.connect(settings), settings.es.index_prefix, producer, side_lists, register)
        else:
            sink = QueueSink(producer, settings.queue.high_water_bytes)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.ingest.max_body_bytes
    tracker_script = render_tracker(settings)
    app.extensions["uqcrowd"] = {
        "settings": settings,
        "sink": sink,
        "producer": producer,
        "withdrawn": Register.from_settings(settings, client),
        "tracker": tracker_script,
        "sentinels": sentinels,
    }
    app.register_blueprint(api)
    app.after_request(_cors)
    app.register_error_handler(HTTPException, _http_error)
    return app


def app_from_env() -> Flask:
    """WSGI factory used by the server: configuration from UQCROWD_* variables."""
    return create_app(Settings.from_env())
