"""Operating the HTTP app (issues 14 and 17): the webhook writer's liveness in ``/health``, the
``/health/live`` and ``/health/ready`` probes, one log line per request under a request id,
histograms in ``/metrics`` and ``SYNCLEDGER_METRICS_PUBLIC``.

The app runs in process over a ledger on the in-memory store; the worker, where a test needs
one, is a real :class:`SyncWorker` over the fakes that is never started (its status is set).
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from starlette.exceptions import StarletteDeprecationWarning

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.service.intake import WebhookIntake
from adapters.service.worker import SyncWorker
from adapters.settings import load_settings
from adapters.simulators.intercom_webhooks import sign
from adapters.store.database import ledger_env
from adapters.sync.cycle import CycleReport
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger.application import LedgerApp
from tests.integration.audit_story import KEYS, READER, bearer
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


def webhook(notification_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "notification_event",
            "id": notification_id,
            "topic": "company.created",
            "created_at": 1767225600,
            "data": {"item": {"id": "c1", "company_id": "k1", "updated_at": 1767225600}},
        }
    ).encode()
    return body, {"X-Hub-Signature": sign(body, SECRET), "Content-Type": "application/json"}


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


# --- one log line per request ----------------------------------------------------------------


def _http_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "syncledger.http"]


def test_every_request_is_logged_once_with_its_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncledger.http")
    answer = client.get(
        "/history/account/001x", headers={**bearer(READER), "X-Request-ID": "req-42.a:b"}
    )
    assert answer.headers["x-request-id"] == "req-42.a:b"
    (record,) = _http_records(caplog)
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k) for k in ("request_id", "method", "route", "status")}
    assert fields == {
        "request_id": "req-42.a:b",
        "method": "GET",
        "route": "/history/account/{salesforce_id}",
        "status": answer.status_code,
    }
    assert isinstance(record.duration_ms, float) and record.duration_ms >= 0  # type: ignore[attr-defined]
    assert "001x" not in record.getMessage()


@pytest.mark.parametrize(
    "presented", [None, "", "has space", "line\nbreak", "x" * 129, "<script>", "é"]
)
def test_an_unusable_request_id_is_replaced_by_a_new_one(
    client: TestClient, caplog: pytest.LogCaptureFixture, presented: str | None
) -> None:
    caplog.set_level(logging.INFO, logger="syncledger.http")
    headers = {} if presented is None else {"X-Request-ID": presented.encode("utf-8")}
    answer = client.get("/health", headers=headers)  # type: ignore[arg-type]
    made = answer.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    (record,) = _http_records(caplog)
    assert record.request_id == made  # type: ignore[attr-defined]


def test_refused_and_unknown_requests_are_logged_too(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncledger.http")
    client.get("/events")  # no key: 401
    client.get("/no/such/page")
    client.post("/review/login", content=b"k" * 20000)  # over the form's limit: 413
    seen = [(r.method, r.route, r.status) for r in _http_records(caplog)]  # type: ignore[attr-defined]
    assert seen == [
        ("GET", "/events", 401),
        ("GET", "unmatched", 404),
        ("POST", "unmatched", 413),
    ]


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_have_latency_histograms(client: TestClient) -> None:
    body, headers = webhook("n-1")
    assert client.post("/webhooks/intercom", content=body, headers=headers).status_code == 200
    client.get("/events", headers=bearer(READER))
    text = client.get("/metrics", headers=bearer(READER)).text
    assert "syncledger_webhook_store_duration_seconds_count 1.0" in text
    assert 'syncledger_webhook_store_duration_seconds_bucket{le="10.0"} 1.0' in text
    assert re.search(
        r'syncledger_http_request_duration_seconds_count\{method="GET",route="/events"\} 1\.0',
        text,
    )


def test_metrics_need_audit_read_unless_the_setting_opens_them(ledger: LedgerApp) -> None:
    closed = Service(ledger, WebhookIntake(ledger, SECRET), api_keys=KEYS)
    assert TestClient(create_app(closed)).get("/metrics").status_code == 401
    settings = load_settings({"SYNCLEDGER_DATABASE_URL": "memory://"})
    opened = Service(
        ledger,
        WebhookIntake(ledger, SECRET),
        api_keys=KEYS,
        replay_settings=settings.model_copy(update={"metrics_public": True}),
    )
    answer = TestClient(create_app(opened)).get("/metrics")
    assert answer.status_code == 200
    assert "syncledger_ledger_position" in answer.text
