#!/usr/bin/env bash
# The whole stack in one local Debian 12 container with systemd (uqcrowd-log-demo), deployed by
# site.yml with inventory/demo, HAProxy published on 127.0.0.1:8080.
#   scripts/demo.sh up     create (or reuse) the container, converge, send one event, show it stored
#   scripts/demo.sh down   remove the container
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=uqcrowd-log-demo
IMAGE="${IMAGE:-localhost/debian12-systemd:latest}"
PORT="${DEMO_PORT:-8080}"

down() { podman rm -f -t 10 "$NAME" >/dev/null 2>&1 || true; echo "demo container removed"; }

up() {
  export UQCROWD_ES_ARCHIVE UQCROWD_WHEELHOUSE UQCROWD_DASHBOARD_LOGIN
  UQCROWD_ES_ARCHIVE="$(scripts/fetch-elasticsearch.sh)"
  UQCROWD_WHEELHOUSE="$(scripts/build-wheelhouse.sh)"
  UQCROWD_DASHBOARD_LOGIN="$(scripts/dashboard-login.sh)"
  if ! podman container exists "$NAME"; then
    # A 4 GB server: the memory budget (docs/operators/sizing.md#memory-budget) sizes Elasticsearch's heap and Redis to it.
    podman run -d --name "$NAME" --hostname "$NAME" --privileged --systemd=always --memory 4g \
      -p "127.0.0.1:$PORT:80" "$IMAGE" /sbin/init >/dev/null
  fi
  podman start "$NAME" >/dev/null
  for _ in $(seq 1 30); do
    state="$(podman exec "$NAME" systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break;; esac; sleep 1
  done

  ansible-playbook -i inventory/demo/hosts.yml site.yml

  session="demo-$(date +%s)"
  event="{\"log_type\":\"message\",\"session_id\":\"$session\",\"sequence_number\":0,\"content\":{\"message\":\"hello from make demo\"}}"
  echo
  echo "POST http://127.0.0.1:$PORT/logger/insert  $event"
  python3 - "$PORT" "$event" <<'PY'
import sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/logger/insert", data=sys.argv[2].encode(),
                                 headers={"Content-Type": "text/plain"})
with urllib.request.urlopen(request, timeout=10) as response:
    print(response.status, response.read().decode())
PY
  echo "Searching Elasticsearch (inside the container) for session_id=$session ..."
  podman exec -i "$NAME" python3 - "$session" <<'PY'
import base64, datetime, json, sys, time, urllib.request
password = open("/etc/elasticsearch/elastic-password").read().strip()
auth = "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()
index = f"uqcrowd-log-{datetime.datetime.now(datetime.UTC):%Y-%m-%d}"
query = json.dumps({"query": {"term": {"session_id": sys.argv[1]}}}).encode()
for _ in range(30):
    request = urllib.request.Request(f"http://127.0.0.1:9200/{index}/_search", data=query,
                                     headers={"Content-Type": "application/json", "Authorization": auth})
    try:
        hits = json.load(urllib.request.urlopen(request, timeout=10))["hits"]["hits"]
    except OSError:
        hits = []
    if hits:
        print(f"found in index {hits[0]['_index']} (id {hits[0]['_id']}):")
        print(json.dumps(hits[0]["_source"], indent=2))
        break
    time.sleep(1)
else:
    sys.exit("event not found in Elasticsearch after 30 s")
PY
  echo
  echo "The stack answers on http://127.0.0.1:$PORT/logger/ (tracker: /logger/logger.js)."
  echo "The dashboard: http://127.0.0.1:$PORT/dashboard/ (user researcher, password in $UQCROWD_DASHBOARD_LOGIN/researcher.password;"
  echo "plain HTTP on this machine only: a server with a certificate serves it over HTTPS only). Remove it with: make demo-down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
