#!/usr/bin/env bash
# `make fuzz`: the long, random schemathesis run over the whole OpenAPI spec (every operation,
# as an admin and as a rep, positive and negative cases) on SQLite and PostgreSQL.
# `make test` runs the same test derandomized with 12 examples per operation and mode.
#   GUISHU_FUZZ_EXAMPLES  examples per operation and mode (default 300)
#   GUISHU_FUZZ_SEED      the Hypothesis seed (default: a new random one, printed to replay)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh requirements/test.txt || exit 1
export GUISHU_INSTANCE_DIR="$(mktemp -d)"
export GUISHU_FUZZ_EXAMPLES="${GUISHU_FUZZ_EXAMPLES:-300}"
export GUISHU_FUZZ_SEED="${GUISHU_FUZZ_SEED:-$RANDOM$RANDOM}"
echo "fuzzing with seed ${GUISHU_FUZZ_SEED}, ${GUISHU_FUZZ_EXAMPLES} examples per operation"
echo "(replay: GUISHU_FUZZ_SEED=${GUISHU_FUZZ_SEED} GUISHU_FUZZ_EXAMPLES=${GUISHU_FUZZ_EXAMPLES} make fuzz)"
status=0
for backend in sqlite postgres; do
  echo "=== fuzz on ${backend} ==="
  GUISHU_TEST_DB=$backend .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 \
    "$@" tests/test_api_fuzz.py || status=1
done
exit $status
