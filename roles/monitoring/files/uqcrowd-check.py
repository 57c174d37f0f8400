#!/usr/bin/env python3
"""UQCrowd-Log health checks, run by cron; Slack hears once per incident.

    uqcrowd-check elasticsearch | logger | queue | dead-letters | indexer | disk | replication
                  | load-balancers  [...]

Each check keeps its state in STATE_DIR/<check>.json. A message goes out when a check turns bad,
as a reminder at most every REPEAT_MINUTES while it stays bad, and once when it recovers.
Settings come from the root-only /etc/uqcrowd-monitor/monitor.json (see roles/monitoring).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

CONFIG = Path(os.environ.get("UQCROWD_MONITOR_CONFIG", "/etc/uqcrowd-monitor/monitor.json"))
Result = tuple[bool, str]  # (healthy, what was seen)


def request(
    url: str, method: str = "GET", auth: tuple[str, str] | None = None, timeout: float = 10, cafile: str = ""
) -> tuple[int, str]:
    """(status, body) of one request; https verified against `cafile` if given, else the system's CAs."""
    req = urllib.request.Request(url, method=method)
    if auth and auth[0]:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        context = ssl.create_default_context(cafile=cafile or None) if url.startswith("https:") else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))  # status 0: nothing answered


def samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus exposition, read by Prometheus's own parser (the dashboard's too)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def metrics(config: dict) -> Callable[..., float]:
    """The service's metrics, read once: a function giving one sample (by name, and labels if any), or
    `default` when absent."""
    status, text = request(config["metrics_url"], cafile=config.get("metrics_ca_file", ""))
    if status != 200:
        raise ValueError(f"{config['metrics_url']} answered {status or 'nothing'}")
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples(text)}

    def sample(name: str, default: float | None = None, **labels: str) -> float:
        found = values.get((name, tuple(sorted(labels.items()))))
        if found is not None:
            return found
        if default is not None:
            return default
        raise ValueError(f"{name} missing from {config['metrics_url']}")

    return sample


def check_elasticsearch(config: dict, state: dict) -> Result:
    """Every node given (es_url: one URL, or a cluster's nodes separated by commas) answers, and the
    cluster is not red: a node down is an incident even while its replicas keep the cluster yellow."""
    urls = [url.strip() for url in config["es_url"].split(",") if url.strip()]
    problems, health = [], ""
    for url in urls:
        auth = (config["es_username"], config["es_password"])
        status, text = request(f"{url}/_cluster/health", auth=auth, cafile=config.get("es_ca_file", ""))
        if status == 0:
            problems.append(f"Elasticsearch unreachable at {url}: {text}")
        elif status != 200:
            problems.append(f"Elasticsearch answered HTTP {status} at {url}")
        else:
            health = json.loads(text)["status"]
    if health == "red":
        problems.append("Elasticsearch cluster health is red")
    if problems:
        return False, "; ".join(problems) + (f" (cluster health {health})" if health and health != "red" else "")
    return True, f"Elasticsearch cluster health is {health}" + (f", {len(urls)} nodes answer" if len(urls) > 1 else "")


def check_logger(config: dict, state: dict) -> Result:
    """Through HAProxy, as a browser reaches the service; when it is not ready, a backend says why
    (e.g. Redis refusing writes: its disk is full)."""
    insert, _ = request(f"{config['logger_url']}/insert", method="HEAD")
    ready, _ = request(f"{config['logger_url']}/ready")
    seen = f"HEAD /logger/insert -> {insert} (want 405), GET /logger/ready -> {ready} (want 200)"
    if ready != 200:
        ready = config["metrics_url"].removesuffix("/metrics") + "/ready"
        status, text = request(ready, cafile=config.get("metrics_ca_file", ""))
        try:
            seen += f"; a backend's /logger/ready: {status} {json.loads(text)['error']}"
        except (ValueError, KeyError, TypeError):
            seen += f"; a backend's /logger/ready: {status or 'no answer'}"
    return insert == 405 and ready == 200, seen


def redis_unavailable(metric: Callable[..., float]) -> bool:
    """Redis unreachable or refusing writes (its disk full, at its maxmemory): one incident, which the
    logger check reports with the reason (every backend is then not ready), not one alert per check."""
    return metric("uqcrowd_redis_up", 0.0) == 0 or metric("uqcrowd_redis_writable", 1.0) == 0


