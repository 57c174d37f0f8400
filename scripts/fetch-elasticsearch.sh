#!/usr/bin/env bash
# Fetch the official Elasticsearch integ-test-zip (8.x, no x-pack, no bundled JDK) from Maven
# Central with `mvn dependency:copy`, once; later runs reuse the cached zip. Prints its path.
# The tests and the elasticsearch role's Molecule scenario (install_method: archive) use it.
set -euo pipefail
ES_VERSION="${ES_VERSION:-8.19.3}"
CACHE="${UQCROWD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uqcrowd-log}"
zip="$CACHE/elasticsearch-$ES_VERSION.zip"
if [ ! -s "$zip" ]; then
  mkdir -p "$CACHE"
  mvn -q -B dependency:copy \
    -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
    -DoutputDirectory="$CACHE" >&2
fi
echo "$zip"
