"""``nightrunner stack``: the offline command on directories of raw frames."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from runner.stacking.cli import app
from runner.stacking.synthetic import Sensor, StarField, Transform

WriteFits = Callable[..., Path]


def test_stack_builds_masters_and_stacks_a_directory(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    for i in range(6):
        tr = Transform(dx=2.0 * i, dy=-1.5 * i, rotation_deg=0.1 * i)
        write_fits(f"lights/l{i}.fits", sensor.light(field, 30.0, transform=tr, seed=i))
    for i in range(5):
        write_fits(f"darks/d{i}.fits", sensor.dark(30.0, seed=10 + i), kind="Dark Frame")
        write_fits(f"bias/b{i}.fits", sensor.bias(seed=20 + i), kind="Bias", exposure=0.0)
        write_fits(f"flats/f{i}.fits", sensor.flat(seed=30 + i), kind="Flat Field", exposure=1.0)
    frames = tmp_path / "frames"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            str(frames / "lights"),
            "--output", str(out),
            "--darks", str(frames / "darks"),
            "--flats", str(frames / "flats"),
            "--bias", str(frames / "bias"),
            "--name", "m101",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 of 6 frames stacked" in result.output
    meta = json.loads((out / "stacked" / "m101_final.json").read_text())
    assert all(meta["stacking"]["calibration"][k] for k in ("darks", "flats", "bias"))
    index = json.loads((out / "calibration" / "index.json").read_text())
    assert sorted(e["kind"] for e in index) == ["bias", "dark", "flat"]
    assert np.isfinite(meta["integration_s"]) and meta["integration_s"] == 180.0


def test_a_missing_input_is_a_one_line_error_with_exit_code_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "error: no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_a_run_directory_is_stacked_from_its_filter_folders(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    """A run writes TARGET/FILTER/…fits (and calibration/ beside it): `stack data/M81` finds
    the lights in every filter folder and leaves darks out; a frame being written (a hidden
    ``.part`` file) is not read."""
    for i, filt in enumerate(["L", "L", "R", "G", "B"]):
        tr = Transform(dx=1.5 * i, dy=-1.0 * i)
        write_fits(f"M81/{filt}/M81_{filt}_30s_{i:04d}.fits",
                   sensor.light(field, 30.0, transform=tr, seed=i))
    write_fits("M81/calibration/dark/dark_30s_0001.fits", sensor.dark(30.0, seed=9),
               kind="Dark Frame")
    (tmp_path / "frames" / "M81" / "L" / ".M81_L_30s_0006.fits.1a2b.part").write_bytes(b"x")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(tmp_path / "frames" / "M81"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 of 5 frames stacked" in result.output
    assert "note: 1 calibration frames (dark, flat, bias) in the folders left out" in result.output
    # named for the folder given, not for the filter folder of its first frame
    assert (out / "stacked" / "M81_final.fits").is_file(), sorted((out / "stacked").iterdir())
    write_fits("N/L/n_0.fits", sensor.light(field, 30.0, seed=1), OBJECT="NGC 188")
    write_fits("N/L/n_1.fits", sensor.light(field, 30.0, seed=2), OBJECT="NGC 188")
    result = CliRunner().invoke(app, [str(tmp_path / "frames" / "N"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "stacked" / "NGC_188_final.fits").is_file()  # the OBJECT card wins


def test_a_folder_without_frames_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "M81" / "L").mkdir(parents=True)
    result = CliRunner().invoke(app, [str(tmp_path / "M81"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert f"error: no light frames (FITS files) in {tmp_path / 'M81'}, sub-folders included" \
        in result.output


def test_per_filter_by_default_one_stack_per_filter_card_and_a_colour_preview(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    for i in range(9):
        filt = "RGB"[i % 3]
        tr = Transform(dx=1.2 * i, dy=-0.8 * i)
        write_fits(f"night/n{i:02d}.fits", sensor.light(field, 30.0, transform=tr, seed=i),
                   FILTER=filt)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(tmp_path / "frames" / "night"), "--output", str(out),
                                      "--name", "M 13"])
    assert result.exit_code == 0, result.output
    for f in "RGB":
        assert f"M_13_{f}: 3 of 3 frames stacked" in result.output
        assert (out / "stacked" / f"M_13_{f}_final.fits").exists()
    assert (out / "stacked" / "M_13_colour.jpeg").exists()

    together = CliRunner().invoke(app, [str(tmp_path / "frames" / "night"), "--output",
                                        str(out), "--name", "all", "--no-per-filter"])
    assert together.exit_code == 0, together.output
    assert "all: 9 of 9 frames stacked" in together.output


def test_reading_ahead_changes_nothing_in_the_stack(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command prepares frame n+1 while frame n is added: the stack is bit for bit the
    one stacked a frame at a time, with the same frames rejected (a corrupt one included)."""
    from runner.stacking.filters import FilterStacks
    from runner.stacking.pipeline import Stacker

    threads: list[str] = []
    prepare = Stacker.prepare

    def watched(self: Stacker, *a: Any, **k: Any) -> Any:
        threads.append(threading.current_thread().name)
        return prepare(self, *a, **k)

    monkeypatch.setattr(Stacker, "prepare", watched)

    for i in range(9):
        tr = Transform(dx=1.5 * i, dy=-i, rotation_deg=0.05 * i)
        write_fits(f"l/l{i}.fits", sensor.light(field, 30.0, transform=tr, seed=i))
    cut = tmp_path / "frames" / "l" / "l4.fits"
    cut.write_bytes(cut.read_bytes()[: 2880 + 5000])  # the header and a little data
    results = {}
    for ahead in (False, True):
        stacks = FilterStacks(tmp_path / f"out{ahead}", queue_size=16, intermediate_every=0,
                              read_ahead=ahead)
        stacks.begin("m", align=True, reject=True, kappa=3.0)
        for p in sorted((tmp_path / "frames" / "l").glob("*.fits")):
            assert stacks.submit(p, filter_name="L", read_filter=False)
        [saved] = stacks.save()
        stacks.close()
        assert saved.paths is not None and saved.paths.fits is not None
        results[ahead] = (saved.status, fits_data(saved.paths.fits))
        ahead_threads = sum(t.startswith("stacker-read-ahead") for t in threads)
        assert ahead_threads >= (6 if ahead else 0) and (ahead or ahead_threads == 0)
        threads.clear()
    assert results[True][0]["stacked"] == 8 and results[True][0]["failed"] == 1
    assert results[True][0] == results[False][0]
    np.testing.assert_array_equal(results[True][1], results[False][1])


def fits_data(path: Path) -> np.ndarray:
    from astropy.io import fits

    return np.asarray(fits.getdata(path))