DEFERRED = "Redis is not taking writes: the logger check reports it"


def check_queue(config: dict, state: dict) -> Result:
    """The queue's depth, and the inserts answered 503 since the last check (the queue at its mark)."""
    metric = metrics(config)
    if metric("uqcrowd_redis_up", 0.0) == 0:
        return True, DEFERRED
    refused = sum(
        metric("uqcrowd_requests_rejected_total", 0.0, reason=reason) for reason in ("queue_full", "store_unavailable")
    )
    before = state.get("refused_503", refused)
    state["refused_503"] = refused  # those of Redis's own incident too: not counted again once it is over
    if redis_unavailable(metric):
        return True, DEFERRED
    depth = metric("uqcrowd_queue_depth")
    lag = metric("uqcrowd_indexer_lag_seconds")
    seen = (
        f"{depth:.0f} events queued (threshold {config['queue_threshold']}), the oldest for {lag:.0f} s "
        f"(threshold {config['lag_threshold']} s)"
    )
    if refused > before:
        seen += f"; {refused - before:.0f} requests answered 503 since the last check (queue full or Redis refusing)"
    return depth <= config["queue_threshold"] and lag <= config["lag_threshold"] and refused <= before, seen


def check_dead_letters(config: dict, state: dict) -> Result:
    metric = metrics(config)
    if redis_unavailable(metric):
        return True, DEFERRED
    count = metric("uqcrowd_dead_letter_depth")
    limit = metric("uqcrowd_dead_letter_limit")
    dropped = metric("uqcrowd_events_dead_letter_dropped_total", 0.0)
    before, dropped_before = state.get("dead_letters", count), state.get("dead_letters_dropped", dropped)
    state["dead_letters"], state["dead_letters_dropped"] = count, dropped
    return count <= before and dropped <= dropped_before and count < 0.8 * limit, (
        f"{count:.0f} events in the dead-letter list (was {before:.0f} at the last check; "
        f"its oldest are dropped beyond {limit:.0f}; {dropped - dropped_before:.0f} dropped since the last check)"
    )


def check_indexer(config: dict, state: dict) -> Result:
    active = subprocess.run(["systemctl", "is-active", config["indexer_unit"]], capture_output=True, text=True)
    seen = f"{config['indexer_unit']} is {active.stdout.strip() or 'unknown'}"
    status, text = request(config["metrics_url"], cafile=config.get("metrics_ca_file", ""))
    faults = [s.labels for s in samples(text) if s.name == "uqcrowd_indexer_fault" and s.value] if status == 200 else []
    if faults:
        return False, f"{seen}, but paused on {faults[0].get('consumer', '?')}: {faults[0].get('what', '?')}"
    return active.returncode == 0, seen


def check_disk(config: dict, state: dict) -> Result:
    """Free space on the disk of each data directory this host has (Elasticsearch's, Redis's)."""
    seen, ok = [], True
    for path in config["disk_paths"]:
        usage = shutil.disk_usage(path)
        free = 100 * usage.free / usage.total
        ok = ok and free >= config["disk_min_free_percent"]
        seen.append(f"{free:.1f}% free on {path}")
    return ok, f"{', '.join(seen)} (minimum {config['disk_min_free_percent']}%)"


def check_replication(config: dict, state: dict) -> Result:
    """With Redis replicas: the Sentinels answer, every replica is in sync, and the primary is the one of
    the last check. A failover is one alert, cleared by the next check once the replicas are back in sync."""
    status, text = request(config["metrics_url"], cafile=config.get("metrics_ca_file", ""))
    if status != 200:
        raise ValueError(f"{config['metrics_url']} answered {status or 'nothing'}")
    found = samples(text)
    value = {s.name: s.value for s in found if not s.labels}
    primary = next((s.labels["address"] for s in found if s.name == "uqcrowd_redis_primary"), "")
    sentinels, in_sync = value.get("uqcrowd_redis_sentinels", 0.0), value.get("uqcrowd_redis_replicas_in_sync", 0.0)
    wanted = config["redis_replicas"]
    before = state.get("primary") or primary
    state["primary"] = primary or before
    problems = []
    if not sentinels:
        problems.append("no Sentinel answers")
    if primary and primary != before:
        problems.append(f"failover: the primary is now {primary}, was {before}")
    if in_sync < wanted:
        problems.append(f"{in_sync:.0f} of {wanted} replicas in sync (a 202 waits for one)")
    seen = f"Redis primary {primary or '?'}, {in_sync:.0f} of {wanted} replicas in sync, {sentinels:.0f} Sentinels"
    return not problems, "; ".join([*problems, seen])


