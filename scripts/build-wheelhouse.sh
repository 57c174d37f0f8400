#!/usr/bin/env bash
# Download the logger service's pinned wheels once (files/requirements*.txt), for hosts that install
# without reaching PyPI: the Molecule containers, the demo, air-gapped servers (logger_wheelhouse_src).
# Prints the wheelhouse directory.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${UQCROWD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uqcrowd-log}"
dir="$CACHE/wheels"
stamp="$dir/.requirements.sha256"
# For each Python the supported releases run the service on: 3.11 (Debian 12), 3.13 (Debian 13).
PYTHONS="3.11 3.13"
want="$( (cat files/requirements.txt files/requirements-parquet.txt; echo "$PYTHONS") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  for python in $PYTHONS; do
    python3 -m pip download -q --only-binary=:all: --python-version "$python" --platform manylinux2014_x86_64 \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64 \
      -r files/requirements.txt -r files/requirements-parquet.txt -d "$dir" >&2
  done
  echo "$want" > "$stamp"
fi
echo "$dir"
