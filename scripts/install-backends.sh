#!/usr/bin/env bash
# Installs what the Alpaca and INDI back-ends and their contract tests need
# (tests/devices/backends), idempotently:
#   Debian: chromium (the status page's browser tests drive it with Playwright; Playwright's own
#           browsers are never downloaded), indi-bin (indiserver + simulator drivers), and the
#           headers pip needs to build
#           dbus-python, a declared dependency of pyindi-client (libdbus-1-dev, libglib2.0-dev,
#           pkg-config), siril (tests/stacking check that siril-cli loads our FITS stacks), and
#           astrometry.net with the Tycho-2 index files for 22′–44′ fields (plate solving and
#           the simulator's real sky: tests/solve). Only missing packages are installed (needs
#           root then).
#   .venv:  the project with its `dev` extra (alpyca, alpaca-simulators) and `indi` extra
#           (pyindi-client). If pyindi-client has no wheel for this platform, pip compiles it:
#           the script then adds libindi-dev, swig, libcfitsio-dev, zlib1g-dev, libnova-dev and
#           retries.
# A second run only checks. Usage: bash scripts/install-backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-backends: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-backends: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
}

apt_install chromium indi-bin libdbus-1-dev libglib2.0-dev pkg-config siril \
  astrometry.net astrometry-data-tycho2-07 astrometry-data-tycho2-08
# smaller quads from the same Tycho-2 stars, for 33′ fields (docs/solving.md); once per machine
bash scripts/build-solve-index.sh

[ -x .venv/bin/python ] || bash scripts/setup.sh
PY=.venv/bin/python

stamp=.venv/.nightrunner-backends-installed
if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] &&
  "$PY" -c "import alpaca, alpaca_simulators, PyIndi, playwright" 2>/dev/null; then
  exit 0
fi
# compat editable mode, as scripts/setup.sh: no import hook slowing every cold start
PIP=("$PY" -m pip install --quiet -e ".[dev,indi]" --config-settings editable_mode=compat)
if ! "${PIP[@]}"; then
  echo "install-backends: retrying with the packages needed to compile pyindi-client" >&2
  apt_install build-essential swig libindi-dev libcfitsio-dev zlib1g-dev libnova-dev
  "${PIP[@]}"
fi
"$PY" -c "import alpaca, alpaca_simulators, PyIndi"
command -v indiserver >/dev/null
touch "$stamp"
