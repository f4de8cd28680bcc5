"""The service's HTTP app (FastAPI): webhook intake, health, metrics and the audit API.

``POST /webhooks/intercom`` answers:

* 200 ``{"status": "accepted"}`` once the notification is stored in the ledger's inbox;
  ``"duplicate"`` for a notification id stored before; ``"ignored"`` for a topic that is not
  about companies (nothing is stored);
* 400 for a body that is not a company ``notification_event``, 401 for a missing or wrong
  ``X-Hub-Signature``, 413 for a body over 1 MiB: nothing is stored, and Intercom will not retry
  a 4xx with the same body;
* 503 when the ledger cannot store it right now: Intercom delivers it again later.

``GET /health`` reports the worker (cycles, leadership, last error), the inbox and pending
writes, and answers 503 while cycles keep failing. It is public (load balancers probe it) and
shows counts only, never data.

``GET /metrics`` is the same and more in Prometheus' text format (scope ``audit:read``).

Everything else is the audit API (:mod:`adapters.http.audit`), behind API keys
(:mod:`adapters.http.auth`): every route declares its scope or is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.bootstrap import Service
from adapters.http.audit import audit_router, invalid, review_router
from adapters.http.auth import AUDIT_READ, KEY_RESPONSES, REPLAY_EXECUTE, Authorizer, LoginRequired
from adapters.http.replays import replay_router
from adapters.service.intake import MAX_WEBHOOK_BYTES, Verdict, WebhookIntake, log
from adapters.service.worker import SyncWorker
from ledger.application import LedgerApp
from projections.queries import AuditQueryError

#: How long a webhook delivery waits for the ledger before it is answered 503.
STORE_TIMEOUT = 10.0

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored (`accepted`), seen before (`duplicate`), or not about companies "
        "(`ignored`).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {"enum": ["accepted", "duplicate", "ignored"]},
                        "id": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                    "required": ["status"],
                }
            }
        },
    },
    **{
        status: {"description": why, "content": {"application/json": {"schema": _ERROR}}}
        for status, why in {
            400: "Not a company notification_event.",
            401: "Missing or wrong X-Hub-Signature.",
            413: "Body over 1 MiB.",
            503: "The ledger cannot store it now; Intercom retries.",
        }.items()
    },
}
#: The webhook's request as OpenAPI describes it (the route reads the raw body to verify it).
WEBHOOK_REQUEST: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Hub-Signature",
            "in": "header",
            "required": False,
            "description": "`sha1=` HMAC-SHA1 of the raw body with the app's client secret.",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "An Intercom `notification_event` about a company.",
                    "properties": {
                        "type": {"const": "notification_event"},
                        "id": {"type": "string"},
                        "topic": {"type": "string"},
                        "data": {"type": "object"},
                    },
                    "required": ["type", "id", "topic", "data"],
                }
            }
        },
    },
}


def create_app(service: Service) -> FastAPI:
    """The HTTP app serving ``service`` (see :class:`adapters.bootstrap.Service`); its lifespan
    starts and stops the intake's writer and the worker."""
    intake = service.intake
    worker = service.worker
    on_shutdown = service.on_shutdown
    api_keys = service.api_keys
    audit = service.audit
    replay_settings = service.replay_settings
    intercom_attributes = service.intercom_attributes

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        intake.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            await asyncio.to_thread(intake.stop)
            on_shutdown()

    auth = Authorizer(api_keys)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceMetrics(intake, worker))
    requests = Counter(
        "syncledger_http_requests",
        "HTTP requests answered, by method, route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    api = FastAPI(
        title="syncledger",
        summary="Salesforce Accounts ⇄ Intercom Companies sync, recorded in an event ledger.",
        lifespan=lifespan,
        dependencies=[Depends(Authorizer.guard), Depends(known_query_parameters)],
    )
    api.add_middleware(CountRequests, counter=requests)

    @api.exception_handler(LoginRequired)
    async def login_required(_: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @api.exception_handler(AuditQueryError)
    async def bad_query(request: Request, exc: AuditQueryError) -> Response:
        return await request_validation_exception_handler(request, invalid("query", str(exc)))

    @api.exception_handler(SQLAlchemyError)
    async def store_down(_: Request, exc: SQLAlchemyError) -> Response:
        log.warning("read models unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the read models' database is unavailable; retry later"}, status_code=503
        )

    @api.post(
        "/webhooks/intercom",
        tags=["intake"],
        dependencies=[auth.public("Intercom signs each delivery; the signature is checked")],
        responses=WEBHOOK_RESPONSES,
        openapi_extra=WEBHOOK_REQUEST,
    )
    async def intercom_webhook(request: Request) -> JSONResponse:
        """Intercom company notifications, signed with the app's client secret."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
            return _answer(intake.too_large())
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                return _answer(intake.too_large())
        checked = intake.check(bytes(body), request.headers.get("x-hub-signature"))
        if isinstance(checked, Verdict):
            return _answer(checked)
        try:
            status = await asyncio.wait_for(
                asyncio.wrap_future(intake.keep(checked)), STORE_TIMEOUT
            )
        except Exception:
            return _answer(Verdict(503, "the ledger could not store the notification; retry"))
        return JSONResponse({"status": status, "id": checked.id})

    @api.get(
        "/health",
        tags=["operations"],
        dependencies=[auth.public("load balancers probe it; it shows counts, never data")],
    )
    async def health() -> JSONResponse:
        """Liveness and what the sync is doing."""
        app = intake.app
        body: dict[str, Any] = {
            "status": "ok",
            "ledger_position": app.state.position,
            "inbox": len(app.state.inbox),
            "pending_writes": len(app.state.pending),
            "config_version": app.state.config.version,
            "webhooks": {
                "kept": intake.kept,
                "duplicates": intake.duplicates,
                "rejected": intake.rejected,
            },
        }
        code = 200
        if worker is not None:
            st = worker.status
            body["worker"] = {
                "leader": st.leader,
                "cycles": st.cycles,
                "polls": st.polls,
                "failures_in_a_row": st.failures_in_a_row,
                "last_error": st.last_error,
                "last_cycle_at": st.last_cycle_at,
                "totals": st.totals,
            }
            if st.failures_in_a_row >= 3:
                body["status"], code = "degraded", 503
        return JSONResponse(body, status_code=code)

    @api.get(
        "/metrics",
        tags=["operations"],
        dependencies=[auth.requires(AUDIT_READ)],
        response_class=Response,
        responses={
            200: {
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
                "description": "Prometheus text format (OpenMetrics when asked for by Accept).",
            },
            **KEY_RESPONSES,
        },
    )
    def metrics(request: Request) -> Response:
        """Prometheus metrics: webhooks, the ledger, writes, API budget, HTTP use, cycles.
        Scope: `audit:read`."""
        intake.app.catch_up()
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    api.include_router(audit_router(intake.app, auth, audit))
    api.include_router(review_router(intake.app, auth, audit))
    if replay_settings is not None:
        api.include_router(
            replay_router(
                intake.app,
                replay_settings,
                auth.requires(REPLAY_EXECUTE),
                intercom_attributes=intercom_attributes,
            )
        )
    return api


def _answer(verdict: Verdict) -> JSONResponse:
    if verdict.status == 200:
        return JSONResponse({"status": verdict.detail.split(":")[0], "detail": verdict.detail})
    return JSONResponse({"error": verdict.detail}, status_code=verdict.status)


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


class CountRequests:
    """ASGI middleware counting answered requests by method, route template and status."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.counter.labels(scope["method"], template, str(status[0])).inc()


