#!/usr/bin/env bash
# The whole test suite, from a fresh clone: creates .venv, installs pytest-bannou with its test
# extras, (as root on Debian) installs and starts the engines, runs ruff and pytest.
# Elsewhere it runs what it can; skipped tests name what they need (see the -rs summary).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
  bash scripts/setup-engines.sh
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

if [ "$(id -u)" = 0 ] && docker info >/dev/null 2>&1; then
  .venv/bin/python -m pytest_bannou.backends.images >/dev/null 2>&1 || true
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -rs "$@"
