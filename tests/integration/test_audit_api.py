"""The audit HTTP API against ``create_app`` on a scripted SQLite ledger, in process.

The ledger is made by real sync cycles between the in-memory fakes of both systems
(:class:`tests.integration.audit_story.Story`), so every event is one the service itself
would record.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import routing
from fastapi.routing import APIRoute
from starlette.exceptions import StarletteDeprecationWarning

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.http.auth import COOKIE
from adapters.http.auth import markers as access_markers
from adapters.service.intake import WebhookIntake
from adapters.settings import load_settings
from projections.projector import Projector
from projections.queries import Audit
from tests.integration.audit_story import (
    ALL,
    ALL_BUT,
    KEYS,
    OPERATOR,
    READER,
    Story,
    bearer,
    login_token,
)

with warnings.catch_warnings():
    # httpx2 is not among the test dependencies; starlette warns about plain httpx on import.
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    path: Path = tmp_path_factory.mktemp("audit") / "ledger.db"
    made = Story(f"sqlite:///{path}")
    made.audit = Audit(Projector.open(made.ledger, f"sqlite:///{path}"))
    yield made
    made.audit.projector.close()
    made.ledger.close()


@pytest.fixture(scope="module")
def client(story: Story) -> Iterator[TestClient]:
    intake = WebhookIntake(story.ledger, "client-secret")
    settings = load_settings({"SYNCLEDGER_DATABASE_URL": "memory://"})
    app = create_app(
        Service(story.ledger, intake, api_keys=KEYS, audit=story.audit, replay_settings=settings)
    )
    with TestClient(app) as test_client:
        yield test_client


# --- access ----------------------------------------------------------------------------------

#: Every route of the app and who may call it. A new route must be added here, with its scope:
#: the enumeration test fails otherwise.
EXPECTED_ACCESS: dict[str, str | None] = {
    "POST /webhooks/intercom": None,
    "GET /health": None,
    "GET /health/live": None,
    "GET /health/ready": None,
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
    "POST /replays": "replay:execute",
    "GET /replays/{run_id}": "replay:execute",
    "GET /review": "audit:read",
    "GET /review/export.csv": "audit:read",
    "GET /review/timeline/{kind}/{record_id}": "audit:read",
    "GET /review/login": None,
    "POST /review/login": None,
    "POST /review/logout": None,
    "GET /assets/{name}": None,
}
#: Browser pages: without a key they redirect to the login form instead of answering 401.
BROWSER = {"GET /review", "GET /review/export.csv", "GET /review/timeline/{kind}/{record_id}"}
#: Routes outside the API (FastAPI's own documentation): public by decision, they hold no data.
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _concrete(path: str) -> str:
    """The path with its parameters filled in (``{kind}`` must be account or company)."""
    return path.replace("{kind}", "account").replace("{", "").replace("}", "")


def test_every_route_declares_its_access_and_the_table_above_knows_it(client: TestClient) -> None:
    markers = access_markers(client.app.routes)  # type: ignore[attr-defined]
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
        client.cookies.set(COOKIE, ALL_BUT[scope])
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
    app = create_app(Service(story.ledger, intake, api_keys=KEYS))

    @app.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "data"}

    with TestClient(app) as test_client:
        answer = test_client.get("/forgotten", headers=bearer(ALL))
    assert answer.status_code == 403
    assert "secret" not in answer.text


def test_without_configured_keys_every_scoped_route_answers_401(story: Story) -> None:
    intake = WebhookIntake(story.ledger, "client-secret")
    with TestClient(create_app(Service(story.ledger, intake))) as test_client:
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


# --- the read models -------------------------------------------------------------------------


def test_who_overwrote_industry_on_the_account_when_from_what_to_what_under_which_rule(
    client: TestClient, story: Story
) -> None:
    answer = client.get(
        "/writes",
        params={"field": "Industry", "record_id": story.account, "overwrites_only": "true"},
        headers=bearer(READER),
    )
    assert answer.status_code == 200
    writes = answer.json()["writes"]
    assert [(w["before"], w["value"]) for w in writes] == [
        ("Retail", "Banking"),
        ("Banking", "Technology"),
    ]
    first = writes[0]
    assert first["overwrite"] is True and first["rules"] == []
    assert first["config_version"] == 1 and first["trigger"] == "company_created"
    assert first["source_record_id"] == story.company and first["source_field"] == "industry"
    assert first["at"].startswith("2026-01-01T") and first["cause"]
    assert first["api_call"]["record_id"] == story.account


def test_writes_filter_page_and_export_as_csv(client: TestClient, story: Story) -> None:
    everything = client.get("/writes", headers=bearer(READER)).json()["writes"]
    overwrites = [w for w in everything if w["overwrite"]]
    assert len(everything) > len(overwrites) >= 3  # k2's Industry was empty: not an overwrite
    paged: list[dict[str, object]] = []
    after: int | None = 0
    while after is not None:
        page = client.get("/writes", params={"after": after, "limit": 2}, headers=bearer(READER))
        paged += page.json()["writes"]
        after = page.json()["next_after"]
    assert paged == everything
    csv_answer = client.get(
        "/writes", params={"format": "csv", "overwrites_only": "true"}, headers=bearer(READER)
    )
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
    assert [(r["record_id"], r["field"], r["before"], r["value"]) for r in rows] == [
        (w["record_id"], w["field"], w["before"], w["value"]) for w in overwrites
    ]
    assert all(r["overwrite"] == "true" for r in rows)


def test_mappings_now_and_as_of_an_instant(client: TestClient, story: Story) -> None:
    now = client.get("/mappings", headers=bearer(READER)).json()
    assert [m["company_id"] for m in now["mappings"]] == ["k1", "k2"]
    assert now["mappings"][0]["salesforce_id"] == story.account
    before = client.get(
        "/mappings", params={"as_of": "2025-12-31T23:59:59Z"}, headers=bearer(READER)
    ).json()
    assert before["mappings"] == []
    naive = client.get("/mappings", params={"as_of": "2030-01-01T00:00:00"}, headers=bearer(READER))
    assert [m["company_id"] for m in naive.json()["mappings"]] == ["k1", "k2"]


def test_a_record_history_is_its_timeline(client: TestClient, story: Story) -> None:
    account = client.get(f"/history/account/{story.account}", headers=bearer(READER)).json()
    assert account["known"] is True and account["company_id"] == "k1"
    categories = [e["category"] for e in account["entries"]]
    assert "mapping" in categories and categories.count("write_applied") == 2
    company = client.get(f"/history/company/{story.company}", headers=bearer(READER)).json()
    assert company["known"] is True and company["system"] == "intercom"
    unknown = client.get("/history/company/nope", headers=bearer(READER)).json()
    assert unknown["known"] is False and unknown["entries"] == []


def test_explain_answers_why_or_why_not(client: TestClient, story: Story) -> None:
    synced = client.get("/explain", params={"company_id": "k1"}, headers=bearer(READER)).json()
    assert synced["status"] == "synced" and synced["counterpart_id"] == story.account
    waiting = client.get("/explain", params={"company_id": "k9"}, headers=bearer(READER)).json()
    assert waiting["status"] == "not_synced" and "k9" in waiting["summary"]
    person = client.get("/explain", params={"account_id": story.person}, headers=bearer(READER))
    assert person.json()["status"] == "ignored"
    assert "person account" in person.json()["summary"]


@pytest.mark.parametrize(
    "params", [{}, {"company_id": "k1", "account_id": "001"}, {"company_id": "\x00"}]
)
def test_explain_needs_exactly_one_clean_subject(
    client: TestClient, params: dict[str, str]
) -> None:
    answer = client.get("/explain", params=params, headers=bearer(READER))
    assert answer.status_code == 422
    assert answer.json()["detail"]


def test_ignored_rejected_and_api_usage(client: TestClient, story: Story) -> None:
    ignored = client.get("/ignored", headers=bearer(READER)).json()
    assert {i["record_id"] for i in ignored} == {story.person, story.anonymous}
    rejected = client.get("/rejected", headers=bearer(READER)).json()
    assert [(r["field"], r["source_value"]) for r in rejected] == [("Industry", "Energy")]
    usage = client.get("/api-usage", headers=bearer(READER)).json()
    assert usage and usage[-1]["system"] == "salesforce" and usage[-1]["limit"] == 100_000


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/mappings", {"as_of": "yesterday"}),
        ("/mappings", {"as_of": "1.5"}),
        ("/mappings", {"as_of": "2026-01-01T00:00:00Z", "position": 3}),
        ("/writes", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        ("/writes", {"feild": "Industry"}),
        ("/writes", {"field": ["Industry", "Name"]}),
        ("/writes", {"rule": "sometimes"}),
        ("/writes", {"format": "xml"}),
        ("/writes", {"field": "Name\x00"}),
        ("/history/account/a%01b", {}),
        ("/api-usage", {"system": "zendesk"}),
    ],
)
def test_bad_parameters_are_422_never_500(
    client: TestClient, url: str, params: dict[str, object]
) -> None:
    answer = client.get(url, params=params, headers=bearer(READER))
    assert answer.status_code == 422, answer.text


def test_instants_beyond_the_representable_range_are_clamped(client: TestClient) -> None:
    late = client.get(
        "/mappings", params={"as_of": "9999-12-31T23:59:59-14:00"}, headers=bearer(READER)
    )
    assert [m["company_id"] for m in late.json()["mappings"]] == ["k1", "k2"]
    early = client.get(
        "/writes", params={"until": "0001-01-01T00:00:00+14:00"}, headers=bearer(READER)
    )
    assert early.status_code == 200 and early.json()["writes"] == []


def test_config_shows_the_configuration_in_force(client: TestClient) -> None:
    answer = client.get("/config", headers=bearer(OPERATOR))
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == 1 and body["identifier_field"] == "AccountNumber"
    assert 'salesforce = "Industry"' in body["toml"]


def test_the_login_form_sets_an_httponly_cookie_and_never_redirects_off_the_review_pages(
    client: TestClient,
) -> None:
    answer = client.post(
        "/review/login",
        content=f"key={READER}&next=//evil.example/review&csrf={login_token(client)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/review"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/review" in cookie
    client.cookies.clear()
