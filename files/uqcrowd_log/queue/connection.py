"""A Redis client for the queue's parts, from its URL and CA."""

from __future__ import annotations

import redis

from ..config import Settings


def connect(url: str, ca_file: str = "") -> redis.Redis:
    """A client of Redis at `url`; a rediss:// one verifies the server's certificate (with `ca_file` if
    given, else the system's CAs) and its name."""
    verify = {"ssl_ca_certs": ca_file or None, "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    tls = verify if url.startswith("rediss://") else {}
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30, **tls)


def client_of(settings: Settings) -> redis.Redis:
    """The client of the Redis the settings name (UQCROWD_REDIS_URL, UQCROWD_REDIS_CA_FILE)."""
    return connect(settings.redis.url, settings.redis.ca_file)
