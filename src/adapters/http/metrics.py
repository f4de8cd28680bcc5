"""``GET /metrics``: the service in Prometheus' text format (scope ``audit:read``).

Webhooks, the ledger, pending writes, API budgets, HTTP requests and sync cycles. The service's
state is read at each scrape (:class:`ServiceMetrics`, no bookkeeping on the hot paths); only
answered HTTP requests are counted as they happen (:class:`CountRequests`).
:func:`instrument` gives an app its registry (``app.state.metrics``) and the counting
middleware.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from adapters.bootstrap import Service
from adapters.http.auth import AUDIT_READ, KEY_RESPONSES, Scope
from adapters.http.deps import LedgerDep
from adapters.service.worker import SyncWorker
from ledger.application import LedgerApp

__all__ = ["CountRequests", "RegistryDep", "ServiceMetrics", "instrument", "router"]


def instrument(api: FastAPI, service: Service) -> None:
    """Give ``api`` its metrics registry (read by ``/metrics``) and count its requests."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceMetrics(service))
    requests = Counter(
        "syncledger_http_requests",
        "HTTP requests answered, by method, route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    api.state.metrics = registry
    api.add_middleware(CountRequests, counter=requests)


async def get_registry(request: Request) -> CollectorRegistry:
    """The app's metrics registry (``app.state.metrics``, set by :func:`instrument`)."""
    registry: CollectorRegistry = request.app.state.metrics
    return registry


RegistryDep = Annotated[CollectorRegistry, Depends(get_registry)]

router = APIRouter()


@router.get(
    "/metrics",
    tags=["operations"],
    dependencies=[Scope(AUDIT_READ)],
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
def metrics(request: Request, ledger: LedgerDep, registry: RegistryDep) -> Response:
    """Prometheus metrics: webhooks, the ledger, writes, API budget, HTTP use, cycles.
    Scope: `audit:read`."""
    ledger.catch_up()
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry), media_type=content_type)


class CountRequests:
    """ASGI middleware counting answered requests by method, route template and status."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
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

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        intake = self.service.intake
        webhooks = CounterMetricFamily(
            "syncledger_webhooks",
            "Intercom webhook deliveries by outcome (accepted, duplicate, rejected).",
            labels=["outcome"],
        )
        webhooks.add_metric(["accepted"], intake.kept)
        webhooks.add_metric(["duplicate"], intake.duplicates)
        webhooks.add_metric(["rejected"], intake.rejected)
        yield webhooks
        yield from _ledger_metrics(self.service.ledger)
        if self.service.worker is not None:
            yield from _worker_metrics(self.service.worker)


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
