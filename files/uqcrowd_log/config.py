"""Service configuration, read once from UQCROWD_* environment variables: one group of settings per
part (Redis, Elasticsearch, the queue's bounds, the HTTP server, ingest, the indexer, the dashboard, the
command line), each read by its own `from_env`; this module is the only reader. Each setting's field
names its variable and says what it does (`setting`): docs/reference/settings.md is generated from them
(`make docs`)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, replace
from typing import Any, Literal, get_args

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Mode = Literal["queue", "direct"]
IpMode = Literal["full", "truncated", "none"]
WithoutReplica = Literal["refuse", "accept"]


class ConfigError(ValueError):
    """A UQCROWD_* variable has a value the service cannot use."""


def setting(env: str, doc: str, default: Any = MISSING, *, factory: Any = MISSING, secret: bool = False) -> Any:
    """A field read from the environment variable `env`, described by `doc` (one sentence or two)."""
    return field(default=default, default_factory=factory, repr=not secret, metadata={"env": env, "doc": doc})


def _choice(env: Mapping[str, str], name: str, choices: Any, default: str) -> Any:
    """One of the values of the Literal type `choices` (`default` when unset)."""
    value = env.get(name, "").strip() or default
    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(allowed)}")
    return value


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


def _addresses(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """ "10.0.0.1:26379,[fd00::1]:26379" -> (("10.0.0.1", 26379), ("fd00::1", 26379))."""
    addresses = []
    for item in _list(env, name, ""):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name}: {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


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

    users: Mapping[str, tuple[str, str]] = setting(
        "UQCROWD_TOOLKIT_<KIND>_USERNAME, UQCROWD_TOOLKIT_<KIND>_PASSWORD",
        "The Elasticsearch user of each kind of command (KIND: READER, CURATOR, WITHDRAWER, RETENTION, WRITER);"
        " a kind without a username uses the connection's own (`UQCROWD_ES_USERNAME`).",
        factory=dict,
        secret=True,
    )
    session_index_prefix: str = setting(
        "UQCROWD_SESSION_INDEX_PREFIX",
        "Prefix of the indices `uqcrowd-log sessions --store` writes and the dashboard's experiment page reads.",
        "uqcrowd-session",
    )
    audit_log: str = setting(
        "UQCROWD_AUDIT_LOG",
        "The file every withdrawal and retention run is recorded in (who, when, what).",
        "/var/log/uqcrowd-log/withdrawals.log",
    )
    flags: Mapping[str, tuple[str, ...]] = setting(
        "UQCROWD_FLAGS",
        'The flags researchers set on sessions, as JSON: experiment (or `"*"`) -> rules such as `"paste_share > 0.5"`.',
        factory=dict,
    )

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

    url: str = setting(
        "UQCROWD_REDIS_URL",
        "The queue's Redis: `redis://` or `rediss://` (TLS), with its user and password.",
        "redis://127.0.0.1:6379/0",
        secret=True,
    )
    prefix: str = setting(
        "UQCROWD_REDIS_PREFIX",
        "Prefix of every Redis key of this installation: `<prefix>:events` (the stream), `:queued-bytes`,"
        " `:queued-events`, `:stats`, `:dead-letter`, `:quarantine`, `:indexer-faults`, `:withdrawn`.",
        "uqcrowd-log",
    )
    ca_file: str = setting(
        "UQCROWD_REDIS_CA_FILE", "The CA a `rediss://` Redis is verified with (else the system's).", ""
    )
    sentinels: tuple[tuple[str, int], ...] = setting(
        "UQCROWD_REDIS_SENTINELS",
        "Redis Sentinels, `host:port,host:port,...`: the service writes to the primary they name (with the"
        " URL's scheme, user and password; its host and port are then unused) and follows a promotion."
        " Empty: the URL's Redis.",
        (),
    )
    service: str = setting("UQCROWD_REDIS_SERVICE", "The primary's name in the Sentinels' configuration.", "uqcrowd")
    sentinel_password: str = setting(
        "UQCROWD_REDIS_SENTINEL_PASSWORD", "The Sentinels' password (their `requirepass`), if any.", "", secret=True
    )
    replicas: int = setting(
        "UQCROWD_REDIS_REPLICAS",
        "An insert is answered 202 only once this many replicas hold it too (Redis's `WAIT`); 0: once the"
        " primary has it.",
        0,
    )
    replica_wait_ms: int = setting(
        "UQCROWD_REDIS_REPLICA_WAIT_MS", "How long an insert waits for its replicas, in milliseconds.", 1000
    )
    without_replica: WithoutReplica = setting(
        "UQCROWD_REDIS_WITHOUT_REPLICA",
        "When fewer replicas than `UQCROWD_REDIS_REPLICAS` acknowledge an insert in time: `refuse` answers"
        " 503 (the page keeps its events and sends them again; the primary's copy and the new one are one"
        " document each, by their ids), `accept` answers 202 on the primary's copy alone and counts it"
        " (`uqcrowd_inserts_unreplicated_total`).",
        "refuse",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        return cls(
            url=env.get("UQCROWD_REDIS_URL", cls.url),
            prefix=env.get("UQCROWD_REDIS_PREFIX", cls.prefix),
            ca_file=env.get("UQCROWD_REDIS_CA_FILE", ""),
            sentinels=_addresses(env, "UQCROWD_REDIS_SENTINELS"),
            service=env.get("UQCROWD_REDIS_SERVICE", "") or cls.service,
            sentinel_password=env.get("UQCROWD_REDIS_SENTINEL_PASSWORD", ""),
            replicas=_int(env, "UQCROWD_REDIS_REPLICAS", cls.replicas),
            replica_wait_ms=_int(env, "UQCROWD_REDIS_REPLICA_WAIT_MS", cls.replica_wait_ms, minimum=1),
            without_replica=_choice(env, "UQCROWD_REDIS_WITHOUT_REPLICA", WithoutReplica, cls.without_replica),
        )


@dataclass(frozen=True)
class ElasticsearchSettings:
    """Elasticsearch and the events' daily indices (every process)."""

    url: str = setting(
        "UQCROWD_ES_URL", "Elasticsearch's URL, or several separated by commas (a cluster).", "http://127.0.0.1:9200"
    )
    username: str = setting("UQCROWD_ES_USERNAME", "Elasticsearch user (basic authentication).", "")
    password: str = setting("UQCROWD_ES_PASSWORD", "Its password.", "", secret=True)
    api_key: str = setting("UQCROWD_ES_API_KEY", "An API key, instead of a user and password.", "", secret=True)
    ca_file: str = setting("UQCROWD_ES_CA_FILE", "The CA an `https://` Elasticsearch is verified with.", "")
    index_prefix: str = setting(
        "UQCROWD_INDEX_PREFIX", "Prefix of the events' daily indices (`<prefix>-YYYY-MM-DD`).", "uqcrowd-log"
    )

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

    high_water_bytes: int = setting(
        "UQCROWD_QUEUE_HIGH_WATER_BYTES",
        "Queued bytes beyond which the backends refuse new events (503 with Retry-After) until the indexer catches up.",
        256 * 1024 * 1024,
    )
    dead_letter_max: int = setting(
        "UQCROWD_DEAD_LETTER_MAX", "Events Elasticsearch refused that the dead-letter list keeps at most.", 100_000
    )
    quarantine_max: int = setting(
        "UQCROWD_QUARANTINE_MAX", "Unreadable requests the quarantine list keeps at most.", 10_000
    )
    dead_letter_max_bytes: int = setting(
        "UQCROWD_DEAD_LETTER_MAX_BYTES",
        "Bytes the dead-letter list keeps at most, its oldest dropped beyond (default: an eighth of the"
        " high-water mark).",
        32 * 1024 * 1024,
    )
    quarantine_max_bytes: int = setting(
        "UQCROWD_QUARANTINE_MAX_BYTES",
        "Bytes the quarantine list keeps at most (default: an eighth of the high-water mark).",
        32 * 1024 * 1024,
    )

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

    bind_host: str = setting("UQCROWD_BIND", "The address a backend or the dashboard listens on.", "127.0.0.1")
    tls_cert_file: str = setting(
        "UQCROWD_TLS_CERT", "A PEM certificate to serve HTTPS with (HAProxy on another host verifies it).", ""
    )
    tls_key_file: str = setting("UQCROWD_TLS_KEY", "Its key (set both or neither).", "")
    threads: int = setting("UQCROWD_THREADS", "Requests a backend serves at once.", 8)

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

    mode: Mode = setting(
        "UQCROWD_MODE",
        "`queue` (a 202 once Redis has the events; the indexer stores them) or `direct` (each request indexed"
        " before its answer, no Redis).",
        "queue",
    )
    max_batch: int = setting("UQCROWD_MAX_BATCH", "Events one request may carry (more: 413).", 500)
    max_body_bytes: int = setting(
        "UQCROWD_MAX_BODY_BYTES",
        "Bytes one request may carry (more: 413): twice the tracker's largest request (60 KiB). Must agree with"
        " HAProxy's (`uqcrowd_max_body_bytes`).",
        128 * 1024,
    )
    max_depth: int = setting("UQCROWD_MAX_DEPTH", "Nesting an event's JSON may have (deeper: 400).", 20)
    metrics_allowed: tuple[Network, ...] = setting(
        "UQCROWD_METRICS_ALLOWED", "Networks that may read `/logger/metrics` (others: 403).", ()
    )
    client_ip: IpMode = setting(
        "UQCROWD_CLIENT_IP",
        "What is stored of the client's address: `full`, `truncated` (/24, /48) or `none`.",
        "full",
    )
    experiments: Mapping[str, str] = setting(
        "UQCROWD_EXPERIMENTS",
        "The experiments this server takes events for (empty: any), each with its write token:"
        " `exp-1,exp-2=token`. Other events get 403 (counted, not kept); a token comes as `?token=`.",
        factory=dict,
        secret=True,
    )
    retry_after_seconds: int = setting(
        "UQCROWD_RETRY_AFTER_SECONDS", "The `Retry-After` of a 503 (the queue full, Redis unreachable).", 5
    )
    allowed_origins: tuple[str, ...] = setting(
        "UQCROWD_ALLOWED_ORIGINS",
        "Origins whose pages may post events, comma-separated (`*`: any): a POST from another gets 403, counted.",
        ("*",),
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "UQCROWD_TRUSTED_PROXIES",
        "Networks whose `X-Forwarded-For` is believed (HAProxy's); the client's address is taken from it.",
        (),
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestSettings:
        return cls(
            mode=_choice(env, "UQCROWD_MODE", Mode, cls.mode),
            client_ip=_choice(env, "UQCROWD_CLIENT_IP", IpMode, cls.client_ip),
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

    batch_events: int = setting("UQCROWD_INDEXER_BATCH_EVENTS", "Events one bulk request carries at most.", 2000)
    batch_bytes: int = setting(
        "UQCROWD_INDEXER_BATCH_BYTES", "Bytes one bulk request carries at most.", 5 * 1024 * 1024
    )
    linger_ms: int = setting(
        "UQCROWD_INDEXER_LINGER_MS", "How long the indexer waits to fill a batch before it sends it.", 200
    )
    consumer: str = setting(
        "UQCROWD_INDEXER_CONSUMER",
        "The indexer's name in the queue's consumer group (default: the host's name).",
        "indexer",
    )
    claim_idle_ms: int = setting(
        "UQCROWD_INDEXER_CLAIM_IDLE_MS",
        "How long another indexer's unconfirmed events wait before this one takes them over.",
        60_000,
    )
    backoff_max_seconds: float = setting(
        "UQCROWD_INDEXER_BACKOFF_MAX_SECONDS", "The longest wait between retries while Elasticsearch fails.", 30.0
    )

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

    users_file: str = setting(
        "UQCROWD_DASHBOARD_USERS_FILE", "Who may log in: `name:password-hash` lines (no file: no login).", ""
    )
    port: int = setting("UQCROWD_DASHBOARD_PORT", "The dashboard's port.", 5100)
    idle_seconds: int = setting(
        "UQCROWD_DASHBOARD_IDLE_SECONDS",
        'How long a session not yet complete stays "in progress" after its last event.',
        1800,
    )
    metrics_url: str = setting(
        "UQCROWD_DASHBOARD_METRICS_URL",
        "A backend's metrics, read for the health page.",
        "http://127.0.0.1:5001/logger/metrics",
    )
    metrics_ca_file: str = setting(
        "UQCROWD_DASHBOARD_METRICS_CA_FILE", "The CA an `https://` backend is verified with.", ""
    )
    monitor_state_dir: str = setting(
        "UQCROWD_DASHBOARD_MONITOR_STATE_DIR",
        "The monitoring's state files, read for the health page's open faults.",
        "/var/lib/uqcrowd-monitor",
    )
    backends: tuple[str, ...] = setting(
        "UQCROWD_DASHBOARD_BACKENDS",
        "The backends whose readiness the health page shows (base URLs, comma-separated).",
        (),
    )
    seen_groups: Mapping[str, tuple[str, ...]] = setting(
        "UQCROWD_SEEN_GROUPS",
        "Repeat-participation screening (`GET /logger/seen`): the groups of experiments a task page may ask"
        " about, `group-a=exp-1|exp-2,group-b=exp-3`; none: the endpoint answers 404.",
        factory=dict,
    )

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
