"""Every HTTP request logged once, counted and timed, under a request id.

:class:`ObserveRequests` (ASGI middleware, the app's outermost) gives each request an id —
the caller's ``X-Request-ID`` when it is a sane token (:data:`REQUEST_ID`, at most 128
characters), else a new uuid4 hex — echoes it in the answer's ``X-Request-ID`` and puts it on
``request.state.request_id``. When the answer is done it logs one line on the
``syncledger.http`` logger (INFO) with ``request_id``, ``method``,
``route`` (the route template, ``/history/account/{salesforce_id}``, so no record id or query
is logged), ``status`` and ``duration_ms`` as ``extra`` fields (JSON logs carry them as keys),
and counts and times the request in the app's metrics (:class:`adapters.http.metrics.
HttpMetrics`). ``syncledger serve`` turns uvicorn's own access log off, so this is the one
line per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from adapters.http.metrics import HttpMetrics

__all__ = ["REQUEST_ID", "ObserveRequests", "log", "request_id"]

log = logging.getLogger("syncledger.http")

#: A caller's request id we keep: a token of letters, digits and ``._:+/=-``, 1–128 long.
REQUEST_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")


def request_id(presented: str | None) -> str:
    """``presented`` when it is a sane token (:data:`REQUEST_ID`), else a new uuid4 hex."""
    if presented is not None and REQUEST_ID.fullmatch(presented):
        return presented
    return uuid.uuid4().hex


class ObserveRequests:
    """ASGI middleware: request id, one log line, count and duration (module docstring)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        presented = _header(scope, b"x-request-id")
        rid = request_id(presented)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500  # what the server answers when the app ends without answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self._record(scope["method"], route, status, seconds, rid)

    def _record(self, method: str, route: str, status: int, seconds: float, rid: str) -> None:
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.duration.labels(method, route).observe(seconds)
        duration_ms = round(seconds * 1000, 1)
        log.info(
            "%s %s %d in %.1f ms",
            method,
            route,
            status,
            duration_ms,
            extra={
                "request_id": rid,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            },
        )


def _header(scope: AsgiScope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
