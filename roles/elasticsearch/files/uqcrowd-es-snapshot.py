#!/usr/bin/python3
"""Daily snapshot of the event and session indices, and deletion of those past the retention.

    uqcrowd-es-snapshot [--config /etc/elasticsearch/snapshot.json]

Installed by the elasticsearch role on the first cluster host and run by its cron job; the settings
(API address, repository, indices, retention) are in the JSON file, the elastic password in the
role's root-only password file. Prints one line per action; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta


def call(config: dict, method: str, path: str, body: dict | None = None) -> dict:
    with open(config["password_file"]) as handle:
        password = handle.read().strip()
    request = urllib.request.Request(
        config["api"] + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    if config.get("username"):
        token = base64.b64encode(f"{config['username']}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=config["ca_file"]) if config.get("ca_file") else None  # HTTP TLS
    with urllib.request.urlopen(request, timeout=config.get("timeout", 3600), context=context) as response:
        return json.loads(response.read() or b"{}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/elasticsearch/snapshot.json")
    with open(parser.parse_args().config) as handle:
        config = json.load(handle)
    now = datetime.now(UTC)
    repo = f"/_snapshot/{config['repository']}"
    name = f"{config['prefix']}-{now:%Y.%m.%d-%H%M%S}"
    try:
        taken = call(
            config,
            "PUT",
            f"{repo}/{name}?wait_for_completion=true",
            {"indices": config["indices"], "include_global_state": False, "ignore_unavailable": True},
        )["snapshot"]
        if taken["state"] != "SUCCESS":
            print(f"snapshot {name}: {taken['state']} ({taken.get('failures')})", file=sys.stderr)
            return 1
        print(f"snapshot {name}: {len(taken['indices'])} indices, {taken['shards']['successful']} shards")
        oldest = now - timedelta(days=config["retention_days"])
        for snapshot in call(config, "GET", f"{repo}/{config['prefix']}-*")["snapshots"]:
            started = datetime.fromtimestamp(snapshot["start_time_in_millis"] / 1000, UTC)
            if started < oldest:
                call(config, "DELETE", f"{repo}/{snapshot['snapshot']}")
                kept = config["retention_days"]
                print(f"deleted snapshot {snapshot['snapshot']} of {started:%Y-%m-%d} (kept {kept} days)")
    except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
        detail = error.read().decode()[:300] if isinstance(error, urllib.error.HTTPError) else str(error)
        print(f"snapshot {name} failed: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
