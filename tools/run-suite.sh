#!/usr/bin/env bash
# `make test` as one pipeline: the set-up, then the whole pytest suite in two runs. On a cold
# cache the set-up is mostly Go builds and downloads, so the independent parts run side by
# side instead of one after another:
#
#   1. in the background: helm and the chart tools (the unit tier runs them), then the local
#      cluster's binaries (tools/build-k8s.sh, about 30 CPU-minutes cold) at nice 19;
#   2. in the background: the Go tools the integration tier runs (actionlint, versitygw,
#      natscli);
#   3. in the foreground: the venv, Debian's packages (apt, one at a time), the images,
#      lint and typecheck;
#   4. once 2 and the chart tools are there: the unit and integration tiers
#      (pytest -m "not e2e"), which need no other Kubernetes binary; at nice 0 they get the
#      CPU first whenever they want it;
#   5. once the build is done, the e2e tier (pytest -m e2e).
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
work="$(mktemp -d -t surge-run-suite.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Each background job in its own session, so a failure can stop it with every go process
# under it.
setsid bash -c '"$1" --no-print-directory chart-tools || { touch "$2/charts.failed"; exit 1; }
  touch "$2/charts.ready"
  exec nice -n 19 tools/build-k8s.sh' _ "$make_" "$work" > "$work/build.log" 2>&1 &
build_pid=$!
setsid "$make_" --no-print-directory actionlint s3-server natscli > "$work/tools.log" 2>&1 &
tools_pid=$!
log "in the background: chart tools then the local cluster's binaries (pid $build_pid)," \
  "and the Go tools (pid $tools_pid)"

stop_jobs() { kill -- "-$build_pid" "-$tools_pid" 2>/dev/null; }
# Interrupted (Ctrl-C, a CI timeout): the jobs have their own sessions, so stop them here.
trap 'stop_jobs; exit 130' INT TERM

fail() { # fail MESSAGE LOG: print it, stop the background jobs, exit 1
  log "$1; its log:"
  cat "$2" >&2
  stop_jobs
  exit 1
}

if ! "$make_" --no-print-directory venv prometheus fuse node-deps images lint typecheck; then
  stop_jobs
  exit 1
fi
wait "$tools_pid" || fail "the Go tools failed to build" "$work/tools.log"
cat "$work/tools.log" >&2
until [[ -e "$work/charts.ready" ]]; do
  [[ -e "$work/charts.failed" ]] && fail "the chart tools failed to build" "$work/build.log"
  sleep 1
done
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
wait "$build_pid" || fail "tools/build-k8s.sh failed" "$work/build.log"
log "local cluster binaries ready $(( $(date +%s) - started )) s after the start;" \
  "the e2e tier waited $(( $(date +%s) - waited_from )) s for them"
grep -E 'built in|all cached|done in' "$work/build.log" >&2

pytest_run "e2e tier" "e2e" || status=1
exit "$status"
