"""simple-salesforce against any instance URL, including a plain-HTTP local simulator.

simple-salesforce always builds ``https://{host}:{port}/...`` URLs from ``instance_url`` (its
query_more and every ``sf.Account`` rebuild them), so overriding ``base_url`` is not enough.
:class:`HttpRewriteSession` rewrites the scheme on the way out instead; it is shared by every
call path of the client (SFType, query_more, restful, bulk).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce


class TimeoutSession(requests.Session):
    """A requests session with a default timeout (simple-salesforce passes none)."""

    def __init__(self, timeout: float | None = None) -> None:
        super().__init__()
        self.timeout = timeout

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send the request, with ``timeout`` unless the caller gave one."""
        if self.timeout is not None and len(args) < 7:  # args[6] would be the timeout
            kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class HttpRewriteSession(TimeoutSession):
    """A session that sends ``https_prefix...`` URLs to ``http_prefix...`` instead."""

    def __init__(
        self, https_prefix: str, http_prefix: str, *, timeout: float | None = None
    ) -> None:
        super().__init__(timeout)
        self._https_prefix = https_prefix
        self._http_prefix = http_prefix

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Rewrite the scheme of ``url`` when it targets the simulator, then send it."""
        if isinstance(url, bytes):
            url = url.decode()
        if url.startswith(self._https_prefix):
            url = self._http_prefix + url[len(self._https_prefix) :]
        return super().request(method, url, *args, **kwargs)


def connect(
    instance_url: str, session_id: str, *, version: str = "62.0", timeout: float = 30
) -> Salesforce:
    """A simple-salesforce client using ``session_id`` against ``instance_url``.

    For ``http://host:port`` (a local simulator) the client gets an :class:`HttpRewriteSession`;
    for real orgs (``https://...``) a plain :class:`TimeoutSession`. Every request uses
    ``timeout`` seconds. Close the client's session (``sf.session.close()``) when done.
    """
    parts = urlsplit(instance_url)
    session: TimeoutSession
    if parts.scheme == "http":
        https, http = f"https://{parts.netloc}", f"http://{parts.netloc}"
        session = HttpRewriteSession(https, http, timeout=timeout)
    else:
        session = TimeoutSession(timeout)
    sf: Salesforce = Salesforce(
        instance_url=instance_url, session_id=session_id, version=version, session=session
    )
    return sf
