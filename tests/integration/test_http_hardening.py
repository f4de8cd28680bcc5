"""The HTTP app's defences (issue 14): capped request bodies, review sessions held on the
server, CSRF tokens on the review forms, security headers on every page, and a CSV export a
spreadsheet cannot run.

The app runs in process over the scripted SQLite ledger of ``audit_story.Story``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.http.auth import COOKIE
from adapters.http.export import csv_rows
from adapters.http.limits import FORM_BODY_LIMIT, JSON_BODY_LIMIT
from adapters.http.sessions import ReviewSessions
from adapters.service.intake import WebhookIntake
from adapters.settings import load_settings
from projections.projector import Projector
from projections.queries import Audit
from projections.views import WriteEntry
from tests.integration.audit_story import ALL, KEYS, OPERATOR, READER, Story, bearer, login_token

with warnings.catch_warnings():
    # httpx2 is not among the test dependencies; starlette warns about plain httpx on import.
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    path: Path = tmp_path_factory.mktemp("hardening") / "ledger.db"
    story = Story(f"sqlite:///{path}")
    audit = Audit(Projector.open(story.ledger, f"sqlite:///{path}"))
    settings = load_settings({"SYNCLEDGER_DATABASE_URL": "memory://"})
    yield Service(
        story.ledger,
        WebhookIntake(story.ledger, "client-secret"),
        api_keys=KEYS,
        audit=audit,
        replay_settings=settings,
    )
    audit.projector.close()
    story.ledger.close()


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    """A fresh app (its own sessions) and browser (its own cookies) per test."""
    with TestClient(create_app(service)) as test_client:
        yield test_client


def page_token(client: TestClient) -> str:
    """The sign-out form's CSRF token on the review page."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/review").text)
    assert found is not None
    return found[1]


