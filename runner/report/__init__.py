"""The night report as a page: ``runs/<id>/report.html`` with matplotlib plots.

:mod:`runner.report.collect` gathers one night's facts (events, summary, the image index,
the plan's site and targets), :mod:`runner.report.plots` draws them (Agg, no display) and
:mod:`runner.report.page` writes the self-contained HTML page and ``report.json``, which
keeps every figure the page shows.
"""

from __future__ import annotations

from pathlib import Path


def write_html_report(run_dir: Path) -> Path:
    """Write ``report.html`` (and ``report.json``) for the run in ``run_dir``."""
    from runner.report.collect import add_frames, collect_sky
    from runner.report.page import sky_later, write_page

    night = collect_sky(run_dir)
    sky = sky_later(night)  # first: the numbers that need astropy take longest
    return write_page(add_frames(night), sky)
