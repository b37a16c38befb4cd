"""``nightrunner restack``: a season's archive re-stacked in-process and on a real Dask cluster
(``dask scheduler`` + ``dask worker`` processes on loopback), compared bit for bit with each
other and with the live stacker on the same frames."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import tifffile
from astropy.io import fits
from typer.testing import CliRunner

from runner.cli import app
from runner.restack.graph import build_plan
from runner.restack.run import run_on_client
from runner.restack.select import select_groups
from runner.restack.synthetic_archive import Archive, write_archive
from runner.stacking.live import LiveStacker
from runner.stacking.pipeline import StackSettings
from runner.stacking.synthetic import Sensor, StarField
from runner.storage.index import ImageIndex, ImageRecord

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"
GROUPS = ("M81_L_bin1", "M81_R_bin1")


def _add_light(
    archive: Archive, rel: str, data: bytes | np.ndarray, before: Path, filt: str
) -> Path:
    """Index an extra light one second before ``before`` (so it takes that place in order)."""
    path = archive.data_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        h = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 30.0, "FILTER": filt})
        fits.PrimaryHDU(data, h).writeto(path)
    with ImageIndex(archive.data_dir) as index:
        ref = index.get(before.relative_to(archive.data_dir).as_posix())
        assert ref is not None
        index.add(ImageRecord(path=rel, frame_type="light", exposure=30.0, target="M81",
                              filter=filt, date_obs=ref.date_obs - timedelta(seconds=1),
                              width=ref.width, height=ref.height, gain=100, ccd_temp=-10.0))
    lights = archive.lights[("M81", filt)]
    lights.insert(lights.index(before), path)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """3 nights × 2 filters × 20 frames and a master dark; plus a corrupt file in L's second
    night and a starless frame as R's very first frame (so R's reference is its second)."""
    a = write_archive(tmp_path_factory.mktemp("season") / "data", darks=5)
    lights_l, lights_r = a.lights[("M81", "L")], a.lights[("M81", "R")]
    _add_light(a, "M81/L/corrupt.fits", b"SIMPLE  = this is not FITS", lights_l[25], "L")
    sensor = Sensor(shape=(192, 256), dark_current=0.5, hot_fraction=2e-4)
    empty = StarField(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3)))
    _add_light(a, "M81/R/cloud.fits", sensor.light(empty, 30.0, seed=5), lights_r[0], "R")
    return a


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_worker(address: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [str(DASK), "worker", address, "--nthreads", "1", "--no-nanny",
         "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A scheduler and two single-thread workers, each its own process."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                 "--dashboard-address", "127.0.0.1:0"]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen(scheduler, env=env, **quiet)]
    try:
        procs += [_start_worker(address) for _ in range(2)]
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs:  # nothing of theirs to keep: no graceful shutdown to wait for
            p.kill()
        for p in procs:
            p.wait(10)


def _restack(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["restack", *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def _fits(out: Path, sid: str) -> np.ndarray:
    return np.asarray(fits.getdata(out / "stacked" / f"{sid}_final.fits"))


@pytest.fixture(scope="module")
def in_process(archive: Archive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("in-process")
    text = _restack(["--data-dir", str(archive.data_dir), "--output", str(out), "--workers", "0",
                     "--progress", "plain"])
    assert "running in-process" in text
    return out


def test_a_cluster_restack_is_bit_identical_to_in_process_and_skips_bad_frames(
    archive: Archive, in_process: Path, cluster: str, tmp_path: Path
) -> None:
    """On the cluster and cut into 5 tiles of 39 rows (in-process: 1 tile), the stacks are the
    same bits; the corrupt and the starless frames are reported and left out."""
    text = _restack(["--data-dir", str(archive.data_dir), "--output", str(tmp_path),
                     "--scheduler", cluster, "--progress", "plain", "--tile-mpx", "0.01"])
    assert "dashboard: http://" in text
    assert f"skipped {archive.data_dir / 'M81/L/corrupt.fits'}: failed: cannot read" in text
    assert f"skipped {archive.data_dir / 'M81/R/cloud.fits'}: unregistered" in text
    assert "M81_L_bin1: 60 of 61 frames stacked, 0 not registered, 1 unreadable" in text
    assert "M81_R_bin1: 60 of 61 frames stacked, 1 not registered, 0 unreadable" in text
    for sid in GROUPS:
        a, b = _fits(in_process, sid), _fits(tmp_path, sid)
        assert a.shape == (192, 256)
        assert np.array_equal(a, b, equal_nan=True), sid
        for out, tiles in ((in_process, 1), (tmp_path, 5)):
            start = json.loads((out / "debug" / sid / "log.txt").read_text().splitlines()[0])
            assert start["tiles"] == tiles
        meta = json.loads((tmp_path / "stacked" / f"{sid}_final.json").read_text())
        assert meta["stacked_frames"] == 60 and meta["integration_s"] == 1800.0
        assert meta["stacking"]["calibration"] == {"darks": "dark30"}


def test_each_filter_is_stacked_alone_and_equals_the_live_stacker(
    archive: Archive, in_process: Path
) -> None:
    """The live stacker fed one filter's frames in time order (corrupt and starless frames
    included) gives the restack's stack; the two filters' skies (150 vs 300 e-) never mix."""
    skies = {}
    for filt, sid in zip(("L", "R"), GROUPS, strict=True):
        paths = archive.lights[("M81", filt)]
        log = (in_process / "debug" / sid / "log.txt").read_text().splitlines()
        frames = [json.loads(line) for line in log[1:]]
        assert [f["path"] for f in frames] == [str(p) for p in paths]
        live = LiveStacker(archive.data_dir, queue_size=len(paths) + 1, intermediate_every=0)
        live.start(f"live-{filt}", darks="dark30")
        for p in paths:
            assert live.submit(p)
        saved = live.save()
        live.close()
        assert live.status()["stacked"] == 60
        ours = tifffile.imread(in_process / "stacked" / f"{sid}_final.tiff")
        np.testing.assert_allclose(ours, tifffile.imread(saved.tiff), rtol=1e-6, atol=1e-3)
        skies[filt] = float(np.nanmedian(_fits(in_process, sid)))
    assert skies["R"] / skies["L"] == pytest.approx(2.0, rel=0.03)  # vignetting scales both


def test_a_worker_killed_mid_run_changes_nothing(
    archive: Archive, in_process: Path, cluster: str, tmp_path: Path
) -> None:
    extra = _start_worker(cluster)
    try:
        with distributed.Client(cluster, timeout="30s") as client:
            client.wait_for_workers(3, timeout=60)
            before = set(client.scheduler_info()["workers"])
            plan = build_plan(select_groups([archive.data_dir]), StackSettings(), str(tmp_path))
            state = {"reports": 0, "killed_with": -1}

            def on_report(group: int, report: object) -> None:
                state["reports"] += 1
                if state["reports"] == 30:
                    victim = max(before, key=lambda w: len(client.has_what().get(w, ())))
                    state["killed_with"] = len(client.has_what().get(victim, ()))
                    pid = client.run(os.getpid, workers=[victim])[victim]
                    os.kill(pid, signal.SIGKILL)

            summaries = run_on_client(plan, client, on_report)
            deadline = time.monotonic() + 10
            while len(client.scheduler_info()["workers"]) > 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(client.scheduler_info()["workers"]) == 2  # one is gone for good
    finally:
        extra.kill()
        extra.wait(10)
    assert state["killed_with"] > 0  # it held results when it died
    assert [s.stacked for s in summaries] == [60, 60]
    for sid in GROUPS:
        assert np.array_equal(_fits(in_process, sid), _fits(tmp_path, sid), equal_nan=True)


def test_bad_options_and_an_unreachable_scheduler_are_one_line_errors(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runner.restack.run.CONNECT_TIMEOUT_S", 1.0)
    runner = CliRunner()
    r = runner.invoke(app, ["restack", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no image index (index.sqlite)" in r.output
    r = runner.invoke(app, ["restack", "--data-dir", str(archive.data_dir), "--filter", "Ha"])
    assert r.exit_code == 1 and "no light frames in the index" in r.output
    assert "(filter Ha)" in r.output
    r = runner.invoke(app, ["restack", "--data-dir", str(archive.data_dir), "--since", "March"])
    assert r.exit_code == 2 and "is not a date" in r.output
    r = runner.invoke(app, ["restack", "--data-dir", str(archive.data_dir), "--workers", "2",
                            "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "not both" in r.output
    port = _free_port()
    r = runner.invoke(app, ["restack", "--data-dir", str(archive.data_dir), "--output",
                            str(tmp_path), "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert r.exit_code == 1 and "error: cannot reach the Dask scheduler" in r.output
    assert "Traceback" not in r.output
