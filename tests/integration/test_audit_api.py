"""The audit HTTP API against ``create_app`` on a scripted SQLite ledger, in process.

The ledger is made by real sync cycles (``run_cycle``) between the in-memory fakes of both
systems, so every event is one the service itself would record.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import routing
from fastapi.routing import APIRoute
from starlette.exceptions import StarletteDeprecationWarning

from adapters.auth import Authorizer
from adapters.cycle import run_cycle
from adapters.fakes import FakeIntercom, FakeSalesforce
from adapters.http_app import create_app
from adapters.service import WebhookIntake
from adapters.settings import ApiKeys
from adapters.store import ledger_env
from ledger.application import LedgerApp
from tests.support import CATALOG, STANDARD_CONFIG, FakeClock

with warnings.catch_warnings():
    # httpx2 is not among the test dependencies; starlette warns about plain httpx on import.
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

READER, OPERATOR, REPLAYER, ALL = "reader-key", "operator-key", "replayer-key", "all-key"
KEYS = ApiKeys.parse(
    f"{READER}=audit:read,{OPERATOR}=sync:operate,{REPLAYER}=replay:execute,"
    f"{ALL}=audit:read+sync:operate+replay:execute"
)
#: A key granting every scope but the one named.
ALL_BUT = {"audit:read": OPERATOR, "sync:operate": READER, "replay:execute": READER}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Story:
    """The scripted ledger: what the fakes did and the ids to ask about."""

    def __init__(self, url: str) -> None:
        self.ledger = LedgerApp(env=ledger_env(url), clock=FakeClock())
        self.ledger.apply_config(STANDARD_CONFIG, CATALOG)
        sf, ic = FakeSalesforce(), FakeIntercom()
        # k1: Intercom's industry overwrites the account's; Salesforce's name flows back.
        self.account = sf.create(AccountNumber="k1", Name="Acme", Industry="Retail")
        self.company = ic.create("k1", {"name": "Acme Old", "industry": "Banking"})
        # k2: a pair whose account has no industry yet (a write, not an overwrite).
        self.account2 = sf.create(AccountNumber="k2", Name="Beta")
        self.company2 = ic.create("k2", {"name": "Beta", "industry": "Energy"})
        # Never synced: a person account, a company without company_id, a company alone.
        self.person = sf.create(AccountNumber="k3", Name="Jo Doe", person=True)
        self.anonymous = ic.create(None, {"name": "Lead Co"})
        self.lonely = ic.create("k9", {"name": "Nobody"})
        run_cycle(self.ledger, sf, ic)
        run_cycle(self.ledger, sf, ic)  # echoes of the first cycle's writes
        ic.update(self.company, industry="Energy")  # a second overwrite of Industry on k1
        run_cycle(self.ledger, sf, ic)
        self.sf, self.ic = sf, ic


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    path: Path = tmp_path_factory.mktemp("audit") / "ledger.db"
    made = Story(f"sqlite:///{path}")
    yield made
    made.ledger.close()


@pytest.fixture(scope="module")
def client(story: Story) -> Iterator[TestClient]:
    intake = WebhookIntake(story.ledger, "client-secret")
    with TestClient(create_app(intake, None, api_keys=KEYS)) as test_client:
        yield test_client


# --- access ----------------------------------------------------------------------------------

#: Every route of the app and who may call it. A new route must be added here, with its scope:
#: the enumeration test fails otherwise.
EXPECTED_ACCESS: dict[str, str | None] = {
    "POST /webhooks/intercom": None,
    "GET /health": None,
    "GET /metrics": "audit:read",
    "GET /events": "audit:read",
    "GET /mappings": "audit:read",
    "GET /history/company/{intercom_id}": "audit:read",
    "GET /history/account/{salesforce_id}": "audit:read",
    "GET /writes": "audit:read",
    "GET /explain": "audit:read",
    "GET /ignored": "audit:read",
    "GET /rejected": "audit:read",
    "GET /api-usage": "audit:read",
    "GET /config": "sync:operate",
    "GET /review": "audit:read",
    "GET /review/export.csv": "audit:read",
    "GET /review/timeline/{kind}/{record_id}": "audit:read",
    "GET /review/login": None,
    "POST /review/login": None,
    "POST /review/logout": None,
}
#: Browser pages: without a key they redirect to the login form instead of answering 401.
BROWSER = {"GET /review", "GET /review/export.csv", "GET /review/timeline/{kind}/{record_id}"}
#: Routes outside the API (FastAPI's own documentation): public by decision, they hold no data.
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _concrete(path: str) -> str:
    """The path with its parameters filled in (``{kind}`` must be account or company)."""
    return path.replace("{kind}", "account").replace("{", "").replace("}", "")


def test_every_route_declares_its_access_and_the_table_above_knows_it(client: TestClient) -> None:
    markers = Authorizer.markers(client.app.routes)  # type: ignore[attr-defined]
    declared = {
        route: (marker.scope if marker is not None else "MISSING")
        for route, marker in markers.items()
    }
    assert declared == EXPECTED_ACCESS
    others = {
        context.path
        for context in routing.iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if not isinstance(context.original_route, APIRoute)
    }
    assert others <= DOCS


@pytest.mark.parametrize("route", sorted(EXPECTED_ACCESS))
def test_no_route_is_reachable_without_the_right_scope(client: TestClient, route: str) -> None:
    method, path = route.split(" ", 1)
    url = _concrete(path)
    scope = EXPECTED_ACCESS[route]
    if scope is None:
        answer = client.request(method, url, follow_redirects=False)
        # Public: no key is asked for (the route itself may refuse a bad body or form).
        assert "www-authenticate" not in answer.headers, answer.text
        assert answer.status_code != 403
        return
    missing = client.request(method, url, follow_redirects=False)
    if route in BROWSER:
        assert missing.status_code == 303
        assert missing.headers["location"].startswith("/review/login?next=")
        client.cookies.set("syncledger_review_key", ALL_BUT[scope])
        lacking = client.request(method, url, follow_redirects=False)
        client.cookies.clear()
        assert lacking.status_code == 303
    else:
        assert missing.status_code == 401, missing.text
        assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.request(method, url, headers=bearer("not-a-key"), follow_redirects=False)
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    lacking = client.request(method, url, headers=bearer(ALL_BUT[scope]), follow_redirects=False)
    assert lacking.status_code == 403, lacking.text
    assert f'scope="{scope}"' in lacking.headers["www-authenticate"]
    right = client.request(method, url, headers=bearer(ALL), follow_redirects=False)
    assert right.status_code not in (401, 403, 500), right.text


def test_a_route_added_without_a_scope_is_refused_even_with_every_scope(story: Story) -> None:
    intake = WebhookIntake(story.ledger, "client-secret")
    app = create_app(intake, None, api_keys=KEYS)

    @app.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "data"}

    with TestClient(app) as test_client:
        answer = test_client.get("/forgotten", headers=bearer(ALL))
    assert answer.status_code == 403
    assert "secret" not in answer.text


def test_without_configured_keys_every_scoped_route_answers_401(story: Story) -> None:
    intake = WebhookIntake(story.ledger, "client-secret")
    with TestClient(create_app(intake, None)) as test_client:
        answer = test_client.get("/events", headers=bearer(ALL))
        assert answer.status_code == 401
        assert "SYNCLEDGER_API_KEYS" in answer.json()["detail"]
        assert test_client.get("/health").status_code == 200


# --- /events ---------------------------------------------------------------------------------


def test_events_pages_through_the_whole_ledger_in_order(client: TestClient, story: Story) -> None:
    expected = [(p, type(e).__name__) for p, e in story.ledger.read_events()]
    seen: list[tuple[int, str]] = []
    after, pages = 0, 0
    while True:
        page = client.get("/events", params={"after": after, "limit": 7}, headers=bearer(READER))
        assert page.status_code == 200
        body = page.json()
        seen += [(e["position"], e["type"]) for e in body["events"]]
        after, pages = body["next_after"], pages + 1
        if not body["more"]:
            break
    assert seen == expected
    assert pages == -(-len(expected) // 7)
    last = client.get("/events", params={"after": after}, headers=bearer(READER)).json()
    assert last == {"events": [], "next_after": after, "more": False}


def test_an_event_carries_its_fields(client: TestClient) -> None:
    body = client.get("/events", params={"limit": 1000}, headers=bearer(READER)).json()
    applied = [e for e in body["events"] if e["type"] == "WriteApplied"]
    industry = [e for e in applied if e["data"]["write"]["field"] == "Industry"]
    assert [e["data"]["before"] for e in industry][:1] == ["Retail"]
    assert industry[0]["timestamp"].startswith("2026-01-01T")
    assert industry[0]["stream"] and industry[0]["version"] >= 1


@pytest.mark.parametrize(
    "params", [{"after": -1}, {"limit": 0}, {"limit": 1001}, {"after": "x"}, {"after": 2**64}]
)
def test_bad_event_parameters_are_422(client: TestClient, params: dict[str, object]) -> None:
    answer = client.get("/events", params=params, headers=bearer(READER))
    assert answer.status_code == 422


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_are_prometheus_text(client: TestClient, story: Story) -> None:
    client.get("/events", headers=bearer(READER))
    answer = client.get("/metrics", headers=bearer(READER))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert f"syncledger_ledger_position {float(story.ledger.state.position)}" in text
    assert 'syncledger_webhooks_total{outcome="accepted"}' in text
    assert 'syncledger_pending_writes{system="salesforce"} 0.0' in text
    assert 'syncledger_http_requests_total{method="GET",route="/events",status="200"}' in text
    assert 'syncledger_api_calls_used{system="salesforce"}' in text
