"""Test helpers: a fake clock, the sample field catalog, a ledger on the in-memory store, and
webhooks delivered into a ledger's inbox (from the Intercom fake, or over HTTP from the
simulator)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse

from adapters.intercom.webhooks import (
    Notification,
    WebhookRejected,
    parse_notification,
    verify_signature,
)
from adapters.sync.cycle import CycleReport, run_cycle
from adapters.sync.fakes import FakeIntercom, catalog
from adapters.sync.ports import AccountSystem
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.config import AttributeMapping, Direction, SyncConfig

S2I = Direction.SALESFORCE_TO_INTERCOM
I2S = Direction.INTERCOM_TO_SALESFORCE


class FakeClock:
    """A clock that advances one second per reading, from 2026-01-01 UTC."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class StoppedClock:
    """A clock that stands still until told to move; a simulator and its adapter share one."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


#: The fakes' catalog is the product's sample catalog; tests validate against the same one.
CATALOG = catalog()


#: Names flow Salesforce → Intercom; industry and size flow Intercom → Salesforce.
STANDARD_CONFIG = SyncConfig(
    identifier_field="AccountNumber",
    attributes=(
        AttributeMapping("name", "Name", S2I),
        AttributeMapping("custom_attributes.plan", "Plan__c", S2I, skip_if_source_empty=True),
        AttributeMapping("custom_attributes.renewal_date", "Renewal_Date__c", S2I),
        AttributeMapping("industry", "Industry", I2S),
        AttributeMapping("size", "NumberOfEmployees", I2S),
        AttributeMapping("website", "Website", I2S, skip_if_destination_has_value=True),
    ),
)


def new_ledger(
    clock: FakeClock | None = None, config: SyncConfig | None = STANDARD_CONFIG
) -> LedgerApp:
    """A ledger on the in-memory store with ``config`` applied."""
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock or FakeClock())
    if config is not None:
        app.apply_config(config, CATALOG)
    return app


def sync_cycle(
    app: LedgerApp,
    salesforce: AccountSystem,
    intercom: FakeIntercom,
    **options: Any,
) -> CycleReport:
    """One sync cycle once the webhooks ``intercom`` sent since the last one are in the ledger's
    inbox (kept as the service's intake keeps them): ``run_cycle(..., **options)``."""
    if webhooks := intercom.webhooks():
        app.receive(webhooks)
    return run_cycle(app, salesforce, intercom, **options)


class Inbox:
    """A test's webhook endpoint (see :func:`webhook_receiver`): each delivery is verified and
    parsed as the service's intake does, then held until :meth:`deliver` keeps the held ones
    in a ledger's inbox (:meth:`LedgerApp.receive`), as the intake's writer would.

    ``outcomes`` are the answers: ``accepted``, ``duplicate`` (the ledger had its id),
    ``ignored`` (not about companies) or ``rejected: <why>``.
    """

    def __init__(self, client_secret: str) -> None:
        self._secret = client_secret
        self._lock = threading.Lock()
        self._held: list[Notification] = []
        self.outcomes: list[str] = []

    def check(self, raw_body: bytes, signature: str | None) -> str:
        """Verify (before parsing) and parse one delivery; hold it. Its answer, so far."""
        if not verify_signature(raw_body, signature, self._secret):
            return self._answer("rejected: bad or missing signature")
        try:
            notification = parse_notification(raw_body)
        except WebhookRejected as exc:
            return self._answer(f"rejected: {exc.reason}")
        if notification.fact is None:
            return self._answer("ignored")
        with self._lock:
            self._held.append(notification)
        return "held"

    def take(self) -> list[Notification]:
        """The notifications held since the last call, oldest first."""
        with self._lock:
            held, self._held = self._held, []
        return held

    def deliver(self, app: LedgerApp) -> None:
        """Keep every held notification in ``app``'s inbox, in one transaction."""
        batch = self.take()
        if not batch:
            return
        recorded = app.receive((n.id, n.fact) for n in batch if n.fact is not None)
        new = {e.notification_id for e in recorded.events if isinstance(e, ev.NotificationReceived)}
        for notification in batch:
            if notification.id in new:
                new.discard(notification.id)  # a second copy in the same batch is a duplicate
                self._answer("accepted")
            else:
                self._answer("duplicate")

    def _answer(self, outcome: str) -> str:
        with self._lock:
            self.outcomes.append(outcome)
        return outcome


def webhook_receiver(inbox: Inbox) -> FastAPI:
    """A bare HTTP endpoint that passes each signed delivery to ``inbox.check``."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> PlainTextResponse:
        outcome = inbox.check(await request.body(), request.headers.get("X-Hub-Signature"))
        return PlainTextResponse(outcome, status_code=400 if outcome.startswith("rej") else 200)

    return app


def ingest_concurrently(
    apps: Sequence[LedgerApp], work: Callable[[LedgerApp, int], None]
) -> list[BaseException]:
    """Run ``work(app, n * 1000)`` for every ``apps[n]`` at once, one thread each; the
    exceptions they raised."""
    errors: list[BaseException] = []

    def run(app: LedgerApp, offset: int) -> None:
        try:
            work(app, offset)
        except BaseException as exc:  # pragma: no cover - reported by the caller's assert
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(app, n * 1000)) for n, app in enumerate(apps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
