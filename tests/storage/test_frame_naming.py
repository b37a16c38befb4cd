"""Output template expansion: predictable names that never leave the data directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

import pytest

from runner.storage import DEFAULT_TEMPLATE, TemplateError, check_template, expand, frame_path
from runner.storage.naming import night_date, sanitize_component

WHEN = datetime(2025, 1, 16, 1, 30, 15, tzinfo=UTC)


def name(template: str = DEFAULT_TEMPLATE, **over: object) -> str:
    fields: dict[str, object] = {
        "target": "M31",
        "filter": "Ha",
        "exposure": 300.0,
        "frame_type": "light",
        "seq": 7,
        "when": WHEN,
        "gain": 100,
        "binning": 2,
        "tz": UTC,
        **over,
    }
    return str(expand(template, **fields))  # type: ignore[arg-type]


def test_default_template() -> None:
    assert name() == "M31/Ha/M31_Ha_300s_0007.fits"
    assert name(exposure=0.5) == "M31/Ha/M31_Ha_0.5s_0007.fits"
    assert name(exposure=2.25, seq=1234) == "M31/Ha/M31_Ha_2.25s_1234.fits"


def test_every_field() -> None:
    t = "{date}/{type}/{target}_{filter}_{exposure:.1f}s_g{gain}_bin{binning}_{time}_{seq:03d}.fits"
    # 01:30 UTC belongs to the night that began on the 15th.
    assert name(t) == "2025-01-15/light/M31_Ha_300.0s_g100_bin2_013015_007.fits"
    assert name(t, gain=None, filter=None, target=None, frame_type="dark") == (
        "2025-01-15/dark/calibration_NoFilter_300.0s_gNA_bin2_013015_007.fits"
    )


def test_values_are_sanitised_and_cannot_escape() -> None:
    assert name(target="../../etc") == ".._.._etc/Ha/.._.._etc_Ha_300s_0007.fits"
    assert name(target='M31: "core"/halo?') == (
        "M31_ _core__halo_/Ha/M31_ _core__halo__Ha_300s_0007.fits"
    )
    assert name(target="CON") == "_CON/Ha/_CON_Ha_300s_0007.fits"
    assert name(target="...") == "_/Ha/__Ha_300s_0007.fits"
    assert sanitize_component("x" * 400) == "x" * 200
    assert sanitize_component("tab\there\x00") == "tab_here_"


@pytest.mark.parametrize(
    "template",
    [
        "../{target}/{seq}.fits",
        "/abs/{seq}.fits",
        "C:/x/{seq}.fits",
        "{nope}_{seq}.fits",
        "{seq:%Y}.fits",
        "{target",
        "   ",
    ],
)
def test_bad_templates_are_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        name(template)
    assert check_template(template)


def test_check_template_for_validate() -> None:
    assert check_template(DEFAULT_TEMPLATE) == []
    assert any("unknown field '{object}'" in p for p in check_template("{object}_{seq}.fits"))
    assert any("same name" in p for p in check_template("{target}/{filter}.fits"))
    assert any(".fits" in p for p in check_template("{target}_{seq}.png"))


def test_night_date_is_the_evening_date_in_site_time() -> None:
    cet = timezone(timedelta(hours=1))
    assert night_date(datetime(2025, 1, 15, 20, 0, tzinfo=UTC), cet).isoformat() == "2025-01-15"
    assert night_date(datetime(2025, 1, 16, 4, 0, tzinfo=UTC), cet).isoformat() == "2025-01-15"
    assert night_date(datetime(2025, 1, 16, 11, 30, tzinfo=UTC), cet).isoformat() == "2025-01-16"


def test_frame_path_stays_inside_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rel = expand(
        DEFAULT_TEMPLATE,
        target="M31",
        filter="L",
        exposure=60,
        frame_type="light",
        seq=1,
        when=WHEN,
    )
    assert frame_path(data, rel) == data.resolve() / "M31" / "L" / "M31_L_60s_0001.fits"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data / "link").symlink_to(outside)
    with pytest.raises(TemplateError, match="outside"):
        frame_path(data, PurePosixPath("link/x.fits"))
    with pytest.raises(TemplateError):
        frame_path(data, "../x.fits")
