"""simple-salesforce against any instance URL, including a plain-HTTP local simulator.

simple-salesforce always builds ``https://{host}:{port}/...`` URLs from ``instance_url`` (its
query_more and every ``sf.Account`` rebuild them), and its password login always posts to
``https://{domain}.salesforce.com``, so overriding ``base_url`` is not enough.
:class:`HttpRewriteSession` rewrites URL prefixes on the way out instead; it is shared by every
call path of the client (login, SFType, query_more, restful, bulk).

:func:`connect` uses an instance URL and a session id; :func:`connect_with_password` logs in with
username, password and security token (the partner SOAP ``login``), and raises the adapter's
``SalesforceAuthError`` when Salesforce refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from adapters.salesforce.errors import SalesforceAuthError, SalesforceUnavailable


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
    """A session that sends ``https_prefix...`` URLs to ``http_prefix...`` instead.

    More pairs can follow in ``rewrites``; the first whose prefix matches wins. A prefix matches
    only up to a URL boundary, so ``https://h:80`` does not match ``https://h:8000/...``.
    """

    def __init__(
        self,
        https_prefix: str,
        http_prefix: str,
        *,
        timeout: float | None = None,
        rewrites: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(timeout)
        self._rewrites = ((https_prefix, http_prefix), *rewrites)

    def rewrite(self, url: str) -> str:
        """``url`` with the first matching prefix replaced (unchanged if none matches)."""
        for old, new in self._rewrites:
            if url.startswith(old) and url[len(old) : len(old) + 1] in ("", "/", "?", "#"):
                return new + url[len(old) :]
        return url

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Rewrite ``url`` when it targets a rewritten host, then send it."""
        if isinstance(url, bytes):
            url = url.decode()
        return super().request(method, self.rewrite(url), *args, **kwargs)


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


CREDENTIAL_VARIABLES = (
    "SYNCLEDGER_SALESFORCE_USERNAME",
    "SYNCLEDGER_SALESFORCE_PASSWORD",
    "SYNCLEDGER_SALESFORCE_SECURITY_TOKEN",
)


def connect_with_password(
    username: str,
    password: str,
    security_token: str,
    *,
    domain: str = "login",
    login_url: str | None = None,
    version: str = "62.0",
    timeout: float = 30,
) -> Salesforce:
    """A simple-salesforce client logged in with username, password and security token.

    Real orgs (``login_url`` None) log in at ``https://{domain}.salesforce.com`` (``login``,
    ``test`` for sandboxes, or a My Domain such as ``acme.my``). ``login_url``
    (``http://host:port``, e.g. the simulator) takes the place of that login host, and for
    ``http://`` the instance it answers on that host is reached over plain HTTP too. Pass
    ``security_token=""`` when the org trusts the caller's IP range. Every request uses
    ``timeout`` seconds; close the client's session (``sf.session.close()``) when done.

    Raises ``adapters.salesforce.client.SalesforceAuthError`` when the login is refused and
    ``SalesforceUnavailable`` when the login host cannot be reached; no simple_salesforce or
    requests exception escapes the login.
    """
    session: TimeoutSession
    if login_url is None:
        session = TimeoutSession(timeout)
    else:
        parts = urlsplit(login_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"login_url must be http(s)://host[:port], not {login_url!r}")
        target = f"{parts.scheme}://{parts.netloc}"
        rewrites = [(f"https://{parts.netloc}", target)] if parts.scheme == "http" else []
        session = HttpRewriteSession(
            f"https://{domain}.salesforce.com", target, timeout=timeout, rewrites=rewrites
        )
    try:
        sf: Salesforce = Salesforce(
            username=username,
            password=password,
            security_token=security_token,
            domain=domain,
            version=version,
            session=session,
        )
    except (SalesforceAuthenticationFailed, requests.RequestException) as exc:
        session.close()
        raise _login_error(exc) from None
    return sf


def _login_error(exc: SalesforceAuthenticationFailed | requests.RequestException) -> Exception:
    """The adapter's error for a failed login, without simple-salesforce's traceback."""
    if isinstance(exc, requests.RequestException):
        return SalesforceUnavailable(f"Salesforce login failed: {type(exc).__name__}: {exc}")
    code = exc.code if isinstance(exc.code, str) else ""
    status = exc.code if isinstance(exc.code, int) else None
    reason = f"{code}: {exc.auth_message}" if code else (exc.auth_message or "no reason given")
    message = (
        f"Salesforce refused the login ({reason.strip()}); check "
        f"{', '.join(CREDENTIAL_VARIABLES[:2])} and {CREDENTIAL_VARIABLES[2]}"
    )
    return SalesforceAuthError(message, status=status, code=code)