def answered_by(url: str) -> str:
    """The lb host whose HAProxy answered `url` (its X-UQCrowd-LB header, sent to this installation's
    own hosts only), "" if none said."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.headers.get("X-UQCrowd-LB", "")
    except urllib.error.HTTPError as exc:
        return exc.headers.get("X-UQCrowd-LB", "")
    except (urllib.error.URLError, OSError):
        return ""


def check_load_balancers(config: dict, state: dict) -> Result:
    """With lb hosts sharing an address: each one's HAProxy answers on its own address (any HTTP status:
    the logger check follows the backends), so that the address has a host to move to; and the address
    stays where it was at the last check. A move is one alert, cleared by the next check."""
    silent = [name for name, url in config["lb_urls"].items() if not request(url, timeout=5)[0]]
    holder = answered_by(f"{config['logger_url']}/health")  # through the shared address, as workers reach it
    before = state.get("holder") or holder
    state["holder"] = holder or before
    problems = []
    if holder and holder != before:
        problems.append(f"the shared address moved to {holder}, was on {before}")
    if silent:
        problems.append(f"no answer from HAProxy on {', '.join(silent)}: the shared address has no standby there")
    answering = [name for name in config["lb_urls"] if name not in silent]
    seen = f"the shared address on {holder or '?'}, HAProxy answering on {', '.join(answering) or 'none'}"
    return not problems, "; ".join([*problems, seen])


CHECKS: dict[str, Callable[[dict, dict], Result]] = {
    "elasticsearch": check_elasticsearch,
    "logger": check_logger,
    "queue": check_queue,
    "dead-letters": check_dead_letters,
    "indexer": check_indexer,
    "disk": check_disk,
    "replication": check_replication,
    "load-balancers": check_load_balancers,
}


def notify(config: dict, message: str) -> bool:
    sent = subprocess.run([config["notifier"]], input=message, text=True, capture_output=True, timeout=60)
    if sent.returncode != 0:
        print(f"uqcrowd-check: alert not sent: {sent.stderr.strip()}", file=sys.stderr)
    return sent.returncode == 0


def run(name: str, config: dict) -> int:
    state_dir = Path(config["state_dir"])
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{name}.json"
    with open(state_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two overlapping runs of one check would alert twice
        state = json.loads(path.read_text()) if path.exists() else {}
        try:
            healthy, seen = CHECKS[name](config, state)
        except (OSError, ValueError, KeyError) as exc:
            healthy, seen = False, f"check could not run: {type(exc).__name__}: {exc}"
        now, host = time.time(), socket.gethostname()
        if not healthy:
            if not state.get("bad"):
                state.update(bad=True, since=now, alerted=0)
            if now - state["alerted"] >= config["repeat_minutes"] * 60:
                kind = "[STILL FAILING]" if state["alerted"] else "[WARNING]"
                if notify(config, f"{kind} {host}: {name}: {seen}"):
                    state["alerted"] = now
        elif state.get("bad"):
            minutes = (now - state["since"]) / 60
            # An incident never announced (the alert failed) ends quietly; an announced one is taken back.
            if not state["alerted"] or notify(config, f"[RECOVERED] {host}: {name}: {seen} (after {minutes:.0f} min)"):
                state.update(bad=False, alerted=0)
        state["last"] = {"at": now, "healthy": healthy, "seen": seen}
        path.write_text(json.dumps(state))
    print(f"{name}: {'ok' if healthy else 'BAD'}: {seen}")
    return 0 if healthy else 1


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in CHECKS]
    if not argv or unknown:
        print(f"usage: uqcrowd-check {' | '.join(CHECKS)} ...  (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    config = json.loads(CONFIG.read_text())
    return max(run(name, config) for name in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
