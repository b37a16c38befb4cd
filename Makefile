# The README's two commands: `make demo` (install, then run a plan on the simulators) and
# `make test` (install everything the tests need, then lint, type-check and run the suite).
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= nightrunner-data

.PHONY: install install-test demo test lint typecheck pytest bench schemas

install:
	bash scripts/setup.sh

# the tests also start real Alpaca simulators and indiserver: Debian and PyPI packages
install-test: install
	bash scripts/install-backends.sh

demo: install
	$(VENV)/bin/nightrunner validate plans/demo.yaml
	$(VENV)/bin/nightrunner run plans/demo.yaml --speed 60 --data-dir $(DATA) --progress plain

lint:
	$(VENV)/bin/ruff check runner tests benchmarks

typecheck:
	$(VENV)/bin/mypy

# Two lanes at once, each of two workers taking whole files (a file's servers and fixtures
# stay on one worker). The real-server tests (tests/devices/backends) spend most of their time
# waiting for simulators that expose, slew and cool in real time: beside the rest of the suite
# they cost little CPU, after it they cost ~8 minutes. Their lane's log is printed after it.
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile
pytest:
	@log=$$(mktemp); $(PYTEST) tests/devices/backends > $$log 2>&1 & lane=$$!; \
	$(PYTEST) --ignore=tests/devices/backends; rest=$$?; \
	wait $$lane; backends=$$?; \
	echo "--- tests/devices/backends (ran beside the rest) ---"; cat $$log; rm -f $$log; \
	exit $$(( rest || backends ))

test: install-test lint typecheck pytest

schemas: install
	$(VENV)/bin/nightrunner schema --write

bench: install
	$(VENV)/bin/pip install -q -e ".[bench]"
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
