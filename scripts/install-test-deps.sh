#!/usr/bin/env bash
# Install, idempotently, what the service tests and the benchmark run on this machine:
# Debian's redis-server, haproxy, wrk, tcpdump, chromium + chromedriver (and certutil: the CAs a test browser
# trusts), Java 17 and Maven (for the Elasticsearch test archive), fuse3 (the power-cut tests'
# filesystem), and the unprivileged user Elasticsearch runs as in the tests.
# A second run installs nothing and takes about a second.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root (apt and useradd)" >&2; exit 1; }

PKGS=(redis-server haproxy wrk tcpdump chromium chromium-driver libnss3-tools openjdk-17-jre-headless maven python3-venv fuse3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" \
    || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi
# Debian starts the packaged services where systemd runs; the tests start their own on free ports.
id uqcrowd-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin uqcrowd-test
echo "test dependencies present"
