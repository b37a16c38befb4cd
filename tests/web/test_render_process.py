"""The web's pictures are rendered in a separate, lower-priority process; whatever happens to
that process, the picture still comes (rendered in-process), and the process never outlives
the control plane."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from runner.control import render_process
from runner.control.render_process import RenderError, RenderProcess
from runner.control.render_worker import NICE


@pytest.fixture
def frame(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    data = rng.normal(1000, 30, (300, 400)).astype(np.uint16)
    data[100:104, 200:204] = 60000  # a star
    path = tmp_path / "frame.fits"
    fits.PrimaryHDU(data).writeto(path)
    return path


def _jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        return im.size


def test_a_frame_renders_in_a_niced_process_that_ends_with_close(frame: Path) -> None:
    rp = RenderProcess()
    try:
        jpeg = asyncio.run(rp.call("picture_jpeg", str(frame), None))
        hist = asyncio.run(rp.call("picture_histogram", str(frame), None))
        proc = rp._proc
        assert proc is not None and proc.poll() is None and proc.pid != os.getpid()
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(ours + NICE, 19)
    finally:
        rp.close()
    assert _jpeg_size(jpeg) == (400, 300)
    assert sum(hist["Y"]) > 0  # seed 004's histogram of a mono frame
    assert proc.wait(timeout=5) is not None


def test_a_killed_or_hung_process_still_gives_the_picture(
        frame: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rp = RenderProcess()
    try:
        first = asyncio.run(rp.call("picture_jpeg", str(frame), None))
        assert rp._proc is not None
        rp._proc.kill()
        rp._proc.wait()
        # the dead process is noticed and replaced at once (it had not failed a request)
        assert asyncio.run(rp.call("picture_jpeg", str(frame), None)) == first
        # a process that answers nothing is killed after the time limit, and the picture is
        # rendered here instead; the next ones too, for a while
        monkeypatch.setattr(render_process, "TIMEOUT_S", 0.5)
        assert rp._proc is not None
        os.kill(rp._proc.pid, 19)  # SIGSTOP: hung
        hung = rp._proc
        began = time.monotonic()
        assert asyncio.run(rp.call("picture_jpeg", str(frame), None)) == first
        assert time.monotonic() - began < 5
        assert hung.wait(timeout=5) is not None and rp._proc is None
        assert asyncio.run(rp.call("picture_jpeg", str(frame), None)) == first
        assert rp._proc is None  # not restarted during the pause
    finally:
        rp.close()


def test_an_unreadable_frame_is_a_failed_picture_not_a_failed_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a FITS file at all" * 100)
    rp = RenderProcess()
    try:
        with pytest.raises(RenderError):
            asyncio.run(rp.call("picture_jpeg", str(bad), None))
        assert rp._proc is not None and rp._proc.poll() is None  # still serving
    finally:
        rp.close()


def test_the_process_ends_when_its_parent_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "runner.control.render_worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.close()  # what the kernel does to the pipe when the parent dies (even kill -9)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None and proc.stdout.read() == b""
    proc.stdout.close()
