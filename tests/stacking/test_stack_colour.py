"""A colour preview from per-filter mono stacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from runner.errors import StackingError
from runner.stacking.colour import colour_plan, compose, write_colour
from runner.stacking.detect import detect_stars
from runner.stacking.synthetic import StarField, Transform, render_stars

SHAPE = (240, 320)


def _stack(field: StarField, transform: Transform, gain: float, sky: float,
           seed: int) -> np.ndarray:
    """A linear mono stack of one filter: its own pointing (its own reference frame), its own
    throughput and sky level, a little noise."""
    xy = transform.apply(field.xy, SHAPE)
    img = render_stars(SHAPE, xy, field.flux * gain) + np.float32(sky)
    rng = np.random.default_rng(seed)
    return (img + rng.normal(0, 2.0, SHAPE)).astype(np.float32)


@pytest.fixture
def field() -> StarField:
    return StarField.random(SHAPE, 120, seed=4)


def _brightest(img: np.ndarray, n: int = 12) -> np.ndarray:
    stars = detect_stars(img, threshold_sigma=10, max_stars=n, measure=False)
    return np.column_stack([stars.x, stars.y])


def test_rgb_channels_are_registered_onto_one_reference_and_neutral(field: StarField) -> None:
    stacks = {
        "Red": _stack(field, Transform(6.0, -4.0, 0.3), 0.7, 300.0, 1),
        "Green": _stack(field, Transform(), 1.0, 500.0, 2),
        "Blue": _stack(field, Transform(-5.0, 3.5, 180.2), 0.4, 150.0, 3),  # after a flip
    }
    plan = colour_plan([None, "Blue", "Green", "Red"])
    assert plan is not None and plan.palette == "RGB" and plan.luminance is None
    colour = compose(plan, stacks)
    assert colour.linear.shape == (*SHAPE, 3) and colour.display.shape == (*SHAPE, 3)

    # stars at the same pixels in the three channels (the reference is green's grid)
    ref = _brightest(colour.linear[..., 1])
    for c in (0, 2):
        found = _brightest(colour.linear[..., c], 30)
        d = np.min(np.hypot(*(ref[:, None, :] - found[None, :, :]).transpose(2, 0, 1)), axis=1)
        assert np.median(d) < 0.3, (c, d)
    # neutral sky: every channel's background at the same level, in the stretched image too
    inner = colour.display[40:-40, 40:-40]
    sky = np.median(inner.reshape(-1, 3), axis=0)
    assert np.ptp(sky) < 0.02 and 0.05 < sky.mean() < 0.5


def test_lrgb_takes_its_detail_from_l_and_writes_the_preview_files(
    tmp_path: Path, field: StarField
) -> None:
    stacks = {f: _stack(field, Transform(dx, dy), g, 200.0, k) for k, (f, dx, dy, g) in
              enumerate([("L", 0, 0, 2.0), ("R", 3, 1, 0.6), ("G", -2, 2, 0.8),
                         ("B", 1, -3, 0.5)])}
    plan = colour_plan(stacks)
    assert plan is not None and plan.luminance == "L"
    colour = compose(plan, stacks)
    assert colour.lrgb is not None
    paths = write_colour(tmp_path, "NGC 188", colour,
                         {"R": "NGC_188_R", "G": "NGC_188_G", "B": "NGC_188_B", "L": "NGC_188_L"})
    assert paths["jpeg"].name == "NGC_188_colour.jpeg"
    assert paths["lrgb"].name == "NGC_188_LRGB.jpeg"
    with Image.open(paths["lrgb"]) as im:
        assert im.mode == "RGB" and im.size == (SHAPE[1], SHAPE[0])
    cube = fits.getdata(paths["fits"])
    assert cube.shape == (3, *SHAPE) and cube.dtype.kind == "f"
    meta = json.loads(paths["json"].read_text())
    assert meta["channels"] == {"R": "R", "G": "G", "B": "B"} and meta["luminance"] == "L"
    # a second night does not overwrite the first one's preview
    again = write_colour(tmp_path, "NGC 188", colour, {})
    assert again["jpeg"].name == "NGC_188_colour_2.jpeg"


def test_narrowband_palettes_and_what_is_not_enough_for_colour() -> None:
    sho = colour_plan(["H-alpha", "OIII", "SII"])
    assert sho is not None and (sho.palette, sho.channels) == ("SHO", ("SII", "H-alpha", "OIII"))
    hoo = colour_plan(["Ha", "O3"])
    assert hoo is not None and (hoo.palette, hoo.channels) == ("HOO", ("Ha", "O3", "O3"))
    assert colour_plan(["L", "R", "G"]) is None
    assert colour_plan([None]) is None


def test_a_channel_of_another_field_gives_no_preview_and_says_why(field: StarField) -> None:
    other = StarField.random(SHAPE, 120, seed=99)
    stacks = {"R": _stack(other, Transform(), 1, 100, 1),
              "G": _stack(field, Transform(), 1, 100, 2),
              "B": _stack(field, Transform(2, 2), 1, 100, 3)}
    plan = colour_plan(stacks)
    assert plan is not None
    with pytest.raises(StackingError):
        compose(plan, stacks)
