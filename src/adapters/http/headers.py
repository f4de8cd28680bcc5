"""Security headers: what a browser may do with the app's answers.

:class:`SecurityHeaders` (ASGI middleware) adds to every answer ``X-Content-Type-Options:
nosniff``, and to every HTML answer (the review pages, the API documentation):

* ``Content-Security-Policy`` — :data:`PAGE_POLICY` unless the route set its own (the
  documentation pages set :data:`DOCS_POLICY`). Scripts only from the app itself, never inline;
  no frames, plugins or ``<base>``; forms post only to the app;
* ``X-Frame-Options: DENY`` (for browsers without ``frame-ancestors``);
* ``Cache-Control: no-store`` (a page of audit data stays out of shared and disk caches);
* ``Referrer-Policy: no-referrer`` (page addresses name records).
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

__all__ = ["DOCS_POLICY", "PAGE_POLICY", "SecurityHeaders"]

_COMMON = "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#: The review pages: nothing but the app's own scripts, styles and images.
PAGE_POLICY: Final = (
    f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; {_COMMON}"
)
#: Swagger UI and ReDoc (served from the app, no CDN): their scripts are files of the app, but
#: they set styles at run time (inline ``<style>``), draw icons from ``data:`` images, and
#: ReDoc searches in a worker it makes from a ``blob:``.
DOCS_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    f"img-src 'self' data:; worker-src 'self' blob:; {_COMMON}"
)


class SecurityHeaders:
    """ASGI middleware adding the security headers (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
                    headers["X-Frame-Options"] = "DENY"
                    headers["Cache-Control"] = "no-store"
                    headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, sending)
