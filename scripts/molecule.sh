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

# Each role's scenario has its own container: MOLECULE_JOBS of them (default 2) run side by side, each
# one's output printed whole when it ends. The whole-stack scenarios then run one at a time.
jobs="${MOLECULE_JOBS:-2}" results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

scenario() {  # project name: run it, its output in $results, its summary line appended
  local project="$1" name="$2" start=$SECONDS result=passed
  local log="$results/${project//\//_}-$name.log"
  if [ "$project" = . ]; then  # alone: its output as it goes
    echo "=== molecule test -s $name  ($project)"
    (cd "$project" && molecule test -s "$name") 2>&1 | tee "$log" || result=FAILED
    podman volume ls -q --filter name=uqcrowd- | xargs -r podman volume rm -f >/dev/null  # snapshot storage
  else
    (cd "$project" && molecule test -s "$name") >"$log" 2>&1 || result=FAILED
    echo "=== molecule test -s $name  ($project): $result"
    cat "$log"
  fi
  printf '%-28s %-12s %4ds  %s\n' "$project" "$name" $((SECONDS - start)) "$result" >>"$results/summary"
}

for run in "${runs[@]}"; do
  project="${run%%:*}" name="${run##*:}"
  if [ "$project" = . ]; then
    wait  # the roles' scenarios first
    scenario "$project" "$name"
  else
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    scenario "$project" "$name" &
  fi
done
wait
printf '\n%s\n' "Molecule summary:"
cat "$results/summary"
! grep -q ' FAILED$' "$results/summary"
