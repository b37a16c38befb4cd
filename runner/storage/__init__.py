"""Frames on disk: atomic FITS files, names from the output template, the SQLite image index."""

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
