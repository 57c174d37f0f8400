"""Service configuration, read once from UQCROWD_* environment variables (see README): one group of
settings per part (Redis, Elasticsearch, the queue's bounds, the HTTP server, ingest, the indexer, the
dashboard, the command line), each read by its own `from_env`; this module is the only reader."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Mode = Literal["queue", "direct"]
IpMode = Literal["full", "truncated", "none"]


class ConfigError(ValueError):
    """A UQCROWD_* variable has a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}")
    return value


def _list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, default).split(",") if item.strip())


def _networks(env: Mapping[str, str], name: str, default: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _list(env, name, default))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _experiments(raw: str) -> dict[str, str]:
    """ "exp-1,exp-2=token" -> {"exp-1": "", "exp-2": "token"}."""
    experiments = {}
    for item in raw.split(","):
        name, _, token = item.strip().partition("=")
        if name.strip():
            experiments[name.strip()] = token.strip()
    return experiments


def _groups(raw: str) -> dict[str, tuple[str, ...]]:
    """ "group-a=exp-1|exp-2,group-b=exp-3" -> {"group-a": ("exp-1", "exp-2"), "group-b": ("exp-3",)}."""
    groups = {}
    for item in raw.split(","):
        name, sep, members = item.strip().partition("=")
        if not item.strip():
            continue
        experiments = tuple(exp.strip() for exp in members.split("|") if exp.strip())
        if not sep or not name.strip() or not experiments:
            raise ConfigError(f"UQCROWD_SEEN_GROUPS: {item.strip()!r} is not group=experiment|experiment...")
        groups[name.strip()] = experiments
    return groups


def _flags(raw: str) -> dict[str, tuple[str, ...]]:
    """'{"study-a": ["paste_share > 0.5"], "*": ["active_seconds < 60"]}' -> experiment -> rules."""
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"UQCROWD_FLAGS is not JSON: {exc}") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(rules, list) and all(isinstance(rule, str) for rule in rules) for rules in parsed.values()
    ):
        raise ConfigError('UQCROWD_FLAGS must map experiments to lists of rules: {"study": ["paste_share > 0.5"]}')
    return {str(experiment): tuple(rules) for experiment, rules in parsed.items()}


# The researcher's command line (uqcrowd-log): one Elasticsearch user per kind of command, each from
# UQCROWD_TOOLKIT_<KIND>_USERNAME and _PASSWORD (the role writes them, readable by whom may use them).
TOOLKIT_USERS = ("reader", "curator", "withdrawer", "retention", "writer")


@dataclass(frozen=True)
class ToolkitSettings:
    """What only the command line reads: its users, the session reports' indices, the audit log."""

    # kind of command -> (username, password); a kind without a username uses the connection's own.
    users: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    session_index_prefix: str = "uqcrowd-session"
    audit_log: str = "/var/log/uqcrowd-log/withdrawals.log"
    # The flags a researcher sets: experiment (or "*") -> rules such as "paste_share > 0.5" (flags.py).
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ToolkitSettings:
        users = {}
        for kind in TOOLKIT_USERS:
            username = env.get(f"UQCROWD_TOOLKIT_{kind.upper()}_USERNAME", "")
            if username:
                users[kind] = (username, env.get(f"UQCROWD_TOOLKIT_{kind.upper()}_PASSWORD", ""))
        return cls(
            users=users,
            session_index_prefix=env.get("UQCROWD_SESSION_INDEX_PREFIX", "") or cls.session_index_prefix,
            audit_log=env.get("UQCROWD_AUDIT_LOG", "") or cls.audit_log,
            flags=_flags(env.get("UQCROWD_FLAGS", "")),
        )


@dataclass(frozen=True)
class RedisSettings:
    """The queue's Redis (backends, indexer, command line)."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "uqcrowd-log"  # of every key of this installation
    ca_file: str = ""  # of a rediss:// one (else the system's CAs)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        return cls(
            url=env.get("UQCROWD_REDIS_URL", cls.url),
            prefix=env.get("UQCROWD_REDIS_PREFIX", cls.prefix),
            ca_file=env.get("UQCROWD_REDIS_CA_FILE", ""),
        )


@dataclass(frozen=True)
class ElasticsearchSettings:
    """Elasticsearch and the events' daily indices (every process)."""

    url: str = "http://127.0.0.1:9200"  # or several, separated by commas (a cluster)
    username: str = ""
    password: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    ca_file: str = ""
    index_prefix: str = "uqcrowd-log"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ElasticsearchSettings:
        return cls(
            url=env.get("UQCROWD_ES_URL", cls.url),
            username=env.get("UQCROWD_ES_USERNAME", ""),
            password=env.get("UQCROWD_ES_PASSWORD", ""),
            api_key=env.get("UQCROWD_ES_API_KEY", ""),
            ca_file=env.get("UQCROWD_ES_CA_FILE", ""),
            index_prefix=env.get("UQCROWD_INDEX_PREFIX", cls.index_prefix),
        )


