"""The compliance review page in a real headless Chromium (Debian's ``chromium`` package, driven
by Playwright's Python package): sign in, filter, click through to a timeline, export CSV.

The app is served by uvicorn on a free loopback port over a scripted SQLite ledger
(``audit_story.Story``). A screenshot of the filtered page is saved to ``/tmp/review.png``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.http.auth import COOKIE
from adapters.service.intake import WebhookIntake
from projections.projector import Projector
from projections.queries import Audit
from tests.e2e.browser import chromium, playwright_or_skip, serving
from tests.integration.audit_story import KEYS, OPERATOR, READER, Story

SCREENSHOT = Path("/tmp/review.png")

playwright_api = playwright_or_skip()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Story]]:
    path = tmp_path_factory.mktemp("review") / "ledger.db"
    url = f"sqlite:///{path}"
    story = Story(url)
    audit = Audit(Projector.open(story.ledger, url))
    app = create_app(
        Service(
            story.ledger, WebhookIntake(story.ledger, "client-secret"), api_keys=KEYS, audit=audit
        )
    )
    try:
        with serving(app) as base:
            yield base, story
    finally:
        audit.projector.close()
        story.ledger.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(playwright_api) as launched:
        yield launched


def test_a_reviewer_signs_in_filters_follows_a_timeline_and_exports(
    served: tuple[str, Story], browser: object, tmp_path: Path
) -> None:
    base, story = served
    context = browser.new_context(accept_downloads=True, viewport={"width": 1360, "height": 800})  # type: ignore[attr-defined]
    page = context.new_page()

    # Not signed in: the page sends the browser to the login form, which refuses a bad key.
    page.goto(f"{base}/review?field=Industry")
    assert "/review/login" in page.url
    page.fill("#key", "wrong")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("[role=alert]")
    page.fill("#key", OPERATOR)  # a real key, but without audit:read
    page.click("button[type=submit]")
    assert "does not grant audit:read" in page.inner_text("[role=alert]")
    page.fill("#key", READER)
    page.click("button[type=submit]")
    page.wait_for_selector("#overwrites")
    assert page.url.endswith("/review?field=Industry")  # back where the reviewer was going
    cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert READER not in cookie["value"]  # a session id, never the key

    # Every overwrite, then only Industry on the account: who, when, from what, to what, why.
    page.goto(f"{base}/review")
    everything = page.locator("#overwrites tbody tr").count()
    page.fill("input[name=field]", "Industry")
    page.fill("input[name=record]", story.account)
    page.select_option("select[name=rule]", "none")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("#overwrites")
    rows = page.locator("#overwrites tbody tr")
    assert 0 < rows.count() < everything
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert "Retail → Banking" in texts[0] and "Banking → Technology" in texts[1]
    assert all("Industry" in t and "configuration v1" in t for t in texts)
    assert "rule: unconditional" in texts[0] and "trigger company_created" in texts[0]
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # CSV export of exactly what the page shows.
    with page.expect_download() as download_info:
        page.click("#export")
    download = download_info.value
    saved = tmp_path / "export.csv"
    download.save_as(saved)
    exported = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [(r["before"], r["value"]) for r in exported] == [
        ("Retail", "Banking"),
        ("Banking", "Technology"),
    ]
    assert {r["record_id"] for r in exported} == {story.account}

    # The record's timeline is one click away.
    page.locator("#overwrites tbody tr").first.locator("a.timeline").click()
    page.wait_for_selector("#timeline")
    assert f"/review/timeline/account/{story.account}" in page.url
    timeline = page.inner_text("#timeline")
    assert "write applied" in timeline and "mapping" in timeline
    assert "'Retail' → 'Banking'" in timeline

    # A filter the page cannot use is explained, not a server error.
    page.goto(f"{base}/review?since=last+tuesday")
    assert "is not a date and time" in page.inner_text(".problems")

    # The pages are styled by the app's own style sheet (no inline style under the CSP).
    assert page.eval_on_selector("header", "e => getComputedStyle(e).display") == "flex"

    # Signing out ends the session: the old cookie no longer opens the pages.
    page.goto(f"{base}/review")
    page.click("header form button")
    page.goto(f"{base}/review")
    assert "/review/login" in page.url
    context.add_cookies([cookie])
    page.goto(f"{base}/review")
    assert "/review/login" in page.url
    context.close()
