"""A Redis client for the queue's parts: the URL's Redis, or the primary the Sentinels name."""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel

from ..config import RedisSettings, Settings

_TIMEOUTS = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}


def _tls(url: str, ca_file: str) -> dict[str, Any]:
    """A rediss:// client verifies the server's certificate (with `ca_file` if given, else the system's
    CAs) and its name."""
    if not url.startswith("rediss://"):
        return {}
    return {"ssl_ca_certs": ca_file or None, "ssl_cert_reqs": "required", "ssl_check_hostname": True}


def connect(url: str, ca_file: str = "") -> redis.Redis:
    """A client of Redis at `url`."""
    return redis.Redis.from_url(url, **_TIMEOUTS, **_tls(url, ca_file))


def _tls_options(redis_settings: RedisSettings) -> dict[str, Any]:
    url = redis_settings.url
    return _tls(url, redis_settings.ca_file) | ({"ssl": True} if url.startswith("rediss://") else {})


def sentinels_of(redis_settings: RedisSettings) -> Sentinel | None:
    """The Sentinels the settings name (TLS when the URL is rediss://), None without any."""
    if not redis_settings.sentinels:
        return None
    login = {"password": redis_settings.sentinel_password} if redis_settings.sentinel_password else {}
    options = {"socket_timeout": 2, "socket_connect_timeout": 2, **login, **_tls_options(redis_settings)}
    return Sentinel(list(redis_settings.sentinels), sentinel_kwargs=options)


def connect_through_sentinels(redis_settings: RedisSettings, sentinels: Sentinel) -> redis.Redis:
    """A client of the primary the Sentinels name, with the URL's scheme, user, password and database:
    it asks them again after a connection fails, so it follows a promotion (redis-py's SentinelConnectionPool);
    a command that met the demoted primary fails once (ReadOnlyError, then ConnectionError)."""
    url = parse_url(redis_settings.url)
    login = {key: value for key, value in url.items() if key in ("username", "password", "db")}
    return sentinels.master_for(redis_settings.service, **_TIMEOUTS, **login, **_tls_options(redis_settings))


def client_of(settings: Settings, sentinels: Sentinel | None = None) -> redis.Redis:
    """The client of the Redis the settings name (UQCROWD_REDIS_URL, UQCROWD_REDIS_CA_FILE, or
    UQCROWD_REDIS_SENTINELS and UQCROWD_REDIS_SERVICE), through `sentinels` when the caller holds them."""
    sentinels = sentinels or sentinels_of(settings.redis)
    if sentinels is not None:
        return connect_through_sentinels(settings.redis, sentinels)
    return connect(settings.redis.url, settings.redis.ca_file)
