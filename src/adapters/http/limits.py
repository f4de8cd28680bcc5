"""Request bodies are capped per route and counted as they arrive, never buffered whole.

:class:`BodyLimit` is ASGI middleware: it looks the request's route up in :data:`BODY_LIMITS`
(``(method, path)`` → bytes; :data:`DEFAULT_BODY_LIMIT` for any other route) and

* answers 413 at once when ``Content-Length`` declares more than the limit (nothing is read);
* otherwise counts the body chunk by chunk as the route reads it, and stops the read with a
  413 (:class:`BodyTooLarge`) as soon as the count passes the limit — a streamed 200 MB post
  costs one chunk of memory, not 200 MB.

The answer is ``{"detail": "..."}`` like the API's other errors. The webhook route counts its
own body against :data:`~adapters.service.intake.MAX_WEBHOOK_BYTES` (it answers in its own
shape and counts the refusal), so it is listed here with ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from ledger.errors import SyncLedgerError

__all__ = [
    "BODY_LIMITS",
    "DEFAULT_BODY_LIMIT",
    "FORM_BODY_LIMIT",
    "JSON_BODY_LIMIT",
    "BodyLimit",
    "BodyTooLarge",
]

#: A browser form (the review pages' sign-in and sign-out): a key, a token, a page address.
FORM_BODY_LIMIT: Final = 16 * 1024
#: A JSON request of the API (a replay request with a proposed configuration).
JSON_BODY_LIMIT: Final = 1024 * 1024
#: Any route not listed (they read no body; one added later starts small).
DEFAULT_BODY_LIMIT: Final = FORM_BODY_LIMIT
#: ``(method, path)`` → the most bytes its body may have; ``None``: the route counts its own.
BODY_LIMITS: Final[Mapping[tuple[str, str], int | None]] = {
    ("POST", "/webhooks/intercom"): None,
    ("POST", "/review/login"): FORM_BODY_LIMIT,
    ("POST", "/review/logout"): FORM_BODY_LIMIT,
    ("POST", "/replays"): JSON_BODY_LIMIT,
}


class BodyTooLarge(SyncLedgerError, HTTPException):
    """A request body over its route's limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        HTTPException.__init__(self, 413, _message(limit))
        self.limit = limit


def _message(limit: int) -> str:
    return f"the request body is larger than this route takes ({limit} bytes)"


class BodyLimit:
    """ASGI middleware capping request bodies (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Mapping[tuple[str, str], int | None] = BODY_LIMITS,
        default: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get((scope["method"], scope["path"]), self.default)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        counted = 0
        started = False

        async def counting() -> Message:
            nonlocal counted
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > limit:
                    raise BodyTooLarge(limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except BodyTooLarge:
            # A route reading the body outside FastAPI's own handling: answer here, unless an
            # answer has begun (then there is nothing left to do but drop the connection).
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": _message(limit)}, status_code=413, headers={"Connection": "close"}
    )


def _content_length(scope: AsgiScope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
