#!/usr/bin/env bash
# Run Molecule scenarios: each role's own (roles/<role>/molecule/*) then the whole stack (molecule/*).
#   scripts/molecule.sh [ROLE] [SCENARIO]    ROLE: a role's name, or "stack" for the whole-stack scenarios
#   e.g. scripts/molecule.sh redis    scripts/molecule.sh stack default    scripts/molecule.sh "" default
# Prints each scenario's duration and result; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
role="${1:-}" scenario="${2:-}"
export UQCROWD_ES_ARCHIVE="${UQCROWD_ES_ARCHIVE:-$(scripts/fetch-elasticsearch.sh)}"
# The release before: the multihost scenario's cluster starts on it and is rolled to the current one.
export UQCROWD_ES_ARCHIVE_PREVIOUS="${UQCROWD_ES_ARCHIVE_PREVIOUS:-$(ES_VERSION=8.18.0 scripts/fetch-elasticsearch.sh)}"
export UQCROWD_WHEELHOUSE="${UQCROWD_WHEELHOUSE:-$(scripts/build-wheelhouse.sh)}"
export MOLECULE_NO_LOG=false PY_COLORS=0 ANSIBLE_FORCE_COLOR=0

runs=()
for dir in roles/*/molecule/*/ molecule/*/; do
  [ -f "$dir/molecule.yml" ] || continue
  name="$(basename "$dir")"
  case "$dir" in molecule/*) project=. ;; *) project="${dir%%/molecule/*}" ;; esac
  owner="${project#roles/}"; [ "$project" = . ] && owner=stack
  if [ -n "$role" ] && [ "$owner" != "$role" ]; then continue; fi
  if [ -n "$scenario" ] && [ "$name" != "$scenario" ]; then continue; fi
  runs+=("$project:$name")
done
[ ${#runs[@]} -gt 0 ] || { echo "no scenario matches ROLE='$role' SCENARIO='$scenario'" >&2; exit 2; }

# One scenario: its output (prefixed with its name when it runs beside another), then a summary line in $2.
run_scenario() {
  local project="${1%%:*}" name="${1##*:}" line="$2" prefix="${3:-}" start=$SECONDS result=passed
  echo "=== molecule test -s $name  ($project)"
  if [ -n "$prefix" ]; then
    (cd "$project" && molecule test -s "$name") 2>&1 | sed -u "s/^/[$prefix] /"
    [ "${PIPESTATUS[0]}" -eq 0 ] || result=FAILED
  else
    (cd "$project" && molecule test -s "$name") || result=FAILED
  fi
  printf '%-28s %-12s %4ds  %s\n' "$project" "$name" $((SECONDS - start)) "$result" > "$line"
}

# The roles' scenarios one at a time (two at a time gained nothing on two vCPUs: they are CPU-bound); the
# whole-stack ones side by side (different containers and networks; much of their time is spent waiting
# on services: a fault held for a minute, a reboot, a node's restart in a rolling upgrade).
lines="$(mktemp -d)" stack=() n=0
for run in "${runs[@]}"; do
  case "$run" in .:*) stack+=("$run"); continue ;; esac
  n=$((n + 1)); run_scenario "$run" "$lines/$(printf '%02d' $n)"
done
for run in "${stack[@]}"; do
  name="${run##*:}"
  if [ ${#stack[@]} -gt 1 ]; then run_scenario "$run" "$lines/zz-$name" "$name" & else run_scenario "$run" "$lines/zz-$name"; fi
done
wait
if [ ${#stack[@]} -gt 0 ]; then  # the multihost scenario's snapshot storage (rm -f also removes its users)
  podman volume ls -q --filter name=uqcrowd- | xargs -r podman volume rm -f >/dev/null
fi
printf '\n%s\n' "Molecule summary:"
cat "$lines"/*
! grep -q FAILED "$lines"/*
