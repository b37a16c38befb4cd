#!/usr/bin/env bash
# Creates .venv and installs Nightrunner with everything the tests and benchmarks need.
# Idempotent: a second run only checks that the install is current.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.nightrunner-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # compat mode: a plain .pth path entry, no import hook on every cold start
  .venv/bin/python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
  touch "$stamp"
fi
