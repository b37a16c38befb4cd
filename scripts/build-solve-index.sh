#!/usr/bin/env bash
# Builds an astrometry.net index file with smaller quads (16′–22′, build-astrometry-index's
# preset 6) from the Tycho-2 stars of Debian's astrometry-data-tycho2-07, idempotently, into
# /var/lib/nightrunner/astrometry (or $NIGHTRUNNER_SOLVE_INDEX_DIR).
#
# Why: Debian packages Tycho-2 indexes only from 22′ quads up. A quad must lie wholly inside
# the image, and a 33′×25′ field (the simulator's, a small refractor's) holds few quads of
# 22′–30′: on 20 random pointings (benchmarks/bench_solve.py, seed 1) 11 solved. Quads of
# 16′–22′ built from the same stars (build-astrometry-index -1 shares the star tree) made it 15.
# (The presets step by √2 from -P 0 = 2′–2.8′: 4 is 8′–11′, 5 is 11′–16′, 6 is 16′–22′, 7 is
# tycho2-07's own 22′–30′.) Measured 2026-12-04: adding 11′–16′ quads (-P 5, 3 min, 98 MB)
# solves one more field of seed 1 and none of seeds 2 and 3; 8′–11′ quads (-P 4, 3 min, 55 MB)
# none more. The fields left hold 1–7 Tycho-2 stars, too few for solve-field's odds of 10⁹;
# runner/solve/hinted.py solves those of five or more (docs/solving.md).
# About a minute to 2.5 minutes on one core, 120 MB; a second run only checks.
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
