#!/usr/bin/env bash
# `make lock`: compile requirements/*.in into the hashed locks requirements/*.txt with
# pip-tools (in a throwaway virtualenv, never .venv). A lock keeps the versions it already
# pins unless an .in file changes them, so this upgrades nothing by itself; to upgrade a
# package, edit its pin in the .in file (or: make lock LOCK_ARGS="--upgrade-package NAME").
# Order matters: start.in is constrained by runtime.txt, test.in by start.txt and dev.in
# (bench/febrl.py) by test.txt, so a package has one version in every lock. Resolved for this
# machine's python3 (CPython 3.11, Linux), the same as CI and deploy/Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet -r requirements/pip.txt
"$tools/venv/bin/python" -m pip install --quiet "pip-tools==7.6.2"
export CUSTOM_COMPILE_COMMAND="make lock"
cd requirements
compile() {
  echo "compiling requirements/$1.txt"
  "$tools/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --output-file "$1.txt" "${@:2}" "$1.in"
}
compile pip
for name in runtime start test dev; do
  # shellcheck disable=SC2086
  compile "$name" ${LOCK_ARGS:-}
done
