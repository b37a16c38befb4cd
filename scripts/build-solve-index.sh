#!/usr/bin/env bash
# Builds an astrometry.net index file with smaller quads (11′–16′) from the Tycho-2 stars of
# Debian's astrometry-data-tycho2-07, idempotently, into /var/lib/nightrunner/astrometry
# (or $NIGHTRUNNER_SOLVE_INDEX_DIR).
#
# Why: Debian packages Tycho-2 indexes only from 22′ quads up. A quad must lie wholly inside
# the image, and a 33′×25′ field (the simulator's, a small refractor's) holds few quads of
# 22′–30′: on 20 random pointings (benchmarks/bench_solve.py) 11 solved. Quads of 11′–16′ built
# from the same stars (build-astrometry-index -1 shares the star tree) made it 15; quads of
# 16′–22′ added none (the fields left have 4–7 Tycho-2 stars). About 2.5 minutes on one core,
# 120 MB; a second run only checks.
# Usage: bash scripts/build-solve-index.sh
set -euo pipefail
src=${NIGHTRUNNER_ASTROMETRY_INDEX:-/usr/share/astrometry}/index-tycho2-07.littleendian.fits
out=${NIGHTRUNNER_SOLVE_INDEX_DIR:-/var/lib/nightrunner/astrometry}
if [ ! -f "$src" ]; then
  echo "build-solve-index: $src missing (apt-get install astrometry-data-tycho2-07)" >&2
  exit 1
fi
mkdir -p "$out"
for preset in 6; do
  dest="$out/index-nightrunner-0$preset.fits"
  [ -s "$dest" ] && continue
  echo "build-solve-index: $dest"
  build-astrometry-index -1 "$src" -o "$dest.part" -P "$preset" -I "990$preset" -S MAG_VT -M \
    -L 9 >/dev/null
  mv "$dest.part" "$dest"
done
