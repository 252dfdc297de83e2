#!/usr/bin/env bash
# Create .venv (if missing) and install the lock given as $1 (requirements/start.txt or
# requirements/test.txt): every package, transitive ones too, at its pinned version and
# checked against its hashes (see docs/operations.md#dependencies-and-the-lock-files).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --require-hashes -r requirements/pip.txt
fi
.venv/bin/python -m pip install --quiet --require-hashes -r "$1"
