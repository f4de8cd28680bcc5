"""Helpers for the tests that drive a real headless Chromium (Debian's ``chromium`` package,
driven by Playwright's Python package): serve an app with uvicorn on a free loopback port, and
launch the browser.

A test module calls :func:`playwright_or_skip` at import: without Playwright or
``/usr/bin/chromium`` (``scripts/test`` installs both) its tests are skipped.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
import uvicorn

CHROMIUM = "/usr/bin/chromium"


def playwright_or_skip() -> ModuleType:
    """``playwright.sync_api``; skips the calling module when it or Chromium is missing."""
    api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs it)", allow_module_level=True)
    return api


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn (lifespan on) on a free loopback port; yields its base URL."""
    port = _free_port()
    # log_config and log_level None: uvicorn leaves the process's logging alone (it would set
    # its loggers' levels, and later tests in this process would lose their INFO records).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextmanager
def chromium(api: ModuleType) -> Iterator[Any]:
    """A headless Chromium (Debian's) launched through Playwright."""
    with api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
