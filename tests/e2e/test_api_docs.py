"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) in a real headless Chromium with the network
closed to everything but the app: their scripts and styles come from the app itself (no CDN),
and they work under the pages' Content-Security-Policy (no inline script).

The app is served by uvicorn on a free loopback port over a ledger on the in-memory store;
Chromium is Debian's, driven by Playwright's Python package (:mod:`tests.e2e.browser`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.service.intake import WebhookIntake
from adapters.store.database import ledger_env
from ledger.application import LedgerApp
from tests.e2e.browser import chromium, playwright_or_skip, serving
from tests.integration.audit_story import KEYS

playwright_api = playwright_or_skip()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    ledger = LedgerApp(env=ledger_env("memory://"))
    app = create_app(Service(ledger, WebhookIntake(ledger, "client-secret"), api_keys=KEYS))
    try:
        with serving(app) as url:
            yield url
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(playwright_api) as launched:
        yield launched


EXPECTED_OPERATIONS = {
    ("post", "/webhooks/intercom"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/events"),
    ("get", "/writes"),
    ("get", "/explain"),
    ("get", "/config"),
}


@pytest.fixture
def page(base: str, browser: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page whose requests may reach only the app; it also collects what was blocked and
    what the console said (a CSP violation is reported there)."""
    context = browser.new_context()
    blocked: list[str] = []
    console: list[str] = []

    def only_the_app(route: Any) -> None:
        url = route.request.url
        if url.startswith(base + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_the_app)
    opened = context.new_page()
    opened.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        yield opened, blocked, console
    finally:
        context.close()


def test_swagger_ui_lists_the_apis_operations_offline(
    base: str, page: tuple[Any, list[str], list[str]]
) -> None:
    tab, blocked, console = page
    tab.goto(f"{base}/docs")
    tab.wait_for_selector(".opblock", timeout=20_000)
    shown = tab.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.className, "
        "b.querySelector('.opblock-summary-path').dataset.path])",
    )
    operations = {
        (method, path)
        for classes, path in shown
        for method in ("get", "post")
        if f"opblock-{method}" in classes.split()
    }
    assert operations >= EXPECTED_OPERATIONS
    assert tab.title().startswith("syncledger")
    assert blocked == []
    assert not [line for line in console if "Content Security Policy" in line], console


def test_redoc_renders_offline(base: str, page: tuple[Any, list[str], list[str]]) -> None:
    tab, blocked, console = page
    tab.goto(f"{base}/redoc")
    tab.wait_for_selector("h1", timeout=20_000)
    assert "syncledger" in tab.inner_text("h1")
    menu = tab.inner_text(".menu-content").splitlines()
    assert {"intake", "operations", "audit"} <= {line.strip() for line in menu}
    assert "Intercom Webhook" in tab.inner_text("h2 >> nth=1")
    assert tab.get_by_text("/webhooks/intercom", exact=True).count() > 0
    assert blocked == []
    # ReDoc always tries Redocly's logo from its CDN; the page's policy refuses it (img-src) and
    # ReDoc hides it. Nothing else is refused: no script, style or worker of the page.
    refused = [line for line in console if "Content Security Policy" in line]
    assert all("cdn.redoc.ly" in line and '"img-src' in line for line in refused), refused
