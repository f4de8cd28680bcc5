"""Operating the HTTP app (issues 14 and 17): the webhook writer's liveness in ``/health``, the
``/health/live`` and ``/health/ready`` probes.

The app runs in process over a ledger on the in-memory store; the worker, where a test needs
one, is a real :class:`SyncWorker` over the fakes that is never started (its status is set).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from starlette.exceptions import StarletteDeprecationWarning

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.service.intake import WebhookIntake
from adapters.service.worker import SyncWorker
from adapters.store.database import ledger_env
from adapters.sync.cycle import CycleReport
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger.application import LedgerApp
from tests.integration.audit_story import KEYS
from tests.support import CATALOG, STANDARD_CONFIG, FakeClock

with warnings.catch_warnings():
    # httpx2 is not among the test dependencies; starlette warns about plain httpx on import.
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET = "client-secret"


@pytest.fixture
def ledger() -> Iterator[LedgerApp]:
    app = LedgerApp(env=ledger_env("memory://"), clock=FakeClock())
    app.apply_config(STANDARD_CONFIG, CATALOG)
    yield app
    app.close()


@pytest.fixture
def service(ledger: LedgerApp) -> Service:
    return Service(ledger, WebhookIntake(ledger, SECRET), api_keys=KEYS)


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as test_client:  # the lifespan starts the writer
        yield test_client


# --- the webhook writer in /health and the probes --------------------------------------------


def test_health_reports_the_webhook_writer(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["intake"] == {"alive": True, "waiting": 0}
    assert client.get("/health/live").json() == {
        "status": "alive",
        "intake": {"alive": True, "waiting": 0},
    }


def test_a_stopped_webhook_writer_is_degraded_not_live_and_not_ready(
    client: TestClient, service: Service
) -> None:
    service.intake.stop()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert health.json()["intake"] == {"alive": False, "waiting": 0}
    live = client.get("/health/live")
    assert live.status_code == 503 and live.json()["status"] == "down"
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["not_ready"] == ["intake"]
    service.intake.start()
    assert client.get("/health").status_code == 200


def test_ready_when_the_database_answers_and_the_writer_runs(client: TestClient) -> None:
    answer = client.get("/health/ready")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "not_ready": [],
        "checks": {"database": "ok", "intake": "ok"},
    }


def test_not_ready_when_the_database_does_not_answer(
    client: TestClient, ledger: LedgerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> int:
        raise OperationalError("SELECT max(id)", {}, Exception("connection refused"))

    monkeypatch.setattr(ledger.recorder, "max_notification_id", down)
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["not_ready"] == ["database"]
    assert answer.json()["checks"]["database"] == "unavailable: OperationalError"


@pytest.fixture
def with_worker(ledger: LedgerApp) -> Iterator[tuple[TestClient, SyncWorker]]:
    """An app whose service has a worker (never started: the test sets its status)."""
    worker = SyncWorker(ledger, FakeSalesforce(), FakeIntercom())
    worker.status.leader = True
    service = Service(ledger, WebhookIntake(ledger, SECRET), worker=worker, api_keys=KEYS)
    service.intake.start()  # no lifespan: it would start the worker
    try:
        yield TestClient(create_app(service)), worker
    finally:
        service.intake.stop()


@pytest.mark.parametrize(
    ("error", "system"),
    [
        ("SalesforceUnavailable: Salesforce is unavailable after 5 tries", "salesforce"),
        ("SalesforceAuthError: the session expired", "salesforce"),
        ("IntercomUnavailable: Intercom answered 503", "intercom"),
        ("IntercomRateLimited: rate limited", "intercom"),
    ],
)
def test_not_ready_when_the_last_cycle_failed_on_a_system(
    with_worker: tuple[TestClient, SyncWorker], error: str, system: str
) -> None:
    client, worker = with_worker
    assert client.get("/health/ready").status_code == 200
    worker.status.failures_in_a_row, worker.status.last_error = 1, error
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["not_ready"] == [system]
    assert error in answer.json()["checks"][system]
    worker.status.leader = False  # a standby does not call the systems: nothing to judge
    assert client.get("/health/ready").status_code == 200


def test_a_cycle_failing_otherwise_does_not_make_the_systems_unready(
    with_worker: tuple[TestClient, SyncWorker],
) -> None:
    client, worker = with_worker
    worker.status.failures_in_a_row, worker.status.last_error = 1, "LedgerBusyError: busy"
    assert client.get("/health/ready").status_code == 200


def test_not_ready_while_the_budget_pauses_the_sync(
    with_worker: tuple[TestClient, SyncWorker],
) -> None:
    client, worker = with_worker
    paused = "event sync paused: Salesforce API usage 81000 of 100000 calls allowed today"
    worker.status.last_report = CycleReport(paused=paused)
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["not_ready"] == ["budget"]
    assert paused in answer.json()["checks"]["budget"]
    worker.status.last_report = CycleReport()
    assert client.get("/health/ready").status_code == 200


def test_the_probes_need_no_key(with_worker: tuple[TestClient, SyncWorker]) -> None:
    client, _ = with_worker
    for path in ("/health", "/health/live", "/health/ready"):
        answer = client.get(path)
        assert answer.status_code == 200 and "www-authenticate" not in answer.headers, path
