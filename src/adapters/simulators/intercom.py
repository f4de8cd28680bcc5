"""A faithful in-memory simulator of the Intercom REST API (companies, data attributes, webhooks).

Serve :func:`create_intercom_app` with uvicorn (``adapters.simulators.server.serving``) and point
an httpx client at it with ``Authorization: Bearer <token>``. It speaks the shapes in reference
PART B: ``error.list`` bodies, ``X-RateLimit-*`` headers on every API response, a per-10-second
call budget answered with 429 + ``Retry-After``, the ``Intercom-Version`` header, page lists,
the one-at-a-time scroll, and signed ``notification_event`` webhooks. ``/_sim/*`` endpoints
(no auth) expose call counters and the webhook log, and ``POST /_sim/qualified_companies``
creates a company as Messenger qualification does (no ``company_id``).

Known, deliberate differences from the real API:

- ``POST /companies/list`` includes companies without users (the real one hides them) and has
  no 10,000-result cap; ``per_page`` above 60 is clamped to 60.
- ``DELETE /companies/{id}`` removes the company at once (the real one archives asynchronously);
  ``company.deleted`` is still delivered from the background worker.
- Every successful update bumps ``updated_at`` and emits ``company.updated``, even if nothing
  changed; unset optional fields are ``null`` rather than omitted.
- Webhooks are sent for every topic regardless of ``Intercom-Version`` (before 2.7 the real API
  had no company.updated/company.deleted topics).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.simulators.intercom_model import IntercomError
from adapters.simulators.intercom_state import IntercomState
from adapters.simulators.intercom_webhooks import WebhookDelivery, WebhookDispatcher

__all__ = ["IntercomError", "IntercomState", "WebhookDelivery", "create_intercom_app"]

JSON = dict[str, Any]

# Versions the real API accepts in the Intercom-Version header (OAS enum, plus later releases).
KNOWN_VERSIONS = frozenset(
    [f"1.{i}" for i in range(5)] + [f"2.{i}" for i in range(17)] + ["Unstable"]
)
MAX_PER_PAGE = 60


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


def _error_response(exc: IntercomError, request_id: str) -> JSONResponse:
    return JSONResponse(exc.body(request_id), status_code=exc.status, headers=exc.headers)


class _Gateway:
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
            response = _error_response(exc, self.state.new_uuid())
            response.headers.update(self.limiter.headers())
            await response(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.limiter.headers())
            await send(message)

        await self.app(scope, receive, stamped)


async def _json_object(request: Request) -> JSON:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise IntercomError(400, "bad_request", "The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise IntercomError(400, "bad_request", "The request body must be a JSON object")
    return data


def _page_list(request: Request, data: list[JSON], total: int, page: int, per_page: int) -> JSON:
    total_pages = math.ceil(total / per_page)
    next_url = (
        str(request.url.include_query_params(page=page + 1, per_page=per_page))
        if page < total_pages
        else None
    )
    return {
        "type": "list",
        "data": data,
        "pages": {
            "type": "pages",
            "next": next_url,
            "page": page,
            "per_page": per_page,
            "total_pages": total_pages,
        },
        "total_count": total,
    }


def create_intercom_app(
    state: IntercomState | None = None,
    *,
    token: str = "sim-token",
    webhook_url: str | None = None,
    client_secret: str | None = None,
    duplicate_webhooks: bool = False,
    shuffle_webhooks: bool = False,
    fault_rate: float = 0.0,
    rate_limit_per_10s: int = 1666,
    seed: int | None = None,
) -> FastAPI:
    """Build the simulator app over ``state`` (a fresh :class:`IntercomState` if None).

    With ``webhook_url``, every company create/update/delete (API or state helper) made while the
    app is served is posted there as a ``notification_event`` signed with ``client_secret`` (no
    ``X-Hub-Signature`` without a secret), from a worker thread that runs for the app's lifespan.
    ``fault_rate`` makes that fraction of authenticated calls fail (half 429, half 503) without
    effect; ``seed`` makes faults, ids and webhook order repeatable.
    """
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
    if rate_limit_per_10s < 1:
        raise ValueError(f"rate_limit_per_10s must be positive, got {rate_limit_per_10s}")
    sim = state if state is not None else IntercomState(seed=seed)
    dispatcher: WebhookDispatcher | None = None
    if webhook_url is not None:
        dispatcher = WebhookDispatcher(
            webhook_url,
            app_id=sim.app_id,
            client_secret=client_secret,
            now=sim.now,
            seed=seed,
            duplicate=duplicate_webhooks,
            shuffle=shuffle_webhooks,
            on_delivery=sim.record_delivery,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Webhooks flow only while the app is served, so a state reused by a later app is not
        # left feeding a dispatcher that nobody runs.
        if dispatcher is not None:
            sim.add_sink(dispatcher)
            dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                sim.remove_sink(dispatcher)
                await asyncio.to_thread(dispatcher.stop)

    app = FastAPI(
        title="Intercom simulator",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.intercom = sim
    app.state.webhooks = dispatcher

    async def on_intercom_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, IntercomError):  # registered for that type only
            raise exc
        return _error_response(exc, sim.new_uuid())

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # registered for that type only
            raise exc
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        return _error_response(IntercomError(400, "parameter_invalid", message), sim.new_uuid())

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # registered for that type only
            raise exc
        if exc.status_code == 404:
            err = IntercomError(404, "not_found", "Resource Not Found")
        else:
            err = IntercomError(exc.status_code, "bad_request", str(exc.detail))
        return _error_response(err, sim.new_uuid())

    app.add_exception_handler(IntercomError, on_intercom_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

    @app.post("/companies")
    async def create_or_update_company(request: Request) -> JSONResponse:
        return JSONResponse(sim.upsert_company(await _json_object(request)))

    @app.get("/companies")
    async def retrieve_companies(
        request: Request,
        company_id: str | None = None,
        name: str | None = None,
        page: int = 1,
        per_page: int = 15,
    ) -> JSONResponse:
        if company_id is not None or name is not None:
            return JSONResponse(sim.find_by(company_id=company_id, name=name))
        per_page = min(per_page, MAX_PER_PAGE)
        data, total = sim.list_page(page, per_page, "desc")
        if {"tag_id", "segment_id"} & set(request.query_params):
            # The simulator has no tags or segments, so such a filter matches nothing.
            data, total = [], 0
        return JSONResponse(_page_list(request, data, total, page, per_page))

    @app.post("/companies/list")
    async def list_companies(
        request: Request, page: int = 1, per_page: int = 15, order: str = "desc"
    ) -> JSONResponse:
        per_page = min(per_page, MAX_PER_PAGE)
        data, total = sim.list_page(page, per_page, order)
        return JSONResponse(_page_list(request, data, total, page, per_page))

    @app.get("/companies/scroll")
    async def scroll_companies(scroll_param: str | None = None) -> JSONResponse:
        data, param = sim.scroll(scroll_param)
        body = {"type": "list", "data": data, "pages": None, "total_count": None}
        return JSONResponse({**body, "scroll_param": param})

    @app.get("/companies/{id}")
    async def retrieve_company(id: str) -> JSONResponse:
        return JSONResponse(sim.find(id))

    @app.put("/companies/{id}")
    async def update_company(id: str, request: Request) -> JSONResponse:
        return JSONResponse(sim.update_company_by_id(id, await _json_object(request)))

    @app.delete("/companies/{id}")
    async def delete_company(id: str) -> JSONResponse:
        return JSONResponse(sim.remove(id))

    @app.get("/data_attributes")
    async def list_data_attributes(
        model: str | None = None, include_archived: bool = False
    ) -> JSONResponse:
        if model is not None and model not in ("contact", "company", "conversation"):
            raise IntercomError(
                400, "parameter_invalid", "model must be one of contact, company, conversation"
            )
        data = sim.list_attributes(model, include_archived)
        return JSONResponse({"type": "list", "data": data})

    @app.post("/data_attributes")
    async def create_data_attribute(request: Request) -> JSONResponse:
        return JSONResponse(sim.create_attribute(await _json_object(request)))

    @app.put("/data_attributes/{attribute_id}")
    async def update_data_attribute(attribute_id: int, request: Request) -> JSONResponse:
        return JSONResponse(sim.update_attribute(attribute_id, await _json_object(request)))

    @app.get("/_sim/counters")
    async def sim_counters() -> JSONResponse:
        counters = sim.counters
        return JSONResponse(
            {
                "counters": counters,
                "total": sum(counters.values()),
                "intercom_versions": sim.intercom_versions,
            }
        )

    @app.post("/_sim/reset_counters")
    async def sim_reset_counters() -> JSONResponse:
        sim.reset_counters()
        return JSONResponse({"counters": {}, "total": 0, "intercom_versions": {}})

    @app.post("/_sim/qualified_companies")
    async def sim_qualified_company(request: Request) -> JSONResponse:
        return JSONResponse(sim.qualify_company(await _json_object(request)))

    @app.get("/_sim/webhooks")
    async def sim_webhooks() -> JSONResponse:
        """Every delivery attempt so far, and how many deliveries are still to finish."""
        pending = dispatcher.pending if dispatcher is not None else 0
        deliveries = [d.to_json() for d in sim.webhook_log]
        return JSONResponse({"deliveries": deliveries, "pending": pending})

    app.add_middleware(
        _Gateway,
        state=sim,
        token=token,
        limiter=RateLimiter(rate_limit_per_10s, sim.now),
        routes=app.router.routes,
        fault_rate=fault_rate,
        rng=random.Random(seed),
    )
    return app
