#!/usr/bin/env python3
"""UQCrowd-Log service entry point.

    python logger.py 5001      one HTTP backend on port 5001 (the original's usage)
    python logger.py indexer   the worker that moves queued events into Elasticsearch
    python logger.py dashboard the researchers' dashboard (UQCROWD_DASHBOARD_PORT)

Configuration comes from UQCROWD_* environment variables (see the README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uqcrowd_log.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", help="a TCP port for an HTTP backend, 'indexer' or 'dashboard'")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        parser.exit(2, f"configuration error: {exc}\n")
    if args.what == "indexer":
        from uqcrowd_log.indexer import main as run_indexer

        return run_indexer(settings)
    from uqcrowd_log.server import serve

    if args.what == "dashboard":
        serve(settings.dashboard_port, settings, "uqcrowd_log.server:serving_dashboard")
        return 0
    if not args.what.isdigit() or not 0 < int(args.what) < 65536:
        parser.error(f"{args.what!r} is neither a port (1-65535) nor 'indexer' nor 'dashboard'")

    serve(int(args.what), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
