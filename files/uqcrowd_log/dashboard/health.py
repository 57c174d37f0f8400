"""The service's health as the researcher sees it: what a backend's metrics say (queue, indexing lag,
dead letters, quarantine, Redis, the indexer's faults) and the monitoring's open incidents (its state
files: the checks that alert the Slack channel)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# The gauges shown, in this order, with what they mean.
SHOWN = {
    "uqcrowd_redis_up": "Redis answering (1) or not (0)",
    "uqcrowd_redis_writable": "Redis taking writes (1) or refusing them: its disk full (0)",
    "uqcrowd_queue_depth": "events waiting for Elasticsearch",
    "uqcrowd_indexer_lag_seconds": "age of the oldest event not yet indexed (s)",
    "uqcrowd_dead_letter_depth": "events Elasticsearch refused (dead letters)",
    "uqcrowd_quarantine_depth": "invalid events kept aside (quarantine)",
    "uqcrowd_redis_replicas_in_sync": "Redis replicas in sync with the primary (with three Redis hosts)",
    "uqcrowd_redis_sentinels": "Sentinels answering (with three Redis hosts)",
}


@dataclass(frozen=True)
class Fault:
    check: str
    since: datetime
    seen: str


@dataclass
class Health:
    backends: dict[str, str] = field(default_factory=dict)  # URL -> "up" or why not
    gauges: dict[str, float] = field(default_factory=dict)
    indexer_faults: list[str] = field(default_factory=list)
    metrics_error: str = ""
    faults: list[Fault] = field(default_factory=list)
    redis_primary: str = ""  # with replicas: the Redis the Sentinels name the primary
    lb_holder: str = ""  # with lb hosts sharing an address: the one holding it, at the monitoring's last check


def parse_metrics(text: str) -> tuple[dict[str, float], list[str], str]:
    """The SHOWN gauges of a /logger/metrics text, the indexer's faults ("consumer: what"), and the
    Redis primary the Sentinels name ("" without replicas)."""
    gauges: dict[str, float] = {}
    faults: list[str] = []
    primary = ""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SHOWN:
                gauges[sample.name] = sample.value
            elif sample.name == "uqcrowd_indexer_fault" and sample.value:
                faults.append(f"{sample.labels.get('consumer', '?')}: {sample.labels.get('what', '?')}")
            elif sample.name == "uqcrowd_redis_primary":
                primary = sample.labels.get("address", "")
    return gauges, faults, primary


def open_faults(state_dir: Path) -> list[Fault]:
    """The monitoring's checks that are bad now (uqcrowd-check's STATE_DIR/<check>.json), oldest first."""
    faults = []
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if state.get("bad"):
            since = datetime.fromtimestamp(float(state.get("since", 0)), UTC)
            faults.append(Fault(path.stem, since, str(state.get("last", {}).get("seen", ""))))
    return sorted(faults, key=lambda fault: fault.since)


def lb_holder(state_dir: Path) -> str:
    """The lb host holding the shared address when the monitoring's load-balancers check last looked
    ("" without that check)."""
    try:
        return str(json.loads((state_dir / "load-balancers.json").read_text()).get("holder", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def probe(url: str, context: ssl.SSLContext | None) -> str:
    """A backend's state as HAProxy checks it: "up" when /logger/ready answers 200, else why not."""
    try:
        with urllib.request.urlopen(f"{url}/logger/ready", timeout=3, context=context) as answer:
            return "up" if answer.status == 200 else f"answered {answer.status}"
    except urllib.error.HTTPError as error:
        return f"answered {error.code}"
    except OSError as error:
        return f"down: {getattr(error, 'reason', error)}"


def read_health(metrics_url: str, ca_file: str, state_dir: Path, backends: tuple[str, ...] = ()) -> Health:
    health = Health(faults=open_faults(state_dir), lb_holder=lb_holder(state_dir))
    context = ssl.create_default_context(cafile=ca_file or None) if metrics_url.startswith("https:") else None
    with ThreadPoolExecutor(max_workers=8) as pool:  # a stopped one refuses at once, a hung one takes 3 s
        health.backends = dict(zip(backends, pool.map(lambda url: probe(url, context), backends), strict=True))
    try:
        with urllib.request.urlopen(metrics_url, timeout=5, context=context) as answer:
            health.gauges, health.indexer_faults, health.redis_primary = parse_metrics(answer.read().decode())
    except (OSError, ValueError) as error:
        health.metrics_error = f"{metrics_url}: {getattr(error, 'reason', error)}"
    return health
