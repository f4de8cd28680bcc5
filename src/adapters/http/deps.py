"""What a route gets from the running service, as FastAPI dependencies with named aliases.

:func:`adapters.http.app.create_app` puts the :class:`~adapters.bootstrap.Service` on
``app.state.service``; these read it per request, so the routes live in module-level routers
and declare what they need in their signatures::

    @router.get("/events", dependencies=[Scope(AUDIT_READ)])
    def events(ledger: LedgerDep, after: int = 0) -> EventPage: ...

Access (``Scope``, ``Public``) is in :mod:`adapters.http.auth`. The getters are ``async``
only so that FastAPI calls them on the event loop instead of a worker thread (they never wait).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from adapters.bootstrap import Service
from adapters.http.sessions import ReviewSessions
from adapters.service.intake import WebhookIntake
from adapters.settings import ApiKeys
from ledger.application import LedgerApp
from projections.queries import Audit

__all__ = [
    "ApiKeysDep",
    "AuditDep",
    "IntakeDep",
    "LedgerDep",
    "ServiceDep",
    "SessionsDep",
    "get_api_keys",
    "get_audit",
    "get_intake",
    "get_ledger",
    "get_service",
    "get_sessions",
]


async def get_service(request: Request) -> Service:
    """The service the app serves (``app.state.service``, set by ``create_app``)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_ledger(service: ServiceDep) -> LedgerApp:
    """The service's ledger."""
    return service.ledger


LedgerDep = Annotated[LedgerApp, Depends(get_ledger)]


async def get_intake(service: ServiceDep) -> WebhookIntake:
    """The service's webhook intake."""
    return service.intake


IntakeDep = Annotated[WebhookIntake, Depends(get_intake)]


async def get_audit(service: ServiceDep) -> Audit:
    """The service's read models; without them the route answers 503 (as a dependency, that
    is decided before the route's own parameters are checked)."""
    if service.audit is None:
        raise HTTPException(503, "the read models are not configured on this server")
    return service.audit


AuditDep = Annotated[Audit, Depends(get_audit)]


async def get_api_keys(service: ServiceDep) -> ApiKeys | None:
    """The configured API keys (``SYNCLEDGER_API_KEYS``); ``None``: none configured."""
    return service.api_keys


ApiKeysDep = Annotated[ApiKeys | None, Depends(get_api_keys)]


async def get_sessions(request: Request) -> ReviewSessions:
    """The review pages' sign-in sessions (``app.state.review_sessions``, set by
    ``create_app``)."""
    sessions: ReviewSessions = request.app.state.review_sessions
    return sessions


SessionsDep = Annotated[ReviewSessions, Depends(get_sessions)]
