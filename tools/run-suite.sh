#!/usr/bin/env bash
# `make test` as one pipeline: the set-up, then the whole pytest suite in two runs, with the
# slowest cold step (the local cluster's binaries: about 30 CPU-minutes on a cold cache, a
# no-op when cached) hidden behind everything that does not need it.
#
#   1. helm and the chart tools (the unit tier runs them; they share build-k8s.sh's lock);
#   2. tools/build-k8s.sh starts in the background at nice 19;
#   3. meanwhile the rest of the set-up (venv, apt packages, images, Go tools, lint,
#      typecheck: much of it waits on the network) and then the unit and integration tiers
#      (pytest -m "not e2e"), which need no other Kubernetes binary; at nice 0 they get
#      the CPU first whenever they want it;
#   4. once the build is done, the e2e tier (pytest -m e2e).
#
# A failed set-up step stops everything. Otherwise both pytest runs happen, and the exit
# status is non-zero if the build or either run failed. pytest's "no tests collected" (5)
# is not a failure: PYTEST_ARGS may select one tier only.
#
#   MAKE=make SURGE_VENV=.venv PYTEST_ARGS="..." tools/run-suite.sh
set -uo pipefail

cd "$(dirname "$0")/.."
make_="${MAKE:-make}"
venv="${SURGE_VENV:-.venv}"
read -r -a args <<< "${PYTEST_ARGS:-}"

log() { printf '[run-suite %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

started=$(date +%s)
"$make_" --no-print-directory chart-tools || exit 1

build_log="$(mktemp -t surge-build-k8s.XXXXXX.log)"
# Its own session, so a failed set-up can stop the build with every go process under it.
setsid nice -n 19 tools/build-k8s.sh > "$build_log" 2>&1 &
build_pid=$!
log "building the local cluster's binaries in the background (pid $build_pid, log $build_log)"

if ! "$make_" --no-print-directory venv prometheus fuse node-deps images actionlint s3-server \
  natscli lint typecheck; then
  kill -- "-$build_pid" 2>/dev/null
  exit 1
fi
log "set-up done $(( $(date +%s) - started )) s after the start"

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
  log "local cluster binaries ready $(( $(date +%s) - started )) s after the start;" \
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
