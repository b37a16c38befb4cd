"""``nightrunner stack``: the offline command on directories of raw frames."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
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
