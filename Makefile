# The two commands of the README.
.PHONY: start test fuzz
start:
	bash scripts/start.sh
test:
	bash scripts/test.sh
# A long random schemathesis run over the OpenAPI spec (tests/test_api_fuzz.py); see the script.
fuzz:
	bash scripts/fuzz.sh

# Maintenance: compile requirements/*.in into the hashed locks requirements/*.txt (pip-tools in a
# throwaway virtualenv); see docs/operations.md#dependencies-and-the-lock-files.
.PHONY: lock
lock:
	LOCK_ARGS="$(LOCK_ARGS)" bash scripts/lock.sh

# Maintenance: re-extract and compile the Chinese catalogue after changing UI strings.
.PHONY: translations
translations:
	.venv/bin/pybabel extract -F babel.cfg -k lazy_gettext -k _ -k tr -k lazy_tr -k N_ -o /tmp/guishu.pot .
	.venv/bin/pybabel update -i /tmp/guishu.pot -d app/translations -l zh
	.venv/bin/pybabel compile -d app/translations -l zh
