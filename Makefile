# The two commands of the README.
.PHONY: start test
start:
	bash scripts/start.sh
test:
	bash scripts/test.sh
