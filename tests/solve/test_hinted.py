"""The hinted matcher: fields of five to seven Tycho-2 stars, which solve-field cannot solve,
solve to the arcsecond — and what cannot be verified is refused, never guessed: a wrong
pointing hint, shuffled stars, a sky that is not the real one, a field of four stars."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from runner.errors import NoSolution, SolveError
from runner.plan.equipment import Equipment
from runner.solve import SolveHints, solve_path, write_wcs
from runner.solve.astrometry import solve_fits
from runner.solve.catalogue import load_catalogue
from runner.solve.fallback import NAME, detect_sources, solve_hinted
from runner.solve.geometry import separation_arcsec, tangent_offsets
from runner.solve.hinted import Field, Sources, elementary_symmetric, field_around, match
from runner.solve.solver import hints_from_header
from runner.solve.wcs import Solution
from tests.solve.simframes import equipment, write_frame

#: With a 6′ pointing error the simulated telescope lands on five Tycho-2 stars (7.8–11.4 mag).
SPARSE = (57.9, 70.04)
#: Where the telescope points exactly (no error): four Tycho-2 stars, 11.5–12.3 mag.
FOUR_STARS = (184.51445, 64.39181)


def stars_in_frame(truth: tuple[float, float], eq: Equipment) -> int:
    """Tycho-2 stars on the sensor pointing at ``truth`` (the premise of each test)."""
    ra, dec, _ = load_catalogue().around(*truth, 0.5)
    xi, eta = tangent_offsets(*truth, ra, dec)
    half_w = eq.camera.width / 2 * eq.pixel_scale
    half_h = eq.camera.height / 2 * eq.pixel_scale
    return int(np.count_nonzero((np.abs(xi) <= half_w) & (np.abs(eta) <= half_h)))


@pytest.fixture(scope="module")
def sparse_frame(tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, Equipment, tuple[float, float]]:
    eq = equipment(error_arcmin=6)
    path, _, truth = write_frame(tmp_path_factory.mktemp("sparse") / "f.fits", eq, *SPARSE)
    return path, eq, truth


@pytest.fixture(scope="module")
def sparse_solution(sparse_frame: tuple[Path, Equipment, tuple[float, float]]) -> Solution:
    return asyncio.run(solve_path(sparse_frame[0], timeout=30))


def test_a_field_of_five_catalogue_stars_solves_with_the_hinted_matcher(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]], sparse_solution: Solution
) -> None:
    path, eq, truth = sparse_frame
    assert stars_in_frame(truth, eq) == 5
    with pytest.raises(NoSolution):  # solve-field alone does not solve it
        asyncio.run(solve_fits(path, hints_from_header(fits.getheader(path)), 30))
    sol = sparse_solution
    assert sol.solver == NAME
    assert separation_arcsec(sol.ra, sol.dec, *truth) < 5
    assert sol.scale == pytest.approx(eq.pixel_scale, rel=0.002)
    # independently of the matcher: every bright star found in the pixels, through the WCS,
    # lies within 2″ of a catalogue star
    src, _, _ = detect_sources(path)
    sky = WCS(sol.header).all_pix2world(np.column_stack([src.x[:5], src.y[:5]]), 0)
    cat_ra, cat_dec, _ = load_catalogue().around(sol.ra, sol.dec, 0.4)
    for s_ra, s_dec in sky:
        d = np.hypot((cat_ra - s_ra) * np.cos(np.radians(s_dec)), cat_dec - s_dec) * 3600
        assert float(d.min()) <= 2.0


def test_the_wcs_it_writes_says_which_solver_solved(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]], sparse_solution: Solution,
    tmp_path: Path
) -> None:
    path, _, truth = sparse_frame
    copy = tmp_path / "copy.fits"
    copy.write_bytes(path.read_bytes())
    write_wcs(copy, sparse_solution)
    h = fits.getheader(copy)
    assert h["PLTSOLVD"] is True and NAME in h.comments["PLTSOLVD"]
    assert separation_arcsec(h["CRVAL1"], h["CRVAL2"], *truth) < 5


def test_a_hint_pointing_at_another_field_is_refused(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]]
) -> None:
    path, eq, (ra, dec) = sparse_frame
    for d_dec in (-10.0,):
        hints = SolveHints(scale_arcsec=eq.pixel_scale, ra=ra, dec=dec + d_dec, radius_deg=2.0)
        with pytest.raises(NoSolution):
            asyncio.run(solve_path(path, hints, 30))


def test_the_frames_stars_are_matched_nowhere_else_in_the_sky(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]]
) -> None:
    """The matcher alone, on ten random pointings at least 5° away: no match verifies."""
    path, eq, truth = sparse_frame
    src, width, height = detect_sources(path)
    rng = np.random.default_rng(3)
    tried = 0
    while tried < 10:
        ra, dec = float(rng.uniform(0, 360)), math.degrees(math.asin(rng.uniform(-1, 1)))
        if separation_arcsec(ra, dec, *truth) < 5 * 3600:
            continue
        tried += 1
        field = field_around(*load_catalogue().around(ra, dec, 2.4), ra, dec)
        assert match(src, width, height, field, eq.pixel_scale, 0.15, 2.0,
                     time.monotonic() + 30) is None, (ra, dec)


def _sources_and_field(path: Path, truth: tuple[float, float]) -> tuple[Sources, int, int, Field]:
    """The frame's sources and the catalogue stars 2.4° around where it really points."""
    src, width, height = detect_sources(path)
    return src, width, height, field_around(*load_catalogue().around(*truth, 2.4), *truth)


