"""What stands in front of every simulated Intercom API call: the gateway and the rate limit.

:class:`Gateway` (ASGI middleware) counts the call, authenticates the bearer token, checks the
``Intercom-Version`` header, injects faults, spends the :class:`RateLimiter` budget and stamps the
``X-RateLimit-*`` headers on the answer; ``/_sim/*`` passes straight through.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.simulators.intercom_model import IntercomError
from adapters.simulators.intercom_state import IntercomState

# Versions the real API accepts in the Intercom-Version header (OAS enum, plus later releases).
KNOWN_VERSIONS = frozenset(
    [f"1.{i}" for i in range(5)] + [f"2.{i}" for i in range(17)] + ["Unstable"]
)


class RateLimiter:
    """``limit`` calls per 10-second window; a window opens with the first call after the last.

    Thread-safe. :meth:`headers` gives the ``X-RateLimit-*`` values for any response.
    """

    def __init__(self, limit: int, now: Callable[[], float], window: float = 10.0) -> None:
        self.limit = limit
        self._now = now
        self._window = window
        self._lock = threading.Lock()
        self._opened: float | None = None
        self._used = 0

    def _roll(self, now: float) -> None:
        if self._opened is None or now >= self._opened + self._window:
            self._opened, self._used = None, 0

    def take(self) -> None:
        """Spend one call, or raise 429 ``rate_limit_exceeded`` with ``Retry-After``."""
        with self._lock:
            now = self._now()
            self._roll(now)
            if self._opened is None:
                self._opened = now
            if self._used >= self.limit:
                retry = max(1, math.ceil(self._opened + self._window - now))
                raise IntercomError(
                    429,
                    "rate_limit_exceeded",
                    f"Exceeded rate limit of {self.limit} in 10_seconds",
                    headers={"Retry-After": str(retry)},
                )
            self._used += 1

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (Unix seconds) right now."""
        with self._lock:
            now = self._now()
            self._roll(now)
            reset = (self._opened if self._opened is not None else now) + self._window
            return {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.limit - self._used),
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }


def error_response(exc: IntercomError, request_id: str) -> JSONResponse:
    return JSONResponse(exc.body(request_id), status_code=exc.status, headers=exc.headers)


class Gateway:
    """ASGI middleware in front of every API route: count, authenticate, check the version,
    inject faults, spend the rate limit, and stamp the ``X-RateLimit-*`` headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: IntercomState,
        token: str,
        limiter: RateLimiter,
        routes: list[BaseRoute],
        fault_rate: float,
        rng: random.Random,
    ) -> None:
        self.app = app
        self.state = state
        self.token = token
        self.limiter = limiter
        self.routes = routes
        self.fault_rate = fault_rate
        self.rng = rng

    def _endpoint(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        return f"{scope['method']} {scope['path']}"

    def _admit(self, scope: Scope) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("authorization") != f"Bearer {self.token}":
            raise IntercomError(401, "unauthorized", "Access Token Invalid")
        version = headers.get("intercom-version")
        if version is not None and version not in KNOWN_VERSIONS:
            raise IntercomError(
                400,
                "intercom_version_invalid",
                f"The requested version '{version}' could not be recognized; "
                "send a version such as 2.14 in the Intercom-Version header",
            )
        if self.fault_rate and self.rng.random() < self.fault_rate:
            if self.rng.random() < 0.5:
                raise IntercomError(
                    429,
                    "rate_limit_exceeded",
                    f"Exceeded rate limit of {self.limiter.limit} in 10_seconds",
                    headers={"Retry-After": "1"},
                )
            raise IntercomError(
                503, "service_unavailable", "Service temporarily unavailable; please retry"
            )
        self.limiter.take()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim/"):
            await self.app(scope, receive, send)
            return
        self.state.count_call(self._endpoint(scope))
        for key, value in scope["headers"]:
            if key.lower() == b"intercom-version":
                self.state.record_version(value.decode("latin-1"))
        try:
            self._admit(scope)
        except IntercomError as exc:
            response = error_response(exc, self.state.new_uuid())
            response.headers.update(self.limiter.headers())
            await response(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.limiter.headers())
            await send(message)

        await self.app(scope, receive, stamped)
