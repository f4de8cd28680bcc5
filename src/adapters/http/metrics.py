"""``GET /metrics``: the service in Prometheus' text format (scope ``audit:read``, or anyone
with ``SYNCLEDGER_METRICS_PUBLIC=true``).

Webhooks, the ledger, pending writes, API budgets, HTTP requests and sync cycles. The service's
state is read at each scrape (:class:`ServiceMetrics`, no bookkeeping on the hot paths); what
only the HTTP layer sees is counted as it happens (:class:`HttpMetrics`): answered requests and
their duration (by :class:`adapters.http.observe.ObserveRequests`), and how long a webhook
waits for its notification to be stored (by the webhook route). :func:`instrument` gives an app
its registry (``app.state.metrics``) and its :class:`HttpMetrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from adapters.bootstrap import Service
from adapters.http.auth import AUDIT_READ, KEY_RESPONSES, Scope
from adapters.http.deps import LedgerDep
from adapters.service.worker import SyncWorker
from ledger.application import LedgerApp

__all__ = [
    "PUBLIC_METRICS",
    "HttpMetrics",
    "HttpMetricsDep",
    "RegistryDep",
    "ServiceMetrics",
    "instrument",
    "router",
]

#: The setting (``SYNCLEDGER_METRICS_PUBLIC``) that opens ``/metrics`` to callers without a key.
PUBLIC_METRICS: Final = "metrics_public"
#: Histogram buckets (seconds) from a millisecond to ten seconds.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class HttpMetrics:
    """What the HTTP layer measures as it happens."""

    #: answered requests by method, route template and status
    requests: Counter
    #: seconds from a request's arrival to the end of its answer, by method and route template
    duration: Histogram
    #: seconds a valid webhook waits for its notification to be stored in the ledger's inbox
    webhook_store: Histogram


def instrument(api: FastAPI, service: Service) -> HttpMetrics:
    """Give ``api`` its metrics registry (read by ``/metrics``) and its :class:`HttpMetrics`
    (``app.state.http_metrics``), which it returns."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceMetrics(service))
    measured = HttpMetrics(
        requests=Counter(
            "syncledger_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        ),
        duration=Histogram(
            "syncledger_http_request_duration_seconds",
            "Time from an HTTP request's arrival to the end of its answer.",
            ["method", "route"],
            buckets=_SECONDS,
            registry=registry,
        ),
        webhook_store=Histogram(
            "syncledger_webhook_store_duration_seconds",
            "Time from a valid webhook's arrival (body read) to its notification being stored "
            "in the ledger's inbox, what Intercom's delivery waits for.",
            buckets=_SECONDS,
            registry=registry,
        ),
    )
    api.state.metrics = registry
    api.state.http_metrics = measured
    return measured


async def get_registry(request: Request) -> CollectorRegistry:
    """The app's metrics registry (``app.state.metrics``, set by :func:`instrument`)."""
    registry: CollectorRegistry = request.app.state.metrics
    return registry


RegistryDep = Annotated[CollectorRegistry, Depends(get_registry)]


async def get_http_metrics(request: Request) -> HttpMetrics:
    """The app's :class:`HttpMetrics` (``app.state.http_metrics``, set by :func:`instrument`)."""
    measured: HttpMetrics = request.app.state.http_metrics
    return measured


HttpMetricsDep = Annotated[HttpMetrics, Depends(get_http_metrics)]

router = APIRouter()


@router.get(
    "/metrics",
    tags=["operations"],
    dependencies=[Scope(AUDIT_READ, public_if=PUBLIC_METRICS)],
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
    Scope: `audit:read` (none when the server sets SYNCLEDGER_METRICS_PUBLIC=true)."""
    ledger.catch_up()
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry), media_type=content_type)


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