@dataclass(frozen=True)
class QueueSettings:
    """The queue's bounds (backends and indexer)."""

    high_water_bytes: int = 256 * 1024 * 1024
    dead_letter_max: int = 100_000
    quarantine_max: int = 10_000
    # Bytes each side list keeps at most (their oldest dropped beyond): an eighth of the high-water mark.
    dead_letter_max_bytes: int = 32 * 1024 * 1024
    quarantine_max_bytes: int = 32 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QueueSettings:
        high_water = _int(env, "UQCROWD_QUEUE_HIGH_WATER_BYTES", cls.high_water_bytes, 1)
        return cls(
            high_water_bytes=high_water,
            dead_letter_max=_int(env, "UQCROWD_DEAD_LETTER_MAX", cls.dead_letter_max, 1),
            quarantine_max=_int(env, "UQCROWD_QUARANTINE_MAX", cls.quarantine_max, 1),
            dead_letter_max_bytes=_int(env, "UQCROWD_DEAD_LETTER_MAX_BYTES", high_water // 8, 1),
            quarantine_max_bytes=_int(env, "UQCROWD_QUARANTINE_MAX_BYTES", high_water // 8, 1),
        )


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP server of a backend or of the dashboard."""

    bind_host: str = "127.0.0.1"
    # HTTPS (HAProxy on another host verifies the backends): a PEM certificate and its key.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    threads: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        tls_cert, tls_key = env.get("UQCROWD_TLS_CERT", ""), env.get("UQCROWD_TLS_KEY", "")
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("UQCROWD_TLS_CERT and UQCROWD_TLS_KEY go together: set both or neither")
        return cls(
            bind_host=env.get("UQCROWD_BIND", cls.bind_host),
            tls_cert_file=tls_cert,
            tls_key_file=tls_key,
            threads=_int(env, "UQCROWD_THREADS", cls.threads, 1),
        )


@dataclass(frozen=True)
class IngestSettings:
    """What the backends accept, from whom, and what they record of the client."""

    mode: Mode = "queue"
    max_batch: int = 500
    max_body_bytes: int = 128 * 1024  # twice the tracker's largest request (60 KiB)
    max_depth: int = 20
    metrics_allowed: tuple[Network, ...] = ()
    client_ip: IpMode = "full"
    # The experiments this server takes events for (empty: any), each with its write token or "".
    experiments: Mapping[str, str] = field(default_factory=dict, repr=False)
    retry_after_seconds: int = 5
    allowed_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestSettings:
        mode = env.get("UQCROWD_MODE", "queue").strip() or "queue"
        if mode not in ("queue", "direct"):
            raise ConfigError(f"UQCROWD_MODE={mode!r} must be 'queue' or 'direct'")
        ip_mode = env.get("UQCROWD_CLIENT_IP", "full").strip() or "full"
        if ip_mode not in ("full", "truncated", "none"):
            raise ConfigError(f"UQCROWD_CLIENT_IP={ip_mode!r} must be 'full', 'truncated' or 'none'")
        return cls(
            mode=mode,  # type: ignore[arg-type]
            client_ip=ip_mode,  # type: ignore[arg-type]
            experiments=_experiments(env.get("UQCROWD_EXPERIMENTS", "")),
            max_batch=_int(env, "UQCROWD_MAX_BATCH", cls.max_batch, 1),
            max_body_bytes=_int(env, "UQCROWD_MAX_BODY_BYTES", cls.max_body_bytes, 1),
            max_depth=_int(env, "UQCROWD_MAX_DEPTH", cls.max_depth, 2),
            metrics_allowed=_networks(env, "UQCROWD_METRICS_ALLOWED", "127.0.0.1,::1"),
            retry_after_seconds=_int(env, "UQCROWD_RETRY_AFTER_SECONDS", cls.retry_after_seconds, 1),
            allowed_origins=_list(env, "UQCROWD_ALLOWED_ORIGINS", "*"),
            trusted_proxies=_networks(env, "UQCROWD_TRUSTED_PROXIES", "127.0.0.1,::1"),
        )


@dataclass(frozen=True)
class IndexerSettings:
    """How the indexer batches, waits, claims and backs off."""

    batch_events: int = 2000
    batch_bytes: int = 5 * 1024 * 1024
    linger_ms: int = 200
    consumer: str = "indexer"  # its name in the consumer group (default: the host's name)
    claim_idle_ms: int = 60_000
    backoff_max_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IndexerSettings:
        return cls(
            batch_events=_int(env, "UQCROWD_INDEXER_BATCH_EVENTS", cls.batch_events, 1),
            batch_bytes=_int(env, "UQCROWD_INDEXER_BATCH_BYTES", cls.batch_bytes, 1),
            linger_ms=_int(env, "UQCROWD_INDEXER_LINGER_MS", cls.linger_ms, 0),
            consumer=env.get("UQCROWD_INDEXER_CONSUMER", "") or socket.gethostname(),
            claim_idle_ms=_int(env, "UQCROWD_INDEXER_CLAIM_IDLE_MS", cls.claim_idle_ms, 1),
            backoff_max_seconds=float(
                _int(env, "UQCROWD_INDEXER_BACKOFF_MAX_SECONDS", int(cls.backoff_max_seconds), 1)
            ),
        )


@dataclass(frozen=True)
class DashboardSettings:
    """The researchers' dashboard (its own process)."""

    users_file: str = ""  # name:password-hash lines
    port: int = 5100
    idle_seconds: int = 1800  # how long a session not yet complete stays "in progress" after its last event
    # Its health page: a backend's metrics (and the CA of an https one), the monitoring's state files.
    metrics_url: str = "http://127.0.0.1:5001/logger/metrics"
    metrics_ca_file: str = ""
    monitor_state_dir: str = "/var/lib/uqcrowd-monitor"
    # The backends whose readiness it shows (their base URLs; an https one verified with the metrics' CA).
    backends: tuple[str, ...] = ()
    # Repeat-participation screening (GET /logger/seen, served by the dashboard's process): the groups
    # of experiments a task page may ask about, and nothing else.
    seen_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DashboardSettings:
        return cls(
            users_file=env.get("UQCROWD_DASHBOARD_USERS_FILE", ""),
            port=_int(env, "UQCROWD_DASHBOARD_PORT", cls.port, 1),
            idle_seconds=_int(env, "UQCROWD_DASHBOARD_IDLE_SECONDS", cls.idle_seconds, 1),
            metrics_url=env.get("UQCROWD_DASHBOARD_METRICS_URL", cls.metrics_url),
            metrics_ca_file=env.get("UQCROWD_DASHBOARD_METRICS_CA_FILE", ""),
            monitor_state_dir=env.get("UQCROWD_DASHBOARD_MONITOR_STATE_DIR", cls.monitor_state_dir),
            backends=_list(env, "UQCROWD_DASHBOARD_BACKENDS", ""),
            seen_groups=_groups(env.get("UQCROWD_SEEN_GROUPS", "")),
        )


@dataclass(frozen=True)
class Settings:
    """Everything the service's processes read, by part; defaults work on one host."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    es: ElasticsearchSettings = field(default_factory=ElasticsearchSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    indexer: IndexerSettings = field(default_factory=IndexerSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    toolkit: ToolkitSettings = field(default_factory=ToolkitSettings)

    def changed(self, **groups: Mapping[str, Any]) -> Settings:
        """These settings with some changed, by group: `settings.changed(es={"url": ...})`."""
        return replace(self, **{name: replace(getattr(self, name), **values) for name, values in groups.items()})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis=RedisSettings.from_env(env),
            es=ElasticsearchSettings.from_env(env),
            queue=QueueSettings.from_env(env),
            server=ServerSettings.from_env(env),
            ingest=IngestSettings.from_env(env),
            indexer=IndexerSettings.from_env(env),
            dashboard=DashboardSettings.from_env(env),
            toolkit=ToolkitSettings.from_env(env),
        )
