"""The API's documentation pages and the files the app's pages load, all served by the app.

* ``GET /docs`` (Swagger UI) and ``GET /redoc`` (ReDoc) over ``/openapi.json``: their
  scripts and styles come from Python packages (``fastapi-offline`` ships Swagger UI's and
  ReDoc's bundles), so the pages work with no CDN and no network beyond the app. Like
  ``/openapi.json`` they are FastAPI's kind of route, not API routes (:func:`install`); they
  hold no data. Their HTML has no inline script (Swagger UI is started by ``docs.js``), so
  the Content-Security-Policy refuses every inline script (:data:`adapters.http.headers.
  DOCS_POLICY`).
* ``GET /assets/{name}`` — those files and the review pages' style sheets (:data:`ASSETS`:
  a fixed list, nothing else on disk is reachable); public: code and styles, no data.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response
from fastapi.templating import Jinja2Templates

from adapters.http.auth import Public
from adapters.http.headers import DOCS_POLICY

__all__ = ["ASSETS", "install", "router"]

_HERE = Path(__file__).parent
_BUNDLES = Path(str(files("fastapi_offline") / "static"))
#: Every file ``/assets/{name}`` serves: name → (file, media type).
ASSETS: Final[dict[str, tuple[Path, str]]] = {
    "review.css": (_HERE / "static" / "review.css", "text/css"),
    "login.css": (_HERE / "static" / "login.css", "text/css"),
    "docs.js": (_HERE / "static" / "docs.js", "text/javascript"),
    "swagger-ui.css": (_BUNDLES / "swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": (_BUNDLES / "swagger-ui-bundle.js", "text/javascript"),
    "redoc.standalone.js": (_BUNDLES / "redoc.standalone.js", "text/javascript"),
    "favicon.png": (_BUNDLES / "favicon.png", "image/png"),
}
_TEMPLATES = Jinja2Templates(directory=_HERE / "templates")

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


def install(api: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` (the app is made with FastAPI's own pages off)."""
    api.add_route("/docs", _swagger_ui, include_in_schema=False)
    api.add_route("/redoc", _redoc, include_in_schema=False)


async def _swagger_ui(request: Request) -> Response:
    return _page(request, "docs.html")


async def _redoc(request: Request) -> Response:
    return _page(request, "redoc.html")


def _page(request: Request, template: str) -> Response:
    api: FastAPI = request.app
    context = {
        "title": api.title,
        "root": request.scope.get("root_path", "").rstrip("/"),
        "openapi": api.openapi_url or "/openapi.json",
    }
    page = _TEMPLATES.TemplateResponse(request, template, context)
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page