def sign_in(client: TestClient, key: str = READER) -> str:
    """Sign in through the form; the session cookie's value."""
    answer = client.post(
        "/review/login",
        content=f"key={key}&csrf={login_token(client)}",
        headers=FORM,
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return answer.cookies[COOKIE]


# --- request bodies are capped ---------------------------------------------------------------


async def _chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    chunk = b"k" * size
    for _ in range(total // size):
        yield chunk


def _streamed_post(
    app: object,
    path: str,
    total: int,
    headers: dict[str, str],
    cookies: httpx.Cookies | None = None,
) -> httpx.Response:
    """POST a body of ``total`` bytes in 64 KiB chunks without Content-Length (the ASGI
    transport hands the app one chunk per read)."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=cookies
        ) as c:
            return await c.post(path, content=_chunks(total), headers=headers)

    return asyncio.run(post())


def test_a_streamed_login_post_over_its_limit_is_413_and_never_buffered(
    service: Service,
) -> None:
    app = create_app(service)
    total = 64 * 1024 * 1024
    tracemalloc.start()
    try:
        answer = _streamed_post(app, "/review/login", total, FORM)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413, answer.text
    assert str(FORM_BODY_LIMIT) in answer.json()["detail"]
    assert peak < 4 * 1024 * 1024, f"the app held {peak} bytes for a {total}-byte body"


@pytest.mark.parametrize(
    ("path", "limit", "headers"),
    [
        ("/review/login", FORM_BODY_LIMIT, FORM),
        ("/review/logout", FORM_BODY_LIMIT, FORM),
        ("/replays", JSON_BODY_LIMIT, {"Content-Type": "application/json", **bearer(ALL)}),
    ],
)
def test_a_body_over_the_routes_limit_is_413_declared_or_streamed(
    client: TestClient, path: str, limit: int, headers: dict[str, str]
) -> None:
    sign_in(client)  # sign-out reads its form only from a live session
    declared = client.post(path, content=b"k" * (limit + 1), headers=headers)
    assert declared.status_code == 413, declared.text
    assert declared.json() == {
        "detail": f"the request body is larger than this route takes ({limit} bytes)"
    }
    streamed = _streamed_post(client.app, path, limit + 65536, headers, client.cookies)
    assert streamed.status_code == 413, streamed.text


def test_a_body_within_the_limit_is_read_as_before(client: TestClient) -> None:
    form = f"key=wrong&csrf={login_token(client)}&pad="
    answer = client.post(
        "/review/login",
        content=form + "x" * (FORM_BODY_LIMIT - len(form)),
        headers=FORM,
        follow_redirects=False,
    )
    assert answer.status_code == 401
    assert "not valid" in answer.text


# --- review sessions and CSRF ----------------------------------------------------------------


def test_the_cookie_holds_a_session_id_that_signing_out_revokes(client: TestClient) -> None:
    session_id = sign_in(client)
    assert READER not in session_id and len(session_id) >= 32
    assert client.get("/review", follow_redirects=False).status_code == 200
    out = client.post(
        "/review/logout", content=f"csrf={page_token(client)}", headers=FORM, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/review/login"
    client.cookies.set(COOKIE, session_id)  # the old cookie, kept by a copy of the browser
    again = client.get("/review", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/review/login?next=")


def test_a_session_ends_after_eight_idle_hours(client: TestClient) -> None:
    now = [1000.0]
    client.app.state.review_sessions = ReviewSessions(clock=lambda: now[0])  # type: ignore[attr-defined]
    sign_in(client)
    now[0] += 7.9 * 3600
    assert client.get("/review", follow_redirects=False).status_code == 200  # used: idle anew
    now[0] += 7.9 * 3600
    assert client.get("/review", follow_redirects=False).status_code == 200
    now[0] += 8 * 3600
    assert client.get("/review", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_sign_in_without_the_forms_token_is_refused_403(
    client: TestClient, token: str | None
) -> None:
    login_token(client)  # the browser has the form's cookie, but the post does not match it
    body = f"key={READER}" + (f"&csrf={token}" if token is not None else "")
    answer = client.post("/review/login", content=body, headers=FORM, follow_redirects=False)
    assert answer.status_code == 403
    assert COOKIE not in answer.cookies
    assert "sign in again" in answer.text


def test_a_sign_in_with_a_token_but_not_its_cookie_is_refused_403(client: TestClient) -> None:
    token = login_token(client)
    client.cookies.clear()  # a cross-site post carries the attacker's token, not our cookie
    answer = client.post(
        "/review/login", content=f"key={READER}&csrf={token}", headers=FORM, follow_redirects=False
    )
    assert answer.status_code == 403


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_a_sign_out_without_the_sessions_token_is_refused_403(
    client: TestClient, token: str | None
) -> None:
    sign_in(client)
    body = f"csrf={token}" if token is not None else ""
    answer = client.post("/review/logout", content=body, headers=FORM, follow_redirects=False)
    assert answer.status_code == 403
    assert client.get("/review", follow_redirects=False).status_code == 200  # still signed in


def test_a_key_without_audit_read_opens_no_session(client: TestClient) -> None:
    answer = client.post(
        "/review/login",
        content=f"key={OPERATOR}&csrf={login_token(client)}",
        headers=FORM,
        follow_redirects=False,
    )
    assert answer.status_code == 403 and "does not grant audit:read" in answer.text
    assert len(client.app.state.review_sessions) == 0  # type: ignore[attr-defined]


# --- security headers ------------------------------------------------------------------------


def _html_pages(client: TestClient, story_account: str) -> dict[str, httpx.Response]:
    sign_in(client)
    return {
        "login form": client.get("/review/login"),
        "refused login": client.post("/review/login", content="key=wrong", headers=FORM),
        "review": client.get("/review"),
        "bad filter": client.get("/review?since=yesterday"),
        "timeline": client.get(f"/review/timeline/account/{story_account}"),
        "unknown timeline": client.get("/review/timeline/account/nobody"),
        "docs": client.get("/docs"),
        "redoc": client.get("/redoc"),
    }


def test_every_html_answer_carries_the_security_headers(
    client: TestClient, service: Service
) -> None:
    account = service.ledger.live_record_ids("salesforce")[0]
    for name, page in _html_pages(client, account).items():
        assert page.headers["content-type"].startswith("text/html"), name
        policy = page.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'", name
        assert directives["script-src"] == "'self'", name  # no inline script at all
        assert directives["frame-ancestors"] == "'none'", name
        assert page.headers["x-frame-options"] == "DENY", name
        assert page.headers["cache-control"] == "no-store", name
        assert page.headers["x-content-type-options"] == "nosniff", name
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), f"{name}: inline script"
        if name not in ("docs", "redoc"):
            assert "'unsafe-inline'" not in policy, name
            assert "<style" not in page.text and " style=" not in page.text, name


def test_other_answers_are_not_sniffed(client: TestClient) -> None:
    for answer in (client.get("/health"), client.get("/events"), client.get("/assets/review.css")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "x-frame-options" not in answer.headers


def test_assets_are_a_fixed_list(client: TestClient) -> None:
    assert client.get("/assets/review.css").headers["content-type"].startswith("text/css")
    assert client.get("/assets/swagger-ui-bundle.js").status_code == 200
    for name in ("../app.py", "..%2Fapp.py", "review.html", "static"):
        assert client.get(f"/assets/{name}").status_code == 404, name


# --- the CSV export cannot run formulas ------------------------------------------------------

DANGEROUS = {
    "equals": '=HYPERLINK("http://evil.example")',
    "plus": "+1+1",
    "minus": "-1+1",
    "at": "@SUM(A1:A2)",
    "tab": "\t=1+1",
    "carriage return": "\r=1+1",
    "newline": "\n=1+1",
    "semicolon": ";=1+1",
    "pipe": "|calc",
    "space before equals": " =1+1",
    "spaces before plus": "  +1",
    "newline before equals": "\n=1",
    "full-width equals": "＝1+1",
}
HARMLESS = {"word": "Acme", "inner equals": "a=b", "number text": "1.5", "space word": " Acme"}


def _exported(value: str) -> str:
    entry = WriteEntry(
        position=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        write_id="w1",
        system="salesforce",
        record_id="001",
        company_id="k1",
        field="Industry",
        source_system="intercom",
        source_record_id="c1",
        source_field="industry",
        source_value=value,
        before="Retail",
        value=value,
        overwrite=True,
        rules=[],
        config_version=1,
        trigger="company_updated",
        cause="x:1",
        api_call={},
    )
    text = "".join(csv_rows(lambda after, _limit: [entry] if after == 0 else []))
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["source_value"] == row["value"]
    return row["value"]


@pytest.mark.parametrize("value", list(DANGEROUS.values()), ids=list(DANGEROUS))
def test_a_cell_a_spreadsheet_would_run_is_quoted(value: str) -> None:
    assert _exported(value) == "'" + value


@pytest.mark.parametrize("value", list(HARMLESS.values()), ids=list(HARMLESS))
def test_other_cells_are_exported_as_they_are(value: str) -> None:
    assert _exported(value) == value
