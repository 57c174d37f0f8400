"""The original system's design, rebuilt in this project's code as the benchmark's baseline.

Flask's development server, one event per request: either indexed into Elasticsearch with one
request per event (the original's default) or pushed raw onto a Redis list ("cache mode").

    python bench/seed_logger.py PORT index|cache
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime

import redis
from elasticsearch import Elasticsearch
from flask import Flask, request

app = Flask(__name__)
MODE = sys.argv[2] if len(sys.argv) > 2 else "index"
es = Elasticsearch(os.environ.get("UQCROWD_ES_URL", "http://127.0.0.1:9200"))
cache = redis.Redis.from_url(os.environ.get("UQCROWD_REDIS_URL", "redis://127.0.0.1:6379/0"))
PREFIX = os.environ.get("UQCROWD_INDEX_PREFIX", "uqcrowd-log")


@app.route("/logger/insert", methods=["POST"])
def insert() -> str:
    body = request.get_data()
    if MODE == "cache":
        cache.lpush(f"{PREFIX}:seed-cache", body)
        return "True"
    event = json.loads(body)
    event["server_time"] = datetime.now(UTC).isoformat()
    es.index(index=f"{PREFIX}-{datetime.now(UTC):%Y-%m-%d}", document=event)
    return "True"


@app.route("/logger/ready")
def ready() -> str:
    """Not in the original: only so that the same HAProxy configuration (health check) serves both."""
    return "True"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]))
