#!/usr/bin/env bash
# The last step of `make test`: the whole pytest suite, in two runs, with the slowest cold
# set-up step hidden behind the tiers that do not need it.
#
#   1. tools/build-k8s.sh (the local cluster's binaries: about 30 CPU-minutes on a cold
#      cache, a no-op when cached) starts in the background at nice 19;
#   2. meanwhile the unit and integration tiers run (pytest -m "not e2e"): they need no
#      Kubernetes binary but helm, which `make test` built first, and at nice 0 they get the
#      CPU first whenever they want it;
#   3. once the build is done, the e2e tier runs (pytest -m e2e).
#
# Both runs always happen; the exit status is non-zero if the build or either run failed.
# pytest's "no tests collected" (5) is not a failure: PYTEST_ARGS may select one tier only.
#
#   SURGE_VENV=.venv PYTEST_ARGS="..." tools/run-suite.sh
set -uo pipefail

cd "$(dirname "$0")/.."
venv="${SURGE_VENV:-.venv}"
read -r -a args <<< "${PYTEST_ARGS:-}"

log() { printf '[run-suite %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

build_log="$(mktemp -t surge-build-k8s.XXXXXX.log)"
build_started=$(date +%s)
nice -n 19 tools/build-k8s.sh > "$build_log" 2>&1 &
build_pid=$!
log "building the local cluster's binaries in the background (pid $build_pid, log $build_log)"

pytest_run() { # pytest_run LABEL MARKER
  SURGE_REQUIRE_E2E=1 "$venv/bin/pytest" --durations=30 -m "$2" "${args[@]}"
  local rc=$?
  if (( rc == 5 )); then
    log "$1: no test selected"
    rc=0
  fi
  return "$rc"
}

status=0
pytest_run "unit and integration tiers" "not e2e" || status=1

waited_from=$(date +%s)
if wait "$build_pid"; then
  log "local cluster binaries ready $(( $(date +%s) - build_started )) s after the start;" \
    "the e2e tier waited $(( $(date +%s) - waited_from )) s for them"
  grep -E 'built in|all cached|done in' "$build_log" >&2
else
  log "tools/build-k8s.sh failed; its log:"
  cat "$build_log" >&2
  exit 1
fi
rm -f "$build_log"

pytest_run "e2e tier" "e2e" || status=1
exit "$status"
