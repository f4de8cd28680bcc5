"""A faithful in-memory simulator of the Intercom REST API (companies, data attributes, webhooks).

Serve :func:`create_intercom_app` with uvicorn (``adapters.simulators.server.serving``) and point
an httpx client at it with ``Authorization: Bearer <token>``. It speaks the shapes in reference
PART B: ``error.list`` bodies, ``X-RateLimit-*`` headers on every API response, a per-10-second
call budget answered with 429 + ``Retry-After``, the ``Intercom-Version`` header, page lists,
the one-at-a-time scroll, and signed ``notification_event`` webhooks. ``/_sim/*`` endpoints
(no auth) expose call counters and the webhook log, and ``POST /_sim/qualified_companies``
creates a company as Messenger qualification does (no ``company_id``). The workspace is
:mod:`.intercom_state`, the routes :mod:`.intercom_routes`, and the auth, version, fault and
rate-limit checks in front of them :mod:`.intercom_gateway`.

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
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.simulators.intercom_gateway import Gateway, RateLimiter, error_response
from adapters.simulators.intercom_model import IntercomError
from adapters.simulators.intercom_routes import companies, data_attributes, simulator
from adapters.simulators.intercom_state import IntercomState
from adapters.simulators.intercom_webhooks import WebhookDelivery, WebhookDispatcher

__all__ = ["IntercomError", "IntercomState", "WebhookDelivery", "create_intercom_app"]


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
    app = FastAPI(
        title="Intercom simulator",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.intercom = sim
    app.state.webhooks = dispatcher
    app.add_exception_handler(IntercomError, _on_intercom_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for router in (companies, data_attributes, simulator):
        app.include_router(router)
    app.add_middleware(
        Gateway,
        state=sim,
        token=token,
        limiter=RateLimiter(rate_limit_per_10s, sim.now),
        # The routers' own routes name the endpoint a call is counted under: the app's route
        # list holds the included routers, which match without saying which route did.
        routes=[*companies.routes, *data_attributes.routes],
        fault_rate=fault_rate,
        rng=random.Random(seed),
    )
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Webhooks flow only while the app is served, so a state reused by a later app is not
    # left feeding a dispatcher that nobody runs.
    sim: IntercomState = app.state.intercom
    dispatcher: WebhookDispatcher | None = app.state.webhooks
    if dispatcher is not None:
        sim.add_sink(dispatcher)
        dispatcher.start()
    try:
        yield
    finally:
        if dispatcher is not None:
            sim.remove_sink(dispatcher)
            await asyncio.to_thread(dispatcher.stop)


def _request_id(request: Request) -> str:
    sim: IntercomState = request.app.state.intercom
    return sim.new_uuid()


async def _on_intercom_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, IntercomError):  # registered for that type only
        raise exc
    return error_response(exc, _request_id(request))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for that type only
        raise exc
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
    return error_response(IntercomError(400, "parameter_invalid", message), _request_id(request))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # registered for that type only
        raise exc
    if exc.status_code == 404:
        err = IntercomError(404, "not_found", "Resource Not Found")
    else:
        err = IntercomError(exc.status_code, "bad_request", str(exc.detail))
    return error_response(err, _request_id(request))
