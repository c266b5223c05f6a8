#!/usr/bin/env bash
# The demo on the embedded local backend: no Docker, no servers. Creates .venv, installs
# pytest-bannou, runs the example suite against several built-in presets.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
exec .venv/bin/python -m pytest examples/ -v "$@"
