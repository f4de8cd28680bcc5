"""Test helpers: a fake clock, the sample field catalog, and a ledger on the in-memory store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse

from adapters.intercom.system import IntercomSystem
from adapters.sync.fakes import catalog
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


@dataclass
class Inbox:
    """Where a test's webhook receiver hands deliveries: set ``system`` once it exists."""

    system: IntercomSystem | None = None
    outcomes: list[str] = field(default_factory=list)


def webhook_receiver(inbox: Inbox) -> FastAPI:
    """A bare HTTP endpoint that passes each signed delivery to ``inbox.system.receive``."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> PlainTextResponse:
        assert inbox.system is not None
        outcome = inbox.system.receive(await request.body(), request.headers.get("X-Hub-Signature"))
        inbox.outcomes.append(outcome)
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
