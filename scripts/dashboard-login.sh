#!/usr/bin/env bash
# The dashboard login of the demo and the whole-stack scenarios (inventory/demo): the user
# "researcher" with a random password, made once on this machine. Prints the directory that holds
# researcher.password (0600) and researcher.hash (werkzeug's, as `uqcrowd-log password-hash` prints).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${UQCROWD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uqcrowd-log}"
dir="$CACHE/dashboard-login"
if [ ! -s "$dir/researcher.hash" ]; then
  umask 077
  mkdir -p "$dir"
  python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$dir/researcher.password"
  .venv/bin/uqcrowd-log password-hash --stdin < "$dir/researcher.password" > "$dir/researcher.hash.tmp"
  mv "$dir/researcher.hash.tmp" "$dir/researcher.hash"
fi
echo "$dir"