def test_shuffled_stars_at_the_right_pointing_are_refused(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]]
) -> None:
    path, eq, truth = sparse_frame
    src, width, height, field = _sources_and_field(path, truth)
    assert match(src, width, height, field, eq.pixel_scale, 0.15, 2.0,
                 time.monotonic() + 30) is not None  # the real stars do match
    rng = np.random.default_rng(11)
    for _ in range(5):
        shuffled = Sources(rng.uniform(0, width, src.x.size), rng.uniform(0, height, src.x.size),
                           src.flux)
        assert match(shuffled, width, height, field, eq.pixel_scale, 0.15, 2.0,
                     time.monotonic() + 30) is None


def test_a_sky_that_is_not_the_real_one_is_refused(tmp_path: Path) -> None:
    base = equipment()
    eq = base.model_copy(update={
        "simulation": base.simulation.model_copy(update={"sky": "synthetic"})})
    path, _, _ = write_frame(tmp_path / "f.fits", eq, 150.0, 55.0)
    with pytest.raises(NoSolution):
        asyncio.run(solve_path(path, timeout=30))


def test_four_catalogue_stars_are_not_enough_to_be_sure(tmp_path: Path) -> None:
    """Three stars make the hypothesis and one more cannot rule out chance over a 2° search:
    no solution rather than a guess, though the hint is right."""
    eq = equipment()
    path, _, truth = write_frame(tmp_path / "f.fits", eq, *FOUR_STARS)
    assert stars_in_frame(truth, eq) == 4
    with pytest.raises(NoSolution):
        asyncio.run(solve_path(path, timeout=30))


def test_a_vague_hint_is_searched_three_degrees_around(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 30° search radius reads the catalogue 3° around the hint (plus the field's
    half-diagonal), not 30°: hypotheses, time and the false-match bound grow with the area."""
    path, _, truth = sparse_frame
    catalogue = load_catalogue()
    radii: list[float] = []

    class Spy:
        def around(self, ra: float, dec: float, radius: float) -> Any:
            radii.append(radius)
            return catalogue.around(ra, dec, radius)

    monkeypatch.setattr("runner.solve.fallback.load_catalogue", lambda *_: Spy())
    hints = hints_from_header(fits.getheader(path), radius_deg=30.0)
    sol = solve_hinted(path, hints, time.monotonic() + 20)
    assert separation_arcsec(sol.ra, sol.dec, *truth) < 5
    assert len(radii) == 1 and 3.0 < radii[0] < 3.5


def test_the_matcher_stops_at_its_deadline(
    sparse_frame: tuple[Path, Equipment, tuple[float, float]]
) -> None:
    path, eq, truth = sparse_frame
    src, width, height, field = _sources_and_field(path, truth)
    with pytest.raises(SolveError, match="ran out of time"):
        match(src, width, height, field, eq.pixel_scale, 0.15, 2.0, time.monotonic() - 1)


def test_the_chance_of_k_coincidences_is_bounded_by_the_sum_over_k_subsets() -> None:
    p = np.array([0.1, 0.2, 0.3])
    assert elementary_symmetric(p, 0) == 1.0
    assert elementary_symmetric(p, 1) == pytest.approx(0.6)
    assert elementary_symmetric(p, 2) == pytest.approx(0.1 * 0.2 + 0.1 * 0.3 + 0.2 * 0.3)
    assert elementary_symmetric(p, 3) == pytest.approx(0.006)
    # exact for independent events when k = n, an upper bound below: P(≥2) of the three
    exact = 0.1 * 0.2 * 0.7 + 0.1 * 0.8 * 0.3 + 0.9 * 0.2 * 0.3 + 0.006
    assert exact <= elementary_symmetric(p, 2)