class ServiceMetrics(Collector):
    """Reads the service's state at each scrape (no bookkeeping on the hot paths)."""

    def __init__(self, intake: WebhookIntake, worker: SyncWorker | None) -> None:
        self.intake = intake
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        intake = self.intake
        webhooks = CounterMetricFamily(
            "syncledger_webhooks",
            "Intercom webhook deliveries by outcome (accepted, duplicate, rejected).",
            labels=["outcome"],
        )
        webhooks.add_metric(["accepted"], intake.kept)
        webhooks.add_metric(["duplicate"], intake.duplicates)
        webhooks.add_metric(["rejected"], intake.rejected)
        yield webhooks
        yield from _ledger_metrics(intake.app)
        if self.worker is not None:
            yield from _worker_metrics(self.worker)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _ledger_metrics(app: LedgerApp) -> Iterator[Metric]:
    state = app.state
    yield _gauge(
        "syncledger_ledger_position", "Position of the last event in the ledger.", state.position
    )
    yield _gauge(
        "syncledger_config_version", "Version of the configuration in force.", state.config.version
    )
    yield _gauge(
        "syncledger_inbox_notifications", "Webhook notifications kept, not yet decided on.",
        len(state.inbox),
    )  # fmt: skip
    pending = GaugeMetricFamily(
        "syncledger_pending_writes", "Planned writes without a final outcome.", labels=["system"]
    )
    by_system: dict[str, int] = {"salesforce": 0, "intercom": 0}
    for write in list(state.pending.values()):
        by_system[write.system] = by_system.get(write.system, 0) + 1
    for system, count in sorted(by_system.items()):
        pending.add_metric([system], count)
    yield pending
    watermark = state.poll_watermark
    if watermark is not None:
        try:
            stamp = datetime.strptime(watermark, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except ValueError:
            stamp = None
        if stamp is not None:
            yield _gauge(
                "syncledger_salesforce_poll_watermark_timestamp_seconds",
                "Newest SystemModstamp a Salesforce poll has shown (poll lag: time() - this).",
                stamp,
            )
    used = GaugeMetricFamily(
        "syncledger_api_calls_used", "API calls used today, as last reported.", labels=["system"]
    )
    limit = GaugeMetricFamily(
        "syncledger_api_calls_limit", "The daily API call limit.", labels=["system"]
    )
    tier = GaugeMetricFamily(
        "syncledger_api_budget_tier", "1 for the budget tier in force.", labels=["system", "tier"]
    )
    for system in ("salesforce", "intercom"):
        usage = state.api_usage(system)
        if usage:
            used.add_metric([system], usage.used)
            limit.add_metric([system], usage.limit)
            tier.add_metric([system, usage.tier], 1)
    yield from (used, limit, tier)


def _worker_metrics(worker: SyncWorker) -> Iterator[Metric]:
    st = worker.status
    yield CounterMetricFamily(
        "syncledger_sync_cycles", "Sync cycles completed by this process.", value=st.cycles
    )
    yield CounterMetricFamily(
        "syncledger_salesforce_polls", "Salesforce polls completed by this process.", value=st.polls
    )
    writes = CounterMetricFamily(
        "syncledger_writes",
        "Writes by outcome (applied, failed, skipped), by this process's cycles.",
        labels=["outcome"],
    )
    for outcome in ("applied", "failed", "skipped"):
        writes.add_metric([outcome], st.totals.get(f"writes_{outcome}", 0))
    yield writes
    yield _gauge(
        "syncledger_sync_failures_in_a_row", "Failed sync cycles since the last good one.",
        st.failures_in_a_row,
    )  # fmt: skip
    yield _gauge("syncledger_sync_leader", "1 while this process runs the cycles.", st.leader)
    if st.last_cycle_at is not None:
        yield _gauge(
            "syncledger_last_cycle_timestamp_seconds",
            "When this process last completed a cycle (Unix time).",
            st.last_cycle_at,
        )
        yield _gauge(
            "syncledger_seconds_since_last_cycle",
            "Seconds since this process last completed a cycle.",
            max(0.0, time.time() - st.last_cycle_at),
        )
