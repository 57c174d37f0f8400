#!/usr/bin/env bash
# Run Molecule scenarios: each role's own (roles/<role>/molecule/*) then the whole stack (molecule/*).
#   scripts/molecule.sh [ROLE] [SCENARIO]    ROLE: a role's name, or "stack" for the whole-stack scenarios
#   e.g. scripts/molecule.sh redis    scripts/molecule.sh stack default    scripts/molecule.sh "" default
# Prints each scenario's duration and result; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
role="${1:-}" scenario="${2:-}"
case "$role" in  # roles tested in another role's scenario (their converge applies them together)
  toolkit | dashboard) echo "roles/$role is tested in roles/logger's scenario" >&2; role=logger ;;
esac
export UQCROWD_ES_ARCHIVE="${UQCROWD_ES_ARCHIVE:-$(scripts/fetch-elasticsearch.sh)}"
# The release before: the multihost scenario's cluster starts on it and is rolled to the current one.
export UQCROWD_ES_ARCHIVE_PREVIOUS="${UQCROWD_ES_ARCHIVE_PREVIOUS:-$(ES_VERSION=8.18.0 scripts/fetch-elasticsearch.sh)}"
export UQCROWD_WHEELHOUSE="${UQCROWD_WHEELHOUSE:-$(scripts/build-wheelhouse.sh)}"
export UQCROWD_DASHBOARD_LOGIN="${UQCROWD_DASHBOARD_LOGIN:-$(scripts/dashboard-login.sh)}"
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

# One scenario at a time. Measured: two roles' scenarios side by side gained 15 % (455 s against 535 s,
# docs/contributing/tests.md), each one's faults timed under the other's load; the two whole-stack ones
# side by side took longer than one after the other (their converges start four Elasticsearch nodes at
# once: the single host's converge took 12 min instead of 3.4).
failed=0 summary=()
for run in "${runs[@]}"; do
  project="${run%%:*}" name="${run##*:}" start=$SECONDS
  echo "=== molecule test -s $name  ($project)"
  if (cd "$project" && molecule test -s "$name"); then result=passed; else result=FAILED; failed=1; fi
  if [ "$project" = . ]; then  # the multihost scenario's snapshot storage (rm -f also removes its users)
    podman volume ls -q --filter name=uqcrowd- | xargs -r podman volume rm -f >/dev/null
  fi
  summary+=("$(printf '%-28s %-12s %4ds  %s' "$project" "$name" $((SECONDS - start)) "$result")")
done
printf '\n%s\n' "Molecule summary:" "${summary[@]}"
exit $failed
