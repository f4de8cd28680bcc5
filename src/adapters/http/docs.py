"""The files the app's pages load, served by the app.

* ``GET /assets/{name}`` — the review pages' style sheets (:data:`ASSETS`: a fixed list,
  nothing else on disk is reachable); public: styles, no data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from adapters.http.auth import Public

__all__ = ["ASSETS", "router"]

_HERE = Path(__file__).parent
#: Every file ``/assets/{name}`` serves: name → (file, media type).
ASSETS: Final[dict[str, tuple[Path, str]]] = {
    "review.css": (_HERE / "static" / "review.css", "text/css"),
    "login.css": (_HERE / "static" / "login.css", "text/css"),
}

router = APIRouter(include_in_schema=False)


@router.get("/assets/{name}", dependencies=[Public("scripts and styles of the pages; no data")])
def asset(name: str) -> Response:
    """One of :data:`ASSETS` (revalidated by the browser on each use: they change with the
    app)."""
    found = ASSETS.get(name)
    if found is None:
        raise HTTPException(404, f"no asset {name!r}")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})
