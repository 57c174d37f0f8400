"""TLS between hosts. The queue, as the redis role serves it beyond loopback: the service verifies Redis's
certificate with the CA it is given (UQCROWD_REDIS_CA_FILE), and gets nothing from a Redis it cannot
verify or by speaking plain TCP to it. The backends, as the logger role runs them when HAProxy is on
another host: HTTPS only (UQCROWD_TLS_CERT, UQCROWD_TLS_KEY)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from harness.certificates import make_ca_and_server
from harness.services import TlsRedisServer
from tests.service.conftest import env_of
from uqcrowd_log.config import Settings
from uqcrowd_log.queue.connection import connect
from uqcrowd_log.web import create_app


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_ca_and_server(tmp_path_factory.mktemp("tls"), "redis", "DNS:localhost")  # not 127.0.0.1


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, certificates: dict[str, Path]) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path_factory.mktemp("redis-tls"), certificates, password="queue-secret")
    server.start()
    yield server
    server.stop()


def by_name(server: TlsRedisServer) -> str:
    """The server's URL by the name its certificate gives."""
    return server.url.replace("127.0.0.1", "localhost")


def test_with_the_ca_events_are_queued_over_tls(tls_redis, certificates):
    url = by_name(tls_redis)
    settings = Settings.from_env({}).changed(redis={"url": url, "ca_file": str(certificates["ca"])})
    answer = create_app(settings).test_client().post("/logger/insert", json={"log_type": "message", "session_id": "t"})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert connect(url, str(certificates["ca"])).xlen(f"{settings.redis.prefix}:events") == 1


def test_a_redis_whose_certificate_does_not_verify_gets_no_event(tls_redis):
    settings = Settings.from_env({}).changed(redis={"url": by_name(tls_redis)})  # the system's CAs only
    answer = create_app(settings).test_client().post("/logger/insert", json={"log_type": "message", "session_id": "t"})
    assert answer.status_code == 503
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(by_name(tls_redis)).ping()


def test_the_name_is_verified_too(tls_redis, certificates):
    """The certificate names localhost, not 127.0.0.1: the same server by its address is refused."""
    with pytest.raises(redis.ConnectionError, match="mismatch"):
        connect(tls_redis.url, str(certificates["ca"])).ping()


def test_plain_tcp_to_the_tls_port_gets_nothing(tls_redis):
    plain = by_name(tls_redis).replace("rediss://", "redis://", 1)
    with pytest.raises(redis.ConnectionError):
        connect(plain).ping()


def test_a_backend_given_a_certificate_answers_https_only_verified_by_its_ca(spawn, settings, certificates):
    tls = {"UQCROWD_TLS_CERT": str(certificates["cert"]), "UQCROWD_TLS_KEY": str(certificates["key"])}
    env = {**env_of(settings), **tls}
    backend = spawn(env)
    url = backend.url.replace("127.0.0.1", "localhost")
    assert url.startswith("https://")
    event = {"log_type": "message", "session_id": "tls", "sequence_number": 0}
    answer = requests.post(f"{url}/logger/insert", json=event, verify=certificates["ca"], timeout=10)
    assert answer.status_code == 202, answer.text
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(f"{url}/logger/ready", timeout=10)  # the system's CAs
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https://", "http://") + "/logger/ready", timeout=10)  # no plain HTTP
