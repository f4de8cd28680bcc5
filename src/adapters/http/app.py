"""The service's HTTP app (FastAPI): webhook intake, health, metrics and the audit API.

:func:`create_app` puts the :class:`~adapters.bootstrap.Service` on ``app.state.service``
(read by the dependencies of :mod:`adapters.http.deps`) and mounts the module-level routers:

* ``POST /webhooks/intercom`` (:mod:`adapters.http.webhooks`) — Intercom's signed company
  notifications into the ledger's inbox;
* ``GET /health``, ``/health/live``, ``/health/ready`` (:mod:`adapters.http.health`) —
  public; counts and reasons only, never data;
* ``GET /metrics`` (:mod:`adapters.http.metrics`) — Prometheus' text format;
* the audit API (:mod:`adapters.http.audit`), the review pages (:mod:`adapters.http.review`)
  and, with ``replay_settings``, replays (:mod:`adapters.http.replays`);
* ``/docs`` and ``/redoc`` with their files (:mod:`adapters.http.docs`), served by the app.

Everything but the webhook, health, the sign-in form and the pages' files is behind API keys
(:mod:`adapters.http.auth`): every route declares its scope or is refused. The app also refuses
query parameters a route does not declare (:func:`known_query_parameters`), answers a
read-model query error 422 and an unavailable read-model database 503, and its lifespan starts
and stops the intake's writer and the worker. Around every request (outermost first): one log
line, a count and a duration under a request id (:mod:`adapters.http.observe`), security
headers (:mod:`adapters.http.headers`), and the route's cap on the body
(:mod:`adapters.http.limits`).

Settings read here (from ``service.replay_settings``, the :class:`~adapters.settings.Settings`;
absent in tests): ``metrics_public`` opens ``/metrics`` to callers without a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from adapters.bootstrap import Service
from adapters.http import audit, docs, health, metrics, replays, review, webhooks
from adapters.http.auth import LoginRequired, guard
from adapters.http.headers import SecurityHeaders
from adapters.http.limits import BodyLimit
from adapters.http.observe import ObserveRequests
from adapters.http.params import invalid
from adapters.http.sessions import ReviewSessions
from adapters.service.intake import log
from projections.queries import AuditQueryError

__all__ = ["create_app", "known_query_parameters"]


def create_app(service: Service) -> FastAPI:
    """The HTTP app serving ``service`` (see :class:`adapters.bootstrap.Service`); its lifespan
    starts and stops the intake's writer and the worker."""
    api = FastAPI(
        title="syncledger",
        summary="Salesforce Accounts ⇄ Intercom Companies sync, recorded in an event ledger.",
        lifespan=_lifespan,
        docs_url=None,  # served from packaged files instead (adapters.http.docs)
        redoc_url=None,
        dependencies=[Depends(guard), Depends(known_query_parameters)],
        exception_handlers={
            LoginRequired: _login_required,
            AuditQueryError: _bad_query,
            SQLAlchemyError: _store_down,
        },
    )
    settings = service.replay_settings
    api.state.service = service
    api.state.replay_runs = replays.ReplayRuns()
    api.state.review_sessions = ReviewSessions()
    api.state.public_if = frozenset(
        flag for flag in (metrics.PUBLIC_METRICS,) if getattr(settings, flag, False) is True
    )
    measured = metrics.instrument(api, service)
    for module in (webhooks, health, metrics, audit, review, docs):
        api.include_router(module.router)
    if settings is not None:
        api.include_router(replays.router)
    docs.install(api)
    # added innermost first: the body limit, then the headers, then the request log outermost
    api.add_middleware(BodyLimit)
    api.add_middleware(SecurityHeaders)
    api.add_middleware(ObserveRequests, metrics=measured)
    return api


@asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    service: Service = api.state.service
    service.intake.start()
    if service.worker is not None:
        service.worker.start()
    try:
        yield
    finally:
        if service.worker is not None:
            await asyncio.to_thread(service.worker.stop)
        await asyncio.to_thread(service.intake.stop)
        service.on_shutdown()


async def _login_required(_: Request, exc: LoginRequired) -> Response:
    return RedirectResponse(exc.location, status_code=303)


async def _bad_query(request: Request, exc: AuditQueryError) -> Response:
    return await request_validation_exception_handler(request, invalid("query", str(exc)))


async def _store_down(_: Request, exc: SQLAlchemyError) -> Response:
    log.warning("read models unavailable: %s", exc)
    return JSONResponse(
        {"detail": "the read models' database is unavailable; retry later"}, status_code=503
    )


def known_query_parameters(request: Request) -> None:
    """App-wide: refuse (422) query parameters an API route does not declare, so a misspelt
    filter (``?feild=Industry``) is an error instead of a silently unfiltered answer, and
    repeated ones (``?field=A&field=B``: every parameter here takes one value). The
    browser pages (not in the schema) read their form leniently and are left alone."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not getattr(route, "include_in_schema", False):
        return
    known = set(_query_names(dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise invalid(unknown[0], f"unknown query parameter (this route takes: {allowed})")
    for name in known:
        if len(request.query_params.getlist(name)) > 1:
            raise invalid(name, "given more than once; give it once")


def _query_names(dependant: Any) -> Iterator[str]:
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_names(sub)
