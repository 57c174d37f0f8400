"""The service's processes: `uqcrowd-logger PORT|indexer|dashboard` (or `python -m uqcrowd_log ...`).

    uqcrowd-logger 5001       one HTTP backend on port 5001 (the original's `python logger.py 5001`)
    uqcrowd-logger indexer    the worker that moves queued events into Elasticsearch
    uqcrowd-logger dashboard  the researchers' dashboard (UQCROWD_DASHBOARD_PORT)

Configuration comes from UQCROWD_* environment variables (uqcrowd_log.config).
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="uqcrowd-logger", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", help="a TCP port for an HTTP backend, 'indexer' or 'dashboard'")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        parser.exit(2, f"configuration error: {exc}\n")
    if args.what == "indexer":
        from .indexer import main as run_indexer

        return run_indexer(settings)
    from .server import serve

    if args.what == "dashboard":
        serve(settings.dashboard.port, settings, "uqcrowd_log.server:serving_dashboard")
        return 0
    if not args.what.isdigit() or not 0 < int(args.what) < 65536:
        parser.error(f"{args.what!r} is neither a port (1-65535) nor 'indexer' nor 'dashboard'")
    serve(int(args.what), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
