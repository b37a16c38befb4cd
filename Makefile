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

# two workers, each taking whole files (a file's servers and fixtures stay on one worker)
pytest:
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

test: install-test lint typecheck pytest

schemas: install
	$(VENV)/bin/nightrunner schema --write

bench: install
	$(VENV)/bin/pip install -q -e ".[bench]"
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
