#!/usr/bin/env python3
"""Post the message read from stdin to a Slack incoming webhook (the original's notifier, same path).

    echo "[WARNING] Elasticsearch Problem!" | /opt/tools/send-slack-message.py

The webhook URL, channel, username and icon come from a root-only JSON file (never from the command
line); it is /etc/uqcrowd-monitor/slack.json unless SLACK_CONFIG names another. Each try has a timeout;
a few tries with backoff; on failure one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

CONFIG = os.environ.get("SLACK_CONFIG", "/etc/uqcrowd-monitor/slack.json")
TRIES = 3
TIMEOUT_SECONDS = 5


def main() -> int:
    message = sys.stdin.read().strip()
    if not message:
        print("send-slack-message: nothing to send (empty stdin)", file=sys.stderr)
        return 2
    try:
        with open(CONFIG) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"send-slack-message: cannot read {CONFIG}: {exc}", file=sys.stderr)
        return 1
    payload = {"text": message}
    for key in ("channel", "username", "icon_emoji"):
        if config.get(key):
            payload[key] = config[key]
    body = json.dumps(payload).encode()
    error = ""
    for attempt in range(TRIES):
        request = urllib.request.Request(config["url"], data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                if 200 <= response.status < 300:
                    return 0
                error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # a refusal (bad URL or token) does not get better with retries
        except (OSError, ValueError) as exc:
            error = type(exc).__name__ + (f": {exc.reason}" if isinstance(exc, urllib.error.URLError) else "")
        if attempt < TRIES - 1:
            time.sleep(2**attempt)
    # The URL holds the webhook's secret token: never print it.
    print(f"send-slack-message: not delivered after {TRIES} tries: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
