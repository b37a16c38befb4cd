"""Files over HTTP, read-only and inside the data directory: seed 004's ``/media/data/...``
(the stacked results, the calibration index and masters, the stacker's debug logs) and seed
002's image recall from the image index (``/api/images``, ``/api/images/ID``)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as UrlPath
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from runner.control.web_camera import FailReply, fail

#: what seed 004 serves under /media/data (the frames themselves: /api/images/ID)
MEDIA_DIRS = ("stacked", "calibration", "debug")
TYPES = {".jpeg": "image/jpeg", ".jpg": "image/jpeg", ".json": "application/json",
         ".tiff": "image/tiff", ".tif": "image/tiff", ".txt": "text/plain; charset=utf-8",
         ".fits": "application/fits", ".fit": "application/fits"}


def inside(root: Path, relative: str) -> Path | None:
    """``relative`` as an existing file inside ``root``, or None: no absolute path, no
    ``..``, no symlink (anywhere on the way) leading out."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    rel = PurePosixPath(relative)
    if rel.is_absolute() or any(p in ("..", "") for p in rel.parts):
        return None
    base = root.resolve()
    target = (base / Path(*rel.parts)).resolve()
    if base not in target.parents or not target.is_file():
        return None
    return target


class ImageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(None, max_length=200)
    filter: str | None = Field(None, max_length=50)
    type: Literal["light", "dark", "flat", "bias"] | None = None
    since: datetime | None = Field(None, description="ISO time; a time without zone is UTC")
    run_id: str | None = Field(None, max_length=200)
    limit: int = Field(100, ge=1, le=10000)


class ImageRow(BaseModel):
    id: int
    path: str
    frame_type: str
    exposure: float
    date_obs: str
    target: str | None = None
    filter: str | None = None
    binning: int
    width: int
    height: int
    gain: int | None = None
    offset: int | None = None
    ccd_temp: float | None = None
    set_temp: float | None = None
    focus_position: int | None = None
    focus_temp: float | None = None
    hfr: float | None = None
    star_count: int | None = None
    guide_rms: float | None = None
    guide_rms_ra: float | None = None
    guide_rms_dec: float | None = None
    guide_unit: str | None = None
    ra: float | None = None
    dec: float | None = None
    run_id: str | None = None
    url: str


class ImageDetail(ImageRow):
    header: dict[str, Any]


def _rows(data_dir: Path, q: ImageQuery) -> list[dict[str, Any]]:
    from datetime import UTC

    from runner.storage.index import INDEX_FILENAME, ImageIndex, rows_as_dicts

    if not (data_dir / INDEX_FILENAME).exists():
        return []
    since = q.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with ImageIndex(data_dir) as index:
        records = index.query(target=q.target, filter=q.filter, frame_type=q.type,
                              since=since, run_id=q.run_id, limit=q.limit)
    rows = rows_as_dicts(records)
    for row in rows:
        row["url"] = f"/api/images/{row['id']}?format=fits"
    return rows


def _one(data_dir: Path, image_id: int) -> dict[str, Any] | None:
    from runner.storage.index import INDEX_FILENAME, ImageIndex, rows_as_dicts

    if not (data_dir / INDEX_FILENAME).exists():
        return None
    with ImageIndex(data_dir) as index:
        record = index.by_id(image_id)
    if record is None:
        return None
    out = rows_as_dicts([record])[0]
    out["url"] = f"/api/images/{image_id}?format=fits"
    return out


def _header(path: Path) -> dict[str, Any]:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        return {k: (v if isinstance(v, int | float | str | bool) else str(v))
                for k, v in header.items() if k not in ("COMMENT", "HISTORY", "")}


def router(hub: Any) -> APIRouter:
    r = APIRouter()

    @r.get("/media/data/{path:path}", tags=["seed 004"], response_class=Response,
           summary="The generated files: stacked/, calibration/, debug/ (read-only)",
           responses={200: {"content": {"image/jpeg": {}, "application/json": {},
                                        "image/tiff": {}}},
                      404: {"description": "no such file (or outside the data directory)",
                            "model": FailReply}})
    async def media(path: str) -> Response:
        top = path.split("/", 1)[0]
        found = inside(hub.data_dir, path) if top in MEDIA_DIRS else None
        if found is None:
            return fail(404, f"no file {path!r} under /media/data (stacked/, calibration/, "
                             "debug/)")
        return FileResponse(found, media_type=TYPES.get(found.suffix.lower(),
                                                        "application/octet-stream"))

    @r.get("/api/images", tags=["seed 002"], response_model=list[ImageRow],
           summary="Image recall from the image index")
    async def images(q: Annotated[ImageQuery, Query()]) -> Any:
        return await asyncio.to_thread(_rows, hub.data_dir, q)

    @r.get("/api/images/{image_id}", tags=["seed 002"], response_model=ImageDetail,
           summary="One frame: its row and FITS header, or the file with format=fits",
           responses={200: {"content": {"application/json": {}, "application/fits": {}}},
                      404: {"description": "unknown id", "model": FailReply}})
    async def image(image_id: int = UrlPath(ge=0, le=2**62),
                    format: Literal["json", "fits"] = Query("json")) -> Any:
        row = await asyncio.to_thread(_one, hub.data_dir, image_id)
        found = None if row is None else inside(hub.data_dir, row["path"])
        if row is None or found is None:
            return fail(404, f"no image {image_id}")
        if format == "fits":
            return FileResponse(found, media_type="application/fits",
                                filename=found.name)
        row["header"] = await asyncio.to_thread(_header, found)
        return JSONResponse(row)

    return r
