"""Frames on disk: atomic FITS files, names from the output template, the SQLite image index.

Names load on first use (PEP 562): the executor imports naming and the index, and
loading ``fits`` (astropy) eagerly would put astropy into ``validate`` and ``estimate``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.storage.fits import IMAGETYP, FrameMeta, build_header, save_frame, write_fits
    from runner.storage.index import INDEX_FILENAME, ImageIndex, ImageRecord, Summary
    from runner.storage.naming import (
        DEFAULT_TEMPLATE,
        FIELDS,
        TemplateError,
        check_template,
        expand,
        frame_path,
        night_date,
        sanitize_component,
    )

__all__ = [
    "DEFAULT_TEMPLATE",
    "FIELDS",
    "IMAGETYP",
    "INDEX_FILENAME",
    "FrameMeta",
    "ImageIndex",
    "ImageRecord",
    "Summary",
    "TemplateError",
    "build_header",
    "check_template",
    "expand",
    "frame_path",
    "night_date",
    "sanitize_component",
    "save_frame",
    "write_fits",
]

#: which module each name lives in
_WHERE = {name: module for module, names in {
    "fits": ("IMAGETYP", "FrameMeta", "build_header", "save_frame", "write_fits"),
    "index": ("INDEX_FILENAME", "ImageIndex", "ImageRecord", "Summary"),
    "naming": ("DEFAULT_TEMPLATE", "FIELDS", "TemplateError", "check_template", "expand",
               "frame_path", "night_date", "sanitize_component"),
}.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'runner.storage' has no attribute {name!r}")
    return getattr(importlib.import_module(f"runner.storage.{_WHERE[name]}"), name)
