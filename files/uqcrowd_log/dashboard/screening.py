"""Repeat-participation screening for task pages (opt-in, UQCROWD_SEEN_GROUPS): GET /logger/seen
answers only whether a worker already has a session in an experiment of a configured group, so that a
page can turn a returning worker away. No login (a task page asks it), nothing else about the worker."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from ..origins import allow_origin

screening = Blueprint("screening", __name__, url_prefix="/logger")
MAX_WORKER_ID = 256


def _answer(body: dict[str, object], status: int = 200) -> Response:
    """JSON with CORS for the task pages' origins (Cache-Control: no-store, as every dashboard answer)."""
    response = jsonify(body)
    response.status_code = status
    allow_origin(
        response, request.headers.get("Origin"), current_app.extensions["dashboard"].settings.ingest.allowed_origins
    )
    return response


@screening.get("/seen")
def seen() -> Response:
    context = current_app.extensions["dashboard"]
    experiments = context.settings.dashboard.seen_groups.get(request.args.get("group", ""))
    if experiments is None:
        return _answer({"error": "no such group"}, 404)
    worker_id = request.args.get("worker_id", "")
    if not worker_id or len(worker_id) > MAX_WORKER_ID:
        return _answer({"error": f"worker_id is required (at most {MAX_WORKER_ID} characters)"}, 400)
    query = {"bool": {"filter": [{"terms": {"exp_id": list(experiments)}}, {"term": {"worker_id": worker_id}}]}}
    found = context.client.search(index=context.index, size=0, terminate_after=1, ignore_unavailable=True, query=query)
    return _answer({"seen": found["hits"]["total"]["value"] > 0})
