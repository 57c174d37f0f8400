#!/usr/bin/env python3
"""The original's entry point, kept: `python logger.py 5001` runs one HTTP backend on port 5001,
`python logger.py indexer` the indexer, `python logger.py dashboard` the dashboard. The installed
package's command is `uqcrowd-logger` (uqcrowd_log/__main__.py); this file only hands over to it."""

import sys

from uqcrowd_log.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
